/**
 * CoAP over TCP (RFC 8323 §3, scheme coap+tcp): a listening socket for servers, outgoing
 * connections for clients. Framing and signalling live in src/stream/; this file only moves bytes.
 */
import { connect, createServer, type Server } from 'node:net';
import { SocketStreamTransport, listen } from './stream-socket.js';
import type { PeerAddress, StreamLink, StreamTransport } from './transport.js';

export interface TcpTransportOptions {
  /** Listen on this address (default 127.0.0.1 when `port` is given). */
  host?: string;
  /** Listen on this port (0: any free port). Without it the transport only connects out. */
  port?: number;
  /** Connection attempts give up after this long. Default 10 s. */
  connectTimeout?: number;
}

export class TcpTransport extends SocketStreamTransport implements StreamTransport {
  readonly scheme = 'coap+tcp' as const;

  private constructor(server: Server | undefined, options: TcpTransportOptions) {
    super(server, options.connectTimeout ?? 10_000);
    server?.on('connection', (socket) => this.accepted(socket, undefined));
  }

  /** Listens when `port` is given; otherwise a client-only transport. */
  static override async bind(options: TcpTransportOptions = {}): Promise<TcpTransport> {
    if (options.port === undefined) return new TcpTransport(undefined, options);
    const server = createServer();
    await listen(server, options.port, options.host ?? '127.0.0.1');
    return new TcpTransport(server, options);
  }

  connect(peer: PeerAddress): Promise<StreamLink> {
    return this.opened(connect({ host: peer.address, port: peer.port }), peer, 'connect', 'TCP', () => undefined);
  }
}
