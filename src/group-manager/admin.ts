/**
 * Administering a running Group Manager from the same machine: `coapsec group-manager remove` and
 * `coapsec group-manager status` (a group active or inactive, key-groupcomm-oscore §8.2, §9.9).
 *
 * RFC 9594 §5 lets the Group Manager remove a member on its own decision and leaves how an
 * administrator asks for it to draft-ietf-ace-oscore-gm-admin (an ACE-protected admin interface
 * over CoAP). coapsec keeps administration local instead: the request is a file dropped into the
 * admin inbox next to the Group Manager's state file (STATE.admin/, mode 0700), which the running
 * Group Manager watches, applies (`removeNode`, so the group is rekeyed exactly as for any other
 * removal and the members observing it are notified) and answers with a result file. Nothing
 * listens on the network, and the one who may ask is the one who may write that directory — the
 * Group Manager's own user, who can already read every group key in the state file: the operating
 * system authenticates the administrator, and no new secret or port exists to be attacked.
 * When no Group Manager runs (its state file's lock is free), the command takes the lock and
 * changes the state file itself.
 *
 * Bounded: the inbox takes requests of at most 4 KiB, at most 64 per look; every other file in it
 * is left alone.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, watch, type FSWatcher } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFileDurably } from '../credentials/durable-file.js';
import { PidLock } from '../credentials/pid-lock.js';
import { OscoreConfigError } from '../oscore/errors.js';
import { openGroupManager, type GroupManagerConfig } from './config.js';
import type { OnlineGroupManager } from './online-manager.js';

export interface RemovalRequest {
  readonly op: 'remove';
  readonly group: string;
  readonly node: string;
}

/** key-groupcomm-oscore §8.2 leaves setting the status to the administrator interface: this is ours. */
export interface StatusRequest {
  readonly op: 'status';
  readonly group: string;
  readonly active: boolean;
}

export type AdminRequest = RemovalRequest | StatusRequest;

export type AdminResult =
  | { readonly ok: true; readonly group: string; readonly node?: string; readonly active: boolean; readonly keyGeneration: number; readonly gid: string }
  | { readonly ok: false; readonly error: string };

const REQUEST = '.request.json';
const RESULT = '.result.json';
const MAX_REQUEST_BYTES = 4096;
const MAX_PER_LOOK = 64;

export class GroupManagerAdminError extends Error {
  override readonly name = 'GroupManagerAdminError';
}

export const adminInboxOf = (statePath: string): string => `${statePath}.admin`;

/** Applies one administrator's request to the manager (RFC 9594 §5: removal, then the rekey of §6; or a group's status). */
export function applyAdminRequest(manager: OnlineGroupManager, request: AdminRequest): AdminResult {
  try {
    if (request.op === 'remove') manager.removeNode(request.group, request.node);
    else manager.setActive(request.group, request.active);
  } catch (e) {
    if (e instanceof OscoreConfigError) {
      const nodes = manager.nodes(request.group);
      const known = manager.groupNames.includes(request.group) ? `its members: ${nodes.length > 0 ? nodes.join(', ') : 'none'}` : `groups: ${manager.groupNames.join(', ')}`;
      return { ok: false, error: `${e.message} (${known})` };
    }
    throw e;
  }
  const group = request.group;
  return { ok: true, group, ...(request.op === 'remove' ? { node: request.node } : {}), active: manager.isActive(group)!, keyGeneration: manager.keyGeneration(group)!, gid: manager.gid(group)! };
}

function parseRequest(text: string): AdminRequest | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'the request is not JSON';
  }
  const r = value as Record<string, unknown> | null;
  if (typeof r !== 'object' || r === null || (r['op'] !== 'remove' && r['op'] !== 'status')) return 'the request is no {"op": "remove" | "status", ...}';
  if (typeof r['group'] !== 'string') return 'the request needs a "group" string';
  if (r['op'] === 'status') {
    if (typeof r['active'] !== 'boolean') return 'a status request needs "active": true or false';
    return { op: 'status', group: r['group'], active: r['active'] };
  }
  if (typeof r['node'] !== 'string') return 'a removal request needs a "node" string';
  return { op: 'remove', group: r['group'], node: r['node'] };
}

