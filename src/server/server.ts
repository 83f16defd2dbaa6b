/**
 * The CoAP server: routes requests to resources, enforces the option rules of RFC 7252 §5.4,
 * answers 4.04/4.05/4.06/5.05 itself, serves /.well-known/core (RFC 6690), honours No-Response
 * (RFC 7967), sends an empty ACK when a handler is slow (§5.2.2), reassembles and slices
 * block-wise bodies (RFC 7959) and keeps Observe registrations (RFC 7641).
 *
 * The order in which a request is processed is the list of stages in stages/index.ts (see
 * stage.ts and docs/architecture.md); this class holds the server's state and its public API.
 */
import type { CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { CoapEndpoint, type EndpointOptions, type ServerExchange } from '../exchange/endpoint.js';
import { exchangeLifetime } from '../messaging/parameters.js';
import { UdpTransport, type UdpTransportOptions } from '../transport/udp.js';
import { DtlsServerTransport, type DtlsServerTransportOptions } from '../transport/dtls.js';
import { RealScheduler } from '../util/scheduler.js';
import type { PeerAddress, StreamScheme } from '../transport/transport.js';
import { openTransport, type TransportOptions } from '../transport/schemes.js';
import type { Credentials } from '../credentials/credentials-file.js';
import type { Link } from '../coap/link-format.js';
import { serverCredentials } from './credentials.js';
import { RequestLog, type RequestLogger } from './request-log.js';
import { BlockwiseServer, DEFAULT_BLOCKWISE_LIMITS, type BlockwiseLimits } from './blockwise.js';
import { EchoFreshness } from './freshness.js';
import { DEFAULT_OBSERVE_SETTINGS, ObserveRegistry, type ObserveSettings, type Observer } from './observe.js';
import type { Handlers, LinkAttributes, ResourceDefinition } from './resource.js';
import { answerFailSafe } from './response.js';
import { Router, normalizePath, splitPath } from './router.js';
import type { ServerSecurity } from './security.js';
import { kudosResource } from '../kudos/well-known.js';
import { InboundRequest, StagePipeline, type ServerStage } from './stage.js';
import { serverStages } from './stages/index.js';
import { FastPath } from './fast-path.js';
import { ProxyFastPath } from './proxy-fast-path.js';
import type { GroupServing } from './stages/group-request.js';
import { defaultRandom } from '../util/random.js';
import { renderNotification } from './stages/observe.js';
import { ProxyHandlers, type ForwardingHandler, type ReverseProxyHandler, type VirtualObservables } from './stages/proxy-claim.js';
import { resourceLinks, wellKnownCoreResource } from './well-known-core.js';
export type { RequestLogEntry, RequestLogger } from './request-log.js';
export type { ForwardingHandler, ProxiedRequest, ReverseProxyHandler } from './stages/proxy-claim.js';
export { ProxiedRequestThrough } from './stages/proxy-claim.js';
export type { InboundRequest, ServerStage } from './stage.js';
export { toMessage } from './response.js';

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
  /**
   * Edits the list of stages (stages/index.ts) this server runs, e.g. to insert a stage of a
   * plug-in or a test at its place. Default: the list as it is.
   */
  stages?: (standard: readonly ServerStage[]) => readonly ServerStage[];
  /** CoAP group communication (stages/group-request.ts): the joined group, Group OSCORE contexts, Leisure. */
  group?: GroupServing;
  /**
   * Answer simple requests (an unprotected GET or other method with only Uri-Path, Uri-Query,
   * Uri-Host, Uri-Port, Content-Format and Accept, and a synchronous handler whose response fits
   * one block) without the walk through the stages (fast-path.ts), and hand a simple forwarded
   * request straight to the forward proxy (proxy-fast-path.ts); the answers are the same bytes.
   * Default true; off by itself with `stages` or over TCP/TLS/WebSockets. False: every request
   * takes the stages (for comparisons).
   */
  fastPath?: boolean;
}

export class CoapServer {
  readonly router = new Router();
  readonly blockwise: BlockwiseServer;
  readonly observations: ObserveRegistry;
  readonly maxOscoreLayers: number;
  /** The stages a request goes through, in order (stages/index.ts). */
  readonly pipeline: StagePipeline;
  private readonly closeHooks: Array<() => void> = [];
  /** What the stages read on every request and the API can change: the OSCORE layer and its limit. */
  private readonly settings: { security: ServerSecurity | undefined; maxOscoreLayers: number };
  private readonly requestLog: RequestLog;
  private readonly proxies = new ProxyHandlers();
  /** Observable paths rendered by code rather than a resource handler (a proxy's upstream state). */
  private readonly virtualObservables: VirtualObservables = new Map();
  private readonly fastPath: FastPath;
  private readonly proxyFastPath: ProxyFastPath;

