/**
 * Issue 28: a UDP tap on one leg. Placed between two nodes on loopback, it relays every datagram
 * unchanged (one upstream socket per client, like src/attack/relay.ts) and keeps a copy, named
 * with the addresses the leg has in the report (synthetic ones: loopback ports say nothing).
 */
import { createSocket, type Socket } from 'node:dgram';
import type { PeerAddress } from '../transport/transport.js';
import type { CapturedDatagram } from './pcap.js';

/** At most this many datagrams are kept per leg; a trace is a short run. */
const MAX_CAPTURED = 10_000;

export class UdpTap {
  readonly captured: CapturedDatagram[] = [];
  private readonly back = new Map<string, { socket: Socket; name: PeerAddress }>();

  private constructor(
    private readonly front: Socket,
    private readonly upstream: PeerAddress,
    /** How the leg's two ends appear in the capture; the n-th client gets port + n. */
    private readonly names: { client: PeerAddress; server: PeerAddress },
  ) {}

  static async start(upstream: PeerAddress, names: { client: PeerAddress; server: PeerAddress }): Promise<UdpTap> {
    const front = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      front.once('error', reject);
      front.bind(0, '127.0.0.1', () => resolve());
    });
    const tap = new UdpTap(front, upstream, names);
    front.on('message', (data, rinfo) => tap.fromClient(data, { address: rinfo.address, port: rinfo.port }));
    return tap;
  }

  get address(): PeerAddress {
    const a = this.front.address();
    return { address: a.address, port: a.port };
  }

  private record(from: PeerAddress, to: PeerAddress, payload: Buffer): void {
    if (this.captured.length < MAX_CAPTURED) this.captured.push({ at: Date.now(), from, to, payload: Buffer.from(payload) });
  }

  private fromClient(data: Buffer, client: PeerAddress): void {
    const key = `${client.address}:${client.port}`;
    let b = this.back.get(key);
    if (!b) {
      const socket = createSocket('udp4');
      const name = { address: this.names.client.address, port: this.names.client.port + this.back.size };
      const entry = { socket, name };
      socket.on('message', (reply) => {
        this.record(this.names.server, name, reply);
        this.front.send(reply, client.port, client.address);
      });
      socket.on('error', () => {});
      this.back.set(key, (b = entry));
    }
    this.record(b.name, this.names.server, data);
    b.socket.send(data, this.upstream.port, this.upstream.address);
  }

  close(): void {
    this.front.close();
    for (const b of this.back.values()) b.socket.close();
  }
}
