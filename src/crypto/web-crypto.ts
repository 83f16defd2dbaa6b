/**
 * The asynchronous crypto provider of the browser build (src/browser/): the COSE AEADs and HKDFs
 * OSCORE uses, through the Web Crypto API (`crypto.subtle`), which browsers and Node (>= 19) both
 * have. Node's own hot path keeps the synchronous AesCcm of aes-ccm.ts; this module is for where
 * node:crypto does not exist, and is checked against it (test/browser-crypto.test.ts).
 *
 * Web Crypto has no AES-CCM, so CCM (RFC 3610) is composed here from two primitives it has:
 * - the CTR part is AES-CTR with the counter block A_0 = Flags || N || 0 and the counter taking the
 *   last L bytes (RFC 3610 §2.3); encrypting 16 zero bytes before the message yields S_0 too;
 * - the CBC-MAC (§2.2) is the last ciphertext block of AES-CBC with a zero IV over B_0 || the
 *   encoded AAD || the message, each zero-padded to 16 bytes. Web Crypto's AES-CBC always appends
 *   PKCS#7 padding, one whole block for block-aligned input: the MAC is the block before it.
 * AES-GCM is Web Crypto's own. ChaCha20/Poly1305 is not in Web Crypto and is refused (its COSE id
 * 24 is then "unsupported" here); the AES-CCM default of RFC 8613 §3.2 needs no library.
 */

const BLOCK = 16;

/** The part of Web Crypto used here (a structural type: this project compiles without the DOM library). */
interface Subtle {
  importKey(format: 'raw', key: Uint8Array, algorithm: string | { name: string }, extractable: boolean, usages: string[]): Promise<unknown>;
  encrypt(algorithm: object, key: unknown, data: Uint8Array): Promise<ArrayBuffer>;
  decrypt(algorithm: object, key: unknown, data: Uint8Array): Promise<ArrayBuffer>;
  deriveBits(algorithm: object, key: unknown, length: number): Promise<ArrayBuffer>;
}

function subtle(): Subtle {
  const found = (globalThis as { crypto?: { subtle?: Subtle } }).crypto?.subtle;
  // Browsers expose crypto.subtle only in secure contexts (https, or http://127.0.0.1 / localhost).
  if (found === undefined) throw new Error('the Web Crypto API (crypto.subtle) is not available here: serve the page over https or from localhost');
  return found;
}

export interface AsyncAead {
  /** The COSE algorithm identifier. */
  readonly id: number;
  readonly name: string;
  readonly keyLength: number;
  readonly nonceLength: number;
  readonly tagLength: number;
  /** ciphertext || tag. Rejects on a key or nonce of the wrong length (local misuse). */
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array>;
  /** The plaintext, or undefined when anything is wrong (never rejects: the input comes from the network). */
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array | undefined>;
}

export interface AsyncHkdf {
  readonly id: number;
  readonly name: string;
  /** HKDF-Extract-and-Expand (RFC 5869); an empty salt means HashLen zero bytes. */
  derive(salt: Uint8Array, ikm: Uint8Array, info: Uint8Array, length: number): Promise<Uint8Array>;
}

/**
 * Imported keys by key array: importing costs a round trip into the crypto implementation, and a
 * context keeps its keys for its whole life. A caller that rewrites its key array gets a new import.
 */
