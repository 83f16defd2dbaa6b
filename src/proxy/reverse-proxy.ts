/**
 * A reverse proxy (RFC 7252 §5.7.3): path prefixes of this server stand for origin servers behind
 * it, as a LwM2M gateway exposes its devices — `/dev1/temp` → `coap://device1:5683/temp`. The client
 * sees an ordinary resource; the remaining Uri-Path segments and the query go to the device.
 */
import { ResponseCode } from '../coap/codes.js';
import { EMPTY_BYTES, MessageType, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { formatCoapUri, parseCoapUri, uriToOptions } from '../coap/uri.js';
import { resolvePeer, type CoapClient } from '../client/client.js';
import { TimeoutError } from '../exchange/errors.js';
import type { CoapResponse, Handler } from '../server/resource.js';
import type { CoapServer } from '../server/server.js';

export interface ReverseMapping {
  /** "/dev1" */
  prefix: string;
  /** "coap://192.0.2.7:5683/" — the device's base URI. */
  target: string;
}

/** Options that address this hop; the device gets its own. */
const ADDRESSING = new Set<number>([OptionNumber.UriHost, OptionNumber.UriPort, OptionNumber.UriPath, OptionNumber.UriQuery, OptionNumber.Observe]);

export function addReverseProxy(server: CoapServer, mapping: ReverseMapping, upstream: Pick<CoapClient, 'endpoint'>, timeout = 10_000): void {
  const base = parseCoapUri(mapping.target);
  const handler: Handler = async (request) => {
    const uri = { ...base, path: [...base.path.filter((s) => s !== ''), ...request.subPath], query: [...base.query, ...request.query] };
    let peer;
    try {
      peer = await resolvePeer(uri);
    } catch (error) {
      return { code: ResponseCode.BadGateway, payload: (error as Error).message };
    }
    const message: CoapMessage = {
      type: request.confirmable ? MessageType.CON : MessageType.NON,
      code: request.method,
      messageId: 0,
      token: EMPTY_BYTES,
      options: [...request.options.filter((o) => !ADDRESSING.has(o.number)), ...uriToOptions(uri, peer.address, peer.port)].sort((a, b) => a.number - b.number),
      payload: request.payload,
    };
    try {
      const endpoint = await upstream.endpoint(peer.address.includes(':') ? 6 : 4, uri.scheme);
      const { message: response } = await endpoint.request(message, peer, { deadline: timeout, confirmable: request.confirmable });
      const reply: CoapResponse = { code: response.code, payload: response.payload, options: response.options.slice() };
      return reply;
    } catch (error) {
      const code = error instanceof TimeoutError ? ResponseCode.GatewayTimeout : ResponseCode.BadGateway;
      return { code, payload: `${formatCoapUri(uri)}: ${(error as Error).message}`, maxAge: 0 };
    }
  };
  server.add({
    path: mapping.prefix,
    subtree: true,
    title: `reverse proxy to ${mapping.target}`,
    handlers: { GET: handler, POST: handler, PUT: handler, DELETE: handler, FETCH: handler, PATCH: handler, IPATCH: handler },
  });
}

export function parseReverseMapping(text: string): ReverseMapping {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new Error(`--reverse needs PREFIX=URI, got "${text}"`);
  const prefix = '/' + text.slice(0, eq).replace(/^\/+|\/+$/g, '');
  const target = text.slice(eq + 1);
  parseCoapUri(target);
  return { prefix, target };
}

