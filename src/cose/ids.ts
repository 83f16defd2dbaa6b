/**
 * COSE identifiers as plain constants, free of node:crypto so that the browser build's EDHOC
 * (src/browser/edhoc.ts) can name suites, curves and algorithms. algorithms.ts, key.ts and
 * sign.ts re-export them where they were first defined.
 */

/** AEAD algorithms (draft-ietf-cose-rfc8152bis-algs-11 §4). */
export const CoseAead = {
  A128GCM: 1,
  A192GCM: 2,
  A256GCM: 3,
  AES_CCM_16_64_128: 10,
  AES_CCM_16_64_256: 11,
  CHACHA20_POLY1305: 24,
  AES_CCM_16_128_128: 30,
} as const;

/** COSE hash algorithm ids (RFC 9054 §2). */
export const CoseHash = {
  SHA_256_64: -15,
  SHA_256: -16,
  SHA_384: -43,
  SHA_512: -44,
  SHAKE256: -45,
} as const;

/** HMAC algorithm ids (algs §3.1) naming the HKDF that uses that HMAC. */
export const CoseHmac = {
  HMAC_256_256: 5,
  HMAC_384_384: 6,
  HMAC_512_512: 7,
} as const;

export const CoseSignAlg = { ES256: -7, EdDSA: -8, ES384: -35, ES512: -36, Ed25519: -19, Ed448: -53 } as const;

export const CoseKty = { OKP: 1, EC2: 2, Symmetric: 4 } as const;

/** COSE elliptic curves (algs-11 §7.1). */
export const CoseCurve = { P256: 1, P384: 2, P521: 3, X25519: 4, X448: 5, Ed25519: 6, Ed448: 7 } as const;
