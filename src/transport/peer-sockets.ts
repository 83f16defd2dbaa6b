/**
 * A client's sockets: one connected UDP socket per peer beside a shared, unconnected one.
 *
 * Why connected sockets: Linux reports an ICMP error (port or host unreachable) only to a socket
 * connected to the address it concerns (or one with IP_RECVERR, which Node does not offer). On an
 * unconnected socket the error is lost and a request to a closed port waits out every
 * retransmission (RFC 7252 §4.8: 93 s). libcoap's client sessions have the same design: a connected
 * socket per session, so ECONNREFUSED ends the request at once. Datagrams from other addresses never
 * reach a connected socket, which also matches RFC 7252 §5.3.2 (a response must come from the
 * endpoint the request went to).
 *
 * Why unref: a client nobody closed must not keep a script alive forever (node-coap's Agent unrefs
 * its socket too). Its owner says when something waits on the network (setRef); only then are the
 * sockets ref'd, so a pending request still keeps the process alive (the scheduler's timers are
 * unref'd; the sockets are what keep the event loop running).
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { closeAfterPendingSends } from './socket.js';
import { PeerUnreachableError, peerKey, type PeerAddress } from './transport.js';

export interface PeerSocketsOptions {
  /** Local address the peer sockets bind (the shared socket's). */
  host?: string;
  receiveBufferSize?: number;
  sendBufferSize?: number;
  /**
   * Connected sockets at most (each is a file descriptor). Peers beyond them share the unconnected
   * socket, where an unreachable port is noticed only by the request's timeout. Default 64.
   */
  maxPeerSockets?: number;
}

export interface PeerSocketsEvents {
  /** A datagram from `peer` on its connected socket (the shared socket's are the owner's). */
  onMessage(data: Buffer, peer: PeerAddress): void;
  onUnreachable(peer: PeerAddress, error: PeerUnreachableError): void;
}

/** Datagrams sent while a peer's socket is still connecting (CoAP and DTLS retransmit anything dropped). */
const MAX_QUEUED_WHILE_CONNECTING = 32;

/** errno codes an ICMP error becomes on a connected socket: nothing is there to answer. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN']);

/** A connected socket for one peer; `queue` holds datagrams until it is connected. */
interface PeerSocket {
  readonly socket: dgram.Socket;
  queue: Uint8Array[] | undefined;
}

export class PeerSockets {
  private readonly peers = new Map<string, PeerSocket>();
  private readonly maxPeerSockets: number;
  private referenced = false;
  private closed = false;
  /**
   * The peer of the latest send and its socket: most datagrams go to the peer of the one before,
   * and comparing address and port costs less than building its key and a Map lookup per datagram.
   * Always an entry of `peers` (cleared when that entry goes).
   */
  private lastAddress = '';
  private lastPort = -1;
  private lastSocket: PeerSocket | undefined;

  constructor(
    /** For peers beyond maxPeerSockets, host names, or peers whose socket could not be made. */
    private readonly shared: dgram.Socket,
    private readonly options: PeerSocketsOptions,
    private readonly events: PeerSocketsEvents,
  ) {
    this.maxPeerSockets = options.maxPeerSockets ?? 64;
    shared.unref();
  }

  /** Whether the sockets keep the process alive (ref'd) or not (unref'd, the initial state). */
  setRef(referenced: boolean): void {
    if (referenced === this.referenced || this.closed) return;
    this.referenced = referenced;
    for (const socket of this.sockets()) {
      if (referenced) socket.ref();
      else socket.unref();
    }
  }

  send(data: Uint8Array, peer: PeerAddress): void {
    if (this.closed) return;
    let connected = this.lastSocket;
    if (connected === undefined || peer.port !== this.lastPort || peer.address !== this.lastAddress) {
      const key = peerKey(peer);
      connected = this.peers.get(key) ?? this.connect(key, peer);
      this.lastSocket = connected;
      this.lastAddress = peer.address;
      this.lastPort = peer.port;
    }
    if (!connected) {
      this.shared.send(data, peer.port, peer.address);
    } else if (connected.queue) {
      if (connected.queue.length < MAX_QUEUED_WHILE_CONNECTING) connected.queue.push(data);
    } else {
      connected.socket.send(data);
    }
  }

  /** Closes every socket, the shared one too, once the datagrams already sent have left. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const sockets = [...this.sockets()];
    this.peers.clear();
    this.lastSocket = undefined;
    await Promise.all(sockets.map((socket) => closeAfterPendingSends(socket)));
  }

  /** Peer sockets are for IP literals only: a host name would be resolved once and kept forever. */
  private connect(key: string, peer: PeerAddress): PeerSocket | undefined {
    const family = isIP(peer.address);
    if (family === 0 || this.peers.size >= this.maxPeerSockets) return undefined;
    if ((family === 6) !== (this.shared.address().family === 'IPv6')) return undefined;
    let socket: dgram.Socket;
    try {
      socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
    } catch {
      return undefined;
    }
    const entry: PeerSocket = { socket, queue: [] };
    this.peers.set(key, entry);
    if (!this.referenced) socket.unref();
    // A connected socket hears its peer only: every datagram is from the address it was connected
    // to, so one object stands for it instead of one per datagram.
    const source: PeerAddress = { address: peer.address, port: peer.port };
    socket.on('message', (data) => this.events.onMessage(data, source));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code && UNREACHABLE_CODES.has(error.code)) this.events.onUnreachable(peer, new PeerUnreachableError(peer, error.code));
    });
    const onSetupError = (): void => {
      // No socket of its own (out of descriptors, say): this peer goes through the shared one.
      if (this.peers.get(key) === entry) this.peers.delete(key);
      if (this.lastSocket === entry) this.lastSocket = undefined;
      const queued = entry.queue ?? [];
      entry.queue = undefined;
      socket.close();
      if (!this.closed) for (const data of queued) this.shared.send(data, peer.port, peer.address);
    };
    socket.once('error', onSetupError);
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

  private *sockets(): Iterable<dgram.Socket> {
    yield this.shared;
    for (const entry of this.peers.values()) yield entry.socket;
  }
}
