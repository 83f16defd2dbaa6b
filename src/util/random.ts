/**
 * Randomness for tokens, Message ID starts and retransmission jitter. Tokens come from the OS CSPRNG
 * (RFC 9175 §4.2 asks for unpredictable tokens); a pool amortises the crypto call over many tokens.
 * Tests inject a deterministic source.
 */
// The Web Crypto API's CSPRNG: global in Node >= 19 and in browsers, so the browser build
// (src/browser/) shares this source. One call fills at most 65536 bytes (its quota).
const fill = <T extends Uint8Array>(bytes: T): T => {
  for (let at = 0; at < bytes.length; at += 65536) globalThis.crypto.getRandomValues(bytes.subarray(at, at + 65536));
  return bytes;
};

export interface RandomSource {
  /** Fresh random bytes (a new array each call). */
  bytes(n: number): Uint8Array;
  /** Uniform in [0, 1). */
  float(): number;
}

const POOL_SIZE = 4096;

export class CryptoRandom implements RandomSource {
  private pool = new Uint8Array(0);
  private offset = POOL_SIZE;

  bytes(n: number): Uint8Array {
    if (n > POOL_SIZE) return fill(new Uint8Array(n));
    if (this.offset + n > POOL_SIZE) {
      // Refill into a new buffer: handed-out slices must never change underneath their holders.
      this.pool = fill(new Uint8Array(POOL_SIZE));
      this.offset = 0;
    }
    const out = this.pool.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  float(): number {
    return Math.random();
  }
}

/** Deterministic xorshift source for lockstep tests. Not for production use. */
export class SeededRandom implements RandomSource {
  constructor(private state = 0x2545f491) {}

  private next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }

  float(): number {
    return this.next() / 0x100000000;
  }
}

export const defaultRandom: RandomSource = new CryptoRandom();
