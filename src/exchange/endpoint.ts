/**
 * One CoAP endpoint on one transport: the exchange layer above messaging. It matches responses to
 * requests by token and peer (RFC 7252 §5.3.2), gates requests by NSTART (§4.7), generates random
 * tokens (RFC 9175 §4.2), and hands requests to a server handler as ServerExchanges. Clients,
 * servers and proxies are all built on it (a proxy is both at once).
 */
import { decodeMessage } from '../coap/codec.js';
import { isEmptyCode, isResponseCode, type Code } from '../coap/codes.js';
import { MessageType, bytesEqual, type CoapMessage } from '../coap/message.js';
import { checkOptions } from '../coap/option-validation.js';
import { OptionNumber, optionDefinition } from '../coap/options.js';
import type { Carrier, CarrierEvents, CarrierStats, ConfirmableListener, Inbound, OutgoingHandle } from '../messaging/carrier.js';
import { MessageLayer } from '../messaging/message-layer.js';
import { maxTransmitWait, withDefaults, type TransmissionParameters } from '../messaging/parameters.js';
import { StreamCarrier, type StreamCarrierOptions } from '../stream/carrier.js';
import { isStreamTransport, PeerUnreachableError, peerKey, type AnyTransport, type PeerAddress, type TransportSecurity } from '../transport/transport.js';
import { defaultRandom, type RandomSource } from '../util/random.js';
import { RealScheduler, type Scheduler, type Timer } from '../util/scheduler.js';
import type { EndpointContext } from './context.js';
import { BadResponseError, CancelledError, ResetError, SessionError, TimeoutError, UnreachableError } from './errors.js';
import { NstartGate, type Startable } from './nstart.js';
import { tokenAndPeer, type PeerRef, type ResponseMatcher } from './matcher.js';
import { ResponseStream, type StreamHost, type StreamOptions } from './response-stream.js';
import { allocBytes, bytesToLatin1 } from '../util/bytes.js';
import { IntTable } from '../util/int-table.js';

export interface EndpointOptions {
  /** A datagram transport (UDP, DTLS: carried by MessageLayer) or a stream transport (TCP, TLS, WebSockets: carried by StreamCarrier). */
  transport: AnyTransport;
  /** Connection settings when `transport` is a stream transport (RFC 8323 CSM values, idle and keep-alive times). */
  stream?: Pick<StreamCarrierOptions, 'settings' | 'idleTimeout' | 'keepAliveInterval' | 'maxConnections'>;
  parameters?: Partial<TransmissionParameters>;
  scheduler?: Scheduler;
  random?: RandomSource;
  /** Bytes per generated token, 1..8. Default 8 (RFC 9175 §4.2: long random tokens). */
  tokenLength?: number;
  maxTrackedMessages?: number;
}

export interface RequestOptions {
  /** CON (default) or NON. */
  confirmable?: boolean;
  /** How long to wait for a response once the request is acknowledged, or after sending a NON. */
  responseTimeout?: number;
  /** Overall limit in ms from the call to the response, retransmissions and NSTART queueing included. */
  deadline?: number;
  signal?: AbortSignal;
  /**
   * Use this token instead of a fresh one: for re-registering or cancelling an observation,
   * which must repeat the registration's token (RFC 7641 §3.3.1, §3.6).
   */
  token?: Uint8Array;
  /** Which responses answer the request once the token matched. Default: token and peer (§5.3.2; exchange/matcher.ts). */
  matcher?: ResponseMatcher;
}

/** A response stream's token registration: the stream, and who it listens to. */
interface TokenEntry {
  readonly stream: ResponseStream;
  readonly peerKey: string;
}

export interface ReceivedResponse {
  message: CoapMessage;
  context: EndpointContext;
  /** The message as it came off the wire, when a security layer (OSCORE) unwrapped `message` from it. */
  wire?: CoapMessage;
}

export type RequestHandler = (request: CoapMessage, exchange: ServerExchange) => void;

/** Hears the outcome of a request sent with `CoapEndpoint.send`, once: its first response or why there is none. */
export interface ResponseHandler {
  onResponse(response: ReceivedResponse): void;
  onError(error: Error): void;
}

/** A received request and the means to answer it, once (or repeatedly, for Observe). */
export class ServerExchange {
  constructor(
    private readonly messaging: Carrier,
    readonly inbound: Inbound,
    readonly context: EndpointContext,
  ) {}

  get request(): CoapMessage {
    return this.inbound.message;
  }

  get acknowledged(): boolean {
    return this.inbound.acknowledged;
  }

  /** Piggybacked if the CON is still unacknowledged, separate otherwise (§5.2). Token is copied. */
  respond(response: CoapMessage, separate?: Parameters<Carrier['respond']>[2]): void {
    response.token = this.inbound.message.token;
    this.messaging.respond(this.inbound, response, separate);
  }

