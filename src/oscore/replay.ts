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

export class ReplayWindow {
  readonly size: number;
  #initialised: boolean;
  /** The highest accepted sequence number, or -1 when none was accepted. */
  #highest = -1;
  /**
   * The accepted sequence numbers of the window as a bit ring: sequence number s is bit s mod
   * #ringBits. Bits are cleared as the window moves past them, so within `size` of #highest a set
   * bit means accepted. (A BigInt shifted per request cost three 1024-bit allocations at the
   * benchmark's window size: issue 21.)
   */
  readonly #ring: Uint32Array;
  readonly #ringBits: number;
  /**
   * Appendix B.1.2's "lower limit of the Replay Window": the sequence number initialiseAt() was
   * given. Below it, only a request proven fresh (by an Echo value issued since the restart) is
   * accepted; -1 when there is none.
   */
  #lowerLimit = -1;

  constructor(size = 32, options: { initialised?: boolean } = {}) {
    if (!Number.isInteger(size) || size < 1 || size > 4096) throw new RangeError(`replay window size must be 1-4096, not ${size}`);
    this.size = size;
    this.#ring = new Uint32Array(Math.ceil(size / 32));
    this.#ringBits = this.#ring.length * 32;
    this.#initialised = options.initialised ?? true;
  }

  /** False after a restart (or reset()) until initialiseAt(): Appendix B.1.2. */
  get initialised(): boolean {
    return this.#initialised;
  }

  /** The highest sequence number accepted so far, if any. */
  get highest(): number | undefined {
    return this.#highest < 0 ? undefined : this.#highest;
  }

  /**
   * `provenFresh`: the request carried an Echo value this server issued since the window's state
   * was lost, so the client made it after the restart (RFC 9175 §2.3) and it cannot be a request
   * from before; only B.1.2's lower limit is waived for it, never the window.
   */
  verdict(seq: number, provenFresh = false): ReplayVerdict {
    if (!Number.isSafeInteger(seq) || seq < 0 || seq > MAX_SEQUENCE_NUMBER) return 'invalid';
    if (!this.#initialised) return 'uninitialised';
    if (seq > this.#highest) return 'fresh';
    const offset = this.#highest - seq;
    if (offset >= this.size) return 'too-old';
    if (this.#isSet(seq)) return 'replayed';
    return seq < this.#lowerLimit && !provenFresh ? 'too-old' : 'fresh';
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
    this.#initialised = true;
    this.#ring.fill(0);
    this.#highest = seq;
    this.#set(seq);
    this.#lowerLimit = seq;
  }

  /**
   * @internal The whole state as numbers and the bit ring's words, so a context kept as bytes while
   * idle (context-table.ts) can put the window away and bring it back exactly: §7.4's "replay
   * protection" must not change because a device's context was out of memory for a while.
   */
  saveTo(header: Float64Array, at: number, words: Uint32Array, wordsAt: number): void {
    header[at] = this.#initialised ? 1 : 0;
    header[at + 1] = this.#highest;
    header[at + 2] = this.#lowerLimit;
    words.set(this.#ring, wordsAt);
  }

  /** @internal A window of `size` with the state saveTo() wrote. */
  static restoreFrom(size: number, header: Float64Array, at: number, words: Uint32Array, wordsAt: number): ReplayWindow {
    const window = new ReplayWindow(size, { initialised: header[at] === 1 });
    window.#highest = header[at + 1]!;
    window.#lowerLimit = header[at + 2]!;
    window.#ring.set(words.subarray(wordsAt, wordsAt + window.#ring.length));
    return window;
  }

  /** Forgets everything; the window is uninitialised until initialiseAt() (state loss, §7.5). */
  reset(): void {
    this.#initialised = false;
    this.#highest = -1;
    this.#ring.fill(0);
    this.#lowerLimit = -1;
  }

  #mark(seq: number): void {
    if (seq > this.#highest) {
      // The numbers the window moves past (highest, seq) were never accepted: clear their bits,
      // which may still hold numbers a ring's length older.
      if (seq - this.#highest >= this.#ringBits) this.#ring.fill(0);
      else for (let s = this.#highest + 1; s < seq; s++) this.#clear(s);
      this.#highest = seq;
    }
    this.#set(seq);
  }

  #isSet(seq: number): boolean {
    const bit = seq % this.#ringBits;
    return (this.#ring[bit >>> 5]! & (1 << (bit & 31))) !== 0;
  }

  #set(seq: number): void {
    const bit = seq % this.#ringBits;
    this.#ring[bit >>> 5]! |= 1 << (bit & 31);
  }

  #clear(seq: number): void {
    const bit = seq % this.#ringBits;
    this.#ring[bit >>> 5]! &= ~(1 << (bit & 31));
  }
}
