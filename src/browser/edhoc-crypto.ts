/**
 * The EDHOC crypto provider (src/edhoc/crypto.ts) on Web Crypto, for the browser build: SHA-256
 * and SHA-384, HKDF-Extract/Expand from HMAC (Web Crypto's HKDF always extracts, and EDHOC_KDF is
 * Expand alone), the COSE AEADs of crypto/web-crypto.ts, X25519 and P-256 ECDH, Ed25519 and ES256.
 * Every one is in Chromium's Web Crypto (X25519 and Ed25519 since Chrome 133/137), so no library.
 *
 * Keys are raw COSE_Key parts (WebPrivateKey, WebPublicKey): imported into Web Crypto per use,
 * private ones as PKCS#8 built around the raw scalar or seed (Web Crypto imports neither raw). EDHOC
 * sends only the x-coordinate of a P-256 key (RFC 9528 §3.7); the point is rebuilt with an even y,
 * which gives the same ECDH secret as the odd one, and a P-256 x off the curve is refused here.
 */
import { concatBytes } from '../cose/cbor.js';
import { CoseError } from '../cose/error.js';
import { CoseCurve, CoseHash, CoseSignAlg } from '../cose/ids.js';
import { WEB_AEADS } from '../crypto/web-crypto.js';
import type { EdhocCrypto } from '../edhoc/crypto.js';

/** A private key as COSE_Key 'crv' and 'd' (the X25519/Ed25519 private key bytes or the P-256 scalar). */
export interface WebPrivateKey {
  readonly crv: number;
  readonly d: Uint8Array;
}

/** A public key as COSE_Key 'crv', 'x' and, for P-256, 'y' (absent: rebuilt with an even y). */
export interface WebPublicKey {
  readonly crv: number;
  readonly x: Uint8Array;
  readonly y?: Uint8Array;
}

interface Jwk {
  readonly d?: string;
  readonly x?: string;
}

/** The part of Web Crypto used here (structural: this project compiles without the DOM library). */
interface Subtle {
  digest(algorithm: string, data: Uint8Array): Promise<ArrayBuffer>;
  importKey(format: 'raw' | 'pkcs8', key: Uint8Array, algorithm: object, extractable: boolean, usages: string[]): Promise<unknown>;
  exportKey(format: 'raw', key: unknown): Promise<ArrayBuffer>;
  exportKey(format: 'jwk', key: unknown): Promise<Jwk>;
  generateKey(algorithm: object, extractable: boolean, usages: string[]): Promise<{ privateKey: unknown; publicKey: unknown }>;
  sign(algorithm: object, key: unknown, data: Uint8Array): Promise<ArrayBuffer>;
  verify(algorithm: object, key: unknown, signature: Uint8Array, data: Uint8Array): Promise<boolean>;
  deriveBits(algorithm: object, key: unknown, length: number): Promise<ArrayBuffer>;
}

function subtle(): Subtle {
  const found = (globalThis as { crypto?: { subtle?: Subtle } }).crypto?.subtle;
  if (found === undefined) throw new Error('the Web Crypto API (crypto.subtle) is not available here: serve the page over https or from localhost');
  return found;
}

const HASH_NAMES: ReadonlyMap<number, { readonly name: string; readonly length: number }> = new Map([
  [CoseHash.SHA_256, { name: 'SHA-256', length: 32 }],
  [CoseHash.SHA_384, { name: 'SHA-384', length: 48 }],
]);

function hashName(alg: number): { readonly name: string; readonly length: number } {
  const h = HASH_NAMES.get(alg);
  if (h === undefined) throw new CoseError(`COSE hash ${alg} is not available with Web Crypto here`);
  return h;
}

const AEADS = new Map(WEB_AEADS.map((a) => [a.id, a]));

function aead(alg: number): (typeof WEB_AEADS)[number] {
  const a = AEADS.get(alg);
  if (a === undefined) throw new CoseError(`COSE AEAD ${alg} is not available with Web Crypto (supported: ${WEB_AEADS.map((x) => x.id).join(', ')})`);
  return a;
}

async function hmac(hash: string, key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await subtle().importKey('raw', key.slice(), { name: 'HMAC', hash }, false, ['sign']);
  return new Uint8Array(await subtle().sign({ name: 'HMAC' }, k, data.slice()));
}

/** PKCS#8 (RFC 5958) around a raw private key: the fixed DER prefix of each curve. */
const PKCS8_PREFIX: ReadonlyMap<number, Uint8Array> = new Map([
  [CoseCurve.X25519, fromHexConstant('302e020100300506032b656e04220420')],
  [CoseCurve.Ed25519, fromHexConstant('302e020100300506032b657004220420')],
  // ECPrivateKey (RFC 5915) without the optional public key: Web Crypto computes it.
  [CoseCurve.P256, fromHexConstant('3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420')],
]);

function fromHexConstant(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function fromBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
}

