/**
 * CoAP over TCP (RFC 8323 §3, scheme coap+tcp): a listening socket for servers, outgoing
 * connections for clients. Framing and signalling live in src/stream/; this file only moves bytes.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { SocketLink, socketPeer } from './stream-socket.js';
import type { PeerAddress, StreamLink, StreamTransport } from './transport.js';

export interface TcpTransportOptions {
  /** Listen on this address (default 127.0.0.1 when `port` is given). */
  host?: string;
  /** Listen on this port (0: any free port). Without it the transport only connects out. */
  port?: number;
  /** Connection attempts give up after this long. Default 10 s. */
  connectTimeout?: number;
}

export class TcpTransport implements StreamTransport {
  readonly scheme = 'coap+tcp' as const;
  private acceptHandler: ((link: StreamLink) => void) | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server | undefined,
    private readonly options: TcpTransportOptions,
  ) {
    server?.on('connection', (socket) => this.onConnection(socket));
  }

  /** Listens when `port` is given; otherwise a client-only transport. */
  static async bind(options: TcpTransportOptions = {}): Promise<TcpTransport> {
    if (options.port === undefined) return new TcpTransport(undefined, options);
    const server = createServer();
    await listen(server, options.port, options.host ?? '127.0.0.1');
    return new TcpTransport(server, options);
  }

  private onConnection(socket: Socket): void {
    const peer = socketPeer(socket);
    if (!peer || !this.acceptHandler) {
      socket.destroy();
      return;
    }
    this.track(socket);
    this.acceptHandler(new SocketLink(socket, peer, undefined));
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  connect(peer: PeerAddress): Promise<StreamLink> {
    return new Promise<StreamLink>((resolve, reject) => {
      const socket = connect({ host: peer.address, port: peer.port });
      this.track(socket);
      const timer = setTimeout(() => socket.destroy(new Error(`TCP connection to ${peer.address}:${peer.port} timed out`)), this.options.connectTimeout ?? 10_000);
      const onError = (error: Error): void => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        resolve(new SocketLink(socket, peer, undefined));
      });
    });
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
