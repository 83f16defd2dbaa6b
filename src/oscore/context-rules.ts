/**
 * The parts of security context derivation (RFC 8613 §3.2) and of the AEAD nonce (§5.2) that need
 * no cryptography: the HKDF info, the parameter checks, and the context assembled from the three
 * HKDF outputs. context.ts runs them with Node's synchronous HKDF, the browser build
 * (src/browser/) with WebCrypto's asynchronous one; no Node built-ins here.
 */
import { encode } from 'cbor2';
import type { ContextParams, DerivedContext } from './context.js';
import { OscoreConfigError } from './errors.js';

/** What the checks and the derivation need to know of the AEAD algorithm. */
export interface AeadShape {
  readonly id: number;
  readonly name: string;
  readonly keyLength: number;
  readonly nonceLength: number;
  readonly maxIdLength: number;
}

const copy = (b: Uint8Array): Uint8Array => Uint8Array.from(b);

/**
 * §3.2.1: info = [ id : bstr, id_context : bstr / nil, alg_aead : int / tstr, type : tstr, L : uint ].
 * Written out here (RFC 8949 §3 heads, preferred serialization) rather than through cbor2's generic
 * encoder, which cost 40–70 µs per call — three per context derived, so ≈ 150 µs of a device's
 * first request (issue 21, BENCHMARKS.md h21-devices). Anything outside the integer range of a
 * plain head goes to cbor2 as before.
 */
export function hkdfInfo(id: Uint8Array, idContext: Uint8Array | undefined, aead: number, type: 'Key' | 'IV', length: number): Uint8Array {
  if (!Number.isSafeInteger(aead) || !Number.isSafeInteger(length) || length < 0 || Math.abs(aead) > 0xffffffff || length > 0xffffffff) {
    return encode([copy(id), idContext === undefined ? null : copy(idContext), aead, type, length]);
  }
  const size = 1 + headSize(id.length) + id.length + (idContext === undefined ? 1 : headSize(idContext.length) + idContext.length) + headSize(aead < 0 ? -1 - aead : aead) + 1 + type.length + headSize(length);
  const out = new Uint8Array(size);
  out[0] = 0x85; // array of 5
  let at = writeHead(out, 1, MAJOR_BYTES, id.length);
  out.set(id, at);
  at += id.length;
  if (idContext === undefined) {
    out[at++] = 0xf6; // null
  } else {
    at = writeHead(out, at, MAJOR_BYTES, idContext.length);
    out.set(idContext, at);
    at += idContext.length;
  }
  at = aead < 0 ? writeHead(out, at, MAJOR_NEGATIVE, -1 - aead) : writeHead(out, at, MAJOR_UNSIGNED, aead);
  at = writeHead(out, at, MAJOR_TEXT, type.length);
  for (let i = 0; i < type.length; i++) out[at++] = type.charCodeAt(i); // 'Key' / 'IV': ASCII
  writeHead(out, at, MAJOR_UNSIGNED, length);
  return out;
}

const MAJOR_UNSIGNED = 0;
const MAJOR_NEGATIVE = 1;
const MAJOR_BYTES = 2;
const MAJOR_TEXT = 3;

/** Bytes of a CBOR head for argument `n` (0 ≤ n < 2^32). */
const headSize = (n: number): number => (n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5);

/** Writes the head of major type `major` with argument `n` at `at`; returns the offset after it. */
function writeHead(out: Uint8Array, at: number, major: number, n: number): number {
  const type = major << 5;
  if (n < 24) {
    out[at] = type | n;
    return at + 1;
  }
  if (n < 0x100) {
    out[at] = type | 24;
    out[at + 1] = n;
    return at + 2;
  }
  if (n < 0x10000) {
    out[at] = type | 25;
    out[at + 1] = n >>> 8;
    out[at + 2] = n & 0xff;
    return at + 3;
  }
  out[at] = type | 26;
  out[at + 1] = n >>> 24;
  out[at + 2] = (n >>> 16) & 0xff;
  out[at + 3] = (n >>> 8) & 0xff;
  out[at + 4] = n & 0xff;
  return at + 5;
}

function checkId(what: string, id: Uint8Array, alg: AeadShape): void {
  // §3.3: "The maximum length of Sender ID in bytes equals the length of the AEAD nonce minus 6";
  // the same bound holds for the Recipient ID, which is the peer's Sender ID.
  if (id.length > alg.maxIdLength) {
    throw new OscoreConfigError(
      `OSCORE ${what} is ${id.length} bytes, but ${alg.name} allows at most ${alg.maxIdLength} (nonce length ${alg.nonceLength} - 6, RFC 8613 §3.3)`,
    );
  }
}

