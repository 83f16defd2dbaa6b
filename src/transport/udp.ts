/** CoAP over plain UDP (RFC 7252 §3) on a Node dgram socket. */
import dgram from 'node:dgram';
import { bindSocket, closeAfterPendingSends, type SocketOptions } from './socket.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from './transport.js';

export type UdpTransportOptions = SocketOptions;

export class UdpTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  private handler: DatagramHandler = () => {};
  private closed = false;

  /** Over an already bound socket (a subclass may set socket options first, e.g. multicast.ts). */
  protected constructor(protected readonly socket: dgram.Socket) {
    socket.on('message', (data, rinfo) => {
      try {
        this.handler(data, { address: rinfo.address, port: rinfo.port }, undefined);
      } catch (error) {
        // A handler bug must never take the socket down with it.
        process.emitWarning(`coapsec: datagram handler failed: ${(error as Error).stack ?? error}`);
      }
    });
  }

  static async bind(options: UdpTransportOptions = {}): Promise<UdpTransport> {
    return new UdpTransport(await bindSocket(options));
  }

  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }

  send(data: Uint8Array, peer: PeerAddress): void {
    if (this.closed) return;
    this.socket.send(data, peer.port, peer.address);
  }

  localAddress(): PeerAddress {
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return closeAfterPendingSends(this.socket);
  }
}
