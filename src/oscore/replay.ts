/**
 * The server's Replay Window (RFC 8613 §7.4, §3.2.2): the anti-replay sliding window of RFC 6347
 * §4.1.2.6 over received Partial IVs, default size 32.
 *
 * `accept` is the atomic validate-and-update of §7.4 ("The operation of validating the Partial IV
 * and updating the replay protection MUST be atomic"); call it only after the request decrypted
 * (§8.2 step 6), and act on the request only when it returns true. `check` is the side-effect-free
 * pre-test of §8.2 step 3.
 *
 * After a reboot the window's state is lost (§7.5, Appendix B.1.2): a window made with
 * `{ initialised: false }` (or after `reset()`) accepts nothing until the caller, having verified a
 * request as fresh with an Echo round trip, calls `initialiseAt(thatRequestsSequenceNumber)`.
 *
 * 'too-old' means "cannot tell": below the window, or below B.1.2's lower limit, a sequence number
 * may or may not have been received. 'replayed' means it certainly was.
 */
import { MAX_SEQUENCE_NUMBER } from './option.js';

export type ReplayVerdict = 'fresh' | 'replayed' | 'too-old' | 'uninitialised' | 'invalid';

/**
 * @internal Where windows keep their state: per window, three numbers in `header` from its offset
 * (initialised 1/0, the highest accepted sequence number or -1, B.1.2's lower limit or -1) and its
 * bit ring in `words`. A server with a context per device keeps every device's window in one slab of
 * its context table (context-table.ts), so a device's window is read and written in place whichever
 * object of its context serves the request: nothing is copied out or in when the object is put
 * away or made again. The slab may replace its arrays by larger ones, so a window reads them from
 * here on every use.
 */
export interface WindowSlots {
  readonly header: Float64Array;
  readonly words: Uint32Array;
  /**
   * Per slot, bumped when the slot is freed for another window (a removed context's): a window
   * made on the slot before then throws instead of reading or writing another device's state.
   * Undefined for storage that is never given away.
   */
  readonly generations: Uint32Array | undefined;
}

/** A window's own storage (every window outside a context table). */
class OwnSlots implements WindowSlots {
  readonly header = new Float64Array(3);
  readonly words: Uint32Array;
  readonly generations = undefined;
  constructor(words: number) {
    this.words = new Uint32Array(words);
  }
}

const INITIALISED = 0;
const HIGHEST = 1;
const LOWER_LIMIT = 2;

export class ReplayWindow {
  readonly size: number;
  readonly #slots: WindowSlots;
  /** Where this window's numbers start in the header, and its ring in the words. */
  #at: number;
  #wordsAt: number;
  /**
   * The accepted sequence numbers of the window as a bit ring: sequence number s is bit s mod
   * #ringBits. Bits are cleared as the window moves past them, so within `size` of the highest a
   * set bit means accepted. (A BigInt shifted per request cost three 1024-bit allocations at the
   * benchmark's window size: issue 21.)
   */
  readonly #ringWords: number;
  readonly #ringBits: number;
  /** Its slot (-1: own storage), and the slot's generation when this window was placed on it. */
  #slot: number;
  #generation: number;
  readonly #headerStride: number;

  /**
   * `placement` (@internal, context-table.ts): the window lives at slot `slot` of `slots` (header
   * offset `slot * headerStride`, ring at `slot * ringWords`) and starts from whatever is there; the
   * caller has set the slot up. Otherwise the window has its own storage.
   */
  constructor(size = 32, options: { initialised?: boolean } = {}, placement?: { slots: WindowSlots; slot: number; headerStride: number }) {
    if (!Number.isInteger(size) || size < 1 || size > 4096) throw new RangeError(`replay window size must be 1-4096, not ${size}`);
    this.size = size;
    this.#ringWords = ringWordsFor(size);
    this.#ringBits = this.#ringWords * 32;
    if (placement === undefined) {
      this.#slots = new OwnSlots(this.#ringWords);
      this.#at = 0;
      this.#wordsAt = 0;
      this.#slot = -1;
      this.#generation = 0;
      this.#headerStride = 0;
      const header = this.#slots.header;
      header[INITIALISED] = (options.initialised ?? true) ? 1 : 0;
      header[HIGHEST] = -1;
      header[LOWER_LIMIT] = -1;
    } else {
      this.#slots = placement.slots;
      this.#at = placement.slot * placement.headerStride;
      this.#wordsAt = placement.slot * this.#ringWords;
      this.#slot = placement.slot;
      this.#generation = placement.slots.generations?.[placement.slot] ?? 0;
      this.#headerStride = placement.headerStride;
    }
  }

