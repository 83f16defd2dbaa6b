/**
 * TEST TOOL. A UDP relay that plays the adversarial intermediary: clients send to it, it forwards
 * to a fixed upstream (a server or a proxy) from one socket per client, and applies an attack to
 * every request and response on the way (see attacks.ts).
 */
import { createSocket, type Socket } from 'node:dgram';
import { decodeMessage, encodeMessage } from '../coap/codec.js';
import type { PeerAddress } from '../transport/transport.js';
import { defaultRandom } from '../util/random.js';
import { Interceptor, type Attack, type Emission } from './attacks.js';

export interface RelayOptions {
  listen: PeerAddress;
  upstream: PeerAddress;
  attack: Attack;
  log?: (line: string) => void;
}

export class AttackRelay {
  private readonly interceptor: Interceptor;
  private readonly front: Socket;
  private readonly back = new Map<string, Socket>();

  private constructor(private readonly options: RelayOptions) {
    this.interceptor = new Interceptor(options.attack, defaultRandom, () => Date.now());
    this.front = createSocket(options.listen.address.includes(':') ? 'udp6' : 'udp4');
  }

  static async start(options: RelayOptions): Promise<AttackRelay> {
    const relay = new AttackRelay(options);
    await new Promise<void>((resolve, reject) => {
      relay.front.once('error', reject);
      relay.front.bind(options.listen.port, options.listen.address, () => resolve());
    });
    relay.front.on('message', (data, rinfo) => relay.fromClient(data, { address: rinfo.address, port: rinfo.port }));
    return relay;
  }

  get address(): PeerAddress {
    const a = this.front.address();
    return { address: a.address, port: a.port };
  }

  private socketFor(client: PeerAddress): Socket {
    const key = `${client.address}:${client.port}`;
    let s = this.back.get(key);
    if (!s) {
      s = createSocket(this.options.upstream.address.includes(':') ? 'udp6' : 'udp4');
      s.on('message', (data) => this.handle(data, this.options.upstream, client));
      this.back.set(key, s);
    }
    return s;
  }

  private fromClient(data: Buffer, client: PeerAddress): void {
    this.handle(data, client, this.options.upstream);
  }

  private handle(data: Buffer, from: PeerAddress, to: PeerAddress): void {
    let message;
    try {
      message = decodeMessage(data);
    } catch {
      return; // not CoAP: dropped
    }
    for (const e of this.interceptor.intercept({ from, to, message })) this.emit(e);
  }

  private emit(e: Emission): void {
    const send = () => {
      const bytes = encodeMessage(e.message);
      const upstream = this.options.upstream;
      const towardsUpstream = e.to.address === upstream.address && e.to.port === upstream.port;
      this.options.log?.(`${this.options.attack.name}: ${towardsUpstream ? '→' : '←'} ${e.to.address}:${e.to.port} code ${e.message.code} mid ${e.message.messageId}${e.delayMs ? ` after ${e.delayMs} ms` : ''}`);
      if (towardsUpstream) this.socketFor(e.from).send(bytes, e.to.port, e.to.address);
      else this.front.send(bytes, e.to.port, e.to.address);
    };
    if (e.delayMs > 0) setTimeout(send, e.delayMs).unref();
    else send();
  }

  close(): void {
    this.front.close();
    for (const s of this.back.values()) s.close();
  }
}