  /** Empty ACK now; the response follows separately (§5.2.2). */
  acknowledge(): void {
    this.messaging.acknowledge(this.inbound);
  }

  /** RST for a CON that cannot be processed (§4.2); nothing for a NON. */
  reject(): void {
    this.messaging.reject(this.inbound);
  }

  /**
   * The payload of one BERT block (RFC 8323 §6) to the requester, when its connection allows BERT
   * (both CSMs offered Block-Wise-Transfer and room for it, §5.3.2); undefined otherwise — always
   * over UDP and DTLS, where SZX 7 stays reserved.
   */
  get bertPayloadLimit(): number | undefined {
    return this.messaging instanceof StreamCarrier ? this.messaging.bertPayloadLimit(this.inbound.peer) : undefined;
  }
}

/** What a pending request reports to its endpoint (one object per endpoint, not per request). */
interface PendingEvents {
  start(pending: PendingRequest): void;
  ack(pending: PendingRequest, ack: CoapMessage, security: TransportSecurity | undefined): void;
  reset(pending: PendingRequest): void;
  timeout(pending: PendingRequest): void;
  retransmit(pending: PendingRequest): void;
  error(pending: PendingRequest, error: Error): void;
}

/**
 * A request until its response: also the NSTART gate's waiter and the messaging layer's listener
 * for its CON, so a request needs no closures of its own for either.
 */
class PendingRequest implements ConfirmableListener, Startable, PeerRef {
  handle?: OutgoingHandle;
  /** The request's token (its message's, or the one written into `bytes`). */
  token: Uint8Array = EMPTY_TOKEN;
  /** A simple request's datagram (sendSimple), encoded once; undefined when `message` is sent. */
  bytes: Buffer | undefined = undefined;
  /** The request's key in the endpoint's `pending` (tokenNumber of its token); −1 for one under a chosen token (`chosenPending`, by `tokenKey`). */
  tableKey = -1;
  /** The endpoint's count of requests when this one was sent: the order of `pending` and `chosenPending` together. */
  order = 0;
  responseTimer?: Timer;
  /** When `options.deadline` ends (scheduler time); its timer is armed only once the exchange takes long (armDeadline). */
  deadlineAt = Infinity;
  deadlineTimer?: Timer;
  holdsSlot = false;
  settled = false;
  onAbort?: () => void;

  constructor(
    private readonly events: PendingEvents,
    /** The Map key of a chosen token (tokenKeyOf); '' for a request in the number-keyed table. */
    readonly tokenKey: string,
    readonly peerKey: string,
    readonly peer: PeerAddress,
    /** Undefined for a simple request (sendSimple): its datagram is `bytes`. */
    readonly message: CoapMessage | undefined,
    readonly options: RequestOptions,
    readonly handler: ResponseHandler,
    /** Undefined for the default, token and peer (§5.3.2), checked inline. */
    readonly matcher: ResponseMatcher | undefined,
  ) {}

  start(): void {
    this.events.start(this);
  }
  onAck(ack: CoapMessage, security?: TransportSecurity): void {
    this.events.ack(this, ack, security);
  }
  onReset(): void {
    this.events.reset(this);
  }
  onTimeout(): void {
    this.events.timeout(this);
  }
  onRetransmit(): void {
    this.events.retransmit(this);
  }
  onError(error: Error): void {
    this.events.error(this, error);
  }
}

