/**
 * CoAP over DTLS 1.2 (RFC 7252 §9): DatagramTransports that drive the sans-IO engine of src/dtls
 * over a UDP socket. One DTLS session per peer, reused by every request to that peer; sessions end
 * after an idle timeout; the numbers of sessions and of concurrent handshakes are bounded; all
 * timers are Scheduler timers. Datagrams reach the messaging layer with a TransportSecurity that
 * names the authenticated peer.
 *
 *   client: the first send() to a peer starts a handshake; CoAP datagrams wait in a bounded queue
 *           until it completes. A failed handshake is reported through the session-error handler,
 *           so the endpoint fails the requests waiting for that peer at once.
 *   server: DtlsServerEngine (stateless cookies, bounded connections) behind the socket.
 */
import { createHash } from 'node:crypto';
import type dgram from 'node:dgram';
import { isIP } from 'node:net';
import {
  DtlsClient,
  DtlsServerEngine,
  type DtlsConnection,
  type DtlsEvent,
  type DtlsSessionSecret,
  type PeerIdentity,
  type AuthzClientCredentials,
  type AuthzServerCredentials,
  type PskStore,
  type RpkCredentials,
  type X509Credentials,
} from '../dtls/index.js';
import { RealScheduler, type Scheduler, type Timer } from '../util/scheduler.js';
import { bindSocket, closeAfterPendingSends, type SocketOptions } from './socket.js';
import type { DatagramHandler, DatagramTransport, PeerAddress, SessionErrorHandler, TransportSecurity } from './transport.js';
import { peerKey, type PeerUnreachableError } from './transport.js';
import { PeerSockets } from './peer-sockets.js';

export interface DtlsPsk {
  /** Text (UTF-8) or bytes. */
  identity: string | Uint8Array;
  /** Text (UTF-8) or bytes. */
  key: string | Uint8Array;
}

/** Credentials of a DTLS client; at least one mode. */
export interface DtlsClientCredentials {
  psk?: DtlsPsk;
  /** Our P-256 key and the server keys we trust (RFC 7250). */
  rpk?: RpkCredentials;
  /** Roots to validate the server's certificate chain, and optionally our own chain and key. */
  x509?: X509Credentials;
  /** AuthorizedPublicKey mode: a MacCert from a trust anchor (src/trust-anchor). */
  authz?: AuthzClientCredentials;
}

/** Credentials of a DTLS server; at least one mode. */
export interface DtlsServerCredentials {
  /** One identity and key, several, or a lookup function. */
  psk?: DtlsPsk | DtlsPsk[] | PskStore;
  /** AuthorizedPublicKey mode: our key and the MacCert verifier (src/trust-anchor). */
  authz?: AuthzServerCredentials;
  identityHint?: string | Uint8Array;
  /** Our P-256 key; the client keys we trust (an empty list: no client authentication). */
  rpk?: RpkCredentials;
  /** Our chain and key; roots for client certificates (none: no client authentication). */
  x509?: X509Credentials;
  /**
   * Ask for and require the client's raw public key or certificate. Default: true when trusted
   * client keys (rpk.trustedPeerKeys non-empty or a function) or client roots (x509.roots) are set.
   */
  requireClientAuth?: boolean;
}

