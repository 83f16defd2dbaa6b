/**
 * AES-CCM under many keys (issue 21, many active devices): a server with an OSCORE context per
 * device uses two keys per device, and with thousands of devices active most keys come back only
 * after thousands of other keys' messages.
 *
 * An AesCcm instance (aes-ccm.ts) is the fast way for a key in steady use — its two cipher
 * objects schedule the key once, and a message costs one or two `update` calls — but making one
 * costs two `createCipheriv`, a scratch buffer and the objects around them (≈ 16 µs with its first
 * message, against 3.5 µs for a message of a warm instance and ≈ 7.5 µs for Node's own one-shot
 * `aes-128-ccm`, measured in BENCHMARKS.md "h21-devices"). A key used once every ten thousand
 * messages pays that every time and leaves the garbage to the scavenger. So a key gets an instance
 * only once it is seen to be in use: its first message goes through Node's one-shot CCM, and so
 * does any message of a key last seen more than `warm` one-shot messages ago; a key seen again
 * within that span gets an instance, found from then on by its key array (a WeakMap, as before) or, when
 * a context is made again with fresh arrays of the same key (context-table.ts), by its bytes in
 * one of `warm` slots.
 *
 * Both paths compute RFC 3610's CCM with the same key, nonce and AAD, so which one serves a message
 * changes nothing on the wire (test/aes-ccm-keys.test.ts checks both against each other and Node's
 * CCM). Nonces are the caller's, as for AesCcm: nothing here makes or reuses one.
 */
import { createCipheriv, createDecipheriv, type CipherCCMTypes } from 'node:crypto';
import { AesCcm, checkCcmParameters, pooledBytes } from './aes-ccm.js';

export interface AesCcmKeysOptions {
  /**
   * Slots for instances found by their key's bytes (one per slot, by a hash), and the span in
   * one-shot messages within which a key's second message makes it one. Default 2048: two keys
   * for each of the 1,024 contexts a ContextTable keeps active by default.
   */
  warm?: number;
  /**
   * Nonces end in a counter of this many bytes (RFC 8613 §5.2: the Partial IV in the last 5), so a
   * warm instance can compute the next counters' keystreams in one AES call (AesCcm.keystreamAhead)
   * when the caller passes the counter. Default: no counter.
   */
  counterBytes?: number;
}

const DEFAULT_WARM = 2048;

export class AesCcmKeys {
  readonly tagLength: number;
  readonly nonceLength: number;
  readonly #warm: number;
  readonly #counterBytes: number;
  /** Instances by key array (a kept context finds its key's instance without hashing it). */
  readonly #byArray = new WeakMap<Uint8Array, AesCcm>();
  /**
   * `warm` slots by a hash of the key's bytes (direct-mapped: no string or Map entry per message):
   * the instance made there last, and the key last sealed or opened one-shot there (its hash and
   * the one-shot count then, + 1; 0: none). A collision costs a one-shot message, never a wrong key
   * (an instance is used only after usesKey compares the bytes).
   */
  readonly #instances: (AesCcm | undefined)[];
  /**
   * The hash of each slot's instance's key: a key that is not the slot's is told by this number,
   * without reading the instance (with thousands of keys taking turns, an instance and its key are
   * rarely in the CPU's caches: reading them was 4.5 % of a server's profile, BENCHMARKS.md
   * h21-devices2). Equal hashes still compare the bytes.
   */
  readonly #instanceHash: Int32Array;
  readonly #seenHash: Int32Array;
  readonly #seenAt: Float64Array;
  #instanceCount = 0;
  #oneShots = 0;

  constructor(tagLength: number, nonceLength: number, options: AesCcmKeysOptions = {}) {
    checkCcmParameters(16, tagLength, nonceLength);
    const warm = options.warm ?? DEFAULT_WARM;
    if (!Number.isInteger(warm) || warm < 1) throw new RangeError(`AesCcmKeys keeps at least one warm key, not ${warm}`);
    this.tagLength = tagLength;
    this.nonceLength = nonceLength;
    this.#warm = warm;
    this.#counterBytes = options.counterBytes ?? 0;
    this.#instances = new Array<AesCcm | undefined>(warm).fill(undefined);
    this.#instanceHash = new Int32Array(warm);
    this.#seenHash = new Int32Array(warm);
    this.#seenAt = new Float64Array(warm);
  }

  /** Messages sealed or opened with Node's one-shot CCM so far (keys not in steady use). */
  get oneShots(): number {
    return this.#oneShots;
  }

  /** Slots holding an instance now (at most `warm`). */
  get warmKeys(): number {
    return this.#instanceCount;
  }

