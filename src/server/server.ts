/**
 * The CoAP server: routes requests to resources, enforces the option rules of RFC 7252 §5.4,
 * answers 4.04/4.05/4.06/5.05 itself, serves /.well-known/core (RFC 6690), honours No-Response
 * (RFC 7967), and sends an empty ACK when a handler is slow so the response can follow
 * separately (§5.2.2).
 */
import { ResponseCode, isRequestCode, methodName, type Code } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import { filterLinks, serializeLinks, type Link } from '../coap/link-format.js';
import {
  EMPTY_BYTES,
  MessageType,
  addOption,
  decodeString,
  decodeUint,
  encodeString,
  encodeUint,
  getOption,
  getStringOptions,
  getUintOption,
  type CoapMessage,
  type CoapOption,
} from '../coap/message.js';
import { checkOptions } from '../coap/option-validation.js';
import { OptionNumber, optionDefinition } from '../coap/options.js';
import { CoapEndpoint, type EndpointOptions, type ServerExchange } from '../exchange/endpoint.js';
import { UdpTransport, type UdpTransportOptions } from '../transport/udp.js';
import type { PeerAddress } from '../transport/transport.js';
import type { CoapRequest, CoapResponse, Handler, Handlers, LinkAttributes, ResourceDefinition } from './resource.js';
import { Router } from './router.js';

/** Options this server processes itself; anything critical outside this set gets 4.02 (§5.4.1). */
const SERVER_OPTIONS = new Set<number>([
  OptionNumber.IfMatch,
  OptionNumber.UriHost,
  OptionNumber.ETag,
  OptionNumber.IfNoneMatch,
  OptionNumber.Observe,
  OptionNumber.UriPort,
  OptionNumber.UriPath,
  OptionNumber.ContentFormat,
  OptionNumber.UriQuery,
  OptionNumber.HopLimit,
  OptionNumber.Accept,
  OptionNumber.ProxyUri,
  OptionNumber.ProxyScheme,
  OptionNumber.Size1,
  OptionNumber.Size2,
  OptionNumber.Echo,
  OptionNumber.NoResponse,
  OptionNumber.RequestTag,
]);

export interface ServerOptions {
  /**
   * Milliseconds a handler may take before the CON request gets an empty ACK and the response
   * is sent separately. Default 100 ms, well inside ACK_TIMEOUT so the client does not retransmit.
   */
  emptyAckDelay?: number;
  /** Serve /.well-known/core. Default true. */
  wellKnownCore?: boolean;
  /** Extra option numbers a subclass or plug-in processes (recognized for §5.4.1). */
  recognizedOptions?: Iterable<number>;
}

export class CoapServer {
  readonly router = new Router();
  private readonly emptyAckDelay: number;
  private readonly recognized: Set<number>;

  constructor(
    readonly endpoint: CoapEndpoint,
    options: ServerOptions = {},
  ) {
    this.emptyAckDelay = options.emptyAckDelay ?? 100;
    this.recognized = new Set([...SERVER_OPTIONS, ...(options.recognizedOptions ?? [])]);
    if (options.wellKnownCore !== false) this.router.add(this.wellKnownCoreResource());
    endpoint.setRequestHandler((request, exchange) => this.handle(request, exchange));
  }

  /** Binds a UDP socket and serves on it. */
  static async listen(
    options: UdpTransportOptions & ServerOptions & Omit<EndpointOptions, 'transport'> = {},
  ): Promise<CoapServer> {
    const transport = await UdpTransport.bind(options);
    return new CoapServer(new CoapEndpoint({ ...options, transport }), options);
  }

  add(resource: ResourceDefinition): this {
    this.router.add(resource);
    return this;
  }

  resource(path: string, handlers: Handlers, attributes: LinkAttributes = {}): this {
    return this.add({ path, handlers, ...attributes });
  }

  address(): PeerAddress {
    return this.endpoint.transport.localAddress();
  }

