/**
 * AES-CCM (RFC 3610, NIST SP 800-38C) composed from two long-lived AES cipher objects of Node's
 * crypto: an AES-CBC encryptor for the CBC-MAC and an AES-ECB encryptor for the CTR keystream.
 *
 * Why not `createCipheriv('aes-128-ccm', ...)` per message: CCM takes the nonce at construction,
 * so Node needs a new OpenSSL context (and key schedule) for every message, ≈ 4–5 µs before any
 * byte is encrypted. OSCORE (four AEAD calls per request/response) and DTLS record protection
 * (two per request) are dominated by that. Here the key is scheduled once per key, and a message
 * costs two `update` calls — one, the CBC-MAC, when the caller computed its CTR keystream ahead
 * together with other nonces' (`keystreams`), since each call costs ≈ 1 µs however few its
 * blocks. The block cipher is still OpenSSL's (AES-NI, constant time); only the CCM mode around
 * it is ours, and test/aes-ccm.test.ts checks it against Node's own CCM for every
 * parameter set used here, byte for byte, including rejection of every single-bit change.
 *
 * The CBC-MAC needs a zero IV per message, but a CBC cipher object keeps chaining across `update`
 * calls: its state after a message is the last ciphertext block C. CBC computes E(X ⊕ C) for the
 * next input X, so feeding B0 ⊕ C as the first block yields E(B0), exactly the CBC-MAC's first
 * step with a zero IV (RFC 3610 §2.2: X_1 := E(K, B_0)).
 */
import { createCipheriv, type Cipher } from 'node:crypto';

const BLOCK = 16;

/** Valid tag lengths M (RFC 3610 §2: 4, 6, ..., 16) and nonce lengths 15 − L for L = 2..8. */
const TAG_LENGTHS = new Set([4, 6, 8, 10, 12, 14, 16]);

/**
 * The keystream of one nonce within `keystreams()`'s output: `length` bytes from `at` in `bytes`.
 * A batch holds the next nonces' keystreams after it, which must never serve this nonce's message.
 */
export interface KeystreamSlice {
  readonly bytes: Uint8Array;
  readonly at: number;
  readonly length: number;
}

export class AesCcm {
  readonly tagLength: number;
  readonly nonceLength: number;
  /** L: bytes of the message-length field and of the counter (RFC 3610 §2). */
  readonly #lengthBytes: number;
  readonly #maxPlaintext: number;
  /** A copy of the key, for usesKey. */
  readonly #key: Uint8Array;
  readonly #cbc: Cipher;
  readonly #ecb: Cipher;
  /** The CBC encryptor's chaining value: the last block it output (initially the IV, zero), at #chainAt. */
  #chain: Buffer = Buffer.alloc(BLOCK);
  #chainAt = 0;
  /** Where #streamFor's keystream starts in the buffer it returned. */
  #streamAt = 0;
  /**
   * Formatted input for the two `update` calls, reused: `update` consumes its input before it
   * returns, so one scratch buffer per instance saves two allocations per message. Grows as needed.
   */
  #scratch: Buffer = Buffer.alloc(8 * BLOCK);
  /** Views of the scratch buffer's first 16·i bytes, by i: `update` takes exactly the bytes to process. */
  #scratchViews: Buffer[] = [];
  /** Keystreams of the nonces after a counted one (keystreamAhead), while this instance holds a batch slot. */
  #ahead: AheadBatch | undefined;
  /** What keystreamAhead returns, updated in place: sealInto and open read it at once. */
  readonly #aheadSlice = new MutableSlice();

  constructor(key: Uint8Array, tagLength: number, nonceLength: number) {
    checkCcmParameters(key.length, tagLength, nonceLength);
    this.tagLength = tagLength;
    this.nonceLength = nonceLength;
    this.#lengthBytes = 15 - nonceLength;
    this.#maxPlaintext = maxPlaintextOf(nonceLength);
    this.#key = new Uint8Array(key);
    const bits = key.length * 8;
    this.#cbc = createCipheriv(`aes-${bits}-cbc`, key, this.#chain);
    this.#cbc.setAutoPadding(false);
    this.#ecb = createCipheriv(`aes-${bits}-ecb`, key, null);
    this.#ecb.setAutoPadding(false);
  }

