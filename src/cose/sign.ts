/**
 * COSE signatures (struct-13 §4, algs-11 §2): Sig_structure, COSE_Sign1, EdDSA (Ed25519, Ed448)
 * and ECDSA (ES256, ES384, ES512) with the fixed-length r||s encoding COSE requires (algs-11
 * §2.1: IEEE P1363, which is Node's dsaEncoding 'ieee-p1363', not DER).
 */
import { sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { CoseError } from './algorithms.js';
import { bytesView, decodeStrict, encodeCbor, isBytes, isMap, type CborValue } from './cbor.js';
import { CoseSignAlg } from './ids.js';
import { sigStructure1 } from './structures.js';

export { CoseSignAlg, sigStructure1 };

interface SignAlgInfo {
  readonly id: number;
  readonly name: string;
  /** Digest for ECDSA; null for EdDSA (the curve fixes it). */
  readonly digest: 'sha256' | 'sha384' | 'sha512' | null;
  /** Node key types accepted. */
  readonly keyTypes: readonly string[];
  /** Signature length in bytes, when fixed by the algorithm alone. */
  readonly signatureLength?: number;
}

const SIGN_ALGS: readonly SignAlgInfo[] = [
  { id: CoseSignAlg.ES256, name: 'ES256', digest: 'sha256', keyTypes: ['ec'], signatureLength: 64 },
  { id: CoseSignAlg.ES384, name: 'ES384', digest: 'sha384', keyTypes: ['ec'], signatureLength: 96 },
  { id: CoseSignAlg.ES512, name: 'ES512', digest: 'sha512', keyTypes: ['ec'], signatureLength: 132 },
  { id: CoseSignAlg.EdDSA, name: 'EdDSA', digest: null, keyTypes: ['ed25519', 'ed448'] },
  { id: CoseSignAlg.Ed25519, name: 'Ed25519', digest: null, keyTypes: ['ed25519'], signatureLength: 64 },
  { id: CoseSignAlg.Ed448, name: 'Ed448', digest: null, keyTypes: ['ed448'], signatureLength: 114 },
];

const EC_CURVE_FOR: Readonly<Record<number, string>> = {
  [CoseSignAlg.ES256]: 'prime256v1',
  [CoseSignAlg.ES384]: 'secp384r1',
  [CoseSignAlg.ES512]: 'secp521r1',
};

function signAlg(id: number): SignAlgInfo {
  const a = SIGN_ALGS.find((x) => x.id === id);
  if (a === undefined) throw new CoseError(`unsupported COSE signature algorithm ${id}`);
  return a;
}

/** Whether `key` is of the type `alg` signs with (an ES256 key must be a P-256 key, and so on). */
export function keyFitsSignAlg(alg: number, key: KeyObject): boolean {
  const a = signAlg(alg);
  const type = key.asymmetricKeyType ?? '';
  if (!a.keyTypes.includes(type)) return false;
  if (type === 'ec') return key.asymmetricKeyDetails?.namedCurve === EC_CURVE_FOR[alg];
  return true;
}

/** The length of a signature made with `alg` by `key`. */
export function signatureLength(alg: number, key: KeyObject): number {
  const a = signAlg(alg);
  if (a.signatureLength !== undefined) return a.signatureLength;
  return key.asymmetricKeyType === 'ed448' ? 114 : 64;
}

export function signBytes(alg: number, privateKey: KeyObject, data: Uint8Array): Uint8Array {
  const a = signAlg(alg);
  if (!keyFitsSignAlg(alg, privateKey)) throw new CoseError(`key does not fit ${a.name}`);
  const sig = a.digest === null ? nodeSign(null, data, privateKey) : nodeSign(a.digest, data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return bytesView(sig);
}

/** Never throws: a wrong key type, length or signature is false. */
export function verifyBytes(alg: number, publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    const a = signAlg(alg);
    if (!keyFitsSignAlg(alg, publicKey) || signature.length !== signatureLength(alg, publicKey)) return false;
    return a.digest === null
      ? nodeVerify(null, data, publicKey, signature)
      : nodeVerify(a.digest, data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

export interface CoseSign1 {
  /** The serialized protected header map (bstr contents). */
  readonly protectedHeader: Uint8Array;
  readonly unprotectedHeader: Map<CborValue, CborValue>;
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
}

export function createSign1(
  alg: number,
  privateKey: KeyObject,
  payload: Uint8Array,
  options: { protectedHeader?: Map<CborValue, CborValue>; unprotectedHeader?: Map<CborValue, CborValue>; externalAad?: Uint8Array } = {},
): CoseSign1 {
  const headers = new Map(options.protectedHeader ?? []);
  if (!headers.has(1)) headers.set(1, alg);
  const protectedHeader = encodeCbor(headers);
  const signature = signBytes(alg, privateKey, sigStructure1(protectedHeader, options.externalAad ?? new Uint8Array(0), payload));
  return { protectedHeader, unprotectedHeader: options.unprotectedHeader ?? new Map(), payload, signature };
}

/** COSE_Sign1 as its untagged array [protected, unprotected, payload, signature]. */
export const encodeSign1 = (s: CoseSign1): Uint8Array => encodeCbor([s.protectedHeader, s.unprotectedHeader, s.payload, s.signature]);

export function decodeSign1(bytes: Uint8Array): CoseSign1 {
  const v = decodeStrict(bytes);
  if (!Array.isArray(v) || v.length !== 4) throw new CoseError('COSE_Sign1 must be a 4-element array');
  const [p, u, payload, signature] = v;
  if (!isBytes(p) || !isMap(u) || !isBytes(payload) || !isBytes(signature)) throw new CoseError('malformed COSE_Sign1');
  return { protectedHeader: p, unprotectedHeader: u, payload, signature };
}

/** Verifies with the algorithm named in the protected header. */
export function verifySign1(s: CoseSign1, publicKey: KeyObject, externalAad: Uint8Array = new Uint8Array(0)): boolean {
  let alg: CborValue | undefined;
  try {
    const headers = s.protectedHeader.length === 0 ? new Map() : decodeStrict(s.protectedHeader);
    if (!isMap(headers)) return false;
    alg = headers.get(1);
  } catch {
    return false;
  }
  if (typeof alg !== 'number') return false;
  return verifyBytes(alg, publicKey, sigStructure1(s.protectedHeader, externalAad, s.payload), s.signature);
}
