/**
 * The integer labels of ACE (RFC 9200, RFC 9201, RFC 9203), CWT (RFC 8392) and cnf (RFC 8747), and
 * the small CBOR helpers the ACE messages share. Every payload of the /token, /authz-info and
 * /introspect endpoints is an application/ace+cbor map keyed by these numbers.
 */
import { CborError, concatBytes, decodeStrict, encodeCbor, isBytes, isInt, isMap, type CborValue } from '../cose/cbor.js';

/** RFC 9200 §5.8.5 Table 5, RFC 9201 §3 (req_cnf, cnf, rs_cnf), RFC 9203 §9.2 (nonces, recipient IDs). */
export const AceParam = {
  access_token: 1,
  expires_in: 2,
  req_cnf: 4,
  audience: 5,
  cnf: 8,
  scope: 9,
  /** RFC 9200 §5.9.4: the introspection request's token and the response's active flag. */
  active: 10,
  token: 11,
  client_id: 24,
  error: 30,
  error_description: 31,
  grant_type: 33,
  token_type: 34,
  ace_profile: 38,
  cnonce: 39,
  nonce1: 40,
  rs_cnf: 41,
  nonce2: 42,
  ace_client_recipientid: 43,
  ace_server_recipientid: 44,
  /**
   * draft-ietf-ace-edhoc-oscore-profile §3.4, §14.3: "TBD (value between 1 and 255)"; 49 stands in
   * (47 and 48 are the values key-groupcomm-oscore suggests for its own parameters).
   */
  edhoc_info: 49,
} as const;

/** RFC 8392 §4 claim keys, with scope (RFC 9200 §5.10: 9) and exi (RFC 9200 §5.10.3: 40). */
export const Claim = {
  iss: 1, sub: 2, aud: 3, exp: 4, nbf: 5, iat: 6, cti: 7, cnf: 8, scope: 9, exi: 40,
  /** draft-ietf-ace-edhoc-oscore-profile §14.5: "TBD (value between 1 and 255)"; 49 stands in, as for the parameter. */
  edhoc_info: 49,
} as const;

/** draft-ietf-ace-edhoc-oscore-profile §3.4 Table 1: the EDHOC_Information labels. */
export const EdhocInfo = { session_id: 0, methods: 1, cipher_suites: 2, message_4: 3, comb_req: 4, uri_path: 5 } as const;

/**
 * draft-ietf-ace-edhoc-oscore-profile §4.1: the EAD item ACE-OAuth Access Token, "TBD (value
 * between 24 and 255)"; 24, the value of the draft's own example, stands in. Always sent critical
 * (-24): an RS that does not understand it aborts the session.
 */
export const ACCESS_TOKEN_EAD_LABEL = 24;

/**
 * RFC 8747 §3.1 confirmation methods, with osc (RFC 9203 §9.6: 4). kccs (a CWT Claims Set holding
 * the client's EDHOC credential) is "TBD" in draft-ietf-ace-edhoc-oscore-profile §14.9; 14, the
 * number of the kccs COSE header parameter (RFC 9528 §10.6), stands in until it is assigned.
 */
export const Cnf = { COSE_Key: 1, Encrypted_COSE_Key: 2, kid: 3, osc: 4, kccs: 14 } as const;

/** RFC 9203 §3.2.1 Table 1: the OSCORE_Input_Material labels. */
export const OscoreInput = { id: 0, version: 1, ms: 2, hkdf: 3, alg: 4, salt: 5, contextId: 6 } as const;

/** RFC 9200 §5.3 Table 1: AS Request Creation Hints. */
export const CreationHint = { AS: 1, kid: 2, audience: 5, scope: 9, cnonce: 39 } as const;

/** RFC 9200 §5.8.3 Table 3. */
export const AceErrorCode = {
  invalid_request: 1,
  invalid_client: 2,
  invalid_grant: 3,
  unauthorized_client: 4,
  unsupported_grant_type: 5,
  invalid_scope: 6,
  unsupported_pop_key: 7,
  incompatible_ace_profiles: 8,
} as const;
export type AceErrorName = keyof typeof AceErrorCode;

