/**
 * The CoAP server: routes requests to resources, enforces the option rules of RFC 7252 §5.4,
 * answers 4.04/4.05/4.06/5.05 itself, serves /.well-known/core (RFC 6690), honours No-Response
 * (RFC 7967), sends an empty ACK when a handler is slow (§5.2.2), reassembles and slices
 * block-wise bodies (RFC 7959) and keeps Observe registrations (RFC 7641).
 *
 * Order of processing a request (docs/architecture.md): option validation → proxy options →
 * method → route → access policy (requireOscore) → freshness (Echo, RFC 9175 §2.3) → Block1
 * reassembly → Block2 follow-up from the stored representation →
 * handler → Observe (de)registration → Accept check → Block2 slicing → No-Response → send.
 */
import { readBlockOption, type BlockValue } from '../coap/block.js';
import { Method, ResponseCode, codeClass, isRequestCode, methodName, type Code, type MethodName } from '../coap/codes.js';
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
  setOption,
  type CoapMessage,
  type CoapOption,
} from '../coap/message.js';
import { checkOptions, checkOptionsAmong } from '../coap/option-validation.js';
import { OptionNumber, isCritical, optionDefinition } from '../coap/options.js';
import type { EndpointContext } from '../exchange/context.js';
import type { ResponseProtector, ServerSecurity } from './security.js';
import { CoapEndpoint, type EndpointOptions, type ServerExchange } from '../exchange/endpoint.js';
import { exchangeLifetime } from '../messaging/parameters.js';
import { UdpTransport, type UdpTransportOptions } from '../transport/udp.js';
import { DtlsServerTransport, type DtlsServerTransportOptions } from '../transport/dtls.js';
import { RealScheduler } from '../util/scheduler.js';
import type { PeerAddress } from '../transport/transport.js';
import type { Credentials } from '../credentials/credentials-file.js';
import { serverCredentials } from './credentials.js';
import { consumeOwnProxyOptions } from './own-proxy-name.js';
import { oscoreRefusal, requestLogEntry, type RequestLogger } from './request-log.js';
import { BlockwiseServer, DEFAULT_BLOCKWISE_LIMITS, operationKey, type BlockwiseLimits } from './blockwise.js';
import { EchoFreshness } from './freshness.js';
import { DEFAULT_OBSERVE_SETTINGS, ObserveRegistry, type ObserveSettings, type Observer } from './observe.js';
import type { CoapRequest, CoapResponse, Handler, Handlers, LinkAttributes, ResourceDefinition } from './resource.js';
export type { RequestLogEntry, RequestLogger } from './request-log.js';
import { Router, splitPath } from './router.js';

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
  OptionNumber.Block2,
  OptionNumber.Block1,
  OptionNumber.Size2,
  OptionNumber.ProxyUri,
  OptionNumber.ProxyScheme,
  OptionNumber.Size1,
  OptionNumber.Echo,
  OptionNumber.NoResponse,
  OptionNumber.RequestTag,
]);

/** Outer options of an OSCORE message that the server reads before decrypting it (§8.2, §8.2.1). */
const OUTER_OPTIONS_READ_BEFORE_DECRYPTION: ReadonlySet<number> = new Set([OptionNumber.Oscore, OptionNumber.Block2, OptionNumber.Block1, OptionNumber.Size1]);

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
  /** Block-wise limits: body size, reassembly budget, preferred block size. */
  blockwise?: Partial<BlockwiseLimits>;
  observe?: Partial<ObserveSettings>;
  /** End-to-end protection (OSCORE) removed before, and applied after, the pipeline. */
  security?: ServerSecurity;
  /**
   * The most OSCORE layers removed from one request (draft-ietf-core-oscore-capable-proxies §2.1);
   * a request needing more gets 4.01, protected with the layers removed. Default 4.
   */
  maxOscoreLayers?: number;
  /**
   * Names (host, or host:port) under which proxied requests are for this server itself: a request
   * whose Proxy-Uri, or Proxy-Scheme with Uri-Host, names one is served here as if sent directly
   * (RFC 7252 §5.7.2 lets an endpoint recognise itself; libcoap's `-P ',name'`). Others get 5.05.
   */
  proxyNames?: readonly string[];
  /** Called once per response sent to a request (see RequestLogEntry); for operators' logs. */
  onRequestLog?: RequestLogger;
}

/**
 * A forward proxy (RFC 7252 §5.7): requests carrying Proxy-Uri or Proxy-Scheme go to it instead of
 * to the resources. It applies the §5.7.1 option rules itself (unknown safe-to-forward options are
 * forwarded, unknown unsafe ones answered 5.02), so the origin's option validation does not run.
 */
