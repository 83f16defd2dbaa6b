/**
 * A proxy's response cache (RFC 7252 §5.6, §5.9, §5.10.5, §5.10.6; processing rules PR2.1–PR2.5 of
 * the end-to-end security requirements draft). Pure and sans-IO: the clock is injected, nothing
 * here sends a message. The forwarder asks `lookup`, forwards on a miss, and hands upstream
 * responses to `store`, `revalidated` or `invalidate`.
 *
 * The Cache-Key (§5.6): the request method, the request URI (`target`, so Uri-Host, Uri-Port,
 * Uri-Path, Uri-Query, Proxy-Uri and Proxy-Scheme are compared as one normalized URI, as §5.6
 * allows for scheme-specific matching) and every other request option, except
 *  - options marked NoCacheKey by their number (§5.4.6: Size1, Size2, Echo, ...);
 *  - options this cache recognizes and fully interprets (§5.6, the note in §5.4.2):
 *    ETag (validation, PR2.3), Accept (variants, PR2.5), Observe (RFC 7641 §2: not part of the
 *    cache key; a notification is a 2.05 like any other) and Hop-Limit (RFC 8768: the proxy
 *    decrements and checks it, the representation does not depend on it).
 * Block2 and Block1 stay in the key: each block of a representation is a cache entry of its own
 * (RFC 7959 §2.10 leaves this open; a forwarder that reassembles can strip Block2 before keying).
 * For FETCH the payload is part of the key (RFC 8132 §2.2), and so is its Content-Format option.
 *
 * Cacheable (§5.6, §5.9): 2.05 Content, and every 4.xx and 5.xx response ("Responses of this
 * class are cacheable ... They cannot be validated", §5.9.2, §5.9.3), with Max-Age defaulting to
 * 60 s (§5.10.5). 2.03 Valid is not stored on its own: it refreshes a stored 2.05 (§5.9.1.3).
 * 2.01/2.02/2.04 and unrecognized 2.xx are never stored (§5.6). Only responses to the safe methods
 * GET and FETCH are stored: the payload of POST/PUT/PATCH is not part of a Cache-Key, so a stored
 * response to one would be served for another body, and unsafe requests must reach the origin.
 * Never stored: Max-Age 0; any request or response carrying an OSCORE option (end-to-end
 * protected, outer Max-Age 0, RFC 8613 §4.1.3.1 — not served from cache to another client),
 * except the responses to Deterministic Requests (protected-cache.ts: draft-ietf-core-
 * cacheable-oscore, whose protected responses are made to be served to every member that asks).
 * Responses a proxy generates itself (5.02/5.04 after an upstream failure) must not be passed to
 * `store`: they are not the origin's answer.
 */
import { Method, ResponseCode, codeClass } from '../coap/codes.js';
import {
  EMPTY_BYTES,
  bytesEqual,
  contentFormatOf,
  encodeUint,
  getOption,
  getOptions,
  getUintOption,
  maxAgeOf,
  setOption,
  type CoapMessage,
  type CoapOption,
} from '../coap/message.js';
import { OptionNumber, isNoCacheKey, isUnsafe } from '../coap/options.js';
import { UriError, formatCoapUri, parseCoapUri } from '../coap/uri.js';
import { cacheableProtection, storableProtection } from './protected-cache.js';
import { bytesToHex as hex } from '../util/bytes.js';

export interface CacheOptions {
  /** Memory budget in bytes (payloads + options + per-entry overhead). */
  maxBytes: number;
  /** Milliseconds; any monotonic clock. */
  now: () => number;
  /**
   * PR2.3 says a request whose ETags do not match the fresh entry is forwarded. RFC 7252 §5.6
   * would also allow serving the fresh 2.05 to it. Default false (forward, as PR2.3 says).
   */
  serveOnEtagMismatch?: boolean;
}

/** What a stale entry looks like to the forwarder. */
export interface StaleEntry {
  readonly key: string;
  readonly target: string;
  readonly etag: Uint8Array;
  /** How long ago it went stale, ms. */
  readonly staleFor: number;
}

