/** Small pieces both roles use. */
import { EdhocError, unspecified } from './errors.js';
import type { IdCred } from './identifiers.js';
import type { CipherSuite } from './suites.js';
import { CoseSignAlg } from '../cose/ids.js';

/** Signature_or_MAC lengths a peer may send: the static-DH MAC length, or the suite's signature length(s). */
export function allowedSignatureOrMacLengths(suite: CipherSuite, staticDh: boolean): number[] {
  if (staticDh) return [suite.macLength];
  switch (suite.signature) {
    case CoseSignAlg.ES256:
      return [64];
    case CoseSignAlg.ES384:
      return [96];
    default:
      return [64, 114]; // EdDSA: Ed25519 or Ed448
  }
}

/** Answers who an ID_CRED_x names (CredentialResolver in Node, the browser build's own). */
export interface PeerResolver<P> {
  resolve(idCred: IdCred): P | undefined;
}

/** The peer's credential; unknown → error 3 (§6.4), invalid or refused → error 1. */
export function resolvePeer<P>(resolver: PeerResolver<P>, idCred: IdCred): P {
  let peer: P | undefined;
  try {
    peer = resolver.resolve(idCred);
  } catch (e) {
    if (e instanceof EdhocError) throw e;
    throw unspecified('credential lookup failed');
  }
  if (peer === undefined) throw new EdhocError(3, 'unknown credential referenced');
  return peer;
}

export function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i += 1) out[i] = a[i]! ^ b[i]!;
  return out;
}