export interface ForwardingHandler {
  forward(request: ProxiedRequest): void | Promise<void>;
}

/**
 * A reverse proxy that claims requests by their Uri-Host/Uri-Port/Uri-Path (draft-ietf-core-oscore-
 * capable-proxies §2.4 step 3): checked before further OSCORE layers are removed, so a layer meant
 * for the origin behind it is forwarded, not decrypted here.
 */
export interface ReverseProxyHandler extends ForwardingHandler {
  claims(message: CoapMessage, context: EndpointContext): boolean;
}

/**
 * A request handed to the forwarding handler, with the means to answer it on this leg. Its
 * functions are methods: call them on the request (`request.respond(r)`), never detached from it.
 */
export interface ProxiedRequest {
  readonly message: CoapMessage;
  readonly context: EndpointContext;
  /** Sends the response on this leg (token and Message ID are this leg's own). */
  respond(response: CoapMessage): void;
  /**
   * Registers the requester as an observer of a virtual resource (see addVirtualObservable) and
   * returns the Observe value for the response (each client gets its own sequence, RFC 7641 §5).
   */
  observe(path: string): number;
  /** Removes the requester's observation of `path` (Observe 1). */
  stopObserving(path: string): void;
  /**
   * The virtual resource the requester (its endpoint and token, RFC 7641 §3.6) observes, if any:
   * a deregistration protected end to end differs from its registration, so its path may not match.
   */
  observing(): string | undefined;
  /**
   * draft-ietf-core-oscore-capable-proxies §2.4 step 4: the request URI's authority identifies this
   * endpoint, so the request is local. `consumed` is the request with its proxy-related options
   * consumed (RFC 7252 §5.7.2); the §2.4 loop goes on with it at step 1 (further layers are
   * removed, then the application), keeping the layers removed so far for the response.
   */
  local(consumed: CoapMessage): void;
}

/** One request on its way through the pipeline: the inner message once protection is removed. */
interface Incoming {
  message: CoapMessage;
  exchange: ServerExchange;
  context: EndpointContext;
  protect: ResponseProtector | undefined;
  /** The layers removed so far (§2.4 loop) and the outer block-wise finishing of the response. */
  layers?: { removed: ResponseProtector[]; finish: (response: CoapMessage) => CoapMessage };
}

/** The server's side of the requests it hands to a forwarding handler (see ForwardedRequest). */
interface ProxyLeg {
  /** Sends a response on the request's leg (No-Response and the removed OSCORE layers applied). */
  send(incoming: Incoming, response: CoapMessage): void;
  /** Resumes the §2.4 loop at step 1 with a request whose proxy-related options were consumed. */
  resume(incoming: Incoming): void;
  readonly observations: ObserveRegistry;
  readonly virtualObservables: ReadonlyMap<string, unknown>;
}

/**
 * The ProxiedRequest of one forwarded request. Its behaviour lives in methods on the prototype
 * rather than in closures per request: a forward proxy builds one of these for every request it
 * forwards, and six closures each (with the context they share) cost allocation and GC on its
 * busiest path. Callers use them as methods (`request.respond(r)`), never detached.
 */
class ForwardedRequest implements ProxiedRequest {
  readonly message: CoapMessage;
  readonly context: EndpointContext;
  /** Answered, or handed back to the pipeline by `local`: whatever comes later is ignored. */
  answered = false;

  constructor(
    private readonly leg: ProxyLeg,
    private readonly incoming: Incoming,
  ) {
    this.message = incoming.message;
    this.context = incoming.context;
  }

  respond(response: CoapMessage): void {
    if (this.answered) return;
    this.answered = true;
    this.leg.send(this.incoming, response);
  }

  observe(path: string): number {
    const { exchange, context, protect } = this.incoming;
    this.leg.observations.register(path, exchange.context.peer, exchange.context.peerKey, this.message, context, 'con', protect, true);
    return this.leg.observations.currentSequence(path);
  }

  stopObserving(path: string): void {
    this.leg.observations.deregister(path, this.incoming.exchange.context.peerKey, this.message.token);
  }

  observing(): string | undefined {
    const key = ObserveRegistry.observerKey(this.incoming.exchange.context.peerKey, this.message.token);
    for (const path of this.leg.virtualObservables.keys()) if (this.leg.observations.observers(path).some((o) => o.key === key)) return path;
    return undefined;
  }

