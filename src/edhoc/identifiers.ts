/**
 * Byte-string identifiers (RFC 9528 §3.3.2) and the compact ID_CRED encoding (§3.5.3.2).
 *
 * A byte string that is itself the one-byte CBOR encoding of an integer −24..23 (0x00–0x17,
 * 0x20–0x37) travels as that integer, every other byte string as a bstr. Both directions are
 * strict: a bstr h'0e' where 0x0e is required is refused (RFC 9529 §4.1.2, §4.1.7), and so is the
 * map {4: kid} where the compact form applies (§4.1.6).
 */
import { decodeStrict, encodeCbor, isBytes, isInt, isMap, originalEncoding, type CborValue } from '../cose/cbor.js';
import { unspecified } from './errors.js';

const isOneByteInt = (b: number): boolean => b <= 0x17 || (b >= 0x20 && b <= 0x37);

/** The CBOR value that represents identifier `id` in a message. */
export function identifierToCbor(id: Uint8Array): number | Uint8Array {
  if (id.length === 1 && isOneByteInt(id[0]!)) return decodeStrict(id) as number;
  return id;
}

/** The identifier a received value stands for; throws EdhocError (code 1) for a non-canonical form. */
export function identifierFromCbor(value: CborValue, what: string): Uint8Array {
  if (isInt(value)) {
    if (value < -24 || value > 23) throw unspecified(`${what} integer out of the range -24..23`);
    return encodeCbor(value);
  }
  if (isBytes(value)) {
    if (value.length === 1 && isOneByteInt(value[0]!)) throw unspecified(`${what} must be encoded as an integer`);
    return value;
  }
  throw unspecified(`${what} must be a byte string or a one-byte integer`);
}

/** COSE header labels that identify credentials. */
export const IdCredLabel = { kid: 4, kccs: 14, kcwt: 13, x5chain: 33, x5t: 34 } as const;

/** ID_CRED_x: a COSE header map, and its encoding (for context_x and the COSE protected header). */
export interface IdCred {
  readonly map: Map<CborValue, CborValue>;
  readonly encoded: Uint8Array;
}

function idCredFromEncoded(encoded: Uint8Array): IdCred {
  const map = decodeStrict(encoded);
  if (!isMap(map)) throw unspecified('ID_CRED must be a map');
  return { map, encoded };
}

export const idCredKid = (kid: Uint8Array): IdCred => idCredFromEncoded(encodeCbor(new Map([[IdCredLabel.kid, kid]])));

/** {14: CCS}: the claims set's own bytes are embedded so CRED_x and ID_CRED_x agree byte for byte. */
export function idCredKccs(ccs: Uint8Array): IdCred {
  const head = encodeCbor(new Map([[IdCredLabel.kccs, 0]]));
  const encoded = new Uint8Array(head.length - 1 + ccs.length);
  encoded.set(head.subarray(0, head.length - 1));
  encoded.set(ccs, head.length - 1);
  return idCredFromEncoded(encoded);
}

export const idCredX5t = (hashAlg: number, hash: Uint8Array): IdCred => idCredFromEncoded(encodeCbor(new Map([[IdCredLabel.x5t, [hashAlg, hash]]])));

/** {33: cert} for one certificate, {33: [certs]} for a chain (RFC 9360 §2). */
export const idCredX5chain = (certs: readonly Uint8Array[]): IdCred =>
  idCredFromEncoded(encodeCbor(new Map([[IdCredLabel.x5chain, certs.length === 1 ? certs[0]! : [...certs]]])));

/** The single kid of an ID_CRED that holds nothing else (the case the compact encoding covers). */
export function soleKid(idCred: IdCred): Uint8Array | undefined {
  if (idCred.map.size !== 1) return undefined;
  const kid = idCred.map.get(IdCredLabel.kid);
  return isBytes(kid) ? kid : undefined;
}

/** ID_CRED_x as it goes into PLAINTEXT_2/3 (§3.5.3.2). */
export function idCredToPlaintext(idCred: IdCred): CborValue {
  const kid = soleKid(idCred);
  return kid !== undefined ? identifierToCbor(kid) : idCred.map;
}

/** The ID_CRED_x a PLAINTEXT_2/3 element stands for. */
export function idCredFromPlaintext(value: CborValue, what: string): IdCred {
  if (isInt(value) || isBytes(value)) return idCredKid(identifierFromCbor(value, what));
  if (!isMap(value)) throw unspecified(`${what} must be a map, a byte string or a one-byte integer`);
  const idCred = { map: value, encoded: originalEncoding(value) };
  if (soleKid(idCred) !== undefined) throw unspecified(`${what} {4: kid} must use the compact encoding`);
  return idCred;
}
