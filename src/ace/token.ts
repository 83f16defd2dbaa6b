/**
 * Access tokens: CWTs (RFC 8392) whose claims set is encrypted for one resource server with
 * COSE_Encrypt0 under a key the AS and that RS share (RFC 9203 §3.2: "The use of a CBOR Web Token
 * (CWT) protected with COSE_Encrypt/COSE_Encrypt0 ... is RECOMMENDED"), and their validation by
 * the RS (RFC 9200 §5.10.1.1). Sans-IO: the clock and the random source are the caller's.
 *
 * The claims carry the proof-of-possession key in cnf (RFC 8747): the OSCORE_Input_Material
 * (`osc`, RFC 9203 §3.2.1), the Input Material id alone (`kid`, an update of access rights,
 * RFC 9203 §3.2), or the client's EDHOC credential as a CWT Claims Set (`kccs`,
 * draft-ietf-ace-edhoc-oscore-profile §3.2).
 *
 *   sealToken(claims, asRsKey)           → the token bytes (COSE_Encrypt0, untagged)
 *   openToken(token, keyFor)             → the claims, or TokenError 4.01 (forged, wrong key) / 4.00
 *   checkClaims(claims, expectations)    → TokenError per §5.10.1.1's order: iss, exp, aud, scope
 */
import { randomBytes } from 'node:crypto';
import { ResponseCode } from '../coap/codes.js';
import { CoseAead, coseAead, CoseError, findCoseAead } from '../cose/algorithms.js';
import { CborError, decodeStrict, encodeCbor, isBytes, isInt, type CborValue } from '../cose/cbor.js';
import { decodeEncrypt0, decrypt0, encodeEncrypt0, encrypt0 } from '../cose/encrypt.js';
import {
  AceFormatError,
  asIntMap,
  Claim,
  Cnf,
  EdhocInfo,
  encodeOrderedMap,
  OscoreInput,
  optionalBytes,
  optionalInt,
  optionalScope,
  optionalText,
  requiredBytes,
  type AceMap,
  type Scope,
} from './ace-cbor.js';
import { TEXT_SCOPES, type ScopeFormat } from './scope-format.js';

/** RFC 9203 §3.2.1: the input to an OSCORE Security Context. Only `id` and `ms` are mandatory in this profile. */
export interface OscoreInputMaterial {
  readonly id: Uint8Array;
  readonly ms: Uint8Array;
  readonly version?: number;
  readonly hkdf?: number;
  readonly alg?: number;
  readonly salt?: Uint8Array;
  readonly contextId?: Uint8Array;
}

/** The cnf claim (RFC 8747 §3.1) of an access token in this library's profiles. */
export type Confirmation =
  | { readonly osc: OscoreInputMaterial }
  /** Update of access rights: the Input Material the client already holds (RFC 9203 §3.2). */
  | { readonly kid: Uint8Array }
  /** EDHOC and OSCORE profile: the client's authentication credential, a CCS (its encoded bytes). */
  | { readonly kccs: Uint8Array };

export interface AccessTokenClaims {
  readonly iss?: string;
  readonly sub?: string;
  readonly aud: string;
  /** Seconds since the epoch. */
  readonly iat?: number;
  readonly exp?: number;
  readonly scope: Scope;
  /** The AS's token identifier (RFC 8392 §3.1.7). */
  readonly cti?: Uint8Array;
  readonly cnf: Confirmation;
  /** EDHOC and OSCORE profile (§3.3.1): the token series this token belongs to. */
  readonly edhocInfo?: EdhocInformation;
}

/** draft-ietf-ace-edhoc-oscore-profile §3.4: what this library reads and writes of EDHOC_Information. */
export interface EdhocInformation {
  /** The token series (§3.2). */
  readonly sessionId: Uint8Array;
}

export const encodeEdhocInfo = (info: EdhocInformation): Map<number, CborValue> => new Map([[EdhocInfo.session_id, info.sessionId]]);

