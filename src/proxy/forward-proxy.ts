/**
 * A CoAP forward proxy (RFC 7252 §5.7) with next hops, Hop-Limit (RFC 8768), a response cache
 * (§5.6, plugged in) and Observe fan-out (RFC 7641 §5). Each leg has its own tokens and Message
 * IDs: the downstream exchange belongs to the server endpoint, the upstream one to the client's.
 *
 * Processing rules of the end-to-end security requirements (shared/seeds/002 §2.2, 000 §3.4):
 * PR1.1/PR1.2 — the target comes from Proxy-Uri, or from Proxy-Scheme with the Uri-* options;
 * PR1.3 — responses are forwarded without change (Max-Age aside, when served from the cache);
 * PR2.x — in the cache module; PR4.1 — one upstream observation serves every client, and
 * out-of-order upstream notifications are dropped; PR4.2 — each client gets its own sequence.
 */
import { Method, ResponseCode, codeClass } from '../coap/codes.js';
import {
  EMPTY_BYTES,
  MessageType,
  addOption,
  decodeString,
  decodeUint,
  encodeString,
  encodeUint,
  getOption,
  getUintOption,
  setOption,
  type CoapMessage,
} from '../coap/message.js';
import { OptionNumber, isUnsafe, optionDefinition } from '../coap/options.js';
import { parseAbsoluteUri } from '../coap/uri.js';
import { encodeMessage } from '../coap/codec.js';
import { resolvePeer, type CoapClient } from '../client/client.js';
import type { ProtectedRequest } from '../client/security.js';
import type { CoapEndpoint, ReceivedResponse, RequestOptions, ResponseHandler } from '../exchange/endpoint.js';
import { CoapRequestError, TimeoutError } from '../exchange/errors.js';
import { conditionalReply, variantKey } from './cache.js';
import { ProxiedRequestThrough, type CoapServer, type ForwardingHandler, type ProxiedRequest } from '../server/server.js';
import { isTransportScheme } from '../transport/schemes.js';
import type { PeerAddress } from '../transport/transport.js';
import type { EndpointContext } from '../exchange/context.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { upstreamLayer, type UpstreamLayer } from './oscore-proxy.js';
import { TargetMemo, checkProxyRequest, isNamingOption, type Target } from './request-target.js';
import { MissCoalescer, type SettleMiss } from './coalescing.js';
import { cacheableProtection } from './protected-cache.js';
import { DestinationPolicy, DestinationRefusedError } from './destination-policy.js';
import { ADDRESSING, UpstreamRoutes, upstreamRequest, type UpstreamRoute } from './upstream-route.js';
import { ObserveRelay, errorMessage, forwardable } from './observe-relay.js';

/** What the proxy needs from a cache (src/proxy/cache.ts implements it). */
export interface ProxyCache {
  cacheKey(request: CoapMessage, target: string): string;
  lookup(request: CoapMessage, key: string): { kind: 'fresh' | 'valid'; response: CoapMessage } | { kind: 'stale'; etags: Uint8Array[] } | undefined;
  /**
   * What `lookup` answers from a fresh entry, without side effects when it cannot answer (no miss
   * counted), so the proxy can ask it before building the upstream request. Optional: a cache
   * without it is asked through `lookup` only, after the upstream request is built.
   */
  lookupFresh?(request: CoapMessage, key: string): { kind: 'fresh' | 'valid'; response: CoapMessage } | undefined;
  store(request: CoapMessage, key: string, response: CoapMessage): unknown;
  revalidated(key: string, valid: CoapMessage, request?: CoapMessage): CoapMessage | undefined;
  afterUnsafe(request: CoapMessage, target: string, response: CoapMessage): void;
}

