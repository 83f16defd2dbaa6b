/**
 * Sans-IO DTLS server endpoint: demultiplexes datagrams by peer address key, answers ClientHellos
 * without a valid cookie statelessly with HelloVerifyRequest (RFC 6347 §4.2.1) and only creates
 * per-peer state after the cookie round trip. The number of connections is bounded.
 */
import { randomBytes } from 'node:crypto';
import {
  DtlsServerConnection,
  emptyOutput,
  type CommonOptions,
  type DtlsOutput,
  type AuthzServerCredentials,
  type PeerIdentity,
  type PskStore,
  type RpkCredentials,
} from './connection.js';
import { CookieJar } from './cookie.js';
import {
  decodeClientHello,
  decodeHandshakeFragments,
  encodeHandshakeFragment,
  encodeHelloVerifyRequest,
  HandshakeType,
  type ClientHello,
} from './handshake-messages.js';
import { ContentType, decodeRecords, DTLS_1_0, encodeRecord, RECORD_HEADER_LENGTH } from './record.js';
import { bufferView } from './bytes.js';
import type { X509Credentials } from './x509.js';

export interface DtlsServerOptions extends CommonOptions {
  pskStore?: PskStore;
  identityHint?: Uint8Array;
  rpk?: RpkCredentials;
  /** AuthorizedPublicKey mode (trust-anchor MacCerts, client_certificate_type 3). */
  authz?: AuthzServerCredentials;
  x509?: X509Credentials;
  requireClientAuth?: boolean;
  /** Upper bound on concurrent connections (default 256). */
  maxConnections?: number;
  /**
   * Upper bound on established connections of one client identity (PSK identity, raw public key
   * or certificate key); default a quarter of maxConnections (at least 1). A handshake that
   * completes beyond it closes (close_notify) the least recently active other connection of that
   * identity: one credential holder, however many addresses it uses, can neither fill the table
   * nor push other identities out, and a client that restarts on a new port still gets in.
   * Connections without a client identity (no client authentication) are not counted.
   */
  maxConnectionsPerIdentity?: number;
  /**
   * Upper bound on connections still handshaking (default: maxConnections). When reached, the
   * oldest half-open handshake is dropped for a new cookie-verified one.
   */
  maxHandshakes?: number;
  /** Cookie secret rotation period (default 60 s). */
  cookieRotationMs?: number;
  /** Require the cookie exchange (default true; RFC 7925 §5.1 recommends it). */
  requireCookie?: boolean;
  /**
   * Forget established connections without authenticated traffic for this long (ms); a
   * close_notify is sent. Default: never (the transport layer may close them instead).
   */
  idleTimeoutMs?: number;
  /**
   * With the table full, an established connection without authenticated traffic for this long
   * (ms) gives its slot to a new cookie-verified client and is sent close_notify (default 60 s).
   * Younger established connections are never displaced by a handshake: an address that merely
   * answers cookies must not be able to push authenticated peers out.
   */
  staleAfterMs?: number;
}

export interface PeerDatagrams {
  peer: string;
  send: Buffer[];
  /** The connection was removed (idle timeout, or its handshake gave up retransmitting). */
  closed?: boolean;
}

interface ParsedHello {
  hello: ClientHello;
  body: Buffer;
  messageSeq: number;
  recordSeq: number;
}

/** Returns the ClientHello if the datagram starts with a complete, unfragmented epoch-0 one. */
function parseInitialClientHello(datagram: Buffer): ParsedHello | undefined {
  // Every datagram passes here; application data (type 23, epoch ≥ 1) is turned away by its header.
  if (datagram.length < RECORD_HEADER_LENGTH || datagram[0] !== ContentType.Handshake || datagram[3] !== 0 || datagram[4] !== 0) return undefined;
  const rec = decodeRecords(datagram)[0];
  if (!rec || rec.type !== ContentType.Handshake || rec.epoch !== 0) return undefined;
  try {
    const f = decodeHandshakeFragments(rec.fragment)[0];
    if (!f || f.msgType !== HandshakeType.ClientHello || f.fragmentOffset !== 0 || f.fragmentLength !== f.length) return undefined;
    return { hello: decodeClientHello(f.body), body: Buffer.from(f.body), messageSeq: f.messageSeq, recordSeq: rec.seq };
  } catch {
    return undefined;
  }
}

const NONE_DISPLACED: readonly PeerDatagrams[] = Object.freeze([]);

export class DtlsServerEngine {
  private readonly opts: DtlsServerOptions;
  private readonly connections = new Map<string, DtlsServerConnection>();
  private readonly cookies: CookieJar;
  private readonly maxConnections: number;
  private readonly maxPerIdentity: number;
  private readonly identities = new WeakMap<DtlsServerConnection, string | undefined>();
  /** close_notify records for connections displaced by newer clients, until the transport takes them. */
  private displaced: PeerDatagrams[] = [];