export class CoapEndpoint {
  /** What carries this endpoint's messages: MessageLayer over UDP/DTLS, StreamCarrier over TCP/TLS/WebSockets. */
  readonly carrier: Carrier;
  readonly scheduler: Scheduler;
  readonly parameters: TransmissionParameters;
  private readonly random: RandomSource;
  private readonly tokenLength: number;
  /**
   * Requests under a token made here (request, send, sendSimple) by a number read from their token
   * (tokenNumber): no key string built per request, and no `Map` whose backing store V8 rebuilds
   * every few dozen adds and removes (the garbage the client's allocation profile showed, issue
   * 21). Token numbers are unique within this table; a lookup compares the whole token.
   */
  private readonly pending = new IntTable<PendingRequest>();
  /**
   * Requests under a token the caller chose (options.token, a response stream's token: an
   * observation re-registered or cancelled, RFC 7641 §3.3.1, §3.6), by tokenKeyOf. Such a token
   * may be any length and share its number with another, so it is not in `pending`. A token is
   * never in both tables, nor twice in either.
   */
  private readonly chosenPending = new Map<string, PendingRequest>();
  /** Requests sent so far (PendingRequest.order). */
  private requestsSent = 0;
  /** Response streams that take more than one response, by token (observations, group requests). */
  private readonly tokenListeners = new Map<string, TokenEntry>();
  private readonly streamHost: StreamHost;
  private readonly gate: NstartGate;
  private readonly pendingEvents: PendingEvents = {
    start: (pending) => this.startRequest(pending),
    ack: (pending, ack, security) => this.onPendingAck(pending, ack, security),
    reset: (pending) => this.fail(pending, new ResetError(`${pending.peerKey} rejected the request (RST)`)),
    timeout: (pending) =>
      this.fail(pending, new TimeoutError(`no acknowledgement from ${pending.peerKey} after ${this.parameters.maxRetransmit} retransmissions`)),
    retransmit: (pending) => this.armDeadline(pending),
    error: (pending, error) => this.fail(pending, error),
  };
  private handler: RequestHandler | undefined;
  private closed = false;
  /** CoAP pings waiting for their RST. */
  private pings = 0;
  /** What the transport was last told (setBusy): does anything wait on the network? */
  private busy = false;
  /** The address and port of the latest request's peer, and its key: most requests go to the peer of the one before. */
  private lastAddress = '';
  private lastPort = -1;
  private lastPeerKey = '';
  /** responseContext()'s latest context without transport security. */
  private lastResponseContext: EndpointContext | undefined;

  constructor(private readonly options: EndpointOptions) {
    this.parameters = withDefaults(options.parameters);
    this.scheduler = options.scheduler ?? new RealScheduler();
    this.random = options.random ?? defaultRandom;
    this.tokenLength = options.tokenLength ?? 8;
    if (!Number.isInteger(this.tokenLength) || this.tokenLength < 1 || this.tokenLength > 8) {
      throw new RangeError('tokenLength must be 1..8');
    }
    this.gate = new NstartGate(this.parameters.nstart);
    this.streamHost = {
      scheduler: this.scheduler,
      send: (message, peer, options, handler, token, matcher) => this.sendUnder(message, peer, options, handler, token, matcher),
      listen: (stream) => this.listenStream(stream),
      abandon: (token) => {
        const pending = this.pendingFor(token);
        if (pending) this.fail(pending, new CancelledError('the response stream was closed'));
      },
    };
    const transport = options.transport;
    const events: CarrierEvents = {
      onRequest: (request, inbound) => this.onRequest(request, inbound),
      onSeparateResponse: (response, inbound) => this.onSeparateResponse(response, inbound),
      onPeerClosed: (peer, _key, error) => this.onPeerClosed(peer, error ?? new Error('the connection closed')),
      peerBusy: (key) => this.peerBusy(key),
    };
    if (isStreamTransport(transport)) {
      this.carrier = new StreamCarrier({ ...options.stream, transport, scheduler: this.scheduler, parameters: this.parameters, events });
    } else {
      const messaging = new MessageLayer({
        parameters: this.parameters,
        scheduler: this.scheduler,
        random: this.random,
        send: (data, peer) => transport.send(data, peer),
        maxTrackedMessages: options.maxTrackedMessages,
        events,
      });
      this.carrier = messaging;
      transport.setHandler((data, peer, security) => messaging.receive(data, peer, security));
      transport.setSessionErrorHandler?.((peer, error) => this.failPeer(peer, error));
    }
  }

  /** The UDP/DTLS messaging layer (tests and tools that feed it datagrams); throws over a stream transport. */
  get messaging(): MessageLayer {
    if (!(this.carrier instanceof MessageLayer)) throw new TypeError(`a ${this.options.transport.scheme} endpoint has no datagram messaging layer`);
    return this.carrier;
  }

  private readonly peerClosedListeners = new Set<(peerKey: string) => void>();
  private readonly busyChecks = new Set<(peerKey: string) => boolean>();

  /** Adds a check that keeps stream connections to a peer alive while it says so (a server's observations). */
  addPeerBusyCheck(check: (peerKey: string) => boolean): () => void {
    this.busyChecks.add(check);
    return () => this.busyChecks.delete(check);
  }

  /**
   * Hears every peer whose connection ended (stream carriers; RFC 8323 §3.4: its observations end
   * with it, §7.4). Returns the function that unregisters the listener.
   */
  addPeerClosedListener(listener: (peerKey: string) => void): () => void {
    this.peerClosedListeners.add(listener);
    return () => this.peerClosedListeners.delete(listener);
  }

