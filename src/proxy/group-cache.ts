/**
 * Cached responses to group requests (draft-ietf-core-groupcomm-proxy §7): one entry per server
 * per request, holding that server's latest response "as it comes" (Reply-From included, §5.4.1
 * step 1), fresh for its Max-Age (RFC 7252 §5.6.1; 60 s when absent).
 *
 * §7.1: the proxy answers a group request from the cache alone only when it knows every server
 * currently in the group (`members`, configured: how the proxy learns them is out of the draft's
 * scope) and holds a fresh response of each — the set J is then "complete" (§7.3), and gets an
 * entity-tag: the client may revalidate the whole set with Group-ETag and get one 2.03.
 *
 * The entity-tag is a hash of J's responses and origins: it changes whenever an entry of J
 * changes its representation (§7.3 "MUST update ... when one of its cache entry is updated"), and
 * stays when a server sends the same representation again — which is what makes revalidation worth
 * anything. Responses that carry OSCORE are never stored: a protected response answers one request
 * only (§7.4; deterministic requests, which lift that, are cacheable-oscore's, not this cache's).
 * Bounded: `maxRequests` request keys, `maxServers` entries per key; the oldest key goes first.
 */
import { createHash } from 'node:crypto';
import { encodeMessage } from '../coap/codec.js';
import { ResponseCode } from '../coap/codes.js';
import { encodeUint, getOption, getUintOption, setOption, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber, isNoCacheKey } from '../coap/options.js';
import { peerKey, type PeerAddress } from '../transport/transport.js';
import { forwardable } from './observe-relay.js';

export interface GroupCacheOptions {
  /** §7.1: the servers now in `group` (coap://ADDR:PORT) as "ADDR:PORT"; undefined when not known. */
  members: (group: string) => readonly string[] | undefined;
  /** Milliseconds (the proxy's scheduler clock). */
  now: () => number;
  /** Request keys kept at most. Default 256. */
  maxRequests?: number;
  /** Servers per request kept at most. Default 64. */
  maxServers?: number;
}

interface Entry {
  readonly response: CoapMessage;
  readonly expires: number;
}

/** A complete set J (§7.3): every member's fresh response, Max-Age set to what is left, and J's entity-tag. */
export interface CompleteSet {
  readonly etag: Uint8Array;
  readonly responses: CoapMessage[];
}

/** RFC 7252 §5.10.5: Max-Age default. */
const DEFAULT_MAX_AGE = 60;

export class GroupResponseCache {
  readonly #options: GroupCacheOptions;
  readonly #entries = new Map<string, Map<string, Entry>>();

  constructor(options: GroupCacheOptions) {
    this.#options = options;
  }

  /** The cache key of a request as the group gets it (§7: RFC 7252 §5.6's Cache-Key rules; NoCacheKey options left out). */
  key(group: string, code: number, options: readonly CoapOption[], payload: Uint8Array): string {
    const parts = [group, String(code)];
    for (const o of options) if (!isNoCacheKey(o.number)) parts.push(`${o.number}=${Buffer.from(o.value).toString('hex')}`);
    parts.push(Buffer.from(payload).toString('hex'));
    return parts.join('|');
  }

  /** §7: "each of such multiple responses is stored in the cache entry associated with the server 'as it comes'". */
  store(key: string, origin: PeerAddress, response: CoapMessage): void {
    const maxAge = getUintOption(response, OptionNumber.MaxAge) ?? DEFAULT_MAX_AGE;
    const servers = this.#entries.get(key);
    if (response.code !== ResponseCode.Content || maxAge === 0 || getOption(response, OptionNumber.Oscore) !== undefined) {
      servers?.delete(peerKey(origin));
      return;
    }
    let entries = servers;
    if (entries === undefined) {
      if (this.#entries.size >= (this.#options.maxRequests ?? 256)) this.#entries.delete(this.#entries.keys().next().value!);
      this.#entries.set(key, (entries = new Map()));
    }
    if (!entries.has(peerKey(origin)) && entries.size >= (this.#options.maxServers ?? 64)) return;
    entries.set(peerKey(origin), { response: forwardable(response), expires: this.#options.now() + maxAge * 1000 });
  }

  /** §7.1/§7.3: the complete set J for this request, if the proxy knows the group's members and holds a fresh response of each. */
  complete(key: string, group: string): CompleteSet | undefined {
    const members = this.#options.members(group);
    const entries = this.#entries.get(key);
    if (members === undefined || members.length === 0 || entries === undefined) return undefined;
    const now = this.#options.now();
    const hash = createHash('sha256');
    const responses: CoapMessage[] = [];
    for (const member of [...members].sort()) {
      const entry = entries.get(member);
      if (entry === undefined || entry.expires <= now) return undefined;
      const response = forwardable(entry.response);
      // §7 (RFC 7252 §5.6.1): served from the cache, Max-Age is what is left of the freshness.
      setOption(response, OptionNumber.MaxAge, encodeUint(Math.floor((entry.expires - now) / 1000)));
      const representation = encodeMessage({ ...entry.response, options: entry.response.options.filter((o) => o.number !== OptionNumber.MaxAge) });
      const length = Buffer.alloc(4);
      length.writeUInt32BE(representation.length);
      hash.update(`${member}\n`).update(length).update(representation);
      responses.push(response);
    }
    return { etag: new Uint8Array(hash.digest().subarray(0, 8)), responses };
  }
}
