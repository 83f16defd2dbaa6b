/**
 * COSE_Key (draft-ietf-cose-rfc8152bis-struct-13 §7, algs-11 §7) for OKP and EC2 keys, to and from
 * Node KeyObjects. Raw OKP and EC2 keys become KeyObjects through JWK (RFC 8037 for OKP).
 */
import { createECDH, ECDH, createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { CoseError } from './algorithms.js';
import { bytesView, concatBytes } from './cbor.js';
import { CoseCurve, CoseKty, CoseKeyLabel, curveInfo, CURVES, requireLength, type CoseKey, type CurveInfo } from './cose-key.js';

export { CoseCurve, CoseKty, CoseKeyLabel, curveInfo, type CoseKey };
export { encodeCoseKey, parseCoseKey } from './cose-key.js';

const b64url = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
const fromB64url = (s: string): Uint8Array => bytesView(Buffer.from(s, 'base64url'));

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

/**
 * A new private key on a COSE curve, made from fresh random bytes (an OKP seed or scalar; an EC2
 * scalar from OpenSSL's ECDH, which draws it in [1, n-1]).
 *
 * Why not `generateKeyPairSync`: on Node 20 a key it made deadlocks its process when a garbage
 * collection lands inside that key's export (JWK, PEM or DER): the export holds the key's mutex
 * while allocating, and the collection runs the destructor of the finished key-generation job,
 * which takes the same mutex. Keys built by `createPrivateKey` have no such job.
 */
export function generatePrivateKey(crv: number): KeyObject {
  const info = curveInfo(crv);
  if (info.kty === CoseKty.OKP) return okpPrivateKey(crv, bytesView(randomBytes(info.coordinateLength)));
  const ecdh = createECDH(info.openssl!);
  ecdh.generateKeys();
  const pub = bytesView(ecdh.getPublicKey());
  const n = info.coordinateLength;
  const d = bytesView(ecdh.getPrivateKey());
  const scalar = d.length === n ? d : concatBytes(new Uint8Array(n - d.length), d);
  return createPrivateKey({ key: { kty: 'EC', crv: info.jwk, x: b64url(pub.subarray(1, 1 + n)), y: b64url(pub.subarray(1 + n)), d: b64url(scalar) }, format: 'jwk' });
}

/** A new key pair on a COSE curve (see `generatePrivateKey` for why not `generateKeyPairSync`). */
export function generateKeyPairOn(crv: number): { privateKey: KeyObject; publicKey: KeyObject } {
  const privateKey = generatePrivateKey(crv);
  return { privateKey, publicKey: createPublicKey(privateKey) };
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