/** The socket's (a client binds '0.0.0.0' unless told otherwise), and the DTLS session's. */
export interface DtlsTransportOptions extends SocketOptions {
  scheduler?: Scheduler;
  /** Cipher suites in preference order (src/dtls/suites.ts); default: the engine's. */
  cipherSuites?: readonly number[];
  /** Largest datagram the handshake emits. Default 1200. */
  mtu?: number;
  /** A session without application data in either direction for this long is closed (close_notify). */
  idleTimeoutMs?: number;
  /** Concurrent sessions (handshaking or established). Client default 64, server default 256. */
  maxSessions?: number;
  /** Concurrent handshakes. Client default 16, server default 64. */
  maxHandshakes?: number;
  /**
   * Server: established sessions one client identity (PSK identity or public key) may hold; a new
   * one beyond it closes that identity's least recently active session. Default maxSessions / 4.
   */
  maxSessionsPerIdentity?: number;
  /**
   * Server: with maxSessions reached, a session idle this long (ms) makes room for a new client and
   * is closed with close_notify; younger sessions are never displaced. Default 60 s.
   */
  staleSessionMs?: number;
  /**
   * Retransmissions of a handshake flight before it fails (§4.2.4). Default 4: a silent peer fails
   * the handshake after about 31 s, before CoAP's MAX_TRANSMIT_WAIT.
   */
  maxRetransmissions?: number;
  /** Initial handshake retransmission timeout. Default 1000 ms. */
  initialTimeoutMs?: number;
  /** Called for every failed session, in addition to the endpoint's handler. */
  onSessionError?: SessionErrorHandler;
  /** Debugging only: each session's secrets, for an NSS key log (src/trace/keylog.ts). Never log them. */
  onSecret?: (secret: DtlsSessionSecret) => void;
}

export interface DtlsClientTransportOptions extends DtlsTransportOptions, DtlsClientCredentials {
  /** CoAP datagrams queued per peer while its handshake runs; more are dropped. Default 32. */
  maxQueuedDatagrams?: number;
}

export interface DtlsServerTransportOptions extends DtlsTransportOptions, DtlsServerCredentials {}

/** A session ended with an alert, timed out, or could not be created. */
export class DtlsSessionError extends Error {
  constructor(
    message: string,
    readonly peer: PeerAddress,
    /** The TLS alert name (e.g. "unknown_psk_identity"), when an alert ended the session. */
    readonly alert?: string,
    readonly origin?: 'local' | 'remote',
  ) {
    super(message);
    this.name = 'DtlsSessionError';
  }
}

export interface DtlsTransportStats {
  /** Sessions with state (handshaking or established). */
  sessions: number;
  handshaking: number;
  handshakesCompleted: number;
  sessionErrors: number;
}

const DEFAULT_IDLE_MS = 10 * 60_000;

const bytes = (v: string | Uint8Array): Buffer => (typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v));

/** The TransportSecurity of an established connection (identity as in transport.ts). */
export function securityOf(conn: DtlsConnection): TransportSecurity | undefined {
  const id = conn.peerIdentity;
  const suite = conn.cipherSuite?.name ?? 'unknown';
  if (!id) return undefined;
  return { kind: 'dtls', mode: id.type, identity: identityString(id), cipherSuite: suite };
}

export function identityString(id: PeerIdentity): string {
  switch (id.type) {
    case 'psk':
      return id.identity.toString('utf8');
    case 'rpk':
      return createHash('sha256').update(id.spki).digest('hex');
    case 'x509':
      return id.subject;
  }
}

/** "1.2.3.4:5" / "[::1]:5" back to an address. */
function parsePeerKey(key: string): PeerAddress {
  const i = key.lastIndexOf(':');
  return { address: key.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(key.slice(i + 1)) };
}

function describeFailure(conn: DtlsConnection, events: readonly DtlsEvent[]): { message: string; alert?: string; origin?: 'local' | 'remote' } {
  const alert = events.find((e): e is Extract<DtlsEvent, { type: 'alert' }> => e.type === 'alert' && e.level === 2);
  if (alert?.origin === 'remote') return { message: `DTLS handshake failed: peer sent fatal alert ${alert.name}`, alert: alert.name, origin: 'remote' };
  if (alert) return { message: `DTLS handshake failed: ${conn.failureReason ?? alert.name} (sent alert ${alert.name})`, alert: alert.name, origin: 'local' };
  return { message: `DTLS handshake failed: ${conn.failureReason ?? 'unknown reason'}` };
}

