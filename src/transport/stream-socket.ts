/**
 * A Node net.Socket (plain TCP or TLS) as a StreamLink: RFC 8323 §3.2 length framing over the
 * byte stream. Shared by tcp.ts and tls.ts, which differ only in how the socket is made.
 */
import type { Server, Socket } from 'node:net';
import type { PeerAddress, StreamLink, TransportSecurity } from './transport.js';

/** How long an ended socket may take to finish closing before it is destroyed. */
const END_GRACE_MS = 2_000;

export class SocketLink implements StreamLink {
  readonly framing = 'length' as const;
  private error: Error | undefined;

  constructor(
    private readonly socket: Socket,
    readonly peer: PeerAddress,
    readonly security: TransportSecurity | undefined,
  ) {
    socket.setNoDelay(true);
    // Until setHandlers: remember a failure, so `closed` can report it.
    socket.on('error', (error) => {
      this.error = error;
    });
  }

  write(data: Uint8Array): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  }

  end(): void {
    if (this.socket.destroyed) return;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), END_GRACE_MS).unref();
  }

  destroy(): void {
    this.socket.destroy();
  }

  setHandlers(handlers: { data(data: Uint8Array): void; closed(error: Error | undefined): void }): void {
    this.socket.on('data', (data: Buffer) => handlers.data(data));
    this.socket.on('close', () => handlers.closed(this.error));
    if (this.socket.destroyed) queueMicrotask(() => handlers.closed(this.error));
  }
}

/** The remote address of a connected socket (undefined once it is gone). */
export function socketPeer(socket: Socket): PeerAddress | undefined {
  const address = socket.remoteAddress;
  const port = socket.remotePort;
  if (address === undefined || port === undefined) return undefined;
  return { address: address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address, port };
}

/**
 * What TCP and TLS transports share: the accepted and opened sockets (destroyed on close), the
 * accept handler, and an outgoing connection that becomes a link once `readyEvent` fires
 * ('connect' for TCP, 'secureConnect' for TLS) or fails after `connectTimeout`.
 */
export abstract class SocketStreamTransport {
  private acceptHandler: ((link: StreamLink) => void) | undefined;
  private readonly sockets = new Set<Socket>();

  protected constructor(
    private readonly server: { close(callback: () => void): unknown; address(): ReturnType<Server['address']> } | undefined,
    private readonly connectTimeout: number,
  ) {}

  /** Hands an accepted, ready socket to the accept handler (or drops it when nobody accepts). */
  protected accepted(socket: Socket, security: TransportSecurity | undefined): void {
    const peer = socketPeer(socket);
    if (!peer || !this.acceptHandler) {
      socket.destroy();
      return;
    }
    this.track(socket);
    this.acceptHandler(new SocketLink(socket, peer, security));
  }

  protected opened(socket: Socket, peer: PeerAddress, readyEvent: 'connect' | 'secureConnect', protocol: string, security: () => TransportSecurity | undefined): Promise<StreamLink> {
    this.track(socket);
    return new Promise<StreamLink>((resolve, reject) => {
      const timer = setTimeout(() => socket.destroy(new Error(`${protocol} connection to ${peer.address}:${peer.port} timed out`)), this.connectTimeout);
      const onError = (error: Error): void => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once('error', onError);
      socket.once(readyEvent, () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        resolve(new SocketLink(socket, peer, security()));
      });
    });
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  setAcceptHandler(handler: (link: StreamLink) => void): void {
    this.acceptHandler = handler;
  }

  localAddress(): PeerAddress {
    return serverAddress(this.server);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
}

export function serverAddress(server: { address(): ReturnType<Server['address']> } | undefined): PeerAddress {
  const address = server?.address();
  if (address && typeof address === 'object') return { address: address.address, port: address.port };
  return { address: '0.0.0.0', port: 0 };
}
