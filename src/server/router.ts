/** Resources by path: exact matches first, then the longest subtree prefix. */
import type { ResourceDefinition } from './resource.js';

export function splitPath(path: string): string[] {
  const trimmed = path.replace(/^\/+/, '').replace(/\/+$/, '');
  return trimmed === '' ? [] : trimmed.split('/');
}

const keyOf = (segments: readonly string[]): string => segments.join('\u0000');

export interface Match {
  readonly resource: ResourceDefinition;
  readonly subPath: readonly string[];
}

/** The sub-path of every exact match, shared and frozen. */
const NO_SUB_PATH: readonly string[] = Object.freeze([]);

export class Router {
  /** An exact resource's Match, made once: a lookup per request allocates nothing. */
  private readonly exact = new Map<string, Match>();
  private readonly subtrees: Array<{ prefix: string[]; resource: ResourceDefinition }> = [];

  add(resource: ResourceDefinition): void {
    const segments = splitPath(resource.path);
    const key = keyOf(segments);
    if (resource.subtree) {
      if (this.subtrees.some((s) => keyOf(s.prefix) === key)) throw new Error(`a subtree is already mounted at ${resource.path}`);
      this.subtrees.push({ prefix: segments, resource });
      this.subtrees.sort((a, b) => b.prefix.length - a.prefix.length);
    } else {
      if (this.exact.has(key)) throw new Error(`a resource already exists at ${resource.path}`);
      this.exact.set(key, { resource, subPath: NO_SUB_PATH });
    }
  }

  remove(path: string): boolean {
    const key = keyOf(splitPath(path));
    if (this.exact.delete(key)) return true;
    const i = this.subtrees.findIndex((s) => keyOf(s.prefix) === key);
    if (i < 0) return false;
    this.subtrees.splice(i, 1);
    return true;
  }

  match(path: readonly string[]): Match | undefined {
    // A path of one segment is its own key (a join of one string is that string): no join per request.
    const exact = this.exact.get(path.length === 1 ? path[0]! : keyOf(path));
    if (exact) return exact;
    for (const s of this.subtrees) {
      if (s.prefix.length <= path.length && s.prefix.every((seg, i) => seg === path[i])) {
        return { resource: s.resource, subPath: path.slice(s.prefix.length) };
      }
    }
    return undefined;
  }

  resources(): ResourceDefinition[] {
    return [...[...this.exact.values()].map((m) => m.resource), ...this.subtrees.map((s) => s.resource)];
  }
}

/** "/a/b" for a resource path and the segments below it: the key observations are kept under. */
export function normalizePath(path: string, subPath: readonly string[] = []): string {
  return '/' + [...splitPath(path), ...subPath].join('/');
}