abstract class DtlsTransportBase implements DatagramTransport {
  readonly scheme = 'coaps' as const;
  protected handler: DatagramHandler = () => {};
  protected sessionErrorHandlers: SessionErrorHandler[] = [];
  protected closed = false;
  protected readonly scheduler: Scheduler;
  protected readonly counters = { handshakesCompleted: 0, sessionErrors: 0 };

  protected constructor(
    protected readonly socket: dgram.Socket,
    protected readonly options: DtlsTransportOptions,
  ) {
    this.scheduler = options.scheduler ?? new RealScheduler();
    if (options.onSessionError) this.sessionErrorHandlers.push(options.onSessionError);
    socket.on('message', (data, rinfo) => this.guardedDatagram(data, { address: rinfo.address, port: rinfo.port }));
  }

  protected guardedDatagram(data: Buffer, peer: PeerAddress): void {
    try {
      this.onDatagram(data, peer);
    } catch (error) {
      // Nothing escapes the socket handler (issue 8, robustness).
      process.emitWarning(`coapsec: DTLS datagram handling failed: ${(error as Error).stack ?? error}`);
    }
  }

  protected abstract onDatagram(data: Buffer, peer: PeerAddress): void;

  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }

  setSessionErrorHandler(handler: SessionErrorHandler): void {
    this.sessionErrorHandlers.push(handler);
  }

  localAddress(): PeerAddress {
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  protected write(datagrams: readonly Buffer[], peer: PeerAddress): void {
    if (this.closed) return;
    for (const d of datagrams) this.socket.send(d, peer.port, peer.address);
  }

  protected deliver(data: Buffer, peer: PeerAddress, security: TransportSecurity | undefined): void {
    try {
      this.handler(data, peer, security);
    } catch (error) {
      process.emitWarning(`coapsec: datagram handler failed: ${(error as Error).stack ?? error}`);
    }
  }

  protected reportError(error: DtlsSessionError | PeerUnreachableError): void {
    this.counters.sessionErrors++;
    for (const h of this.sessionErrorHandlers) {
      try {
        h(error.peer, error);
      } catch (e) {
        process.emitWarning(`coapsec: session error handler failed: ${(e as Error).stack ?? e}`);
      }
    }
  }

  protected closeSocket(): Promise<void> {
    return closeAfterPendingSends(this.socket);
  }

  abstract send(data: Uint8Array, peer: PeerAddress): void;
  abstract close(): Promise<void>;
}

// =============================================================================================
// Client

interface ClientSession {
  readonly key: string;
  readonly peer: PeerAddress;
  readonly conn: DtlsClient;
  queue: Buffer[];
  lastActivity: number;
  timer: Timer | undefined;
  security: TransportSecurity | undefined;
}

export class DtlsClientTransport extends DtlsTransportBase {
  private readonly sessions = new Map<string, ClientSession>();
  /**
   * The session of the peer last sent to or heard from: a client mostly talks to one server, and
   * this spares building the peer's key string and a Map lookup per datagram. Cleared with the session.
   */
  private lastSession: ClientSession | undefined;
  /** The last setServerName call (called per request): repeated calls return at once. */
  private lastServerName: { address: string; port: number; host: string } | undefined;
  /** Host names of peers (from URIs), for SNI and the certificate host check. */
  private readonly serverNames = new Map<string, string>();
  private readonly clientOptions: DtlsClientTransportOptions;
  /**
   * A connected socket per server, so an ICMP port unreachable ends its handshake at once instead
   * of after every retransmission; unref'd while no request waits (peer-sockets.ts).
   */
  private readonly peerSockets: PeerSockets;

  private constructor(socket: dgram.Socket, options: DtlsClientTransportOptions) {
    super(socket, options);
    this.clientOptions = options;
    this.peerSockets = new PeerSockets(
      socket,
      {
        host: options.host ?? '0.0.0.0',
        ...(options.receiveBufferSize ? { receiveBufferSize: options.receiveBufferSize } : {}),
        ...(options.sendBufferSize ? { sendBufferSize: options.sendBufferSize } : {}),
      },
      {
        onMessage: (data, peer) => this.guardedDatagram(data, peer),
        onUnreachable: (peer, error) => {
          const session = this.sessions.get(peerKey(peer));
          if (session) this.removeSession(session);
          this.reportError(error);
        },
      },
    );
  }