  private onPeerClosed(peer: PeerAddress, error: Error): void {
    this.failPeer(peer, error);
    const key = peerKey(peer);
    // RFC 8323 §7.4: an observation lives on its connection; the streams bound to this peer end.
    for (const entry of [...this.tokenListeners.values()]) {
      if (entry.stream.matcher.endsWithPeer(entry.stream, key)) {
        entry.stream.peerClosed(new SessionError(`the ${this.options.transport.scheme} connection to ${key} closed: ${error.message}`));
      }
    }
    for (const listener of [...this.peerClosedListeners]) listener(key);
  }

  /** Whether a request or an observation still waits on `key` (a stream connection to it is kept alive). */
  private peerBusy(key: string): boolean {
    for (const p of this.chosenPending.values()) if (p.peerKey === key) return true;
    for (const p of this.pending.valuesSnapshot()) if (p.peerKey === key) return true;
    for (const entry of this.tokenListeners.values()) if (entry.peerKey === key) return true;
    for (const check of this.busyChecks) if (check(key)) return true;
    return false;
  }

  /**
   * The payload of one BERT block to `peer` (RFC 8323 §6), leaving `overhead` bytes for the rest of
   * the message, when the connection to it allows BERT; undefined otherwise (UDP, DTLS, no
   * connection yet, or a side that did not offer it).
   */
  bertPayloadLimit(peer: PeerAddress, overhead?: number): number | undefined {
    return this.carrier instanceof StreamCarrier ? this.carrier.bertPayloadLimit(peer, overhead) : undefined;
  }

  /**
   * Resolves once a stream connection to `peer` is open and has the peer's CSM (RFC 8323 §3.3);
   * at once over UDP and DTLS. Rejects when the connection cannot be opened.
   */
  connected(peer: PeerAddress): Promise<void> {
    return this.carrier instanceof StreamCarrier ? this.carrier.connected(peer) : Promise.resolve();
  }

  /** The host name to check and present when connecting to `peer` (DTLS or TLS server name, WebSocket Host). */
  setServerName(peer: PeerAddress, host: string): void {
    const transport = this.options.transport as { setServerName?(peer: PeerAddress, host: string): void };
    transport.setServerName?.(peer, host);
    if (this.carrier instanceof StreamCarrier) this.carrier.setServerName(peer, host);
  }

  /**
   * Fails every pending request to `peer`: with an UnreachableError when the network said nobody is
   * there (ICMP), with a SessionError when its secure session failed.
   */
  failPeer(peer: PeerAddress, error: Error): void {
    const key = peerKey(peer);
    for (const p of this.pendingInOrder()) {
      if (p.peerKey !== key) continue;
      this.fail(p, error instanceof PeerUnreachableError ? new UnreachableError(error.message) : new SessionError(`${this.options.transport.scheme} session with ${key} failed: ${error.message}`));
    }
  }

  /** Tells a client transport whether anything waits on the network, on each change only. */
  private updateBusy(): void {
    const busy = this.pending.size > 0 || this.chosenPending.size > 0 || this.tokenListeners.size > 0 || this.pings > 0;
    if (busy === this.busy) return;
    this.busy = busy;
    (this.options.transport as { setBusy?(busy: boolean): void }).setBusy?.(busy);
  }

  get transport(): AnyTransport {
    return this.options.transport;
  }

  setRequestHandler(handler: RequestHandler | undefined): void {
    this.handler = handler;
  }

  /**
   * Sends a request (code, options, payload taken from `message`; token and Message ID assigned)
   * and resolves with the first response: the first of its response stream (`stream`).
   */
  request(message: CoapMessage, peer: PeerAddress, options: RequestOptions = {}): Promise<ReceivedResponse> {
    // What stream(...).first() gives, without a stream object, its queue and its own promise per
    // request: the pending request settles this promise directly.
    return new Promise((resolve, reject) => this.sendUnder(message, peer, options, { onResponse: resolve, onError: reject }, options.token, options.matcher));
  }

  /**
   * Sends a request and returns its responses as a stream (exchange/response-stream.ts): one by
   * default, more with `maxResponses` (an observation, a group request with `tokenFromAnyPeer`),
   * bounded by `lifetime`. Iterate it; stopping the iteration drops its state.
   */
  stream(message: CoapMessage, peer: PeerAddress, options: RequestOptions & StreamOptions = {}): ResponseStream {
    const stream = this.openStream(peer, options);
    if (!stream.ended) stream.send(message, options);
    return stream;
  }

  /**
   * A response stream under `options.token` (or a fresh token) with no request sent yet: the
   * caller sends on it (`ResponseStream.send`), more than once where the protocol repeats a
   * request under one token (an observation's re-registration, RFC 7641 §3.3.1).
   */
  openStream(peer: PeerAddress, options: StreamOptions & { token?: Uint8Array } = {}): ResponseStream {
    const token = options.token ?? this.newToken();
    const stream = new ResponseStream(this.streamHost, token, peer, peerKey(peer), options);
    if (this.closed) stream.endpointClosed();
    return stream;
  }

