/**
 * A new EDHOC identity: a key pair and its CWT Claims Set (RFC 9528 §3.5.2: `sub` and a COSE_Key
 * in `cnf`, RFC 8747 §3.1), as `coapsec keygen` writes them.
 */
import { type KeyObject } from 'node:crypto';
import { CoseCurve, coseKeyFromKeyObject, CoseSignAlg, encodeCcs, generatePrivateKey } from '../cose/index.js';
import { findCipherSuite } from '../edhoc/index.js';

export type EdhocKeyCurve = 'ed25519' | 'x25519' | 'p-256';
export const EDHOC_KEY_CURVES: readonly EdhocKeyCurve[] = ['ed25519', 'x25519', 'p-256'];

export interface EdhocIdentity {
  readonly privateKey: KeyObject;
  /** The CCS bytes: CRED_x for 'kccs' and the file a peer trusts. */
  readonly ccs: Uint8Array;
}

export function generateEdhocIdentity(curve: EdhocKeyCurve, sub: string, kid: Uint8Array): EdhocIdentity {
  const privateKey =
    curve === 'p-256' ? generatePrivateKey(CoseCurve.P256) : curve === 'ed25519' ? generatePrivateKey(CoseCurve.Ed25519) : generatePrivateKey(CoseCurve.X25519);
  return { privateKey, ccs: encodeCcs({ sub, coseKey: coseKeyFromKeyObject(privateKey, { kid }) }) };
}

/**
 * The key a cipher suite needs for an authentication kind: its ECDH curve for static DH, its
 * signature algorithm's curve for signatures. Undefined when none of the three curves fits.
 */
export function curveForSuite(suiteId: number, authentication: 'static-dh' | 'signature'): EdhocKeyCurve | undefined {
  const suite = findCipherSuite(suiteId);
  if (suite === undefined) return undefined;
  if (authentication === 'static-dh') return suite.curve === CoseCurve.X25519 ? 'x25519' : suite.curve === CoseCurve.P256 ? 'p-256' : undefined;
  // EdDSA in suites 0, 1 and 4 is Ed25519 (RFC 9528 §10.2).
  return suite.signature === CoseSignAlg.EdDSA ? 'ed25519' : suite.signature === CoseSignAlg.ES256 ? 'p-256' : undefined;
}
