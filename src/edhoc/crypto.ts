/**
 * The crypto seam of the EDHOC core: every primitive RFC 9528 needs, behind one provider, and the
 * two ways of driving a protocol step over it.
 *
 * Why generators: Web Crypto answers with Promises, Node's crypto synchronously, and the Node API
 * of EDHOC (EdhocInitiator, EdhocResponder, EdhocSession) is synchronous and used as such by
 * edhoc-coap, ACE, KUDOS and the CLI. Each step of the core is written once, as a generator that
 * yields each provider result (a value or a Promise) and gets the value back: `runSync` drives it
 * with the Node provider (no Promise, no microtask: the Node path keeps its cost and its API),
 * `runAsync` with the Web Crypto one (src/crypto/web-edhoc.ts). Precomputing in the provider
 * would not do: what is hashed, derived and signed depends on each message received.
 *
 * Keys are opaque here (`unknown`): the Node provider takes KeyObjects, the Web one raw COSE key
 * parts; each endpoint's typed configuration (InitiatorConfig, the browser's) fixes which.
 */
import type { EcdhKeyPair } from '../cose/ecdh.js';

export type Awaitable<T> = T | Promise<T>;

/** A step of the core: yields provider results, returns T. */
export type Step<T> = Generator<unknown, T, unknown>;

export interface EdhocCrypto {
  /** The COSE hash `alg` (-16 SHA-256, -43 SHA-384) of `data`. */
  hash(alg: number, data: Uint8Array): Awaitable<Uint8Array>;
  /** HKDF-Extract (RFC 5869 §2.2) with the HMAC of hash `alg`. */
  hkdfExtract(alg: number, salt: Uint8Array, ikm: Uint8Array): Awaitable<Uint8Array>;
  /** HKDF-Expand (RFC 5869 §2.3) with the HMAC of hash `alg`; length at most 255 × HashLen. */
  hkdfExpand(alg: number, prk: Uint8Array, info: Uint8Array, length: number): Awaitable<Uint8Array>;
  /** Key and nonce lengths of COSE AEAD `alg`; throws CoseError when not supported here. */
  aeadLengths(alg: number): { readonly keyLength: number; readonly nonceLength: number };
  aeadSeal(alg: number, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Awaitable<Uint8Array>;
  /** The plaintext, or undefined when the tag does not verify (never rejects). */
  aeadOpen(alg: number, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Awaitable<Uint8Array | undefined>;
  /** A fresh ephemeral key pair on COSE curve `crv` (public key as sent: x or u only). */
  generateEphemeral(crv: number): Awaitable<EcdhKeyPair>;
  /** Throws CoseError unless `publicKey` is a valid encoding of a point on `crv`. */
  validatePublicKey(crv: number, publicKey: Uint8Array): Awaitable<void>;
  /** The ECDH shared secret; throws CoseError for an invalid or low-order peer key (RFC 7748 §6). */
  ecdh(crv: number, privateKey: Uint8Array, peerPublicKey: Uint8Array): Awaitable<Uint8Array>;
  sign(alg: number, privateKey: unknown, data: Uint8Array): Awaitable<Uint8Array>;
  /** Never rejects: a wrong key type, length or signature is false. */
  verify(alg: number, publicKey: unknown, data: Uint8Array, signature: Uint8Array): Awaitable<boolean>;
  /** Whether `privateKey` signs with COSE algorithm `alg`. */
  signKeyFits(alg: number, privateKey: unknown): boolean;
  /** A static DH private key's curve and raw scalar, or undefined when it is not an ECDH key. */
  staticDhKey(privateKey: unknown): { readonly crv: number; readonly d: Uint8Array } | undefined;
  /** A peer's public key as COSE_Key crv and x (u); throws when there is none. */
  publicKeyParts(publicKey: unknown): { readonly crv: number; readonly x: Uint8Array };
  /** Constant-time equality of two MACs of equal length. */
  macEqual(a: Uint8Array, b: Uint8Array): boolean;
}

/** One provider call inside a step: `const v = yield* call(crypto.hash(...))`. */
export function* call<T>(result: Awaitable<T>): Step<T> {
  return (yield result) as T;
}

const isThenable = (v: unknown): v is PromiseLike<unknown> => typeof (v as { then?: unknown } | null)?.then === 'function';

/** Drives a step with a synchronous provider. */
export function runSync<T>(step: Step<T>): T {
  let r = step.next();
  while (r.done !== true) {
    if (isThenable(r.value)) throw new TypeError('an asynchronous crypto provider needs runAsync');
    r = step.next(r.value);
  }
  return r.value;
}

/** Drives a step with an asynchronous provider; a rejection is thrown into the step, where the core's own handling sees it. */
export async function runAsync<T>(step: Step<T>): Promise<T> {
  let r = step.next();
  while (r.done !== true) {
    let value: unknown;
    try {
      value = await r.value;
    } catch (error) {
      r = step.throw(error);
      continue;
    }
    r = step.next(value);
  }
  return r.value;
}

/** Equality of two identifiers or byte strings (not secret: no constant time needed). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}