function keyCache(algorithm: string): (key: Uint8Array) => Promise<unknown> {
  const byKey = new WeakMap<Uint8Array, { bytes: Uint8Array; imported: Promise<unknown> }>();
  return (key) => {
    const cached = byKey.get(key);
    if (cached !== undefined && equal(cached.bytes, key)) return cached.imported;
    const entry = { bytes: key.slice(), imported: subtle().importKey('raw', key.slice(), { name: algorithm }, false, ['encrypt', 'decrypt']) };
    byKey.set(key, entry);
    return entry.imported;
  };
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const roundUp = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

/** Writes `value` big-endian into the `bytes` bytes ending at `last`. */
function writeLength(into: Uint8Array, last: number, bytes: number, value: number): void {
  let v = value;
  for (let i = 0; i < bytes; i++) {
    into[last - i] = v % 256;
    v = Math.floor(v / 256);
  }
}

/** RFC 3610 §2.2: B_0 || l(a) || a || padding || m || padding, the CBC-MAC's input. */
export function ccmMacInput(nonce: Uint8Array, aad: Uint8Array, message: Uint8Array, tagLength: number): Uint8Array {
  const lengthBytes = 15 - nonce.length;
  const aadHeader = aad.length === 0 ? 0 : aad.length < 0xff00 ? 2 : 6;
  const aadPadded = roundUp(aadHeader + aad.length);
  const input = new Uint8Array(BLOCK + aadPadded + roundUp(message.length));
  // Flags = 64·Adata + 8·M' + L', M' = (M−2)/2, L' = L−1.
  input[0] = (aad.length > 0 ? 0x40 : 0) | (((tagLength - 2) / 2) << 3) | (lengthBytes - 1);
  input.set(nonce, 1);
  writeLength(input, BLOCK - 1, lengthBytes, message.length);
  if (aadHeader === 2) writeLength(input, BLOCK + 1, 2, aad.length);
  else if (aadHeader === 6) {
    input[BLOCK] = 0xff;
    input[BLOCK + 1] = 0xfe;
    writeLength(input, BLOCK + 5, 4, aad.length);
  }
  input.set(aad, BLOCK + aadHeader);
  input.set(message, BLOCK + aadPadded);
  return input;
}

/** RFC 3610 §2.3: A_0 = Flags || N || 0, Flags = L − 1. */
function counterBlock(nonce: Uint8Array): Uint8Array {
  const block = new Uint8Array(BLOCK);
  block[0] = 15 - nonce.length - 1;
  block.set(nonce, 1);
  return block;
}

function webAesCcm(id: number, name: string, keyLength: number, nonceLength: number, tagLength: number): AsyncAead {
  const ctrKey = keyCache('AES-CTR');
  const cbcKey = keyCache('AES-CBC');
  const zeroIv = new Uint8Array(BLOCK);
  const counterBits = 8 * (15 - nonceLength);

  /** S_0 || the message XOR S_1 S_2 ...: CTR over 16 zero bytes and the message. */
  const ctr = async (key: Uint8Array, nonce: Uint8Array, message: Uint8Array): Promise<Uint8Array> => {
    const input = new Uint8Array(BLOCK + message.length);
    input.set(message, BLOCK);
    return new Uint8Array(await subtle().encrypt({ name: 'AES-CTR', counter: counterBlock(nonce), length: counterBits }, await ctrKey(key), input));
  };
  /** T, the first tagLength bytes of the CBC-MAC. */
  const mac = async (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, message: Uint8Array): Promise<Uint8Array> => {
    const input = ccmMacInput(nonce, aad, message, tagLength);
    const out = new Uint8Array(await subtle().encrypt({ name: 'AES-CBC', iv: zeroIv }, await cbcKey(key), input));
    return out.subarray(input.length - BLOCK, input.length - BLOCK + tagLength);
  };

  return {
    id,
    name,
    keyLength,
    nonceLength,
    tagLength,
    async seal(key, nonce, aad, plaintext) {
      checkLengths(name, keyLength, nonceLength, key, nonce);
      const [t, stream] = await Promise.all([mac(key, nonce, aad, plaintext), ctr(key, nonce, plaintext)]);
      const out = new Uint8Array(plaintext.length + tagLength);
      out.set(stream.subarray(BLOCK));
      // §2.3: U := T XOR first-M-bytes( S_0 ).
      for (let i = 0; i < tagLength; i++) out[plaintext.length + i] = t[i]! ^ stream[i]!;
      return out;
    },
    async open(key, nonce, aad, ciphertext) {
      if (key.length !== keyLength || nonce.length !== nonceLength || ciphertext.length < tagLength) return undefined;
      const bodyLength = ciphertext.length - tagLength;
      try {
        const stream = await ctr(key, nonce, ciphertext.subarray(0, bodyLength));
        const plaintext = stream.slice(BLOCK);
        const t = await mac(key, nonce, aad, plaintext);
        // §2.5: released only when the tag matches; every byte compared, no early exit.
        let difference = 0;
        for (let i = 0; i < tagLength; i++) difference |= (t[i]! ^ stream[i]!) ^ ciphertext[bodyLength + i]!;
        return difference === 0 ? plaintext : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

function webAesGcm(id: number, name: string, keyLength: number): AsyncAead {
  const gcmKey = keyCache('AES-GCM');
  const nonceLength = 12;
  const tagLength = 16;
  return {
    id,
    name,
    keyLength,
    nonceLength,
    tagLength,
    async seal(key, nonce, aad, plaintext) {
      checkLengths(name, keyLength, nonceLength, key, nonce);
      return new Uint8Array(await subtle().encrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad, tagLength: 8 * tagLength }, await gcmKey(key), plaintext));
    },
    async open(key, nonce, aad, ciphertext) {
      if (key.length !== keyLength || nonce.length !== nonceLength || ciphertext.length < tagLength) return undefined;
      try {
        return new Uint8Array(await subtle().decrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad, tagLength: 8 * tagLength }, await gcmKey(key), ciphertext));
      } catch {
        return undefined;
      }
    },
  };
}

function checkLengths(name: string, keyLength: number, nonceLength: number, key: Uint8Array, nonce: Uint8Array): void {
  if (key.length !== keyLength) throw new RangeError(`${name} needs a ${keyLength}-byte key, got ${key.length} bytes`);
  if (nonce.length !== nonceLength) throw new RangeError(`${name} needs a ${nonceLength}-byte nonce, got ${nonce.length} bytes`);
}

/**
 * The COSE AEADs (draft-ietf-cose-rfc8152bis-algs §4) Web Crypto can do. A192GCM is left out:
 * Chromium's Web Crypto refuses 192-bit AES keys.
 */
export const WEB_AEADS: readonly AsyncAead[] = [
  webAesCcm(10, 'AES-CCM-16-64-128', 16, 13, 8),
  webAesCcm(11, 'AES-CCM-16-64-256', 32, 13, 8),
  webAesCcm(30, 'AES-CCM-16-128-128', 16, 13, 16),
  webAesGcm(1, 'A128GCM', 16),
  webAesGcm(3, 'A256GCM', 32),
];

function webHkdf(id: number, name: string, hash: string): AsyncHkdf {
  return {
    id,
    name,
    async derive(salt, ikm, info, length) {
      const key = await subtle().importKey('raw', ikm.slice(), 'HKDF', false, ['deriveBits']);
      return new Uint8Array(await subtle().deriveBits({ name: 'HKDF', hash, salt: salt.slice(), info: info.slice() }, key, 8 * length));
    },
  };
}

/** HKDF SHA-256/512 by their OSCORE ids (RFC 8613 §3.2.1: -10, -11) and SHA-384 by the HMAC 384/384 id (6). */
export const WEB_HKDFS: readonly AsyncHkdf[] = [webHkdf(-10, 'HKDF SHA-256', 'SHA-256'), webHkdf(-11, 'HKDF SHA-512', 'SHA-512'), webHkdf(6, 'HKDF SHA-384', 'SHA-384')];
