/**
 * The public client API: request({method, uri, ...}) and get/post/put/delete/fetch/patch/ipatch.
 * URIs become options here (RFC 7252 §6.4); everything below works with messages and peers.
 */
import { defaultRandom } from '../util/random.js';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Method, codeToString, isSuccessCode, methodFromName, type Code, type MethodName } from '../coap/codes.js';
import { EMPTY_BYTES, MessageType, addOption, sortOptions, decodeString, encodeString, encodeUint, getUintOption, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { parseCoapUri, type CoapUri } from '../coap/uri.js';
import type { EndpointContext } from '../exchange/context.js';
import { MessageLayer } from '../messaging/message-layer.js';
import { CoapEndpoint, type EndpointOptions, type ReceivedResponse, type RequestOptions } from '../exchange/endpoint.js';
import { CoapRequestError } from '../exchange/errors.js';
import type { TransmissionParameters } from '../messaging/parameters.js';
import type { PeerAddress } from '../transport/transport.js';
import { UdpClientTransport } from '../transport/udp-client.js';
import { DtlsClientTransport, type DtlsClientTransportOptions } from '../transport/dtls.js';
import { RealScheduler } from '../util/scheduler.js';
import { MAX_SZX, blockSize, encodeBlock, szxForSize } from '../coap/block.js';
import { blockwiseRequest, type BlockwiseOptions, type SendRequest } from './blockwise.js';
import { exchangeOnce, sendsAtOnce } from './one-exchange.js';
import { SimpleTarget, requestSimple } from './fast-request.js';
import { OscoreRequestForm, OscoreTargetState, requestOscoreSimple } from './oscore-fast-request.js';
import { OscoreClientSecurity } from './oscore.js';
import { Observation, type ObservationSettings } from './observe.js';
import { PLAIN, securedSender, withEchoOnlyRetry, withEchoRetry, type MessageSecurity } from './security.js';
import { directAddressing, proxySchemeAddressing } from './addressing.js';
import { RouteSecurity, hasLayer, type RouteHop, type RouteOptions } from './route.js';
import { ClientCredentials } from './credentials-security.js';
import type { KudosEvent } from '../kudos/session-types.js';
import { KUDOS_RESOURCE_PATH } from '../kudos/well-known.js';
import type { Credentials } from '../credentials/credentials-file.js';
import { isStreamScheme, openTransport, type TransportOptions } from '../transport/schemes.js';

export interface ClientRequest {
  method: MethodName | Lowercase<MethodName> | 'ipatch' | Code;
  uri: string;
  payload?: string | Uint8Array;
  contentFormat?: number;
  accept?: number;
  /** Further options; Uri-* options come from the URI. */
  options?: CoapOption[];
  /** CON (default) or NON. */
  confirmable?: boolean;
  /** This token (0..8 bytes) instead of a fresh random one (RFC 7252 §5.3.1); every block of the transfer reuses it. */
  token?: Uint8Array;
  /** Milliseconds each exchange may take in all, retransmissions included (a block-wise transfer has one per block). */
  timeout?: number;
  signal?: AbortSignal;
  /** Block size (16..1024) for Block1 and early Block2 negotiation (RFC 7959 §2.4, §2.5). */
  blockSize?: number;
  /** Progress of a block-wise transfer: bytes so far and the total when the peer said (Size1/Size2). */
  onProgress?: (bytes: number, total: number | undefined) => void;
  /** End-to-end protection for this request; by default the client's `security` map decides. */
  security?: MessageSecurity;
  /**
   * With `credentials` on the client: send this request as plain CoAP when no context matches it,
   * instead of refusing it with NoSecurityContextError.
   */
  allowUnprotected?: boolean;
  /**
   * A chain of proxies to go through, nearest first, each optionally with its own OSCORE context
   * (draft-ietf-core-oscore-capable-proxies §2.3; client/route.ts). Overrides the client's `proxy`.
   */
  via?: readonly RouteHop[];
  /**
   * Called with the target's host and the address it resolved to, when the request goes to the
   * target itself (no proxy): throw to refuse it. A gateway's destination policy judges the
   * address the request is then sent to, not one from a lookup of its own (DNS rebinding).
   */
  admit?: (host: string, peer: PeerAddress) => void;
}

export interface ObserveRequest extends Omit<ClientRequest, 'method' | 'uri' | 'onProgress'>, ObservationSettings {
  /** GET (default) or FETCH (RFC 8132 §2.4 allows Observe with FETCH). */
  method?: 'GET' | 'FETCH';
}

export interface ClientResponse {
  readonly code: Code;
  /** "2.05 Content" */
  readonly status: string;
  readonly ok: boolean;
  readonly options: readonly CoapOption[];
  readonly payload: Buffer;
  readonly contentFormat: number | undefined;
  readonly message: CoapMessage;
  readonly context: EndpointContext;
  /** The protected message as received, when OSCORE unwrapped this response from it. */
  readonly wire?: CoapMessage;
  text(): string;
}

export interface ClientOptions extends Omit<EndpointOptions, 'transport' | 'parameters'> {
  parameters?: Partial<TransmissionParameters>;
  /** Local address to bind for IPv4 peers. Default '0.0.0.0' (any), port 0. */
  bindIpv4?: string;
  bindIpv6?: string;
  /** Local port to bind (both families). Default 0: one the OS picks. */
  localPort?: number;
  /** Default block size for requests that do not set one. */
  blockSize?: number;
  /** Largest response body reassembled from blocks. Default 16 MiB. */
  maxBodySize?: number;
  /** Send every request through this forward proxy ("coap://proxy:5683"). */
  proxy?: string;
  /** UDP socket buffer sizes in bytes: raise them for hundreds of requests in flight. */
  receiveBufferSize?: number;
  sendBufferSize?: number;
  /** Chooses end-to-end protection (OSCORE) by target URI; plain CoAP where it returns undefined. */
  security?: (uri: string) => MessageSecurity | undefined;
  /**
   * coapsec JSON credentials (docs/credentials.md), as a path or as loadCredentials() returned
   * them: each request is protected with the OSCORE context whose `match` pattern fits its URI,
   * Sender Sequence Numbers persisted (RFC 8613 Appendix B.1.1). A request no pattern matches is
   * refused with NoSecurityContextError — nothing is sent — unless `allowUnprotected` (here or on
   * the request). A path is read at construction (CredentialsError when it does not load).
   * Consulted after `security`.
   */
  credentials?: string | Credentials;
  /** With `credentials`: send requests no context matches as plain CoAP instead of refusing them. */
  allowUnprotected?: boolean;
  /** With `credentials`: the KUDOS events of contexts with a `kudos` entry (state changes, completed updates; never keys). */
  onKudosEvent?: (event: KudosEvent) => void;
  /** Chooses a route of proxies by target URI (see ClientRequest.via). */
  via?: (uri: string) => readonly RouteHop[] | undefined;
  /** Route settings: the OSCORE layer limit (§2.1) and a Hop-Limit for the first proxy (§3). */
  route?: RouteOptions;
  /** DTLS credentials and limits for coaps:// URIs (psk, rpk and/or x509; see transport/dtls.ts). */
  dtls?: Omit<DtlsClientTransportOptions, 'host' | 'port' | 'scheduler'>;
  /**
   * The fast path for simple requests (client/fast-request.ts, client/oscore-fast-request.ts):
   * requests over UDP with default settings to a URI routed before, plain or protected with one
   * OSCORE context. Default true; false sends every request the layered way (what the fast path is
   * tested against).
   */
  fastPath?: boolean;
  /** coaps+tcp:// (and coaps+ws://) trust anchors, client certificate or TLS-PSK (transport/tls.ts). */
  tls?: TransportOptions['tls'];
  /** coap+ws:// and coaps+ws:// settings (transport/ws.ts). */
  ws?: TransportOptions['ws'];
}

/** A request's settings besides its method, URI and payload (ClientRequest's, or a convenience method's options). */
type RequestSettings = Omit<ClientRequest, 'method' | 'uri' | 'payload'>;

/** The options of a convenience method called without any. */
const NO_SETTINGS: Omit<ClientRequest, 'method' | 'uri'> = Object.freeze({});
const NON_SETTINGS: Omit<ClientRequest, 'method' | 'uri'> = Object.freeze({ confirmable: false });

/**
 * The exchange settings of a request that sets none (most): one object for all of them. Nothing
 * below writes to RequestOptions (layers that change a setting make a copy), so sharing it saves
 * an object per request.
 */
const DEFAULT_REQUEST_OPTIONS: Readonly<RequestOptions> = Object.freeze({ confirmable: true, responseTimeout: undefined, deadline: undefined, signal: undefined, token: undefined });
/** requestOptionsOf a request that sets `confirmable: false` and nothing else. */
const NON_REQUEST_OPTIONS: Readonly<RequestOptions> = Object.freeze({ confirmable: false, responseTimeout: undefined, deadline: undefined, signal: undefined, token: undefined });

/**
 * Whether a request's settings leave it simple (client/fast-request.ts): nothing set but
 * `confirmable` (and the payload, passed apart).
 */
function isSimpleSettings(request: RequestSettings): boolean {
  return (
    request === NO_SETTINGS ||
    (request.contentFormat === undefined &&
      request.accept === undefined &&
      request.options === undefined &&
      request.timeout === undefined &&
      request.signal === undefined &&
      request.token === undefined &&
      request.blockSize === undefined &&
      request.onProgress === undefined &&
      request.security === undefined &&
      request.allowUnprotected === undefined &&
      request.via === undefined &&
      request.admit === undefined)
  );
}

function requestOptionsOf(request: RequestSettings): RequestOptions {
  if (request.confirmable === undefined && request.timeout === undefined && request.signal === undefined && request.token === undefined) return DEFAULT_REQUEST_OPTIONS;
  // One object shape whatever is set (a conditional spread takes V8's slow path, see exchange/context.ts).
  return {
    confirmable: request.confirmable !== false,
    responseTimeout: request.timeout,
    deadline: request.timeout,
    signal: request.signal,
    token: request.token,
  };
}

/**
 * A convenience method's payload: its argument, or else one its options carry (as a merged
 * `{ ...options, method, uri, payload }` request would have had, before the options were passed on as they are).
 */
function payloadOf(payload: string | Uint8Array | undefined, options: RequestSettings): ClientRequest['payload'] {
  return payload !== undefined ? payload : (options as ClientRequest).payload;
}

/** Bytes of a BERT message besides its payload and request options: header, token, Block/Size options, an OSCORE layer. */
const BERT_OVERHEAD = 128;

export class CoapClient {
  private readonly endpoints = new Map<string, Promise<CoapEndpoint>>();
  private closed = false;
  /** Block1 operations in progress per target, to pick distinct Request-Tags (RFC 9175 §3.4). */
  private readonly block1InFlight = new Map<string, number>();
  /** Parsed request URIs with IP-literal hosts: where to send and the addressing options (bounded). */
  private readonly targets = new Map<string, Route>();
  /** The OSCORE contexts of `options.credentials`, opened on first use. */
  private readonly credentials: ClientCredentials | undefined;
  /** The coap:// endpoints once open (`endpoints` holds their promises), for requests that need not wait. */
  private openUdp4: CoapEndpoint | undefined;
  private openUdp6: CoapEndpoint | undefined;
  /** blockwiseOptions() of a datagram request that sets no block size and no progress callback. */
  private readonly defaultBlockwise: Readonly<BlockwiseOptions>;
  /**
   * Routed URIs that simple requests take the fast path to (client/fast-request.ts, and
   * client/oscore-fast-request.ts for a URI protected with OSCORE), filled as `targets` is and
   * cleared with it; undefined when this client's settings rule the fast path out for every
   * request (proxy routes, a default block size).
   */
  private readonly simpleTargets: Map<string, SimpleTarget> | undefined;
  private simpleRequests = 0;

  constructor(private readonly options: ClientOptions = {}) {
    if (options.blockSize !== undefined) szxForSize(options.blockSize);
    this.defaultBlockwise = Object.freeze({ szx: undefined, maxBodySize: options.maxBodySize ?? 16 << 20, maxRestarts: 3, onProgress: undefined, bert: undefined });
    this.credentials =
      options.credentials !== undefined
        ? new ClientCredentials(options.credentials, {
            // KUDOS requests of a context's own (a policy's update, the reverse flow's convergent request).
            kudos: {
              send: (origin) => (security) => this.request({ method: 'POST', uri: `${origin}${KUDOS_RESOURCE_PATH}`, security }),
              ...(options.onKudosEvent ? { onEvent: options.onKudosEvent } : {}),
            },
          })
        : undefined;
    const simple = options.fastPath !== false && options.via === undefined && options.blockSize === undefined;
    this.simpleTargets = simple ? new Map() : undefined;
  }

  /**
   * The end-to-end protection of a request: the request's own, the `security` map's, or the
   * credentials' context for the URI. With credentials, a request that would go out with no OSCORE
   * layer at all (no context for the URI, none for any proxy on its route) is refused unless
   * unprotected requests are allowed: a user who gave credentials meant "protect this".
   */
  private endToEnd(uri: string, request: Pick<ClientRequest, 'security' | 'via' | 'allowUnprotected'>): MessageSecurity {
    const chosen = request.security ?? this.options.security?.(uri) ?? this.credentials?.securityFor(uri);
    if (chosen) return chosen;
    if (this.credentials && !(request.allowUnprotected ?? this.options.allowUnprotected)) {
      const via = request.via ?? this.options.via?.(uri);
      if (!via?.some(hasLayer)) throw this.credentials.refusal(uri);
    }
    return PLAIN;
  }

  /** The endpoint used for IPv4 or IPv6 peers (coap: UDP, coaps: DTLS), created on first use. */
  endpoint(family: 4 | 6, scheme: CoapUri['scheme'] = 'coap'): Promise<CoapEndpoint> {
    let endpoint = this.endpoints.get(`${scheme}${family}`);
    if (!endpoint && isStreamScheme(scheme)) {
      // RFC 8323: one carrier per scheme, holding a connection per peer of either family.
      const transportOptions = { tls: this.options.tls, ws: this.options.ws };
      endpoint = openTransport(scheme, 'client', transportOptions).then((transport) => new CoapEndpoint({ ...this.options, transport }));
      this.endpoints.set(`${scheme}${family}`, endpoint);
    }
    if (!endpoint) {
      const host = family === 6 ? (this.options.bindIpv6 ?? '::') : (this.options.bindIpv4 ?? '0.0.0.0');
      if (scheme === 'coaps') {
        const dtls = this.options.dtls;
        if (!dtls || (!dtls.psk && !dtls.rpk && !dtls.x509 && !dtls.authz)) {
          return Promise.reject(new CoapRequestError('coaps:// needs DTLS credentials (psk, rpk, x509 or a trust-anchor credential)'));
        }
        const scheduler = this.options.scheduler ?? new RealScheduler();
        endpoint = DtlsClientTransport.bind({ ...dtls, host, port: this.options.localPort ?? 0, scheduler }).then((transport) => new CoapEndpoint({ ...this.options, scheduler, transport }));
      } else {
        endpoint = UdpClientTransport.bind({
          host,
          port: this.options.localPort ?? 0,
          // A chosen local port is where every request must come from: no per-peer sockets then.
          ...(this.options.localPort ? { maxPeerSockets: 0 } : {}),
          ...(this.options.receiveBufferSize ? { receiveBufferSize: this.options.receiveBufferSize } : {}),
          ...(this.options.sendBufferSize ? { sendBufferSize: this.options.sendBufferSize } : {}),
        }).then((transport) => new CoapEndpoint({ ...this.options, transport }));
      }
      this.endpoints.set(`${scheme}${family}`, endpoint);
    }
    return endpoint;
  }

  /**
   * Where a request for `uriText` goes: straight to its host, or to the forward proxy with
   * Proxy-Scheme, Uri-Host and Uri-Port naming the target (RFC 7252 §5.7.2, §6.4; the options come
   * from addressing.ts, as a route's and a forward proxy's do).
   */
  private async route(uriText: string): Promise<Route> {
    const cached = this.targets.get(uriText);
    if (cached) return cached;
    const uri = parseCoapUri(uriText);
    let route: Route;
    if (this.options.proxy === undefined) {
      const peer = await resolvePeer(uri);
      route = { uri, leg: uri, peer, options: directAddressing(uri, peer) };
    } else {
      const proxy = parseCoapUri(this.options.proxy);
      const peer = await resolvePeer(proxy);
      const options = proxySchemeAddressing(uri, peer.port, true);
      route = { uri, leg: proxy, peer, options };
    }
    // IP literals only: a host name is looked up again for every request (its address may change).
    if (isIP(uri.host) && (this.options.proxy === undefined || isIP(route.leg.host))) {
      if (this.targets.size >= 256) {
        this.targets.clear();
        this.simpleTargets?.clear();
      }
      this.targets.set(uriText, route);
    }
    return route;
  }

  /**
   * The route and security of a request: with a chain of proxies (`via`), the first proxy is the
   * leg, the message carries the origin's Uri-Path/Uri-Query only, and RouteSecurity adds each
   * hop's options and layer (§2.3); otherwise route() and the end-to-end security as they are.
   */
  private routeWith(uriText: string, requestVia: readonly RouteHop[] | undefined, e2e: MessageSecurity, admit?: ClientRequest['admit']): Routed | Promise<Routed> {
    const via = requestVia ?? this.options.via?.(uriText);
    if (!via || via.length === 0) {
      // A URI routed before is routed at once: no promise and no await per request.
      const cached = this.targets.get(uriText);
      if (cached !== undefined) return { target: admitted(cached, admit), security: e2e };
      return this.route(uriText).then((target) => ({ target: admitted(target, admit), security: e2e }));
    }
    return this.routeVia(uriText, via, e2e);
  }

  private async routeVia(uriText: string, via: readonly RouteHop[], e2e: MessageSecurity): Promise<Routed> {
    const uri = parseCoapUri(uriText);
    const security = new RouteSecurity(uri, via, e2e, this.options.route);
    const leg = security.firstHop;
    const peer = await resolvePeer(leg);
    const options = sortOptions([
      ...uri.path.map((segment) => ({ number: OptionNumber.UriPath, value: encodeString(segment) })),
      ...uri.query.map((arg) => ({ number: OptionNumber.UriQuery, value: encodeString(arg) })),
    ]);
    return { target: { uri, leg, peer, options }, security };
  }

  /**
   * The endpoint for a URI's scheme and peer; for coaps, the transport learns the host name to
   * check. A coap:// endpoint already open is returned at once (no await per request).
   */
  private endpointFor(uri: CoapUri, peer: PeerAddress): CoapEndpoint | Promise<CoapEndpoint> {
    if (uri.scheme === 'coap') {
      // A resolved peer's address is an IP literal: only IPv6 ones hold a colon (no isIP per request).
      const open = peer.address.includes(':') ? this.openUdp6 : this.openUdp4;
      if (open !== undefined) return open;
    }
    return this.endpoint(isIP(peer.address) === 6 ? 6 : 4, uri.scheme).then((endpoint) => {
      if (endpoint.transport instanceof DtlsClientTransport || isStreamScheme(uri.scheme)) endpoint.setServerName(peer, uri.host);
      else if (uri.scheme === 'coap' && !this.closed) {
        if (isIP(peer.address) === 6) this.openUdp6 = endpoint;
        else this.openUdp4 = endpoint;
      }
      return endpoint;
    });
  }

  /** Requests that took the fast path (client/fast-request.ts) so far. */
  get fastPathRequests(): number {
    return this.simpleRequests;
  }

  request(request: ClientRequest): Promise<ClientResponse> {
    return this.start(request.method, request.uri, request.payload, request);
  }

  /**
   * A request from its parts (the convenience methods pass their options object as it is: no
   * merged copy per request). Settles one promise when the route and endpoint are known and the
   * exchange needs no set-up (one-exchange.ts); anything that must wait goes on asynchronously.
   */
  private start(method: ClientRequest['method'], uriText: string, payload: ClientRequest['payload'], request: RequestSettings): Promise<ClientResponse> {
    try {
      if (this.closed) throw new CoapRequestError('client is closed');
      const code = typeof method === 'number' ? method : methodFromName(method);
      if (code === undefined) throw new CoapRequestError(`unknown method ${String(method)}`);
      const e2e = this.endToEnd(uriText, request);
      if (this.simpleTargets !== undefined && isSimpleSettings(request)) {
        const target = this.simpleTargets.get(uriText);
        // The security the layered path would take, asked for per request as it asks.
        if (target !== undefined && (target.oscore?.security ?? PLAIN) === e2e) {
          const simple = this.startSimple(target, code, payload, request.confirmable === false);
          if (simple !== undefined) return simple;
        }
      }
      // A URI routed before, with no proxy chain: straight on (no Routed object per request).
      const cached = request.via === undefined && this.options.via === undefined ? this.targets.get(uriText) : undefined;
      if (cached !== undefined) return this.routed(code, uriText, payload, request, admitted(cached, request.admit), e2e);
      const routed = this.routeWith(uriText, request.via, e2e, request.admit);
      if (routed instanceof Promise) return routed.then((r) => this.routed(code, uriText, payload, request, r.target, r.security));
      return this.routed(code, uriText, payload, request, routed.target, routed.security);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * A simple request to a SimpleTarget (client/fast-request.ts, client/oscore-fast-request.ts);
   * undefined when it is not one after all (a body of more than one block; for OSCORE, a key update
   * or Appendix B.2 running).
   */
  private startSimple(target: SimpleTarget, code: Code, payload: ClientRequest['payload'], nonConfirmable: boolean): Promise<ClientResponse> | undefined {
    const body = typeof payload === 'string' ? encodeString(payload) : (payload ?? EMPTY_BYTES);
    // Without a block size the first block is of the largest (blockwiseOptions, sendOn).
    if (body.length > blockSize(MAX_SZX)) return undefined;
    const options = nonConfirmable ? NON_REQUEST_OPTIONS : DEFAULT_REQUEST_OPTIONS;
    const sent = target.oscore === undefined ? requestSimple(target, code, body, options, this.defaultBlockwise, clientResponseOf) : requestOscoreSimple(target, target.oscore, code, body, options, this.defaultBlockwise, clientResponseOf);
    if (sent !== undefined) this.simpleRequests++;
    return sent;
  }

  /** start() once the request's route is known; throws what the request cannot survive (start turns it into a rejection). */
  private routed(code: Code, uriText: string, payload: ClientRequest['payload'], request: RequestSettings, target: Route, security: MessageSecurity): Promise<ClientResponse> {
    const { uri, peer } = target;
    const message = requestMessage(code, uri, peer, request, payload, target.options.slice());
    const opened = this.endpointFor(target.leg, peer);
    if (opened instanceof Promise) {
      return opened.then((endpoint) => {
        this.rememberSimple(uriText, target, endpoint, security);
        return this.sendOn(endpoint, code, uriText, peer, request, security, message);
      });
    }
    this.rememberSimple(uriText, target, opened, security);
    return this.sendOn(opened, code, uriText, peer, request, security, message);
  }

  /**
   * Makes a routed URI a SimpleTarget once its route is cached and its coap:// endpoint open, for
   * the simple requests after this one: plain ones, or ones protected with one OSCORE context
   * (an OscoreClientSecurity: not EDHOC's, nor a route's layers).
   */
  private rememberSimple(uriText: string, target: Route, endpoint: CoapEndpoint, security: MessageSecurity): void {
    const targets = this.simpleTargets;
    if (targets === undefined || this.closed || targets.has(uriText) || this.targets.get(uriText) !== target || target.leg.scheme !== 'coap' || !endpoint.takesSimpleRequests) return;
    const oscore = security === PLAIN ? undefined : security instanceof OscoreClientSecurity && OscoreRequestForm.fits(target.options) ? new OscoreTargetState(security, target.options) : null;
    if (oscore === null) return;
    const { uri, peer } = target;
    const templateOf = (code: Code, payload: Uint8Array, confirmable: boolean): CoapMessage => requestMessage(code, uri, peer, confirmable ? NO_SETTINGS : NON_SETTINGS, payload, target.options.slice());
    targets.set(uriText, new SimpleTarget(endpoint, peer, target.options, templateOf, oscore));
  }

  private sendOn(endpoint: CoapEndpoint, code: Code, uriText: string, peer: PeerAddress, request: RequestSettings, security: MessageSecurity, message: CoapMessage): Promise<ClientResponse> {
    const requestOptions = requestOptionsOf(request);
    const blockwise = this.blockwiseOptions(request, endpoint, peer, message);
    const oneMessage = message.payload.length <= blockSize(blockwise.szx ?? MAX_SZX);
    if (oneMessage && sendsAtOnce(security)) return exchangeOnce(endpoint, peer, security, requestOptions, message, blockwise, clientResponseOf);
    const sender = securedSender(endpoint, peer, security, requestOptions);
    // Plain CoAP has no Appendix B.2 to retry; a 4.01 with Echo still is (RFC 9175 §2.4).
    const send = security === PLAIN ? withEchoOnlyRetry(sender) : withEchoRetry(sender);
    if (oneMessage) return blockwiseRequest(send, message, blockwise).then(clientResponseOf);
    return this.block1Transfer(send, message, blockwise, `${peer.address}|${peer.port}|${code}|${uriText}`);
  }

  /**
   * A Block1 operation: the first to a target may go without Request-Tag; concurrent ones need
   * distinct values (RFC 9175 §3.4).
   */
  private async block1Transfer(send: SendRequest, message: CoapMessage, shared: Readonly<BlockwiseOptions>, operation: string): Promise<ClientResponse> {
    const concurrent = this.block1InFlight.get(operation) ?? 0;
    // A copy: `shared` may be the client's default (blockwiseOptions).
    const blockwise: BlockwiseOptions = concurrent > 0 ? { ...shared, requestTag: defaultRandom.bytes(4) } : shared;
    this.block1InFlight.set(operation, concurrent + 1);
    try {
      return clientResponseOf(await blockwiseRequest(send, message, blockwise));
    } finally {
      const left = (this.block1InFlight.get(operation) ?? 1) - 1;
      if (left > 0) this.block1InFlight.set(operation, left);
      else this.block1InFlight.delete(operation);
    }
  }

  /**
   * Observes a resource (RFC 7641): an async iterator of notifications. Stop iterating (or call
   * cancel()) to deregister.
   */
  async observe(uri: string, request: ObserveRequest = {}): Promise<Observation> {
    if (this.closed) throw new CoapRequestError('client is closed');
    const e2e = this.endToEnd(uri, request);
    const { target, security } = await this.routeWith(uri, request.via, e2e, request.admit);
    const { uri: parsed, peer } = target;
    const code = request.method === 'FETCH' ? Method.FETCH : Method.GET;
    const message = buildRequestMessage(code, parsed, peer, request, target.options.slice());
    const endpoint = await this.endpointFor(target.leg, peer);
    const blockwise = this.blockwiseOptions(request, endpoint, peer, message);
    if (blockwise.szx !== undefined) message.options.push({ number: OptionNumber.Block2, value: encodeBlock({ num: 0, more: false, szx: blockwise.szx }) });
    message.options = sortOptions(message.options);
    return new Observation(endpoint, peer, message, blockwise, request, security);
  }

  /**
   * The block-wise settings of a request. Over a stream transport whose connection allows BERT
   * (RFC 8323 §6) and with no block size chosen, blocks are BERT blocks as large as the peer's
   * Max-Message-Size allows after the request's own options (and room for an OSCORE layer).
   */
  private blockwiseOptions(request: Pick<ClientRequest, 'blockSize' | 'onProgress'>, endpoint: CoapEndpoint, peer: PeerAddress, message: CoapMessage): BlockwiseOptions {
    const size = request.blockSize ?? this.options.blockSize;
    // Over UDP and DTLS with no block size and no progress callback (most requests): the client's
    // one default object; whoever sets a field of its own (block1Transfer's Request-Tag) copies it.
    if (size === undefined && request.onProgress === undefined && endpoint.carrier instanceof MessageLayer) return this.defaultBlockwise;
    const overhead = isStreamScheme(endpoint.transport.scheme) ? BERT_OVERHEAD + message.options.reduce((sum, o) => sum + o.value.length + 5, 0) : 0;
    // One object shape whatever is set (a conditional spread takes V8's slow path, see exchange/context.ts).
    return {
      szx: size !== undefined ? szxForSize(size) : undefined,
      maxBodySize: this.options.maxBodySize ?? 16 << 20,
      maxRestarts: 3,
      onProgress: request.onProgress,
      // A connection that cannot open gives no BERT; the request itself then reports why.
      bert: overhead > 0 ? () => endpoint.connected(peer).then(() => endpoint.bertPayloadLimit(peer, overhead), () => undefined) : undefined,
    };
  }

  get(uri: string, options: Omit<ClientRequest, 'method' | 'uri'> = NO_SETTINGS): Promise<ClientResponse> {
    return this.start(Method.GET, uri, options.payload, options);
  }
  post(uri: string, payload?: string | Uint8Array, options: Omit<ClientRequest, 'method' | 'uri' | 'payload'> = NO_SETTINGS): Promise<ClientResponse> {
    return this.start(Method.POST, uri, payloadOf(payload, options), options);
  }
  put(uri: string, payload?: string | Uint8Array, options: Omit<ClientRequest, 'method' | 'uri' | 'payload'> = NO_SETTINGS): Promise<ClientResponse> {
    return this.start(Method.PUT, uri, payloadOf(payload, options), options);
  }
  delete(uri: string, options: Omit<ClientRequest, 'method' | 'uri'> = NO_SETTINGS): Promise<ClientResponse> {
    return this.start(Method.DELETE, uri, options.payload, options);
  }
  fetch(uri: string, payload?: string | Uint8Array, options: Omit<ClientRequest, 'method' | 'uri' | 'payload'> = NO_SETTINGS): Promise<ClientResponse> {
    return this.start(Method.FETCH, uri, payloadOf(payload, options), options);
  }
  patch(uri: string, payload?: string | Uint8Array, options: Omit<ClientRequest, 'method' | 'uri' | 'payload'> = NO_SETTINGS): Promise<ClientResponse> {
    return this.start(Method.PATCH, uri, payloadOf(payload, options), options);
  }
  ipatch(uri: string, payload?: string | Uint8Array, options: Omit<ClientRequest, 'method' | 'uri' | 'payload'> = NO_SETTINGS): Promise<ClientResponse> {
    return this.start(Method.IPATCH, uri, payloadOf(payload, options), options);
  }

  /** CoAP ping (§4.3) to the URI's host and port; resolves with the round-trip time in ms. */
  async ping(uri: string): Promise<number> {
    const parsed = parseCoapUri(uri);
    const peer = await resolvePeer(parsed);
    const endpoint = await this.endpointFor(parsed, peer);
    return endpoint.ping(peer);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.openUdp4 = this.openUdp6 = undefined;
    this.simpleTargets?.clear();
    const endpoints = [...this.endpoints.values()];
    this.endpoints.clear();
    await Promise.all(endpoints.map(async (e) => (await e.catch(() => undefined))?.close()));
    this.credentials?.close();
  }
}

/** One-shot request on a client of its own: convenient for scripts, a socket per call. */
export async function request(req: ClientRequest & { client?: ClientOptions }): Promise<ClientResponse> {
  const client = new CoapClient(req.client);
  try {
    return await client.request(req);
  } finally {
    await client.close();
  }
}

/** A request's route and the end-to-end security it goes with. */
interface Routed {
  target: Route;
  security: MessageSecurity;
}

/** A direct route, after the caller's `admit` check of the address it goes to (ClientRequest.admit). */
function admitted(target: Route, admit: ClientRequest['admit']): Route {
  if (admit && target.leg === target.uri) admit(target.uri.host, target.peer);
  return target;
}

interface Route {
  /** The target. */
  uri: CoapUri;
  /** The first leg: the target itself, or the proxy. */
  leg: CoapUri;
  peer: PeerAddress;
  options: CoapOption[];
}

export async function resolvePeer(uri: Pick<CoapUri, "host" | "port">): Promise<PeerAddress> {
  if (isIP(uri.host)) return { address: uri.host, port: uri.port };
  try {
    const { address } = await lookup(uri.host);
    return { address, port: uri.port };
  } catch {
    throw new CoapRequestError(`cannot resolve host ${uri.host}`);
  }
}

export function buildRequestMessage(
  code: Code,
  uri: CoapUri,
  peer: PeerAddress,
  request: Omit<ClientRequest, 'method' | 'uri'>,
  uriOptions?: CoapOption[],
): CoapMessage {
  return requestMessage(code, uri, peer, request, request.payload, uriOptions);
}

function requestMessage(code: Code, uri: CoapUri, peer: PeerAddress, request: RequestSettings, payload: ClientRequest['payload'], uriOptions?: CoapOption[]): CoapMessage {
  const message: CoapMessage = {
    type: request.confirmable === false ? MessageType.NON : MessageType.CON,
    code,
    messageId: 0,
    token: EMPTY_BYTES,
    options: uriOptions ?? directAddressing(uri, peer),
    payload: typeof payload === 'string' ? encodeString(payload) : (payload ?? EMPTY_BYTES),
  };
  if (request.contentFormat !== undefined) addOption(message, OptionNumber.ContentFormat, encodeUint(request.contentFormat));
  if (request.accept !== undefined) addOption(message, OptionNumber.Accept, encodeUint(request.accept));
  for (const o of request.options ?? []) addOption(message, o.number, o.value);
  return message;
}

/** The response a request resolves with. */
const clientResponseOf = (received: ReceivedResponse): ClientResponse => toClientResponse(received.message, received.context, received.wire);

/** codeToString of each code (0..255), made on first use: a response's status is one of few strings. */
const statusTexts: Array<string | undefined> = new Array<string | undefined>(256).fill(undefined);
const statusOf = (code: Code): string => (statusTexts[code & 0xff] ??= codeToString(code & 0xff));

export function toClientResponse(message: CoapMessage, context: EndpointContext, wire?: CoapMessage): ClientResponse {
  // A payload decoded from a received datagram is already a Buffer view: no second view of it.
  const p = message.payload;
  const payload = Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  return {
    code: message.code,
    status: statusOf(message.code),
    ok: isSuccessCode(message.code),
    options: message.options,
    payload,
    contentFormat: getUintOption(message, OptionNumber.ContentFormat),
    message,
    context,
    wire,
    text: () => decodeString(payload),
  };
}