/** EDHOC_Information with its session_id; the other (non-prescriptive or unused) fields are ignored. */
export function parseEdhocInfo(value: CborValue | undefined, what: string): EdhocInformation {
  return { sessionId: requiredBytes(asIntMap(value, what), EdhocInfo.session_id, `${what}.session_id`) };
}

/** A key the AS shares with one RS to protect its tokens (RFC 9203 §7: used for nothing else). */
export interface TokenKey {
  /** Sent as the COSE kid so that an RS with several ASes (or keys) picks the right one. */
  readonly kid: Uint8Array;
  readonly key: Uint8Array;
  /** COSE AEAD id; default 10, AES-CCM-16-64-128 (as in RFC 9203 Fig. 4's token). */
  readonly alg?: number;
}

/** Why a token was refused, with the CoAP code RFC 9200 §5.10.1.1 gives the /authz-info answer. */
export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const COSE_ALG = 1;
const COSE_KID = 4;
const COSE_IV = 5;

// ---- OSCORE_Input_Material ------------------------------------------------------------------

export function encodeOscoreInput(m: OscoreInputMaterial): Map<number, CborValue> {
  const map = new Map<number, CborValue>([[OscoreInput.id, m.id]]);
  if (m.version !== undefined) map.set(OscoreInput.version, m.version);
  map.set(OscoreInput.ms, m.ms);
  if (m.hkdf !== undefined) map.set(OscoreInput.hkdf, m.hkdf);
  if (m.alg !== undefined) map.set(OscoreInput.alg, m.alg);
  if (m.salt !== undefined) map.set(OscoreInput.salt, m.salt);
  if (m.contextId !== undefined) map.set(OscoreInput.contextId, m.contextId);
  return map;
}

const KNOWN_INPUT_LABELS = new Set<number>(Object.values(OscoreInput));

/**
 * RFC 9203 §4.2: "if any parameters received in the osc field are unrecognized, the RS must
 * respond with ... 4.00" — so unknown labels, and the text-string algorithm names this library
 * does not map, are refused rather than ignored.
 */
export function parseOscoreInput(value: CborValue | undefined): OscoreInputMaterial {
  const map = asIntMap(value, 'osc');
  for (const key of map.keys()) if (!KNOWN_INPUT_LABELS.has(key)) throw new AceFormatError(`osc has the unrecognized parameter ${key}`);
  const id = requiredBytes(map, OscoreInput.id, 'osc.id');
  const ms = requiredBytes(map, OscoreInput.ms, 'osc.ms');
  const version = optionalInt(map, OscoreInput.version, 'osc.version');
  if (version !== undefined && version !== 1) throw new AceFormatError(`OSCORE version ${version} is not supported`);
  const hkdf = optionalInt(map, OscoreInput.hkdf, 'osc.hkdf');
  const alg = optionalInt(map, OscoreInput.alg, 'osc.alg');
  const salt = optionalBytes(map, OscoreInput.salt, 'osc.salt');
  const contextId = optionalBytes(map, OscoreInput.contextId, 'osc.contextId');
  return {
    id,
    ms,
    ...(version !== undefined ? { version } : {}),
    ...(hkdf !== undefined ? { hkdf } : {}),
    ...(alg !== undefined ? { alg } : {}),
    ...(salt !== undefined ? { salt } : {}),
    ...(contextId !== undefined ? { contextId } : {}),
  };
}

export function encodeConfirmation(cnf: Confirmation): Map<number, CborValue> {
  if ('osc' in cnf) return new Map([[Cnf.osc, encodeOscoreInput(cnf.osc)]]);
  if ('kid' in cnf) return new Map([[Cnf.kid, cnf.kid]]);
  return new Map([[Cnf.kccs, decodeStrict(cnf.kccs)]]);
}

export function parseConfirmation(value: CborValue | undefined): Confirmation {
  const map = asIntMap(value, 'cnf');
  if (map.size !== 1) throw new AceFormatError('cnf must hold exactly one confirmation method');
  const [[method, content]] = [...map];
  switch (method) {
    case Cnf.osc:
      return { osc: parseOscoreInput(content) };
    case Cnf.kid:
      if (!isBytes(content)) throw new AceFormatError('cnf.kid must be a byte string');
      return { kid: content };
    case Cnf.kccs:
      return { kccs: encodeCbor(asIntMap(content, 'cnf.kccs')) };
    default:
      throw new AceFormatError(`cnf method ${String(method)} is not supported`);
  }
}

