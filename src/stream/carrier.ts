/**
 * The carrier for CoAP over TCP, TLS and WebSockets (RFC 8323): one StreamConnection per peer,
 * opened on the first request to it (or accepted from it), reused by every exchange with it,
 * kept alive with Ping while something waits on it (§3.4, §7.3), released when it has been quiet
 * and idle (§5.5), and closed cleanly with the carrier. It implements the same Carrier seam as the
 * UDP MessageLayer, so the exchange layer and everything above it run unchanged over it.
 */
import { isRequestCode, isResponseCode, ResponseCode } from '../coap/codes.js';
import { createMessage, encodeString, type CoapMessage } from '../coap/message.js';
import type { Carrier, CarrierEvents, CarrierStats, ConfirmableListener, Inbound, OutgoingHandle } from '../messaging/carrier.js';
import type { TransmissionParameters } from '../messaging/parameters.js';
import { peerKey, type PeerAddress, type StreamLink, type StreamTransport, type TransportSecurity } from '../transport/transport.js';
import type { Scheduler, Timer } from '../util/scheduler.js';
import { MessageTooLargeError, StreamClosedError, StreamConnection, type StreamSettings } from './connection.js';
import { bertPayloadLimit } from './bert.js';

export interface StreamCarrierOptions {
  transport: StreamTransport;
  scheduler: Scheduler;
  parameters: TransmissionParameters;
  events: CarrierEvents;
  settings?: StreamSettings;
  /** Release a connection after this long without traffic while nothing waits on it. Default 60 s. */
  idleTimeout?: number;
  /** Ping a connection something waits on after this long without traffic (§7.3). Default 25 s. */
  keepAliveInterval?: number;
  /** At most this many connections; a peer connecting beyond it is aborted. Default 10,000. */
  maxConnections?: number;
  /** Requests waiting for a connection that is still opening, per peer. Default 256. */
  maxWaitingPerPeer?: number;
}

/** The empty ACK a reliable carrier reports once a message is on the connection. */
const DELIVERED: CoapMessage = createMessage({ code: 0 });

/** A request received on a connection; answered on the same connection (§3.3). */
class StreamInbound implements Inbound {
  acknowledged = false;
  responded = false;

  constructor(
    readonly message: CoapMessage,
    readonly entry: PeerConnection,
  ) {}

  get peer(): PeerAddress {
    return this.entry.peer;
  }
  get peerKey(): string {
    return this.entry.key;
  }
  get security(): TransportSecurity | undefined {
    return this.entry.link?.security;
  }
}

class Handle implements OutgoingHandle {
  readonly messageId = 0;
  cancelled = false;
  cancel(): void {
    this.cancelled = true;
  }
}

interface Waiting {
  message: CoapMessage;
  listener: ConfirmableListener | undefined;
  handle: Handle;
}

/** One peer's connection, from the moment it is wanted until it has closed. */
class PeerConnection {
  link: StreamLink | undefined;
  connection: StreamConnection | undefined;
  /** Messages for a connection still being opened (TCP/TLS/WS handshake). */
  waiting: Waiting[] = [];
  /** Pings waiting for the connection to open. */
  attachWaiters: Array<{ resolve(): void; reject(error: Error): void }> = [];
  /** Callers of connected() waiting for the peer's CSM. */
  readyWaiters: Array<{ resolve(): void; reject(error: Error): void }> = [];
  /** Requests received and not yet answered: a Release from the peer waits for them (§5.5). */
  unanswered = 0;
  releasedByPeer = false;
  timer: Timer | undefined;
  closed = false;
  messages = 0;

  constructor(
    readonly key: string,
    readonly peer: PeerAddress,
  ) {}
}

export class StreamCarrier implements Carrier {
  readonly reliable = true;
  private readonly connections = new Map<string, PeerConnection>();
  /** Every connection not yet closed, including ones released and no longer in `connections`. */
  private readonly live = new Set<PeerConnection>();
  private readonly serverNames = new Map<string, string>();
  private readonly idleTimeout: number;
  private readonly keepAliveInterval: number;
  private readonly maxConnections: number;
  private readonly maxWaiting: number;
  private readonly stats = { retransmissions: 0, duplicates: 0, formatErrors: 0 };
  private closed = false;

