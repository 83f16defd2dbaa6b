/**
 * draft-ietf-core-oscore-capable-proxies §2.4 steps 1–4: a request with proxy-related options goes
 * to this node's forward proxy (RFC 7252 §5.7), one whose Uri-Host/Uri-Port/Uri-Path a reverse
 * proxy here claims goes to it; both before the option checks, since a proxy forwards unknown
 * safe-to-forward options (it runs the §5.7.1 rules itself). Step 4 ("the authority identifies
 * this endpoint") sends the request back to step 1 (`ProxiedRequest.local`): the pipeline runs on
 * from the §2.4 loop's stage, keeping the layers removed so far.
 */
import { ResponseCode } from '../../coap/codes.js';
import { getOption, type CoapMessage } from '../../coap/message.js';
import { OptionNumber } from '../../coap/options.js';
import type { EndpointContext } from '../../exchange/context.js';
import type { PeerAddress } from '../../transport/transport.js';
import type { Observer } from '../observe.js';
import { ObserveRegistry } from '../observe.js';
import { isPromise, toMessage } from '../response.js';
import { DONE, PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';

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
  /** The requester's address, where further responses to this request go (`protectAgain`). */
  readonly peer: PeerAddress;
  /**
   * A further response to this request, beside the one `respond` sends (draft-ietf-core-groupcomm-
   * proxy §5.4.1: one per server of a group, "as they come"), for the caller to send to `peer`: the
   * request's token, protected over the layers removed with a fresh Partial IV each (oscore-capable-
   * proxies §2.5.1; as notifications are, RFC 8613 §8.3.1). Unprotected without OSCORE.
   */
  protectAgain(response: CoapMessage): CoapMessage;
}

/**
 * A ProxiedRequest whose responses pass through `finish` first (a proxy's own rule for what it
 * sends back on this leg); everything else is the wrapped request's.
 */
export class ProxiedRequestThrough implements ProxiedRequest {
  constructor(
    private readonly inner: ProxiedRequest,
    private readonly finish: (response: CoapMessage, inner: ProxiedRequest) => CoapMessage,
  ) {}
  get message(): CoapMessage {
    return this.inner.message;
  }
  get context(): EndpointContext {
    return this.inner.context;
  }
  respond(response: CoapMessage): void {
    this.inner.respond(this.finish(response, this.inner));
  }
  observe(path: string): number {
    return this.inner.observe(path);
  }
  stopObserving(path: string): void {
    this.inner.stopObserving(path);
  }
  observing(): string | undefined {
    return this.inner.observing();
  }
  local(consumed: CoapMessage): void {
    this.inner.local(consumed);
  }
  get peer(): PeerAddress {
    return this.inner.peer;
  }
  protectAgain(response: CoapMessage): CoapMessage {
    return this.inner.protectAgain(this.finish(response, this.inner));
  }
}

/** The proxies installed on a server (CoapServer.setForwardingHandler / setReverseProxyHandler). */
export class ProxyHandlers {
  forwarding: ForwardingHandler | undefined = undefined;
  reverse: ReverseProxyHandler | undefined = undefined;

  /** §2.4 steps 1–3: the proxy this request is for, if any. */
  claimant(message: CoapMessage, context: EndpointContext): ForwardingHandler | undefined {
    if (this.forwarding && (getOption(message, OptionNumber.ProxyUri) || getOption(message, OptionNumber.ProxyScheme))) return this.forwarding;
    return this.reverse?.claims(message, context) === true ? this.reverse : undefined;
  }
}

/** Observable paths rendered by code rather than a resource handler (a proxy's upstream state). */
export type VirtualObservables = Map<string, (observer: Observer) => CoapMessage>;

export class ProxyClaim implements ServerStage {
  readonly name = 'proxy-claim';

  /**
   * `stepOne`: the stage a local request (§2.4 step 4) resumes at, the §2.4 loop's.
   */
  constructor(
    private readonly proxies: ProxyHandlers,
    readonly observations: ObserveRegistry,
    readonly virtualObservables: VirtualObservables,
    private readonly stepOne: ServerStage,
  ) {}

  /** Only a server with a forward or reverse proxy installed has anyone to claim a request. */
  receives(): boolean {
    return this.proxies.forwarding !== undefined || this.proxies.reverse !== undefined;
  }

  receive(request: InboundRequest): StageVerdict {
    const handler = this.proxies.claimant(request.message, request.context);
    if (handler === undefined) return PASS;
    const proxied = new ForwardedRequest(this, request);
    try {
      // Most forwarded requests wait for upstream: the messaging layer's empty ACK covers them (§5.2.2).
      const result = handler.forward(proxied);
      if (isPromise(result)) result.catch((error: unknown) => proxied.fail(error));
    } catch (error) {
      proxied.fail(error);
    }
    return DONE;
  }

  /** §2.4 step 4 → step 1 with the request's proxy-related options consumed. */
  resume(request: InboundRequest, consumed: CoapMessage): void {
    const message = request.message;
    request.message = { ...consumed, type: message.type, messageId: message.messageId, token: message.token };
    request.pipeline.run(request, request.pipeline.indexOf(this.stepOne));
  }
}

/**
 * The ProxiedRequest of one forwarded request. Its behaviour lives in methods on the prototype
 * rather than in closures per request: a forward proxy builds one of these for every request it
 * forwards, and six closures each (with the context they share) cost allocation and GC on its
 * busiest path. Callers use them as methods (`request.respond(r)`), never detached.
 */
export class ForwardedRequest implements ProxiedRequest {
  readonly message: CoapMessage;
  readonly context: EndpointContext;
  /** Answered, or handed back to the pipeline by `local`: whatever comes later is ignored. */
  answered = false;

  constructor(
    private readonly stage: ProxyClaim,
    private readonly request: InboundRequest,
  ) {
    this.message = request.message;
    this.context = request.context;
  }

  respond(response: CoapMessage): void {
    if (this.answered) return;
    this.answered = true;
    this.request.answer(response);
  }

  observe(path: string): number {
    const { exchange, context, protect } = this.request;
    this.stage.observations.register(path, exchange.context.peer, exchange.context.peerKey, this.message, context, 'con', protect, true);
    return this.stage.observations.currentSequence(path);
  }

  stopObserving(path: string): void {
    this.stage.observations.deregister(path, this.request.exchange.context.peerKey, this.message.token);
  }

  observing(): string | undefined {
    const key = ObserveRegistry.observerKey(this.request.exchange.context.peerKey, this.message.token);
    for (const path of this.stage.virtualObservables.keys()) if (this.stage.observations.observers(path).some((o) => o.key === key)) return path;
    return undefined;
  }

  local(consumed: CoapMessage): void {
    if (this.answered) return;
    this.answered = true;
    this.stage.resume(this.request, consumed);
  }

  get peer(): PeerAddress {
    return this.request.exchange.context.peer;
  }

  protectAgain(response: CoapMessage): CoapMessage {
    const protect = this.request.protect;
    const message = protect !== undefined ? protect(response, 'notification') : { ...response };
    message.token = this.message.token;
    return message;
  }

  /** The handler threw or rejected: 5.00, unless it answered already (as for a resource handler, §5.9.3.1). */
  fail(error: unknown): void {
    this.respond(proxyFailure(error));
  }
}

/** The answer to a forwarding handler that threw or rejected (ForwardedRequest.fail; the server's proxy fast path gives the same). */
export function proxyFailure(error: unknown): CoapMessage {
  return toMessage({ code: ResponseCode.InternalServerError, payload: `proxy error: ${error instanceof Error ? error.message : String(error)}`.slice(0, 200) });
}
