/**
 * RFC 7252 §3 message format: 4-byte header, token, options (delta/length nibbles with 13/14
 * extensions), 0xFF payload marker, payload. Pure functions; no I/O.
 */
import { MessageType, type CoapMessage, type CoapOption, EMPTY_BYTES } from './message.js';
import { allocBytes } from '../util/bytes.js';

export type FormatErrorKind =
  /** §3: "Messages with unknown version numbers MUST be silently ignored." */
  | 'unknown-version'
  /** Anything else: §4.2/§4.3 — a CON gets RST (when the header was readable), a NON is dropped. */
  | 'format';

export class MessageFormatError extends Error {
  constructor(
    message: string,
    readonly kind: FormatErrorKind,
    /** Present when the 4-byte header could be read, so the receiver can answer a CON with RST. */
    readonly header?: { type: MessageType; messageId: number },
  ) {
    super(message);
    this.name = 'MessageFormatError';
  }
}

export const COAP_VERSION = 1;
const PAYLOAD_MARKER = 0xff;

function extendedLength(value: number): number {
  return value < 13 ? 0 : value < 269 ? 1 : 2;
}

/**
 * Encodes a message. Options must be sorted (createMessage/addOption keep them so). A Buffer in
 * Node; in the browser build (no Buffer) the same bytes as a plain Uint8Array.
 */
export function encodeMessage(msg: CoapMessage): Buffer {
  const tokenLength = msg.token.length;
  if (tokenLength > 8) throw new RangeError(`token longer than 8 bytes (${tokenLength})`);
  const out = allocBytes(4 + tokenLength + bodySize(msg.options, msg.payload));
  out[0] = (COAP_VERSION << 6) | (msg.type << 4) | tokenLength;
  out[1] = msg.code;
  out[2] = (msg.messageId >>> 8) & 0xff;
  out[3] = msg.messageId & 0xff;
  let pos = 4;
  for (let i = 0; i < tokenLength; i++) out[pos++] = msg.token[i]!;
  writeBody(out, pos, msg.options, msg.payload);
  return out as Buffer;
}

/**
 * A message's code, options and payload marker with payload, without header and token: the
 * plaintext of OSCORE (RFC 8613 §5.3) and of Group OSCORE, written straight into one array.
 */
export function encodeCodeAndBody(code: number, options: readonly CoapOption[], payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + bodySize(options, payload));
  out[0] = code;
  writeBody(out, 1, options, payload);
  return out;
}

/** Bytes of the options (sorted, checked here) and of the payload with its marker. */
function bodySize(options: readonly CoapOption[], payload: Uint8Array): number {
  let size = 0;
  let previous = 0;
  for (let i = 0; i < options.length; i++) {
    const o = options[i]!;
    const delta = o.number - previous;
    if (delta < 0) throw new RangeError('options are not sorted by number');
    if (o.number > 0xffff) throw new RangeError(`option number out of range: ${o.number}`);
    const length = o.value.length;
    if (length > 65804) throw new RangeError(`option ${o.number} value too long (${length})`);
    size += 1 + extendedLength(delta) + extendedLength(length) + length;
    previous = o.number;
  }
  return payload.length > 0 ? size + 1 + payload.length : size;
}

function writeBody(out: Uint8Array, at: number, options: readonly CoapOption[], payload: Uint8Array): void {
  let pos = at;
  let previous = 0;
  for (let i = 0; i < options.length; i++) {
    const o = options[i]!;
    const delta = o.number - previous;
    const length = o.value.length;
    const headerPos = pos++;
    const deltaNibble = delta < 13 ? delta : delta < 269 ? 13 : 14;
    const lengthNibble = length < 13 ? length : length < 269 ? 13 : 14;
    out[headerPos] = (deltaNibble << 4) | lengthNibble;
    if (deltaNibble === 13) out[pos++] = delta - 13;
    else if (deltaNibble === 14) {
      out[pos++] = (delta - 269) >>> 8;
      out[pos++] = (delta - 269) & 0xff;
    }
    if (lengthNibble === 13) out[pos++] = length - 13;
    else if (lengthNibble === 14) {
      out[pos++] = (length - 269) >>> 8;
      out[pos++] = (length - 269) & 0xff;
    }
    copyBytes(o.value, out, pos);
    pos += length;
    previous = o.number;
  }
  if (payload.length > 0) {
    out[pos++] = PAYLOAD_MARKER;
    copyBytes(payload, out, pos);
  }
}

/**
 * `from` into `to` at `at`: a byte loop for the short values most options and payloads are, where
 * TypedArray.set's argument checks cost more than the copy; set() for longer ones.
 */
function copyBytes(from: Uint8Array, to: Uint8Array, at: number): void {
  const n = from.length;
  if (n > 32) {
    to.set(from, at);
    return;
  }
  for (let i = 0; i < n; i++) to[at + i] = from[i]!;
}

