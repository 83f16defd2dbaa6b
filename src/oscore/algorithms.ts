/**
 * OSCORE's algorithms (RFC 8613 §3.1, §5): the COSE AEAD algorithms of
 * draft-ietf-cose-rfc8152bis-algs §4 and the HKDF algorithms of §5.1 of the same, addressed by
 * their COSE identifier or by the name used in configuration files.
 *
 * Everything is Node's built-in crypto; the AES-CCM algorithms go through crypto/aes-ccm.ts, which
 * keeps one AES key schedule per key instead of a new CCM context per message (one instance per
 * key, found by the key's identity and checked against a copy of its bytes). `seal` throws on
 * local misuse (wrong key or nonce length:
 * a configuration bug); `open` never throws: any failure — a wrong tag, a truncated ciphertext, a
 * key of the wrong length — is `undefined`, because its input comes from the network.
 */
import { createCipheriv, createDecipheriv, hkdfSync, type CipherGCMTypes } from 'node:crypto';
import { AesCcm } from '../crypto/aes-ccm.js';
import { OscoreConfigError } from './errors.js';

export interface AeadAlgorithm {
  /** The COSE algorithm identifier (alg_aead of RFC 8613 §3.2.1 and §5.4). */
  readonly id: number;
  readonly name: string;
  /** Bytes. */
  readonly keyLength: number;
  /** Bytes; also the length of the Common IV (§3.1). */
  readonly nonceLength: number;
  /** Bytes of authentication tag appended to the ciphertext. */
  readonly tagLength: number;
  /** The longest Sender/Recipient ID this algorithm allows: nonce length − 6 (§3.3, §5.2). */
  readonly maxIdLength: number;
  /** ciphertext || tag. Throws on a key or nonce of the wrong length. */
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** The plaintext, or undefined when anything is wrong (never throws). */
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Uint8Array | undefined;
}

export const AeadId = {
  A128GCM: 1,
  A192GCM: 2,
  A256GCM: 3,
  AES_CCM_16_64_128: 10,
  AES_CCM_16_64_256: 11,
  CHACHA20_POLY1305: 24,
  AES_CCM_16_128_128: 30,
} as const;

export const HkdfId = {
  HKDF_SHA_256: -10,
  HKDF_SHA_512: -11,
} as const;

/** RFC 8613 §3.2: the defaults when not preestablished. */
export const DEFAULT_AEAD = AeadId.AES_CCM_16_64_128;
export const DEFAULT_HKDF = HkdfId.HKDF_SHA_256;

type NodeCipher = 'aes-128-ccm' | 'aes-256-ccm' | CipherGCMTypes | 'chacha20-poly1305';

const plain = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

interface KeyedCcm {
  /** The key bytes the instance was made with: a caller that reuses its key array for another key gets a new instance. */
  readonly key: Buffer;
  readonly ccm: AesCcm;
}

/**
 * AesCcm instances by key array. Contexts hold their derived keys for their whole life, so each
 * key schedules AES once; a WeakMap lets a dropped context's ciphers go with it.
 */
function ccmCache(tagLength: number, nonceLength: number): (key: Uint8Array) => AesCcm {
  const byKey = new WeakMap<Uint8Array, KeyedCcm>();
  return (key) => {
    const cached = byKey.get(key);
    if (cached !== undefined && cached.key.equals(key)) return cached.ccm;
    const entry = { key: Buffer.from(key), ccm: new AesCcm(key, tagLength, nonceLength) };
    byKey.set(key, entry);
    return entry.ccm;
  };
}

function makeAead(
  id: number,
  name: string,
  cipher: NodeCipher,
  keyLength: number,
  nonceLength: number,
  tagLength: number,
): AeadAlgorithm {
  const checkLengths = (key: Uint8Array, nonce: Uint8Array): void => {
    if (key.length !== keyLength) throw new OscoreConfigError(`${name} needs a ${keyLength}-byte key, got ${key.length} bytes`);
    if (nonce.length !== nonceLength) {
      throw new OscoreConfigError(`${name} needs a ${nonceLength}-byte nonce, got ${nonce.length} bytes`);
    }
  };
  const base = { id, name, keyLength, nonceLength, tagLength, maxIdLength: nonceLength - 6 };
  if (cipher.endsWith('-ccm')) {
    const ccmFor = ccmCache(tagLength, nonceLength);
    return {
      ...base,
      seal(key, nonce, aad, plaintext) {
        checkLengths(key, nonce);
        return plain(ccmFor(key).seal(nonce, aad, plaintext));
      },
      open(key, nonce, aad, ciphertext) {
        if (key.length !== keyLength || nonce.length !== nonceLength || ciphertext.length < tagLength) return undefined;
        const bodyLength = ciphertext.length - tagLength;
        const out = ccmFor(key).openAt(nonce, aad, ciphertext, 0, bodyLength);
        return out === undefined ? undefined : plain(out);
      },
    };
  }
  return {
    ...base,
    seal(key, nonce, aad, plaintext) {
      checkLengths(key, nonce);
      // The overloads of createCipheriv differ only in the option type; one cast covers all three.
      const c = createCipheriv(cipher as CipherGCMTypes, key, nonce, { authTagLength: tagLength });
      c.setAAD(aad);
      const body = Buffer.concat([c.update(plaintext), c.final()]);
      return plain(Buffer.concat([body, c.getAuthTag()]));
    },
    open(key, nonce, aad, ciphertext) {
      if (key.length !== keyLength || nonce.length !== nonceLength || ciphertext.length < tagLength) return undefined;
      try {
        const bodyLength = ciphertext.length - tagLength;
        const d = createDecipheriv(cipher as CipherGCMTypes, key, nonce, { authTagLength: tagLength });
        d.setAuthTag(ciphertext.subarray(bodyLength));
        d.setAAD(aad);
        const out = Buffer.concat([d.update(ciphertext.subarray(0, bodyLength)), d.final()]);
        return plain(out);
      } catch {
        return undefined;
      }
    },
  };
}