export interface ForwardProxyOptions {
  /**
   * Upstream legs (a CoapClient, with its DTLS and TLS credentials): the target's scheme picks the
   * transport (coap, coaps, coap+tcp, coaps+tcp, coap+ws, coaps+ws; transport/schemes.ts), whatever
   * carried the request to this proxy. UDP legs are CON with retransmission; a stream leg reuses
   * one connection per peer, closed with the client.
   */
  upstream: Pick<CoapClient, 'endpoint'>;
  /** Forward everything to this proxy instead, keeping Proxy-Uri/Proxy-Scheme (PR1.1/PR1.2). */
  nextHop?: string;
  cache?: ProxyCache;
  /**
   * Proxy-Scheme http(s): the CoAP→HTTP mapping of RFC 8075 (src/proxy/http-mapping.ts). Without
   * it such requests get 5.05. Only destinations `allowDestinations` names are reached; `address`
   * is the one the target's host resolved to and was approved: connect there, not to a new lookup.
   */
  http?: (request: CoapMessage, target: string, address: string) => Promise<CoapMessage>;
  /**
   * Milliseconds that cache misses on a key go upstream without coalescing after the key's last
   * response that could not be shared (hit-for-pass, src/proxy/coalescing.ts). Default 5 s; 0
   * makes every miss coalesce.
   */
  passFor?: number;
  /** Milliseconds an upstream exchange may take before the client gets 5.04. Default 10 s. */
  upstreamTimeout?: number;
  /**
   * Destinations this proxy may reach besides public CoAP ones (src/proxy/destination-policy.ts):
   * CIDR networks, addresses and host names. Loopback, private, link-local, multicast and other
   * special addresses are refused otherwise, and HTTP(S) targets (see `http`) go only to these.
   * Not consulted for `nextHop`, which the operator chose.
   */
  allowDestinations?: readonly string[];
  /** Hop-Limit inserted into requests that carry none, and the most a request's own is trusted with (RFC 8768 §3). Default 16. */
  defaultHopLimit?: number;
  /** Named in 5.08 diagnostics so a loop can be traced (RFC 8768 §3). */
  name?: string;
  /**
   * draft-ietf-core-oscore-capable-proxies §2.4 step 4: whether forwarding this request is
   * acceptable, e.g. by the OSCORE context that authenticated the client (context.oscore; see
   * proxy/oscore-proxy.ts allowList). Refused requests get 4.01, protected over the layers removed.
   */
  authorize?: (context: EndpointContext, message: CoapMessage) => boolean;
  /**
   * The OSCORE context this proxy shares with the next hop (§2.3: one more layer on the upstream
   * leg, removed again from the response, §2.6). `nextHop` is true when the next hop is a proxy.
   */
  upstreamSecurity?: (target: { uri: string; nextHop: boolean }) => OscoreSecurityContext | undefined;
  /**
   * Host names (or address literals) that identify this proxy besides its bound address. A proxied
   * request whose authority is one of them (or the bound address) with this server's port and
   * scheme is processed locally (§2.4 step 4, RFC 7252 §5.7.2), never forwarded to itself.
   */
  aliases?: readonly string[];
  /**
   * Requests whose options are only their target's naming (Proxy-Uri, or Proxy-Scheme and Uri-*)
   * and Hop-Limit go upstream over UDP or DTLS as option bytes made once per target, route and
   * Hop-Limit (`CoapEndpoint.sendSimple`), without an upstream message to build and encode each
   * time; the datagrams are the same. Default true; false sends every request as a message.
   */
  fastPath?: boolean;
}

/**
 * A request on its way upstream: the message (`upstreamRequest`), or for a request that takes
 * the simple path (ForwardProxy.simpleUpstream) the option bytes the endpoint writes its datagram around.
 */
type Upstream = CoapMessage | Uint8Array;

/** The option bytes of one target's simple upstream requests, for the route and Hop-Limit they were made for. */
interface SimpleUpstream {
  readonly route: UpstreamRoute;
  readonly hopLimit: number;
  readonly optionBytes: Uint8Array;
}

export class ForwardProxy implements ForwardingHandler {
  private readonly observeRelay: ObserveRelay;
  private readonly coalescing: MissCoalescer;
  private readonly routes: UpstreamRoutes;
  private readonly timeout: number;
  private readonly hopLimit: number;
  private readonly targets = new TargetMemo();
  private readonly destinations: DestinationPolicy;
  /**
   * The RequestOptions of every upstream exchange, CON and NON, made once: the endpoint only reads
   * them, and they differ by nothing but the type.
   */
  private readonly confirmable: RequestOptions;
  private readonly nonConfirmable: RequestOptions;
  /** `fromOrigin` for the UpstreamExchange objects (one function per proxy, not one per exchange). */
  private readonly toClient: FromOrigin = (request, response, target, key, settle) => this.fromOrigin(request, response, target, key, settle);
  /** Per target (TargetMemo hands out one object per naming), its simple upstream requests' option bytes. */
  private readonly simpleUpstreams = new WeakMap<Target, SimpleUpstream>();
  private readonly fastPath: boolean;
  /** This endpoint's own authority (§2.4 step 4), read once: the transport's address is a system call (getsockname). */
  private self: { scheme: string; port: number; address: string | undefined; aliases: readonly string[] } | undefined;
  /**
   * `passed`: cache misses sent upstream without coalescing, as their key's last response could not
   * be shared (coalescing.ts); `simple`: requests sent upstream on the simple path (`fastPath`).
   */
  readonly stats = { forwarded: 0, cacheHits: 0, coalesced: 0, passed: 0, upstreamObservations: 0, simple: 0 };