  constructor(opts: DtlsServerOptions) {
    if (!opts.pskStore && !opts.rpk && !opts.x509 && !opts.authz) throw new Error('DtlsServerEngine needs pskStore, rpk, x509 and/or authz credentials');
    if (opts.x509 && !(opts.x509.certificates?.length && opts.x509.privateKey)) throw new Error('x509 server credentials need certificates and privateKey');
    this.opts = opts;
    this.maxConnections = opts.maxConnections ?? 256;
    this.maxPerIdentity = Math.max(1, opts.maxConnectionsPerIdentity ?? Math.floor(this.maxConnections / 4));
    this.cookies = new CookieJar({ now: opts.now, rotationMs: opts.cookieRotationMs ?? 60_000, random: opts.random ?? randomBytes });
  }

  /** Number of peers with per-connection state. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Address keys of all peers with state. */
  peers(): string[] {
    return [...this.connections.keys()];
  }

  connection(peer: string): DtlsServerConnection | undefined {
    return this.connections.get(peer);
  }

  peerIdentity(peer: string): PeerIdentity | undefined {
    return this.connections.get(peer)?.peerIdentity;
  }

  /** Processes a datagram from `peer` (an address key such as "127.0.0.1:5684"). Never throws. */
  receive(datagram: Uint8Array, peer: string): DtlsOutput {
    try {
      const buf = bufferView(datagram);
      const existing = this.connections.get(peer);
      const hello = parseInitialClientHello(buf);
      if (hello && !(existing && existing.isSameClientHello(hello.hello.random))) {
        return this.onClientHello(hello, peer);
      }
      if (!existing) return emptyOutput();
      const out = existing.receive(buf);
      if (out.appData.length > 0 || out.events.length > 0) existing.lastActivity = this.opts.now();
      if (out.events.some((e) => e.type === 'connected')) this.keepIdentityShare(peer, existing);
      this.reap(peer, existing);
      return out;
    } catch {
      return emptyOutput();
    }
  }

  private onClientHello(h: ParsedHello, peer: string): DtlsOutput {
    const out = emptyOutput();
    if (this.opts.requireCookie !== false && !this.cookies.verify(peer, h.hello)) {
      // Stateless HelloVerifyRequest. §4.2.1: reuse the ClientHello's record sequence number;
      // server_version SHOULD be DTLS 1.0 regardless of the version to be negotiated.
      const cookie = this.cookies.generate(peer, h.hello);
      const body = encodeHelloVerifyRequest({ version: DTLS_1_0, cookie });
      const hs = encodeHandshakeFragment({
        msgType: HandshakeType.HelloVerifyRequest,
        length: body.length,
        messageSeq: h.messageSeq,
        fragmentOffset: 0,
        fragmentLength: body.length,
        body,
      });
      out.send.push(encodeRecord({ type: ContentType.Handshake, version: DTLS_1_0, epoch: 0, seq: h.recordSeq, fragment: hs }));
      return out;
    }
    // Valid cookie: the client proved it receives at this address. §4.2.8 allows starting a new
    // handshake for an address that has an association; the old one is replaced.
    if (!this.connections.has(peer) && this.connections.size >= this.maxConnections && !this.evictOne() && !this.displaceStale()) return out;
    const maxHandshakes = this.opts.maxHandshakes ?? this.maxConnections;
    if (this.handshakingCount() >= maxHandshakes) this.evictOne();
    const conn = new DtlsServerConnection(peer, {
      now: this.opts.now,
      random: this.opts.random,
      cipherSuites: this.opts.cipherSuites,
      mtu: this.opts.mtu,
      initialTimeoutMs: this.opts.initialTimeoutMs,
      maxTimeoutMs: this.opts.maxTimeoutMs,
      maxRetransmissions: this.opts.maxRetransmissions,
      requireExtendedMasterSecret: this.opts.requireExtendedMasterSecret,
      onSecret: this.opts.onSecret,
      alertOnHandshakeAuthFailure: this.opts.alertOnHandshakeAuthFailure,
      pskStore: this.opts.pskStore,
      identityHint: this.opts.identityHint,
      rpk: this.opts.rpk,
      authz: this.opts.authz,
      x509: this.opts.x509,
      wallClock: this.opts.wallClock,
      requireClientAuth: this.opts.requireClientAuth,
    });
    this.connections.delete(peer);
    this.connections.set(peer, conn);
    const res = conn.acceptClientHello(h.body, h.messageSeq, h.recordSeq);
    this.reap(peer, conn);
    return res;
  }

  /** Connections whose handshake has not completed. */
  handshakingCount(): number {
    let n = 0;
    for (const c of this.connections.values()) if (c.state !== 'connected') n++;
    return n;
  }

  /** Drops the oldest connection that is still handshaking; returns false when all are established. */
  private evictOne(): boolean {
    for (const [peer, c] of this.connections) {
      if (c.state !== 'connected') {
        this.connections.delete(peer);
        return true;
      }
    }
    return false;
  }