  setBusy(busy: boolean): void {
    this.peerSockets.setRef(busy);
  }

  protected override write(datagrams: readonly Buffer[], peer: PeerAddress): void {
    if (this.closed) return;
    for (const d of datagrams) this.peerSockets.send(d, peer);
  }

  static override async bind(options: DtlsClientTransportOptions): Promise<DtlsClientTransport> {
    if (!options.psk && !options.rpk && !options.x509 && !options.authz) throw new Error('a DTLS client needs psk, rpk, x509 or authz credentials');
    return new DtlsClientTransport(await bindSocket({ host: '0.0.0.0', ...options }), options);
  }

  /**
   * The host name (or IP literal) under which `peer` was addressed: sent as SNI for names and
   * checked against the server's certificate. Without it, the certificate must match the IP.
   */
  setServerName(peer: PeerAddress, host: string): void {
    const last = this.lastServerName;
    if (last !== undefined && last.port === peer.port && last.address === peer.address && last.host === host) return;
    this.lastServerName = { address: peer.address, port: peer.port, host };
    const key = peerKey(peer);
    if (this.serverNames.get(key) === host) return;
    if (this.serverNames.size >= 1024) this.serverNames.delete(this.serverNames.keys().next().value!);
    this.serverNames.set(key, host);
  }

  stats(): DtlsTransportStats {
    let handshaking = 0;
    for (const s of this.sessions.values()) if (s.conn.state !== 'connected') handshaking++;
    return { sessions: this.sessions.size, handshaking, ...this.counters };
  }

  /** The security of the established session with `peer`, if any. */
  sessionSecurity(peer: PeerAddress): TransportSecurity | undefined {
    return this.sessionOf(peer)?.security;
  }

  /** The session with `peer`, if any (the last peer's without a lookup). */
  private sessionOf(peer: PeerAddress): ClientSession | undefined {
    const last = this.lastSession;
    if (last !== undefined && last.peer.port === peer.port && last.peer.address === peer.address) return last;
    const session = this.sessions.get(peerKey(peer));
    if (session !== undefined) this.lastSession = session;
    return session;
  }

  override send(data: Uint8Array, peer: PeerAddress): void {
    if (this.closed) return;
    const session = this.sessionOf(peer) ?? this.open(peer, peerKey(peer));
    if (!session) return;
    if (session.conn.state === 'connected') {
      try {
        this.write(session.conn.send(data), peer);
        session.lastActivity = this.scheduler.now();
      } catch (error) {
        this.failSession(session, new DtlsSessionError(`DTLS send failed: ${(error as Error).message}`, peer));
      }
      return;
    }
    if (session.queue.length < (this.clientOptions.maxQueuedDatagrams ?? 32)) session.queue.push(Buffer.from(data));
  }

