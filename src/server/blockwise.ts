/**
 * Server side of RFC 7959. Block1: request bodies are reassembled per operation — the requesting
 * endpoint plus every option except Block1/Block2/Size1/Size2 and elective NoCacheKey ones, so
 * Request-Tag separates concurrent operations (RFC 9175 §3.3) — answering 2.31 Continue, 4.08 for
 * gaps and 4.13 with Size1 beyond the limit. Block2: large representations are sliced; blocks after
 * the first come from a short-lived copy of the representation so a changing resource still yields
 * consistent blocks (§2.4), and every sliced response carries an ETag.
 *
 * BERT (RFC 8323 §6): where the requester's connection allows it (the caller passes the payload
 * limit of one BERT block), a Block1 with SZX 7 is reassembled by 1024-byte units, and a response
 * is cut into BERT blocks — asked for with SZX 7, or unasked when the request named no block size
 * and the server prefers 1024-byte blocks — each as many whole units as the peer's
 * Max-Message-Size allows (stream/bert.ts). Without that limit (UDP, DTLS) nothing here uses SZX 7.
 */
import { createHash } from 'node:crypto';
import { BERT_SZX, MAX_SZX, blockSize, blockUnit, encodeBlock, type BlockValue } from '../coap/block.js';
import { ResponseCode } from '../coap/codes.js';
import { encodeUint, getOption, setOption, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber, isCritical, isNoCacheKey } from '../coap/options.js';
import { BERT_UNIT, sliceBert } from '../stream/bert.js';

/**
 * Everything here is state a peer makes the server allocate, so everything is bounded twice: in
 * total, and per peer (one endpoint, address and port: what RFC 7252 and this stack call a peer),
 * so that one client cannot take what every other client needs (issue 17 items 5 and 6).
 */
export interface BlockwiseLimits {
  /** Largest request body reassembled, bytes. Default 4 MiB. */
  maxBodySize: number;
  /** All partial bodies together, bytes. Default 64 MiB. When full, the least recently active ones go. */
  reassemblyBudget: number;
  /** Concurrent Block1 operations. Default 1024. When full, the least recently active one goes. */
  maxOperations: number;
  /**
   * Concurrent Block1 operations of one peer. A peer starting one more gives up its least recently
   * active one (as a client that restarted would want). Default 8.
   */
  maxOperationsPerPeer: number;
  /** Partial bodies of one peer together, bytes; beyond it, its oldest other uploads go. Default 8 MiB (two largest bodies). */
  peerReassemblyBudget: number;
  /** A partial body is dropped this long after its latest block, ms (§2.5: EXCHANGE_LIFETIME). */
  lifetime: number;
  /** Representations kept for Block2 follow-up requests. Default 256. */
  maxRepresentations: number;
  /** Representations kept, bytes together; the least recently used go first. Default 64 MiB. */
  representationBudget: number;
  /** Representations kept for one peer. Default 32. */
  maxRepresentationsPerPeer: number;
  /** Representations kept for one peer, bytes; larger ones are sliced but not kept. Default 8 MiB. */
  peerRepresentationBudget: number;
  /** The server's preferred block size exponent (6 = 1024 bytes). */
  preferredSzx: number;
}

export const DEFAULT_BLOCKWISE_LIMITS: BlockwiseLimits = {
  maxBodySize: 4 << 20,
  reassemblyBudget: 64 << 20,
  maxOperations: 1024,
  maxOperationsPerPeer: 8,
  peerReassemblyBudget: 8 << 20,
  lifetime: 247_000,
  maxRepresentations: 256,
  representationBudget: 64 << 20,
  maxRepresentationsPerPeer: 32,
  peerRepresentationBudget: 8 << 20,
  preferredSzx: 6,
};

const IGNORED_IN_OPERATION_KEY = new Set<number>([OptionNumber.Block1, OptionNumber.Block2, OptionNumber.Size1, OptionNumber.Size2, OptionNumber.Observe]);

