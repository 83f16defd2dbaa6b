/** EDHOC credentials for the benchmarks: an Initiator and a Responder that trust each other's CCS. */
import { type KeyObject } from 'node:crypto';
import { coseKeyFromKeyObject, encodeCcs, generatePrivateKey, CoseCurve } from '../src/cose/index.js';
import { ccsCredential, CredentialStore, type EdhocMethod, type InitiatorConfig, type ResponderConfig } from '../src/edhoc/index.js';

function longTermKey(suite: number, staticDh: boolean): KeyObject {
  if (suite === 0) return staticDh ? generatePrivateKey(CoseCurve.X25519) : generatePrivateKey(CoseCurve.Ed25519);
  return generatePrivateKey(CoseCurve.P256);
}

/** Methods 0 (signatures) and 3 (static DH), suites 0 and 2; CCS by kid 0x0a (client) and 0x0b (server). */
export function edhocCredentials(method: EdhocMethod, suite: number): { initiator: InitiatorConfig; responder: ResponderConfig } {
  const staticDh = method === 3;
  const keyI = longTermKey(suite, staticDh);
  const keyR = longTermKey(suite, staticDh);
  const ccsI = encodeCcs({ sub: 'client', coseKey: coseKeyFromKeyObject(keyI, { kid: Uint8Array.of(0x0a) }) });
  const ccsR = encodeCcs({ sub: 'server', coseKey: coseKeyFromKeyObject(keyR, { kid: Uint8Array.of(0x0b) }) });
  const initiator: InitiatorConfig = { method, suites: [suite], credential: ccsCredential(ccsI, keyI), peers: new CredentialStore().addCcs(ccsR) };
  const responder: ResponderConfig = { suites: [suite], methods: [method], credentials: [ccsCredential(ccsR, keyR)], peers: new CredentialStore().addCcs(ccsI) };
  return { initiator, responder };
}