  constructor(private readonly options: StreamCarrierOptions) {
    this.idleTimeout = options.idleTimeout ?? 60_000;
    this.keepAliveInterval = options.keepAliveInterval ?? 25_000;
    this.maxConnections = options.maxConnections ?? 10_000;
    this.maxWaiting = options.maxWaitingPerPeer ?? 256;
    options.transport.setAcceptHandler((link) => this.accept(link));
  }

  get parameters(): TransmissionParameters {
    return this.options.parameters;
  }

  get transport(): StreamTransport {
    return this.options.transport;
  }

  /** The host name to present and check when connecting to `peer` (TLS server name, WebSocket Host). */
  setServerName(peer: PeerAddress, name: string): void {
    this.serverNames.set(peerKey(peer), name);
  }

  /** Whether both sides of the connection to `peer` offered BERT (RFC 8323 §5.3.2, §6). */
  bertAllowed(peer: PeerAddress): boolean {
    return this.connections.get(peerKey(peer))?.connection?.bertAllowed ?? false;
  }

  /**
   * The payload of one BERT block to `peer` (whole 1024-byte units within its Max-Message-Size,
   * `overhead` bytes left for the rest of the message), or undefined when that connection does
   * not allow BERT (not open yet, or a side did not offer it).
   */
  bertPayloadLimit(peer: PeerAddress, overhead?: number): number | undefined {
    const connection = this.connections.get(peerKey(peer))?.connection;
    return connection?.ready && connection.bertAllowed ? bertPayloadLimit(connection.peerMaxMessage, overhead) : undefined;
  }

  /**
   * Resolves once the connection to `peer` (opened now if need be) has the peer's CSM (§3.3), so
   * its Max-Message-Size and BERT are known before a transfer chooses its block size.
   */
  connected(peer: PeerAddress): Promise<void> {
    if (this.closed) return Promise.reject(new StreamClosedError('the carrier is closed'));
    const key = peerKey(peer);
    const entry = this.connections.get(key) ?? this.openConnection(peer, key);
    if (entry.connection?.ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => entry.readyWaiters.push({ resolve, reject }));
  }

  sendConfirmable(message: CoapMessage, peer: PeerAddress, listener: ConfirmableListener): OutgoingHandle {
    return this.sendMessage(message, peer, listener);
  }

  sendNonConfirmable(message: CoapMessage, peer: PeerAddress, onReset?: () => void): number {
    this.sendMessage(message, peer, onReset ? { onAck() {}, onReset, onTimeout() {} } : undefined);
    return 0;
  }

  private sendMessage(message: CoapMessage, peer: PeerAddress, listener: ConfirmableListener | undefined): Handle {
    const handle = new Handle();
    if (this.closed) {
      fail(listener, new StreamClosedError('the carrier is closed'));
      return handle;
    }
    const key = peerKey(peer);
    let entry = this.connections.get(key);
    if (!isRequestCode(message.code)) {
      // A response or notification goes on the connection its request came on (§3.3); with that
      // connection gone, so is the observation (§7.4): the listener hears it as a reset.
      if (!entry?.connection?.open) listener?.onReset();
      else this.write(entry, message, listener, handle);
      return handle;
    }
    entry ??= this.openConnection(peer, key);
    if (entry.connection === undefined) {
      if (entry.waiting.length >= this.maxWaiting) fail(listener, new StreamClosedError(`too many requests waiting for the connection to ${key}`));
      else entry.waiting.push({ message, listener, handle });
      return handle;
    }
    this.write(entry, message, listener, handle);
    return handle;
  }

  private write(entry: PeerConnection, message: CoapMessage, listener: ConfirmableListener | undefined, handle: Handle): void {
    try {
      entry.connection!.send(message);
    } catch (error) {
      fail(listener, error as Error);
      return;
    }
    if (!handle.cancelled) listener?.onAck(DELIVERED);
  }