  private open(peer: PeerAddress, key: string): ClientSession | undefined {
    const maxSessions = this.options.maxSessions ?? 64;
    const maxHandshakes = this.options.maxHandshakes ?? 16;
    let handshaking = 0;
    for (const s of this.sessions.values()) if (s.conn.state !== 'connected') handshaking++;
    let refusal: string | undefined;
    if (handshaking >= maxHandshakes) refusal = `too many concurrent DTLS handshakes (${maxHandshakes})`;
    else if (this.sessions.size >= maxSessions && !this.evictIdlest()) refusal = `too many DTLS sessions (${maxSessions})`;
    if (refusal) {
      // Reported after the current call: the caller is still inside its send.
      const error = new DtlsSessionError(refusal, peer);
      queueMicrotask(() => this.reportError(error));
      return undefined;
    }
    const o = this.clientOptions;
    const name = this.serverNames.get(key);
    const host = name?.replace(/^\[|\]$/g, '');
    let conn: DtlsClient;
    try {
      conn = new DtlsClient({
        now: () => this.scheduler.now(),
        ...(o.psk ? { psk: { identity: bytes(o.psk.identity), key: bytes(o.psk.key) } } : {}),
        ...(o.rpk ? { rpk: o.rpk } : {}),
        ...(o.authz ? { authz: o.authz } : {}),
        ...(o.x509 ? { x509: o.x509, verifyHost: host ?? peer.address } : {}),
        ...(host && !isIP(host) ? { serverName: host } : {}),
        ...(o.cipherSuites ? { cipherSuites: o.cipherSuites } : {}),
        ...(o.mtu ? { mtu: o.mtu } : {}),
        maxRetransmissions: o.maxRetransmissions ?? 4,
        ...(o.initialTimeoutMs ? { initialTimeoutMs: o.initialTimeoutMs } : {}),
        ...(o.onSecret ? { onSecret: o.onSecret } : {}),
      });
    } catch (error) {
      const e = new DtlsSessionError(`cannot start DTLS: ${(error as Error).message}`, peer);
      queueMicrotask(() => this.reportError(e));
      return undefined;
    }
    const session: ClientSession = { key, peer, conn, queue: [], lastActivity: this.scheduler.now(), timer: undefined, security: undefined };
    this.sessions.set(key, session);
    this.write(conn.start(), peer);
    this.arm(session);
    return session;
  }

  /** Closes the established session idle the longest; false if every session is handshaking. */
  private evictIdlest(): boolean {
    let idlest: ClientSession | undefined;
    for (const s of this.sessions.values()) {
      if (s.conn.state === 'connected' && (!idlest || s.lastActivity < idlest.lastActivity)) idlest = s;
    }
    if (!idlest) return false;
    this.closeSession(idlest);
    return true;
  }

  protected override onDatagram(data: Buffer, peer: PeerAddress): void {
    const session = this.sessionOf(peer);
    if (!session) return;
    const conn = session.conn;
    const out = conn.receive(data);
    this.write(out.send, peer);
    for (const e of out.events) {
      if (e.type === 'connected') {
        this.counters.handshakesCompleted++;
        session.security = securityOf(conn);
        session.lastActivity = this.scheduler.now();
        const queued = session.queue;
        session.queue = [];
        for (const d of queued) this.write(conn.send(d), peer);
      }
    }
    if (conn.state === 'failed') {
      const f = describeFailure(conn, out.events);
      this.failSession(session, new DtlsSessionError(f.message, peer, f.alert, f.origin));
      return;
    }
    if (conn.state === 'closed') {
      // close_notify from the server: the next request starts a new handshake.
      this.removeSession(session);
      return;
    }
    if (out.appData.length > 0) session.lastActivity = this.scheduler.now();
    for (const app of out.appData) this.deliver(app, peer, session.security);
    this.arm(session);
  }

  private arm(session: ClientSession): void {
    const idle = this.options.idleTimeoutMs ?? DEFAULT_IDLE_MS;
    const retransmit = session.conn.nextTimeout();
    const at = session.conn.state === 'connected' ? session.lastActivity + idle : retransmit;
    const due = retransmit !== undefined && at !== undefined ? Math.min(retransmit, at) : (retransmit ?? at);
    if (session.timer && !session.timer.cancelled && session.timer.at === due) return;
    // Established: activity only pushes the idle deadline later, so an earlier timer may stay;
    // onTimer re-checks lastActivity and re-arms. This spares a reschedule per datagram.
    if (session.conn.state === 'connected' && retransmit === undefined && session.timer && !session.timer.cancelled && due !== undefined && session.timer.at <= due) return;
    session.timer?.cancel();
    session.timer = due === undefined ? undefined : this.scheduler.schedule(due - this.scheduler.now(), () => this.onTimer(session));
  }

