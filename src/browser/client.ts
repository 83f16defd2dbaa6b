/**
 * The browser's CoAP client: requests over CoAP over WebSockets (RFC 8323 §4) to one server or
 * proxy, end-to-end protected with OSCORE when a context is given. The layers below are the Node
 * build's own — CoapEndpoint (exchange), StreamCarrier (CSM, Ping, framing), the block-wise client
 * (client/blockwise.ts) — only the socket (websocket.ts) and the AEAD calls (oscore.ts) differ.
 *
 * Per request, as client/security.ts and oscore/requester.ts do in Node: a fresh Sender Sequence
 * Number from a durable source, protect (§8.1), send, verify the response against the request's
 * binding (§8.4; an unprotected answer is never taken for the resource's), and once more with the
 * Echo value when a verified 4.01 asks for it (RFC 9175 §2.4). Block-wise runs on the inner
 * messages (§4.1.3.4.1); notifications are verified one by one and must grow in Partial IV (§7.4.1).
 */
import { Method, codeToString } from '../coap/codes.js';
import { contentFormatOf, decodeString, encodeUint, getOption, setOption, type CoapMessage, type CoapOption } from '../coap/message.js';
import { ContentFormat } from '../coap/content-format.js';
import { OptionNumber } from '../coap/options.js';
import { parseCoapUri, uriToOptions } from '../coap/uri.js';
import { proxySchemeAddressing } from '../client/addressing.js';
import { blockwiseRequest, type SendRequest } from '../client/blockwise.js';
import { CoapEndpoint } from '../exchange/endpoint.js';
import { parseErrorMessage } from '../edhoc/errors.js';
import type { DerivedContext } from '../oscore/context.js';
import type { RequestBinding } from '../oscore/cose-object.js';
import { echoChallengeRetry } from '../oscore/echo-challenge.js';
import { NotificationOrder } from '../oscore/notification-order.js';
import type { PeerAddress } from '../transport/transport.js';
import { protectRequestAsync, unprotectResponseAsync } from './oscore.js';
import { BrowserWsTransport, type WebSocketConstructor } from './websocket.js';

/** Where Sender Sequence Numbers come from: a ReservedSequence (durable, Appendix B.1.1) in a page. */
export interface SequenceNumbers {
  next(): Promise<number>;
}

export interface BrowserOscore {
  context: DerivedContext;
  sequence: SequenceNumbers;
}

export interface BrowserClientOptions {
  /** The server, or the forward proxy in front of it: coap+ws://host:port or coaps+ws://host:port. */
  server: string;
  /**
   * The origin server behind a forward proxy at `server` (e.g. coap://192.0.2.7:5683 behind
   * `coapsec proxy --forward --ws PORT`): requests then name it with Proxy-Scheme, Uri-Host and
   * Uri-Port (RFC 7252 §5.10.2), which OSCORE leaves readable to the proxy (Class U, RFC 8613
   * §4.1.3.3) while Uri-Path and the rest stay encrypted.
   */
  origin?: string;
  /** End-to-end protection; without it requests go in the clear (and protected answers are refused). */
  oscore?: BrowserOscore;
  /**
   * EDHOC message_3 to send with the first OSCORE request, which becomes the EDHOC + OSCORE
   * request of RFC 9668 §3.2.1 (EDHOC option, payload EDHOC_MSG_3 | OSCORE_PAYLOAD);
   * edhocOverCoap with `combined` gives it.
   */
  edhocMessage3?: Uint8Array;
  /** ms from a request to its response, retransmissions and block-wise steps each. Default 30 s. */
  requestTimeout?: number;
  /** The largest response body reassembled from blocks. Default 1 MiB. */
  maxBodySize?: number;
  WebSocket?: WebSocketConstructor;
}

export interface RequestParams {
  payload?: Uint8Array | string;
  contentFormat?: number;
  /** Block size exponent (RFC 7959 SZX, 0..6) for the request body and early Block2 negotiation. */
  szx?: number;
}

export interface BrowserResponse {
  code: number;
  /** "2.05 Content" etc. */
  status: string;
  payload: Uint8Array;
  text: string;
  /** The inner response (after OSCORE). */
  message: CoapMessage;
  /** The Partial IV this response was protected with, when it carried one (notifications). */
  partialIv?: number;
}

/** Raised when a response must be discarded (it failed OSCORE verification or came unprotected). */
export class ResponseRejectedError extends Error {}

