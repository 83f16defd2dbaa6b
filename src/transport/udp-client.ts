/**
 * CoAP over plain UDP for a client: one connected socket per peer, unref'd while nothing waits.
 *
 * Why connected sockets: Linux reports an ICMP error (port or host unreachable) only to a socket
 * connected to the address it concerns (or one with IP_RECVERR, which Node does not offer). On the
 * shared, unconnected socket of a server the error is lost and a request to a closed port waits
 * out every retransmission (RFC 7252 §4.8: 93 s). libcoap's client sessions have the same design: a
 * connected socket per session, so ECONNREFUSED ends the request at once. Datagrams from other
 * addresses never reach a connected socket, which also matches RFC 7252 §5.3.2 (a response must
 * come from the endpoint the request went to).
 *
 * Why unref: a client nobody closed must not keep a script alive forever (node-coap's Agent unrefs
 * its socket too). The exchange layer says when a request or an observation waits (setBusy); only
 * then are the sockets ref'd, so a pending request still keeps the process alive (the scheduler's
 * timers are unref'd; the socket is what keeps the event loop running).
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { bindSocket, closeAfterPendingSends, type SocketOptions } from './socket.js';
import { PeerUnreachableError, peerKey, type DatagramHandler, type DatagramTransport, type PeerAddress, type SessionErrorHandler } from './transport.js';

export interface UdpClientTransportOptions extends SocketOptions {
  /**
   * Connected sockets at most (each is a file descriptor). Peers beyond them share one unconnected
   * socket, where an unreachable port is noticed only by the request's timeout. Default 64.
   */
  maxPeerSockets?: number;
}

/** Datagrams sent while a peer's socket is still connecting (CoAP retransmits anything dropped). */
const MAX_QUEUED_WHILE_CONNECTING = 32;

/** errno codes an ICMP error becomes on a connected socket: nothing is there to answer. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN']);

/** A connected socket for one peer; `queue` holds datagrams until it is connected. */
interface PeerSocket {
  readonly socket: dgram.Socket;
  queue: Uint8Array[] | undefined;
}

export class UdpClientTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  private handler: DatagramHandler = () => {};
  private readonly sessionErrorHandlers: SessionErrorHandler[] = [];
  private readonly peers = new Map<string, PeerSocket>();
  private readonly maxPeerSockets: number;
  private busy = false;
  private closed = false;

  private constructor(
    /** For localAddress() and for peers beyond maxPeerSockets (or whose socket could not be made). */
    private readonly shared: dgram.Socket,
    private readonly options: UdpClientTransportOptions,
  ) {
    this.maxPeerSockets = options.maxPeerSockets ?? 64;
    this.receiveOn(shared);
    shared.unref();
  }

  static async bind(options: UdpClientTransportOptions = {}): Promise<UdpClientTransport> {
    return new UdpClientTransport(await bindSocket(options), options);
  }

  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }

  setSessionErrorHandler(handler: SessionErrorHandler): void {
    this.sessionErrorHandlers.push(handler);
  }

  setBusy(busy: boolean): void {
    if (busy === this.busy || this.closed) return;
    this.busy = busy;
    for (const socket of this.sockets()) {
      if (busy) socket.ref();
      else socket.unref();
    }
  }

  send(data: Uint8Array, peer: PeerAddress): void {
    if (this.closed) return;
    const key = peerKey(peer);
    const connected = this.peers.get(key) ?? this.connect(key, peer);
    if (!connected) {
      this.shared.send(data, peer.port, peer.address);
    } else if (connected.queue) {
      if (connected.queue.length < MAX_QUEUED_WHILE_CONNECTING) connected.queue.push(data);
    } else {
      connected.socket.send(data);
    }
  }

  localAddress(): PeerAddress {
    const a = this.shared.address();
    return { address: a.address, port: a.port };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const sockets = [...this.sockets()];
    this.peers.clear();
    await Promise.all(sockets.map((socket) => closeAfterPendingSends(socket)));
  }

  /** Peer sockets are for IP literals only: a host name would be resolved once and kept forever. */
  private connect(key: string, peer: PeerAddress): PeerSocket | undefined {
    const family = isIP(peer.address);
    if (family === 0 || this.peers.size >= this.maxPeerSockets) return undefined;
    const local = this.shared.address();
    if ((family === 6) !== (local.family === 'IPv6')) return undefined;
    let socket: dgram.Socket;
    try {
      socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
    } catch {
      return undefined;
    }
    const entry: PeerSocket = { socket, queue: [] };
    this.peers.set(key, entry);
    if (!this.busy) socket.unref();
    this.receiveOn(socket);
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code && UNREACHABLE_CODES.has(error.code)) this.reportUnreachable(peer, error.code);
    });
    const abandon = (): void => {
      // No socket of its own (out of descriptors, say): this peer goes through the shared one.
      if (this.peers.get(key) === entry) this.peers.delete(key);
      const queued = entry.queue ?? [];
      entry.queue = undefined;
      socket.close();
      if (!this.closed) for (const data of queued) this.shared.send(data, peer.port, peer.address);
    };
    socket.once('error', onSetupError);
    function onSetupError(): void {
      abandon();
    }
    socket.bind(0, this.options.host ?? '127.0.0.1', () => {
      if (this.closed) return;
      socket.connect(peer.port, peer.address, () => {
        socket.off('error', onSetupError);
        if (this.closed) return;
        if (this.options.receiveBufferSize) socket.setRecvBufferSize(this.options.receiveBufferSize);
        if (this.options.sendBufferSize) socket.setSendBufferSize(this.options.sendBufferSize);
        const queued = entry.queue ?? [];
        entry.queue = undefined;
        for (const data of queued) socket.send(data);
      });
    });
    return entry;
  }

  private receiveOn(socket: dgram.Socket): void {
    socket.on('message', (data, rinfo) => {
      try {
        this.handler(data, { address: rinfo.address, port: rinfo.port }, undefined);
      } catch (error) {
        // A handler bug must never take the socket down with it.
        process.emitWarning(`coapsec: datagram handler failed: ${(error as Error).stack ?? error}`);
      }
    });
  }

  private reportUnreachable(peer: PeerAddress, code: string): void {
    const error = new PeerUnreachableError(peer, code);
    for (const handler of this.sessionErrorHandlers) handler(peer, error);
  }

  private *sockets(): Iterable<dgram.Socket> {
    yield this.shared;
    for (const entry of this.peers.values()) yield entry.socket;
  }
}
