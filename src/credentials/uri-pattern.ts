/**
 * The `match` patterns of client OSCORE entries: an absolute URI, optionally ending in `*`, which
 * then matches any continuation of the path (and query). Scheme, host and port always match
 * exactly, after the normalisation of coap/uri.ts (case, default port, IPv6 form), so
 * "coap://Example.com/*" and "coap://example.com:5683/*" are the same pattern.
 */
import { parseAbsoluteUri } from '../coap/uri.js';

export interface UriPattern {
  /** '' in a path-only resource pattern (parseResourcePattern): any scheme, host and port. */
  scheme: string;
  host: string;
  port: number | undefined;
  /** Path and query as written, starting with "/" (an empty path counts as "/"). */
  pathPrefix: string;
  wildcard: boolean;
}

interface SplitUri {
  scheme: string;
  host: string;
  port: number | undefined;
  rest: string;
}

/** Throws Error (with a message fit for a field error) when the pattern is malformed. */
export function parseUriPattern(pattern: string): UriPattern {
  const star = pattern.indexOf('*');
  if (star >= 0 && star !== pattern.length - 1) {
    throw new Error('"*" is only allowed as the last character of the pattern');
  }
  const wildcard = star >= 0;
  const text = wildcard ? pattern.slice(0, -1) : pattern;
  const split = splitUri(text);
  if (wildcard && split.rest === '') return { scheme: split.scheme, host: split.host, port: split.port, pathPrefix: '', wildcard };
  return { scheme: split.scheme, host: split.host, port: split.port, pathPrefix: normalisedRest(split.rest), wildcard };
}

/**
 * A resource pattern: an absolute URI pattern as above, or a path pattern such as "/sensors/*"
 * that matches that path on any origin (a server often does not know every name it is reached by).
 */
export function parseResourcePattern(pattern: string): UriPattern {
  if (!pattern.startsWith('/')) return parseUriPattern(pattern);
  const path = parseUriPattern(`coap://localhost${pattern}`);
  return { ...path, scheme: '', host: '', port: undefined };
}

export function uriMatchesPattern(uri: string, pattern: UriPattern): boolean {
  let split: SplitUri;
  try {
    split = splitUri(uri);
  } catch {
    return false;
  }
  const anyOrigin = pattern.scheme === '';
  if (!anyOrigin && (split.scheme !== pattern.scheme || split.host !== pattern.host || split.port !== pattern.port)) return false;
  const rest = normalisedRest(split.rest);
  return pattern.wildcard ? rest.startsWith(pattern.pathPrefix) : rest === pattern.pathPrefix;
}

/** Longer prefixes are more specific; an exact pattern beats a wildcard of the same text. */
export function patternSpecificity(pattern: UriPattern): number {
  return pattern.pathPrefix.length * 2 + (pattern.wildcard ? 0 : 1);
}

function splitUri(text: string): SplitUri {
  const schemeEnd = text.indexOf('://');
  if (schemeEnd < 0) throw new Error('expected an absolute URI such as "coap://host:port/path*"');
  const afterSlashes = schemeEnd + 3;
  const authorityLength = text.slice(afterSlashes).search(/[/?]/);
  const authorityEnd = authorityLength < 0 ? text.length : afterSlashes + authorityLength;
  const parsed = parseAbsoluteUri(text.slice(0, authorityEnd));
  return { scheme: parsed.scheme, host: parsed.host, port: parsed.port, rest: text.slice(authorityEnd) };
}

function normalisedRest(rest: string): string {
  if (rest === '') return '/';
  return rest.startsWith('?') ? `/${rest}` : rest;
}
