/**
 * The deduplication records of RFC 7252 §4.5 for messages already answered: what a duplicate is
 * compared with (Message ID, token, code, type) and the reply a duplicate CON gets again (the ACK,
 * empty or piggybacked, or the RST). They are kept for EXCHANGE_LIFETIME (NON_LIFETIME for a NON),
 * which at a few thousand messages per second means 10^5 records or more.
 *
 * They are kept as a struct of arrays in a ring, in the order they were answered, with no heap
 * object per record: records that live seconds to minutes would otherwise each be a few objects
 * surviving into the old generation, where collecting them costs every message a share of a
 * major GC (about a quarter of a server's CPU per request at 60,000 requests/s). Each owner (a
 * peer) indexes its records by Message ID in a Map of small integers.
 *
 * The ring is answer-ordered, not expiry-ordered: a NON record (shorter lifetime) behind a CON
 * record waits for it. Records are never forgotten before their lifetime ends, at most
 * EXCHANGE_LIFETIME − NON_LIFETIME after it, or earlier only when the capacity is reached (the
 * oldest go first, as §4.5 permits: deduplication is best effort within memory bounds).
 */
import { copyBytes } from '../util/bytes.js';

/** Message ID → slot index: a Map, or MessageIdSlots. */
export interface SlotIndex {
  readonly size: number;
  get(messageId: number): number | undefined;
  set(messageId: number, slot: number): unknown;
  delete(messageId: number): unknown;
}

/** What holds records: a peer, with its Message ID → slot index. */
export interface RecordOwner {
  readonly answered: SlotIndex;
}

/** Live records from which a peer's index is a flat array, and below which it is a Map again. */
const DENSE_FROM = 16_384;
const SPARSE_BELOW = 8_192;

/**
 * A peer's Message ID → slot index. A Map while the peer has few records; a flat array of all
 * 65,536 Message IDs (256 KiB) once it has many, as a busy client at thousands of requests per
 * second has for EXCHANGE_LIFETIME: a Map of tens of thousands of integer keys cost ≈ 250 ns of
 * lookups, inserts and deletes per answered request (issue 21, the server fast path), the array
 * ≈ 15 ns. The thresholds bound the arrays: each array's peer holds at least SPARSE_BELOW of the
 * ring's records, so there are at most capacity / 8,192 arrays (12 at the default capacity), and
 * their 32 bytes per record are about what the Map's entries cost.
 */
export class MessageIdSlots implements SlotIndex {
  private sparse: Map<number, number> | undefined = new Map();
  /** Slot + 1 by Message ID; 0: none. */
  private dense: Int32Array | undefined = undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(messageId: number): number | undefined {
    const dense = this.dense;
    if (dense === undefined) return this.sparse!.get(messageId);
    const entry = dense[messageId]!;
    return entry === 0 ? undefined : entry - 1;
  }

  set(messageId: number, slot: number): void {
    const dense = this.dense;
    if (dense !== undefined) {
      if (dense[messageId] === 0) this.count++;
      dense[messageId] = slot + 1;
      return;
    }
    const sparse = this.sparse!;
    sparse.set(messageId, slot);
    this.count = sparse.size;
    if (this.count >= DENSE_FROM) {
      const flat = new Int32Array(0x10000);
      for (const [id, at] of sparse) flat[id] = at + 1;
      this.dense = flat;
      this.sparse = undefined;
    }
  }

  delete(messageId: number): void {
    const dense = this.dense;
    if (dense === undefined) {
      const sparse = this.sparse!;
      sparse.delete(messageId);
      this.count = sparse.size;
      return;
    }
    if (dense[messageId] === 0) return;
    dense[messageId] = 0;
    if (--this.count >= SPARSE_BELOW) return;
    const sparse = new Map<number, number>();
    for (let id = 0; id < dense.length; id++) if (dense[id] !== 0) sparse.set(id, dense[id]! - 1);
    this.sparse = sparse;
    this.dense = undefined;
  }
}