  private onTimer(session: ClientSession): void {
    session.timer = undefined;
    if (this.sessions.get(session.key) !== session) return;
    const now = this.scheduler.now();
    const conn = session.conn;
    if (conn.state === 'connected' && now >= session.lastActivity + (this.options.idleTimeoutMs ?? DEFAULT_IDLE_MS)) {
      this.closeSession(session);
      return;
    }
    this.write(conn.handleTimeout(now), session.peer);
    if (conn.state === 'failed') {
      this.failSession(session, new DtlsSessionError(`DTLS handshake with ${session.key} failed: ${conn.failureReason ?? 'timed out'}`, session.peer));
      return;
    }
    this.arm(session);
  }

  private removeSession(session: ClientSession): void {
    session.timer?.cancel();
    session.timer = undefined;
    session.queue = [];
    if (this.lastSession === session) this.lastSession = undefined;
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
  }

  private closeSession(session: ClientSession): void {
    this.removeSession(session);
    this.write(session.conn.close(), session.peer);
  }

  private failSession(session: ClientSession, error: DtlsSessionError): void {
    this.removeSession(session);
    this.reportError(error);
  }

  /** Sends close_notify to every peer and closes the sockets. */
  override async close(): Promise<void> {
    if (this.closed) return;
    for (const s of [...this.sessions.values()]) this.closeSession(s);
    this.closed = true;
    await this.peerSockets.close();
  }
}

// =============================================================================================
// Server

export class DtlsServerTransport extends DtlsTransportBase {
  readonly engine: DtlsServerEngine;
  private timer: Timer | undefined;
  private readonly security = new WeakMap<DtlsConnection, TransportSecurity>();
  /**
   * The address key of the peer last heard from or sent to, reused while the peer stays the same
   * (the engine's Map then hashes the same string again, which V8 caches, instead of a new one).
   */
  private lastPeer = { address: '', port: -1, key: '' };

  private constructor(socket: dgram.Socket, options: DtlsServerTransportOptions) {
    super(socket, options);
    const psk = options.psk;
    let pskStore: PskStore | undefined;
    if (typeof psk === 'function') pskStore = psk;
    else if (psk) {
      const keys = new Map((Array.isArray(psk) ? psk : [psk]).map((p) => [bytes(p.identity).toString('latin1'), bytes(p.key)]));
      pskStore = (identity) => keys.get(identity.toString('latin1'));
    }
    const trusted = options.rpk?.trustedPeerKeys;
    const requireClientAuth =
      options.requireClientAuth ?? ((trusted !== undefined && (typeof trusted === 'function' || trusted.length > 0)) || (options.x509?.roots.length ?? 0) > 0);
    this.engine = new DtlsServerEngine({
      now: () => this.scheduler.now(),
      ...(pskStore ? { pskStore } : {}),
      ...(options.identityHint !== undefined ? { identityHint: bytes(options.identityHint) } : {}),
      ...(options.rpk ? { rpk: options.rpk } : {}),
      ...(options.authz ? { authz: options.authz } : {}),
      ...(options.x509 ? { x509: options.x509 } : {}),
      requireClientAuth,
      ...(options.onSecret ? { onSecret: options.onSecret } : {}),
      ...(options.cipherSuites ? { cipherSuites: options.cipherSuites } : {}),
      ...(options.mtu ? { mtu: options.mtu } : {}),
      maxConnections: options.maxSessions ?? 256,
      maxHandshakes: options.maxHandshakes ?? 64,
      ...(options.maxSessionsPerIdentity !== undefined ? { maxConnectionsPerIdentity: options.maxSessionsPerIdentity } : {}),
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_MS,
      ...(options.staleSessionMs !== undefined ? { staleAfterMs: options.staleSessionMs } : {}),
      ...(options.maxRetransmissions !== undefined ? { maxRetransmissions: options.maxRetransmissions } : {}),
      ...(options.initialTimeoutMs ? { initialTimeoutMs: options.initialTimeoutMs } : {}),
    });
  }