  constructor(
    private readonly server: CoapServer,
    private readonly options: ForwardProxyOptions,
  ) {
    this.timeout = options.upstreamTimeout ?? 10_000;
    this.hopLimit = options.defaultHopLimit ?? 16;
    this.fastPath = options.fastPath ?? true;
    this.confirmable = { deadline: this.timeout, confirmable: true };
    this.nonConfirmable = { deadline: this.timeout, confirmable: false };
    this.coalescing = new MissCoalescer(() => server.endpoint.scheduler.now(), options.passFor);
    this.destinations = new DestinationPolicy({ allow: options.allowDestinations ?? [] });
    this.routes = new UpstreamRoutes(options.upstream, options.nextHop, this.destinations);
    server.setForwardingHandler(this);
    this.observeRelay = new ObserveRelay(server, 'proxy', this.timeout, () => this.stats.upstreamObservations++);
  }

  /**
   * Checks that need nothing but the request, then a fresh cached response if there is one, all
   * synchronously: a cache hit is answered (piggybacked, §5.2.1) within the request datagram's
   * callback, before any upstream work. Everything else goes upstream (`forwardUpstream`).
   */
  forward(request: ProxiedRequest): void | Promise<void> {
    const message = request.message;
    // draft-ietf-core-oscore-capable-proxies §2.4 step 4: is forwarding acceptable for this client?
    if (this.options.authorize && !this.options.authorize(request.context, message)) {
      return answer(request, ResponseCode.Unauthorized, 'not authorized to use this proxy', [{ number: OptionNumber.MaxAge, value: encodeUint(0) }]);
    }

    // RFC 7252 §5.4.1/§5.4.3/§5.4.5, §5.10.2: the server's option checks, before anything reads
    // an option (the target memo, the cache key, the upstream copy).
    const checked = checkProxyRequest(message);
    if ('error' in checked) return answer(request, checked.code, checked.error);
    message.options = checked.options;

    const target = this.targets.resolve(message);
    if ('error' in target) return answer(request, target.code, target.error);
    // §2.4 step 4 / RFC 7252 §5.7.2: a request URI whose authority identifies this endpoint is a
    // local request: its proxy-related options are consumed and the §2.4 loop resumes at step 1.
    if (this.identifiesMe(target)) return request.local(consumeProxyOptions(message));

    // One pass over the options for what the checks below and the upstream leg read: Hop-Limit
    // and Observe (one each at most, checked above), and the first unrecognized Unsafe option.
    let hopLimitValue: Uint8Array | undefined;
    let observeValue: Uint8Array | undefined;
    let unforwardable: number | undefined;
    for (const o of message.options) {
      const n = o.number;
      if (n === OptionNumber.HopLimit) hopLimitValue = o.value;
      else if (n === OptionNumber.Observe) observeValue = o.value;
      else if (unforwardable === undefined && isUnsafe(n) && optionDefinition(n) === undefined) unforwardable = n;
    }

    // RFC 8768 §3: decrement Hop-Limit, or insert it; at 0 the request goes no further. A client's
    // value is capped at this proxy's own default: a client that starts at 255 would otherwise make
    // a loop between two proxies (A's next hop B, B's next hop A) cost 255 forwarded requests.
    const hopLimit = hopLimitValue === undefined ? this.hopLimit : Math.min(decodeUint(hopLimitValue), this.hopLimit);
    if (hopLimit <= 1) {
      return answer(request, ResponseCode.HopLimitReached, this.options.name ?? 'hop limit reached', [{ number: OptionNumber.MaxAge, value: encodeUint(0) }]);
    }

    // §5.7.1: "Unsafe options in a request that are not recognized by the proxy MUST lead to a
    // 4.02 (Bad Option) response"; unknown Safe-to-Forward ones are forwarded.
    if (unforwardable !== undefined) return answer(request, ResponseCode.BadOption, `cannot forward the unrecognized unsafe option ${unforwardable}`);

    // RFC 7641 §2: Observe matters for GET and FETCH only.
    const fetching = message.code === Method.GET || message.code === Method.FETCH;
    const observe = fetching && observeValue !== undefined ? decodeUint(observeValue) : undefined;
    const key = this.earlyCacheKey(request, target, observe);
    if (key !== undefined) {
      const hit = this.options.cache!.lookupFresh!(message, key);
      if (hit) {
        this.stats.cacheHits++;
        return request.respond(hit.response);
      }
    }
    return this.forwardUpstream(request, target, hopLimit, key, observe);
  }