/**
 * Decodes a datagram. Option values, token and payload are views into `data` (no copies).
 * Throws MessageFormatError for every message format error of §3 and §4.1.
 */
export function decodeMessage(data: Uint8Array): CoapMessage {
  if (data.length < 4) throw new MessageFormatError('datagram shorter than the 4-byte header', 'format');
  const b0 = data[0]!;
  const version = b0 >> 6;
  const type = ((b0 >> 4) & 3) as MessageType;
  const messageId = (data[2]! << 8) | data[3]!;
  const header = { type, messageId };
  if (version !== COAP_VERSION) throw new MessageFormatError(`unknown CoAP version ${version}`, 'unknown-version', header);
  const tokenLength = b0 & 0x0f;
  // §3: TKL 9-15 are reserved and MUST be processed as a message format error.
  if (tokenLength > 8) throw new MessageFormatError(`reserved token length ${tokenLength}`, 'format', header);
  const code = data[1]!;
  if (code === 0 && (tokenLength !== 0 || data.length !== 4)) {
    // §4.1: an Empty message has TKL 0 and nothing after the Message ID.
    throw new MessageFormatError('empty message with token, options or payload', 'format', header);
  }
  if (4 + tokenLength > data.length) throw new MessageFormatError('truncated token', 'format', header);
  const token = tokenLength === 0 ? EMPTY_BYTES : data.subarray(4, 4 + tokenLength);

  const message: CoapMessage = { type, code, messageId, token, options: [], payload: EMPTY_BYTES };
  readBody(data, 4 + tokenLength, message, header);
  return message;
}

/**
 * Options and payload from `start` to the end of `data` (§3), values as views into `data`: the
 * part after the token of a message, or after the code of an OSCORE plaintext (RFC 8613 §5.3).
 * Throws MessageFormatError.
 */
export function decodeBody(data: Uint8Array, start: number): { options: CoapOption[]; payload: Uint8Array } {
  const body = { options: [] as CoapOption[], payload: EMPTY_BYTES };
  readBody(data, start, body);
  return body;
}

/** decodeBody into `into` (its options array is appended to), so a decoded message is one object. */
function readBody(data: Uint8Array, start: number, into: { options: CoapOption[]; payload: Uint8Array }, header?: { type: MessageType; messageId: number }): void {
  const options = into.options;
  let pos = start;
  let number = 0;
  while (pos < data.length) {
    const byte = data[pos++]!;
    if (byte === PAYLOAD_MARKER) {
      // §3: a marker followed by a zero-length payload MUST be processed as a format error.
      if (pos === data.length) throw new MessageFormatError('payload marker with empty payload', 'format', header);
      into.payload = data.subarray(pos);
      break;
    }
    let delta = byte >> 4;
    let length = byte & 0x0f;
    // §3.1: nibble 15 is reserved (in the delta only as part of the payload marker).
    if (delta === 15) throw new MessageFormatError('reserved option delta 15', 'format', header);
    if (length === 15) throw new MessageFormatError('reserved option length 15', 'format', header);
    if (delta === 13) {
      if (pos + 1 > data.length) throw new MessageFormatError('truncated option delta', 'format', header);
      delta = data[pos++]! + 13;
    } else if (delta === 14) {
      if (pos + 2 > data.length) throw new MessageFormatError('truncated option delta', 'format', header);
      delta = ((data[pos]! << 8) | data[pos + 1]!) + 269;
      pos += 2;
    }
    if (length === 13) {
      if (pos + 1 > data.length) throw new MessageFormatError('truncated option length', 'format', header);
      length = data[pos++]! + 13;
    } else if (length === 14) {
      if (pos + 2 > data.length) throw new MessageFormatError('truncated option length', 'format', header);
      length = ((data[pos]! << 8) | data[pos + 1]!) + 269;
      pos += 2;
    }
    number += delta;
    if (number > 0xffff) throw new MessageFormatError('option number beyond 65535', 'format', header);
    if (pos + length > data.length) throw new MessageFormatError('truncated option value', 'format', header);
    options.push({ number, value: data.subarray(pos, pos + length) });
    pos += length;
  }
}

/** Decodes, returning the error instead of throwing (for socket handlers). */
export function tryDecodeMessage(data: Uint8Array): CoapMessage | MessageFormatError {
  try {
    return decodeMessage(data);
  } catch (e) {
    if (e instanceof MessageFormatError) return e;
    return new MessageFormatError(String(e), 'format');
  }
}

/** An Empty ACK or RST (§4.1) for the given Message ID. */
/** A Buffer in Node, a Uint8Array in the browser build (as encodeMessage). */
export function encodeEmpty(type: MessageType, messageId: number): Buffer {
  const out = allocBytes(4);
  out[0] = (COAP_VERSION << 6) | (type << 4);
  out[1] = 0;
  out[2] = (messageId >>> 8) & 0xff;
  out[3] = messageId & 0xff;
  return out as Buffer;
}