  local(consumed: CoapMessage): void {
    if (this.answered) return;
    this.answered = true;
    const message = this.message;
    this.leg.resume({ ...this.incoming, message: { ...consumed, type: message.type, messageId: message.messageId, token: message.token } });
  }

  /** The handler threw or rejected: 5.00, unless it answered already (as for a resource handler, §5.9.3.1). */
  fail(error: unknown): void {
    this.respond(toMessage({ code: ResponseCode.InternalServerError, payload: `proxy error: ${error instanceof Error ? error.message : String(error)}`.slice(0, 200) }));
  }
}

export class CoapServer {
  readonly router = new Router();
  readonly blockwise: BlockwiseServer;
  readonly observations: ObserveRegistry;
  private readonly recognized: Set<number>;
  private readonly closeHooks: Array<() => void> = [];
  security: ServerSecurity | undefined;
  private forwarding: ForwardingHandler | undefined;
  private reverse: ReverseProxyHandler | undefined;
  readonly maxOscoreLayers: number;
  /** Stateless Echo values for resources with a freshness policy (RFC 9175 §2.3). */
  private readonly echoFreshness: EchoFreshness;
  /** Observable paths rendered by code rather than a resource handler (a proxy's upstream state). */
  private readonly virtualObservables = new Map<string, () => CoapMessage>();
  /** What a ForwardedRequest needs of this server: one object per server, none per request. */
  private readonly proxyLeg: ProxyLeg;
  private readonly proxyNames: ReadonlySet<string>;
  /** See ServerOptions.onRequestLog; settable after listen(). */
  onRequestLog: RequestLogger | undefined;

  constructor(
    readonly endpoint: CoapEndpoint,
    options: ServerOptions = {},
  ) {
    // §5.2.2: one timer in the messaging layer acknowledges every CON request a handler (or an
    // upstream exchange) has not answered within the delay; none per request.
    endpoint.messaging.acknowledgeUnansweredAfter(options.emptyAckDelay ?? 100);
    this.recognized = new Set([...SERVER_OPTIONS, ...(options.recognizedOptions ?? [])]);
    this.security = options.security;
    this.maxOscoreLayers = options.maxOscoreLayers ?? 4;
    this.onRequestLog = options.onRequestLog;
    this.proxyNames = new Set((options.proxyNames ?? []).map((name) => name.toLowerCase()));
    this.echoFreshness = new EchoFreshness(() => endpoint.scheduler.now());
    this.blockwise = new BlockwiseServer(
      { ...DEFAULT_BLOCKWISE_LIMITS, lifetime: exchangeLifetime(endpoint.parameters), ...options.blockwise },
      () => endpoint.scheduler.now(),
    );
    this.observations = new ObserveRegistry(endpoint.messaging, endpoint.scheduler, { ...DEFAULT_OBSERVE_SETTINGS, ...options.observe }, (o) =>
      this.renderForObserver(o),
    );
    this.proxyLeg = {
      send: (incoming, response) => this.send(incoming, response),
      resume: (incoming) => this.removeLayers(incoming),
      observations: this.observations,
      virtualObservables: this.virtualObservables,
    };
    if (options.wellKnownCore !== false) this.router.add(this.wellKnownCoreResource());
    endpoint.setRequestHandler((request, exchange) => this.handle(request, exchange));
  }

  /** Binds a UDP socket and serves on it. */
  static async listen(
    options: UdpTransportOptions &
      ServerOptions &
      Omit<EndpointOptions, 'transport'> & {
        /** Serve coaps:// (DTLS) with these credentials and limits instead of plain UDP. */
        dtls?: Omit<DtlsServerTransportOptions, 'host' | 'port' | 'scheduler'>;
        /**
         * OSCORE from coapsec JSON credentials (docs/credentials.md), a path or loadCredentials()'s
         * result: its `recipients` are the clients this server accepts; sequence numbers persist
         * (server/credentials.ts). Instead of `security`. CredentialsError when it does not load.
         */
        credentials?: string | Credentials;
      } = {},
  ): Promise<CoapServer> {
    if (options.credentials !== undefined && options.security !== undefined) throw new TypeError('CoapServer.listen: give either credentials or security, not both');
    const oscore = options.credentials !== undefined ? serverCredentials(options.credentials) : undefined;
    const settings = oscore ? { ...options, security: oscore.security } : options;
    let server: CoapServer;
    try {
      if (options.dtls) {
        const scheduler = options.scheduler ?? new RealScheduler();
        const dtls = await DtlsServerTransport.bind({ ...options, ...options.dtls, scheduler });
        server = new CoapServer(new CoapEndpoint({ ...options, scheduler, transport: dtls }), settings);
      } else {
        const transport = await UdpTransport.bind(options);
        server = new CoapServer(new CoapEndpoint({ ...options, transport }), settings);
      }
    } catch (error) {
      oscore?.close();
      throw error;
    }
    if (oscore) server.onClose(() => oscore.close());
    return server;
  }

