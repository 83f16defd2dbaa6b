/**
 * Signature_or_MAC_2/3 (RFC 9528 §5.3.2, §5.4.2) and the static-DH key material of methods 1–3, as
 * steps over a crypto provider (crypto.ts). auth.ts runs the ones other modules use with Node's crypto.
 */
import { concatBytes, encodeCbor } from '../cose/cbor.js';
import { CoseError } from '../cose/error.js';
import { sigStructure1 } from '../cose/structures.js';
import { call, type EdhocCrypto, type Step } from './crypto.js';
import { EdhocConfigError, unspecified } from './errors.js';
import { identifierToCbor, type IdCred } from './identifiers.js';
import { extractStep, hashLength, kdfStep } from './schedule.js';
import type { CipherSuite } from './suites.js';

export interface MacInput {
  /** C_R, in context_2 only. */
  readonly connectionIdR?: Uint8Array;
  readonly idCred: IdCred;
  readonly th: Uint8Array;
  readonly cred: Uint8Array;
  /** The EAD field's bytes as sent (padding included). */
  readonly ead: Uint8Array;
}

/** MAC_2 (label 2) or MAC_3 (label 6); mac_length is the suite's for static DH, else hash_length. */
function computeMac(c: EdhocCrypto, suite: CipherSuite, prk: Uint8Array, label: number, staticDh: boolean, input: MacInput): Step<Uint8Array> {
  const context = concatBytes(
    input.connectionIdR !== undefined ? encodeCbor(identifierToCbor(input.connectionIdR)) : new Uint8Array(0),
    input.idCred.encoded,
    encodeCbor(input.th),
    input.cred,
    input.ead,
  );
  return kdfStep(c, suite, prk, label, context, staticDh ? suite.macLength : hashLength(suite));
}

/** COSE_Sign1 input: protected = << ID_CRED_x >>, external_aad = << TH_x, CRED_x, ? EAD_x >>, payload = MAC_x. */
const toBeSigned = (input: MacInput, mac: Uint8Array): Uint8Array =>
  sigStructure1(input.idCred.encoded, concatBytes(encodeCbor(input.th), input.cred, input.ead), mac);

export function* makeSignatureOrMacStep(c: EdhocCrypto, suite: CipherSuite, prk: Uint8Array, label: number, staticDh: boolean, input: MacInput, privateKey: unknown): Step<Uint8Array> {
  const mac = yield* computeMac(c, suite, prk, label, staticDh, input);
  return staticDh ? mac : yield* call(c.sign(suite.signature, privateKey, toBeSigned(input, mac)));
}

export function* verifySignatureOrMacStep(
  c: EdhocCrypto,
  suite: CipherSuite,
  prk: Uint8Array,
  label: number,
  staticDh: boolean,
  input: MacInput,
  publicKey: unknown,
  received: Uint8Array,
): Step<boolean> {
  const mac = yield* computeMac(c, suite, prk, label, staticDh, input);
  if (staticDh) return received.length === mac.length && c.macEqual(received, mac);
  return yield* call(c.verify(suite.signature, publicKey, toBeSigned(input, mac), received));
}

/** This endpoint's static DH private key for the suite, raw; throws EdhocConfigError when the key is not one. */
export function staticDhPrivate(c: EdhocCrypto, suite: CipherSuite, privateKey: unknown): Uint8Array {
  const key = c.staticDhKey(privateKey);
  if (key === undefined || key.crv !== suite.curve) throw new EdhocConfigError(`a static DH key on COSE curve ${suite.curve} is needed for cipher suite ${suite.id}`);
  return key.d;
}

/** Checks that this endpoint's key fits its role in the method and suite. */
export function checkOwnKey(c: EdhocCrypto, suite: CipherSuite, staticDh: boolean, privateKey: unknown): void {
  if (staticDh) staticDhPrivate(c, suite, privateKey);
  else if (!c.signKeyFits(suite.signature, privateKey)) throw new EdhocConfigError(`a key for COSE algorithm ${suite.signature} is needed for cipher suite ${suite.id}`);
}

/** Whether a key fits, without throwing. */
export function ownKeyFits(c: EdhocCrypto, suite: CipherSuite, staticDh: boolean, privateKey: unknown): boolean {
  try {
    checkOwnKey(c, suite, staticDh, privateKey);
    return true;
  } catch {
    return false;
  }
}

/** The ECDH secret between our private key (raw) and the peer's static public key. */
export function staticDhSecretStep(c: EdhocCrypto, suite: CipherSuite, ownPrivate: Uint8Array, peerKey: unknown): Step<Uint8Array> {
  let parts;
  try {
    parts = c.publicKeyParts(peerKey);
  } catch {
    throw unspecified('peer credential holds no usable key');
  }
  if (parts.crv !== suite.curve) throw unspecified('peer static DH key is not on the cipher suite curve');
  return ecdhStep(c, suite, ownPrivate, parts.x);
}

/** ECDH; an invalid or low-order peer key is EDHOC error 1. */
export function* ecdhStep(c: EdhocCrypto, suite: CipherSuite, ownPrivate: Uint8Array, peerPublic: Uint8Array): Step<Uint8Array> {
  try {
    return yield* call(c.ecdh(suite.curve, ownPrivate, peerPublic));
  } catch (e) {
    if (e instanceof CoseError) throw unspecified(e.message);
    throw e;
  }
}

/** PRK_3e2m (label 1 salt, G_RX) or PRK_4e3m (label 5 salt, G_IY); unchanged without static DH (§4.1.1.2–3). */
export function* chainPrkStep(c: EdhocCrypto, suite: CipherSuite, prk: Uint8Array, saltLabel: number, th: Uint8Array, staticDhSecretValue: Uint8Array | undefined): Step<Uint8Array> {
  if (staticDhSecretValue === undefined) return prk;
  const salt = yield* kdfStep(c, suite, prk, saltLabel, th, hashLength(suite));
  return yield* extractStep(c, suite, salt, staticDhSecretValue);
}