  /**
   * The cache key under which a fresh cached answer (RFC 7252 §5.6: served without contacting the
   * origin) is looked up before the upstream leg is prepared: no peer resolution, no upstream
   * endpoint, no copy of the request.
   * Only for requests whose full path (`forwardUpstream`) would consult the cache with nothing in
   * between that could answer differently: GET/FETCH without Observe (observations go upstream,
   * PR4.1), to a CoAP target (any carrier's scheme) or through a next hop (http goes to the cross-proxy), and
   * no OSCORE layer of this proxy on either leg (§2.2 checks the options it protects or answers).
   * Anything else, and every miss, takes the full path, which looks the cache up again (a miss
   * with the same key).
   */
  private earlyCacheKey(request: ProxiedRequest, target: Target, observe: number | undefined): string | undefined {
    const cache = this.options.cache;
    const message = request.message;
    if (cache?.lookupFresh === undefined || (message.code !== Method.GET && message.code !== Method.FETCH)) return undefined;
    if (observe !== undefined) return undefined;
    if (this.options.upstreamSecurity !== undefined || request.context.oscore?.length) return undefined;
    if (this.options.nextHop === undefined && !isTransportScheme(target.scheme)) return undefined;
    return cache.cacheKey(message, target.uri);
  }

  /**
   * Everything but a fresh cache hit: the route, the upstream request, then the exchange
   * (`forwardOn`). `key`: the cache key `forward` looked up already, if it did; `observe`: the
   * request's Observe value, for a GET or FETCH that has one.
   */
  private forwardUpstream(request: ProxiedRequest, target: Target, hopLimit: number, key: string | undefined, observe: number | undefined): void | Promise<void> {
    if (this.options.nextHop === undefined && !isTransportScheme(target.scheme)) {
      if (target.scheme === 'http' || target.scheme === 'https') return this.forwardHttp(request, target);
      return answer(request, ResponseCode.ProxyingNotSupported, `scheme ${target.scheme} is not proxied here`);
    }
    let route: UpstreamRoute | Promise<UpstreamRoute>;
    try {
      route = this.routes.route(target, getOption(request.message, OptionNumber.ProxyUri) !== undefined);
    } catch (error) {
      return noRoute(request, error);
    }
    if (route instanceof Promise) return this.forwardRouted(request, target, hopLimit, route, key, observe);
    return this.forwardOn(request, target, hopLimit, route, key, observe);
  }

  /**
   * `forwardOn` once the route is known. A function of its own because it makes closures: a
   * function that makes any allocates the variables they share on each call, also on the
   * synchronous path (a remembered route) that makes none.
   */
  private forwardRouted(request: ProxiedRequest, target: Target, hopLimit: number, route: Promise<UpstreamRoute>, key: string | undefined, observe: number | undefined): Promise<void> {
    return route.then((r) => this.forwardOn(request, target, hopLimit, r, key, observe), (error: unknown) => noRoute(request, error));
  }

  private async forwardHttp(request: ProxiedRequest, target: Target): Promise<void> {
    if (!this.options.http) return answer(request, ResponseCode.ProxyingNotSupported, `no ${target.scheme} upstream here`);
    let response: CoapMessage;
    try {
      // The address is resolved and judged once, and the HTTP request connects to that address:
      // a second lookup could answer with another one (DNS rebinding).
      const { address } = await resolvePeer({ host: target.host, port: target.port });
      if (!this.destinations.permits('http', target.host, address)) throw new DestinationRefusedError();
      response = await this.options.http(request.message, target.uri, address);
    } catch (error) {
      return noRoute(request, error);
    }
    request.respond(response);
  }