  private listenStream(stream: ResponseStream): () => void {
    const key = tokenKeyOf(stream.token);
    const entry: TokenEntry = { stream, peerKey: stream.peerKey };
    const previous = this.tokenListeners.get(key);
    this.tokenListeners.set(key, entry);
    // One stream per token: a new one under the same token (an observation renewed) replaces it.
    previous?.stream.close();
    this.updateBusy();
    return () => {
      if (this.tokenListeners.get(key) !== entry) return;
      this.tokenListeners.delete(key);
      this.updateBusy();
    };
  }

  /**
   * `request` without a promise: `handler` hears the outcome once, within the callback of the
   * datagram that settles it (or at once, when the request cannot be sent). For a forwarder that
   * answers from there, with no promise and no microtask per exchange.
   */
  send(message: CoapMessage, peer: PeerAddress, options: RequestOptions, handler: ResponseHandler): void {
    this.sendUnder(message, peer, options, handler, options.token, options.matcher);
  }

  /** `send` with the token and matcher given apart from the options (a response stream's), so no options object is copied per request. */
  private sendUnder(message: CoapMessage, peer: PeerAddress, options: RequestOptions, handler: ResponseHandler, chosenToken: Uint8Array | undefined, matcher: ResponseMatcher | undefined): void {
    if (this.closed) return handler.onError(new CancelledError('endpoint is closed'));
    if (options.signal?.aborted) return handler.onError(new CancelledError('request aborted'));
    let token: Uint8Array;
    let tokenKey = '';
    if (chosenToken !== undefined) {
      token = chosenToken;
      tokenKey = tokenKeyOf(token);
      if (this.chosenPending.has(tokenKey) || this.tableFor(token) !== undefined) {
        return handler.onError(new CancelledError('a request with this token is still waiting for its response'));
      }
    } else {
      token = this.newToken();
    }
    message.token = token;
    const key = this.keyOf(peer);
    const pending = new PendingRequest(this.pendingEvents, tokenKey, key, peer, message, options, handler, matcher === tokenAndPeer ? undefined : matcher);
    pending.token = token;
    pending.order = this.requestsSent++;
    if (chosenToken !== undefined) this.chosenPending.set(tokenKey, pending);
    else this.pending.set((pending.tableKey = tokenNumber(token)), pending);
    if (!this.busy) this.updateBusy();
    if (options.signal) {
      pending.onAbort = () => this.fail(pending, new CancelledError('request aborted'));
      options.signal.addEventListener('abort', pending.onAbort, { once: true });
    }
    this.startUnderDeadline(key, pending, options.deadline);
  }

  /**
   * Hands `pending` to the NSTART gate, with `deadline` (ms from now) if there is one. Most
   * exchanges end with a piggybacked response long before their deadline. Its timer is armed only
   * once the wait gets long — the first retransmission, an empty ACK, a NON waiting for its
   * response — or now, if the deadline may end before the first retransmission (its timeout is at
   * most ACK_TIMEOUT × ACK_RANDOM_FACTOR, §4.2) or the request waits for an NSTART slot (§4.7).
   */
  private startUnderDeadline(key: string, pending: PendingRequest, deadline: number | undefined): void {
    if (deadline !== undefined) pending.deadlineAt = this.scheduler.now() + deadline;
    this.gate.acquire(key, pending);
    if (deadline !== undefined && !pending.settled && (!pending.holdsSlot || deadline < this.parameters.ackTimeout * this.parameters.ackRandomFactor)) {
      this.armDeadline(pending);
    }
  }

  /** Whether sendSimple can carry requests: a datagram endpoint (UDP, DTLS). */
  get takesSimpleRequests(): boolean {
    return this.carrier instanceof MessageLayer;
  }

