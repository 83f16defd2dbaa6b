/** A UDP relay for multi-process tests: forwards datagrams between clients and one upstream port, one upstream socket per client, keeping a copy of each (a capture of that leg). */
import { createSocket, type Socket } from 'node:dgram';

export class RecordingRelay {
  readonly datagrams: Buffer[] = [];
  readonly #front = createSocket('udp4');
  readonly #back = new Map<string, Socket>();
  constructor(private readonly upstreamPort: number) {}

  async start(): Promise<number> {
    await new Promise<void>((resolve) => this.#front.bind(0, '127.0.0.1', resolve));
    this.#front.on('message', (data, from) => {
      this.datagrams.push(data);
      const key = `${from.address}:${from.port}`;
      let back = this.#back.get(key);
      if (back === undefined) {
        back = createSocket('udp4');
        back.on('message', (reply) => {
          this.datagrams.push(reply);
          this.#front.send(reply, from.port, from.address);
        });
        this.#back.set(key, back);
      }
      back.send(data, this.upstreamPort, '127.0.0.1');
    });
    return this.#front.address().port;
  }

  /** Everything captured so far, from datagram `from` on. */
  capture(from = 0): Buffer {
    return Buffer.concat(this.datagrams.slice(from));
  }

  close(): void {
    this.#front.close();
    for (const s of this.#back.values()) s.close();
  }
}