/** What identifies a block-wise operation: endpoint, method and the options that matter. */
export function operationKey(peerKey: string, message: CoapMessage, withPayload: boolean): string {
  let key = `${peerKey}|${message.code}`;
  for (const o of message.options) {
    if (IGNORED_IN_OPERATION_KEY.has(o.number)) continue;
    if (!isCritical(o.number) && isNoCacheKey(o.number)) continue;
    key += `|${o.number}:${Buffer.from(o.value).toString('hex')}`;
  }
  if (withPayload) key += `|${Buffer.from(message.payload).toString('hex')}`;
  return key;
}

interface Reassembly {
  key: string;
  peer: PeerShare<Reassembly>;
  chunks: Buffer[];
  length: number;
  contentFormat: number | undefined;
  expiresAt: number;
}

export type Block1Outcome =
  | { kind: 'continue'; response: ControlResponse }
  | { kind: 'complete'; body: Buffer; block1: Uint8Array }
  | { kind: 'error'; response: ControlResponse };

export interface ControlResponse {
  code: number;
  payload?: string;
  options: CoapOption[];
}

interface Representation {
  key: string;
  peer: PeerShare<Representation>;
  code: number;
  payload: Buffer;
  options: CoapOption[];
  etag: Uint8Array;
  expiresAt: number;
}

/** One peer's entries (least recently used first) and the bytes they hold. */
interface PeerShare<T> {
  readonly peer: string;
  readonly entries: Map<string, T>;
  bytes: number;
}

/** Per-peer shares, created on first use and dropped when empty: no state for peers holding nothing. */
class PeerShares<T> {
  private readonly byPeer = new Map<string, PeerShare<T>>();

  of(peer: string): PeerShare<T> {
    let share = this.byPeer.get(peer);
    if (!share) {
      share = { peer, entries: new Map(), bytes: 0 };
      this.byPeer.set(peer, share);
    }
    return share;
  }

  /** The peer's share if it holds anything; evict through this, then take `of` — an emptied share is released. */
  peek(peer: string): PeerShare<T> | undefined {
    return this.byPeer.get(peer);
  }

  release(share: PeerShare<T>): void {
    if (share.entries.size === 0 && this.byPeer.get(share.peer) === share) this.byPeer.delete(share.peer);
  }

  get size(): number {
    return this.byPeer.size;
  }
}

export class BlockwiseServer {
  private readonly reassemblies = new Map<string, Reassembly>();
  private reassembledBytes = 0;
  private readonly reassemblyShares = new PeerShares<Reassembly>();
  private readonly representations = new Map<string, Representation>();
  private representedBytes = 0;
  private readonly representationShares = new PeerShares<Representation>();

  constructor(
    readonly limits: BlockwiseLimits,
    private readonly now: () => number,
  ) {}

