/**
 * COSE algorithm registries (draft-ietf-cose-rfc8152bis-algs-11): AEADs (§4), HMAC-based HKDF
 * identified by the HMAC ids 5/6/7 (§3.1, the way EDHOC, Group OSCORE and RFC 9203 name them)
 * and hash algorithms (RFC 9054 ids, used by 'x5t').
 *
 * `seal` throws on local misuse (a key or nonce of the wrong length is a bug); `open` never throws
 * and answers undefined for anything wrong, since its input comes from the network.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, type CipherGCMTypes } from 'node:crypto';
import { AesCcmKeys } from '../crypto/ccm-keys.js';
import { bytesView, concatBytes } from './cbor.js';
import { CoseError } from './error.js';
import { CoseAead, CoseHash, CoseHmac } from './ids.js';

export { CoseError, CoseAead, CoseHash, CoseHmac };

export interface CoseAeadAlgorithm {
  readonly id: number;
  readonly name: string;
  readonly keyLength: number;
  readonly nonceLength: number;
  readonly tagLength: number;
  /**
   * ciphertext || tag. `partialIv`: the number in the nonce's last 5 bytes (RFC 8613 §5.2), when
   * the nonce is built that way; AES-CCM then computes the keystreams of the following Partial IVs'
   * nonces in the same AES call (AesCcm.keystreamAhead). The output is the same either way.
   */
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, partialIv?: number): Uint8Array;
  /** The plaintext, or undefined on any failure (never throws). `partialIv` as for seal. */
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, partialIv?: number): Uint8Array | undefined;
}

/** RFC 8613 §5.2: the Partial IV fills the nonce's last 5 bytes. */
const PARTIAL_IV_BYTES = 5;

type NodeAead = CipherGCMTypes | 'chacha20-poly1305';

function makeAead(id: number, name: string, cipher: NodeAead | 'ccm', keyLength: number, nonceLength: number, tagLength: number): CoseAeadAlgorithm {
  const checkLengths = (key: Uint8Array, nonce: Uint8Array): void => {
    if (key.length !== keyLength) throw new CoseError(`${name} needs a ${keyLength}-byte key, got ${key.length} bytes`);
    if (nonce.length !== nonceLength) throw new CoseError(`${name} needs a ${nonceLength}-byte nonce, got ${nonce.length} bytes`);
  };
  const base = { id, name, keyLength, nonceLength, tagLength };
  if (cipher === 'ccm') {
    // AES-CCM through src/crypto/ccm-keys.ts: one key schedule per key in steady use instead of a
    // new CCM context per message, Node's one-shot CCM for a key that is not (a device among thousands).
    const keys = new AesCcmKeys(tagLength, nonceLength, { counterBytes: PARTIAL_IV_BYTES });
    return {
      ...base,
      seal(key, nonce, aad, plaintext, partialIv) {
        checkLengths(key, nonce);
        return keys.seal(key, nonce, aad, plaintext, partialIv);
      },
      open(key, nonce, aad, ciphertext, partialIv) {
        if (key.length !== keyLength || nonce.length !== nonceLength || ciphertext.length < tagLength) return undefined;
        return keys.open(key, nonce, aad, ciphertext, partialIv);
      },
    };
  }
  return {
    ...base,
    seal(key, nonce, aad, plaintext) {
      checkLengths(key, nonce);
      // One cast: the createCipheriv overloads differ only in their option types.
      const c = createCipheriv(cipher as CipherGCMTypes, key, nonce, { authTagLength: tagLength });
      c.setAAD(aad);
      const body = Buffer.concat([c.update(plaintext), c.final()]);
      return bytesView(Buffer.concat([body, c.getAuthTag()]));
    },
    open(key, nonce, aad, ciphertext) {
      if (key.length !== keyLength || nonce.length !== nonceLength || ciphertext.length < tagLength) return undefined;
      const bodyLength = ciphertext.length - tagLength;
      try {
        const d = createDecipheriv(cipher as CipherGCMTypes, key, nonce, { authTagLength: tagLength });
        d.setAuthTag(ciphertext.subarray(bodyLength));
        d.setAAD(aad);
        return bytesView(Buffer.concat([d.update(ciphertext.subarray(0, bodyLength)), d.final()]));
      } catch {
        return undefined;
      }
    },
  };
}

// §4.1 (GCM: 96-bit nonce, 128-bit tag), §4.2 (CCM "16" = L of 16 bits → 13-byte nonce, then tag and key bits), §4.3.
const AEADS: readonly CoseAeadAlgorithm[] = [
  makeAead(CoseAead.AES_CCM_16_64_128, 'AES-CCM-16-64-128', 'ccm', 16, 13, 8),
  makeAead(CoseAead.AES_CCM_16_64_256, 'AES-CCM-16-64-256', 'ccm', 32, 13, 8),
  makeAead(CoseAead.AES_CCM_16_128_128, 'AES-CCM-16-128-128', 'ccm', 16, 13, 16),
  makeAead(CoseAead.A128GCM, 'A128GCM', 'aes-128-gcm', 16, 12, 16),
  makeAead(CoseAead.A192GCM, 'A192GCM', 'aes-192-gcm', 24, 12, 16),
  makeAead(CoseAead.A256GCM, 'A256GCM', 'aes-256-gcm', 32, 12, 16),
  makeAead(CoseAead.CHACHA20_POLY1305, 'ChaCha20/Poly1305', 'chacha20-poly1305', 32, 12, 16),
];

