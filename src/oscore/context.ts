/**
 * Security context derivation (RFC 8613 §3.2) and the AEAD nonce (§5.2).
 */
import { encode } from 'cbor2';
import { type AeadAlgorithm, DEFAULT_AEAD, DEFAULT_HKDF, aeadAlgorithm, hkdfAlgorithm } from './algorithms.js';
import { OscoreConfigError } from './errors.js';

export interface ContextParams {
  masterSecret: Uint8Array;
  /** Default: the empty byte string (§3.2). */
  masterSalt?: Uint8Array;
  idContext?: Uint8Array;
  senderId: Uint8Array;
  recipientId: Uint8Array;
  /** COSE id; default 10, AES-CCM-16-64-128 (§3.2). */
  aead?: number;
  /** COSE id; default -10, HKDF SHA-256 (§3.2). */
  hkdf?: number;
}

/** What protecting needs (the Sender Context plus the Common Context parts it uses). */
export interface SenderParams {
  senderId: Uint8Array;
  senderKey: Uint8Array;
  commonIv: Uint8Array;
  /** COSE AEAD id. */
  aead: number;
  /** The ID Context, sent as 'kid context' when the caller asks for it (§5.1). */
  idContext?: Uint8Array;
}

/** What verifying needs (the Recipient Context plus the Common Context parts it uses). */
export interface RecipientParams {
  recipientId: Uint8Array;
  recipientKey: Uint8Array;
  commonIv: Uint8Array;
  aead: number;
  idContext?: Uint8Array;
}

export interface DerivedContext {
  aead: number;
  hkdf: number;
  senderId: Uint8Array;
  recipientId: Uint8Array;
  idContext: Uint8Array | undefined;
  senderKey: Uint8Array;
  recipientKey: Uint8Array;
  commonIv: Uint8Array;
  sender: SenderParams;
  recipient: RecipientParams;
}

const copy = (b: Uint8Array): Uint8Array => Uint8Array.from(b);

/**
 * §3.2.1: info = [ id : bstr, id_context : bstr / nil, alg_aead : int / tstr, type : tstr, L : uint ].
 * (cbor2 encodes a Buffer as a tagged object, so everything is passed as a plain Uint8Array.)
 */
export function hkdfInfo(id: Uint8Array, idContext: Uint8Array | undefined, aead: number, type: 'Key' | 'IV', length: number): Uint8Array {
  return encode([copy(id), idContext === undefined ? null : copy(idContext), aead, type, length]);
}

function checkId(what: string, id: Uint8Array, alg: AeadAlgorithm): void {
  // §3.3: "The maximum length of Sender ID in bytes equals the length of the AEAD nonce minus 6";
  // the same bound holds for the Recipient ID, which is the peer's Sender ID.
  if (id.length > alg.maxIdLength) {
    throw new OscoreConfigError(
      `OSCORE ${what} is ${id.length} bytes, but ${alg.name} allows at most ${alg.maxIdLength} (nonce length ${alg.nonceLength} - 6, RFC 8613 §3.3)`,
    );
  }
}

/**
 * Every check deriveContext makes, without deriving: a context that holds its keys back until
 * first use (security-context.ts) still refuses bad parameters when it is made.
 */
export function checkContextParams(params: ContextParams): void {
  const alg = aeadAlgorithm(params.aead ?? DEFAULT_AEAD);
  hkdfAlgorithm(params.hkdf ?? DEFAULT_HKDF);
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

export function deriveContext(params: ContextParams): DerivedContext {
  checkContextParams(params);
  const alg = aeadAlgorithm(params.aead ?? DEFAULT_AEAD);
  const hkdf = hkdfAlgorithm(params.hkdf ?? DEFAULT_HKDF);
  const salt = params.masterSalt ?? new Uint8Array(0);
  const idContext = params.idContext === undefined ? undefined : copy(params.idContext);
  const derive = (id: Uint8Array, type: 'Key' | 'IV', length: number): Uint8Array =>
    hkdf.derive(salt, params.masterSecret, hkdfInfo(id, idContext, alg.id, type, length), length);

  const senderId = copy(params.senderId);
  const recipientId = copy(params.recipientId);
  const senderKey = derive(senderId, 'Key', alg.keyLength);
  const recipientKey = derive(recipientId, 'Key', alg.keyLength);
  const commonIv = derive(new Uint8Array(0), 'IV', alg.nonceLength);
  const common = idContext === undefined ? {} : { idContext };
  return {
    aead: alg.id,
    hkdf: hkdf.id,
    senderId,
    recipientId,
    idContext,
    senderKey,
    recipientKey,
    commonIv,
    sender: { senderId, senderKey, commonIv, aead: alg.id, ...common },
    recipient: { recipientId, recipientKey, commonIv, aead: alg.id, ...common },
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