/** The running Group Manager's side: watches the inbox and answers each request in it. */
export class AdminInbox {
  readonly #watcher: FSWatcher;
  #scheduled = false;
  #closed = false;

  private constructor(
    readonly directory: string,
    private readonly manager: OnlineGroupManager,
  ) {
    this.#watcher = watch(directory, () => this.#schedule());
    this.#watcher.on('error', () => undefined);
  }

  /** Creates STATE.admin (0700) and starts watching it; requests already waiting are answered. */
  static open(statePath: string, manager: OnlineGroupManager): AdminInbox {
    const directory = adminInboxOf(statePath);
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    chmodSync(directory, 0o700);
    const inbox = new AdminInbox(directory, manager);
    inbox.#schedule();
    return inbox;
  }

  close(): void {
    this.#closed = true;
    this.#watcher.close();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#closed) this.answerWaiting();
    });
  }

  /** Answers the requests waiting in the inbox (at most MAX_PER_LOOK; a further look follows). */
  answerWaiting(): void {
    let names: string[];
    try {
      names = readdirSync(this.directory).filter((n) => n.endsWith(REQUEST)).slice(0, MAX_PER_LOOK);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(this.directory, name);
      let text: string;
      try {
        if (statSync(path).size > MAX_REQUEST_BYTES) text = '';
        else text = readFileSync(path, 'utf8');
        unlinkSync(path);
      } catch {
        continue; // withdrawn by its sender meanwhile
      }
      const request = parseRequest(text);
      const result: AdminResult = typeof request === 'string' ? { ok: false, error: request } : applyAdminRequest(this.manager, request);
      writeFileDurably(join(this.directory, name.slice(0, -REQUEST.length) + RESULT), `${JSON.stringify(result)}\n`);
    }
    if (names.length === MAX_PER_LOOK) this.#schedule();
  }
}

export interface AdminRequestOptions {
  /** How long to wait for the running Group Manager's answer. Default 5000 ms. */
  readonly timeoutMs?: number;
}

/**
 * The administrator's side: asks the running Group Manager of `config` through its inbox, or,
 * when none runs, takes its lock and applies the request to the state file. `running` in the
 * answer says which happened.
 */
export async function requestAdmin(config: GroupManagerConfig, request: AdminRequest, options: AdminRequestOptions = {}): Promise<AdminResult & { running: boolean }> {
  const lockPath = `${config.statePath}.lock`;
  let lock: PidLock | undefined;
  try {
    lock = PidLock.acquire(lockPath);
  } catch (e) {
    // Locked by a live process (the running Group Manager), or no lock can be made here at all.
    if (!existsSync(lockPath)) throw new GroupManagerAdminError((e as Error).message);
  }
  if (lock !== undefined) {
    try {
      return { ...applyAdminRequest(openGroupManager(config), request), running: false };
    } finally {
      lock.release();
    }
  }
  const directory = adminInboxOf(config.statePath);
  if (!existsSync(directory)) throw new GroupManagerAdminError(`${directory} does not exist: is the running Group Manager older than its admin inbox?`);
  const id = randomBytes(8).toString('hex');
  const requestPath = join(directory, id + REQUEST);
  const resultPath = join(directory, id + RESULT);
  // Written whole under another name, then renamed: the Group Manager never reads half a request.
  writeFileDurably(requestPath, JSON.stringify(request));
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  for (;;) {
    const answer = readResult(resultPath);
    if (answer !== undefined) return { ...answer, running: true };
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  try {
    unlinkSync(requestPath);
  } catch {
    // Taken by the Group Manager just now: its answer follows.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const late = readResult(resultPath);
    if (late !== undefined) return { ...late, running: true };
  }
  throw new GroupManagerAdminError(`the running Group Manager did not answer within ${options.timeoutMs ?? 5000} ms; the request was withdrawn`);
}

function readResult(path: string): AdminResult | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  unlinkSync(path);
  return JSON.parse(text) as AdminResult;
}
