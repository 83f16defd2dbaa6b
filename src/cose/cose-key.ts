/**
 * COSE_Key (draft-ietf-cose-rfc8152bis-struct-13 §7, algs-11 §7) as CBOR: the curves, labels,
 * encoding and strict parsing. Node-free (the browser build reads CCS credentials with it);
 * key.ts turns COSE_Keys into Node KeyObjects.
 */
import { isBytes, isInt, type CborValue } from './cbor.js';
import { CoseError } from './error.js';
import { CoseCurve, CoseKty } from './ids.js';

export { CoseCurve, CoseKty };

/** COSE_Key labels (struct-13 §7.1, algs-11 §7.1/7.2). */
export const CoseKeyLabel = { kty: 1, kid: 2, alg: 3, crv: -1, x: -2, y: -3, d: -4 } as const;

export interface CoseKey {
  readonly kty: number;
  readonly crv: number;
  readonly x: Uint8Array;
  /** EC2 only: the y-coordinate, or its sign bit (a compressed point), or absent. */
  readonly y?: Uint8Array | boolean;
  readonly d?: Uint8Array;
  readonly kid?: Uint8Array;
  readonly alg?: number;
}

export interface CurveInfo {
  readonly crv: number;
  readonly kty: number;
  /** Name in JWK / Node's asymmetricKeyDetails. */
  readonly jwk: string;
  readonly coordinateLength: number;
  /** OpenSSL curve name for EC2 keys. */
  readonly openssl?: string;
}

export const CURVES: readonly CurveInfo[] = [
  { crv: CoseCurve.P256, kty: CoseKty.EC2, jwk: 'P-256', coordinateLength: 32, openssl: 'prime256v1' },
  { crv: CoseCurve.P384, kty: CoseKty.EC2, jwk: 'P-384', coordinateLength: 48, openssl: 'secp384r1' },
  { crv: CoseCurve.P521, kty: CoseKty.EC2, jwk: 'P-521', coordinateLength: 66, openssl: 'secp521r1' },
  { crv: CoseCurve.X25519, kty: CoseKty.OKP, jwk: 'X25519', coordinateLength: 32 },
  { crv: CoseCurve.X448, kty: CoseKty.OKP, jwk: 'X448', coordinateLength: 56 },
  { crv: CoseCurve.Ed25519, kty: CoseKty.OKP, jwk: 'Ed25519', coordinateLength: 32 },
  { crv: CoseCurve.Ed448, kty: CoseKty.OKP, jwk: 'Ed448', coordinateLength: 57 },
];

export function curveInfo(crv: number): CurveInfo {
  const c = CURVES.find((x) => x.crv === crv);
  if (c === undefined) throw new CoseError(`unsupported COSE curve ${crv}`);
  return c;
}

export function requireLength(what: string, b: Uint8Array, length: number): void {
  if (b.length !== length) throw new CoseError(`${what} must be ${length} bytes, got ${b.length}`);
}

/** COSE_Key as a CBOR map (labels in the canonical order the encoder sorts into). */
export function encodeCoseKey(key: CoseKey): Map<number, CborValue> {
  const m = new Map<number, CborValue>();
  m.set(CoseKeyLabel.kty, key.kty);
  if (key.kid !== undefined) m.set(CoseKeyLabel.kid, key.kid);
  if (key.alg !== undefined) m.set(CoseKeyLabel.alg, key.alg);
  m.set(CoseKeyLabel.crv, key.crv);
  m.set(CoseKeyLabel.x, key.x);
  if (key.y !== undefined) m.set(CoseKeyLabel.y, key.y);
  if (key.d !== undefined) m.set(CoseKeyLabel.d, key.d);
  return m;
}

/** A decoded COSE_Key map, checked for the fields and lengths its kty and crv need. */
export function parseCoseKey(value: CborValue): CoseKey {
  if (!(value instanceof Map)) throw new CoseError('COSE_Key must be a map');
  const kty = value.get(CoseKeyLabel.kty);
  const crv = value.get(CoseKeyLabel.crv);
  const x = value.get(CoseKeyLabel.x);
  const y = value.get(CoseKeyLabel.y);
  const d = value.get(CoseKeyLabel.d);
  const kid = value.get(CoseKeyLabel.kid);
  const alg = value.get(CoseKeyLabel.alg);
  if (!isInt(kty) || (kty !== CoseKty.OKP && kty !== CoseKty.EC2)) throw new CoseError(`unsupported COSE_Key kty ${String(kty)}`);
  if (!isInt(crv)) throw new CoseError('COSE_Key has no curve');
  const info = curveInfo(crv);
  if (info.kty !== kty) throw new CoseError(`COSE_Key curve ${crv} does not belong to kty ${kty}`);
  if (!isBytes(x)) throw new CoseError('COSE_Key has no x');
  requireLength('COSE_Key x', x, info.coordinateLength);
  if (y !== undefined && !isBytes(y) && typeof y !== 'boolean') throw new CoseError('COSE_Key y must be bytes or a sign bit');
  if (isBytes(y)) requireLength('COSE_Key y', y, info.coordinateLength);
  if (kty === CoseKty.OKP && y !== undefined) throw new CoseError('an OKP COSE_Key has no y');
  if (d !== undefined && !isBytes(d)) throw new CoseError('COSE_Key d must be bytes');
  if (kid !== undefined && !isBytes(kid)) throw new CoseError('COSE_Key kid must be bytes');
  if (alg !== undefined && !isInt(alg)) throw new CoseError('COSE_Key alg must be an int');
  return {
    kty,
    crv,
    x,
    ...(y !== undefined ? { y: y as Uint8Array | boolean } : {}),
    ...(d !== undefined ? { d: d as Uint8Array } : {}),
    ...(kid !== undefined ? { kid: kid as Uint8Array } : {}),
    ...(alg !== undefined ? { alg: alg as number } : {}),
  };
}
