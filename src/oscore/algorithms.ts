/**
 * OSCORE's algorithms (RFC 8613 §3.1, §5): the COSE AEAD algorithms of
 * draft-ietf-cose-rfc8152bis-algs §4 and the HKDF algorithms of §5.1 of the same, addressed by
 * their COSE identifier or by the name used in configuration files.
 *
 * The algorithms themselves live in src/cose/algorithms.ts (shared with EDHOC); AES-CCM goes
 * through crypto/aes-ccm.ts there, with one AES key schedule per key. `seal` throws on
 * local misuse (wrong key or nonce length:
 * a configuration bug); `open` never throws: any failure — a wrong tag, a truncated ciphertext, a
 * key of the wrong length — is `undefined`, because its input comes from the network.
 */
import { coseAead, CoseAead, CoseHmac, hkdfByHmac, type CoseAeadAlgorithm } from '../cose/algorithms.js';
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
  /**
   * ciphertext || tag. Throws on a key or nonce of the wrong length. `partialIv`: the Partial IV
   * the nonce was built from (§5.2), which lets AES-CCM compute the next ones' keystreams in the
   * same AES call (src/crypto/aes-ccm.ts keystreamAhead); same output either way.
   */
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, partialIv?: number): Uint8Array;
  /** The plaintext, or undefined when anything is wrong (never throws). `partialIv` as for seal. */
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, partialIv?: number): Uint8Array | undefined;
}

/** The COSE AEAD identifiers (draft-ietf-cose-rfc8152bis-algs), as src/cose names them. */
export const AeadId = CoseAead;

export const HkdfId = {
  HKDF_SHA_256: -10,
  HKDF_SHA_512: -11,
  /**
   * COSE has no "direct+HKDF-SHA-384"; the HKDF with HMAC 384/384 is named by that HMAC's id, as
   * RFC 9203 and Group OSCORE name HKDFs. EDHOC suite 24's application hash is SHA-384 (RFC 9528
   * App. A.1: "the HKDF Algorithm SHALL be the one based on the application hash algorithm").
   */
  HKDF_SHA_384: CoseHmac.HMAC_384_384,
} as const;

/** RFC 8613 §3.2: the defaults when not preestablished. */
export const DEFAULT_AEAD = AeadId.AES_CCM_16_64_128;
export const DEFAULT_HKDF = HkdfId.HKDF_SHA_256;

/**
 * The COSE AEADs (src/cose/algorithms.ts) with OSCORE's ID limit, and local misuse reported as
 * an OscoreConfigError (a configuration bug here) rather than the COSE layer's CoseError.
 */
function oscoreAead(aead: CoseAeadAlgorithm): AeadAlgorithm {
  const { id, name, keyLength, nonceLength, tagLength } = aead;
  return {
    id,
    name,
    keyLength,
    nonceLength,
    tagLength,
    maxIdLength: nonceLength - 6,
    seal(key, nonce, aad, plaintext, partialIv) {
      if (key.length !== keyLength) throw new OscoreConfigError(`${name} needs a ${keyLength}-byte key, got ${key.length} bytes`);
      if (nonce.length !== nonceLength) throw new OscoreConfigError(`${name} needs a ${nonceLength}-byte nonce, got ${nonce.length} bytes`);
      return aead.seal(key, nonce, aad, plaintext, partialIv);
    },
    open: (key, nonce, aad, ciphertext, partialIv) => aead.open(key, nonce, aad, ciphertext, partialIv),
  };
}

// draft-ietf-cose-rfc8152bis-algs-11 §4.1 (GCM), §4.2 (CCM), §4.3 (ChaCha20/Poly1305), in OSCORE's
// order of preference for listings (the default first).
const AEADS: readonly AeadAlgorithm[] = [
  AeadId.AES_CCM_16_64_128,
  AeadId.AES_CCM_16_64_256,
  AeadId.AES_CCM_16_128_128,
  AeadId.A128GCM,
  AeadId.A192GCM,
  AeadId.A256GCM,
  AeadId.CHACHA20_POLY1305,
].map((id) => oscoreAead(coseAead(id)));

export interface HkdfAlgorithm {
  readonly id: number;
  readonly name: string;
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  /** HKDF-Extract-and-Expand (RFC 5869); an empty salt means HashLen zero bytes (RFC 8613 §3.2.1). */
  derive(salt: Uint8Array, ikm: Uint8Array, info: Uint8Array, length: number): Uint8Array;
}

/** HKDF SHA-256/512 (-10/-11, "direct+HKDF") is the HKDF of the COSE HMAC 256/256 (5) and 512/512 (7). */
const makeHkdf = (id: number, name: string, hash: HkdfAlgorithm['hash'], hmacId: number): HkdfAlgorithm => {
  const hkdf = hkdfByHmac(hmacId);
  return { id, name, hash, derive: (salt, ikm, info, length) => hkdf.derive(salt, ikm, info, length) };
};

const HKDFS: readonly HkdfAlgorithm[] = [
  makeHkdf(HkdfId.HKDF_SHA_256, 'HKDF SHA-256', 'sha256', CoseHmac.HMAC_256_256),
  makeHkdf(HkdfId.HKDF_SHA_512, 'HKDF SHA-512', 'sha512', CoseHmac.HMAC_512_512),
  makeHkdf(HkdfId.HKDF_SHA_384, 'HKDF SHA-384', 'sha384', CoseHmac.HMAC_384_384),
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

/** By COSE id without a search: every OSCORE message looks its context's algorithm up (issue 21). */
const AEAD_BY_ID = new Map(AEADS.map((a) => [a.id, a]));

/** As findAeadAlgorithm, but an unknown algorithm is an OscoreConfigError. */
export function aeadAlgorithm(key: number | string): AeadAlgorithm {
  const a = (typeof key === 'number' ? AEAD_BY_ID.get(key) : undefined) ?? findAeadAlgorithm(key);
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
