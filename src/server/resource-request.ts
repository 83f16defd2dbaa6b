/** The CoapRequest a resource handler sees, and the handler a request's method selects. */
import { methodName, type Code } from '../coap/codes.js';
import { MessageType, decodeString, getOption, getStringOptions, getUintOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { EndpointContext } from '../exchange/context.js';
import type { CoapRequest, Handler, Handlers } from './resource.js';

/** The Handlers key of each method code (RFC 7252 §12.1.1, RFC 8132), made once: no toUpperCase per request. */
const HANDLER_KEYS = new Map<Code, keyof Handlers>();

export function handlerFor(handlers: Handlers, code: Code): Handler | undefined {
  let key = HANDLER_KEYS.get(code);
  if (key === undefined) {
    key = methodName(code).toUpperCase() as keyof Handlers;
    // Request codes only (0.01–0.31): the Map stays bounded whatever codes arrive.
    if (code > 0 && code < 32) HANDLER_KEYS.set(code, key);
  }
  return handlers[key];
}

const EMPTY_PAYLOAD = Buffer.alloc(0);

/** The query of the many requests without Uri-Query: one frozen array instead of two new ones each. */
const NO_QUERY: readonly string[] = Object.freeze([]);

export function buildRequest(
  message: CoapMessage,
  body: Uint8Array,
  path: readonly string[],
  subPath: readonly string[],
  context: EndpointContext,
  notification = false,
): CoapRequest {
  const options = message.options;
  const view = { options };
  // Most requests (GETs) have no body: one shared empty Buffer, which nothing can write into.
  const payload = body.length === 0 ? EMPTY_PAYLOAD : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return {
    method: message.code,
    methodName: methodName(message.code),
    path,
    subPath,
    query: getOption(view, OptionNumber.UriQuery) === undefined ? NO_QUERY : getStringOptions(view, OptionNumber.UriQuery),
    options,
    payload,
    contentFormat: getUintOption(view, OptionNumber.ContentFormat),
    accept: getUintOption(view, OptionNumber.Accept),
    confirmable: message.type === MessageType.CON,
    notification,
    context,
    message,
    option: (number) => getOption(view, number),
    text: () => decodeString(payload),
  };
}