  /**
   * ciphertext || tag, as a plain Uint8Array. `counter`: the number in the nonce's last
   * `counterBytes` bytes (see the options), or undefined. Throws RangeError on a key, nonce or
   * message of the wrong size.
   */
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, counter?: number): Uint8Array {
    const ccm = this.#instanceFor(key);
    if (ccm === undefined) return this.#sealOnce(key, nonce, aad, plaintext);
    return ccm.sealBytes(nonce, aad, plaintext, this.#ahead(ccm, nonce, counter, plaintext.length));
  }

  /** The plaintext of ciphertext || tag, or undefined when it does not authenticate or any size is wrong. Never throws. */
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, counter?: number): Uint8Array | undefined {
    const n = sealed.length - this.tagLength;
    if (n < 0 || nonce.length !== this.nonceLength || !validKeyLength(key.length)) return undefined;
    const ccm = this.#instanceFor(key);
    if (ccm === undefined) return this.#openOnce(key, nonce, aad, sealed, n);
    return ccm.openAtBytes(nonce, aad, sealed, 0, n, this.#ahead(ccm, nonce, counter, n));
  }

  #ahead(ccm: AesCcm, nonce: Uint8Array, counter: number | undefined, length: number): ReturnType<AesCcm['keystreamAhead']> {
    return counter === undefined || this.#counterBytes === 0 ? undefined : ccm.keystreamAhead(nonce, counter, this.#counterBytes, length);
  }

  /**
   * The key's instance, or undefined when the key is not (yet) in steady use (see the module
   * comment). A context table lends its key arrays on to the next device's context
   * (context-table.ts), so an array's instance may be another key's now: told by usesKey, and the
   * array then forgotten, so that its next messages do not read that instance again (with
   * thousands of devices taking turns it is rarely in the CPU's caches: usesKey was 3.6 % of a
   * server's profile, h21-devices3).
   */
  #instanceFor(key: Uint8Array): AesCcm | undefined {
    const cached = this.#byArray.get(key);
    if (cached !== undefined) {
      if (cached.usesKey(key)) return cached;
      this.#byArray.delete(key);
    }
    const hash = fnv(key);
    const slot = (hash >>> 0) % this.#warm;
    let ccm = this.#instances[slot];
    if (ccm === undefined || this.#instanceHash[slot] !== hash || !ccm.usesKey(key)) {
      const seenAt = this.#seenAt[slot]!;
      // By bytes, not by array: a context made again from a table has fresh arrays. A key that
      // comes back only after `warm` others is one-shot again even if its context was kept: with
      // thousands of keys taking turns an instance per key is no cheaper than Node's one-shot CCM
      // and costs ≈ 2 KB each (BENCHMARKS.md h21-devices, floor-ours against floor-node).
      if (seenAt === 0 || this.#seenHash[slot] !== hash || this.#oneShots - (seenAt - 1) >= this.#warm) {
        this.#seenHash[slot] = hash;
        this.#seenAt[slot] = this.#oneShots + 1;
        return undefined;
      }
      this.#seenAt[slot] = 0;
      if (ccm === undefined) this.#instanceCount++;
      this.#instances[slot] = ccm = new AesCcm(key, this.tagLength, this.nonceLength);
      this.#instanceHash[slot] = hash;
    }
    this.#byArray.set(key, ccm);
    return ccm;
  }

  #sealOnce(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    checkCcmParameters(key.length, this.tagLength, nonce.length, plaintext.length);
    if (nonce.length !== this.nonceLength) throw new RangeError(`AES-CCM needs a ${this.nonceLength}-byte nonce, got ${nonce.length} bytes`);
    this.#oneShots++;
    const cipher = createCipheriv(ccmName(key.length), key, nonce, { authTagLength: this.tagLength });
    cipher.setAAD(aad, { plaintextLength: plaintext.length });
    const body = cipher.update(plaintext);
    cipher.final();
    const tag = cipher.getAuthTag();
    const n = body.length;
    const out = pooledBytes(n + this.tagLength);
    for (let i = 0; i < n; i++) out[i] = body[i]!;
    for (let i = 0; i < this.tagLength; i++) out[n + i] = tag[i]!;
    return out;
  }

  #openOnce(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, n: number): Uint8Array | undefined {
    this.#oneShots++;
    let body: Buffer;
    try {
      const decipher = createDecipheriv(ccmName(key.length), key, nonce, { authTagLength: this.tagLength });
      decipher.setAuthTag(sealed.subarray(n));
      decipher.setAAD(aad, { plaintextLength: n });
      body = decipher.update(sealed.subarray(0, n));
      // RFC 3610 §2.5: OpenSSL compares the tag (in constant time); final() throws when it differs.
      decipher.final();
    } catch {
      return undefined;
    }
    const out = pooledBytes(n);
    for (let i = 0; i < n; i++) out[i] = body[i]!;
    return out;
  }
}

const validKeyLength = (length: number): boolean => length === 16 || length === 24 || length === 32;

const CCM_NAMES: Record<number, CipherCCMTypes> = { 16: 'aes-128-ccm', 24: 'aes-192-ccm', 32: 'aes-256-ccm' };
const ccmName = (keyLength: number): CipherCCMTypes => CCM_NAMES[keyLength]!;

/** FNV-1a over the key's bytes, as a signed 32-bit integer. */
function fnv(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  return hash | 0;
}
