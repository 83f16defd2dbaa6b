/**
 * The one message type every layer uses (architecture rule 4): a decoded CoAP message is the same
 * object whether it came off a socket, out of a cache or out of an OSCORE decryption.
 */
import { OptionNumber } from './options.js';

export const MessageType = { CON: 0, NON: 1, ACK: 2, RST: 3 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];
export const MESSAGE_TYPE_NAMES = ['CON', 'NON', 'ACK', 'RST'] as const;

export interface CoapOption {
  readonly number: number;
  readonly value: Uint8Array;
}

export interface CoapMessage {
  type: MessageType;
  /** class << 5 | detail, see codes.ts */
  code: number;
  messageId: number;
  token: Uint8Array;
  /** Sorted by option number; repeated options keep their order (RFC 7252 §5.4.5). */
  options: CoapOption[];
  payload: Uint8Array;
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

export function createMessage(fields: Partial<CoapMessage> & Pick<CoapMessage, 'code'>): CoapMessage {
  return {
    type: fields.type ?? MessageType.CON,
    code: fields.code,
    messageId: fields.messageId ?? 0,
    token: fields.token ?? EMPTY_BYTES,
    options: fields.options ? sortOptions(fields.options) : [],
    payload: fields.payload ?? EMPTY_BYTES,
  };
}

/** Stable sort by number, so repeated options keep their relative order. */
export function sortOptions(options: CoapOption[]): CoapOption[] {
  for (let i = 1; i < options.length; i++) {
    if (options[i]!.number < options[i - 1]!.number) {
      return options.map((o, index) => ({ o, index }))
        .sort((a, b) => a.o.number - b.o.number || a.index - b.index)
        .map((x) => x.o);
    }
  }
  return options;
}

// --- option values -------------------------------------------------------------------------

/** Minimal big-endian encoding of a uint option (RFC 7252 §3.2: no leading zero bytes; 0 is empty). */
export function encodeUint(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`uint option value out of range: ${value}`);
  }
  if (value === 0) return EMPTY_BYTES;
  if (value < 0x100) return Uint8Array.of(value);
  if (value < 0x10000) return Uint8Array.of(value >>> 8, value & 0xff);
  if (value < 0x1000000) return Uint8Array.of(value >>> 16, (value >>> 8) & 0xff, value & 0xff);
  return Uint8Array.of(value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
}

/** Leading zero bytes are tolerated on receipt (RFC 7252 §3.2 says senders SHOULD NOT send them). */
export function decodeUint(bytes: Uint8Array): number {
  let v = 0;
  for (let i = 0; i < bytes.length; i++) v = v * 256 + bytes[i]!;
  return v;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: false });
const utf8Encoder = new TextEncoder();
export const encodeString = (s: string): Uint8Array => utf8Encoder.encode(s);
/** Below this length an all-ASCII value is read by a loop: TextDecoder's call costs more than the bytes (issue 21, Uri-Path). */
const SHORT_ASCII = 32;
export function decodeString(b: Uint8Array): string {
  const n = b.length;
  if (n > SHORT_ASCII) return utf8Decoder.decode(b);
  let text = '';
  for (let i = 0; i < n; i++) {
    const byte = b[i]!;
    if (byte >= 0x80) return utf8Decoder.decode(b);
    text += String.fromCharCode(byte);
  }
  return text;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A payload as it may appear in an error message or a log line: quoted text when it is UTF-8
 * without control characters (a diagnostic payload, RFC 7252 §5.5.2), else hex. Payloads from
 * the network can be anything, and raw bytes in a terminal or log are unreadable at best.
 */
export function printablePayload(b: Uint8Array, maxChars = 100): string {
  try {
    const text = strictUtf8.decode(b);
    // eslint-disable-next-line no-control-regex
    if (!/[\u0000-\u001f\u007f-\u009f]/.test(text)) return JSON.stringify(text.length > maxChars ? `${text.slice(0, maxChars)}…` : text);
  } catch {
    /* not UTF-8: hex below */
  }
  const shown = b.subarray(0, Math.ceil(maxChars / 2));
  return `0x${Buffer.from(shown.buffer, shown.byteOffset, shown.byteLength).toString('hex')}${b.length > shown.length ? '…' : ''} (${b.length} bytes)`;
}

// --- option access -------------------------------------------------------------------------

/** Anything with options to read: a message, a request view, a stored representation. */
export type WithOptions = { readonly options: readonly CoapOption[] };

export function getOption(msg: WithOptions, number: number): Uint8Array | undefined {
  for (const o of msg.options) {
    if (o.number === number) return o.value;
    if (o.number > number) break;
  }
  return undefined;
}

export function getOptions(msg: WithOptions, number: number): Uint8Array[] {
  const values: Uint8Array[] = [];
  for (const o of msg.options) {
    if (o.number === number) values.push(o.value);
    else if (o.number > number) break;
  }
  return values;
}

export const hasOption = (msg: WithOptions, number: number): boolean =>
  getOption(msg, number) !== undefined;

export function getUintOption(msg: WithOptions, number: number): number | undefined {
  const v = getOption(msg, number);
  return v === undefined ? undefined : decodeUint(v);
}

export function getStringOptions(msg: WithOptions, number: number): string[] {
  // One pass, one array (not getOptions' array mapped into a second): every request's Uri-Path.
  const values: string[] = [];
  const options = msg.options;
  for (let i = 0; i < options.length; i++) {
    const o = options[i]!;
    if (o.number === number) values.push(decodeString(o.value));
    else if (o.number > number) break;
  }
  return values;
}

/** Removes every instance of the option. */
export function removeOption(msg: Pick<CoapMessage, 'options'>, number: number): void {
  msg.options = msg.options.filter((o) => o.number !== number);
}

/** Inserts after any existing instances of the same number, keeping the list sorted. */
export function addOption(msg: Pick<CoapMessage, 'options'>, number: number, value: Uint8Array): void {
  const options = msg.options;
  let i = options.length;
  // Options are mostly added in order (a response's Content-Format, then Max-Age): a push, no splice.
  if (i === 0 || options[i - 1]!.number <= number) {
    options.push({ number, value });
    return;
  }
  while (i > 0 && options[i - 1]!.number > number) i--;
  options.splice(i, 0, { number, value });
}

/** Replaces every instance of the option with the given values (none removes it). */
export function setOption(msg: Pick<CoapMessage, 'options'>, number: number, ...values: Uint8Array[]): void {
  removeOption(msg, number);
  for (const v of values) addOption(msg, number, v);
}

export const setUintOption = (msg: Pick<CoapMessage, 'options'>, number: number, value: number): void =>
  setOption(msg, number, encodeUint(value));

export const contentFormatOf = (msg: WithOptions): number | undefined =>
  getUintOption(msg, OptionNumber.ContentFormat);

/** RFC 7252 §5.10.5: Max-Age defaults to 60 seconds when absent. */
export const maxAgeOf = (msg: WithOptions): number =>
  getUintOption(msg, OptionNumber.MaxAge) ?? 60;

export const tokenToHex = (token: Uint8Array): string => Buffer.from(token.buffer, token.byteOffset, token.byteLength).toString('hex');

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