  add(resource: ResourceDefinition): this {
    this.router.add(resource);
    return this;
  }

  resource(path: string, handlers: Handlers, attributes: LinkAttributes & Pick<ResourceDefinition, 'observable' | 'requireOscore' | 'freshness'> = {}): this {
    return this.add({ path, handlers, ...attributes });
  }

  /** Removes a resource; its observers get a final 4.04 (RFC 7641 §3.2). */
  remove(path: string): boolean {
    const removed = this.router.remove(path);
    if (removed) this.observations.endAll(normalizePath(path));
    return removed;
  }

  /** Tells the observers of `path` that its state changed (RFC 7641 §4.2). */
  changed(path: string): void {
    this.observations.changed(normalizePath(path));
  }

  /** Installs a forward proxy: requests with Proxy-Uri/Proxy-Scheme go to it (RFC 7252 §5.7.2). */
  setForwardingHandler(handler: ForwardingHandler | undefined): void {
    this.forwarding = handler;
  }

  /** Installs a reverse proxy that claims requests by their URI (see ReverseProxyHandler). */
  setReverseProxyHandler(handler: ReverseProxyHandler | undefined): void {
    this.reverse = handler;
  }

  /**
   * An observable whose notifications are rendered by `render` (e.g. a proxy's latest upstream
   * notification). Observers register through ProxiedRequest.observe; call changed(path) on updates.
   */
  addVirtualObservable(path: string, render: () => CoapMessage): void {
    this.virtualObservables.set(path, render);
  }

  removeVirtualObservable(path: string): void {
    this.virtualObservables.delete(path);
  }

  /** Runs when the server closes (resources' timers, for example). */
  onClose(hook: () => void): void {
    this.closeHooks.push(hook);
  }

  address(): PeerAddress {
    return this.endpoint.transport.localAddress();
  }

  async close(): Promise<void> {
    for (const hook of this.closeHooks.splice(0)) hook();
    this.observations.clear();
    await this.endpoint.close();
  }

  // --- request processing -----------------------------------------------------------------

  private handle(received: CoapMessage, exchange: ServerExchange): void {
    const incoming: Incoming = { message: received, exchange, context: exchange.context, protect: undefined };
    try {
      this.handleUnguarded(incoming);
    } catch (error) {
      this.failSafe(incoming, error);
    }
  }

  /**
   * The last line of defence: whatever a datagram makes the pipeline throw is answered 5.00 (once,
   * without a stack trace, §5.5.2) instead of unwinding into the transport. Reaching it is a bug —
   * the fuzz tests assert that no input does.
   */
  private failSafe(incoming: Incoming, error: unknown): void {
    if (incoming.exchange.inbound.responded) return;
    try {
      incoming.exchange.respond(toMessage(internalError(error)));
    } catch {
      incoming.exchange.reject();
    }
  }

  private handleUnguarded(incoming: Incoming): void {
    const { message: received, exchange } = incoming;
    if (this.security && getOption(received, OptionNumber.Oscore)) {
      // The outer options read before decryption are checked first (RFC 7252 §5.4.3/§5.4.5; RFC
      // 8613 §2: the OSCORE option is 0-255 bytes long); nobody needs a key to send them.
      const outerCheck = checkOptionsAmong(received.options, OUTER_OPTIONS_READ_BEFORE_DECRYPTION);
      if (outerCheck.criticalProblem) {
        this.badOption(incoming, outerCheck.criticalProblem.reason);
        return;
      }
      received.options = outerCheck.options;
      // RFC 8613 §8.2.1: outer Block options first, until the whole OSCORE message is here.
      const outer = this.outerBlockwise(received, exchange);
      if (!outer) return;
      incoming.message = outer.message;
      incoming.layers = { removed: [], finish: outer.finish };
    }
    this.removeLayers(incoming);
  }

