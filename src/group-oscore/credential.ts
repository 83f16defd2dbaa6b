/**
 * Authentication credentials of group members (draft-ietf-core-oscore-groupcomm §2.4): CWT Claims
 * Sets (RFC 8392) carrying a COSE_Key, kept as the exact bytes the Group Manager distributed —
 * they enter the external_aad and the pairwise key derivation as opaque data. From a credential
 * come the public key that verifies countersignatures and the one that ECDH uses.
 */
import type { KeyObject } from 'node:crypto';
import { CoseError } from '../cose/algorithms.js';
import { parseCcs } from '../cose/cwt.js';
import { ecdhSharedSecret, ecdhKeyPairFromPrivate } from '../cose/ecdh.js';
import { CoseCurve, CoseKty, coseKeyToPrivateKey, coseKeyToPublicKey, type CoseKey } from '../cose/key.js';
import { keyFitsSignAlg } from '../cose/sign.js';
import { ed25519PublicToX25519, ed25519SeedToX25519 } from './montgomery.js';

/** A member's (or the Group Manager's) credential, parsed once. */
export interface AuthCredential {
  /** The untagged CCS, byte for byte as distributed (§2.4). */
  readonly bytes: Uint8Array;
  readonly coseKey: CoseKey;
  readonly publicKey: KeyObject;
}

export function parseAuthCredential(bytes: Uint8Array): AuthCredential {
  const ccs = parseCcs(bytes);
  return { bytes: Uint8Array.from(bytes), coseKey: ccs.coseKey, publicKey: coseKeyToPublicKey(ccs.coseKey) };
}

/** The 'sub' claim of a CCS (a member's name, as the Group Manager wrote it), if it has one. */
export function credentialSubject(ccs: Uint8Array): string | undefined {
  try {
    return parseCcs(ccs).sub;
  } catch {
    return undefined;
  }
}

/** The endpoint's own credential and the private key that goes with it. */
export interface OwnCredential extends AuthCredential {
  /** The COSE_Key 'd': an Ed25519 seed or a P-256 scalar. Never logged. */
  readonly privateBytes: Uint8Array;
  readonly privateKey: KeyObject;
}

export function ownCredential(ccsBytes: Uint8Array, privateBytes: Uint8Array): OwnCredential {
  const credential = parseAuthCredential(ccsBytes);
  const privateKey = coseKeyToPrivateKey({ ...credential.coseKey, d: privateBytes });
  // The private key must be the one the credential names, or every signature would fail elsewhere.
  const derived = coseKeyToPublicKey({ ...credential.coseKey, ...publicPart(privateKey) });
  if (!derived.equals(credential.publicKey)) throw new CoseError('the private key does not belong to the credential');
  return { ...credential, privateBytes: Uint8Array.from(privateBytes), privateKey };
}

function publicPart(privateKey: KeyObject): { x: Uint8Array; y?: Uint8Array } {
  const jwk = privateKey.export({ format: 'jwk' }) as { x: string; y?: string };
  const x = new Uint8Array(Buffer.from(jwk.x, 'base64url'));
  return jwk.y === undefined ? { x } : { x, y: new Uint8Array(Buffer.from(jwk.y, 'base64url')) };
}

/** Whether a credential can sign/verify with the group's Signature Algorithm (§2.1.8). */
export const credentialFitsSignature = (credential: AuthCredential, signatureAlg: number): boolean =>
  keyFitsSignAlg(signatureAlg, credential.publicKey);

/**
 * The static-static ECDH shared secret of §2.5.1 between our key and the peer's credential:
 * P-256 keys as they are (x-only is enough, the x of the product does not depend on y's sign),
 * X25519 as is, Ed25519 through the Montgomery map of §2.5.2.1. Throws CoseError on an unusable
 * or invalid peer key (low order, not on the curve, a different curve).
 */
export function staticSharedSecret(own: OwnCredential, peer: AuthCredential): Uint8Array {
  const mine = own.coseKey;
  const theirs = peer.coseKey;
  if (mine.kty !== theirs.kty) throw new CoseError('pairwise mode between keys of different types');
  if (mine.kty === CoseKty.EC2) {
    if (mine.crv !== theirs.crv) throw new CoseError('pairwise mode between keys on different curves');
    return ecdhSharedSecret(mine.crv, ecdhKeyPairFromPrivate(mine.crv, own.privateBytes).privateKey, theirs.x);
  }
  const toMontgomery = (key: CoseKey, privateBytes?: Uint8Array): Uint8Array =>
    key.crv === CoseCurve.X25519 ? (privateBytes ?? key.x) : key.crv === CoseCurve.Ed25519 ? (privateBytes ? ed25519SeedToX25519(privateBytes) : ed25519PublicToX25519(key.x)) : unsupported(key.crv);
  return ecdhSharedSecret(CoseCurve.X25519, toMontgomery(mine, own.privateBytes), toMontgomery(theirs));
}

function unsupported(crv: number): never {
  throw new CoseError(`pairwise mode does not support curve ${crv}`);
}
