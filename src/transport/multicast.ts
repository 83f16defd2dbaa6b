/**
 * CoAP over UDP/IP multicast (draft-ietf-core-groupcomm-bis §3.9.1, §3.9.3): a server transport
 * that joins a group and a client transport that sends to one.
 *
 * Node has no IP_PKTINFO, so a server cannot ask a datagram which address it was sent to. The
 * server therefore uses two sockets on the same port: one bound to the group address itself
 * (it receives only what was sent to the group) and one bound to the host's unicast address
 * (unicast requests, and every reply: responses are always unicast, §3.1.1, and carry the
 * server's own address so the client can tell the servers apart, §3.1.4).
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { bindSocket, closeAfterPendingSends } from './socket.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from './transport.js';
import { UdpTransport } from './udp.js';

/** IPv4 "All CoAP Nodes" (RFC 7252 §12.8). */
export const ALL_COAP_NODES_IPV4 = '224.0.1.187';
/** IPv6 "All CoAP Nodes", site-local scope (RFC 7252 §12.8: ff0x::fd). */
export const ALL_COAP_NODES_IPV6 = 'ff05::fd';

/** 224.0.0.0/4 or ff00::/8. */
export function isMulticastAddress(address: string): boolean {
  const version = isIP(address);
  if (version === 4) {
    const first = Number(address.split('.')[0]);
    return first >= 224 && first <= 239;
  }
  return version === 6 && /^ff[0-9a-f]{2}:/i.test(address);
}

export interface MulticastServerOptions {
  /** The group to join, IPv4 or IPv6. */
  group: string;
  port: number;
  /** This host's unicast address on the group's network: replies come from it, and IPv4 joins on its interface. */
  unicast: string;
  /** IPv6: the interface name to join on (e.g. "eth0"); default: the system's choice. */
  interfaceName?: string;
}

/**
 * A server's transport for one group. `receivingGroupDatagram` is true exactly while the handler
 * runs for a datagram that came to the group address: the server's stages read it synchronously
 * (src/server/stages/group-request.ts), since a group request is answered differently (leisure,
 * suppression) from a unicast one.
 */
export class MulticastServerTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  private handler: DatagramHandler = () => {};
  private closed = false;
  #receivingGroupDatagram = false;

  private constructor(
    private readonly groupSocket: dgram.Socket,
    private readonly unicastSocket: dgram.Socket,
    readonly group: string,
  ) {
    groupSocket.on('message', (data, rinfo) => {
      // RFC 7252 §8.1: multicast requests are NON; a CON sent to a group is neither acknowledged
      // nor reset (no empty ACK, no RST to a group message), so it never reaches the messaging layer.
      if (data.length > 0 && (data[0]! & 0x30) === 0x00) return;
      this.#receivingGroupDatagram = true;
      try {
        this.deliver(data, rinfo);
      } finally {
        this.#receivingGroupDatagram = false;
      }
    });
    unicastSocket.on('message', (data, rinfo) => this.deliver(data, rinfo));
  }

  static async bind(options: MulticastServerOptions): Promise<MulticastServerTransport> {
    if (!isMulticastAddress(options.group)) throw new RangeError(`${options.group} is not a multicast address`);
    const v6 = isIP(options.group) === 6;
    if (isIP(options.unicast) !== (v6 ? 6 : 4)) throw new RangeError(`the unicast address ${options.unicast} is not of the group's IP version`);
    const unicast = await bindSocket({ host: options.unicast, port: options.port });
    const port = unicast.address().port;
    let group: dgram.Socket;
    try {
      group = await bindSocket({ host: options.group, port });
      group.addMembership(options.group, v6 ? (options.interfaceName !== undefined ? `::%${options.interfaceName}` : undefined) : options.unicast);
    } catch (error) {
      unicast.close();
      throw error;
    }
    return new MulticastServerTransport(group, unicast, options.group);
  }

  get receivingGroupDatagram(): boolean {
    return this.#receivingGroupDatagram;
  }

  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }

  send(data: Uint8Array, peer: PeerAddress): void {
    if (this.closed) return;
    this.unicastSocket.send(data, peer.port, peer.address);
  }

  /** The unicast address and port (the group port is the same). */
  localAddress(): PeerAddress {
    const a = this.unicastSocket.address();
    return { address: a.address, port: a.port };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      this.groupSocket.dropMembership(this.group);
    } catch {
      // Leaving fails only when the interface is already gone; closing leaves anyway.
    }
    await Promise.all([closeAfterPendingSends(this.groupSocket), closeAfterPendingSends(this.unicastSocket)]);
  }

  private deliver(data: Buffer, rinfo: dgram.RemoteInfo): void {
    try {
      this.handler(data, { address: rinfo.address, port: rinfo.port }, undefined);
    } catch (error) {
      // A handler bug must never take the socket down with it.
      process.emitWarning(`coapsec: datagram handler failed: ${(error as Error).stack ?? error}`);
    }
  }
}

export interface MulticastClientOptions {
  /** Address to bind: the host's unicast address on the group's network (its family decides IPv4 or IPv6). */
  host: string;
  port?: number;
  /** IPv6: the outgoing interface name for group requests (e.g. "eth0"). IPv4 uses `host`'s interface. */
  interfaceName?: string;
  /** IP multicast TTL / hop limit of group requests (default 1: the local link). */
  hops?: number;
}

/**
 * A client's transport for group requests: one unconnected socket, so that responses from any
 * server (and any port, §3.1.4) reach it; group requests leave on the chosen interface.
 */
export class MulticastClientTransport extends UdpTransport {
  static override async bind(options: MulticastClientOptions): Promise<MulticastClientTransport> {
    const socket = await bindSocket({ host: options.host, port: options.port ?? 0 });
    const v6 = isIP(options.host) === 6;
    try {
      if (v6) {
        if (options.interfaceName !== undefined) socket.setMulticastInterface(`::%${options.interfaceName}`);
      } else if (options.host !== '0.0.0.0') {
        socket.setMulticastInterface(options.host);
      }
      socket.setMulticastTTL(options.hops ?? 1);
    } catch (error) {
      socket.close();
      throw error;
    }
    return new MulticastClientTransport(socket);
  }

  /** Unlike a server's UDP socket, a client's must not keep the process alive while idle. */
  setBusy(busy: boolean): void {
    if (busy) this.socket.ref();
    else this.socket.unref();
  }
}