  close(): Promise<void> {
    return this.endpoint.close();
  }

  // --- request processing -----------------------------------------------------------------

  private handle(message: CoapMessage, exchange: ServerExchange): void {
    const check = checkOptions(message.options, (n) => this.recognized.has(n) || (optionDefinition(n) !== undefined && !isCriticalNumber(n)));
    if (check.criticalProblem) {
      this.send(exchange, message, { code: ResponseCode.BadOption, payload: check.criticalProblem.reason });
      return;
    }
    const options = check.options;
    if (hasAny(options, OptionNumber.ProxyUri) || hasAny(options, OptionNumber.ProxyScheme)) {
      // §5.7.2: an endpoint unwilling or unable to act as a forward-proxy answers 5.05.
      this.send(exchange, message, { code: ResponseCode.ProxyingNotSupported, payload: 'this endpoint is not a proxy' });
      return;
    }
    if (!isKnownMethod(message.code)) {
      // §5.8: an unrecognized or unsupported method code gets 4.05.
      this.send(exchange, message, { code: ResponseCode.MethodNotAllowed });
      return;
    }
    const view = { options };
    const path = getStringOptions(view, OptionNumber.UriPath);
    const match = this.router.match(path);
    if (!match) {
      this.send(exchange, message, { code: ResponseCode.NotFound });
      return;
    }
    const handler = handlerFor(match.resource.handlers, message.code);
    if (!handler) {
      this.send(exchange, message, { code: ResponseCode.MethodNotAllowed });
      return;
    }
    const request = buildRequest(message, options, path, match.subPath, exchange);
    let result: CoapResponse | Promise<CoapResponse>;
    try {
      result = handler(request);
    } catch (error) {
      this.send(exchange, message, internalError(error));
      return;
    }
    if (!isPromise(result)) {
      this.send(exchange, message, result);
      return;
    }
    const slow = exchange.inbound.confirmable
      ? this.endpoint.scheduler.schedule(this.emptyAckDelay, () => exchange.acknowledge())
      : undefined;
    result.then(
      (response) => {
        slow?.cancel();
        this.send(exchange, message, response);
      },
      (error: unknown) => {
        slow?.cancel();
        this.send(exchange, message, internalError(error));
      },
    );
  }

  private send(exchange: ServerExchange, request: CoapMessage, spec: CoapResponse): void {
    let response: CoapMessage;
    try {
      response = toMessage(spec);
      const accept = getUintOption(request, OptionNumber.Accept);
      const format = getUintOption(response, OptionNumber.ContentFormat);
      if (accept !== undefined && spec.code === ResponseCode.Content && format !== undefined && format !== accept) {
        // §5.10.4: the preferred Content-Format cannot be returned.
        response = toMessage({ code: ResponseCode.NotAcceptable });
      }
    } catch (error) {
      response = toMessage(internalError(error));
    }
    if (suppressedByNoResponse(request, response.code)) {
      exchange.acknowledge(); // a CON still needs its ACK; a NON gets nothing (RFC 7967 §2)
      return;
    }
    exchange.respond(response);
  }

  private wellKnownCoreResource(): ResourceDefinition {
    return {
      path: '/.well-known/core',
      hidden: true,
      ct: ContentFormat.LinkFormat,
      handlers: {
        GET: (request) => ({
          code: ResponseCode.Content,
          contentFormat: ContentFormat.LinkFormat,
          payload: serializeLinks(filterLinks(this.links(), [...request.query])),
        }),
      },
    };
  }

  /** The links /.well-known/core advertises (RFC 6690 §4). */
  links(): Link[] {
    const links: Link[] = [];
    for (const resource of this.router.resources()) {
      if (!resource.hidden) links.push(toLink(resource.path, resource));
      for (const below of resource.listLinks?.() ?? []) links.push(toLink(below.path, below));
    }
    return links.sort((a, b) => a.href.localeCompare(b.href));
  }
}