export type LookupResult =
  | { kind: 'fresh'; response: CoapMessage }
  | { kind: 'valid'; response: CoapMessage }
  /**
   * An expired 2.05 with an ETag (§5.6.2): send the request upstream with exactly these ETag
   * options (the entry's first, then the requester's own); on 2.03 call `revalidated`.
   */
  | { kind: 'stale'; etags: Uint8Array[]; entry: StaleEntry }
  | undefined;

export interface CacheStats {
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  evictions: number;
  stores: number;
  revalidations: number;
  invalidations: number;
}

interface Entry {
  readonly id: string;
  readonly key: string;
  readonly target: string;
  /** The Accept option of the request that obtained it, or undefined. */
  readonly accept: number | undefined;
  /** Stored copy: no token, message ID, Observe or Max-Age; those are set when served. */
  response: CoapMessage;
  expiresAt: number;
  etag: Uint8Array | undefined;
  size: number;
  /** The options last served (with their Max-Age): the remaining seconds change once a second, hits far more often. */
  served?: { response: CoapMessage; maxAge: number; options: readonly CoapOption[] };
}

/** Per entry: the Map slots, the strings, the message object. A measured order of magnitude. */
const ENTRY_OVERHEAD = 240;
const OPTION_OVERHEAD = 40;

/** Options never compared as part of the key, beyond those marked NoCacheKey. */
const NOT_IN_KEY: ReadonlySet<number> = new Set([
  // the request URI, compared through `target`
  OptionNumber.UriHost,
  OptionNumber.UriPort,
  OptionNumber.UriPath,
  OptionNumber.UriQuery,
  OptionNumber.ProxyUri,
  OptionNumber.ProxyScheme,
  // recognized and fully interpreted by the cache or the proxy (§5.6)
  OptionNumber.ETag,
  OptionNumber.Accept,
  OptionNumber.Observe,
  OptionNumber.HopLimit,
]);

/** Targets whose plain GET key is remembered at most (plainGetKey). */
const PLAIN_KEY_MEMO = 1024;

/** Length-prefixed target so no target text can collide with the option part. */
const composeKey = (code: number, target: string, options: string, payload: string): string => `${code}:${target.length}:${target}|${options}|${payload}`;


export const isCacheableMethod = (code: number): boolean => code === Method.GET || code === Method.FETCH;

/** §5.6, §5.9: 2.05 and all error classes; 2.03 only refreshes (§5.9.1.3). */
export function isCacheableResponseCode(code: number): boolean {
  if (code === ResponseCode.Content) return true;
  const cls = codeClass(code);
  return cls === 4 || cls === 5;
}

/** §5.9.1.1, §5.9.1.2, §5.9.1.4: a successful unsafe request marks the resource's entries stale. */
export function invalidatesCache(requestCode: number, responseCode: number): boolean {
  if (isCacheableMethod(requestCode)) return false;
  return responseCode === ResponseCode.Created || responseCode === ResponseCode.Deleted || responseCode === ResponseCode.Changed;
}

/**
 * The targets whose entries a 2.01/2.02/2.04 makes stale: the request URI, and for 2.01 with
 * Location-Path/Location-Query the created resource (§5.9.1.1).
 */
export function invalidationTargets(target: string, response: CoapMessage): string[] {
  const targets = [target];
  if (response.code !== ResponseCode.Created) return targets;
  const path = getOptions(response, OptionNumber.LocationPath).map((v) => Buffer.from(v).toString('utf8'));
  const query = getOptions(response, OptionNumber.LocationQuery).map((v) => Buffer.from(v).toString('utf8'));
  if (path.length === 0 && query.length === 0) return targets;
  try {
    const base = parseCoapUri(target);
    targets.push(formatCoapUri({ ...base, path, query }));
  } catch (e) {
    if (!(e instanceof UriError)) throw e;
  }
  return targets;
}

/**
 * The 2.03 a cache (or a proxy that got a 2.05 from upstream) sends when one of the request's
 * ETags matches the response's (§5.10.6.2, PR2.3); otherwise the response unchanged.
 */
