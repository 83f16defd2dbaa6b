import type { DatagramHandler, DatagramTransport, PeerAddress } from '../src/transport/transport.js';

/** The server side of an in-memory pair: its answers are counted and dropped. */
export class DroppingTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  handler: DatagramHandler = () => {};
  answers = 0;
  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }
  send(): void {
    this.answers++;
  }
  localAddress(): PeerAddress {
    return { address: '127.0.0.1', port: 5683 };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