  /**
   * The upstream leg along a known route. Plain GETs and FETCHes that miss the cache take no
   * promise chain of their own here: the UpstreamExchange answers the client from the upstream
   * datagram's callback (`settle` only releases the misses coalesced with it).
   * `observe`: the Observe value of a GET or FETCH (`forward` read it), which makes it an observation.
   */
  private forwardOn(request: ProxiedRequest, target: Target, hopLimit: number, route: UpstreamRoute, earlyKey: string | undefined, observe: number | undefined): void | Promise<void> {
    const message = request.message;
    const { endpoint, peer } = route;
    const layerContext = this.options.upstreamSecurity?.({ uri: route.viaProxy ? this.options.nextHop! : target.uri, nextHop: route.viaProxy });
    const simple = layerContext === undefined && observe === undefined ? this.simpleUpstream(message, target, route, hopLimit - 1) : undefined;
    let upstream: Upstream = simple ?? upstreamRequest(message, route, hopLimit - 1);
    let layer: UpstreamLayer | undefined;
    if (layerContext) {
      upstream = upstream as CoapMessage; // a layer of this proxy rules out the simple path
      // §2.2: a protecting proxy must recognise every option it protects; 4.02 otherwise.
      const unknown = upstream.options.find((o) => optionDefinition(o.number) === undefined);
      if (unknown) return answer(request, ResponseCode.BadOption, `cannot protect the unrecognized option ${unknown.number}`);
      const added = new Set<number>([OptionNumber.HopLimit]);
      if (!route.viaProxy) for (const o of upstream.options) if (ADDRESSING.has(o.number)) added.add(o.number);
      layer = upstreamLayer(layerContext, route.viaProxy, added);
    }
    // This proxy is an OSCORE endpoint on a leg: responses it protects must be recognisable (5.02, §2.2).
    if (layer || request.context.oscore?.length) request = new ProxiedRequestThrough(request, recognisedOnly);

    const fetching = message.code === Method.GET || message.code === Method.FETCH;
    if (observe !== undefined) return this.forwardObservation(request, upstream as CoapMessage, endpoint, peer, target, observe, layer);

    const cache = this.options.cache;
    // OSCORE-protected requests other than Deterministic Requests pass uncached (protected-cache.ts).
    if (!cache || !fetching || !cacheableProtection(message)) return this.exchange(request, upstream, route, target, layer, undefined, undefined);
    const key = earlyKey ?? cache.cacheKey(message, target.uri);
    const hit = cache.lookup(message, key);
    if (hit && hit.kind !== 'stale') {
      this.stats.cacheHits++;
      return request.respond(hit.response);
    }
    // §5.6.2: revalidate a stale entry with exactly the ETags the cache names.
    if (hit?.kind === 'stale') {
      if (upstream instanceof Uint8Array) upstream = upstreamRequest(message, route, hopLimit - 1);
      setOption(upstream, OptionNumber.ETag, ...hit.etags);
    }
    // Misses share an upstream response only within one variant: a request with another Accept
    // must not get this one's representation.
    const miss = missKey(key, message);
    if (this.coalescing.passes(miss)) {
      this.stats.passed++;
      return this.exchange(request, upstream, route, target, layer, key, undefined);
    }
    const waiting = this.coalescing.waitingFor(miss);
    if (waiting === undefined) return this.exchange(request, upstream, route, target, layer, key, this.coalescing.lead(miss, message));
    return this.joinMiss(request, upstream, route, target, layer, key, waiting);
  }

  /**
   * A miss that waits for the upstream request another miss on its key leads: answered with its
   * response when that may be shared, sent upstream on its own otherwise. Not part of `forwardOn`
   * for the reason given at `forwardRouted` (its closure would cost every miss an allocation).
   */
  private joinMiss(request: ProxiedRequest, upstream: Upstream, route: UpstreamRoute, target: Target, layer: UpstreamLayer | undefined, key: string, waiting: Promise<CoapMessage | undefined>): Promise<void> {
    return waiting.then((shared) => {
      if (shared === undefined) return this.exchange(request, upstream, route, target, layer, key, undefined);
      this.stats.coalesced++;
      // Every waiter gets its own copy: answering sets the token, type and Message ID of the
      // message it is given, and the shared response is also the leader's.
      const own = forwardable(shared);
      request.respond(codeClass(own.code) === 2 ? conditionalReply(request.message, own) : own);
    });
  }