export function conditionalReply(request: CoapMessage, response: CoapMessage): CoapMessage {
  if (response.code !== ResponseCode.Content) return response;
  const etag = getOption(response, OptionNumber.ETag);
  if (etag === undefined || !getOptions(request, OptionNumber.ETag).some((e) => bytesEqual(e, etag))) return response;
  const options: CoapOption[] = [{ number: OptionNumber.ETag, value: etag }];
  const maxAge = getOption(response, OptionNumber.MaxAge);
  if (maxAge !== undefined) options.push({ number: OptionNumber.MaxAge, value: maxAge });
  return { ...response, code: ResponseCode.Valid, options, payload: EMPTY_BYTES };
}

export class ResponseCache {
  private readonly maxBytes: number;
  private readonly now: () => number;
  private readonly serveOnEtagMismatch: boolean;
  /** LRU order: least recently used first (Map iteration order). */
  private readonly lru = new Map<string, Entry>();
  /** key → variants by Accept ('-' when the request had none). */
  private readonly byKey = new Map<string, Map<string, Entry>>();
  private readonly byTarget = new Map<string, Set<Entry>>();
  /** target → cacheKey of a GET without options in the key (see plainGetKey). */
  private readonly plainGetKeys = new Map<string, string>();
  /** The last entry in `lru`: touching it again changes nothing, so a run of hits on one entry skips the Map. */
  private newest: Entry | undefined;
  private bytes = 0;
  private counters = { hits: 0, misses: 0, evictions: 0, stores: 0, revalidations: 0, invalidations: 0 };

  constructor(options: CacheOptions) {
    if (!(options.maxBytes >= 0)) throw new RangeError('maxBytes must be a non-negative number');
    this.maxBytes = options.maxBytes;
    this.now = options.now;
    this.serveOnEtagMismatch = options.serveOnEtagMismatch ?? false;
  }

  /**
   * The Cache-Key of a request to `target` (the absolute request URI, or any string naming the
   * upstream resource; two requests for the same resource must give the same target).
   */
  cacheKey(request: CoapMessage, target: string): string {
    let options = '';
    for (const o of request.options) {
      if (isNoCacheKey(o.number) || NOT_IN_KEY.has(o.number)) continue;
      options += `${o.number}=${hex(o.value)};`;
    }
    if (options === '' && request.code === Method.GET) return this.plainGetKey(target);
    const payload = request.code === Method.FETCH ? hex(request.payload) : '';
    return composeKey(request.code, target, options, payload);
  }

  /**
   * The key of a GET whose key is its target alone, the same string for every such request: the
   * Map lookups that follow find its hash already computed and compare it by identity, where a
   * key built anew is hashed and compared character by character on every cache hit.
   */
  private plainGetKey(target: string): string {
    let key = this.plainGetKeys.get(target);
    if (key === undefined) {
      key = composeKey(Method.GET, target, '', '');
      // Bounded: at the limit it starts over (a memo, never a source of truth).
      if (this.plainGetKeys.size >= PLAIN_KEY_MEMO) this.plainGetKeys.clear();
      this.plainGetKeys.set(target, key);
    }
    return key;
  }

  /** The target a key was made for. */
  static targetOf(key: string): string {
    const first = key.indexOf(':');
    const second = key.indexOf(':', first + 1);
    const length = Number(key.slice(first + 1, second));
    return key.slice(second + 1, second + 1 + length);
  }

