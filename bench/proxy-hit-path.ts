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
 *   proxied    the same to Uri-Port 47360                      → ForwardProxy with the cache, a miss: the
 *                                                                upstream leg (a CoapEndpoint) sends a CON,
 *                                                                answered by a piggybacked 2.05 Max-Age 0
 *                                                                made by copying its Message ID and token
 *                                                                into a template (the origin's share, ≈ 0.2 µs);
 *                                                                Max-Age 0 puts the key in hit-for-pass after the
 *                                                                first miss, so misses never coalesce here
 *
 * The requests look like the bench client's: one peer, consecutive Message IDs, random 8-byte tokens
 * (new ones for each lap of the 65,536 Message IDs, so that no request is a duplicate).
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
/** The proxied contender's origin (Max-Age 0), as in bench/proxy.ts. */
const MISS_PORT = 47360;

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
  /** After each batch: deliver what an upstream leg is owed (the proxied contender's origin answers). */
  drain?: () => void;
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
  const upstream: Pick<CoapEndpoint, 'send'> = {
    send: (_message, _peer, _options, handler) =>
      handler.onResponse({
        message: { type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.MaxAge, value: encodeUint(60) }], payload: PAYLOAD },
        context: { peer: { address: '127.0.0.1', port: ORIGIN_PORT }, peerKey: `127.0.0.1|${ORIGIN_PORT}`, scheme: 'coap' },
      }),
  };
  const cache = new ResponseCache({ maxBytes: 64 << 20, now: () => performance.now() });
  new ForwardProxy(server, { upstream: { endpoint: async () => upstream as CoapEndpoint }, allowDestinations: ['127.0.0.1'], cache });
  return { label: 'cache-hit (proxy)', transport, datagrams: requests(proxyRequestOptions(ORIGIN_PORT)), next: 0 };
}

/**
 * The upstream side of the proxied contender: every CON the proxy sends is answered with a
 * piggybacked 2.05 (Max-Age 0, so nothing is stored) carrying its Message ID and token, delivered
 * when the benchmark drains it (a real origin's answer arrives in a later turn too).
 */
class EchoOrigin implements DatagramTransport {
  readonly scheme = 'coap' as const;
  private handler: DatagramHandler = () => {};
  private readonly owed: Buffer[] = [];
  private readonly template = Buffer.from(encodeMessage({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: Buffer.alloc(8), options: [{ number: OptionNumber.MaxAge, value: encodeUint(0) }], payload: PAYLOAD }));
  constructor(private readonly peer: PeerAddress) {}
  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }
  send(data: Uint8Array): void {
    const reply = Buffer.from(this.template);
    // Message ID (bytes 2–3) and the 8-byte token (bytes 4–11) of the request.
    for (let i = 2; i < 12; i++) reply[i] = data[i]!;
    this.owed.push(reply);
  }
  drain(): void {
    for (let i = 0; i < this.owed.length; i++) this.handler(this.owed[i]!, this.peer, undefined);
    this.owed.length = 0;
  }
  localAddress(): PeerAddress {
    return { address: '127.0.0.1', port: 0 };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const proxyRequestOptions = (port: number): CoapMessage['options'] => [
  { number: OptionNumber.UriHost, value: encodeString('127.0.0.1') },
  { number: OptionNumber.UriPort, value: encodeUint(port) },
  { number: OptionNumber.UriPath, value: encodeString('bench') },
  { number: OptionNumber.ProxyScheme, value: encodeString('coap') },
];

async function proxied(): Promise<Contender> {
  const transport = await CountingTransport.bind();
  const server = new CoapServer(new CoapEndpoint({ transport, parameters: { nstart: BENCH_NSTART } }));
  const origin = new EchoOrigin({ address: '127.0.0.1', port: MISS_PORT });
  const upstream = new CoapEndpoint({ transport: origin, parameters: { nstart: BENCH_NSTART } });
  const cache = new ResponseCache({ maxBytes: 64 << 20, now: () => performance.now() });
  new ForwardProxy(server, { upstream: { endpoint: async () => upstream }, allowDestinations: ['127.0.0.1'], cache });
  return { label: 'proxied (proxy, cache miss)', transport, datagrams: requests(proxyRequestOptions(MISS_PORT)), next: 0, drain: () => origin.drain() };
}

/**
 * Fresh random tokens for the next lap of 65,536 Message IDs: the same datagram again would be a
 * duplicate (RFC 7252 §4.5), answered from the deduplication record without reaching the server.
 */
function newTokens(datagrams: Buffer[]): void {
  const fresh = randomBytes(8 * datagrams.length);
  for (let i = 0; i < datagrams.length; i++) fresh.copy(datagrams[i]!, 4, 8 * i, 8 * i + 8);
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
      if (c.next === 0) newTokens(c.datagrams);
    }
    c.drain?.();
    await yieldToLoop();
  }
  const used = process.cpuUsage(cpu);
  c.drain?.();
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
  const contenders = [await origin(), await proxy(), await proxied()];
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
