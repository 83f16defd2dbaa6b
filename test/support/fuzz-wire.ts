/** The fuzz harness's plumbing: a fast seeded generator and an in-memory network on a fake clock. */
import { CoapEndpoint } from '../../src/exchange/endpoint.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from '../../src/transport/transport.js';
import { SeededRandom } from '../../src/util/random.js';
import { FakeScheduler } from '../../src/util/scheduler.js';

/** xorshift32: fast enough that generating a datagram costs far less than processing it. */
export class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = (seed ^ 0x9e3779b9) >>> 0 || 1;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (this.state = x >>> 0);
  }
  int(n: number): number {
    return this.next() % n;
  }
  chance(p: number): boolean {
    return this.next() / 0x100000000 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

export const key = (p: PeerAddress): string => `${p.address}:${p.port}`;

/** The in-memory network between the targets' own nodes; anything else sent is a reply to the fuzzer. */
export class Wire {
  readonly clock = new FakeScheduler(0);
  private readonly nodes = new Map<string, WireTransport>();
  /** Replies to fuzz peers, as sent. */
  onReply: (data: Uint8Array, to: PeerAddress) => void = () => {};

  transport(address: PeerAddress): WireTransport {
    const t = new WireTransport(this, address);
    this.nodes.set(key(address), t);
    return t;
  }
  carry(from: PeerAddress, to: PeerAddress, data: Uint8Array): void {
    const node = this.nodes.get(key(to));
    if (!node) return this.onReply(data, to);
    const copy = Buffer.from(data);
    this.clock.schedule(1, () => node.receive(copy, from));
  }
  endpoint(address: PeerAddress, seed: number): CoapEndpoint {
    return new CoapEndpoint({ transport: this.transport(address), scheduler: this.clock, random: new SeededRandom(seed), parameters: { nstart: 1024 } });
  }
}

export class WireTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  private handler: DatagramHandler = () => {};
  constructor(
    private readonly wire: Wire,
    private readonly address: PeerAddress,
  ) {}
  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }
  send(data: Uint8Array, peer: PeerAddress): void {
    this.wire.carry(this.address, peer, data);
  }
  /** What a socket does with a datagram: hand it to the endpoint. */
  receive(data: Uint8Array, from: PeerAddress): void {
    this.handler(Buffer.from(data.buffer, data.byteOffset, data.byteLength), from, undefined);
  }
  localAddress(): PeerAddress {
    return this.address;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