  /**
   * One upstream exchange, answered to the client when it settles (from the callback of the
   * upstream datagram: no promise per exchange); failures become the proxy's own 5.04/5.02 (never
   * cached). `key`: the cache key of a GET/FETCH (the response is stored, or revalidates);
   * `settle`: this miss leads a coalesced request.
   */
  private exchange(request: ProxiedRequest, upstream: Upstream, route: UpstreamRoute, target: Target, layer: UpstreamLayer | undefined, key: string | undefined, settle: SettleMiss | undefined): void {
    this.stats.forwarded++;
    try {
      // A NON goes upstream as a NON, anything else as a CON.
      const options = request.message.type !== MessageType.NON ? this.confirmable : this.nonConfirmable;
      if (upstream instanceof Uint8Array) {
        this.stats.simple++;
        const message = request.message;
        route.endpoint.sendSimple(message.code, upstream, message.payload, route.peer, options, new UpstreamExchange(this.toClient, request, undefined, target, key, settle, undefined));
        return;
      }
      const protectedRequest = layer?.security.protect(upstream);
      route.endpoint.send(protectedRequest?.message ?? upstream, route.peer, options, new UpstreamExchange(this.toClient, request, upstream, target, key, settle, protectedRequest));
    } catch (error) {
      // The misses waiting for this one go upstream on their own; the server answers this one 5.00.
      settle?.(undefined);
      throw error;
    }
  }

  /**
   * The option bytes of `message` as it goes upstream along `route` with Hop-Limit `hopLimit`,
   * when the simple path may carry it: the fast path is on, the endpoint writes simple requests
   * (UDP, DTLS), and the request's options are only its target's naming and Hop-Limit — then its
   * upstream options (upstreamRequest) follow from the target, the route and the Hop-Limit alone,
   * and are encoded once for them. Undefined otherwise. The caller has ruled out an OSCORE layer
   * of this proxy upstream and an observation.
   */
  private simpleUpstream(message: CoapMessage, target: Target, route: UpstreamRoute, hopLimit: number): Uint8Array | undefined {
    if (!this.fastPath || !route.endpoint.takesSimpleRequests) return undefined;
    const options = message.options;
    for (let i = 0; i < options.length; i++) {
      const n = options[i]!.number;
      if (!isNamingOption(n) && n !== OptionNumber.HopLimit) return undefined;
    }
    const known = this.simpleUpstreams.get(target);
    if (known !== undefined && known.route === route && known.hopLimit === hopLimit) return known.optionBytes;
    const upstream = upstreamRequest(message, route, hopLimit);
    // The options as encodeMessage writes them, after the 4-byte header of a message without a token or payload.
    const optionBytes = encodeMessage({ type: MessageType.CON, code: 0, messageId: 0, token: EMPTY_BYTES, options: upstream.options, payload: EMPTY_BYTES }).subarray(4);
    this.simpleUpstreams.set(target, { route, hopLimit, optionBytes });
    return optionBytes;
  }

  /** The origin's response: stored or revalidating (a GET/FETCH, `key`), invalidating (unsafe methods), then forwarded. */
  private fromOrigin(request: ProxiedRequest, response: CoapMessage, target: Target, key: string | undefined, settle: SettleMiss | undefined): void {
    const message = request.message;
    const cache = this.options.cache;
    if (key !== undefined && cache) {
      if (response.code === ResponseCode.Valid) {
        // §5.6.2 / §5.9.1.3: a 2.03 refreshes the stored response; the client gets it, or its own
        // 2.03 when one of its ETags matches (PR2.3). The misses waiting share the refreshed 2.05.
        const refreshed = cache.revalidated(key, response, message);
        this.endMiss(key, message, settle, refreshed);
        if (refreshed) return request.respond(conditionalReply(message, refreshed));
      } else {
        this.endMiss(key, message, settle, response);
        cache.store(message, key, response);
      }
    } else if (cache) {
      cache.afterUnsafe(message, target.uri, response); // §5.9.1: 2.01/2.02/2.04 invalidate
    }
    request.respond(forwardable(response));
  }

  /** Hands a miss's outcome to the misses waiting for it (`settle`), or teaches the coalescer whether its variant may be shared. */
  private endMiss(key: string, request: CoapMessage, settle: SettleMiss | undefined, response: CoapMessage | undefined): void {
    if (settle) settle(response);
    else if (response) this.coalescing.learn(missKey(key, request), response, request);
  }