  /**
   * Whether this instance was made with `key`'s bytes. In JavaScript: `Buffer.equals` is a native
   * call that cost ≈ 0.25 µs per OSCORE message under load (issue 21), more than these 16–32
   * bytes compared here. Both are keys this process holds, so no peer can time the loop.
   */
  usesKey(key: Uint8Array): boolean {
    const own = this.#key;
    if (own.length !== key.length) return false;
    for (let i = 0; i < own.length; i++) if (own[i] !== key[i]) return false;
    return true;
  }

  /** ciphertext || tag. Throws RangeError on a nonce of the wrong length or an oversized message. `keystream` as for sealInto. */
  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, keystream?: KeystreamSlice): Buffer {
    const out = Buffer.allocUnsafe(plaintext.length + this.tagLength);
    this.sealInto(out, 0, nonce, aad, plaintext, keystream);
    return out;
  }

  /**
   * The keystream of `nonce` for a message of `length` bytes, from a batch computed together with
   * the keystreams of the nonces that follow it, or undefined when the message is too long to
   * batch. For nonces that end in a counter: the last `counterBytes` bytes of `nonce` are a fixed
   * mask XOR `counter` (big-endian), as RFC 8613 §5.2's nonces hold the Partial IV, so the next
   * messages' nonces are the same with counter + 1, + 2, ... A miss (no batch, another key's
   * counter range, a nonce not predicted) computes a batch from this nonce on: one AES call for
   * AHEAD nonces instead of one per message (each call costs ≈ 1 µs however few its blocks).
   *
   * A keystream is a function of the key and the nonce alone, and it is found by comparing the
   * whole nonce with the one it was computed for, so a wrong `counter` only costs a miss; the
   * ciphertext is the same as without a batch. Precomputing does not make a nonce seal twice: that
   * stays the caller's rule (OSCORE's sequence numbers and replay window). The returned slice is
   * reused by the next call.
   */
  keystreamAhead(nonce: Uint8Array, counter: number, counterBytes: number, length: number): KeystreamSlice | undefined {
    const blocks = 1 + Math.ceil(length / BLOCK);
    if (blocks > AHEAD_MAX_BLOCKS || nonce.length !== this.nonceLength || counterBytes < 1 || counterBytes > 6 || counterBytes > this.nonceLength) return undefined;
    if (!Number.isSafeInteger(counter) || counter < 0) return undefined;
    const call = ++AesCcm.#calls;
    const recent = call - this.#lastCall <= AHEAD_SLOTS;
    this.#lastCall = call;
    let batch = this.#ahead;
    let k = batch === undefined ? -1 : counter - batch.first;
    if (batch === undefined || k < 0 || k >= AHEAD || batch.blocks < blocks || !batch.holds(k, nonce)) {
      // A key not used within the last AHEAD_SLOTS calls of any instance (a key's first message, or
      // one device among thousands) gets no batch: its slot would be taken before its next message,
      // so 15 of the 16 keystreams would be computed for nothing. The caller computes just this one.
      if (!recent) return undefined;
      batch = this.#computeAhead(nonce, counter, counterBytes, Math.max(blocks, AHEAD_MIN_BLOCKS));
      k = 0;
    }
    const slice = this.#aheadSlice;
    slice.bytes = batch.streams;
    slice.at = k * batch.blocks * BLOCK;
    slice.length = batch.blocks * BLOCK;
    return slice;
  }

  /** A new batch: the nonces of counter, counter + 1, ... and their keystreams, in this instance's slot. */
  #computeAhead(nonce: Uint8Array, counter: number, counterBytes: number, blocks: number): AheadBatch {
    const n = this.nonceLength;
    const nonces = new Uint8Array(AHEAD * n);
    for (let k = 0; k < AHEAD; k++) {
      const at = k * n;
      for (let i = 0; i < n; i++) nonces[at + i] = nonce[i]!;
      // The counter field: mask XOR counter, so XOR-ing in counter XOR (counter + k) gives mask XOR (counter + k).
      let from = counter;
      let to = counter + k;
      for (let i = 0; i < counterBytes; i++) {
        nonces[at + n - 1 - i]! ^= (from % 256) ^ (to % 256);
        from = Math.floor(from / 256);
        to = Math.floor(to / 256);
      }
    }
    const batch = new AheadBatch(counter, blocks, nonces, this.keystreams(nonces, blocks), n);
    if (this.#ahead === undefined) AesCcm.#takeSlot(this);
    this.#ahead = batch;
    return batch;
  }

  /**
   * Batches are bounded across all instances (a server may hold a key per device): the AHEAD_SLOTS
   * instances that computed a batch most recently keep theirs; taking a slot drops the oldest
   * holder's batch (it computes a new one on its next counted message).
   */
  static #slots: (AesCcm | undefined)[] = [];
  /** keystreamAhead calls of all instances so far, and this instance's latest: how recently it was used, in calls. */
  static #calls = 0;
  #lastCall = -Infinity;
  static #nextSlot = 0;
  static #takeSlot(instance: AesCcm): void {
    const evicted = AesCcm.#slots[AesCcm.#nextSlot];
    if (evicted !== undefined) evicted.#ahead = undefined;
    AesCcm.#slots[AesCcm.#nextSlot] = instance;
    AesCcm.#nextSlot = (AesCcm.#nextSlot + 1) % AHEAD_SLOTS;
  }

  /**
   * Writes ciphertext || tag into `out` at `offset`; returns the offset after the tag.
   * `keystream`, if given, is `keystreams()`'s output for this very nonce (S_0 || S_1 || ...); it
   * is used when it covers the message, which spares the AES call for the CTR part.
   */
  sealInto(out: Uint8Array, offset: number, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, keystream?: KeystreamSlice): number {
    this.#check(nonce, plaintext.length);
    const n = plaintext.length;
    const mac = this.#cbcMac(nonce, aad, plaintext);
    const macAt = this.#chainAt;
    const stream = this.#streamFor(nonce, n, keystream);
    const at = this.#streamAt;
    for (let i = 0; i < n; i++) out[offset + i] = plaintext[i]! ^ stream[at + BLOCK + i]!;
    // RFC 3610 §2.3: U := T XOR first-M-bytes( S_0 ).
    for (let i = 0; i < this.tagLength; i++) out[offset + n + i] = mac[macAt + i]! ^ stream[at + i]!;
    return offset + n + this.tagLength;
  }

  /**
   * The plaintext of `ciphertext` (tag excluded) authenticated by `tag`, or undefined when it does
   * not authenticate or any length is wrong. Never throws: the input comes from the network.
   * `keystream` as for sealInto.
   */
  open(nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, keystream?: KeystreamSlice): Buffer | undefined {
    if (tag.length !== this.tagLength) return undefined;
    return this.#open(nonce, aad, ciphertext, 0, ciphertext.length, tag, 0, keystream, Buffer.allocUnsafe(ciphertext.length));
  }

  /**
   * open() for a message stored as ciphertext || tag in `data`, the ciphertext `length` bytes from
   * `at` (the tag follows it): spares the caller a view per message. `keystream` as for sealInto.
   */
  openAt(nonce: Uint8Array, aad: Uint8Array, data: Uint8Array, at: number, length: number, keystream?: KeystreamSlice): Buffer | undefined {
    if (at < 0 || length < 0 || at + length + this.tagLength > data.length) return undefined;
    return this.#open(nonce, aad, data, at, length, data, at + length, keystream, Buffer.allocUnsafe(length));
  }

  /**
   * openAt() with the plaintext in a plain Uint8Array (not a Buffer), for callers that hand it on
   * as one (COSE, OSCORE), which would otherwise make a view of the Buffer per message (issue 21).
   */
  openAtBytes(nonce: Uint8Array, aad: Uint8Array, data: Uint8Array, at: number, length: number, keystream?: KeystreamSlice): Uint8Array | undefined {
    if (at < 0 || length < 0 || at + length + this.tagLength > data.length) return undefined;
    return this.#open(nonce, aad, data, at, length, data, at + length, keystream, pooledBytes(length));
  }

  /** seal() into a plain Uint8Array (not a Buffer), as openAtBytes. */
  sealBytes(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, keystream?: KeystreamSlice): Uint8Array {
    const out = pooledBytes(plaintext.length + this.tagLength);
    this.sealInto(out, 0, nonce, aad, plaintext, keystream);
    return out;
  }

  /** `plaintext`: n bytes to decrypt into, handed out only when the tag matches. */
  #open<T extends Uint8Array>(
    nonce: Uint8Array,
    aad: Uint8Array,
    source: Uint8Array,
    at: number,
    n: number,
    tag: Uint8Array,
    tagAt: number,
    keystream: KeystreamSlice | undefined,
    plaintext: T,
  ): T | undefined {
    if (nonce.length !== this.nonceLength || n > this.#maxPlaintext) return undefined;
    const stream = this.#streamFor(nonce, n, keystream);
    const from = this.#streamAt;
    for (let i = 0; i < n; i++) plaintext[i] = source[at + i]! ^ stream[from + BLOCK + i]!;
    const mac = this.#cbcMac(nonce, aad, plaintext);
    const macAt = this.#chainAt;
    // RFC 3610 §2.5: the decrypted message is released only when the tag matches. Constant time:
    // every byte is compared, differences are OR-ed together, no branch depends on them.
    let difference = 0;
    for (let i = 0; i < this.tagLength; i++) difference |= (mac[macAt + i]! ^ stream[from + i]!) ^ tag[tagAt + i]!;
    return difference === 0 ? plaintext : undefined;
  }

  /**
   * S_0 || S_1 || ... for a message of n bytes, at #streamAt in the returned buffer: the given
   * keystream when it covers the message, else computed (one AES call).
   */
  #streamFor(nonce: Uint8Array, n: number, keystream: KeystreamSlice | undefined): Uint8Array {
    if (keystream !== undefined && keystream.length >= BLOCK + n) {
      this.#streamAt = keystream.at;
      return keystream.bytes;
    }
    this.#streamAt = 0;
    return this.#keystream(nonce, n);
  }

  /**
   * The CTR keystreams S_0 || S_1 || ... || S_{blocks−1} of several nonces, given back to back in
   * `nonces` (a multiple of nonceLength bytes), `blocks`·16 bytes per nonce in that order, from one
   * AES call: lets a caller that knows its next nonces (DTLS records: the sequence number counts
   * up) pay the per-call cost once for many messages. Each nonce's part is for that nonce only; a
   * nonce must still never seal two messages.
   */
  keystreams(nonces: Uint8Array, blocks: number): Buffer {
    if (!Number.isInteger(blocks) || blocks < 1) throw new RangeError(`keystream blocks must be a positive integer, got ${blocks}`);
    const n = this.nonceLength;
    if (nonces.length === 0 || nonces.length % n !== 0) throw new RangeError(`AES-CCM keystreams need a whole number of ${n}-byte nonces, got ${nonces.length} bytes`);
    const count = nonces.length / n;
    const total = count * blocks * BLOCK;
    const counters = this.#scratchOf(total);
    for (let k = 0; k < count; k++) this.#writeCounters(counters, k * blocks * BLOCK, nonces, k * n, blocks);
    return this.#ecb.update(this.#scratchView(total));
  }

  #check(nonce: Uint8Array, length: number): void {
    if (nonce.length !== this.nonceLength) throw new RangeError(`AES-CCM needs a ${this.nonceLength}-byte nonce, got ${nonce.length} bytes`);
    if (length > this.#maxPlaintext) throw tooLong(this.nonceLength, length);
  }

  /**
   * T: the last block of the CBC-MAC over B_0 || encoded AAD || padding || plaintext || padding
   * (§2.2), at #chainAt in the returned buffer (a view per message would cost an allocation).
   */
  #cbcMac(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Buffer {
    const lengthBytes = this.#lengthBytes;
    const aadHeader = aad.length === 0 ? 0 : aad.length < 0xff00 ? 2 : 6;
    const aadPadded = roundUp(aadHeader + aad.length);
    const total = BLOCK + aadPadded + roundUp(plaintext.length);
    const input = this.#scratchOf(total);
    // Byte loops rather than Buffer's set/fill/write helpers: these messages are a few blocks,
    // where the helpers' argument checks cost more than the copying.
    // B_0 = Flags || Nonce N || l(m): Flags = 64·Adata + 8·M' + L', M' = (M−2)/2, L' = L−1.
    input[0] = (aad.length > 0 ? 0x40 : 0) | (((this.tagLength - 2) / 2) << 3) | (lengthBytes - 1);
    for (let i = 0; i < nonce.length; i++) input[1 + i] = nonce[i]!;
    writeLength(input, BLOCK - 1, lengthBytes, plaintext.length);
    let at = BLOCK;
    if (aad.length > 0) {
      // §2.2: l(a) as 2 bytes below 2^16 − 2^8, else 0xff 0xfe and 4 bytes.
      if (aadHeader === 2) {
        input[BLOCK] = aad.length >>> 8;
        input[BLOCK + 1] = aad.length & 0xff;
      } else {
        input[BLOCK] = 0xff;
        input[BLOCK + 1] = 0xfe;
        input.writeUInt32BE(aad.length, BLOCK + 2);
      }
      at += aadHeader;
      for (let i = 0; i < aad.length; i++) input[at + i] = aad[i]!;
      at += aad.length;
    }
    // The padding must be zero; everything else is overwritten.
    for (; at < BLOCK + aadPadded; at++) input[at] = 0;
    for (let i = 0; i < plaintext.length; i++) input[at + i] = plaintext[i]!;
    for (at += plaintext.length; at < total; at++) input[at] = 0;
    const chain = this.#chain;
    const chainAt = this.#chainAt;
    for (let i = 0; i < BLOCK; i++) input[i]! ^= chain[chainAt + i]!;
    const output = this.#cbc.update(this.#scratchView(total));
    this.#chain = output;
    this.#chainAt = total - BLOCK;
    return output;
  }

  /** S_0 || S_1 || ...: E(A_i) for the counter blocks A_i = Flags || Nonce N || Counter i (§2.3). */
  #keystream(nonce: Uint8Array, length: number): Buffer {
    const blocks = 1 + Math.ceil(length / BLOCK);
    const counters = this.#scratchOf(blocks * BLOCK);
    this.#writeCounters(counters, 0, nonce, 0, blocks);
    return this.#ecb.update(this.#scratchView(blocks * BLOCK));
  }

  /** A_0 .. A_{blocks−1} of the nonce at `nonces[from ..]` into `into` from `at`. */
  #writeCounters(into: Buffer, at: number, nonces: Uint8Array, from: number, blocks: number): void {
    const lengthBytes = this.#lengthBytes;
    const n = this.nonceLength;
    for (let b = 0; b < blocks; b++) {
      const block = at + b * BLOCK;
      into[block] = lengthBytes - 1;
      for (let i = 0; i < n; i++) into[block + 1 + i] = nonces[from + i]!;
      writeLength(into, block + BLOCK - 1, lengthBytes, b);
    }
  }

  /** The scratch buffer, at least `length` bytes (callers write every byte they pass on). */
  #scratchOf(length: number): Buffer {
    if (this.#scratch.length < length) {
      this.#scratch = Buffer.alloc(roundUp(length * 2));
      this.#scratchViews = [];
    }
    return this.#scratch;
  }

  /** The first `length` bytes (a multiple of 16) of the scratch buffer, as a view made once. */
  #scratchView(length: number): Buffer {
    return (this.#scratchViews[length / BLOCK] ??= this.#scratch.subarray(0, length));
  }
}