// draft-ietf-cose-rfc8152bis-algs-11 §4.1 (GCM: 96-bit nonce, 128-bit tag), §4.2 (CCM: the
// "16" is L = 16 bits, hence a 13-byte nonce; "64"/"128" the tag in bits), §4.3 (ChaCha20/Poly1305).
const AEADS: readonly AeadAlgorithm[] = [
  makeAead(AeadId.AES_CCM_16_64_128, 'AES-CCM-16-64-128', 'aes-128-ccm', 16, 13, 8),
  makeAead(AeadId.AES_CCM_16_64_256, 'AES-CCM-16-64-256', 'aes-256-ccm', 32, 13, 8),
  makeAead(AeadId.AES_CCM_16_128_128, 'AES-CCM-16-128-128', 'aes-128-ccm', 16, 13, 16),
  makeAead(AeadId.A128GCM, 'A128GCM', 'aes-128-gcm', 16, 12, 16),
  makeAead(AeadId.A192GCM, 'A192GCM', 'aes-192-gcm', 24, 12, 16),
  makeAead(AeadId.A256GCM, 'A256GCM', 'aes-256-gcm', 32, 12, 16),
  makeAead(AeadId.CHACHA20_POLY1305, 'ChaCha20/Poly1305', 'chacha20-poly1305', 32, 12, 16),
];

export interface HkdfAlgorithm {
  readonly id: number;
  readonly name: string;
  readonly hash: 'sha256' | 'sha512';
  /** HKDF-Extract-and-Expand (RFC 5869); an empty salt means HashLen zero bytes (RFC 8613 §3.2.1). */
  derive(salt: Uint8Array, ikm: Uint8Array, info: Uint8Array, length: number): Uint8Array;
}

const makeHkdf = (id: number, name: string, hash: 'sha256' | 'sha512'): HkdfAlgorithm => ({
  id,
  name,
  hash,
  derive: (salt, ikm, info, length) => new Uint8Array(hkdfSync(hash, ikm, salt, info, length)),
});

const HKDFS: readonly HkdfAlgorithm[] = [
  makeHkdf(HkdfId.HKDF_SHA_256, 'HKDF SHA-256', 'sha256'),
  makeHkdf(HkdfId.HKDF_SHA_512, 'HKDF SHA-512', 'sha512'),
];

/**
 * "AES-CCM-16-64-128", "aes_ccm_16_64_128", "HKDF SHA-256", "hkdf-sha-256", "HKDF-SHA256" all match,
 * and so does the COSE registry's (and libcoap's) "direct+HKDF-SHA-256" for ids -10/-11.
 */
const normalizeName = (name: string): string => name.trim().toLowerCase().replace(/^direct\+/, '').replace(/[\s_\-/]+/g, '');

function lookup<T extends { id: number; name: string }>(table: readonly T[], key: number | string): T | undefined {
  if (typeof key === 'number') return table.find((a) => a.id === key);
  const trimmed = key.trim();
  if (/^-?\d+$/.test(trimmed)) return table.find((a) => a.id === Number(trimmed));
  const n = normalizeName(trimmed);
  return table.find((a) => normalizeName(a.name) === n);
}

export const allAeadAlgorithms = (): readonly AeadAlgorithm[] => AEADS;
export const allHkdfAlgorithms = (): readonly HkdfAlgorithm[] => HKDFS;

/** By COSE id, name, or a decimal id in a string; undefined when unknown. */
export const findAeadAlgorithm = (key: number | string): AeadAlgorithm | undefined => lookup(AEADS, key);
export const findHkdfAlgorithm = (key: number | string): HkdfAlgorithm | undefined => lookup(HKDFS, key);

/** As findAeadAlgorithm, but an unknown algorithm is an OscoreConfigError. */
export function aeadAlgorithm(key: number | string): AeadAlgorithm {
  const a = findAeadAlgorithm(key);
  if (a === undefined) {
    throw new OscoreConfigError(
      `unknown OSCORE AEAD algorithm ${JSON.stringify(key)}; supported: ${AEADS.map((x) => `${x.name} (${x.id})`).join(', ')}`,
    );
  }
  return a;
}

export function hkdfAlgorithm(key: number | string): HkdfAlgorithm {
  const a = findHkdfAlgorithm(key);
  if (a === undefined) {
    throw new OscoreConfigError(
      `unknown OSCORE HKDF algorithm ${JSON.stringify(key)}; supported: ${HKDFS.map((x) => `${x.name} (${x.id})`).join(', ')}`,
    );
  }
  return a;
}

export const aeadName = (id: number): string | undefined => findAeadAlgorithm(id)?.name;
export const aeadIdFromName = (name: string): number | undefined => findAeadAlgorithm(name)?.id;
export const hkdfName = (id: number): string | undefined => findHkdfAlgorithm(id)?.name;
export const hkdfIdFromName = (name: string): number | undefined => findHkdfAlgorithm(name)?.id;
