/**
 * An in-memory datagram network on a fake clock: endpoints at fixed addresses, 1 ms latency, and
 * a drop rule for simulated loss. Lets client and server code run against each other in lockstep.
 */
import { decodeMessage } from '../../src/coap/codec.js';
import type { CoapMessage } from '../../src/coap/message.js';
import { CoapEndpoint } from '../../src/exchange/endpoint.js';
import type { TransmissionParameters } from '../../src/messaging/parameters.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from '../../src/transport/transport.js';
import { SeededRandom } from '../../src/util/random.js';
import { FakeScheduler } from '../../src/util/scheduler.js';

export interface Delivery {
  from: PeerAddress;
  to: PeerAddress;
  message: CoapMessage;
  at: number;
  dropped: boolean;
}

export class FakeNetwork {
  readonly clock = new FakeScheduler(0);
  readonly log: Delivery[] = [];
  private readonly nodes = new Map<string, NetworkTransport>();
  /** Return true to lose the datagram. */
  drop: (d: Omit<Delivery, 'dropped'>) => boolean = () => false;
  /** Extra milliseconds to hold a datagram before delivering it (a delaying hop); default none. */
  delay: (d: Omit<Delivery, 'dropped'>) => number = () => 0;
  /** Return replacement bytes to tamper with a datagram in flight (a malicious hop). */
  mutate: (d: Omit<Delivery, 'dropped'>, data: Buffer) => Buffer | undefined = () => undefined;

  transport(address: PeerAddress): NetworkTransport {
    const t = new NetworkTransport(this, address);
    this.nodes.set(`${address.address}:${address.port}`, t);
    return t;
  }

  endpoint(address: PeerAddress, parameters: Partial<TransmissionParameters> = {}, seed = 11): CoapEndpoint {
    return new CoapEndpoint({ transport: this.transport(address), scheduler: this.clock, random: new SeededRandom(seed), parameters });
  }

  /** @internal */
  carry(from: PeerAddress, to: PeerAddress, data: Uint8Array): void {
    let copy: Buffer = Buffer.from(data);
    const original = { from, to, message: decodeMessage(copy), at: this.clock.now() };
    const tampered = this.mutate(original, copy);
    if (tampered) copy = tampered;
    const entry = tampered ? { ...original, message: decodeMessage(copy) } : original;
    const dropped = this.drop(entry);
    this.log.push({ ...entry, dropped });
    if (dropped) return;
    this.clock.schedule(1 + Math.max(0, this.delay(entry)), () => this.nodes.get(`${to.address}:${to.port}`)?.receive(copy, from));
  }

  /** Advances the clock in 1 ms steps, letting promise callbacks run between them. */
  async run(ms: number): Promise<void> {
    for (let i = 0; i < ms; i++) {
      this.clock.advance(1);
      for (let j = 0; j < 4; j++) await Promise.resolve();
    }
  }

  /** Runs until `promise` settles or `limitMs` of fake time passed. */
  async until<T>(promise: Promise<T>, limitMs = 300_000): Promise<T> {
    let settled = false;
    const p = promise.finally(() => (settled = true));
    for (let t = 0; t < limitMs && !settled; t++) await this.run(1);
    if (!settled) throw new Error(`not settled within ${limitMs} ms of fake time`);
    return p;
  }
}

class NetworkTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  private handler: DatagramHandler = () => {};

  constructor(
    private readonly network: FakeNetwork,
    private readonly address: PeerAddress,
  ) {}

  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }
  send(data: Uint8Array, peer: PeerAddress): void {
    this.network.carry(this.address, peer, data);
  }
  receive(data: Buffer, from: PeerAddress): void {
    this.handler(data, from, undefined);
  }
  localAddress(): PeerAddress {
    return this.address;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
