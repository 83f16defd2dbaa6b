/**
 * Ed25519 keys used for X25519 (draft-ietf-core-oscore-groupcomm §2.5.2.1): the pairwise mode
 * with EdDSA credentials maps the peer's Edwards point to its Montgomery u-coordinate,
 * u = (1 + y) / (1 − y) mod p (RFC 7748 §4.1), and uses the own signing key's scalar bytes — the
 * lower 32 bytes of SHA-512(seed), RFC 8032 §5.1.5 step 1 — as the X25519 private key. Node has
 * neither map, so they are written here with BigInt.
 */
import { createHash } from 'node:crypto';
import { CoseError } from '../cose/algorithms.js';

const P = 2n ** 255n - 19n;
/** RFC 8032 §5.1: d = −121665 / 121666 mod p. */
const D = (((-121665n % P) + P) % P) * modPow(121666n, P - 2n) % P;

function modPow(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = ((base % P) + P) % P;
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
  }
  return result;
}

const fromLittleEndian = (bytes: Uint8Array): bigint => {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i -= 1) v = (v << 8n) | BigInt(bytes[i]!);
  return v;
};

function toLittleEndian(v: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0, x = v; i < length; i += 1, x >>= 8n) out[i] = Number(x & 0xffn);
  return out;
}

/**
 * The X25519 public key (u-coordinate) of an Ed25519 public key. Throws CoseError for an encoding
 * RFC 8032 §5.1.3 refuses (y ≥ p, no x for this y) and for y = ±1, which §2.5.2.1 says to abort on
 * (y = 1 has no image, y = −1 maps to the neutral element u = 0).
 */
export function ed25519PublicToX25519(publicKey: Uint8Array): Uint8Array {
  if (publicKey.length !== 32) throw new CoseError(`an Ed25519 public key is 32 bytes, not ${publicKey.length}`);
  const encoded = Uint8Array.from(publicKey);
  encoded[31]! &= 0x7f; // the top bit is the sign of x
  const y = fromLittleEndian(encoded);
  if (y >= P) throw new CoseError('Ed25519 public key: y is not below p (RFC 8032 §5.1.3)');
  if (y === 1n || y === P - 1n) throw new CoseError('Ed25519 public key with y = ±1 has no usable Montgomery form (§2.5.2.1)');
  // RFC 8032 §5.1.3 step 2: x² = (y² − 1) / (d y² + 1) must be a square for the point to exist.
  const y2 = (y * y) % P;
  const x2 = ((y2 - 1n + P) % P) * modPow((D * y2 + 1n) % P, P - 2n) % P;
  if (x2 !== 0n && modPow(x2, (P - 1n) / 2n) !== 1n) throw new CoseError('Ed25519 public key is not a curve point (RFC 8032 §5.1.3)');
  const u = ((1n + y) * modPow((1n - y + P) % P, P - 2n)) % P;
  return toLittleEndian(u, 32);
}

/** The X25519 private key of an Ed25519 seed: the scalar bytes RFC 8032 §5.1.5 derives (X25519 clamps them the same way). */
export function ed25519SeedToX25519(seed: Uint8Array): Uint8Array {
  if (seed.length !== 32) throw new CoseError(`an Ed25519 private key is 32 bytes, not ${seed.length}`);
  return new Uint8Array(createHash('sha512').update(seed).digest().subarray(0, 32));
}