  /** §2.4 step 4: does the authority (host and port) of the request URI identify this endpoint? */
  private identifiesMe(target: Target): boolean {
    // A bound transport keeps its address, so it is read once.
    const self = (this.self ??= this.ownAuthority());
    if (target.scheme !== self.scheme || target.port !== self.port) return false;
    const host = target.host.toLowerCase();
    return host === self.address || self.aliases.includes(host);
  }

  private ownAuthority(): NonNullable<ForwardProxy['self']> {
    const local = this.server.address();
    const unspecified = local.address === '0.0.0.0' || local.address === '::';
    return {
      scheme: this.server.endpoint.transport.scheme,
      port: local.port,
      address: unspecified ? undefined : local.address.toLowerCase(),
      aliases: (this.options.aliases ?? []).map((a) => a.toLowerCase()),
    };
  }

  /**
   * PR4.1/PR4.2 (RFC 7641 §5): one upstream observation per target serves every client; each client
   * is an observer of a virtual resource at this proxy with its own Observe sequence (observe-relay.ts).
   */
  private forwardObservation(request: ProxiedRequest, upstream: CoapMessage, endpoint: CoapEndpoint, peer: PeerAddress, target: Target, observe: number, layer?: UpstreamLayer): Promise<void> {
    const leg = { upstream, endpoint, peer, target: target.uri, ...(layer ? { layer } : {}) };
    return this.observeRelay.relay(request, leg, observe, () => this.forwardPlainly(request, upstream, endpoint, peer, target, layer));
  }

  private async forwardPlainly(request: ProxiedRequest, upstream: CoapMessage, endpoint: CoapEndpoint, peer: PeerAddress, target: Target, layer?: UpstreamLayer): Promise<void> {
    upstream.options = upstream.options.filter((o) => o.number !== OptionNumber.Observe);
    try {
      const protectedRequest = layer?.security.protect(upstream);
      const response = await endpoint.request(protectedRequest?.message ?? upstream, peer, { deadline: this.timeout });
      const verified = protectedRequest ? protectedRequest.verify(response.message, false) : response.message;
      request.respond(verified instanceof Error ? errorMessage(ResponseCode.BadGateway, verified.message) : forwardable(verified));
    } catch (error) {
      request.respond(errorMessage(error instanceof TimeoutError ? ResponseCode.GatewayTimeout : ResponseCode.BadGateway, `${target.uri}: ${(error as Error).message}`));
    }
  }

  /** Upstream observations in progress (for tests and stats). */
  get activeUpstreamObservations(): number {
    return this.observeRelay.active;
  }

  async close(): Promise<void> {
    await this.observeRelay.close();
  }
}

/** ForwardProxy.fromOrigin: what an upstream exchange hands its origin's response to. */
type FromOrigin = (request: ProxiedRequest, response: CoapMessage, target: Target, key: string | undefined, settle: SettleMiss | undefined) => void;

/**
 * The ResponseHandler of one upstream exchange (ForwardProxy.exchange): an object with methods
 * rather than two closures per exchange, as a proxy makes one for every request it forwards.
 * `protectedRequest`: the request as this proxy's upstream OSCORE layer protected it, if it did.
 */
class UpstreamExchange implements ResponseHandler {
  constructor(
    private readonly fromOrigin: FromOrigin,
    private readonly request: ProxiedRequest,
    /** The upstream request as this proxy made it; undefined for one sent on the simple path (never protected here). */
    private readonly upstream: CoapMessage | undefined,
    private readonly target: Target,
    private readonly key: string | undefined,
    private readonly settle: SettleMiss | undefined,
    private readonly protectedRequest: ProtectedRequest | undefined,
  ) {}