  /**
   * `send` of a simple request (the client's fast path, client/fast-request.ts): `code`, its
   * options already encoded as they go on the wire (`optionBytes`: sorted, deltas from 0) and a
   * payload, with `options` that set nothing but `confirmable` and `deadline` (a forward proxy's
   * upstream leg) — no signal, token or matcher. The datagram is written here at once, header, fresh token, options and payload, and
   * from there the request is the same PendingRequest as send's: the same NSTART gate (§4.7), the
   * same retransmission (§4.2), ACK, RST, separate response and timeout handling. Only for an
   * endpoint that takesSimpleRequests.
   */
  sendSimple(code: Code, optionBytes: Uint8Array, payload: Uint8Array, peer: PeerAddress, options: RequestOptions, handler: ResponseHandler): void {
    if (this.closed) return handler.onError(new CancelledError('endpoint is closed'));
    const token = this.newToken();
    const tokenLength = token.length;
    const optionsEnd = 4 + tokenLength + optionBytes.length;
    const bytes = allocBytes(payload.length > 0 ? optionsEnd + 1 + payload.length : optionsEnd) as Buffer;
    bytes[0] = 0x40 | ((options.confirmable === false ? MessageType.NON : MessageType.CON) << 4) | tokenLength;
    bytes[1] = code;
    // The Message ID (bytes 2–3) is the messaging layer's to write.
    bytes.set(token, 4);
    bytes.set(optionBytes, 4 + tokenLength);
    if (payload.length > 0) {
      bytes[optionsEnd] = 0xff;
      bytes.set(payload, optionsEnd + 1);
    }
    const key = this.keyOf(peer);
    const pending = new PendingRequest(this.pendingEvents, '', key, peer, undefined, options, handler, undefined);
    pending.token = token;
    pending.bytes = bytes;
    pending.tableKey = tokenNumber(token);
    pending.order = this.requestsSent++;
    this.pending.set(pending.tableKey, pending);
    if (!this.busy) this.updateBusy();
    this.startUnderDeadline(key, pending, options.deadline);
  }

  /**
   * Every waiting request, in the order they were sent: the order in which closing or a failed
   * peer fails them, as it would be with one table (NSTART hands freed slots on in it).
   */
  private pendingInOrder(): PendingRequest[] {
    const all = [...this.chosenPending.values(), ...this.pending.valuesSnapshot()];
    // The number-keyed table keeps no order of its own: sort by the send count.
    if (this.pending.size > 0) all.sort((a, b) => a.order - b.order);
    return all;
  }

  /** The request waiting under `token` in the number-keyed table, if any. */
  private tableFor(token: Uint8Array): PendingRequest | undefined {
    if (this.pending.size === 0) return undefined;
    const pending = this.pending.get(tokenNumber(token));
    return pending !== undefined && bytesEqual(pending.token, token) ? pending : undefined;
  }

  /** The request waiting under `token`, whichever table holds it (at most one does). */
  private pendingFor(token: Uint8Array): PendingRequest | undefined {
    return (this.chosenPending.size > 0 ? this.chosenPending.get(tokenKeyOf(token)) : undefined) ?? this.tableFor(token);
  }

  /** Arms the timer of `options.deadline` (once), failing the request when it ends. */
  private armDeadline(pending: PendingRequest): void {
    if (pending.deadlineTimer !== undefined || pending.settled || pending.deadlineAt === Infinity) return;
    const deadline = pending.options.deadline!;
    pending.deadlineTimer = this.scheduler.schedule(pending.deadlineAt - this.scheduler.now(), () =>
      this.fail(pending, new TimeoutError(`no response from ${pending.peerKey} within ${Math.round(deadline)} ms`)),
    );
  }

  /** CoAP ping (§4.3). */
  async ping(peer: PeerAddress): Promise<number> {
    this.pings++;
    this.updateBusy();
    try {
      return await this.carrier.ping(peer);
    } finally {
      this.pings--;
      this.updateBusy();
    }
  }

  private startRequest(pending: PendingRequest): void {
    pending.holdsSlot = true;
    if (pending.settled) {
      this.releaseSlot(pending);
      return;
    }
    try {
      const bytes = pending.bytes;
      if (pending.options.confirmable === false) {
        if (bytes !== undefined) (this.carrier as MessageLayer).sendNonConfirmableBytes(bytes, pending.peer);
        else this.carrier.sendNonConfirmable(pending.message!, pending.peer);
        this.armResponseTimer(pending);
      } else if (bytes !== undefined) {
        pending.handle = (this.carrier as MessageLayer).sendConfirmableBytes(bytes, pending.peer, pending);
      } else {
        pending.handle = this.carrier.sendConfirmable(pending.message!, pending.peer, pending);
      }
    } catch (error) {
      this.fail(pending, error as Error);
    }
  }

  private onPendingAck(pending: PendingRequest, ack: CoapMessage, security: TransportSecurity | undefined): void {
    if (isEmptyCode(ack.code)) {
      // §4.7: acknowledged, so no longer outstanding; the response comes separately.
      this.releaseSlot(pending);
      this.armResponseTimer(pending);
      return;
    }
    if (!bytesEqual(ack.token, pending.token)) {
      this.fail(pending, new BadResponseError('piggybacked response carries a different token'));
      return;
    }
    this.deliver(pending, ack, this.responseContext(pending.peer, pending.peerKey, security));
  }

