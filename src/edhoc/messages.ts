/**
 * Encoding and strict parsing of the EDHOC messages and plaintexts (RFC 9528 §5, App. C.1).
 * Each parser throws EdhocError (code 1) for anything that is not exactly the specified CBOR
 * sequence — RFC 9529 §4 lists examples of what must be refused.
 */
import { CborError, decodeSequenceStrict, encodeSequence, isBytes, isInt, type CborValue } from '../cose/cbor.js';
import { parseEad, eadToCbor, type EadItem } from './ead.js';
import { EdhocPeerError, parseErrorMessage, parseSuites, unspecified, encodeSuites } from './errors.js';
import { idCredFromPlaintext, idCredToPlaintext, identifierFromCbor, identifierToCbor, type IdCred } from './identifiers.js';
import { isMethod, type EdhocMethod } from './state.js';

export function decodeMessage(bytes: Uint8Array, what: string): CborValue[] {
  try {
    return decodeSequenceStrict(bytes);
  } catch (e) {
    if (e instanceof CborError) throw unspecified(`${what} is not valid deterministic CBOR`);
    throw e;
  }
}

/**
 * A message a peer answers with can be an error message instead (§6): it starts with an int,
 * where message_2, message_3 and message_4 start with a bstr. Returned as an EdhocPeerError to throw.
 */
export function peerErrorIn(items: readonly CborValue[], bytes: Uint8Array): EdhocPeerError | undefined {
  return isInt(items[0]) ? parseErrorMessage(bytes) : undefined;
}

export interface Message1 {
  readonly method: EdhocMethod;
  readonly suites: number[];
  readonly gX: Uint8Array;
  readonly connectionIdI: Uint8Array;
  /** The EAD_1 CBOR items, not yet interpreted. */
  readonly eadValues: CborValue[];
}

export function encodeMessage1(method: EdhocMethod, suites: readonly number[], gX: Uint8Array, connectionIdI: Uint8Array, ead: readonly EadItem[]): Uint8Array {
  return encodeSequence(method, encodeSuites(suites), gX, identifierToCbor(connectionIdI), ...eadToCbor(ead));
}

/** message_1 = (METHOD, SUITES_I, G_X, C_I, ? EAD_1) (§5.2.1). METHOD is checked by the caller. */
export function parseMessage1(bytes: Uint8Array): Message1 {
  const items = decodeMessage(bytes, 'message_1');
  if (items.length < 4) throw unspecified('message_1 must have at least 4 elements');
  const [method, suites, gX, cI, ...eadValues] = items;
  if (!isInt(method)) throw unspecified('METHOD must be an int');
  if (!isMethod(method)) throw unspecified('Method not supported');
  if (!isBytes(gX)) throw unspecified('G_X must be a byte string');
  return { method, suites: parseSuites(suites, 'SUITES_I'), gX, connectionIdI: identifierFromCbor(cI!, 'C_I'), eadValues };
}

/** message_2 = (G_Y_CIPHERTEXT_2: bstr) (§5.3.1). */
export function parseMessage2(bytes: Uint8Array, publicKeyLength: number): { gY: Uint8Array; ciphertext2: Uint8Array } | EdhocPeerError {
  const items = decodeMessage(bytes, 'message_2');
  const error = peerErrorIn(items, bytes);
  if (error !== undefined) return error;
  if (items.length !== 1 || !isBytes(items[0])) throw unspecified('message_2 must be a single byte string');
  const both = items[0];
  if (both.length <= publicKeyLength) throw unspecified('message_2 too short');
  return { gY: both.subarray(0, publicKeyLength), ciphertext2: both.subarray(publicKeyLength) };
}

/** message_3 and message_4: one bstr (§5.4.1, §5.5.1). */
export function parseSingleCiphertext(bytes: Uint8Array, what: string): Uint8Array | EdhocPeerError {
  const items = decodeMessage(bytes, what);
  const error = peerErrorIn(items, bytes);
  if (error !== undefined) return error;
  if (items.length !== 1 || !isBytes(items[0])) throw unspecified(`${what} must be a single byte string`);
  return items[0];
}

export interface ParsedPlaintext {
  readonly connectionIdR?: Uint8Array;
  readonly idCred: IdCred;
  readonly signatureOrMac: Uint8Array;
  readonly ead: EadItem[];
  /** The EAD field's bytes as received (for context_x and the signature). */
  readonly eadBytes: Uint8Array;
}

/** The lengths Signature_or_MAC may have: the MAC length, or a signature length of the suite's algorithm. */
export type AllowedLengths = readonly number[];

function parseAuthenticated(items: CborValue[], withConnectionId: boolean, lengths: AllowedLengths, understoodEad: ReadonlySet<number>, what: string): ParsedPlaintext {
  const fixed = withConnectionId ? 3 : 2;
  if (items.length < fixed) throw unspecified(`${what} has too few elements`);
  const [first, second, third] = items;
  const connectionIdR = withConnectionId ? identifierFromCbor(first!, 'C_R') : undefined;
  const idCred = idCredFromPlaintext((withConnectionId ? second : first)!, withConnectionId ? 'ID_CRED_R' : 'ID_CRED_I');
  const sig = withConnectionId ? third : second;
  if (!isBytes(sig)) throw unspecified(`${what}: Signature_or_MAC must be a byte string`);
  // §9.3 and RFC 9529 §4.2.5: the length is fixed by the method and suite; a short MAC is refused here.
  if (!lengths.includes(sig.length)) throw unspecified(`${what}: Signature_or_MAC has the wrong length`);
  const eadValues = items.slice(fixed);
  const ead = parseEad(eadValues, understoodEad, what);
  return {
    ...(connectionIdR !== undefined ? { connectionIdR } : {}),
    idCred,
    signatureOrMac: sig,
    ead,
    eadBytes: encodeSequence(...eadValues),
  };
}

/** PLAINTEXT_2 = (C_R, ID_CRED_R / bstr / -24..23, Signature_or_MAC_2, ? EAD_2). */
export const parsePlaintext2 = (plaintext: Uint8Array, lengths: AllowedLengths, understoodEad: ReadonlySet<number>): ParsedPlaintext =>
  parseAuthenticated(decodeMessage(plaintext, 'PLAINTEXT_2'), true, lengths, understoodEad, 'PLAINTEXT_2');

/** PLAINTEXT_3 = (ID_CRED_I / bstr / -24..23, Signature_or_MAC_3, ? EAD_3). */
export const parsePlaintext3 = (plaintext: Uint8Array, lengths: AllowedLengths, understoodEad: ReadonlySet<number>): ParsedPlaintext =>
  parseAuthenticated(decodeMessage(plaintext, 'PLAINTEXT_3'), false, lengths, understoodEad, 'PLAINTEXT_3');

export function encodePlaintext(connectionIdR: Uint8Array | undefined, idCred: IdCred, signatureOrMac: Uint8Array, eadBytes: Uint8Array): Uint8Array {
  const head =
    connectionIdR !== undefined
      ? encodeSequence(identifierToCbor(connectionIdR), idCredToPlaintext(idCred), signatureOrMac)
      : encodeSequence(idCredToPlaintext(idCred), signatureOrMac);
  const out = new Uint8Array(head.length + eadBytes.length);
  out.set(head);
  out.set(eadBytes, head.length);
  return out;
}

export const encodeEad = (ead: readonly EadItem[]): Uint8Array => encodeSequence(...eadToCbor(ead));
