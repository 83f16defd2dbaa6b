/** EDHOC credentials for a client and a server, for the EDHOC-over-CoAP tests. */
import { type KeyObject } from 'node:crypto';
import { coseKeyFromKeyObject, encodeCcs, generatePrivateKey, CoseCurve } from '../../src/cose/index.js';
import { ccsCredential, CredentialStore, type EdhocMethod, type InitiatorConfig, type ResponderConfig } from '../../src/edhoc/index.js';

/** Suite → [signature key, static DH key] generators. */
const KEYS: Record<number, { sign: () => KeyObject; dh: () => KeyObject }> = {
  0: { sign: () => generatePrivateKey(CoseCurve.Ed25519), dh: () => generatePrivateKey(CoseCurve.X25519) },
  2: { sign: () => generatePrivateKey(CoseCurve.P256), dh: () => generatePrivateKey(CoseCurve.P256) },
  24: { sign: () => generatePrivateKey(CoseCurve.P384), dh: () => generatePrivateKey(CoseCurve.P384) },
};

export interface EdhocPeers {
  readonly initiator: InitiatorConfig;
  readonly responder: ResponderConfig;
}

/**
 * An Initiator ("client", kid 0x0a) and a Responder ("server", kid 0x0b) that trust each other's
 * CCS; `names` swaps the subjects for the reverse flow, where the server is the Initiator.
 */
export function edhocPeers(method: EdhocMethod, suite: number, options: { responderSuites?: number[]; initiatorSuites?: number[]; names?: [string, string] } = {}): EdhocPeers {
  const [nameI, nameR] = options.names ?? ['client', 'server'];
  const keys = KEYS[suite]!;
  const initiatorKey = method === 2 || method === 3 ? keys.dh() : keys.sign();
  const responderKey = method === 1 || method === 3 ? keys.dh() : keys.sign();
  const ccsI = encodeCcs({ sub: nameI, coseKey: coseKeyFromKeyObject(initiatorKey, { kid: Uint8Array.of(0x0a) }) });
  const ccsR = encodeCcs({ sub: nameR, coseKey: coseKeyFromKeyObject(responderKey, { kid: Uint8Array.of(0x0b) }) });
  return {
    initiator: { method, suites: options.initiatorSuites ?? [suite], credential: ccsCredential(ccsI, initiatorKey), peers: new CredentialStore().addCcs(ccsR) },
    responder: { suites: options.responderSuites ?? [suite], credentials: [ccsCredential(ccsR, responderKey)], peers: new CredentialStore().addCcs(ccsI) },
  };
}