const roundUp = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

/** L = 15 − nonce length bytes of message length: 2^(8L) − 1, capped well below 2^53 (L ≥ 7 allows more than any datagram anyway). */
const maxPlaintextOf = (nonceLength: number): number => (nonceLength <= 9 ? 2 ** 48 - 1 : 2 ** (8 * (15 - nonceLength)) - 1);

const tooLong = (nonceLength: number, length: number): RangeError => new RangeError(`AES-CCM with a ${nonceLength}-byte nonce encrypts at most ${maxPlaintextOf(nonceLength)} bytes, got ${length}`);

/** Throws RangeError unless RFC 3610 §2 allows these sizes (key: AES-128/192/256). */
export function checkCcmParameters(keyLength: number, tagLength: number, nonceLength: number, plaintextLength = 0): void {
  if (keyLength !== 16 && keyLength !== 24 && keyLength !== 32) throw new RangeError(`AES-CCM needs a 16-, 24- or 32-byte key, got ${keyLength} bytes`);
  if (!TAG_LENGTHS.has(tagLength)) throw new RangeError(`AES-CCM tag length must be 4, 6, ..., 16 bytes, got ${tagLength}`);
  if (nonceLength < 7 || nonceLength > 13) throw new RangeError(`AES-CCM nonce length must be 7..13 bytes, got ${nonceLength}`);
  if (plaintextLength > maxPlaintextOf(nonceLength)) throw tooLong(nonceLength, plaintextLength);
}

