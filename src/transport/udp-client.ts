/**
 * CoAP over plain UDP for a client: one connected socket per peer, so an ICMP port unreachable
 * fails a request at once, and sockets unref'd while nothing waits (peer-sockets.ts says why).
 */
import dgram from 'node:dgram';
import { PeerSockets, type PeerSocketsOptions } from './peer-sockets.js';
import { bindSocket, type SocketOptions } from './socket.js';
import type { DatagramHandler, DatagramTransport, PeerAddress, SessionErrorHandler } from './transport.js';

export interface UdpClientTransportOptions extends SocketOptions, Pick<PeerSocketsOptions, 'maxPeerSockets'> {}

export class UdpClientTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  private handler: DatagramHandler = () => {};
  private readonly sessionErrorHandlers: SessionErrorHandler[] = [];
  private readonly sockets: PeerSockets;
  private closed = false;

  private constructor(
    /** localAddress(), and the peers that have no connected socket. */
    private readonly shared: dgram.Socket,
    options: UdpClientTransportOptions,
  ) {
    this.sockets = new PeerSockets(shared, options, {
      onMessage: (data, peer) => this.receive(data, peer),
      onUnreachable: (peer, error) => {
        for (const handler of this.sessionErrorHandlers) handler(peer, error);
      },
    });
    shared.on('message', (data, rinfo) => this.receive(data, { address: rinfo.address, port: rinfo.port }));
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
    this.sockets.setRef(busy);
  }

  send(data: Uint8Array, peer: PeerAddress): void {
    if (this.closed) return;
    this.sockets.send(data, peer);
  }

  localAddress(): PeerAddress {
    const a = this.shared.address();
    return { address: a.address, port: a.port };
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return this.sockets.close();
  }

  private receive(data: Buffer, peer: PeerAddress): void {
    try {
      this.handler(data, peer, undefined);
    } catch (error) {
      // A handler bug must never take the socket down with it.
      process.emitWarning(`coapsec: datagram handler failed: ${(error as Error).stack ?? error}`);
    }
  }
}