  /**
   * A piggybacked response's context: over plain UDP the previous one's when it came from the same
   * peer (a context is read-only; layers that add to it copy it, withOscoreLayer), so a client's
   * stream of responses from one server costs no context object each.
   */
  private responseContext(peer: PeerAddress, key: string, security: TransportSecurity | undefined): EndpointContext {
    if (security !== undefined) return this.contextFor(peer, key, security);
    const last = this.lastResponseContext;
    if (last !== undefined && last.peer === peer && last.peerKey === key) return last;
    return (this.lastResponseContext = this.contextFor(peer, key, undefined));
  }

  private armResponseTimer(pending: PendingRequest): void {
    if (pending.settled) return;
    this.armDeadline(pending);
    const wait = pending.options.responseTimeout ?? maxTransmitWait(this.parameters);
    pending.responseTimer = this.scheduler.schedule(wait, () =>
      this.fail(pending, new TimeoutError(`no response from ${pending.peerKey} within ${Math.round(wait)} ms`)),
    );
  }

  /**
   * The key of `peer`, the previous request's when it goes to the same address and port: one string
   * per peer instead of one per request, whose hash the Maps keyed by it (pending requests' peers,
   * the NSTART gate) then compute once.
   */
  private keyOf(peer: PeerAddress): string {
    if (peer.port === this.lastPort && peer.address === this.lastAddress) return this.lastPeerKey;
    this.lastAddress = peer.address;
    this.lastPort = peer.port;
    return (this.lastPeerKey = peerKey(peer));
  }

  /**
   * A fresh random token, unused by any pending request or listener, and whose number (tokenNumber)
   * no request in `pending` has, so that table holds one request per number. The key strings of
   * the other tables are built only while a chosen-token request or a stream uses them.
   */
  newToken(): Uint8Array {
    for (;;) {
      const token = this.random.bytes(this.tokenLength);
      if (this.pending.has(tokenNumber(token))) continue;
      if (this.chosenPending.size > 0 || this.tokenListeners.size > 0) {
        const key = tokenKeyOf(token);
        if (this.chosenPending.has(key) || this.tokenListeners.has(key)) continue;
      }
      return token;
    }
  }

  private onSeparateResponse(response: CoapMessage, inbound: Inbound): boolean {
    if (!isResponseCode(response.code)) return false;
    const pending = this.pendingFor(response.token);
    if (!pending) {
      const entry = this.tokenListeners.size > 0 ? this.tokenListeners.get(tokenKeyOf(response.token)) : undefined;
      // §5.3.2: the token and the source endpoint must both match (or what the stream's matcher says).
      if (!entry || !entry.stream.matcher.matches(entry.stream, inbound)) return false;
      const check = checkOptions(response.options, isRecognizedInResponse);
      if (check.criticalProblem) return false;
      response.options = check.options;
      return entry.stream.accept(response, this.contextFor(inbound.peer, inbound.peerKey, inbound.security), undefined);
    }
    // §5.3.2: the token and the source endpoint must both match the request (or its matcher).
    const matcher = pending.matcher;
    if (matcher === undefined ? pending.peerKey !== inbound.peerKey : !matcher.matches(pending, inbound)) return false;
    // A separate response proves the request arrived, even if its empty ACK was lost (§5.2.2).
    pending.handle?.cancel();
    return this.deliver(pending, response, this.contextFor(inbound.peer, inbound.peerKey, inbound.security));
  }

  /** Returns false when the response is rejected. */
  private deliver(pending: PendingRequest, response: CoapMessage, context: EndpointContext): boolean {
    const check = checkOptions(response.options, isRecognizedInResponse);
    if (check.criticalProblem) {
      // §5.4.1: an unrecognized critical option in a response MUST cause it to be rejected.
      this.fail(pending, new BadResponseError(`response rejected: ${check.criticalProblem.reason}`));
      return false;
    }
    response.options = check.options;
    this.settle(pending);
    // A listener on this token (an observation) sees the response first and in arrival order,
    // so a notification overtaking the registration response cannot reorder them.
    if (this.tokenListeners.size > 0) {
      const listener = this.tokenListeners.get(pending.tableKey < 0 ? pending.tokenKey : tokenKeyOf(pending.token));
      // A simple request's message is its datagram, as the layered path's would be once sent.
      listener?.stream.accept(response, context, pending.message ?? decodeMessage(pending.bytes!));
    }
    pending.handler.onResponse({ message: response, context });
    return true;
  }

  private fail(pending: PendingRequest, error: Error): void {
    if (pending.settled) return;
    pending.handle?.cancel();
    if (!pending.holdsSlot) this.gate.withdraw(pending.peerKey, pending);
    this.settle(pending);
    pending.handler.onError(error);
  }