  /**
   * draft-ietf-core-oscore-capable-proxies §2.4 (Appendix D): remove layers while the request
   * carries no proxy-related options (step 1), is not for a reverse-proxied resource (step 3) and
   * still carries OSCORE (step 5); each successful decryption loops back to step 1 (step 6).
   * Responses, errors included, get the removed layers back in reverse order (§2.5). Re-entered
   * from step 4 when the proxy-related options named this endpoint (ProxiedRequest.local).
   */
  private removeLayers(incoming: Incoming): void {
    const { exchange } = incoming;
    const received = incoming.message;
    if (this.security && getOption(incoming.message, OptionNumber.Oscore)) {
      const layers = (incoming.layers ??= { removed: [], finish: (response) => response });
      const { removed, finish } = layers;
      const protectAll = (response: CoapMessage, kind: 'response' | 'notification'): CoapMessage => {
        let r = response;
        for (let i = removed.length - 1; i >= 0; i--) r = removed[i]!(r, kind);
        return kind === 'response' ? finish(r) : r;
      };
      let message = incoming.message;
      let context = incoming.context;
      while (getOption(message, OptionNumber.Oscore) && !this.claimedByProxy(message, context)) {
        if (removed.length >= this.maxOscoreLayers) {
          // §2.1: beyond the limit, no further OSCORE processing; 4.01 over the layers removed.
          exchange.respond(protectAll(toMessage({ code: ResponseCode.Unauthorized, payload: 'too many OSCORE layers', options: [{ number: OptionNumber.MaxAge, value: encodeUint(0) }] }), 'response'));
          return;
        }
        const outcome = this.security.unprotect(message, context);
        if (!outcome) break;
        if (!outcome.ok) {
          this.log(message, context, outcome.response, oscoreRefusal(outcome.response));
          // §2.4 step 6: an OSCORE error, protected over the layers already removed (§2.5).
          exchange.respond(protectAll(outcome.response, 'response'));
          return;
        }
        message = { ...outcome.inner, type: received.type, messageId: received.messageId, token: received.token };
        context = outcome.context;
        removed.push(outcome.protect);
      }
      if (removed.length > 0) {
        incoming.message = message;
        incoming.context = context;
        incoming.protect = protectAll;
      }
    }
    this.process(incoming);
  }

  /** §2.4 steps 1–3: the request is for this node's forward proxy or one of its reverse-proxied resources. */
  private claimedByProxy(message: CoapMessage, context: EndpointContext): boolean {
    if (this.forwarding && (getOption(message, OptionNumber.ProxyUri) || getOption(message, OptionNumber.ProxyScheme))) return true;
    return this.reverse?.claims(message, context) === true;
  }

  /**
   * Outer block-wise on an OSCORE message (RFC 8613 §4.1.3.4.2): a proxy may fragment the protected
   * request (outer Block1, reassembled here up to the block-wise body limit, MAX_UNFRAGMENTED_SIZE)
   * or ask for the protected response in blocks (outer Block2). Later outer Block2 blocks are served
   * from the stored protected response: the repeated OSCORE request must not reach the replay check.
   * Returns undefined when this message has been answered already.
   */
  private outerBlockwise(received: CoapMessage, exchange: ServerExchange): { message: CoapMessage; finish: (response: CoapMessage) => CoapMessage } | undefined {
    let block1: BlockValue | undefined;
    let block2: BlockValue | undefined;
    try {
      block1 = readBlockOption(received, OptionNumber.Block1);
      block2 = readBlockOption(received, OptionNumber.Block2);
    } catch (error) {
      exchange.respond(toMessage({ code: ResponseCode.BadRequest, payload: (error as Error).message }));
      return undefined;
    }
    if (!block1 && !block2) return { message: received, finish: (response) => response };
    // The OSCORE option (kid, Partial IV) identifies the protected request; the payload is left out
    // because Block2 follow-ups after a Block1 transfer carry none (RFC 7959 §2.7).
    const outerKey = (): string => operationKey(exchange.context.peerKey, received, false);
    if (block2 && block2.num > 0 && !block1) {
      const stored = this.blockwise.servedFromStore(outerKey(), block2, emptyResponse());
      if (stored) {
        exchange.respond(stored);
        return undefined;
      }
    }
    let message = received;
    let control: Uint8Array | undefined;
    if (block1) {
      const outcome = this.blockwise.receiveBlock1(exchange.context.peerKey, operationKey(exchange.context.peerKey, received, false), block1, received.payload, undefined, getUintOption(received, OptionNumber.Size1));
      if (outcome.kind !== 'complete') {
        exchange.respond(toMessage(outcome.response));
        return undefined;
      }
      message = { ...received, payload: outcome.body, options: received.options.filter((o) => o.number !== OptionNumber.Block1 && o.number !== OptionNumber.Size1) };
      control = outcome.block1;
    }
    const key = block2 ? operationKey(exchange.context.peerKey, message, false) : '';
    return {
      message,
      finish: (response) => {
        if (control) setOption(response, OptionNumber.Block1, control);
        return block2 ? this.blockwise.sliceBlock2(exchange.context.peerKey, key, response, { num: 0, more: false, szx: block2.szx }) : response;
      },
    };
  }