export class BrowserCoapClient {
  readonly endpoint: CoapEndpoint;
  /** Called with every request as it goes on the wire (after protection), with its Partial IV when protected. */
  onSend: ((wire: CoapMessage, partialIv: number | undefined) => void) | undefined;
  readonly #peer: PeerAddress;
  readonly #serverName: string;
  readonly #uriBase: string;
  readonly #origin: string | undefined;
  readonly #oscore: BrowserOscore | undefined;
  #edhocMessage3: Uint8Array | undefined;
  readonly #timeout: number;
  readonly #maxBodySize: number;

  constructor(options: BrowserClientOptions) {
    const uri = parseCoapUri(options.server);
    if (uri.scheme !== 'coap+ws' && uri.scheme !== 'coaps+ws') throw new Error(`the browser client speaks coap+ws and coaps+ws, not ${uri.scheme}`);
    this.#peer = { address: uri.host, port: uri.port };
    this.#serverName = uri.host;
    this.#uriBase = `${uri.scheme}://${uri.host.includes(':') ? `[${uri.host}]` : uri.host}:${uri.port}`;
    this.#oscore = options.oscore;
    this.#edhocMessage3 = options.edhocMessage3;
    if (options.origin !== undefined) parseCoapUri(options.origin); // refuses a bad URI now, not at the first request
    this.#origin = options.origin?.replace(/\/+$/, '');
    this.#timeout = options.requestTimeout ?? 30_000;
    this.#maxBodySize = options.maxBodySize ?? 1 << 20;
    const transport = new BrowserWsTransport({ secure: uri.scheme === 'coaps+ws', ...(options.WebSocket ? { WebSocket: options.WebSocket } : {}) });
    this.endpoint = new CoapEndpoint({ transport });
  }

  get(path: string, params: RequestParams = {}): Promise<BrowserResponse> {
    return this.request(Method.GET, path, params);
  }

  put(path: string, payload: Uint8Array | string, params: RequestParams = {}): Promise<BrowserResponse> {
    return this.request(Method.PUT, path, { ...params, payload });
  }

  post(path: string, payload: Uint8Array | string, params: RequestParams = {}): Promise<BrowserResponse> {
    return this.request(Method.POST, path, { ...params, payload });
  }

