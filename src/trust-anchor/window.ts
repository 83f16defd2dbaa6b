/**
 * Sequence-number freshness for the trust-anchor modes (draft §2.4): a sliding receive window in
 * the style of RFC 2401 Appendix C / RFC 4303 Appendix A. The right edge is the highest sequence
 * number of a successful handshake (or revocation); bit i of the mask says whether right − i was
 * used. Sequence number 0 is the initial right edge and counts as used, so a TA issues 1, 2, ….
 *
 * `check` never changes state (it runs before the key is derived); `mark` is called only after the
 * handshake succeeded, or for a revocation.
 */
export const DEFAULT_WINDOW = 64;
export const MIN_WINDOW = 32;
export const MAX_SEQUENCE_NUMBER = 0xffff_ffff;

export type WindowVerdict = 'fresh' | 'replayed' | 'left-of-window' | 'invalid';

export interface WindowState {
  size: number;
  right: number;
  /** The bit mask as a hex string (bit 0 = right edge). */
  mask: string;
}

export class SlidingWindow {
  readonly size: number;
  private right = 0;
  private mask = 1n;
  private readonly full: bigint;

  constructor(size: number = DEFAULT_WINDOW) {
    if (!Number.isInteger(size) || size < MIN_WINDOW || size > 4096) throw new RangeError(`window size must be an integer in [${MIN_WINDOW}, 4096], got ${size}`);
    this.size = size;
    this.full = (1n << BigInt(size)) - 1n;
  }

  static restore(state: WindowState): SlidingWindow {
    const w = new SlidingWindow(state.size);
    if (!Number.isInteger(state.right) || state.right < 0 || state.right > MAX_SEQUENCE_NUMBER) throw new RangeError('bad window right edge');
    if (!/^[0-9a-f]+$/.test(state.mask)) throw new RangeError('bad window mask');
    w.right = state.right;
    w.mask = BigInt(`0x${state.mask}`) & w.full;
    return w;
  }

  state(): WindowState {
    return { size: this.size, right: this.right, mask: this.mask.toString(16) };
  }

  /** The highest sequence number seen (the right edge). */
  get highest(): number {
    return this.right;
  }

  check(seq: number): WindowVerdict {
    if (!Number.isInteger(seq) || seq < 0 || seq > MAX_SEQUENCE_NUMBER) return 'invalid';
    if (seq > this.right) return 'fresh';
    const offset = this.right - seq;
    if (offset >= this.size) return 'left-of-window';
    return (this.mask >> BigInt(offset)) & 1n ? 'replayed' : 'fresh';
  }

  /** Marks `seq` used (after a successful handshake, or a revocation). Returns false if it was not fresh. */
  mark(seq: number): boolean {
    if (this.check(seq) !== 'fresh') return false;
    if (seq > this.right) {
      const shift = seq - this.right;
      this.mask = shift >= this.size ? 1n : ((this.mask << BigInt(shift)) | 1n) & this.full;
      this.right = seq;
    } else {
      this.mask |= 1n << BigInt(this.right - seq);
    }
    return true;
  }
}