  static override async bind(options: DtlsServerTransportOptions): Promise<DtlsServerTransport> {
    if (!options.psk && !options.rpk && !options.x509 && !options.authz) throw new Error('a DTLS server needs psk, rpk, x509 or authz credentials');
    const socket = await bindSocket(options);
    try {
      return new DtlsServerTransport(socket, options);
    } catch (error) {
      socket.close();
      throw error;
    }
  }

  stats(): DtlsTransportStats {
    return { sessions: this.engine.connectionCount, handshaking: this.engine.handshakingCount(), ...this.counters };
  }

  private keyOf(peer: PeerAddress): string {
    const last = this.lastPeer;
    if (last.port === peer.port && last.address === peer.address) return last.key;
    const key = peerKey(peer);
    this.lastPeer = { address: peer.address, port: peer.port, key };
    return key;
  }

  protected override onDatagram(data: Buffer, peer: PeerAddress): void {
    const key = this.keyOf(peer);
    const out = this.engine.receive(data, key);
    this.write(out.send, peer);
    for (const d of this.engine.takeDisplaced()) this.write(d.send, parsePeerKey(d.peer));
    const conn = this.engine.connection(key);
    for (const e of out.events) {
      if (e.type === 'connected' && conn) {
        this.counters.handshakesCompleted++;
        const security = securityOf(conn);
        if (security) this.security.set(conn, security);
      } else if (e.type === 'alert' && e.level === 2) {
        const message = e.origin === 'remote' ? `peer sent fatal alert ${e.name}` : `DTLS handshake failed, sent alert ${e.name}`;
        this.reportError(new DtlsSessionError(message, peer, e.name, e.origin));
      }
    }
    if (out.appData.length > 0 && conn) {
      const security = this.security.get(conn);
      for (const app of out.appData) this.deliver(app, peer, security);
    }
    // nextTimeout() visits every connection, so not once per datagram: a deadline can only move
    // earlier when the engine sends (a new or retransmitted flight) or a connection changes state;
    // application data only pushes an idle deadline later, which the pending timer re-checks.
    if (out.send.length > 0 || out.events.length > 0 || this.timer === undefined || this.timer.cancelled) this.arm();
  }

  override send(data: Uint8Array, peer: PeerAddress): void {
    if (this.closed) return;
    const key = this.keyOf(peer);
    if (this.engine.connection(key)?.state !== 'connected') return; // no session (expired or never made): drop
    try {
      this.write(this.engine.send(key, data), peer);
    } catch (error) {
      this.reportError(new DtlsSessionError(`DTLS send failed: ${(error as Error).message}`, peer));
    }
  }

  /** One Scheduler timer for the engine: rearmed when the engine's next deadline moves earlier. */
  private arm(): void {
    const next = this.engine.nextTimeout();
    if (next === undefined || this.closed) return;
    if (this.timer && !this.timer.cancelled && this.timer.at <= next) return;
    this.timer?.cancel();
    this.timer = this.scheduler.schedule(next - this.scheduler.now(), () => this.onTimer());
  }

  private onTimer(): void {
    this.timer = undefined;
    if (this.closed) return;
    for (const { peer, send, closed } of this.engine.handleTimeout(this.scheduler.now())) {
      const address = parsePeerKey(peer);
      this.write(send, address);
      if (closed && send.length === 0) this.reportError(new DtlsSessionError('DTLS handshake timed out', address));
    }
    this.arm();
  }

  /** Sends close_notify to every peer and closes the socket. */
  override async close(): Promise<void> {
    if (this.closed) return;
    for (const key of this.engine.peers()) this.write(this.engine.close(key), parsePeerKey(key));
    this.closed = true;
    this.timer?.cancel();
    await this.closeSocket();
  }
}