  private process(incoming: Incoming): void {
    const { exchange } = incoming;
    let { message } = incoming;
    if (this.forwarding && (getOption(message, OptionNumber.ProxyUri) || getOption(message, OptionNumber.ProxyScheme))) {
      this.forward(this.forwarding, incoming);
      return;
    }
    if (this.reverse?.claims(message, incoming.context)) {
      this.forward(this.reverse, incoming);
      return;
    }
    const check = checkOptions(message.options, (n) => this.recognized.has(n) || (optionDefinition(n) !== undefined && !isCritical(n)));
    if (check.criticalProblem) {
      this.badOption(incoming, check.criticalProblem.reason);
      return;
    }
    message.options = check.options;
    if (getOption(message, OptionNumber.ProxyUri) || getOption(message, OptionNumber.ProxyScheme)) {
      const local = this.proxyNames.size > 0 ? consumeOwnProxyOptions(message, this.proxyNames) : undefined;
      if (!local) {
        // §5.7.2: an endpoint unwilling or unable to act as a forward-proxy answers 5.05.
        this.reply(incoming, { code: ResponseCode.ProxyingNotSupported, payload: 'this endpoint is not a proxy' });
        return;
      }
      message = incoming.message = local;
    }
    if (!isKnownMethod(message.code)) {
      // §5.8: an unrecognized or unsupported method code gets 4.05.
      this.reply(incoming, { code: ResponseCode.MethodNotAllowed });
      return;
    }
    let block1: BlockValue | undefined;
    let block2: BlockValue | undefined;
    try {
      block1 = readBlockOption(message, OptionNumber.Block1);
      block2 = readBlockOption(message, OptionNumber.Block2);
    } catch (error) {
      // RFC 7959 §2.2: SZX 7 in a request MUST lead to 4.00.
      this.reply(incoming, { code: ResponseCode.BadRequest, payload: (error as Error).message });
      return;
    }
    const path = getStringOptions(message, OptionNumber.UriPath);
    const match = this.router.match(path);
    if (!match) {
      this.reply(incoming, { code: ResponseCode.NotFound });
      return;
    }
    if (match.resource.requireOscore && !incoming.context.oscore?.length) {
      // The resource's policy: only OSCORE-authenticated requests (RFC 8613 §8.2 step 8 ff.).
      this.reply(incoming, { code: ResponseCode.Unauthorized, payload: 'OSCORE required' });
      return;
    }
    const handler = handlerFor(match.resource.handlers, message.code);
    if (!handler) {
      this.reply(incoming, { code: ResponseCode.MethodNotAllowed });
      return;
    }
    const freshness = match.resource.freshness;
    if (freshness && freshnessApplies(freshness.methods, message.code)) {
      // RFC 9175 §2.3: without a fresh Echo the request MUST NOT be processed further; 4.01 + Echo.
      const verdict = this.echoFreshness.verify(getOption(message, OptionNumber.Echo), incoming.context, freshness.maxAgeMs);
      if (verdict !== 'fresh') {
        const challenge = this.echoFreshness.issue(incoming.context);
        this.reply(incoming, { code: ResponseCode.Unauthorized, payload: `fresh request required (Echo ${verdict})`, options: [{ number: OptionNumber.MaxAge, value: encodeUint(0) }, { number: OptionNumber.Echo, value: challenge }] });
        return;
      }
    }

    let payload = message.payload;
    let block1Control: Uint8Array | undefined;
    if (block1) {
      const outcome = this.blockwise.receiveBlock1(
        exchange.context.peerKey,
        operationKey(exchange.context.peerKey, message, false),
        block1,
        message.payload,
        getUintOption(message, OptionNumber.ContentFormat),
        getUintOption(message, OptionNumber.Size1),
      );
      if (outcome.kind !== 'complete') {
        this.reply(incoming, outcome.response);
        return;
      }
      payload = outcome.body;
      block1Control = outcome.block1;
    }

    const representationKey = (): string => operationKey(exchange.context.peerKey, message, message.code === Method.FETCH);
    if (block2 && block2.num > 0 && !block1) {
      // A follow-up block: serve it from the representation the first block came from (§2.4).
      const stored = this.blockwise.servedFromStore(representationKey(), block2, emptyResponse());
      if (stored) {
        this.send(incoming, stored);
        return;
      }
    }

    const request = buildRequest(message, payload, path, match.subPath, incoming.context);
    const finish = (spec: CoapResponse): void => {
      const response = this.toResponse(message, spec);
      if (block1Control) setOption(response, OptionNumber.Block1, block1Control);
      this.observeStep(match.resource, () => normalizePath(match.resource.path, match.subPath), incoming, response, spec.unobserved === true);
      this.send(incoming, this.blockwise.sliceBlock2(exchange.context.peerKey, representationKey, response, block2));
    };
    let result: CoapResponse | Promise<CoapResponse>;
    try {
      result = handler(request);
    } catch (error) {
      this.reply(incoming, internalError(error));
      return;
    }
    if (!isPromise(result)) {
      finish(result);
      return;
    }
    // A CON still unanswered after emptyAckDelay is acknowledged by the messaging layer (§5.2.2).
    result.then(finish, (error: unknown) => this.reply(incoming, internalError(error))).catch((error: unknown) => this.failSafe(incoming, error));
  }