const importPrivate = (crv: number, d: Uint8Array, algorithm: object, usage: string): Promise<unknown> => {
  if (d.length !== 32) throw new CoseError(`a private key on curve ${crv} must be 32 bytes, got ${d.length}`);
  return subtle().importKey('pkcs8', concatBytes(PKCS8_PREFIX.get(crv)!, d), algorithm, false, [usage]);
};

// P-256 (SEC 2 §2.4.2): y² = x³ − 3x + b over GF(p), p ≡ 3 (mod 4) so a square root is a power.
const P256_P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const P256_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;

function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let b = base % modulus;
  for (let e = exponent; e > 0n; e >>= 1n) {
    if ((e & 1n) === 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
  }
  return result;
}

const toBig = (bytes: Uint8Array): bigint => bytes.reduce((n, byte) => (n << 8n) | BigInt(byte), 0n);

function fromBig(n: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let v = n;
  for (let i = length - 1; i >= 0; i -= 1) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** The uncompressed P-256 point 04 || x || y with an even y; CoseError when x is not on the curve (SP 800-56A §5.6.2.3). */
export function p256Point(x: Uint8Array): Uint8Array {
  if (x.length !== 32) throw new CoseError(`ECDH public key must be 32 bytes, got ${x.length}`);
  const xn = toBig(x);
  if (xn >= P256_P) throw new CoseError('ECDH public key x-coordinate is not below the field prime');
  const rhs = (((xn * xn * xn - 3n * xn + P256_B) % P256_P) + P256_P) % P256_P;
  let y = modPow(rhs, (P256_P + 1n) / 4n, P256_P);
  if ((y * y) % P256_P !== rhs) throw new CoseError('ECDH public key is not a point on the curve');
  if ((y & 1n) === 1n) y = P256_P - y;
  return concatBytes(Uint8Array.of(0x04), x, fromBig(y, 32));
}

function checkPublicKey(crv: number, publicKey: Uint8Array): void {
  if (crv === CoseCurve.P256) p256Point(publicKey);
  else if (crv === CoseCurve.X25519) {
    if (publicKey.length !== 32) throw new CoseError(`ECDH public key must be 32 bytes, got ${publicKey.length}`);
  } else throw new CoseError(`ECDH on COSE curve ${crv} is not available with Web Crypto here`);
}

const ECDH_ALGORITHM = (crv: number): object => (crv === CoseCurve.P256 ? { name: 'ECDH', namedCurve: 'P-256' } : { name: 'X25519' });

async function ecdh(crv: number, privateKey: Uint8Array, peerPublicKey: Uint8Array): Promise<Uint8Array> {
  checkPublicKey(crv, peerPublicKey);
  const algorithm = ECDH_ALGORITHM(crv);
  let shared: Uint8Array;
  try {
    const own = await importPrivate(crv, privateKey, algorithm, 'deriveBits');
    const raw = crv === CoseCurve.P256 ? p256Point(peerPublicKey) : peerPublicKey.slice();
    const peer = await subtle().importKey('raw', raw, algorithm, false, []);
    shared = new Uint8Array(await subtle().deriveBits({ ...algorithm, public: peer }, own, 256));
  } catch (e) {
    if (e instanceof CoseError) throw e;
    throw new CoseError('ECDH with a low-order or invalid public key');
  }
  // RFC 7748 §6.1: all zero means a low-order point; OR-accumulated so every output takes the same time.
  let acc = 0;
  for (const b of shared) acc |= b;
  if (acc === 0) throw new CoseError('ECDH with a low-order public key (all-zero shared secret)');
  return shared;
}

async function generateEphemeral(crv: number): Promise<{ crv: number; privateKey: Uint8Array; publicKey: Uint8Array }> {
  if (crv !== CoseCurve.P256 && crv !== CoseCurve.X25519) throw new CoseError(`ECDH on COSE curve ${crv} is not available with Web Crypto here`);
  const pair = await subtle().generateKey(ECDH_ALGORITHM(crv), true, ['deriveBits']);
  const jwk = await subtle().exportKey('jwk', pair.privateKey);
  if (jwk.d === undefined || jwk.x === undefined) throw new CoseError('Web Crypto exported no private key');
  return { crv, privateKey: fromBase64Url(jwk.d), publicKey: fromBase64Url(jwk.x) };
}

/** The key pair of a given ECDH private key (RFC 9529's fixed ephemeral keys, for one): Web Crypto computes the public part. */
export async function webEcdhKeyPair(crv: number, privateKey: Uint8Array): Promise<{ crv: number; privateKey: Uint8Array; publicKey: Uint8Array }> {
  if (crv !== CoseCurve.P256 && crv !== CoseCurve.X25519) throw new CoseError(`ECDH on COSE curve ${crv} is not available with Web Crypto here`);
  if (privateKey.length !== 32) throw new CoseError(`a private key on curve ${crv} must be 32 bytes, got ${privateKey.length}`);
  const key = await subtle().importKey('pkcs8', concatBytes(PKCS8_PREFIX.get(crv)!, privateKey), ECDH_ALGORITHM(crv), true, ['deriveBits']);
  const jwk = await subtle().exportKey('jwk', key);
  if (jwk.x === undefined) throw new CoseError('Web Crypto exported no public key');
  return { crv, privateKey, publicKey: fromBase64Url(jwk.x) };
}

/** The Web Crypto algorithm of a COSE signature algorithm and key curve, or undefined when they do not fit. */
function signatureAlgorithm(alg: number, crv: number): { key: object; sign: object } | undefined {
  if ((alg === CoseSignAlg.EdDSA || alg === CoseSignAlg.Ed25519) && crv === CoseCurve.Ed25519) return { key: { name: 'Ed25519' }, sign: { name: 'Ed25519' } };
  if (alg === CoseSignAlg.ES256 && crv === CoseCurve.P256) return { key: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } };
  return undefined;
}