  lookup(request: CoapMessage, key: string): LookupResult {
    // Not cacheable at all (not counted as a miss): unsafe methods, OSCORE-protected requests
    // other than Deterministic Requests.
    if (!isCacheableMethod(request.code) || !cacheableProtection(request)) return undefined;
    const variants = this.byKey.get(key);
    if (!variants) {
      this.counters.misses++;
      return undefined;
    }
    const now = this.now();
    const accept = getUintOption(request, OptionNumber.Accept);
    const fresh = freshVariant(variants, accept, now);
    if (fresh) {
      this.touch(fresh);
      const answer = this.answer(request, fresh, now);
      if (answer) {
        this.counters.hits++;
        return answer;
      }
      // PR2.3: the requester's ETags do not match the fresh entry; the request goes upstream.
      this.counters.misses++;
      return undefined;
    }
    this.counters.misses++;
    const candidates = variantsServing(variants, accept);
    // Expired errors cannot be validated (§5.9.2, §5.9.3): drop them.
    for (const e of candidates) if (e.etag === undefined) this.remove(e);
    const stale = candidates.find((e) => e.etag !== undefined && this.lru.has(e.id));
    if (!stale) return undefined;
    this.touch(stale);
    const etags = [stale.etag!];
    for (const e of getOptions(request, OptionNumber.ETag)) if (!etags.some((x) => bytesEqual(x, e))) etags.push(e);
    return { kind: 'stale', etags, entry: { key, target: stale.target, etag: stale.etag!, staleFor: now - stale.expiresAt } };
  }

  /**
   * The answer `lookup` would give from a fresh entry, or undefined. A request it cannot answer
   * leaves the cache as it was (no miss counted, nothing dropped or reordered), so a forwarder may
   * ask this before it builds the upstream request, and call `lookup` when it gets undefined.
   */
  lookupFresh(request: CoapMessage, key: string): { kind: 'fresh' | 'valid'; response: CoapMessage } | undefined {
    if (!isCacheableMethod(request.code) || !cacheableProtection(request)) return undefined;
    const variants = this.byKey.get(key);
    if (!variants) return undefined;
    const now = this.now();
    const fresh = freshVariant(variants, getUintOption(request, OptionNumber.Accept), now);
    const answer = fresh && this.answer(request, fresh, now);
    if (!answer) return undefined;
    this.touch(fresh);
    this.counters.hits++;
    return answer;
  }

  /** A fresh entry's answer to `request` (PR2.3, PR2.4); undefined when its ETags rule the entry out. */
  private answer(request: CoapMessage, fresh: Entry, now: number): { kind: 'fresh' | 'valid'; response: CoapMessage } | undefined {
    const remaining = Math.max(0, Math.floor((fresh.expiresAt - now) / 1000));
    if (fresh.response.code === ResponseCode.Content && getOption(request, OptionNumber.ETag) !== undefined) {
      const requestEtags = getOptions(request, OptionNumber.ETag);
      if (fresh.etag !== undefined && requestEtags.some((e) => bytesEqual(e, fresh.etag!))) {
        // PR2.3: 2.03 Valid, no payload, the matching ETag and the remaining freshness.
        const response: CoapMessage = {
          ...blank(ResponseCode.Valid),
          options: [
            { number: OptionNumber.ETag, value: fresh.etag },
            { number: OptionNumber.MaxAge, value: encodeUint(remaining) },
          ],
        };
        return { kind: 'valid', response };
      }
      if (!this.serveOnEtagMismatch) return undefined;
    }
    return { kind: 'fresh', response: served(fresh, remaining) };
  }

  /**
   * Stores an upstream response to `request` (PR2.2), replacing any entry for the same key and
   * Accept. A 2.03 is handed to `revalidated`. A non-cacheable response to a GET/FETCH removes the
   * old entry (§5.6.1: the new response invalidates it). Returns whether it was stored.
   */
  store(request: CoapMessage, key: string, response: CoapMessage): boolean {
    if (!isCacheableMethod(request.code)) return false;
    if (response.code === ResponseCode.Valid) return this.revalidated(key, response, request) !== undefined;
    // The entry this response replaces, or removes when it cannot be stored. Looked for only when
    // the key has entries: a proxy calls this for every miss, most of them (Max-Age 0, an
    // uncacheable code) with nothing stored under their key.
    const variants = this.byKey.get(key);
    if (variants !== undefined) {
      const old = variants.get(acceptTag(getUintOption(request, OptionNumber.Accept)));
      if (old) this.remove(old);
    }
    if (!isCacheableResponseCode(response.code)) return false;
    const maxAge = maxAgeOf(response);
    if (maxAge === 0) return false;
    if (!storableProtection(request, response)) return false;
    const accept = getUintOption(request, OptionNumber.Accept);
    const stored: CoapMessage = {
      ...blank(response.code),
      type: response.type,
      options: response.options.filter((o) => o.number !== OptionNumber.Observe && o.number !== OptionNumber.MaxAge),
      payload: response.payload,
    };
    const etag = response.code === ResponseCode.Content ? getOption(response, OptionNumber.ETag) : undefined;
    const id = variantKey(key, accept);
    const size = sizeOf(id, stored);
    if (size > this.maxBytes) return false;
    const entry: Entry = { id, key, target: ResponseCache.targetOf(key), accept, response: stored, expiresAt: this.now() + maxAge * 1000, etag, size };
    this.insert(entry);
    this.counters.stores++;
    return true;
  }

