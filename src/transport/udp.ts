/** CoAP over plain UDP (RFC 7252 §3) on a Node dgram socket. */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { isIP } from 'node:net';
import { closeAfterPendingSends } from './socket-close.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from './transport.js';

export interface UdpTransportOptions {
  /** Address to bind; '::' listens on IPv6 and IPv4 where the OS allows it. Default '127.0.0.1'. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Socket buffer sizes in bytes, raised for high request rates. */
  receiveBufferSize?: number;
  sendBufferSize?: number;
}

export class UdpTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  private handler: DatagramHandler = () => {};
  private closed = false;

  private constructor(private readonly socket: dgram.Socket) {
    socket.on('message', (data, rinfo) => {
      try {
        this.handler(data, { address: rinfo.address, port: rinfo.port }, undefined);
      } catch (error) {
        // A handler bug must never take the socket down with it.
        process.emitWarning(`coapsec: datagram handler failed: ${(error as Error).stack ?? error}`);
      }
    });
    // ICMP errors (e.g. port unreachable) surface as socket errors; they concern one send, not the socket.
    socket.on('error', () => {});
  }

  static async bind(options: UdpTransportOptions = {}): Promise<UdpTransport> {
    const host = options.host ?? '127.0.0.1';
    const type = isIP(host) === 6 ? 'udp6' : 'udp4';
    const socket = dgram.createSocket({ type, reuseAddr: false, lookup: literalLookup() });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      socket.once('error', onError);
      socket.bind(options.port ?? 0, host, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    if (options.receiveBufferSize) socket.setRecvBufferSize(options.receiveBufferSize);
    if (options.sendBufferSize) socket.setSendBufferSize(options.sendBufferSize);
    return new UdpTransport(socket);
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

type Lookup = NonNullable<dgram.SocketOptions['lookup']>;

/**
 * dgram's address lookup for `send`, which asks it for every datagram. Peers here are IP literals
 * (a received datagram's source, or an address the client resolved), and Node's default, dns.lookup,
 * answers a literal only in a later process.nextTick, after its option checks: a deferred callback
 * and its allocations per datagram. A literal is answered at once instead (the datagram goes out
 * within `send`); anything else goes to dns.lookup as before. The last literal is remembered: most
 * datagrams go to the same peer as the one before.
 */
function literalLookup(): Lookup {
  let lastLiteral = '';
  let lastVersion = 0;
  return (address, options, callback) => {
    if (address === lastLiteral) return callback(null, address, lastVersion);
    const version = isIP(address);
    // dgram passes the socket's family (4 or 6) where the type says options; dns.lookup takes either.
    if (version === 0) return dns.lookup(address, options, callback);
    lastLiteral = address;
    lastVersion = version;
    callback(null, address, version);
  };
}