/** RFC 9200 §5.8.4.1 Table 4. */
export const GrantType = { password: 0, authorization_code: 1, client_credentials: 2, refresh_token: 3 } as const;

/**
 * ace_profile values: coap_oscore is 2 (RFC 9203 §9.1). coap_edhoc_oscore is "TBD (value between 1
 * and 23)" in draft-ietf-ace-edhoc-oscore-profile §14.1; 4 is used here until it is assigned.
 */
export const AceProfile = { coap_dtls: 1, coap_oscore: 2, coap_edhoc_oscore: 4 } as const;

/** A decoded ace+cbor map (integer keys only; anything else is malformed). */
export type AceMap = Map<number, CborValue>;

export class AceFormatError extends Error {
  override readonly name = 'AceFormatError';
}

/** Decodes an application/ace+cbor payload: one CBOR map with integer keys. */
export function decodeAceMap(bytes: Uint8Array): AceMap {
  let value: CborValue;
  try {
    value = decodeStrict(bytes);
  } catch (e) {
    throw new AceFormatError(e instanceof CborError ? e.message : 'invalid CBOR');
  }
  return asIntMap(value, 'the payload');
}

export function asIntMap(value: CborValue | undefined, what: string): AceMap {
  if (!isMap(value)) throw new AceFormatError(`${what} must be a CBOR map`);
  for (const key of value.keys()) if (!isInt(key)) throw new AceFormatError(`${what} has a key that is not an integer`);
  return value as AceMap;
}

export const encodeAceMap = (entries: Iterable<readonly [number, unknown]>): Uint8Array => encodeCbor(new Map(entries));

export function optionalBytes(map: AceMap, key: number, what: string): Uint8Array | undefined {
  const v = map.get(key);
  if (v === undefined) return undefined;
  if (!isBytes(v)) throw new AceFormatError(`${what} must be a byte string`);
  return v;
}

export function requiredBytes(map: AceMap, key: number, what: string): Uint8Array {
  const v = optionalBytes(map, key, what);
  if (v === undefined) throw new AceFormatError(`${what} is missing`);
  return v;
}

export function optionalText(map: AceMap, key: number, what: string): string | undefined {
  const v = map.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new AceFormatError(`${what} must be a text string`);
  return v;
}

export function optionalInt(map: AceMap, key: number, what: string): number | undefined {
  const v = map.get(key);
  if (v === undefined) return undefined;
  if (!isInt(v)) throw new AceFormatError(`${what} must be an integer`);
  return v;
}

/** A scope as text (space-separated scope tokens, RFC 6749 §3.3) or bytes (RFC 9200 §5.8.1). */
export type Scope = string | Uint8Array;

export function optionalScope(map: AceMap, key: number): Scope | undefined {
  const v = map.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string' && !isBytes(v)) throw new AceFormatError('scope must be a text or byte string');
  return v;
}

/** The scope tokens of a text scope (RFC 6749 §3.3: space-delimited); a byte scope is one token. */
export const scopeTokens = (scope: Scope): string[] =>
  typeof scope === 'string' ? scope.split(' ').filter((t) => t.length > 0) : [Buffer.from(scope).toString('hex')];

/**
 * A CBOR map written in the order of `entries`, not sorted: RFC 9203 Fig. 6 lists the claims aud,
 * iat, exp, scope, cnf in that order, and a CWT need not be deterministic CBOR (RFC 8392 §7 only
 * asks that the receiver decode it). Values are encoded deterministically.
 */
export function encodeOrderedMap(entries: ReadonlyArray<readonly [number, unknown]>): Uint8Array {
  if (entries.length >= 24) throw new RangeError('more entries than a one-byte map head holds');
  const MAP_HEAD = 0xa0; // major type 5, the count in the low five bits
  return concatBytes(Uint8Array.of(MAP_HEAD | entries.length), ...entries.flatMap(([k, v]) => [encodeCbor(k), encodeCbor(v)]));
}