  /**
   * A 2.03 Valid from upstream (§5.6.2, §5.9.1.3): the stored 2.05 with that ETag becomes fresh for
   * the 2.03's Max-Age (default 60), and each Safe-to-Forward option type in the 2.03 replaces that
   * type in the stored response. Returns the refreshed response to serve (pass it through
   * `conditionalReply` if the requester sent ETags), or undefined when no entry has that ETag.
   */
  revalidated(key: string, valid: CoapMessage, request?: CoapMessage): CoapMessage | undefined {
    const etag = getOption(valid, OptionNumber.ETag);
    const variants = this.byKey.get(key);
    if (etag === undefined || !variants) return undefined;
    const preferred = request ? variants.get(acceptTag(getUintOption(request, OptionNumber.Accept))) : undefined;
    const entry = preferred?.etag && bytesEqual(preferred.etag, etag) ? preferred : [...variants.values()].find((e) => e.etag && bytesEqual(e.etag, etag));
    if (!entry) return undefined;
    const replaced = new Set<number>();
    for (const o of valid.options) {
      if (isUnsafe(o.number) || o.number === OptionNumber.Observe) continue;
      replaced.add(o.number);
    }
    const updated: CoapMessage = { ...entry.response, options: entry.response.options.filter((o) => !replaced.has(o.number)) };
    for (const n of replaced) setOption(updated, n, ...getOptions(valid, n));
    const maxAge = maxAgeOf(valid);
    this.bytes -= entry.size;
    entry.response = updated;
    entry.size = sizeOf(entry.id, updated);
    this.bytes += entry.size;
    entry.expiresAt = this.now() + maxAge * 1000;
    this.counters.revalidations++;
    this.touch(entry);
    this.evict();
    return served(entry, maxAge);
  }

  /**
   * Marks every entry for `target` not fresh (§5.9.1.1/2/4): those with an ETag stay for
   * revalidation, the others are removed. Returns how many entries were affected.
   */
  invalidate(target: string): number {
    const entries = this.byTarget.get(target);
    if (!entries) return 0;
    const now = this.now();
    let n = 0;
    for (const e of [...entries]) {
      n++;
      if (e.etag === undefined) this.remove(e);
      else e.expiresAt = Math.min(e.expiresAt, now);
    }
    this.counters.invalidations += n;
    return n;
  }

  /** Applies §5.9.1.x to an unsafe request's response: call it for every forwarded non-GET/FETCH. */
  afterUnsafe(request: CoapMessage, target: string, response: CoapMessage): number {
    if (!invalidatesCache(request.code, response.code)) return 0;
    return invalidationTargets(target, response).reduce((n, t) => n + this.invalidate(t), 0);
  }

  clear(): void {
    this.lru.clear();
    this.newest = undefined;
    this.byKey.clear();
    this.byTarget.clear();
    this.bytes = 0;
  }

  stats(): CacheStats {
    return { entries: this.lru.size, bytes: this.bytes, ...this.counters };
  }

  // --- internals ---------------------------------------------------------------------------

