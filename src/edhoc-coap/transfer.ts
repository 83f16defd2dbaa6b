/**
 * EDHOC messages in CoAP payloads: the prefix of every request (RFC 9528 App. A.2: the CBOR
 * `true` before message_1, the server's connection identifier before anything later), the
 * combined payload EDHOC_MSG_3 | OSCORE_PAYLOAD of RFC 9668 §3.2.1, and the EDHOC error response
 * of App. A.2.3. Pure functions over bytes.
 */
import { ContentFormat } from '../coap/content-format.js';
import { ResponseCode } from '../coap/codes.js';
import { concatBytes, CborError, decodeStrict, encodeCbor, isBytes } from '../cose/cbor.js';
import { EdhocError, unspecified } from '../edhoc/errors.js';
import { identifierFromCbor, identifierToCbor } from '../edhoc/identifiers.js';

/** The default EDHOC resource (RFC 9528 §10.7), resource type core.edhoc (§10.10). */
export const EDHOC_PATH = '/.well-known/edhoc';
export const EDHOC_RESOURCE_TYPE = 'core.edhoc';

const CBOR_TRUE = 0xf5;

/** A request to the EDHOC resource, its prefix removed. */
export type PrefixedMessage = { readonly kind: 'message_1'; readonly message: Uint8Array } | { readonly kind: 'session'; readonly connectionId: Uint8Array; readonly message: Uint8Array };

/** `true` || message_1: a new session (A.2.1). */
export const prefixNewSession = (message1: Uint8Array): Uint8Array => concatBytes(Uint8Array.of(CBOR_TRUE), message1);

/** C_x || message: the identifier in its §3.3.2 encoding (a one-byte int where it can be). */
export const prefixWithIdentifier = (connectionId: Uint8Array, message: Uint8Array): Uint8Array => concatBytes(encodeCbor(identifierToCbor(connectionId)), message);

/**
 * The length of the CBOR data item at the start of `bytes` when it is an integer, a byte string
 * or a simple value — what a prefix or EDHOC_MSG_3 can be — or undefined (anything else, or
 * truncated). Preferred encoding is checked afterwards by decodeStrict on exactly these bytes.
 */
function leadingItemLength(bytes: Uint8Array): number | undefined {
  if (bytes.length === 0) return undefined;
  const head = bytes[0]!;
  const major = head >> 5;
  const info = head & 0x1f;
  let argumentBytes: number;
  if (info < 24) argumentBytes = 0;
  else if (info <= 27) argumentBytes = 1 << (info - 24);
  else return undefined;
  if (major === 7) return info >= 20 && info <= 23 ? 1 : undefined;
  if (major > 2 || bytes.length < 1 + argumentBytes) return undefined;
  if (major < 2) return 1 + argumentBytes;
  let length = info < 24 ? info : 0;
  for (let i = 1; i <= argumentBytes; i++) length = length * 256 + bytes[i]!;
  const total = 1 + argumentBytes + length;
  return total <= bytes.length ? total : undefined;
}

/**
 * Splits a request to the EDHOC resource into its prefix and the EDHOC message (A.2). A prefix
 * that is neither `true` nor a well-encoded identifier is a client error (EdhocError 1).
 */
export function splitPrefixed(payload: Uint8Array): PrefixedMessage {
  const length = leadingItemLength(payload);
  if (length === undefined) throw unspecified('the request payload must start with true or a connection identifier');
  let prefix;
  try {
    prefix = decodeStrict(payload.subarray(0, length));
  } catch (e) {
    if (e instanceof CborError || e instanceof EdhocError) throw unspecified('the request payload must start with true or a connection identifier');
    throw e;
  }
  const message = payload.subarray(length);
  if (prefix === true) return { kind: 'message_1', message };
  return { kind: 'session', connectionId: identifierFromCbor(prefix as number | Uint8Array, 'connection identifier prefix'), message };
}

/**
 * RFC 9668 §3.3.1 steps 1, 2 and 6: EDHOC_MSG_3 (the first CBOR data item, a byte string) and
 * OSCORE_PAYLOAD (the rest, at least one byte: an OSCORE ciphertext carries a tag). Undefined when
 * the payload does not have that format (the server answers 4.00).
 */
export function splitCombinedPayload(payload: Uint8Array): { message3: Uint8Array; oscorePayload: Uint8Array } | undefined {
  const length = leadingItemLength(payload);
  if (length === undefined || payload[0]! >> 5 !== 2 || length >= payload.length) return undefined;
  const message3 = payload.subarray(0, length);
  try {
    if (!isBytes(decodeStrict(message3))) return undefined;
  } catch (e) {
    if (e instanceof CborError) return undefined;
    throw e;
  }
  return { message3, oscorePayload: payload.subarray(length) };
}

/** RFC 9668 §3.2.1 step 3: COMB_PAYLOAD = EDHOC_MSG_3 | OSCORE_PAYLOAD. */
export const combinePayload = (message3: Uint8Array, oscorePayload: Uint8Array): Uint8Array => concatBytes(message3, oscorePayload);

/** An EDHOC error message as a CoAP error response (A.2.3): 4.00 for a client error, 5.00 for our own failure. */
export function edhocErrorResponse(error: EdhocError, side: 'client' | 'server'): { code: number; payload: Uint8Array; contentFormat: number } {
  return {
    code: side === 'client' ? ResponseCode.BadRequest : ResponseCode.InternalServerError,
    payload: error.errorMessage,
    contentFormat: ContentFormat.EdhocCborSeq,
  };
}