  /**
   * RFC 7252 §5.4.1: an unrecognized critical option — or one §5.4.3 (wrong length) and §5.4.5
   * (repeated) say to treat like one — gets 4.02 in a Confirmable request, but "that occur in a
   * Non-confirmable message MUST cause the message to be rejected (Section 4.3)": silently ignored
   * (§4.3 allows an RST, which this server does not send, as for its other rejected NONs).
   */
  private badOption(incoming: Incoming, reason: string): void {
    if (incoming.message.type !== MessageType.CON) {
      incoming.exchange.reject();
      return;
    }
    this.reply(incoming, { code: ResponseCode.BadOption, payload: reason });
  }

  private forward(handler: ForwardingHandler, incoming: Incoming): void {
    const request = new ForwardedRequest(this.proxyLeg, incoming);
    try {
      // Most forwarded requests wait for upstream: the messaging layer's empty ACK covers them (§5.2.2).
      const result = handler.forward(request);
      if (isPromise(result)) result.catch((error: unknown) => request.fail(error));
    } catch (error) {
      request.fail(error);
    }
  }

  /** RFC 7641 §4.1: register on Observe 0, deregister on Observe 1, for GET and FETCH. */
  private observeStep(resource: ResourceDefinition, pathOf: () => string, incoming: Incoming, response: CoapMessage, unobserved = false): void {
    const { message: request, exchange } = incoming;
    const observe = getUintOption(request, OptionNumber.Observe);
    if (observe === undefined || (request.code !== Method.GET && request.code !== Method.FETCH)) return;
    const path = pathOf();
    if (observe === 1 || unobserved || !resource.observable || codeClass(response.code) !== 2 || getOption(request, OptionNumber.Block1)) {
      this.observations.deregister(path, exchange.context.peerKey, request.token);
      return;
    }
    if (observe !== 0) return;
    const type = typeof resource.observable === 'object' ? resource.observable.notifications : 'con';
    const observer = this.observations.register(path, exchange.context.peer, exchange.context.peerKey, request, incoming.context, type, incoming.protect);
    // Past the observer limits: a plain response, no Observe option — not registered (§4.1).
    if (!observer) return;
    setOption(response, OptionNumber.Observe, encodeUint(this.observations.currentSequence(path)));
  }

  /** What a GET/FETCH now would return to this observer, first block only when large (RFC 7959 §2.6). */
  private async renderForObserver(observer: Observer): Promise<CoapMessage> {
    const request = observer.request;
    const virtual = this.virtualObservables.get(observer.path);
    if (virtual) return virtual();
    if (getOption(request, OptionNumber.ProxyUri) || getOption(request, OptionNumber.ProxyScheme)) {
      // A proxied observation whose upstream is gone: the observation ends (RFC 7641 §3.2).
      return toMessage({ code: ResponseCode.ServiceUnavailable, payload: 'upstream observation ended' });
    }
    const match = this.router.match(getStringOptions(request, OptionNumber.UriPath));
    const handler = match ? handlerFor(match.resource.handlers, request.code) : undefined;
    let spec: CoapResponse;
    if (!match || !handler) spec = { code: ResponseCode.NotFound };
    else {
      try {
        spec = await handler(buildRequest(request, request.payload, observer.path === '/' ? [] : splitPath(observer.path), match.subPath, observer.context, true));
      } catch (error) {
        spec = internalError(error);
      }
    }
    const response = this.toResponse(request, spec);
    const block2 = optionalBlockOrUndefined(request, OptionNumber.Block2);
    const key = operationKey(observer.peerKey, request, request.code === Method.FETCH);
    return this.blockwise.sliceBlock2(observer.peerKey, key, response, block2 ? { num: 0, more: false, szx: block2.szx } : undefined);
  }

