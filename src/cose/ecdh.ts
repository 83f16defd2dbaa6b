/**
 * ECDH as COSE and EDHOC use it (algs-11 §6.3.1, RFC 9528 §3.7 and §9.2).
 *
 * Public keys are what travels: the u-coordinate for X25519/X448, and for P-256/P-384 only the
 * x-coordinate. The shared secret of NIST curves is the x-coordinate of the product, which is the
 * same for both points with that x, so the peer's point is rebuilt with the 0x02 prefix (even y)
 * and Node's ECDH decompresses and validates it (not on the curve → refused). Refused too: x ≥ p
 * (SP 800-56A §5.6.2.3) and, for X25519/X448, a low-order point (an all-zero shared secret,
 * RFC 7748 §6).
 */
import { createECDH, ECDH, diffieHellman, randomBytes } from 'node:crypto';
import { CoseError } from './algorithms.js';
import { bytesView, concatBytes } from './cbor.js';
import { CoseCurve, curveInfo, okpPrivateKey, okpPublicKey, rawKeyParts } from './key.js';

/** Field primes of the NIST curves, for the x < p check. */
const FIELD_PRIME: Readonly<Record<number, bigint>> = {
  [CoseCurve.P256]: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
  [CoseCurve.P384]: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
};

export interface EcdhKeyPair {
  readonly crv: number;
  /** The private scalar (NIST) or the X25519/X448 private key bytes. */
  readonly privateKey: Uint8Array;
  /** What is sent: the x-coordinate (NIST) or the u-coordinate. */
  readonly publicKey: Uint8Array;
}

const ECDH_CURVES = new Set<number>([CoseCurve.P256, CoseCurve.P384, CoseCurve.X25519, CoseCurve.X448]);

function requireEcdhCurve(crv: number): ReturnType<typeof curveInfo> {
  if (!ECDH_CURVES.has(crv)) throw new CoseError(`curve ${crv} is not an ECDH curve`);
  return curveInfo(crv);
}

const bigFrom = (b: Uint8Array): bigint => BigInt(`0x${Buffer.from(b).toString('hex') || '0'}`);

/** The key pair for a given private key (as COSE_Key 'd' holds it). */
export function ecdhKeyPairFromPrivate(crv: number, privateKey: Uint8Array): EcdhKeyPair {
  const info = requireEcdhCurve(crv);
  if (privateKey.length !== info.coordinateLength) throw new CoseError(`ECDH private key must be ${info.coordinateLength} bytes`);
  if (info.openssl !== undefined) {
    const ecdh = createECDH(info.openssl);
    ecdh.setPrivateKey(privateKey);
    return { crv, privateKey, publicKey: bytesView(ecdh.getPublicKey(null, 'compressed')).subarray(1) };
  }
  return { crv, privateKey, publicKey: rawKeyParts(okpPrivateKey(crv, privateKey)).x };
}

/** A fresh ephemeral key pair. */
export function generateEcdhKeyPair(crv: number): EcdhKeyPair {
  const info = requireEcdhCurve(crv);
  if (info.openssl !== undefined) {
    const ecdh = createECDH(info.openssl);
    ecdh.generateKeys();
    // getPrivateKey drops leading zero bytes; COSE_Key 'd' keeps the full length.
    const scalar = new Uint8Array(info.coordinateLength);
    const raw = ecdh.getPrivateKey();
    scalar.set(raw, info.coordinateLength - raw.length);
    return { crv, privateKey: scalar, publicKey: bytesView(ecdh.getPublicKey(null, 'compressed')).subarray(1) };
  }
  return ecdhKeyPairFromPrivate(crv, bytesView(randomBytes(info.coordinateLength)));
}

/** Checks a received public key's encoding and, for NIST curves, that it is a curve point. */
export function validateEcdhPublicKey(crv: number, publicKey: Uint8Array): void {
  const info = requireEcdhCurve(crv);
  // RFC 9528 §3.7 / RFC 9053 §7.1.1: fixed length, leading zeros kept.
  if (publicKey.length !== info.coordinateLength) {
    throw new CoseError(`ECDH public key must be ${info.coordinateLength} bytes, got ${publicKey.length}`);
  }
  if (info.openssl !== undefined) {
    if (bigFrom(publicKey) >= FIELD_PRIME[crv]!) throw new CoseError('ECDH public key x-coordinate is not below the field prime');
    try {
      ECDH.convertKey(Buffer.from(concatBytes(Uint8Array.of(0x02), publicKey)), info.openssl);
    } catch {
      throw new CoseError('ECDH public key is not a point on the curve');
    }
  }
}

/** The ECDH shared secret; throws CoseError for an invalid or low-order peer key. */
export function ecdhSharedSecret(crv: number, privateKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array {
  const info = requireEcdhCurve(crv);
  if (info.openssl !== undefined) {
    validateEcdhPublicKey(crv, peerPublicKey);
    const ecdh = createECDH(info.openssl);
    ecdh.setPrivateKey(privateKey);
    try {
      return bytesView(ecdh.computeSecret(Buffer.from(concatBytes(Uint8Array.of(0x02), peerPublicKey))));
    } catch {
      throw new CoseError('ECDH public key is not a point on the curve');
    }
  }
  validateEcdhPublicKey(crv, peerPublicKey);
  let shared: Uint8Array;
  try {
    shared = bytesView(diffieHellman({ privateKey: okpPrivateKey(crv, privateKey), publicKey: okpPublicKey(crv, peerPublicKey) }));
  } catch {
    throw new CoseError('ECDH with a low-order or invalid public key');
  }
  // RFC 7748 §6.1: an all-zero output means the peer sent a low-order point. OR-accumulate so the
  // check takes the same time for every output.
  let acc = 0;
  for (const b of shared) acc |= b;
  if (acc === 0) throw new CoseError('ECDH with a low-order public key (all-zero shared secret)');
  return shared;
}