  respond(inbound: Inbound, response: CoapMessage): void {
    const request = inbound as StreamInbound;
    if (request.responded) return;
    request.responded = true;
    request.acknowledged = true;
    const entry = request.entry;
    entry.unanswered--;
    response.token = request.message.token;
    if (entry.connection?.open) {
      try {
        entry.connection.send(response);
      } catch (error) {
        if (!(error instanceof MessageTooLargeError)) throw error;
        // The peer cannot take this response whole; say so instead of leaving it waiting.
        entry.connection.send(
          createMessage({ code: ResponseCode.InternalServerError, token: request.message.token, payload: encodeString('response exceeds your Max-Message-Size') }),
        );
      }
    }
    if (entry.releasedByPeer && entry.unanswered === 0 && !this.hasPendingRequests(entry)) entry.connection?.end();
  }

  /** Requests we sent on `entry` still waiting for their response (the endpoint's view, through peerBusy). */
  private hasPendingRequests(entry: PeerConnection): boolean {
    return this.options.events.peerBusy?.(entry.key) ?? false;
  }

  acknowledge(inbound: Inbound): void {
    (inbound as StreamInbound).acknowledged = true;
  }

  /** §3.3: a side that does not serve requests answers them with an error, simplest 5.01. */
  reject(inbound: Inbound): void {
    this.respond(inbound, createMessage({ code: ResponseCode.NotImplemented }));
  }

  acknowledgeUnansweredAfter(): void {
    // Nothing to acknowledge: the connection is reliable (RFC 8323 §3.3).
  }

  async ping(peer: PeerAddress): Promise<number> {
    if (this.closed) throw new StreamClosedError('the carrier is closed');
    const key = peerKey(peer);
    const entry = this.connections.get(key) ?? this.openConnection(peer, key);
    if (entry.connection === undefined) {
      await new Promise<void>((resolve, reject) => entry.attachWaiters.push({ resolve, reject }));
    }
    return entry.connection!.ping();
  }

  getStats(): CarrierStats {
    let messages = 0;
    for (const entry of this.connections.values()) messages += entry.unanswered;
    return { peers: this.connections.size, outstandingConfirmables: 0, trackedMessages: messages, ...this.stats };
  }