  private insert(entry: Entry): void {
    this.lru.set(entry.id, entry);
    this.newest = entry;
    let variants = this.byKey.get(entry.key);
    if (!variants) this.byKey.set(entry.key, (variants = new Map()));
    variants.set(acceptTag(entry.accept), entry);
    let set = this.byTarget.get(entry.target);
    if (!set) this.byTarget.set(entry.target, (set = new Set()));
    set.add(entry);
    this.bytes += entry.size;
    this.evict();
  }

  private evict(): void {
    while (this.bytes > this.maxBytes) {
      const oldest = this.lru.values().next().value as Entry | undefined;
      if (!oldest) break;
      this.remove(oldest);
      this.counters.evictions++;
    }
  }

  private touch(entry: Entry): void {
    if (entry === this.newest) return;
    this.lru.delete(entry.id);
    this.lru.set(entry.id, entry);
    this.newest = entry;
  }

  private remove(entry: Entry): void {
    if (!this.lru.delete(entry.id)) return;
    if (entry === this.newest) this.newest = undefined;
    this.bytes -= entry.size;
    const variants = this.byKey.get(entry.key);
    variants?.delete(acceptTag(entry.accept));
    if (variants && variants.size === 0) this.byKey.delete(entry.key);
    const set = this.byTarget.get(entry.target);
    set?.delete(entry);
    if (set && set.size === 0) this.byTarget.delete(entry.target);
  }
}

const acceptTag = (accept: number | undefined): string => (accept === undefined ? '-' : String(accept));

/**
 * One variant of a cache key: the key leaves Accept out, and the cache holds one response per
 * Accept value under it (§5.6: a stored response is used only for a request it matches).
 */
export const variantKey = (key: string, accept: number | undefined): string => `${acceptTag(accept)}\u0000${key}`;

function blank(code: number): CoapMessage {
  return { type: 0, code, messageId: 0, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES };
}

/**
 * The entry's first fresh variant for a request with this Accept, in the order `variantsServing`
 * lists them. Allocates nothing: this runs for every cache hit.
 */
function freshVariant(variants: Map<string, Entry>, accept: number | undefined, now: number): Entry | undefined {
  const exact = variants.get(acceptTag(accept));
  if (exact && now < exact.expiresAt) return exact;
  if (accept === undefined) return undefined;
  for (const v of variants.values()) {
    if (v !== exact && now < v.expiresAt && servesAccept(v, accept)) return v;
  }
  return undefined;
}

/** The variants that may answer a request with this Accept: the one obtained with it first. */
function variantsServing(variants: Map<string, Entry>, accept: number | undefined): Entry[] {
  const exact = variants.get(acceptTag(accept));
  const candidates: Entry[] = exact ? [exact] : [];
  if (accept !== undefined) for (const v of variants.values()) if (v !== exact && servesAccept(v, accept)) candidates.push(v);
  return candidates;
}

/** PR2.5: a response obtained with another (or no) Accept serves if its Content-Format matches. */
const servesAccept = (entry: Entry, accept: number): boolean => entry.response.code === ResponseCode.Content && contentFormatOf(entry.response) === accept;

/** A copy to serve: the stored response with Max-Age set to the remaining freshness (PR2.4). */
function served(entry: Entry, maxAge: number): CoapMessage {
  let last = entry.served;
  if (last === undefined || last.maxAge !== maxAge || last.response !== entry.response) {
    const withMaxAge: CoapMessage = { ...entry.response, options: entry.response.options.slice() };
    setOption(withMaxAge, OptionNumber.MaxAge, encodeUint(maxAge));
    entry.served = last = { response: entry.response, maxAge, options: withMaxAge.options };
  }
  // Callers own what they get (the exchange sets type, ID and token; a layer may add options).
  // Spelled out rather than spread: this runs for every hit, and a literal is the cheaper copy.
  const { type, code, messageId, token, payload } = entry.response;
  return { type, code, messageId, token, options: last.options.slice(), payload };
}

function sizeOf(id: string, response: CoapMessage): number {
  let size = ENTRY_OVERHEAD + id.length * 2 + response.payload.byteLength;
  for (const o of response.options) size += OPTION_OVERHEAD + o.value.byteLength;
  return size;
}