  /**
   * Processes one Block1 request (descriptive usage, §2.3). `peer` names the requesting endpoint
   * for the per-peer quotas; `key` the operation (see operationKey).
   */
  receiveBlock1(peer: string, key: string, block: BlockValue, payload: Uint8Array, contentFormat: number | undefined, size1: number | undefined): Block1Outcome {
    this.expire();
    // A BERT block (only here if the connection allows BERT) is acknowledged as BERT (§6.2, Figure 14).
    const bert = block.szx === BERT_SZX;
    const szx = bert ? BERT_SZX : Math.min(block.szx, this.limits.preferredSzx);
    const unit = blockUnit(block.szx);
    const control = (more: boolean): Uint8Array => encodeBlock({ num: block.num, more, szx }, { bert });
    const tooLarge = (): Block1Outcome => {
      this.drop(key);
      return {
        kind: 'error',
        response: { code: ResponseCode.RequestEntityTooLarge, payload: `request body larger than ${this.limits.maxBodySize} bytes`, options: [{ number: OptionNumber.Size1, value: encodeUint(this.limits.maxBodySize) }] },
      };
    };
    const incomplete = (reason: string): Block1Outcome => ({
      kind: 'error',
      response: { code: ResponseCode.RequestEntityIncomplete, payload: reason, options: [{ number: OptionNumber.Block1, value: control(false) }] },
    });

    if (bert && block.more && (payload.length === 0 || payload.length % BERT_UNIT !== 0)) {
      return { kind: 'error', response: { code: ResponseCode.BadRequest, payload: `BERT block ${block.num} carries ${payload.length} bytes, not whole 1024-byte units (RFC 8323 §6)`, options: [] } };
    }
    if (!bert && block.more && payload.length !== blockSize(block.szx)) {
      return { kind: 'error', response: { code: ResponseCode.BadRequest, payload: `block ${block.num} carries ${payload.length} bytes, not ${blockSize(block.szx)} (RFC 7959 §2.3)`, options: [] } };
    }
    if (size1 !== undefined && size1 > this.limits.maxBodySize) return tooLarge();

    let op = this.reassemblies.get(key);
    if (block.num === 0) {
      // A new operation overwrites an old one from the same endpoint (§2.5, RFC 9175 §3.3).
      if (op) this.drop(key);
      if (!block.more) return { kind: 'complete', body: Buffer.from(payload), block1: control(false) };
      // The peer's own quota first: past it, its least recently active upload makes room, so one
      // peer's abandoned (or hostile) transfers never reach into what other peers need.
      const own = this.reassemblyShares.peek(peer);
      while (own && own.entries.size >= this.limits.maxOperationsPerPeer) this.drop(own.entries.keys().next().value!);
      if (!this.makeRoom(1, payload.length, undefined)) {
        return { kind: 'error', response: { code: ResponseCode.ServiceUnavailable, payload: 'too many block-wise transfers in progress', options: [{ number: OptionNumber.MaxAge, value: encodeUint(5) }] } };
      }
      // Taken after the evictions: one that emptied the peer's share released it.
      const share = this.reassemblyShares.of(peer);
      op = { key, peer: share, chunks: [], length: 0, contentFormat, expiresAt: 0 };
      this.reassemblies.set(key, op);
      share.entries.set(key, op);
    } else if (!op) {
      return incomplete(`block ${block.num} arrived without the blocks before it`);
    } else if (op.length !== block.num * unit) {
      return incomplete(`expected the block at offset ${op.length}, got block ${block.num} of size ${unit}`);
    } else if (op.contentFormat !== contentFormat) {
      // §2.3: blocks with mismatching Content-Format MUST NOT be assembled into one request.
      this.drop(key);
      return incomplete('Content-Format changed within the transfer');
    }
    if (op.length + payload.length > this.limits.maxBodySize) return tooLarge();
    // Past the peer's byte quota, its other uploads (least recently active first) make room.
    const share = op.peer;
    for (const other of share.entries.values()) {
      if (share.bytes + payload.length <= this.limits.peerReassemblyBudget) break;
      if (other !== op) this.drop(other.key);
    }
    if (!this.makeRoom(0, payload.length, op) || share.bytes + payload.length > this.limits.peerReassemblyBudget) {
      this.drop(key);
      return { kind: 'error', response: { code: ResponseCode.RequestEntityTooLarge, payload: 'no room for more request bodies now', options: [{ number: OptionNumber.Block1, value: control(false) }] } };
    }
    op.chunks.push(Buffer.from(payload));
    op.length += payload.length;
    this.reassembledBytes += payload.length;
    share.bytes += payload.length;
    op.expiresAt = this.now() + this.limits.lifetime;
    // Keep the maps in expiry (and activity) order: re-insert on every block.
    this.reassemblies.delete(key);
    this.reassemblies.set(key, op);
    share.entries.delete(key);
    share.entries.set(key, op);
    if (block.more) {
      return { kind: 'continue', response: { code: ResponseCode.Continue, options: [{ number: OptionNumber.Block1, value: control(true) }] } };
    }
    const body = Buffer.concat(op.chunks, op.length);
    this.drop(key);
    return { kind: 'complete', body, block1: control(false) };
  }

  /**
   * Room in the shared pool for `operations` more operations and `bytes` more bytes. When it is
   * full, the least recently active uploads of any peer (other than `keep`) make room: an upload
   * in progress sends a block every round trip, so what goes is what was abandoned — where a 5.03
   * would let anyone holding the pool (many source ports, each within its quota) lock every other
   * client out for EXCHANGE_LIFETIME. False only if the request alone exceeds the pool.
   */
  private makeRoom(operations: number, bytes: number, keep: Reassembly | undefined): boolean {
    const full = (): boolean => this.reassemblies.size + operations > this.limits.maxOperations || this.reassembledBytes + bytes > this.limits.reassemblyBudget;
    for (const oldest of this.reassemblies.values()) {
      if (!full()) return true;
      if (oldest !== keep) this.drop(oldest.key);
    }
    return !full();
  }