  /** Releases every connection (§5.5) and closes the transport. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const entry of [...this.live]) {
      if (entry.connection?.open) entry.connection.release('shutting down');
      entry.connection?.end();
      this.onClosed(entry, new StreamClosedError('the carrier closed'));
    }
  }

  // --- connections ------------------------------------------------------------------------

  private openConnection(peer: PeerAddress, key: string): PeerConnection {
    const entry = new PeerConnection(key, peer);
    this.connections.set(key, entry);
    this.live.add(entry);
    this.options.transport.connect(peer, this.serverNames.get(key)).then(
      (link) => {
        if (entry.closed) link.end();
        else this.attach(entry, link);
      },
      (error: Error) => this.onClosed(entry, error),
    );
    return entry;
  }

  private accept(link: StreamLink): void {
    if (this.closed || this.live.size >= this.maxConnections) {
      link.end();
      return;
    }
    const key = peerKey(link.peer);
    const entry = new PeerConnection(key, link.peer);
    const previous = this.connections.get(key);
    if (previous) this.connections.delete(key);
    this.connections.set(key, entry);
    this.live.add(entry);
    this.attach(entry, link);
  }

  private attach(entry: PeerConnection, link: StreamLink): void {
    entry.link = link;
    const connection = new StreamConnection(
      link.framing,
      { write: (frame) => link.write(frame), end: () => link.end() },
      {
        onMessage: (message) => this.onMessage(entry, message),
        onReady: () => {
          for (const waiter of entry.readyWaiters.splice(0)) waiter.resolve();
        },
        onRelease: () => {
          // §5.5: answer what the peer asked before closing; our own requests on it may finish too.
          // New exchanges with this peer open a new connection.
          entry.releasedByPeer = true;
          if (this.connections.get(entry.key) === entry) this.connections.delete(entry.key);
          if (entry.unanswered === 0 && !this.hasPendingRequests(entry)) connection.end();
        },
        onClosed: (error) => this.onClosed(entry, error),
      },
      this.options.scheduler,
      this.options.settings,
    );
    entry.connection = connection;
    // Our CSM and its timer before the handlers: setHandlers may hand over at once what the peer sent
    // while the link was on its way here (a WebSocket client's link comes a promise after 'open').
    // The other way round, a flushed CSM would open the connection before the timer is armed, and
    // that timer would abort it 10 s later; and an answer to a flushed request would precede our
    // CSM, which must be the first message (RFC 8323 §3.3).
    connection.start();
    link.setHandlers({
      data: link.framing === 'length' ? (data) => connection.receiveBytes(data) : (data) => connection.receiveFrame(data),
      closed: (error) => connection.transportClosed(error),
    });
    const waiting = entry.waiting;
    entry.waiting = [];
    for (const w of waiting) this.write(entry, w.message, w.listener, w.handle);
    for (const waiter of entry.attachWaiters.splice(0)) waiter.resolve();
    this.armTimer(entry);
  }

  private onMessage(entry: PeerConnection, message: CoapMessage): void {
    entry.messages++;
    if (isRequestCode(message.code)) {
      if (entry.releasedByPeer) return;
      entry.unanswered++;
      this.options.events.onRequest(message, new StreamInbound(message, entry));
    } else if (isResponseCode(message.code)) {
      // §7.2: an unrecognized token MAY abort the connection; ignoring it is gentler to a peer that
      // raced a cancellation.
      this.options.events.onSeparateResponse(message, new StreamInbound(message, entry));
    }
    // Codes of the reserved classes 1 and 6: nothing defined to do with them.
  }

  /**
   * One timer per connection: keep-alive Ping while busy (§7.3), Release once idle (§5.5). Each
   * check schedules the next at the moment its rule could next apply, always in the future.
   */
  private armTimer(entry: PeerConnection, delay = Math.min(this.idleTimeout, this.keepAliveInterval)): void {
    const connection = entry.connection!;
    const scheduler = this.options.scheduler;
    entry.timer = scheduler.schedule(delay, () => {
      if (!connection.open) return;
      const now = scheduler.now();
      const quiet = now - connection.lastActivity;
      const busy = entry.unanswered > 0 || (this.options.events.peerBusy?.(entry.key) ?? false);
      if (entry.releasedByPeer && !busy) {
        connection.end();
        return;
      }
      if (busy && quiet >= this.keepAliveInterval) {
        connection.ping().catch(() => connection.abort('no Pong to a keep-alive Ping'));
      } else if (!busy && quiet >= this.idleTimeout) {
        if (this.connections.get(entry.key) === entry) this.connections.delete(entry.key);
        connection.release('idle');
        return;
      }
      const next = connection.lastActivity + (busy ? this.keepAliveInterval : this.idleTimeout) - scheduler.now();
      this.armTimer(entry, next > 0 ? next : Math.min(this.idleTimeout, this.keepAliveInterval));
    });
  }

  private onClosed(entry: PeerConnection, error: Error | undefined): void {
    if (entry.closed) return;
    entry.closed = true;
    entry.timer?.cancel();
    this.live.delete(entry);
    if (this.connections.get(entry.key) === entry) this.connections.delete(entry.key);
    const why = error ?? new StreamClosedError('the connection closed');
    // The endpoint first, so its requests fail as a failed session of this peer (SessionError).
    this.options.events.onPeerClosed?.(entry.peer, entry.key, why);
    const waiting = entry.waiting;
    entry.waiting = [];
    for (const w of waiting) fail(w.listener, why);
    for (const waiter of entry.attachWaiters.splice(0)) waiter.reject(why);
    for (const waiter of entry.readyWaiters.splice(0)) waiter.reject(why);
  }
}

function fail(listener: ConfirmableListener | undefined, error: Error): void {
  if (!listener) return;
  if (listener.onError) listener.onError(error);
  else listener.onReset();
}