  /**
   * @internal Moves a window placed on a slot to another slot of the same storage (context-table.ts
   * reuses the window object of a context it put away for the next one; the context that held it
   * gave it up first). From here on it is that slot's window, whatever was there before.
   */
  moveTo(slot: number): void {
    if (this.#slot < 0) throw new Error('only a window placed on a slot moves');
    this.#slot = slot;
    this.#at = slot * this.#headerStride;
    this.#wordsAt = slot * this.#ringWords;
    this.#generation = this.#slots.generations?.[slot] ?? 0;
  }

  /** @internal Sets up a slot for a window of `size` that has seen nothing (see the constructor's placement). */
  static clearSlot(size: number, slots: WindowSlots, slot: number, headerStride: number, initialised: boolean): void {
    const at = slot * headerStride;
    slots.header[at + INITIALISED] = initialised ? 1 : 0;
    slots.header[at + HIGHEST] = -1;
    slots.header[at + LOWER_LIMIT] = -1;
    const words = ringWordsFor(size);
    slots.words.fill(0, slot * words, (slot + 1) * words);
  }

  /** @internal The ring words a window of `size` takes. */
  static ringWords(size: number): number {
    return ringWordsFor(size);
  }

  /** The header, after checking the slot still holds this window's state (see WindowSlots.generations). */
  #header(): Float64Array {
    const slots = this.#slots;
    const generations = slots.generations;
    if (generations !== undefined && generations[this.#slot] !== this.#generation) throw new Error('this replay window belongs to a context that was removed');
    return slots.header;
  }

  /** False after a restart (or reset()) until initialiseAt(): Appendix B.1.2. */
  get initialised(): boolean {
    return this.#header()[this.#at + INITIALISED] === 1;
  }

  /** The highest sequence number accepted so far, if any. */
  get highest(): number | undefined {
    const highest = this.#header()[this.#at + HIGHEST]!;
    return highest < 0 ? undefined : highest;
  }

  /**
   * `provenFresh`: the request carried an Echo value this server issued since the window's state
   * was lost, so the client made it after the restart (RFC 9175 §2.3) and it cannot be a request
   * from before; only B.1.2's lower limit is waived for it, never the window.
   */
  verdict(seq: number, provenFresh = false): ReplayVerdict {
    if (!Number.isSafeInteger(seq) || seq < 0 || seq > MAX_SEQUENCE_NUMBER) return 'invalid';
    const header = this.#header();
    const at = this.#at;
    if (header[at + INITIALISED] !== 1) return 'uninitialised';
    const highest = header[at + HIGHEST]!;
    if (seq > highest) return 'fresh';
    const offset = highest - seq;
    if (offset >= this.size) return 'too-old';
    if (this.#isSet(seq)) return 'replayed';
    return seq < header[at + LOWER_LIMIT]! && !provenFresh ? 'too-old' : 'fresh';
  }

  /** Whether `seq` would be accepted now (no state change). */
  check(seq: number, provenFresh = false): boolean {
    return this.verdict(seq, provenFresh) === 'fresh';
  }

  /** Marks `seq` received if it is acceptable; returns whether it was (false: drop the request). */
  accept(seq: number, provenFresh = false): boolean {
    if (this.verdict(seq, provenFresh) !== 'fresh') return false;
    this.#mark(seq);
    return true;
  }

  /**
   * Appendix B.1.2: "the Partial IV of the second request is set as the lower limit of the Replay
   * Window". `seq` itself counts as received (its request is the one being processed); below it,
   * a request is accepted only when proven fresh (see verdict): after a restart, concurrent
   * requests of one client carry Echo values too, and reach the server in any order.
   */
  initialiseAt(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq < 0 || seq > MAX_SEQUENCE_NUMBER) throw new RangeError(`invalid sequence number ${seq}`);
    const header = this.#header();
    header[this.#at + INITIALISED] = 1;
    this.#fillRing();
    header[this.#at + HIGHEST] = seq;
    this.#set(seq);
    header[this.#at + LOWER_LIMIT] = seq;
  }

  /** Forgets everything; the window is uninitialised until initialiseAt() (state loss, §7.5). */
  reset(): void {
    const header = this.#header();
    header[this.#at + INITIALISED] = 0;
    header[this.#at + HIGHEST] = -1;
    this.#fillRing();
    header[this.#at + LOWER_LIMIT] = -1;
  }

  #fillRing(): void {
    this.#slots.words.fill(0, this.#wordsAt, this.#wordsAt + this.#ringWords);
  }

  #mark(seq: number): void {
    const header = this.#slots.header;
    const highest = header[this.#at + HIGHEST]!;
    if (seq > highest) {
      // The numbers the window moves past (highest, seq) were never accepted: clear their bits,
      // which may still hold numbers a ring's length older.
      if (seq - highest >= this.#ringBits) this.#fillRing();
      else for (let s = highest + 1; s < seq; s++) this.#clear(s);
      header[this.#at + HIGHEST] = seq;
    }
    this.#set(seq);
  }

  #isSet(seq: number): boolean {
    const bit = seq % this.#ringBits;
    return (this.#slots.words[this.#wordsAt + (bit >>> 5)]! & (1 << (bit & 31))) !== 0;
  }

  #set(seq: number): void {
    const bit = seq % this.#ringBits;
    this.#slots.words[this.#wordsAt + (bit >>> 5)]! |= 1 << (bit & 31);
  }

  #clear(seq: number): void {
    const bit = seq % this.#ringBits;
    this.#slots.words[this.#wordsAt + (bit >>> 5)]! &= ~(1 << (bit & 31));
  }
}

const ringWordsFor = (size: number): number => Math.ceil(size / 32);