  /**
   * Slices `response` when its payload exceeds the block size, or when the client asked for a
   * specific block. Returns the response to send (mutated in place). `bertLimit`: the payload of
   * one BERT block, when the requester's connection allows BERT.
   */
  sliceBlock2(peer: string, key: string | (() => string), response: CoapMessage, requested: BlockValue | undefined, bertLimit?: number): CoapMessage {
    if (this.usesBert(requested, bertLimit)) {
      const num = requested?.num ?? 0;
      if (response.payload.length <= bertLimit && num === 0) {
        if (requested) setOption(response, OptionNumber.Block2, encodeBlock({ num: 0, more: false, szx: BERT_SZX }, { bert: true }));
        return response;
      }
      const etag = getOption(response, OptionNumber.ETag) ?? weakEtag(response.payload);
      if (!getOption(response, OptionNumber.ETag)) setOption(response, OptionNumber.ETag, etag);
      this.remember(peer, typeof key === 'string' ? key : key(), response, etag);
      return this.cutBert(response, Buffer.from(response.payload), num, bertLimit);
    }
    const szx = Math.min(requested?.szx ?? this.limits.preferredSzx, this.limits.preferredSzx);
    const size = blockSize(szx);
    const num = requested?.num ?? 0;
    if (response.payload.length <= size && num === 0) {
      if (requested) setOption(response, OptionNumber.Block2, encodeBlock({ num: 0, more: false, szx }));
      return response;
    }
    const etag = getOption(response, OptionNumber.ETag) ?? weakEtag(response.payload);
    if (!getOption(response, OptionNumber.ETag)) setOption(response, OptionNumber.ETag, etag);
    this.remember(peer, typeof key === 'string' ? key : key(), response, etag);
    return this.cut(response, Buffer.from(response.payload), num, szx);
  }

  /**
   * BERT for this response: the connection allows it, and the request asked for it (SZX 7) or
   * named no block size while this server prefers the largest blocks.
   */
  private usesBert(requested: BlockValue | undefined, bertLimit: number | undefined): bertLimit is number {
    if (bertLimit === undefined) return false;
    return requested === undefined ? this.limits.preferredSzx === MAX_SZX : requested.szx === BERT_SZX;
  }

  /** A later block from the stored representation, if it is still here (§2.4). */
  servedFromStore(key: string, requested: BlockValue, template: CoapMessage, bertLimit?: number): CoapMessage | undefined {
    const stored = this.representations.get(key);
    if (!stored || stored.expiresAt < this.now()) return undefined;
    stored.expiresAt = this.now() + this.limits.lifetime;
    // Most recently used last, in both orders eviction follows.
    this.representations.delete(key);
    this.representations.set(key, stored);
    stored.peer.entries.delete(key);
    stored.peer.entries.set(key, stored);
    template.code = stored.code;
    template.options = stored.options.map((o) => o);
    if (this.usesBert(requested, bertLimit)) return this.cutBert(template, stored.payload, requested.num, bertLimit);
    const szx = Math.min(requested.szx, this.limits.preferredSzx);
    return this.cut(template, stored.payload, requested.num, szx);
  }

  private cut(response: CoapMessage, body: Buffer, num: number, szx: number): CoapMessage {
    const size = blockSize(szx);
    const start = num * size;
    if (start >= body.length && !(start === 0 && body.length === 0)) return beyondTheEnd(response, num, body.length);
    const more = start + size < body.length;
    response.payload = body.subarray(start, start + size);
    setOption(response, OptionNumber.Block2, encodeBlock({ num, more, szx }));
    // §4: the size indication goes with the first block.
    if (num === 0) setOption(response, OptionNumber.Size2, encodeUint(body.length));
    return response;
  }

