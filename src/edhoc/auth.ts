/**
 * Signature_or_MAC_2/3 (RFC 9528 §5.3.2, §5.4.2) and the static-DH key material of methods 1–3.
 */
import { timingSafeEqual, type KeyObject } from 'node:crypto';
import { CoseError, concatBytes, ecdhSharedSecret, encodeCbor, keyFitsSignAlg, rawKeyParts, sigStructure1, signBytes, verifyBytes } from '../cose/index.js';
import { EdhocConfigError, unspecified } from './errors.js';
import { identifierToCbor, type IdCred } from './identifiers.js';
import { edhocExtract, edhocKdf, hashLength } from './key-schedule.js';
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
function computeMac(suite: CipherSuite, prk: Uint8Array, label: number, staticDh: boolean, input: MacInput): Uint8Array {
  const context = concatBytes(
    input.connectionIdR !== undefined ? encodeCbor(identifierToCbor(input.connectionIdR)) : new Uint8Array(0),
    input.idCred.encoded,
    encodeCbor(input.th),
    input.cred,
    input.ead,
  );
  return edhocKdf(suite, prk, label, context, staticDh ? suite.macLength : hashLength(suite));
}

/** COSE_Sign1 input: protected = << ID_CRED_x >>, external_aad = << TH_x, CRED_x, ? EAD_x >>, payload = MAC_x. */
const toBeSigned = (input: MacInput, mac: Uint8Array): Uint8Array =>
  sigStructure1(input.idCred.encoded, concatBytes(encodeCbor(input.th), input.cred, input.ead), mac);

export function makeSignatureOrMac(suite: CipherSuite, prk: Uint8Array, label: number, staticDh: boolean, input: MacInput, privateKey: KeyObject): Uint8Array {
  const mac = computeMac(suite, prk, label, staticDh, input);
  return staticDh ? mac : signBytes(suite.signature, privateKey, toBeSigned(input, mac));
}

export function verifySignatureOrMac(
  suite: CipherSuite,
  prk: Uint8Array,
  label: number,
  staticDh: boolean,
  input: MacInput,
  publicKey: KeyObject,
  received: Uint8Array,
): boolean {
  const mac = computeMac(suite, prk, label, staticDh, input);
  if (staticDh) return received.length === mac.length && timingSafeEqual(received, mac);
  return verifyBytes(suite.signature, publicKey, toBeSigned(input, mac), received);
}

/** Checks that this endpoint's key fits its role in the method and suite. */
export function checkOwnKey(suite: CipherSuite, staticDh: boolean, privateKey: KeyObject): void {
  if (staticDh) {
    if (privateKey.asymmetricKeyType === 'x25519' || privateKey.asymmetricKeyType === 'x448' || privateKey.asymmetricKeyType === 'ec') {
      if (rawKeyParts(privateKey).crv === suite.curve) return;
    }
    throw new EdhocConfigError(`a static DH key on COSE curve ${suite.curve} is needed for cipher suite ${suite.id}`);
  }
  if (!keyFitsSignAlg(suite.signature, privateKey)) throw new EdhocConfigError(`a key for COSE algorithm ${suite.signature} is needed for cipher suite ${suite.id}`);
}

/** Whether a key fits, without throwing. */
export function ownKeyFits(suite: CipherSuite, staticDh: boolean, privateKey: KeyObject): boolean {
  try {
    checkOwnKey(suite, staticDh, privateKey);
    return true;
  } catch {
    return false;
  }
}

/** The ECDH secret between our private key (raw) and the peer's static public key. */
export function staticDhSecret(suite: CipherSuite, ownPrivate: Uint8Array, peerKey: KeyObject): Uint8Array {
  let parts;
  try {
    parts = rawKeyParts(peerKey);
  } catch {
    throw unspecified('peer credential holds no usable key');
  }
  if (parts.crv !== suite.curve) throw unspecified('peer static DH key is not on the cipher suite curve');
  return ecdhOrError(suite, ownPrivate, parts.x);
}

/** Our static DH private key, raw. */
export const staticPrivate = (privateKey: KeyObject): Uint8Array => rawKeyParts(privateKey).d!;

export function ecdhOrError(suite: CipherSuite, ownPrivate: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  try {
    return ecdhSharedSecret(suite.curve, ownPrivate, peerPublic);
  } catch (e) {
    if (e instanceof CoseError) throw unspecified(e.message);
    throw e;
  }
}

/** PRK_3e2m (label 1 salt, G_RX) or PRK_4e3m (label 5 salt, G_IY); unchanged without static DH (§4.1.1.2–3). */
export function chainPrk(suite: CipherSuite, prk: Uint8Array, saltLabel: number, th: Uint8Array, staticDhSecretValue: Uint8Array | undefined): Uint8Array {
  if (staticDhSecretValue === undefined) return prk;
  const salt = edhocKdf(suite, prk, saltLabel, th, hashLength(suite));
  return edhocExtract(suite, salt, staticDhSecretValue);
}