  /** The handler's response as a message, with the §5.10.4 Accept check applied. */
  private toResponse(request: CoapMessage, spec: CoapResponse): CoapMessage {
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

  private reply(incoming: Incoming, spec: CoapResponse | { code: number; payload?: string; options: CoapOption[] }): void {
    this.send(incoming, toMessage(spec));
  }

  private send(incoming: Incoming, response: CoapMessage): void {
    this.log(incoming.message, incoming.context, response);
    if (suppressedByNoResponse(incoming.message, response.code)) {
      incoming.exchange.acknowledge(); // a CON still needs its ACK; a NON gets nothing (RFC 7967 §2)
      return;
    }
    incoming.exchange.respond(incoming.protect ? incoming.protect(response, 'response') : response);
  }

  private log(request: CoapMessage, context: EndpointContext, response: CoapMessage, oscoreFailure?: string): void {
    const logger = this.onRequestLog;
    if (!logger) return;
    try {
      logger(requestLogEntry(request, context, response, oscoreFailure));
    } catch (error) {
      process.emitWarning(`coapsec: request logger failed: ${(error as Error).message}`);
    }
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
      if (!resource.hidden) links.push(toLink(resource.path, { ...resource, obs: resource.obs ?? Boolean(resource.observable) }));
      for (const below of resource.listLinks?.() ?? []) links.push(toLink(below.path, below));
    }
    return links.sort((a, b) => a.href.localeCompare(b.href));
  }
}

const KNOWN_METHODS = new Set<Code>([1, 2, 3, 4, 5, 6, 7]);

/** The methods a freshness policy covers; by default the unsafe ones (RFC 7252 §5.1, RFC 8132). */
const UNSAFE_METHODS: readonly MethodName[] = ['POST', 'PUT', 'DELETE', 'PATCH', 'IPATCH'];
function freshnessApplies(methods: readonly MethodName[] | undefined, code: Code): boolean {
  return (methods ?? UNSAFE_METHODS).some((name) => Method[name] === code);
}
const isKnownMethod = (code: Code): boolean => isRequestCode(code) && KNOWN_METHODS.has(code);

function normalizePath(path: string, subPath: readonly string[] = []): string {
  return '/' + [...splitPath(path), ...subPath].join('/');
}

function optionalBlockOrUndefined(message: CoapMessage, number: number): BlockValue | undefined {
  try {
    return readBlockOption(message, number);
  } catch {
    return undefined;
  }
}

function handlerFor(handlers: Handlers, code: Code): Handler | undefined {
  const name = methodName(code).toUpperCase() as keyof Handlers;
  return handlers[name];
}

function buildRequest(
  message: CoapMessage,
  body: Uint8Array,
  path: readonly string[],
  subPath: readonly string[],
  context: EndpointContext,
  notification = false,
): CoapRequest {
  const options = message.options;
  const view = { options };
  const payload = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
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
    notification,
    context,
    message,
    option: (number) => getOption(view, number),
    text: () => decodeString(payload),
  };
}

const emptyResponse = (): CoapMessage => ({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES });

/** Builds the wire message of a handler's response (type, ID and token are set by the exchange). */
export function toMessage(spec: CoapResponse | { code: number; payload?: string | Uint8Array; options?: CoapOption[] }): CoapMessage {
  const full = spec as CoapResponse;
  const message: CoapMessage = {
    type: MessageType.ACK,
    code: spec.code,
    messageId: 0,
    token: EMPTY_BYTES,
    options: [],
    payload: typeof spec.payload === 'string' ? encodeString(spec.payload) : (spec.payload ?? EMPTY_BYTES),
  };
  if (full.etag) addOption(message, OptionNumber.ETag, full.etag);
  if (full.contentFormat !== undefined) addOption(message, OptionNumber.ContentFormat, encodeUint(full.contentFormat));
  if (full.maxAge !== undefined) addOption(message, OptionNumber.MaxAge, encodeUint(full.maxAge));
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