// ---- the claims set --------------------------------------------------------------------------

/**
 * The CWT Claims Set, claims in the order of RFC 9203 Fig. 6 (aud, iat, exp, scope, cnf) with iss
 * and sub before them and cti before cnf: that figure's claims set comes out byte for byte.
 */
export function encodeClaims(claims: AccessTokenClaims): Uint8Array {
  const entries: Array<readonly [number, unknown]> = [];
  if (claims.iss !== undefined) entries.push([Claim.iss, claims.iss]);
  if (claims.sub !== undefined) entries.push([Claim.sub, claims.sub]);
  entries.push([Claim.aud, claims.aud]);
  if (claims.iat !== undefined) entries.push([Claim.iat, claims.iat]);
  if (claims.exp !== undefined) entries.push([Claim.exp, claims.exp]);
  entries.push([Claim.scope, claims.scope]);
  if (claims.cti !== undefined) entries.push([Claim.cti, claims.cti]);
  entries.push([Claim.cnf, encodeConfirmation(claims.cnf)]);
  if (claims.edhocInfo !== undefined) entries.push([Claim.edhoc_info, encodeEdhocInfo(claims.edhocInfo)]);
  return encodeOrderedMap(entries);
}

export function parseClaims(bytes: Uint8Array): AccessTokenClaims {
  let map: AceMap;
  try {
    map = asIntMap(decodeStrict(bytes), 'the claims set');
  } catch (e) {
    if (e instanceof CborError) throw new AceFormatError(e.message);
    throw e;
  }
  const aud = optionalText(map, Claim.aud, 'aud');
  if (aud === undefined) throw new AceFormatError('the token has no aud claim');
  const scope = optionalScope(map, Claim.scope);
  if (scope === undefined) throw new AceFormatError('the token has no scope claim');
  const iss = optionalText(map, Claim.iss, 'iss');
  const sub = optionalText(map, Claim.sub, 'sub');
  const iat = optionalInt(map, Claim.iat, 'iat');
  const exp = optionalInt(map, Claim.exp, 'exp');
  const cti = optionalBytes(map, Claim.cti, 'cti');
  const edhocInfo = map.has(Claim.edhoc_info) ? parseEdhocInfo(map.get(Claim.edhoc_info), 'edhoc_info') : undefined;
  return {
    aud,
    scope,
    cnf: parseConfirmation(map.get(Claim.cnf)),
    ...(iss !== undefined ? { iss } : {}),
    ...(sub !== undefined ? { sub } : {}),
    ...(iat !== undefined ? { iat } : {}),
    ...(exp !== undefined ? { exp } : {}),
    ...(cti !== undefined ? { cti } : {}),
    ...(edhocInfo !== undefined ? { edhocInfo } : {}),
  };
}

// ---- protection ------------------------------------------------------------------------------

/**
 * The token: COSE_Encrypt0 with the algorithm protected and kid and IV unprotected (the layout of
 * RFC 9203 Fig. 4's token, 83 43 a1 01 0a a2 04 …). The IV is random for every token: under one
 * AS–RS key, a 13-byte random IV repeats with negligible probability, and the AS keeps no
 * counter that a restore from backup could roll back.
 */
export function sealToken(claims: AccessTokenClaims, key: TokenKey, random: (n: number) => Uint8Array = randomBytes): Uint8Array {
  const alg = key.alg ?? CoseAead.AES_CCM_16_64_128;
  const aead = coseAead(alg);
  if (key.key.length !== aead.keyLength) throw new CoseError(`${aead.name} needs a ${aead.keyLength}-byte key, got ${key.key.length}`);
  const protectedHeader = encodeCbor(new Map([[COSE_ALG, alg]]));
  const iv = Uint8Array.from(random(aead.nonceLength));
  const ciphertext = encrypt0(alg, key.key, iv, encodeClaims(claims), protectedHeader, new Uint8Array(0));
  return encodeEncrypt0({ protectedHeader, unprotectedHeader: new Map<CborValue, CborValue>([[COSE_KID, key.kid], [COSE_IV, iv]]), ciphertext });
}

