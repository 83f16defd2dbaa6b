/**
 * Lockstep harness: an endpoint on a fake transport with a fake clock. Tests inject datagrams as a
 * scripted peer would send them and read exactly what the endpoint sent, and when.
 */
import { decodeMessage, encodeMessage } from '../../src/coap/codec.js';
import { EMPTY_BYTES, MessageType, sortOptions, type CoapMessage, type CoapOption } from '../../src/coap/message.js';
import { CoapEndpoint } from '../../src/exchange/endpoint.js';
import type { TransmissionParameters } from '../../src/messaging/parameters.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from '../../src/transport/transport.js';
import { SeededRandom } from '../../src/util/random.js';
import { FakeScheduler } from '../../src/util/scheduler.js';

export const PEER: PeerAddress = { address: '192.0.2.1', port: 61616 };
export const LOCAL: PeerAddress = { address: '127.0.0.1', port: 61617 };

export interface SentDatagram {
  at: number;
  peer: PeerAddress;
  bytes: Buffer;
  message: CoapMessage;
}

export class FakeTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  readonly sent: SentDatagram[] = [];
  private handler: DatagramHandler = () => {};

  constructor(private readonly clock: FakeScheduler) {}

  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }
  send(data: Uint8Array, peer: PeerAddress): void {
    const bytes = Buffer.from(data);
    this.sent.push({ at: this.clock.now(), peer, bytes, message: decodeMessage(bytes) });
  }
  deliver(data: Uint8Array, peer: PeerAddress = PEER): void {
    this.handler(Buffer.from(data), peer, undefined);
  }
  localAddress(): PeerAddress {
    return LOCAL;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  /** Everything sent since the last call. */
  take(): SentDatagram[] {
    return this.sent.splice(0, this.sent.length);
  }
}

/**
 * Seeded randomness whose 2-byte draws (a Message ID counter's random start, RFC 7252 §4.4) are
 * always 0x1234: a counter started afresh for a peer repeats the Message IDs sent to it before.
 */
export class SameMessageIdStart extends SeededRandom {
  override bytes(n: number): Uint8Array {
    return n === 2 ? Uint8Array.of(0x12, 0x34) : super.bytes(n);
  }
}

export function lockstep(parameters: Partial<TransmissionParameters> = {}, seed = 7) {
  const clock = new FakeScheduler(0);
  const transport = new FakeTransport(clock);
  const endpoint = new CoapEndpoint({ transport, scheduler: clock, random: new SeededRandom(seed), parameters });
  return { clock, transport, endpoint };
}

export function msg(fields: Partial<CoapMessage> & { code: number }): Buffer {
  return encodeMessage({
    type: fields.type ?? MessageType.CON,
    code: fields.code,
    messageId: fields.messageId ?? 0x1234,
    token: fields.token ?? EMPTY_BYTES,
    options: sortOptions(fields.options ?? []),
    payload: fields.payload ?? EMPTY_BYTES,
  });
}

export const opt = (number: number, value: string | Uint8Array): CoapOption => ({
  number,
  value: typeof value === 'string' ? new TextEncoder().encode(value) : value,
});

/** Lets promise callbacks scheduled by the code under test run. */
export const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

/**
 * Lets every separate response and retransmission of a lockstep harness go out (ten 30 s steps,
 * beyond EXCHANGE_LIFETIME's retransmissions), then takes what was sent as "time hex" lines.
 */
export async function drainSent(h: ReturnType<typeof lockstep>): Promise<string[]> {
  for (let i = 0; i < 10; i++) {
    h.clock.advance(30_000);
    await flush();
  }
  return h.transport.take().map((d) => `${d.at} ${d.bytes.toString('hex')}`);
}