  /** One request, block-wise where the body or the response needs it. */
  async request(method: number, path: string, params: RequestParams = {}): Promise<BrowserResponse> {
    const template = this.#message(method, path, params);
    const received = await blockwiseRequest(this.#withEcho(this.#send), template, {
      maxBodySize: this.#maxBodySize,
      maxRestarts: 2,
      ...(params.szx !== undefined ? { szx: params.szx } : {}),
    });
    return toResponse(received.message, undefined);
  }

  /**
   * Observes `path` (RFC 7641): yields the first response and then each notification, verified and
   * in Partial IV order, until `count` were yielded, the iteration stops or `lifetime` ms passed.
   * Stopping deregisters by forgetting the token (the next notification is answered with RST).
   */
  async *observe(path: string, options: { count: number; lifetime?: number }): AsyncGenerator<BrowserResponse> {
    const registration = this.#message(Method.GET, path, {});
    setOption(registration, OptionNumber.Observe, encodeUint(0));
    const order = new NotificationOrder();
    let { message, verify } = await this.#protect(registration);
    const stream = this.endpoint.stream(message, this.#peer, { maxResponses: options.count, lifetime: options.lifetime ?? 5 * 60_000, deadline: this.#timeout });
    try {
      let yielded = 0;
      for await (const response of stream) {
        let inner: BrowserResponse;
        try {
          inner = await verify(response.message, order);
        } catch (error) {
          // §8.4: a notification that fails verification is discarded; the observation goes on.
          if (yielded > 0 && error instanceof ResponseRejectedError) continue;
          throw error;
        }
        // RFC 9175 §2.4 on a registration: answered by registering again with the Echo value.
        const again = yielded === 0 ? echoChallengeRetry(registration, inner.message) : undefined;
        if (again !== undefined) {
          ({ message, verify } = await this.#protect(again));
          await stream.send(message);
          continue;
        }
        yield inner;
        if (++yielded >= options.count) return;
      }
    } finally {
      stream.close();
    }
  }

  async close(): Promise<void> {
    await this.endpoint.close();
  }

  #message(method: number, path: string, params: RequestParams): CoapMessage {
    const resource = path.startsWith('/') ? path : `/${path}`;
    const options: CoapOption[] =
      this.#origin === undefined
        ? uriToOptions(`${this.#uriBase}${resource}`, this.#serverName, this.#peer.port)
        : proxySchemeAddressing(parseCoapUri(`${this.#origin}${resource}`), this.#peer.port, true);
    if (params.contentFormat !== undefined) options.push({ number: OptionNumber.ContentFormat, value: encodeUint(params.contentFormat) });
    const payload = typeof params.payload === 'string' ? new TextEncoder().encode(params.payload) : (params.payload ?? new Uint8Array(0));
    options.sort((a, b) => a.number - b.number);
    return { type: 0, code: method, messageId: 0, token: new Uint8Array(0), options, payload };
  }

  readonly #send: SendRequest = async (inner) => {
    const { message, verify } = await this.#protect(inner);
    const received = await this.endpoint.request(message, this.#peer, { deadline: this.#timeout });
    const verified = await verify(received.message, undefined);
    return { message: { ...verified.message, token: received.message.token }, context: received.context, wire: received.message };
  };

  #withEcho(send: SendRequest): SendRequest {
    return async (message) => {
      const first = await send(message);
      const again = echoChallengeRetry(message, first.message);
      return again === undefined ? first : send(again);
    };
  }

  /** The wire message for `inner`, and how to verify a response to it (RFC 8613 §8.1, §8.4). */
  async #protect(inner: CoapMessage): Promise<{ message: CoapMessage; verify(response: CoapMessage, order: NotificationOrder | undefined): Promise<BrowserResponse> }> {
    const oscore = this.#oscore;
    if (oscore === undefined) {
      this.onSend?.(inner, undefined);
      return {
        message: inner,
        verify: async (response) => {
          if (getOption(response, OptionNumber.Oscore) !== undefined) throw new ResponseRejectedError('the response is protected with OSCORE, but no security context is configured');
          return toResponse(response, undefined);
        },
      };
    }
    const partialIv = await oscore.sequence.next();
    const { context } = oscore;
    const { message: protectedMessage, binding } = await protectRequestAsync(inner, context.sender, partialIv, context.idContext ? { kidContext: 'include' } : {});
    const message = this.#withEdhocMessage3(protectedMessage);
    this.onSend?.(message, partialIv);
    const carriedMessage3 = message !== protectedMessage;
    return {
      message,
      verify: async (response, order) => {
        // RFC 9668 §3.3.1 / RFC 9528 App. A.2.3: EDHOC failing at message_3 is answered unprotected with the EDHOC error message.
        if (carriedMessage3 && getOption(response, OptionNumber.Oscore) === undefined && contentFormatOf(response) === ContentFormat.EdhocCborSeq) throw parseErrorMessage(response.payload);
        return verifyResponse(response, context, binding, order);
      },
    };
  }

  /** RFC 9668 §3.2.1: the first OSCORE request carries message_3 once, with the EDHOC option (§3.1, empty). */
  #withEdhocMessage3(message: CoapMessage): CoapMessage {
    const message3 = this.#edhocMessage3;
    if (message3 === undefined) return message;
    this.#edhocMessage3 = undefined;
    const payload = new Uint8Array(message3.length + message.payload.length);
    payload.set(message3);
    payload.set(message.payload, message3.length);
    const options = [...message.options, { number: OptionNumber.Edhoc, value: new Uint8Array(0) }].sort((a, b) => a.number - b.number);
    return { ...message, options, payload };
  }
}

async function verifyResponse(response: CoapMessage, context: DerivedContext, binding: RequestBinding, order: NotificationOrder | undefined): Promise<BrowserResponse> {
  if (getOption(response, OptionNumber.Oscore) === undefined) {
    const diagnostic = response.payload.length > 0 ? `: ${decodeString(response.payload)}` : '';
    throw new ResponseRejectedError(`unprotected ${codeToString(response.code)}${diagnostic}`);
  }
  const result = await unprotectResponseAsync(response, context.recipient, binding);
  if (!result.ok) throw new ResponseRejectedError(`OSCORE verification failed: ${result.reason}`);
  if (order !== undefined && binding.observe) {
    const refusal = order.accept(result.sequenceNumber);
    if (refusal !== undefined) throw new ResponseRejectedError(refusal.message);
  }
  return toResponse(result.message, result.sequenceNumber);
}

function toResponse(message: CoapMessage, partialIv: number | undefined): BrowserResponse {
  return {
    code: message.code,
    status: codeToString(message.code),
    payload: message.payload,
    text: decodeString(message.payload),
    message,
    ...(partialIv !== undefined ? { partialIv } : {}),
  };
}