/** The checks of the Master Secret and the IDs against `alg` (the algorithms themselves are the caller's to look up). */
export function checkContextInputs(params: ContextParams, alg: AeadShape): void {
  if (!(params.masterSecret instanceof Uint8Array) || params.masterSecret.length === 0) {
    throw new OscoreConfigError('OSCORE Master Secret is missing or empty (RFC 8613 §3.2)');
  }
  checkId('Sender ID', params.senderId, alg);
  checkId('Recipient ID', params.recipientId, alg);
  // §3.3: the Sender ID and Recipient ID of one context must differ, or both directions would use
  // the same key and nonces.
  if (equalBytes(params.senderId, params.recipientId)) {
    throw new OscoreConfigError('OSCORE Sender ID and Recipient ID must differ (RFC 8613 §3.3)');
  }
}

/** One HKDF call of §3.2.1: output = HKDF(salt, ikm, info, length). */
export interface HkdfCall {
  readonly salt: Uint8Array;
  readonly ikm: Uint8Array;
  readonly info: Uint8Array;
  readonly length: number;
}

/** The three HKDF calls of §3.2.1 (Sender Key, Recipient Key, Common IV) and what assembling the context needs. */
export interface DerivationPlan {
  readonly aead: number;
  readonly hkdf: number;
  readonly senderId: Uint8Array;
  readonly recipientId: Uint8Array;
  readonly idContext: Uint8Array | undefined;
  readonly senderKey: HkdfCall;
  readonly recipientKey: HkdfCall;
  readonly commonIv: HkdfCall;
}

/** §3.2.1, after checkContextInputs: the HKDF inputs of a context with AEAD `alg` and HKDF id `hkdf`. */
export function derivationPlan(params: ContextParams, alg: AeadShape, hkdf: number): DerivationPlan {
  const salt = params.masterSalt ?? new Uint8Array(0);
  const idContext = params.idContext === undefined ? undefined : copy(params.idContext);
  const call = (id: Uint8Array, type: 'Key' | 'IV', length: number): HkdfCall => ({ salt, ikm: params.masterSecret, info: hkdfInfo(id, idContext, alg.id, type, length), length });
  const senderId = copy(params.senderId);
  const recipientId = copy(params.recipientId);
  return {
    aead: alg.id,
    hkdf,
    senderId,
    recipientId,
    idContext,
    senderKey: call(senderId, 'Key', alg.keyLength),
    recipientKey: call(recipientId, 'Key', alg.keyLength),
    commonIv: call(new Uint8Array(0), 'IV', alg.nonceLength),
  };
}

/** The context from a plan and its three HKDF outputs. */
export function assembleContext(plan: Pick<DerivationPlan, 'aead' | 'hkdf' | 'senderId' | 'recipientId' | 'idContext'>, senderKey: Uint8Array, recipientKey: Uint8Array, commonIv: Uint8Array): DerivedContext {
  const { aead, hkdf, senderId, recipientId, idContext } = plan;
  const common = idContext === undefined ? {} : { idContext };
  return {
    aead,
    hkdf,
    senderId,
    recipientId,
    idContext,
    senderKey,
    recipientKey,
    commonIv,
    sender: { senderId, senderKey, commonIv, aead, ...common },
    recipient: { recipientId, recipientKey, commonIv, aead, ...common },
  };
}

/**
 * §5.2: S (the ID length) || ID_PIV left-padded to nonce length − 6 || PIV left-padded to 5 bytes,
 * XORed with the Common IV. `id` is the Sender ID of the endpoint that generated the Partial IV.
 */
export function nonce(commonIv: Uint8Array, id: Uint8Array, piv: Uint8Array): Uint8Array {
  const length = commonIv.length;
  const idField = length - 6;
  if (idField < 1) throw new OscoreConfigError(`Common IV of ${length} bytes is too short for an OSCORE nonce (at least 7)`);
  if (id.length > idField) throw new OscoreConfigError(`ID of ${id.length} bytes does not fit a ${length}-byte nonce (RFC 8613 §5.2)`);
  if (piv.length > 5) throw new OscoreConfigError(`Partial IV of ${piv.length} bytes is longer than 5 (RFC 8613 §6.1)`);
  const out = new Uint8Array(length);
  out[0] = id.length;
  out.set(id, 1 + idField - id.length);
  out.set(piv, length - piv.length);
  for (let i = 0; i < length; i++) out[i] ^= commonIv[i]!;
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