/**
 * Decrypts a token with the key `keyFor` returns for its kid (undefined: no AS this RS trusts
 * uses it). RFC 9200 §5.10.1.1: a failed "verification of the security wrapper" is 4.01; a token
 * whose claims "cannot be obtained" (not a COSE_Encrypt0, bad claims) is 4.00.
 */
export function openToken(token: Uint8Array, keyFor: (kid: Uint8Array) => TokenKey | undefined): AccessTokenClaims {
  let encrypt0;
  try {
    encrypt0 = decodeEncrypt0(token);
  } catch (e) {
    throw new TokenError(ResponseCode.BadRequest, `the access token is not a COSE_Encrypt0: ${(e as Error).message}`);
  }
  const kid = encrypt0.unprotectedHeader.get(COSE_KID);
  const iv = encrypt0.unprotectedHeader.get(COSE_IV);
  let alg: CborValue | undefined;
  try {
    alg = asIntMap(decodeStrict(encrypt0.protectedHeader), 'the protected header').get(COSE_ALG);
  } catch {
    alg = undefined;
  }
  if (!isBytes(kid) || !isBytes(iv) || !isInt(alg)) throw new TokenError(ResponseCode.BadRequest, 'the access token lacks its alg, kid or IV');
  const key = keyFor(kid);
  const aead = findCoseAead(alg);
  // A kid we do not know and an algorithm other than the key's both mean "not from our AS".
  if (key === undefined || (key.alg ?? CoseAead.AES_CCM_16_64_128) !== alg || aead === undefined || iv.length !== aead.nonceLength) {
    throw new TokenError(ResponseCode.Unauthorized, 'the access token is not protected by an AS this server trusts');
  }
  const plaintext = decrypt0(alg, key.key, iv, encrypt0.ciphertext, encrypt0.protectedHeader, new Uint8Array(0));
  if (plaintext === undefined) throw new TokenError(ResponseCode.Unauthorized, 'the access token does not decrypt');
  try {
    return parseClaims(plaintext);
  } catch (e) {
    if (e instanceof AceFormatError) throw new TokenError(ResponseCode.BadRequest, `the access token's claims: ${e.message}`);
    throw e;
  }
}

export interface ClaimExpectations {
  /** The audiences this RS identifies with. */
  readonly audiences: readonly string[];
  /** Seconds since the epoch. */
  readonly now: number;
  /** The issuer this RS expects, when tokens carry iss. */
  readonly issuer?: string;
  /** Scope tokens this RS recognizes; a token with another is refused (4.00). */
  readonly knownScopes?: ReadonlySet<string>;
  /** How the token's scope is written (scope-format.ts); default text tokens. */
  readonly scopeFormat?: ScopeFormat;
}

/** RFC 9200 §5.10.1.1: "Errors are returned when claim checks fail, in the order of priority of this list". */
export function checkClaims(claims: AccessTokenClaims, expect: ClaimExpectations): void {
  if (claims.iss !== undefined && expect.issuer !== undefined && claims.iss !== expect.issuer) throw new TokenError(ResponseCode.Unauthorized, `the token was issued by "${claims.iss}", not this server's AS`);
  if (claims.exp !== undefined && claims.exp <= expect.now) throw new TokenError(ResponseCode.Unauthorized, 'the access token has expired');
  if (!expect.audiences.includes(claims.aud)) throw new TokenError(ResponseCode.Forbidden, `the access token is for the audience "${claims.aud}"`);
  const unknown = expect.knownScopes && (expect.scopeFormat ?? TEXT_SCOPES).tokens(claims.scope).filter((t) => !expect.knownScopes!.has(t));
  if (unknown && unknown.length > 0) throw new TokenError(ResponseCode.BadRequest, `unknown scope ${unknown.join(' ')}`);
}
