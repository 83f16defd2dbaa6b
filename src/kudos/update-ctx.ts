/**
 * KUDOS key derivation (draft-ietf-core-oscore-key-update §4.2, §4.3.1): updateCtx() and the X
 * byte. Pure functions over the immutable parts of a Security Context (RFC 8613 §3.1).
 */
import { encode } from 'cbor2';
import { hkdfByHmac } from '../cose/algorithms.js';
import { HkdfId } from '../oscore/algorithms.js';
import { type DerivedContext, deriveContext } from '../oscore/context.js';
import { OscoreConfigError } from '../oscore/errors.js';

/** The immutable input parameters of a Security Context (RFC 8613 §3.1/§3.2). */
export interface ContextMaterial {
  masterSecret: Uint8Array;
  masterSalt: Uint8Array;
  idContext?: Uint8Array;
  senderId: Uint8Array;
  recipientId: Uint8Array;
  /** COSE AEAD id. */
  aead: number;
  /** COSE HKDF id (-10 HKDF SHA-256, -11 HKDF SHA-512). */
  hkdf: number;
}

/** §4.1: the bits of the 'x' byte. */
export const X_Z = 0x40;
export const X_B = 0x20;
export const X_P = 0x10;
export const X_M = 0x0f;

export interface XBits {
  /** 1: convergent (protected with CTX_NEW); 0: divergent (protected with CTX_TEMP). */
  convergent: boolean;
  /** 'b': the sender wishes to preserve observations (§4.5). */
  preserveObservations: boolean;
  /** 'p': no-FS mode (§4.4). */
  noForwardSecrecy: boolean;
}

export function xByte(bits: XBits, nonceLength: number): number {
  if (!Number.isInteger(nonceLength) || nonceLength < 1 || nonceLength > 16) throw new RangeError(`KUDOS nonce must be 1-16 bytes, not ${nonceLength}`);
  return (bits.convergent ? X_Z : 0) | (bits.preserveObservations ? X_B : 0) | (bits.noForwardSecrecy ? X_P : 0) | (nonceLength - 1);
}

export function parseXByte(x: number): XBits {
  return { convergent: (x & X_Z) !== 0, preserveObservations: (x & X_B) !== 0, noForwardSecrecy: (x & X_P) !== 0 };
}

/**
 * One peer's contribution (X, nonce). The 'x' byte enters updateCtx() with the z bit as sent, so
 * the divergent and the convergent message of the same peer give different inputs (§4.3.1).
 */
export interface NoncePair {
  x: number;
  nonce: Uint8Array;
}

/** §4.3.1: "X1 | N1". */
export const pairInput = (pair: NoncePair): Uint8Array => concat(Uint8Array.of(pair.x), pair.nonce);

const LABEL = new TextEncoder().encode('oscore key update');

/**
 * §4.2 Figure 2, KUDOS_Expand_Label: HKDF-Expand(master_secret, ExpandLabel, key_length) with
 * ExpandLabel the TLS 1.3 struct (RFC 8446 §3.4 vectors, §7.1): uint16 length, then the label and
 * the context each behind a one-byte length.
 */
export function kudosExpandLabelInfo(xN: Uint8Array, keyLength: number): Uint8Array {
  if (xN.length > 255) throw new OscoreConfigError(`KUDOS X_N of ${xN.length} bytes exceeds ExpandLabel's context<0..255>`);
  if (keyLength > 0xffff) throw new OscoreConfigError(`Master Secret of ${keyLength} bytes is too long for ExpandLabel`);
  return concat(Uint8Array.of(keyLength >> 8, keyLength & 0xff, LABEL.length), LABEL, Uint8Array.of(xN.length), xN);
}

/** §4.2: the CBOR byte strings of input1 and input2 concatenated in lexicographic order. */
export function xN(input1: Uint8Array, input2: Uint8Array): Uint8Array {
  const a = encode(Uint8Array.from(input1));
  const b = encode(Uint8Array.from(input2));
  return Buffer.compare(a, b) <= 0 ? concat(a, b) : concat(b, a);
}

/** The HMAC behind an OSCORE HKDF algorithm (RFC 8613 §3.1: HKDF SHA-256 / SHA-512). */
function hkdfOf(id: number): ReturnType<typeof hkdfByHmac> {
  if (id === HkdfId.HKDF_SHA_256) return hkdfByHmac(5);
  if (id === HkdfId.HKDF_SHA_512) return hkdfByHmac(7);
  throw new OscoreConfigError(`KUDOS-Expand is defined only for HKDF algorithms (§4.2), not ${id}`);
}

/**
 * §4.2 updateCtx(input1, input2, CTX_IN): Master Salt = X_N, Master Secret = KUDOS-Expand of the
 * old one, everything else carried over. The caller starts the Sender Sequence Number at 0 (or
 * beyond preserved observations, §4.5.1) and the replay window afresh (§4.3.1).
 */
export function updateCtx(input1: Uint8Array, input2: Uint8Array, ctxIn: ContextMaterial): ContextMaterial {
  const salt = xN(input1, input2);
  const keyLength = ctxIn.masterSecret.length;
  const masterSecret = hkdfOf(ctxIn.hkdf).expand(ctxIn.masterSecret, kudosExpandLabelInfo(salt, keyLength), keyLength);
  return { ...ctxIn, masterSecret: Uint8Array.from(masterSecret), masterSalt: salt };
}

/** RFC 8613 §3.2 for a context's material. */
export function deriveKeys(material: ContextMaterial): DerivedContext {
  return deriveContext({
    masterSecret: material.masterSecret,
    masterSalt: material.masterSalt,
    ...(material.idContext ? { idContext: material.idContext } : {}),
    senderId: material.senderId,
    recipientId: material.recipientId,
    aead: material.aead,
    hkdf: material.hkdf,
  });
}

/**
 * §4.3.4 step 1: the Master Salt of a CTX_NEW split back into its two CBOR byte strings, each
 * decoded to "X | nonce". Undefined when the salt is not a KUDOS X_N (a configured context).
 */
export function splitMasterSalt(salt: Uint8Array): [NoncePair, NoncePair] | undefined {
  const first = readBstr(salt, 0);
  if (!first) return undefined;
  const second = readBstr(salt, first.end);
  if (!second || second.end !== salt.length) return undefined;
  const toPair = (b: Uint8Array): NoncePair | undefined => (b.length >= 2 ? { x: b[0]!, nonce: b.subarray(1) } : undefined);
  const a = toPair(first.value);
  const c = toPair(second.value);
  return a && c ? [a, c] : undefined;
}

/** A definite-length CBOR bstr of under 256 bytes (all that X | nonce can be: at most 17 bytes). */
function readBstr(bytes: Uint8Array, pos: number): { value: Uint8Array; end: number } | undefined {
  const head = bytes[pos];
  if (head === undefined || head >> 5 !== 2) return undefined;
  const info = head & 0x1f;
  let length: number;
  let start = pos + 1;
  if (info < 24) length = info;
  else if (info === 24 && start < bytes.length) length = bytes[start++]!;
  else return undefined;
  if (start + length > bytes.length) return undefined;
  return { value: bytes.subarray(start, start + length), end: start + length };
}

export const samePair = (a: NoncePair, b: NoncePair): boolean => a.x === b.x && Buffer.compare(a.nonce, b.nonce) === 0;

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