  /**
   * Closes the established connection idle the longest if it has been idle for `staleAfterMs`:
   * peers that vanished without close_notify (a reboot, a NAT rebinding) would otherwise hold
   * their slots until the idle timeout while new clients are turned away.
   */
  private displaceStale(): boolean {
    let stalest: [string, DtlsServerConnection] | undefined;
    for (const entry of this.connections) {
      if (entry[1].state === 'connected' && (!stalest || entry[1].lastActivity < stalest[1].lastActivity)) stalest = entry;
    }
    if (!stalest || this.opts.now() - stalest[1].lastActivity < (this.opts.staleAfterMs ?? 60_000)) return false;
    const [peer, conn] = stalest;
    this.connections.delete(peer);
    // Bounded for a caller that never takes them: the oldest notice is the one to lose.
    if (this.displaced.length >= this.maxConnections) this.displaced.shift();
    this.displaced.push({ peer, send: conn.close(), closed: true });
    return true;
  }

  /**
   * A connection of `peer` just completed its handshake: if its identity now holds more than its
   * share of established connections, the least recently active others of that identity go.
   */
  private keepIdentityShare(peer: string, conn: DtlsServerConnection): void {
    const identity = this.identityOf(conn);
    if (identity === undefined) return;
    const same: Array<[string, DtlsServerConnection]> = [];
    for (const entry of this.connections) {
      if (entry[0] !== peer && entry[1].state === 'connected' && this.identityOf(entry[1]) === identity) same.push(entry);
    }
    if (same.length < this.maxPerIdentity) return;
    same.sort((a, b) => a[1].lastActivity - b[1].lastActivity);
    for (const [other, c] of same.slice(0, same.length - this.maxPerIdentity + 1)) {
      this.connections.delete(other);
      if (this.displaced.length >= this.maxConnections) this.displaced.shift();
      this.displaced.push({ peer: other, send: c.close(), closed: true });
    }
  }

  /** The identity key of an established connection, computed once (a certificate's key is exported for it). */
  private identityOf(conn: DtlsServerConnection): string | undefined {
    if (this.identities.has(conn)) return this.identities.get(conn);
    const key = identityKey(conn.peerIdentity);
    this.identities.set(conn, key);
    return key;
  }

  /** The close_notify datagrams of connections displaced since the last call (see staleAfterMs). */
  takeDisplaced(): readonly PeerDatagrams[] {
    if (this.displaced.length === 0) return NONE_DISPLACED;
    const out = this.displaced;
    this.displaced = [];
    return out;
  }

  private reap(peer: string, conn: DtlsServerConnection): void {
    if ((conn.state === 'closed' || conn.state === 'failed') && this.connections.get(peer) === conn) this.connections.delete(peer);
  }

  /** Protects application data for an established peer. */
  send(peer: string, data: Uint8Array): Buffer[] {
    const c = this.connections.get(peer);
    if (!c) throw new Error('no DTLS connection for peer');
    const out = c.send(data);
    c.lastActivity = this.opts.now();
    return out;
  }

  /** Sends close_notify to the peer and forgets it. */
  close(peer: string): Buffer[] {
    const c = this.connections.get(peer);
    if (!c) return [];
    this.connections.delete(peer);
    return c.close();
  }

  private idleDeadline(c: DtlsServerConnection): number | undefined {
    const idle = this.opts.idleTimeoutMs;
    if (idle === undefined || c.state !== 'connected') return undefined;
    return c.lastActivity + idle;
  }

  nextTimeout(): number | undefined {
    let min: number | undefined;
    for (const c of this.connections.values()) {
      const retransmit = c.nextTimeout();
      if (retransmit !== undefined && (min === undefined || retransmit < min)) min = retransmit;
      const idle = this.idleDeadline(c);
      if (idle !== undefined && (min === undefined || idle < min)) min = idle;
    }
    return min;
  }

  handleTimeout(now: number = this.opts.now()): PeerDatagrams[] {
    const out: PeerDatagrams[] = [];
    for (const [peer, c] of [...this.connections]) {
      const idle = this.idleDeadline(c);
      if (idle !== undefined && idle <= now) {
        this.connections.delete(peer);
        out.push({ peer, send: c.close(), closed: true });
        continue;
      }
      const t = c.nextTimeout();
      if (t === undefined || t > now) continue;
      const send = c.handleTimeout(now);
      this.reap(peer, c);
      const closed = !this.connections.has(peer);
      if (send.length || closed) out.push(closed ? { peer, send, closed } : { peer, send });
    }
    return out;
  }
}

/** One string per client identity: the PSK identity, or the public key (RPK, or the certificate's). */
function identityKey(identity: PeerIdentity | undefined): string | undefined {
  if (identity === undefined) return undefined;
  if (identity.type === 'psk') return `psk:${identity.identity.toString('hex')}`;
  if (identity.type === 'rpk') return `key:${identity.spki.toString('hex')}`;
  return `key:${(identity.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('hex')}`;
}