const KNOWN_METHODS = new Set<Code>([1, 2, 3, 4, 5, 6, 7]);
const isKnownMethod = (code: Code): boolean => isRequestCode(code) && KNOWN_METHODS.has(code);
const isCriticalNumber = (n: number): boolean => (n & 1) === 1;

function handlerFor(handlers: Handlers, code: Code): Handler | undefined {
  const name = methodName(code).toUpperCase() as keyof Handlers;
  return handlers[name];
}

function hasAny(options: readonly CoapOption[], number: number): boolean {
  return options.some((o) => o.number === number);
}

function buildRequest(
  message: CoapMessage,
  options: CoapOption[],
  path: string[],
  subPath: string[],
  exchange: ServerExchange,
): CoapRequest {
  const view = { options };
  const payload = Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.byteLength);
  return {
    method: message.code,
    methodName: methodName(message.code),
    path,
    subPath,
    query: getStringOptions(view, OptionNumber.UriQuery),
    options,
    payload,
    contentFormat: getUintOption(view, OptionNumber.ContentFormat),
    accept: getUintOption(view, OptionNumber.Accept),
    confirmable: message.type === MessageType.CON,
    context: exchange.context,
    message,
    option: (number) => getOption(view, number),
    text: () => decodeString(payload),
  };
}

/** Builds the wire message of a handler's response (type, ID and token are set by the exchange). */
export function toMessage(spec: CoapResponse): CoapMessage {
  const message: CoapMessage = {
    type: MessageType.ACK,
    code: spec.code,
    messageId: 0,
    token: EMPTY_BYTES,
    options: [],
    payload: typeof spec.payload === 'string' ? encodeString(spec.payload) : (spec.payload ?? EMPTY_BYTES),
  };
  if (spec.etag) addOption(message, OptionNumber.ETag, spec.etag);
  if (spec.contentFormat !== undefined) addOption(message, OptionNumber.ContentFormat, encodeUint(spec.contentFormat));
  if (spec.maxAge !== undefined) addOption(message, OptionNumber.MaxAge, encodeUint(spec.maxAge));
  for (const o of spec.options ?? []) addOption(message, o.number, o.value);
  return message;
}

function internalError(error: unknown): CoapResponse {
  // The diagnostic names the failure without leaking a stack trace to the network (§5.5.2).
  const reason = error instanceof Error ? error.message : String(error);
  return { code: ResponseCode.InternalServerError, payload: `internal error: ${reason}`.slice(0, 200) };
}

/** RFC 7967 §2.1: bit values 2, 8 and 16 suppress 2.xx, 4.xx and 5.xx responses. */
function suppressedByNoResponse(request: CoapMessage, code: Code): boolean {
  const value = getOption(request, OptionNumber.NoResponse);
  if (value === undefined) return false;
  const bits = decodeUint(value);
  const cls = code >> 5;
  return (cls === 2 && (bits & 2) !== 0) || (cls === 4 && (bits & 8) !== 0) || (cls === 5 && (bits & 16) !== 0);
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T>)?.then === 'function';
}

function toLink(path: string, attributes: LinkAttributes): Link {
  const attrs: Array<[string, string | true]> = [];
  const many = (name: string, v: string | number | Array<string | number> | undefined): void => {
    if (v === undefined) return;
    attrs.push([name, Array.isArray(v) ? v.join(' ') : String(v)]);
  };
  many('rt', attributes.rt);
  many('if', attributes.if);
  many('ct', attributes.ct);
  if (attributes.sz !== undefined) attrs.push(['sz', String(attributes.sz)]);
  if (attributes.title !== undefined) attrs.push(['title', attributes.title]);
  if (attributes.obs) attrs.push(['obs', true]);
  const href = '/' + path.replace(/^\/+/, '');
  return { href, attributes: attrs };
}