  onResponse(response: ReceivedResponse): void {
    const { request, settle, protectedRequest } = this;
    const received = response.message;
    try {
      if (!protectedRequest) return this.fromOrigin(request, received, this.target, this.key, settle);
      // §2.6: remove exactly the layer added here; the rest goes back to the client as it is.
      const verified = protectedRequest.verify(received, false);
      const problem = verified instanceof Error ? verified.message
        : getOption(this.upstream!, OptionNumber.Oscore) === undefined && getOption(verified, OptionNumber.Oscore) !== undefined ? 'the response carries more OSCORE layers than the request'
        : undefined;
      if (problem === undefined) return this.fromOrigin(request, verified as CoapMessage, this.target, this.key, settle);
      settle?.(undefined);
      request.respond(errorMessage(ResponseCode.BadGateway, problem));
    } catch (error) {
      // Called from the upstream datagram's callback, outside any promise the server would
      // catch: a failure here still answers the client (5.00, as the server does for a handler),
      // and releases the misses waiting for this one (settling twice changes nothing).
      settle?.(undefined);
      request.respond(errorMessage(ResponseCode.InternalServerError, `proxy error: ${error instanceof Error ? error.message : String(error)}`));
    }
  }

  onError(error: Error): void {
    this.settle?.(undefined);
    if (error instanceof TimeoutError) return this.request.respond(errorMessage(ResponseCode.GatewayTimeout, `no answer from ${this.target.uri} (${error.message})`));
    this.request.respond(errorMessage(ResponseCode.BadGateway, error instanceof CoapRequestError ? error.message : String(error)));
  }
}

/**
 * A ProxiedRequest on a leg where this proxy is an OSCORE endpoint: a response whose options it
 * would protect for the client must consist of options it recognises (draft-ietf-core-oscore-
 * capable-proxies §2.2), or the client gets 5.02 instead. Delegates everything else.
 */
function recognisedOnly(response: CoapMessage, inner: ProxiedRequest): CoapMessage {
  const unknown = response.options.find((o) => optionDefinition(o.number) === undefined);
  return unknown && inner.context.oscore?.length ? errorMessage(ResponseCode.BadGateway, `cannot protect the unrecognized option ${unknown.number} in the response`) : response;
}

/**
 * RFC 7252 §5.7.2 for a request to be served locally: Proxy-Scheme, Uri-Host and Uri-Port are
 * dropped; a Proxy-Uri is replaced by the Uri-Path and Uri-Query of its URI.
 */
function consumeProxyOptions(message: CoapMessage): CoapMessage {
  const proxyUri = getOption(message, OptionNumber.ProxyUri);
  const kept = message.options.filter((o) => !ADDRESSING.has(o.number) && (proxyUri === undefined || (o.number !== OptionNumber.UriPath && o.number !== OptionNumber.UriQuery)));
  const consumed: CoapMessage = { ...message, options: kept };
  if (proxyUri !== undefined) {
    const uri = parseAbsoluteUri(decodeString(proxyUri)); // parsed already by targetOf
    for (const segment of uri.path) addOption(consumed, OptionNumber.UriPath, encodeString(segment));
    for (const arg of uri.query) addOption(consumed, OptionNumber.UriQuery, encodeString(arg));
  }
  return consumed;
}

/** The proxy's own answer on the downstream leg. */
function answer(request: ProxiedRequest, code: number, diagnostic?: string, options: CoapMessage['options'] = []): void {
  request.respond({ type: MessageType.ACK, code, messageId: 0, token: EMPTY_BYTES, options, payload: diagnostic ? Buffer.from(diagnostic) : EMPTY_BYTES });
}

/**
 * No route to the target (an unresolvable host, a URI that gives no options) or an HTTP upstream
 * that failed: 5.02. A destination the policy refuses: 5.05, as RFC 7252 §5.7.2 asks of an
 * endpoint "unwilling or unable to act as proxy for the request URI". Not 4.03 Forbidden: the
 * refusal concerns the URI, not who asks (a client the proxy refuses as such gets 4.01, see
 * `authorize`), and no other client or credential would be served that URI either.
 */
function noRoute(request: ProxiedRequest, error: unknown): void {
  // Max-Age 0: a cache downstream must not keep the proxy's own failure for the default 60 s.
  if (error instanceof DestinationRefusedError) return request.respond(errorMessage(ResponseCode.ProxyingNotSupported, error.message));
  request.respond(errorMessage(ResponseCode.BadGateway, error instanceof Error ? error.message : String(error)));
}


/**
 * The coalescer's key of a miss: its cache key's variant for the request's Accept; without Accept
 * the cache key itself (no string built per miss; a variant key never equals a cache key, which
 * starts with the method code and a colon).
 */
function missKey(key: string, request: CoapMessage): string {
  const accept = getUintOption(request, OptionNumber.Accept);
  return accept === undefined ? key : variantKey(key, accept);
}
