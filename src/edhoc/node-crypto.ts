/**
 * The EDHOC crypto provider on Node's crypto (crypto.ts): synchronous, so runSync drives the core
 * with it and the Node API stays synchronous. Keys are KeyObjects.
 */
import { timingSafeEqual, type KeyObject } from 'node:crypto';
import { coseAead, coseHash, CoseHash, hkdfByHmac, CoseHmac, type HkdfByHmac } from '../cose/algorithms.js';
import { ecdhSharedSecret, generateEcdhKeyPair, validateEcdhPublicKey } from '../cose/ecdh.js';
import { CoseError } from '../cose/error.js';
import { rawKeyParts } from '../cose/key.js';
import { keyFitsSignAlg, signBytes, verifyBytes } from '../cose/sign.js';
import type { EdhocCrypto } from './crypto.js';

const HKDF_BY_HASH: ReadonlyMap<number, HkdfByHmac> = new Map([
  [CoseHash.SHA_256, hkdfByHmac(CoseHmac.HMAC_256_256)],
  [CoseHash.SHA_384, hkdfByHmac(CoseHmac.HMAC_384_384)],
]);

function hkdf(alg: number): HkdfByHmac {
  const h = HKDF_BY_HASH.get(alg);
  if (h === undefined) throw new CoseError(`no HKDF for COSE hash ${alg}`);
  return h;
}

const ECDH_KEY_TYPES = new Set(['x25519', 'x448', 'ec']);

export const NODE_EDHOC_CRYPTO: EdhocCrypto = {
  hash: (alg, data) => coseHash(alg).digest(data),
  hkdfExtract: (alg, salt, ikm) => hkdf(alg).extract(salt, ikm),
  hkdfExpand: (alg, prk, info, length) => hkdf(alg).expand(prk, info, length),
  aeadLengths: (alg) => coseAead(alg),
  aeadSeal: (alg, key, nonce, aad, plaintext) => coseAead(alg).seal(key, nonce, aad, plaintext),
  aeadOpen: (alg, key, nonce, aad, ciphertext) => coseAead(alg).open(key, nonce, aad, ciphertext),
  generateEphemeral: generateEcdhKeyPair,
  validatePublicKey: validateEcdhPublicKey,
  ecdh: ecdhSharedSecret,
  sign: (alg, privateKey, data) => signBytes(alg, privateKey as KeyObject, data),
  verify: (alg, publicKey, data, signature) => verifyBytes(alg, publicKey as KeyObject, data, signature),
  signKeyFits: (alg, privateKey) => keyFitsSignAlg(alg, privateKey as KeyObject),
  staticDhKey(privateKey) {
    const key = privateKey as KeyObject;
    if (!ECDH_KEY_TYPES.has(key.asymmetricKeyType ?? '')) return undefined;
    const parts = rawKeyParts(key);
    return parts.d === undefined ? undefined : { crv: parts.crv, d: parts.d };
  },
  publicKeyParts: (publicKey) => rawKeyParts(publicKey as KeyObject),
  macEqual: (a, b) => a.length === b.length && timingSafeEqual(a, b),
};
