/**
 * An OSCORE context for the browser from a plain object (a page has no credentials file): the
 * input parameters of RFC 8613 §3.2 as hex strings or bytes, derived with Web Crypto, and its
 * Sender Sequence Numbers durable in IndexedDB (Appendix B.1.1, credentials/indexeddb-sequence-store.ts).
 */
import { IndexedDbReservations, ReservedSequence, senderKeyName, type ReservationStorage } from '../credentials/indexeddb-sequence-store.js';
import type { ContextParams } from '../oscore/context.js';
import { OscoreConfigError } from '../oscore/errors.js';
import { hexToBytes } from '../util/bytes.js';
import type { BrowserOscore } from './client.js';
import { deriveContextAsync } from './oscore.js';

/** Byte strings as hex digits or as bytes. */
type Bytes = string | Uint8Array;

export interface OscoreCredentialsObject {
  /** Never log it. */
  masterSecret: Bytes;
  masterSalt?: Bytes;
  idContext?: Bytes;
  senderId: Bytes;
  recipientId: Bytes;
  /** COSE id; default 10, AES-CCM-16-64-128 (§3.2). */
  aead?: number;
  /** COSE id; default -10, HKDF SHA-256 (§3.2). */
  hkdf?: number;
}

export interface OpenOscoreOptions {
  /** Appendix B.1.1's K: numbers reserved per committed write. Default 64. */
  reserve?: number;
  /** Where reservations are kept. Default: the IndexedDB database "coapsec" of the page's origin. */
  storage?: ReservationStorage;
}

function bytesOf(field: string, value: Bytes | undefined): Uint8Array | undefined {
  if (value === undefined || value instanceof Uint8Array) return value;
  const bytes = hexToBytes(value);
  if (bytes === undefined) throw new OscoreConfigError(`OSCORE ${field} must be bytes or hex digits`);
  return bytes;
}

function required(field: string, value: Bytes | undefined): Uint8Array {
  const bytes = bytesOf(field, value);
  if (bytes === undefined) throw new OscoreConfigError(`OSCORE ${field} is missing`);
  return bytes;
}

/** The §3.2 input parameters of the object. Throws OscoreConfigError naming a bad field. */
export function contextParamsOf(object: OscoreCredentialsObject): ContextParams {
  const masterSalt = bytesOf('masterSalt', object.masterSalt);
  const idContext = bytesOf('idContext', object.idContext);
  return {
    masterSecret: required('masterSecret', object.masterSecret),
    senderId: required('senderId', object.senderId),
    recipientId: required('recipientId', object.recipientId),
    ...(masterSalt ? { masterSalt } : {}),
    ...(idContext ? { idContext } : {}),
    ...(object.aead !== undefined ? { aead: object.aead } : {}),
    ...(object.hkdf !== undefined ? { hkdf: object.hkdf } : {}),
  };
}

/** The derived context with its durable sequence numbers, ready for BrowserCoapClient's `oscore`. */
export async function openOscore(object: OscoreCredentialsObject, options: OpenOscoreOptions = {}): Promise<BrowserOscore> {
  const params = contextParamsOf(object);
  const context = await deriveContextAsync(params);
  const storage = options.storage ?? (await IndexedDbReservations.open());
  const sequence = await ReservedSequence.open(storage, await senderKeyName(params), options.reserve ?? 64);
  return { context, sequence };
}