  constructor(
    readonly endpoint: CoapEndpoint,
    options: ServerOptions = {},
  ) {
    // §5.2.2: one timer in the messaging layer acknowledges every CON request a handler (or an
    // upstream exchange) has not answered within the delay; none per request.
    endpoint.carrier.acknowledgeUnansweredAfter(options.emptyAckDelay ?? 100);
    this.maxOscoreLayers = options.maxOscoreLayers ?? 4;
    this.settings = { security: options.security, maxOscoreLayers: this.maxOscoreLayers };
    this.requestLog = new RequestLog(options.onRequestLog);
    this.blockwise = new BlockwiseServer(
      { ...DEFAULT_BLOCKWISE_LIMITS, lifetime: exchangeLifetime(endpoint.parameters), ...options.blockwise },
      () => endpoint.scheduler.now(),
    );
    this.observations = new ObserveRegistry(endpoint.carrier, endpoint.scheduler, { ...DEFAULT_OBSERVE_SETTINGS, ...options.observe }, (o) =>
      renderNotification(o, this.router, this.virtualObservables, this.blockwise),
    );
    const standard = serverStages({
      settings: this.settings,
      log: this.requestLog,
      proxies: this.proxies,
      router: this.router,
      blockwise: this.blockwise,
      observations: this.observations,
      virtualObservables: this.virtualObservables,
      echoFreshness: new EchoFreshness(() => endpoint.scheduler.now()),
      recognized: new Set([...SERVER_OPTIONS, ...(options.recognizedOptions ?? [])]),
      proxyNames: new Set((options.proxyNames ?? []).map((name) => name.toLowerCase())),
      group: options.group,
      scheduler: endpoint.scheduler,
      random: defaultRandom,
    });
    this.pipeline = new StagePipeline(options.stages ? options.stages(standard) : standard);
    const fastPath = options.fastPath !== false && options.stages === undefined && !endpoint.carrier.reliable;
    this.fastPath = new FastPath({ pipeline: this.pipeline, router: this.router, blockwise: this.blockwise, log: this.requestLog }, fastPath);
    this.proxyFastPath = new ProxyFastPath({ pipeline: this.pipeline, proxies: this.proxies, log: this.requestLog }, fastPath);
    if (options.wellKnownCore !== false) this.router.add(wellKnownCoreResource(() => this.links()));
    endpoint.setRequestHandler((request, exchange) => this.handle(request, exchange));
    endpoint.addPeerClosedListener((peerKey) => this.observations.removePeer(peerKey));
    endpoint.addPeerBusyCheck((peerKey) => this.observations.observes(peerKey));
  }

  /** Requests the fast path answered (fast-path.ts), for tests and tools that check it is taken. */
  get fastPathAnswers(): number {
    return this.fastPath.answered;
  }

  /** Requests the proxy fast path handed to the forward proxy (proxy-fast-path.ts). */
  get fastPathForwards(): number {
    return this.proxyFastPath.forwarded;
  }

  /** End-to-end protection (OSCORE); replaceable while serving. */
  get security(): ServerSecurity | undefined {
    return this.settings.security;
  }

  set security(security: ServerSecurity | undefined) {
    this.settings.security = security;
    this.pipeline.reconfigured();
  }

  /** See ServerOptions.onRequestLog; settable after listen(). */
  get onRequestLog(): RequestLogger | undefined {
    return this.requestLog.logger;
  }

  set onRequestLog(logger: RequestLogger | undefined) {
    this.requestLog.logger = logger;
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
        /** Serve CoAP over TCP, TLS or WebSockets (RFC 8323) instead of UDP; TLS and WS settings below. */
        scheme?: StreamScheme;
        tls?: TransportOptions['tls'];
        ws?: TransportOptions['ws'];
      } = {},
  ): Promise<CoapServer> {
    if (options.credentials !== undefined && options.security !== undefined) throw new TypeError('CoapServer.listen: give either credentials or security, not both');
    const oscore = options.credentials !== undefined ? serverCredentials(options.credentials) : undefined;
    const settings = oscore ? { ...options, security: oscore.protection } : options;
    let server: CoapServer;
    try {
      if (options.scheme !== undefined) {
        const transport = await openTransport(options.scheme, 'server', { host: options.host, port: options.port ?? 0, tls: options.tls, ws: options.ws });
        server = new CoapServer(new CoapEndpoint({ ...options, transport }), settings);
      } else if (options.dtls) {
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
    if (oscore?.kudos) server.add(kudosResource());
    return server;
  }

  add(resource: ResourceDefinition): this {
    this.router.add(resource);
    return this;
  }

  resource(path: string, handlers: Handlers, attributes: LinkAttributes & Pick<ResourceDefinition, 'observable' | 'requireOscore' | 'freshness' | 'deterministic'> = {}): this {
    return this.add({ path, handlers, ...attributes });
  }

  /** The resource registered at exactly `path`, e.g. to wrap its handlers (src/ace/ guards them by scope). */
  resourceAt(path: string): ResourceDefinition | undefined {
    const resource = this.router.match(splitPath(path))?.resource;
    return resource !== undefined && normalizePath(resource.path) === normalizePath(path) ? resource : undefined;
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
    this.proxies.forwarding = handler;
    this.pipeline.reconfigured();
  }

  /** Installs a reverse proxy that claims requests by their URI (see ReverseProxyHandler). */
  setReverseProxyHandler(handler: ReverseProxyHandler | undefined): void {
    this.proxies.reverse = handler;
    this.pipeline.reconfigured();
  }

  /**
   * An observable whose notifications are rendered by `render` (e.g. a proxy's latest upstream
   * notification). Observers register through ProxiedRequest.observe; call changed(path) on updates.
   * `render` gets the observer, so it can cut block 0 in that observer's size (RFC 7959 §2.6).
   */
  addVirtualObservable(path: string, render: (observer: Observer) => CoapMessage): void {
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

  /** The links /.well-known/core advertises (RFC 6690 §4). */
  links(): Link[] {
    return resourceLinks(this.router);
  }

  private handle(received: CoapMessage, exchange: ServerExchange): void {
    try {
      if (this.fastPath.take(received, exchange) || this.proxyFastPath.take(received, exchange)) return;
      this.pipeline.run(new InboundRequest(this.pipeline, received, exchange, exchange.context));
    } catch (error) {
      answerFailSafe(exchange, error);
    }
  }
}
