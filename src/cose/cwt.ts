/**
 * CWT Claims Sets (RFC 8392 §3) with a proof-of-possession key (RFC 8747 §3.1: cnf → COSE_Key),
 * as EDHOC's 'kccs' credentials use them (RFC 9528 §3.5.2).
 */
import { CoseError } from './error.js';
import { decodeStrict, encodeCbor, isInt, isMap, originalEncoding, type CborValue } from './cbor.js';
import { encodeCoseKey, parseCoseKey, type CoseKey } from './cose-key.js';

/** RFC 8392 §4 claim keys, and cnf (RFC 8747 §3.1) with its COSE_Key member. */
export const CwtClaim = { iss: 1, sub: 2, aud: 3, exp: 4, nbf: 5, iat: 6, cti: 7, cnf: 8 } as const;
const CNF_COSE_KEY = 1;

export interface CwtClaimsSet {
  readonly sub?: string;
  readonly iss?: string;
  readonly exp?: number;
  readonly nbf?: number;
  readonly coseKey: CoseKey;
  /** The bytes of the claims set, exactly as received or encoded (CRED_x for 'kccs'). */
  readonly encoded: Uint8Array;
}

/** Encodes a CCS {sub?, iss?, cnf: {COSE_Key}} deterministically. */
export function encodeCcs(claims: { sub?: string; iss?: string; exp?: number; nbf?: number; coseKey: CoseKey }): Uint8Array {
  const m = new Map<number, CborValue>();
  if (claims.iss !== undefined) m.set(CwtClaim.iss, claims.iss);
  if (claims.sub !== undefined) m.set(CwtClaim.sub, claims.sub);
  if (claims.exp !== undefined) m.set(CwtClaim.exp, claims.exp);
  if (claims.nbf !== undefined) m.set(CwtClaim.nbf, claims.nbf);
  m.set(CwtClaim.cnf, new Map([[CNF_COSE_KEY, encodeCoseKey(claims.coseKey)]]));
  return encodeCbor(m);
}

/** A decoded claims set map (its original bytes are kept). */
export function parseCcsValue(value: CborValue): CwtClaimsSet {
  if (!isMap(value)) throw new CoseError('a CWT Claims Set must be a map');
  const cnf = value.get(CwtClaim.cnf);
  if (!isMap(cnf)) throw new CoseError('CWT Claims Set has no cnf claim');
  const key = cnf.get(CNF_COSE_KEY);
  if (key === undefined) throw new CoseError('cnf claim has no COSE_Key');
  const sub = value.get(CwtClaim.sub);
  const iss = value.get(CwtClaim.iss);
  const exp = value.get(CwtClaim.exp);
  const nbf = value.get(CwtClaim.nbf);
  if (sub !== undefined && typeof sub !== 'string') throw new CoseError('sub must be a text string');
  if (iss !== undefined && typeof iss !== 'string') throw new CoseError('iss must be a text string');
  if (exp !== undefined && !isInt(exp)) throw new CoseError('exp must be an integer');
  if (nbf !== undefined && !isInt(nbf)) throw new CoseError('nbf must be an integer');
  return {
    coseKey: parseCoseKey(key),
    encoded: originalEncoding(value),
    ...(sub !== undefined ? { sub } : {}),
    ...(iss !== undefined ? { iss } : {}),
    ...(exp !== undefined ? { exp } : {}),
    ...(nbf !== undefined ? { nbf } : {}),
  };
}

export const parseCcs = (bytes: Uint8Array): CwtClaimsSet => parseCcsValue(decodeStrict(bytes));
