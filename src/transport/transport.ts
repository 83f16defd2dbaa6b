/**
 * What the messaging layer needs from a datagram transport. UDP, DTLS over UDP and test fakes
 * implement it; the layers above see only datagrams and an endpoint context (architecture rule 5).
 */

export interface PeerAddress {
  readonly address: string;
  readonly port: number;
}

/** How a datagram (DTLS) or connection (TLS, RFC 8323 §9) was secured below CoAP; absent for plain UDP, TCP and WS. */
export interface TransportSecurity {
  readonly kind: 'dtls' | 'tls';
  /**
   * The authenticated peer: the PSK identity (UTF-8), for a raw public key the SHA-256 hash of its
   * SubjectPublicKeyInfo (hex), for a certificate its subject ("CN=..., O=...").
   */
  readonly identity: string;
  readonly mode: 'psk' | 'rpk' | 'x509' | 'derived-key' | 'authorized-public-key';
  readonly cipherSuite: string;
}

export type DatagramHandler = (data: Buffer, peer: PeerAddress, security: TransportSecurity | undefined) => void;

export interface DatagramTransport {
  /** The URI scheme this transport serves: coap (UDP) or coaps (DTLS). */
  readonly scheme: 'coap' | 'coaps';
  send(data: Uint8Array, peer: PeerAddress): void;
  /** Exactly one handler; it must not throw (transports guard it anyway). */
  setHandler(handler: DatagramHandler): void;
  localAddress(): PeerAddress;
  close(): Promise<void>;
  /**
   * Secure transports report a session with a peer that failed (handshake alert, handshake timeout,
   * session limits), so requests waiting for that peer can fail at once instead of timing out.
   */
  setSessionErrorHandler?(handler: SessionErrorHandler): void;
  /**
   * Client transports: whether a request or an observation waits on the network. While not busy
   * their sockets are unref'd, so an unclosed client does not keep the process alive; server
   * transports keep theirs ref'd (a server runs until closed) and need not implement this.
   */
  setBusy?(busy: boolean): void;
}

export type SessionErrorHandler = (peer: PeerAddress, error: Error) => void;

/**
 * The network said nothing is there: an ICMP port or host unreachable arrived for a datagram to
 * `peer` (errno ECONNREFUSED, EHOSTUNREACH, ...). Reported through the SessionErrorHandler.
 */
export class PeerUnreachableError extends Error {
  constructor(
    readonly peer: PeerAddress,
    readonly code: string,
  ) {
    super(code === 'ECONNREFUSED' ? `${peerKey(peer)} is unreachable: nothing listens on that port (ICMP port unreachable)` : `${peerKey(peer)} is unreachable (${code})`);
    this.name = 'PeerUnreachableError';
  }
}

/** The URI schemes of the carriers (RFC 7252 §6, RFC 8323 §8). */
export type TransportScheme = 'coap' | 'coaps' | 'coap+tcp' | 'coaps+tcp' | 'coap+ws' | 'coaps+ws';
export type StreamScheme = 'coap+tcp' | 'coaps+tcp' | 'coap+ws' | 'coaps+ws';

/**
 * One connection of a stream transport (TCP, TLS, WebSocket). `length` framing is RFC 8323 §3.2
 * over a byte stream; `websocket` framing is §4.2, where each write is one WebSocket message.
 */
export interface StreamLink {
  readonly peer: PeerAddress;
  readonly framing: 'length' | 'websocket';
  readonly security: TransportSecurity | undefined;
  write(data: Uint8Array): void;
  /** Graceful close once queued writes are out. */
  end(): void;
  /** Exactly one set of handlers; `closed` is called once. */
  setHandlers(handlers: { data(data: Uint8Array): void; closed(error: Error | undefined): void }): void;
}

/** What the stream carrier needs from TCP, TLS or WebSockets (src/transport/tcp.ts, tls.ts, ws.ts). */
export interface StreamTransport {
  readonly scheme: StreamScheme;
  /** Opens a connection; `serverName` is the URI host, for TLS certificate checks and the WebSocket Host header. */
  connect(peer: PeerAddress, serverName?: string): Promise<StreamLink>;
  /** Connections peers open to us (a listening transport); a client-only transport never calls it. */
  setAcceptHandler(handler: (link: StreamLink) => void): void;
  localAddress(): PeerAddress;
  close(): Promise<void>;
}

export type AnyTransport = DatagramTransport | StreamTransport;

export const isStreamTransport = (transport: AnyTransport): transport is StreamTransport =>
  typeof (transport as Partial<StreamTransport>).connect === 'function';

/** "127.0.0.1:5683" or "[::1]:5683": the key under which per-peer state is kept. */
export function peerKey(peer: PeerAddress): string {
  return peer.address.includes(':') ? `[${peer.address}]:${peer.port}` : `${peer.address}:${peer.port}`;
}