const TOKEN_BYTES = 8;
/** Replies up to this size are copied into the ring; longer ones are kept as their buffer. */
const INLINE_REPLY_BYTES = 64;
const NO_REPLY = -1;
const FIRST_ALLOCATION = 256;

export class AnsweredRecords<Owner extends RecordOwner> {
  private allocated = 0;
  private head = 0;
  private count = 0;
  /** Records that are their owner's current record for their Message ID (the rest were replaced by a reuse of the ID). */
  private liveCount = 0;
  private owners: (Owner | undefined)[] = [];
  private messageIds = new Uint16Array(0);
  /** code << 2 | type */
  private kinds = new Uint16Array(0);
  private tokenLengths = new Uint8Array(0);
  private tokens = new Uint8Array(0);
  private expiries = new Float64Array(0);
  /** Reply length, or NO_REPLY. */
  private replyLengths = new Int32Array(0);
  private inlineReplies = new Uint8Array(0);
  /** Replies longer than INLINE_REPLY_BYTES, by slot. */
  private readonly longReplies = new Map<number, Uint8Array>();

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError('capacity must be at least 1');
  }

  /** Records held, including those a reuse of their Message ID replaced. */
  get size(): number {
    return this.count;
  }

  /** Records that a duplicate can still match. */
  get live(): number {
    return this.liveCount;
  }

  /**
   * Records an answered message; it replaces the owner's record for the same Message ID. At
   * capacity the oldest record goes first and its owner is returned (to be forgotten if idle).
   */
  add(owner: Owner, messageId: number, code: number, type: number, token: Uint8Array, reply: Uint8Array | undefined, expiresAt: number): Owner | undefined {
    let evicted: Owner | undefined;
    if (this.count === this.capacity) evicted = this.evictOldest();
    else if (this.count === this.allocated) this.grow();
    let slot = this.head + this.count;
    if (slot >= this.allocated) slot -= this.allocated;
    this.count++;
    this.owners[slot] = owner;
    this.messageIds[slot] = messageId;
    this.kinds[slot] = (code << 2) | type;
    this.tokenLengths[slot] = token.length;
    // Byte loops: a token (≤ 8 bytes) and a short reply cost less copied by hand than through
    // TypedArray#set's argument checks, which ran once or twice per answered message (issue 21).
    const tokens = this.tokens;
    const tokenAt = slot * TOKEN_BYTES;
    for (let i = 0; i < token.length; i++) tokens[tokenAt + i] = token[i]!;
    this.expiries[slot] = expiresAt;
    if (reply === undefined) this.replyLengths[slot] = NO_REPLY;
    else {
      const length = reply.length;
      this.replyLengths[slot] = length;
      if (length <= INLINE_REPLY_BYTES) {
        const replies = this.inlineReplies;
        const replyAt = slot * INLINE_REPLY_BYTES;
        for (let i = 0; i < length; i++) replies[replyAt + i] = reply[i]!;
      } else this.longReplies.set(slot, reply);
    }
    if (owner.answered.get(messageId) === undefined) this.liveCount++;
    owner.answered.set(messageId, slot);
    return evicted;
  }

  /** The owner's record of a message equal to this one (§4.5: same Message ID, token, code and type), or -1. */
  find(owner: Owner, messageId: number, code: number, type: number, token: Uint8Array): number {
    const slot = owner.answered.get(messageId);
    if (slot === undefined || this.kinds[slot] !== ((code << 2) | type) || this.tokenLengths[slot] !== token.length) return -1;
    const at = slot * TOKEN_BYTES;
    for (let i = 0; i < token.length; i++) if (this.tokens[at + i] !== token[i]) return -1;
    return slot;
  }

  /** A copy of the reply recorded in `slot` (the datagram may be queued while the ring moves on), or undefined. */
  reply(slot: number): Buffer | undefined {
    const length = this.replyLengths[slot]!;
    if (length === NO_REPLY) return undefined;
    if (length > INLINE_REPLY_BYTES) return copyBytes(this.longReplies.get(slot)!) as Buffer;
    const at = slot * INLINE_REPLY_BYTES;
    return copyBytes(this.inlineReplies.subarray(at, at + length)) as Buffer;
  }

  /** Forgets the records expired at `now`, oldest first; `forgotten` hears each owner that lost one. */
  expire(now: number, forgotten: (owner: Owner) => void): void {
    while (this.count > 0 && this.expiries[this.head]! <= now) forgotten(this.evictOldest());
  }

  /** Forgets every record. */
  clear(): void {
    while (this.count > 0) this.evictOldest();
  }

  private evictOldest(): Owner {
    const slot = this.head;
    const owner = this.owners[slot]!;
    const messageId = this.messageIds[slot]!;
    if (owner.answered.get(messageId) === slot) {
      owner.answered.delete(messageId);
      this.liveCount--;
    }
    this.owners[slot] = undefined;
    if (this.replyLengths[slot]! > INLINE_REPLY_BYTES) this.longReplies.delete(slot);
    this.head = slot + 1 === this.allocated ? 0 : slot + 1;
    this.count--;
    return owner;
  }

  /**
   * Doubles the arrays (up to the capacity), copying the records in ring order to the start, so
   * memory follows the load. It runs only when the ring is full, so the records are the slots from
   * the head to the end and then those before it: two bulk copies per array. The owners' indexes
   * change only for records that moved, i.e. only when the head was not at slot 0 (after expiries).
   */
  private grow(): void {
    const size = Math.min(this.capacity, Math.max(FIRST_ALLOCATION, this.allocated * 2));
    const head = this.head;
    const end = this.allocated;
    const owners: (Owner | undefined)[] = new Array(size).fill(undefined);
    for (let i = 0; i < this.count; i++) owners[i] = this.owners[(head + i) % end];
    const messageIds = ringToStart(this.messageIds, new Uint16Array(size), head, end, 1);
    this.kinds = ringToStart(this.kinds, new Uint16Array(size), head, end, 1);
    this.tokenLengths = ringToStart(this.tokenLengths, new Uint8Array(size), head, end, 1);
    this.tokens = ringToStart(this.tokens, new Uint8Array(size * TOKEN_BYTES), head, end, TOKEN_BYTES);
    this.expiries = ringToStart(this.expiries, new Float64Array(size), head, end, 1);
    this.replyLengths = ringToStart(this.replyLengths, new Int32Array(size), head, end, 1);
    this.inlineReplies = ringToStart(this.inlineReplies, new Uint8Array(size * INLINE_REPLY_BYTES), head, end, INLINE_REPLY_BYTES);
    if (head !== 0) {
      const moved = [...this.longReplies].map(([slot, reply]) => [(slot - head + end) % end, reply] as const);
      this.longReplies.clear();
      for (const [slot, reply] of moved) this.longReplies.set(slot, reply);
      for (let i = 0; i < this.count; i++) {
        const from = (head + i) % end;
        const owner = owners[i]!;
        if (owner.answered.get(messageIds[i]!) === from) owner.answered.set(messageIds[i]!, i);
      }
    }
    this.owners = owners;
    this.messageIds = messageIds;
    this.allocated = size;
    this.head = 0;
  }
}

type NumberArray = Uint8Array | Uint16Array | Int32Array | Float64Array;

/** A full ring's `from` (records of `width` elements, slots head..end-1 then 0..head-1) copied in that order to the start of `to`. */
function ringToStart<T extends NumberArray>(from: T, to: T, head: number, end: number, width: number): T {
  to.set(from.subarray(head * width, end * width), 0);
  to.set(from.subarray(0, head * width), (end - head) * width);
  return to;
}
