/**
 * In-process cost of one request on the server side: the origin's resource handler path against a
 * forward proxy's cache-hit path (issue 5, "cache-hit req/s vs direct ≥ 1.0×").
 *
 * Both run the real pipeline — codec, MessageLayer deduplication, CoapEndpoint, CoapServer and, for
 * the proxy, ForwardProxy + ResponseCache — on a transport that hands pre-encoded request datagrams
 * in and only counts what goes out, with the real scheduler. No datagram crosses a socket and no
 * other process runs: the numbers are this process's cost alone (the recvmsg/sendmsg and wake-ups
 * of bench/proxy.ts are left out),
 * so a change to either path shows up without most of the noise of shared cores. Costs here are
 * those of a hot loop; in bench/proxy.ts each datagram is a wake-up of its own and the same code
 * costs several times more.
 *
 *   direct     CON GET /bench                                  → origin resource (2.05, Max-Age 60)
 *   cache-hit  CON GET Proxy-Scheme coap, Uri-Host 127.0.0.1,  → ForwardProxy, answered from its cache
 *              Uri-Port 47361, Uri-Path bench                    (stored after the first request)
 *
 * The requests look like the bench client's: one peer, consecutive Message IDs, random 8-byte tokens.
 *
 * `--batch N` requests are delivered per event-loop turn (default 256: a hot loop in which promise
 * callbacks and timers are amortized). `--batch 1` gives each request a turn of its own, as a
 * socket does; a setImmediate per request then adds the same ≈ 1.7 µs to both paths.
 *
 *   node dist/bench/proxy-hit-path.js [--rounds 7] [--requests 200000] [--batch 256]
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { encodeMessage } from '../src/coap/codec.js';
import { ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, encodeUint, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { ResponseCache } from '../src/proxy/cache.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { CoapServer } from '../src/server/server.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from '../src/transport/transport.js';
import { BENCH_NSTART, PAYLOAD, median } from './common.js';
import { environment, fmt, runMain, table } from './harness.js';

const CLIENT: PeerAddress = { address: '127.0.0.1', port: 50000 };
const ORIGIN_PORT = 47361;

/**
 * Datagrams are delivered by the benchmark and sends are only counted. The socket is bound but
 * carries no traffic: localAddress asks it, as UdpTransport does (getsockname), so code that asks
 * the transport per request pays here what it pays in bench/proxy.ts.
 */
class CountingTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  sent = 0;
  private handler: DatagramHandler = () => {};
  private constructor(private readonly socket: dgram.Socket) {}
  static async bind(): Promise<CountingTransport> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return new CountingTransport(socket);
  }
  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }
  send(): void {
    this.sent++;
  }
  deliver(data: Buffer): void {
    this.handler(data, CLIENT, undefined);
  }
  localAddress(): PeerAddress {
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

interface Contender {
  label: string;
  transport: CountingTransport;
  datagrams: Buffer[];
  next: number;
}

/** 65,536 requests, one per Message ID, each with its own random token (as the bench client sends). */
function requests(options: CoapMessage['options']): Buffer[] {
  const out: Buffer[] = [];
  const first = randomBytes(2).readUInt16BE(0);
  for (let i = 0; i < 0x10000; i++) {
    out.push(Buffer.from(encodeMessage({ type: MessageType.CON, code: 1, messageId: (first + i) & 0xffff, token: randomBytes(8), options, payload: EMPTY_BYTES })));
  }
  return out;
}

async function origin(): Promise<Contender> {
  const transport = await CountingTransport.bind();
  const server = new CoapServer(new CoapEndpoint({ transport, parameters: { nstart: BENCH_NSTART } }));
  server.resource('/bench', { GET: () => ({ code: ResponseCode.Content, payload: PAYLOAD, maxAge: 60 }) });
  return { label: 'direct (origin handler)', transport, datagrams: requests([{ number: OptionNumber.UriPath, value: encodeString('bench') }]), next: 0 };
}

async function proxy(): Promise<Contender> {
  const transport = await CountingTransport.bind();
  const server = new CoapServer(new CoapEndpoint({ transport, parameters: { nstart: BENCH_NSTART } }));
  // The upstream answers the one miss at once; every later request is a hit.
  const upstream: Pick<CoapEndpoint, 'request'> = {
    request: async () => ({
      message: { type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.MaxAge, value: encodeUint(60) }], payload: PAYLOAD },
      context: { peer: { address: '127.0.0.1', port: ORIGIN_PORT }, peerKey: `127.0.0.1|${ORIGIN_PORT}`, scheme: 'coap' },
    }),
  };
  const cache = new ResponseCache({ maxBytes: 64 << 20, now: () => performance.now() });
  new ForwardProxy(server, { upstream: { endpoint: async () => upstream as CoapEndpoint }, cache });
  const options = [
    { number: OptionNumber.UriHost, value: encodeString('127.0.0.1') },
    { number: OptionNumber.UriPort, value: encodeUint(ORIGIN_PORT) },
    { number: OptionNumber.UriPath, value: encodeString('bench') },
    { number: OptionNumber.ProxyScheme, value: encodeString('coap') },
  ];
  return { label: 'cache-hit (proxy)', transport, datagrams: requests(options), next: 0 };
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** CPU µs per request over `count` requests (user + system of this process). */
async function measure(c: Contender, count: number, batch: number): Promise<number> {
  const sentBefore = c.transport.sent;
  const cpu = process.cpuUsage();
  for (let done = 0; done < count; ) {
    for (const end = Math.min(count, done + batch); done < end; done++) {
      c.transport.deliver(c.datagrams[c.next]!);
      c.next = (c.next + 1) & 0xffff;
    }
    await yieldToLoop();
  }
  const used = process.cpuUsage(cpu);
  await yieldToLoop();
  const answered = c.transport.sent - sentBefore;
  if (answered !== count) throw new Error(`${c.label}: ${answered} responses to ${count} requests`);
  return (used.user + used.system) / count;
}

async function main(): Promise<void> {
  let rounds = 7;
  let count = 200_000;
  let batch = 256;
  const args = process.argv.slice(2);
  const usage = 'usage: node dist/bench/proxy-hit-path.js [--rounds N] [--requests N] [--batch N]';
  for (let i = 0; i < args.length; i += 2) {
    const value = Number(args[i + 1]);
    if (!Number.isInteger(value) || value < 1) throw new Error(usage);
    if (args[i] === '--rounds') rounds = value;
    else if (args[i] === '--requests') count = value;
    else if (args[i] === '--batch') batch = value;
    else throw new Error(usage);
  }
  const contenders = [await origin(), await proxy()];
  // Warm-up: JIT, the proxy's one miss, the deduplication tracker filling up as in a long run.
  for (const c of contenders) await measure(c, count, batch);
  const results = new Map<string, number[]>(contenders.map((c) => [c.label, []]));
  for (let round = 0; round < rounds; round++) {
    for (const c of round % 2 === 0 ? contenders : [...contenders].reverse()) results.get(c.label)!.push(await measure(c, count, batch));
  }
  const direct = results.get(contenders[0]!.label)!;
  console.log(environment());
  console.log(`${rounds} rounds × ${count} requests per contender, ${batch} per event-loop turn, alternating order; CPU µs per request in this process (no datagram sent or received)\n`);
  const rows = [['path', 'CPU µs/req (median)', 'CPU µs/req (min–max)', 'cost ÷ direct (per round, median)']];
  for (const [label, us] of results) {
    const ratios = us.map((u, i) => u / direct[i]!);
    rows.push([label, fmt(median(us), 2), `${fmt(Math.min(...us), 2)}–${fmt(Math.max(...us), 2)}`, `${fmt(median(ratios), 2)}×`]);
  }
  console.log(table(rows));
  await Promise.all(contenders.map((c) => c.transport.close()));
}

runMain(main);