const isPrivate = (k: unknown): k is WebPrivateKey => typeof k === 'object' && k !== null && typeof (k as WebPrivateKey).crv === 'number' && (k as WebPrivateKey).d instanceof Uint8Array;
const isPublic = (k: unknown): k is WebPublicKey => typeof k === 'object' && k !== null && typeof (k as WebPublicKey).crv === 'number' && (k as WebPublicKey).x instanceof Uint8Array;

export const WEB_EDHOC_CRYPTO: EdhocCrypto = {
  hash: async (alg, data) => new Uint8Array(await subtle().digest(hashName(alg).name, data.slice())),
  // RFC 5869 §2.2: an empty salt is HashLen zero bytes.
  hkdfExtract: (alg, salt, ikm) => hmac(hashName(alg).name, salt.length === 0 ? new Uint8Array(hashName(alg).length) : salt, ikm),
  async hkdfExpand(alg, prk, info, length) {
    const { name, length: hashLength } = hashName(alg);
    if (!Number.isInteger(length) || length < 0 || length > 255 * hashLength) throw new CoseError(`HKDF-Expand with ${name} cannot produce ${length} bytes`);
    const out = new Uint8Array(Math.ceil(length / hashLength) * hashLength);
    let previous: Uint8Array = new Uint8Array(0);
    for (let i = 1; (i - 1) * hashLength < length; i += 1) {
      previous = await hmac(name, prk, concatBytes(previous, info, Uint8Array.of(i)));
      out.set(previous, (i - 1) * hashLength);
    }
    return out.subarray(0, length);
  },
  aeadLengths: (alg) => aead(alg),
  aeadSeal: (alg, key, nonce, aad, plaintext) => aead(alg).seal(key, nonce, aad, plaintext),
  aeadOpen: (alg, key, nonce, aad, ciphertext) => aead(alg).open(key, nonce, aad, ciphertext),
  generateEphemeral,
  validatePublicKey: checkPublicKey,
  ecdh,
  async sign(alg, privateKey, data) {
    const algorithm = isPrivate(privateKey) ? signatureAlgorithm(alg, privateKey.crv) : undefined;
    if (algorithm === undefined || !isPrivate(privateKey)) throw new CoseError(`key does not fit COSE algorithm ${alg}`);
    const key = await importPrivate(privateKey.crv, privateKey.d, algorithm.key, 'sign');
    return new Uint8Array(await subtle().sign(algorithm.sign, key, data.slice()));
  },
  async verify(alg, publicKey, data, signature) {
    try {
      const algorithm = isPublic(publicKey) ? signatureAlgorithm(alg, publicKey.crv) : undefined;
      if (algorithm === undefined || !isPublic(publicKey) || signature.length !== 64) return false;
      const raw = publicKey.crv === CoseCurve.P256 ? (publicKey.y !== undefined ? concatBytes(Uint8Array.of(0x04), publicKey.x, publicKey.y) : p256Point(publicKey.x)) : publicKey.x.slice();
      const key = await subtle().importKey('raw', raw, algorithm.key, false, ['verify']);
      return await subtle().verify(algorithm.sign, key, signature.slice(), data.slice());
    } catch {
      return false;
    }
  },
  signKeyFits: (alg, privateKey) => isPrivate(privateKey) && signatureAlgorithm(alg, privateKey.crv) !== undefined,
  staticDhKey: (privateKey) => (isPrivate(privateKey) && (privateKey.crv === CoseCurve.X25519 || privateKey.crv === CoseCurve.P256) ? privateKey : undefined),
  publicKeyParts(publicKey) {
    if (!isPublic(publicKey)) throw new CoseError('not a public key');
    return publicKey;
  },
  macEqual(a, b) {
    if (a.length !== b.length) return false;
    let difference = 0;
    for (let i = 0; i < a.length; i += 1) difference |= a[i]! ^ b[i]!;
    return difference === 0;
  },
};
