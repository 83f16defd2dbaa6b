/** The server's own answers as messages: handler responses, errors, the §5.10.4 Accept check. */
import { ResponseCode, codeClass } from '../coap/codes.js';
import { EMPTY_BYTES, MessageType, addOption, encodeString, encodeUint, getUintOption, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { ServerExchange } from '../exchange/endpoint.js';
import type { CoapResponse } from './resource.js';

/** Builds the wire message of a handler's response (type, ID and token are set by the exchange). */
export function toMessage(spec: CoapResponse | { code: number; payload?: string | Uint8Array; options?: CoapOption[] }): CoapMessage {
  const full = spec as CoapResponse;
  const message: CoapMessage = {
    type: MessageType.ACK,
    code: spec.code,
    messageId: 0,
    token: EMPTY_BYTES,
    options: [],
    payload: typeof spec.payload === 'string' ? stringPayload(spec.payload) : (spec.payload ?? EMPTY_BYTES),
  };
  if (full.etag) addOption(message, OptionNumber.ETag, full.etag);
  if (full.contentFormat !== undefined) addOption(message, OptionNumber.ContentFormat, uintValue(full.contentFormat));
  if (full.maxAge !== undefined) addOption(message, OptionNumber.MaxAge, uintValue(full.maxAge));
  for (const o of spec.options ?? []) addOption(message, o.number, o.value);
  return message;
}

/**
 * Handlers mostly answer a few constant strings ("Hello from coapsec"): their UTF-8 bytes are kept
 * (short strings only, a bounded set, emptied when full) instead of a TextEncoder pass per response
 * (issue 21's profile). Message bytes are never written in place downstream (codec, OSCORE and the
 * dedup cache copy), so one Uint8Array may serve many responses.
 */
const PAYLOAD_CACHE_ENTRIES = 256;
const PAYLOAD_CACHE_MAX_LENGTH = 128;
const encodedPayloads = new Map<string, Uint8Array>();
function stringPayload(text: string): Uint8Array {
  if (text.length > PAYLOAD_CACHE_MAX_LENGTH) return encodeString(text);
  let bytes = encodedPayloads.get(text);
  if (bytes === undefined) {
    if (encodedPayloads.size >= PAYLOAD_CACHE_ENTRIES) encodedPayloads.clear();
    encodedPayloads.set(text, (bytes = encodeString(text)));
  }
  return bytes;
}

/** Content-Format and Max-Age values below 256 (nearly all), encoded once. */
const smallUints: Uint8Array[] = [];
function uintValue(value: number): Uint8Array {
  if (!(Number.isInteger(value) && value >= 0 && value < 256)) return encodeUint(value);
  return (smallUints[value] ??= encodeUint(value));
}

export function internalError(error: unknown): CoapResponse {
  // The diagnostic names the failure without leaking a stack trace to the network (§5.5.2).
  const reason = error instanceof Error ? error.message : String(error);
  return { code: ResponseCode.InternalServerError, payload: `internal error: ${reason}`.slice(0, 200) };
}

/** The template a stored representation's later block is cut into. */
export const emptyResponse = (): CoapMessage => ({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES });

/** The handler's response as a message, with the §5.10.4 Accept check applied. */
export function toResponse(request: CoapMessage, spec: CoapResponse): CoapMessage {
  try {
    const response = toMessage(spec);
    const accept = getUintOption(request, OptionNumber.Accept);
    const format = getUintOption(response, OptionNumber.ContentFormat);
    if (accept !== undefined && codeClass(spec.code) === 2 && format !== undefined && format !== accept) {
      // §5.10.4: the preferred Content-Format cannot be returned.
      return toMessage({ code: ResponseCode.NotAcceptable });
    }
    return response;
  } catch (error) {
    return toMessage(internalError(error));
  }
}

export function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T>)?.then === 'function';
}

/**
 * The last line of defence: whatever a datagram makes the stages throw is answered 5.00 (once,
 * without a stack trace, §5.5.2) instead of unwinding into the transport. Reaching it is a bug —
 * the fuzz tests assert that no input does.
 */
export function answerFailSafe(exchange: ServerExchange, error: unknown): void {
  if (exchange.inbound.responded) return;
  try {
    exchange.respond(toMessage(internalError(error)));
  } catch {
    exchange.reject();
  }
}