/**
 * Plain Uint8Arrays for sealBytes/openAtBytes: views of a shared 8 KiB ArrayBuffer handed out in
 * turn, as Buffer.allocUnsafe does for Buffers (one object per message; the pool is replaced, not
 * reused, when full, so no two views overlap). Not `new Uint8Array(n)`: V8 keeps a small one on
 * its heap, and the first view of it (each option value the inner message decodes) moves its bytes
 * to a backing store of their own — measured slower than the Buffer and view it replaced.
 */
const POOL_BYTES = 8192;
let pool = new ArrayBuffer(POOL_BYTES);
let poolAt = 0;
export function pooledBytes(length: number): Uint8Array {
  if (length > POOL_BYTES >>> 2) return new Uint8Array(length);
  if (poolAt + length > POOL_BYTES) {
    pool = new ArrayBuffer(POOL_BYTES);
    poolAt = 0;
  }
  const out = new Uint8Array(pool, poolAt, length);
  // 8-byte aligned, as Buffer's pool.
  poolAt += (length + 7) & ~7;
  return out;
}

/** Nonces per keystreamAhead batch: one AES call per AHEAD counted messages of a key. */
const AHEAD = 16;
/** A batch's keystream blocks per nonce at least (S_0 and 48 bytes of message) and at most (240 bytes). */
const AHEAD_MIN_BLOCKS = 4;
const AHEAD_MAX_BLOCKS = 16;
/** Instances holding a batch at once (≈ 1.2 KB each at 4 blocks): bounded whatever the number of keys. */
const AHEAD_SLOTS = 256;

/** The keystreams of AHEAD consecutive counted nonces from `first`. */
class AheadBatch {
  constructor(
    readonly first: number,
    readonly blocks: number,
    readonly nonces: Uint8Array,
    readonly streams: Buffer,
    readonly nonceLength: number,
  ) {}

  /** Whether the k-th nonce of the batch is `nonce`, compared from its end (where nonces of a batch differ). */
  holds(k: number, nonce: Uint8Array): boolean {
    const n = this.nonceLength;
    const at = k * n;
    for (let i = n - 1; i >= 0; i--) if (this.nonces[at + i] !== nonce[i]) return false;
    return true;
  }
}

class MutableSlice implements KeystreamSlice {
  bytes: Uint8Array = new Uint8Array(0);
  at = 0;
  length = 0;
}

/** Writes `value` big-endian in the `bytes` bytes ending at `last` (every byte: the buffer is reused). */
function writeLength(buffer: Buffer, last: number, bytes: number, value: number): void {
  let v = value;
  for (let i = 0; i < bytes; i++) {
    buffer[last - i] = v % 256;
    v = Math.floor(v / 256);
  }
}