  private settle(pending: PendingRequest): void {
    pending.settled = true;
    pending.responseTimer?.cancel();
    pending.deadlineTimer?.cancel();
    if (pending.tableKey >= 0) this.pending.delete(pending.tableKey);
    else this.chosenPending.delete(pending.tokenKey);
    if (this.pending.size === 0 && this.chosenPending.size === 0) this.updateBusy();
    if (pending.onAbort) pending.options.signal?.removeEventListener('abort', pending.onAbort);
    this.releaseSlot(pending);
  }

  private releaseSlot(pending: PendingRequest): void {
    if (!pending.holdsSlot) return;
    pending.holdsSlot = false;
    this.gate.release(pending.peerKey);
  }

  private onRequest(request: CoapMessage, inbound: Inbound): void {
    const exchange = new ServerExchange(this.carrier, inbound, this.contextFor(inbound.peer, inbound.peerKey, inbound.security));
    if (!this.handler) {
      // §4.2/§4.3: nobody here serves requests — reject.
      exchange.reject();
      return;
    }
    this.handler(request, exchange);
  }

  /**
   * One object literal of one shape, `security` undefined over plain UDP: a conditional spread
   * (`...(sec ? { security: sec } : {})`) takes V8's slow path, ≈ 0.7 µs per message on Node 20
   * (as withOscoreLayer in context.ts explains), and gives the contexts two shapes.
   */
  private contextFor(peer: PeerAddress, key: string, security: TransportSecurity | undefined): EndpointContext {
    return {
      peer,
      peerKey: key,
      scheme: this.options.transport.scheme,
      security,
    };
  }

  stats(): CarrierStats & { pendingRequests: number } {
    return { ...this.carrier.getStats(), pendingRequests: this.pending.size + this.chosenPending.size };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pendingInOrder()) this.fail(p, new CancelledError('endpoint closed'));
    for (const entry of [...this.tokenListeners.values()]) entry.stream.endpointClosed();
    this.tokenListeners.clear();
    this.carrier.close();
    await this.options.transport.close();
  }
}

/**
 * Critical options the table knows but nothing in this stack processes yet: a response carrying
 * one must be rejected (§5.4.1), not silently misread. EDHOC and Q-Block (RFC 9177) are not
 * implemented. OSCORE passes: the client's security layer verifies it, or refuses it (client/security.ts).
 */
const UNPROCESSED_RESPONSE_OPTIONS = new Set<number>([OptionNumber.Edhoc, OptionNumber.QBlock1, OptionNumber.QBlock2]);
const isRecognizedInResponse = (n: number): boolean => optionDefinition(n) !== undefined && !UNPROCESSED_RESPONSE_OPTIONS.has(n);

/**
 * A token's Map key: its length and its bytes two to a UTF-16 unit, made by one call into one flat
 * string (a string built a character at a time is a chain of 8 that each Map lookup first
 * flattens). The length keeps tokens that differ only by a trailing zero byte apart.
 */
function tokenKeyOf(token: Uint8Array): string {
  const t = token;
  switch (t.length) {
    case 0:
      return '';
    case 1:
      return String.fromCharCode(1, t[0]!);
    case 2:
      return String.fromCharCode(2, t[0]! | (t[1]! << 8));
    case 3:
      return String.fromCharCode(3, t[0]! | (t[1]! << 8), t[2]!);
    case 4:
      return String.fromCharCode(4, t[0]! | (t[1]! << 8), t[2]! | (t[3]! << 8));
    case 5:
      return String.fromCharCode(5, t[0]! | (t[1]! << 8), t[2]! | (t[3]! << 8), t[4]!);
    case 6:
      return String.fromCharCode(6, t[0]! | (t[1]! << 8), t[2]! | (t[3]! << 8), t[4]! | (t[5]! << 8));
    case 7:
      return String.fromCharCode(7, t[0]! | (t[1]! << 8), t[2]! | (t[3]! << 8), t[4]! | (t[5]! << 8), t[6]!);
    case 8:
      return String.fromCharCode(8, t[0]! | (t[1]! << 8), t[2]! | (t[3]! << 8), t[4]! | (t[5]! << 8), t[6]! | (t[7]! << 8));
    default:
      // Longer than RFC 7252 §5.3.1 allows (the codec refuses those); kept distinct all the same.
      return String.fromCharCode(t.length) + bytesToLatin1(t);
  }
}

const EMPTY_TOKEN = new Uint8Array(0);

/**
 * A request's number in `pending`: 30 bits of its token's first four bytes (those it has: a
 * shorter token's missing bytes count as 0), a small integer, which the IntTable hashes without a
 * string or a heap number. Equal tokens give equal numbers; a lookup checks the whole token.
 */
function tokenNumber(token: Uint8Array): number {
  return (token[0]! | (token[1]! << 8) | (token[2]! << 16) | (token[3]! << 24)) & 0x3fffffff;
}