export const allCoseAeads = (): readonly CoseAeadAlgorithm[] => AEADS;

export const findCoseAead = (id: number): CoseAeadAlgorithm | undefined => AEADS.find((a) => a.id === id);

export function coseAead(id: number): CoseAeadAlgorithm {
  const a = findCoseAead(id);
  if (a === undefined) throw new CoseError(`unsupported COSE AEAD algorithm ${id}`);
  return a;
}

export interface CoseHashAlgorithm {
  readonly id: number;
  readonly name: string;
  readonly length: number;
  digest(data: Uint8Array): Uint8Array;
}

const makeHash = (id: number, name: string, node: string, length: number): CoseHashAlgorithm => ({
  id,
  name,
  length,
  digest: (data) => bytesView(createHash(node).update(data).digest()).subarray(0, length),
});

const HASHES: readonly CoseHashAlgorithm[] = [
  makeHash(CoseHash.SHA_256_64, 'SHA-256/64', 'sha256', 8),
  makeHash(CoseHash.SHA_256, 'SHA-256', 'sha256', 32),
  makeHash(CoseHash.SHA_384, 'SHA-384', 'sha384', 48),
  makeHash(CoseHash.SHA_512, 'SHA-512', 'sha512', 64),
];

export const findCoseHash = (id: number): CoseHashAlgorithm | undefined => HASHES.find((h) => h.id === id);

export function coseHash(id: number): CoseHashAlgorithm {
  const h = findCoseHash(id);
  if (h === undefined) throw new CoseError(`unsupported COSE hash algorithm ${id}`);
  return h;
}

export interface HkdfByHmac {
  /** The HMAC id (5, 6, 7). */
  readonly id: number;
  readonly name: string;
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  readonly hashLength: number;
  /** HKDF-Extract (RFC 5869 §2.2); an empty salt is HashLen zero bytes. */
  extract(salt: Uint8Array, ikm: Uint8Array): Uint8Array;
  /** HKDF-Expand (RFC 5869 §2.3): at most 255 × HashLen bytes. */
  expand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  /** Extract then expand. */
  derive(salt: Uint8Array, ikm: Uint8Array, info: Uint8Array, length: number): Uint8Array;
}

function makeHkdf(id: number, name: string, hash: 'sha256' | 'sha384' | 'sha512', hashLength: number): HkdfByHmac {
  const hmac = (key: Uint8Array, ...data: Uint8Array[]): Uint8Array => {
    const h = createHmac(hash, key);
    for (const d of data) h.update(d);
    return bytesView(h.digest());
  };
  const extract = (salt: Uint8Array, ikm: Uint8Array): Uint8Array => hmac(salt.length === 0 ? new Uint8Array(hashLength) : salt, ikm);
  const expand = (prk: Uint8Array, info: Uint8Array, length: number): Uint8Array => {
    if (!Number.isInteger(length) || length < 0 || length > 255 * hashLength) {
      throw new CoseError(`HKDF-Expand with ${name} cannot produce ${length} bytes`);
    }
    const blocks: Uint8Array[] = [];
    let previous: Uint8Array = new Uint8Array(0);
    for (let i = 1, have = 0; have < length; i += 1) {
      previous = hmac(prk, previous, info, Uint8Array.of(i));
      blocks.push(previous);
      have += previous.length;
    }
    return concatBytes(...blocks).subarray(0, length);
  };
    // Extract-and-expand in one native call (empty salt → HashLen zeros, as RFC 5869 §2.2 says).
  const derive = (salt: Uint8Array, ikm: Uint8Array, info: Uint8Array, length: number): Uint8Array => {
    if (!Number.isInteger(length) || length < 0 || length > 255 * hashLength) throw new CoseError(`HKDF with ${name} cannot produce ${length} bytes`);
    return new Uint8Array(hkdfSync(hash, ikm, salt, info, length));
  };
  return { id, name, hash, hashLength, extract, expand, derive };
}

const HKDFS: readonly HkdfByHmac[] = [
  makeHkdf(CoseHmac.HMAC_256_256, 'HKDF with HMAC 256/256', 'sha256', 32),
  makeHkdf(CoseHmac.HMAC_384_384, 'HKDF with HMAC 384/384', 'sha384', 48),
  makeHkdf(CoseHmac.HMAC_512_512, 'HKDF with HMAC 512/512', 'sha512', 64),
];

export const findHkdfByHmac = (id: number): HkdfByHmac | undefined => HKDFS.find((h) => h.id === id);

export function hkdfByHmac(id: number): HkdfByHmac {
  const h = findHkdfByHmac(id);
  if (h === undefined) throw new CoseError(`unsupported HMAC algorithm ${id} for HKDF`);
  return h;
}