  /** The BERT block of `body` at unit `num` (RFC 8323 §6.1, Figure 13): as many whole 1024-byte units as `limit` allows. */
  private cutBert(response: CoapMessage, body: Buffer, num: number, limit: number): CoapMessage {
    if (num * BERT_UNIT >= body.length && !(num === 0 && body.length === 0)) return beyondTheEnd(response, num, body.length);
    const { block, payload } = sliceBert(body, num, limit);
    response.payload = payload;
    setOption(response, OptionNumber.Block2, encodeBlock(block, { bert: true }));
    if (num === 0) setOption(response, OptionNumber.Size2, encodeUint(body.length));
    return response;
  }

  /**
   * Keeps the representation for the follow-up blocks, within the total and the peer's byte and
   * count budgets; least recently used ones (the peer's own first) make room. One that cannot fit
   * the peer's budget is not kept: its later blocks are rendered anew (a changed one is caught by
   * its ETag, §2.4).
   */
  private remember(peer: string, key: string, response: CoapMessage, etag: Uint8Array): void {
    this.forget(key);
    const size = response.payload.length;
    if (size > this.limits.peerRepresentationBudget || size > this.limits.representationBudget) return;
    const own = this.representationShares.peek(peer);
    while (own && own.entries.size > 0 && (own.entries.size >= this.limits.maxRepresentationsPerPeer || own.bytes + size > this.limits.peerRepresentationBudget)) {
      this.forget(own.entries.keys().next().value!);
    }
    while (this.representations.size > 0 && (this.representations.size >= this.limits.maxRepresentations || this.representedBytes + size > this.limits.representationBudget)) {
      this.forget(this.representations.keys().next().value!);
    }
    // Taken after the evictions: one that emptied the peer's share released it.
    const share = this.representationShares.of(peer);
    const representation: Representation = {
      key,
      peer: share,
      code: response.code,
      payload: Buffer.from(response.payload),
      options: response.options.filter((o) => o.number !== OptionNumber.Observe && o.number !== OptionNumber.Block2 && o.number !== OptionNumber.Size2),
      etag,
      expiresAt: this.now() + this.limits.lifetime,
    };
    this.representations.set(key, representation);
    this.representedBytes += size;
    share.entries.set(key, representation);
    share.bytes += size;
  }

  private forget(key: string): void {
    const r = this.representations.get(key);
    if (!r) return;
    this.representations.delete(key);
    this.representedBytes -= r.payload.length;
    r.peer.entries.delete(key);
    r.peer.bytes -= r.payload.length;
    this.representationShares.release(r.peer);
  }

  private drop(key: string): void {
    const op = this.reassemblies.get(key);
    if (!op) return;
    this.reassembledBytes -= op.length;
    this.reassemblies.delete(key);
    op.peer.entries.delete(key);
    op.peer.bytes -= op.length;
    this.reassemblyShares.release(op.peer);
  }

  /** Drops partial bodies and stored representations whose lifetime ran out. */
  expire(): void {
    const now = this.now();
    for (const [key, op] of this.reassemblies) {
      if (op.expiresAt > now) break; // insertion order is expiry order
      this.drop(key);
    }
    for (const [key, r] of this.representations) {
      if (r.expiresAt >= now) break; // every use re-inserts: insertion order is expiry order
      this.forget(key);
    }
  }

  stats(): { reassemblies: number; reassembledBytes: number; representations: number; representedBytes: number; peers: number } {
    return {
      reassemblies: this.reassemblies.size,
      reassembledBytes: this.reassembledBytes,
      representations: this.representations.size,
      representedBytes: this.representedBytes,
      peers: Math.max(this.reassemblyShares.size, this.representationShares.size),
    };
  }
}

/** The answer to a Block2 request for a block past the end of the representation: 4.02 Bad Option, plain or BERT alike. */
function beyondTheEnd(response: CoapMessage, num: number, length: number): CoapMessage {
  response.code = ResponseCode.BadOption;
  response.options = [];
  response.payload = Buffer.from(`block ${num} lies beyond the ${length}-byte representation`);
  return response;
}

/** A 4-byte entity-tag derived from the representation, for responses whose handler set none. */
function weakEtag(payload: Uint8Array): Uint8Array {
  return createHash('sha256').update(payload).digest().subarray(0, 4);
}
