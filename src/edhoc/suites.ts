/**
 * EDHOC cipher suites (RFC 9528 §3.6, §10.2).
 *
 * Suite 25 (ChaCha20/Poly1305, SHAKE256, X448, EdDSA/Ed448) is left out: its EDHOC_Extract and
 * EDHOC_Expand are KMAC256 (§4.1.1, §4.1.2), built on cSHAKE256, which Node's crypto does not
 * offer. Suites 0–6 and 24 use only Node primitives.
 */
import { CoseAead, CoseCurve, CoseHash, CoseSignAlg } from '../cose/ids.js';

export interface CipherSuite {
  readonly id: number;
  /** EDHOC AEAD (COSE id). */
  readonly aead: number;
  /** EDHOC hash (COSE id); EDHOC_Extract/Expand are the HKDF with the matching HMAC. */
  readonly hash: number;
  /** Its output length, bytes. */
  readonly hashLength: number;
  /** EDHOC MAC length for static-DH authentication, bytes. */
  readonly macLength: number;
  /** ECDH curve (COSE crv). */
  readonly curve: number;
  /** Signature algorithm (COSE alg). */
  readonly signature: number;
  readonly appAead: number;
  readonly appHash: number;
}

const suite = (id: number, aead: number, macLength: number, curve: number, signature: number, appAead: number, hash: number = CoseHash.SHA_256): CipherSuite => ({
  id,
  aead,
  hash,
  hashLength: hash === CoseHash.SHA_384 ? 48 : 32,
  macLength,
  curve,
  signature,
  appAead,
  appHash: hash,
});

const SUITES: readonly CipherSuite[] = [
  suite(0, CoseAead.AES_CCM_16_64_128, 8, CoseCurve.X25519, CoseSignAlg.EdDSA, CoseAead.AES_CCM_16_64_128),
  suite(1, CoseAead.AES_CCM_16_128_128, 16, CoseCurve.X25519, CoseSignAlg.EdDSA, CoseAead.AES_CCM_16_64_128),
  suite(2, CoseAead.AES_CCM_16_64_128, 8, CoseCurve.P256, CoseSignAlg.ES256, CoseAead.AES_CCM_16_64_128),
  suite(3, CoseAead.AES_CCM_16_128_128, 16, CoseCurve.P256, CoseSignAlg.ES256, CoseAead.AES_CCM_16_64_128),
  suite(4, CoseAead.CHACHA20_POLY1305, 16, CoseCurve.X25519, CoseSignAlg.EdDSA, CoseAead.CHACHA20_POLY1305),
  suite(5, CoseAead.CHACHA20_POLY1305, 16, CoseCurve.P256, CoseSignAlg.ES256, CoseAead.CHACHA20_POLY1305),
  suite(6, CoseAead.A128GCM, 16, CoseCurve.X25519, CoseSignAlg.ES256, CoseAead.A128GCM),
  suite(24, CoseAead.A256GCM, 16, CoseCurve.P384, CoseSignAlg.ES384, CoseAead.A256GCM, CoseHash.SHA_384),
];

export const SUPPORTED_SUITES: readonly number[] = SUITES.map((s) => s.id);

export const findCipherSuite = (id: number): CipherSuite | undefined => SUITES.find((s) => s.id === id);
