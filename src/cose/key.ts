/**
 * COSE_Key (draft-ietf-cose-rfc8152bis-struct-13 §7, algs-11 §7) for OKP and EC2 keys, to and from
 * Node KeyObjects. Raw OKP and EC2 keys become KeyObjects through JWK (RFC 8037 for OKP).
 */
import { createECDH, ECDH, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { CoseError } from './algorithms.js';
import { bytesView, concatBytes, isBytes, isInt, type CborValue } from './cbor.js';

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

interface CurveInfo {
  readonly crv: number;
  readonly kty: number;
  /** Name in JWK / Node's asymmetricKeyDetails. */
  readonly jwk: string;
  readonly coordinateLength: number;
  /** OpenSSL curve name for EC2 keys. */
  readonly openssl?: string;
}

const CURVES: readonly CurveInfo[] = [
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

const b64url = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
const fromB64url = (s: string): Uint8Array => bytesView(Buffer.from(s, 'base64url'));

function requireLength(what: string, b: Uint8Array, length: number): void {
  if (b.length !== length) throw new CoseError(`${what} must be ${length} bytes, got ${b.length}`);
}

/** Public and private EC2 coordinates from a private scalar. */
function ec2FromPrivate(info: CurveInfo, d: Uint8Array): { x: Uint8Array; y: Uint8Array } {
  const ecdh = createECDH(info.openssl!);
  ecdh.setPrivateKey(d);
  const pub = bytesView(ecdh.getPublicKey());
  const n = info.coordinateLength;
  return { x: pub.subarray(1, 1 + n), y: pub.subarray(1 + n) };
}

/** A raw OKP private key (seed or scalar) as a KeyObject. */
export function okpPrivateKey(crv: number, d: Uint8Array): KeyObject {
  const info = curveInfo(crv);
  if (info.kty !== CoseKty.OKP) throw new CoseError(`curve ${crv} is not an OKP curve`);
  requireLength('OKP private key', d, info.coordinateLength);
  // JWK, not PKCS#8 DER: OpenSSL 3 runs its whole decoder chain for DER (about 10× slower per
  // import, the largest cost of an EDHOC handshake). For an OKP private JWK Node builds the key
  // from 'd' alone and derives the public part; 'x' only has to be a string.
  return createPrivateKey({ key: { kty: 'OKP', crv: info.jwk, d: b64url(d), x: '' }, format: 'jwk' });
}

/** A raw OKP public key as a KeyObject. */
export function okpPublicKey(crv: number, x: Uint8Array): KeyObject {
  const info = curveInfo(crv);
  if (info.kty !== CoseKty.OKP) throw new CoseError(`curve ${crv} is not an OKP curve`);
  requireLength('OKP public key', x, info.coordinateLength);
  return createPublicKey({ key: { kty: 'OKP', crv: info.jwk, x: b64url(x) }, format: 'jwk' });
}

/** An EC2 private key from its scalar alone (the public point is computed). */
export function ec2PrivateKey(crv: number, d: Uint8Array): KeyObject {
  const info = curveInfo(crv);
  if (info.openssl === undefined) throw new CoseError(`curve ${crv} is not an EC2 curve`);
  requireLength('EC2 private key', d, info.coordinateLength);
  const { x, y } = ec2FromPrivate(info, d);
  return createPrivateKey({ key: { kty: 'EC', crv: info.jwk, x: b64url(x), y: b64url(y), d: b64url(d) }, format: 'jwk' });
}

/** The private key a COSE_Key holds (it must have 'd'). */
export function coseKeyToPrivateKey(key: CoseKey): KeyObject {
  if (key.d === undefined) throw new CoseError('COSE_Key has no private part');
  return curveInfo(key.crv).kty === CoseKty.OKP ? okpPrivateKey(key.crv, key.d) : ec2PrivateKey(key.crv, key.d);
}

/**
 * The public key of a COSE_Key. An EC2 key without a usable y (absent or a sign bit) is
 * decompressed from x with the given sign (false: even y).
 */
export function coseKeyToPublicKey(key: CoseKey): KeyObject {
  const info = curveInfo(key.crv);
  if (info.kty !== key.kty) throw new CoseError(`COSE_Key kty ${key.kty} does not match curve ${key.crv}`);
  if (info.kty === CoseKty.OKP) return okpPublicKey(key.crv, key.x);
  requireLength('EC2 x', key.x, info.coordinateLength);
  let y: Uint8Array;
  if (key.y instanceof Uint8Array) {
    requireLength('EC2 y', key.y, info.coordinateLength);
    y = key.y;
  } else {
    const compressed = concatBytes(Uint8Array.of(key.y === true ? 0x03 : 0x02), key.x);
    y = decompressPoint(info, compressed).subarray(1 + info.coordinateLength);
  }
  try {
    return createPublicKey({ key: { kty: 'EC', crv: info.jwk, x: b64url(key.x), y: b64url(y) }, format: 'jwk' });
  } catch {
    throw new CoseError('EC2 public key is not a point on its curve');
  }
}

/** The uncompressed form of a compressed EC point; throws when x is not on the curve. */
function decompressPoint(info: CurveInfo, compressed: Uint8Array): Uint8Array {
  try {
    return bytesView(ECDH.convertKey(Buffer.from(compressed), info.openssl!, undefined, undefined, 'uncompressed') as Buffer);
  } catch {
    throw new CoseError('EC2 x-coordinate is not on the curve');
  }
}

/** A KeyObject as a COSE_Key (public part only unless `includePrivate`). */
export function coseKeyFromKeyObject(k: KeyObject, extra: { kid?: Uint8Array; alg?: number; includePrivate?: boolean } = {}): CoseKey {
  const jwk = k.export({ format: 'jwk' }) as { kty?: string; crv?: string; x?: string; y?: string; d?: string };
  const info = CURVES.find((c) => c.jwk === jwk.crv);
  if (info === undefined || jwk.x === undefined) throw new CoseError(`unsupported key type ${jwk.kty ?? '?'} ${jwk.crv ?? ''}`);
  return {
    kty: info.kty,
    crv: info.crv,
    x: fromB64url(jwk.x),
    ...(jwk.y !== undefined ? { y: fromB64url(jwk.y) } : {}),
    ...(extra.includePrivate === true && jwk.d !== undefined ? { d: fromB64url(jwk.d) } : {}),
    ...(extra.kid !== undefined ? { kid: extra.kid } : {}),
    ...(extra.alg !== undefined ? { alg: extra.alg } : {}),
  };
}

/** The raw private scalar/seed and public x (or u) of a KeyObject, as COSE_Key 'd' and 'x' carry them. */
export function rawKeyParts(k: KeyObject): { crv: number; x: Uint8Array; d?: Uint8Array } {
  const c = coseKeyFromKeyObject(k, { includePrivate: true });
  return c.d === undefined ? { crv: c.crv, x: c.x } : { crv: c.crv, x: c.x, d: c.d };
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
