/**
 * A seeded, bounded datagram fuzzer for issue 17's hostile-network checks. Three targets as the
 * CLI builds them — `serve` (demo and plugtest resources), `serve` with OSCORE (the test
 * specification's contexts B and D) and a forward proxy in front of an origin — run in process on
 * a fake clock; every datagram goes in through the target transport's receive path, the way a
 * socket delivers it, and what the target sends back is checked against the protocol's answer for
 * the datagram's class (RFC 7252 §4.2/§4.3 RST or silence, §5.4.1 4.02, §5.7.2 5.05, RFC 8613 §8.2
 * unprotected 4.0x, ...). Chaos classes (random bytes, mutated and randomly optioned messages) have
 * no expected answer but must not throw. Same seed, same run.
 */
import { MessageFormatError, decodeMessage, encodeMessage } from '../../src/coap/codec.js';
import { Method, ResponseCode, codeToString } from '../../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, encodeUint, getOption, sortOptions, type CoapMessage, type CoapOption } from '../../src/coap/message.js';
import { OptionNumber } from '../../src/coap/options.js';
import { OscoreClientSecurity } from '../../src/client/oscore.js';
import type { ProtectedRequest } from '../../src/client/security.js';
import { addDemoResources } from '../../src/demo/resources.js';
import { addPlugtestResources } from '../../src/demo/plugtest.js';
import { CoapEndpoint } from '../../src/exchange/endpoint.js';
import { OscoreSecurityContext, VolatileSequence, type SecurityContextInput } from '../../src/oscore/security-context.js';
import { ForwardProxy } from '../../src/proxy/forward-proxy.js';
import { OscoreServerSecurity } from '../../src/server/oscore.js';
import { CoapServer } from '../../src/server/server.js';
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

const hex = (s: string): Uint8Array => Buffer.from(s, 'hex');
const COMMON = { masterSecret: hex('0102030405060708090a0b0c0d0e0f10'), masterSalt: hex('9e7ca92223786340') };
const CONTEXT_A: SecurityContextInput = { ...COMMON, senderId: hex(''), recipientIds: [hex('01')], name: 'server' };
const CONTEXT_B: SecurityContextInput = { ...COMMON, senderId: hex('01'), recipientIds: [hex('')], name: 'client-a' };
const CONTEXT_D: SecurityContextInput = { ...CONTEXT_B, idContext: hex('37cbf3210017a2d3'), name: 'client-c' };

const key = (p: PeerAddress): string => `${p.address}:${p.port}`;

/** The in-memory network between the targets' own nodes; anything else sent is a reply to the fuzzer. */
class Wire {
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

class WireTransport implements DatagramTransport {
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

export type TargetName = 'serve' | 'serve-oscore' | 'proxy';

interface Target {
  name: TargetName;
  transport: WireTransport;
  server: CoapServer;
}

const SERVE: PeerAddress = { address: '10.1.0.1', port: 5683 };
const SERVE_OSCORE: PeerAddress = { address: '10.1.0.2', port: 5683 };
const PROXY: PeerAddress = { address: '10.1.0.3', port: 5683 };
const ORIGIN: PeerAddress = { address: '10.1.0.4', port: 5683 };

/** What a datagram must get back, checked on the replies sent before deliver() returns. */
type Expectation =
  | { kind: 'none' }
  | { kind: 'rst' }
  /** A piggybacked ACK (or for a NON, a NON) with this code; `payload` when it must match too. */
  | { kind: 'response'; code: number; payload?: string; echo?: boolean }
  /** The same bytes as the reply to the earlier copy (§4.5 deduplication). */
  | { kind: 'same-as'; reply: Uint8Array[] }
  /** An OSCORE-protected response that verifies against the request, with this inner code. */
  | { kind: 'protected'; request: ProtectedRequest; code: number; payload?: string }
  /** Answered later (an upstream exchange): the first response with this token must have this code. */
  | { kind: 'eventually'; code: number; payload?: string }
  /** Chaos: anything, as long as nothing throws. */
  | { kind: 'any' };

interface Case {
  cls: string;
  target: Target;
  peer: PeerAddress;
  datagram: Uint8Array;
  expect: Expectation;
}

export interface FuzzReport {
  datagrams: number;
  /** Datagrams per class. */
  classes: Record<string, number>;
  /** Oracle violations, first 20 kept (each names class, target, datagram and replies in hex). */
  failures: string[];
  failureCount: number;
  /** Exceptions that escaped the receive path, first 20 kept. */
  thrown: string[];
  thrownCount: number;
  /** Expectations of later answers still open at the end. */
  unanswered: number;
  maxTracked: number;
}

/**
 * Oracle peers are per class and get sequential Message IDs, so no two oracle datagrams of one
 * peer are ever duplicates (§4.5) of each other; chaos peers are separate and may collide freely.
 */
class Peers {
  private readonly counters = new Map<string, number>();
  private readonly classIndex = new Map<string, number>();
  /** A peer of this class (one of 16) and its next Message ID. */
  next(cls: string, random: Prng): { peer: PeerAddress; messageId: number } {
    let index = this.classIndex.get(cls);
    if (index === undefined) this.classIndex.set(cls, (index = this.classIndex.size));
    const peer = { address: `10.2.${index}.${1 + random.int(16)}`, port: 40000 };
    const k = key(peer);
    const messageId = this.counters.get(k) ?? 0;
    this.counters.set(k, (messageId + 1) & 0xffff);
    return { peer, messageId };
  }
  chaos(random: Prng): PeerAddress {
    return { address: `10.3.${random.int(4)}.${random.int(64)}`, port: 30000 + random.int(4) };
  }
}

const opt = (number: number, value: Uint8Array | string | number): CoapOption => ({
  number,
  value: typeof value === 'string' ? encodeString(value) : typeof value === 'number' ? encodeUint(value) : value,
});
const path = (...segments: string[]): CoapOption[] => segments.map((s) => opt(OptionNumber.UriPath, s));

export interface FuzzOptions {
  /**
   * Also send OSCORE requests with outer Block1/Block2 values of more than 3 bytes (issue 17 item 4:
   * they reach encodeBlock and throw, a fix on another branch with its own fuzz of that path).
   * Off in the suite until that fix is merged; `npm run fuzz` turns it on and expects 4.02.
   */
  oscoreOuterBlockEdgeCases?: boolean;
}

export class Fuzzer {
  readonly wire = new Wire();
  readonly targets: Record<TargetName, Target>;
  private readonly random: Prng;
  private readonly peers = new Peers();
  private readonly oscoreClient = new OscoreClientSecurity(new OscoreSecurityContext(CONTEXT_A, new VolatileSequence(0)));
  /** Recently sent valid OSCORE requests, for replays. */
  private readonly recentProtected: CoapMessage[] = [];
  private replies: Array<{ data: Uint8Array; to: PeerAddress }> = [];
  private readonly eventually = new Map<string, { expect: Extract<Expectation, { kind: 'eventually' }>; cls: string; at: number }>();
  private tokenCounter = 0;
  readonly report: FuzzReport = { datagrams: 0, classes: {}, failures: [], failureCount: 0, thrown: [], thrownCount: 0, unanswered: 0, maxTracked: 0 };

  constructor(
    seed: number,
    private readonly options: FuzzOptions = {},
  ) {
    this.random = new Prng(seed);
    const wire = this.wire;
    wire.onReply = (data, to) => this.onReply(data, to);
    const serve = new CoapServer(wire.endpoint(SERVE, seed + 1));
    addDemoResources(serve, { tick: false });
    addPlugtestResources(serve);
    const contexts = [CONTEXT_B, CONTEXT_D].map((c) => new OscoreSecurityContext(c, new VolatileSequence(0)));
    const serveOscore = new CoapServer(wire.endpoint(SERVE_OSCORE, seed + 2), { security: new OscoreServerSecurity(contexts, { now: () => wire.clock.now() }) });
    addDemoResources(serveOscore, { tick: false });
    addPlugtestResources(serveOscore);
    const origin = new CoapServer(wire.endpoint(ORIGIN, seed + 3));
    addDemoResources(origin, { tick: false });
    const proxyServer = new CoapServer(wire.endpoint(PROXY, seed + 4));
    const upstream = wire.endpoint({ address: PROXY.address, port: 40001 }, seed + 5);
    new ForwardProxy(proxyServer, { upstream: { endpoint: async () => upstream }, upstreamTimeout: 5_000 });
    this.targets = {
      serve: { name: 'serve', server: serve, transport: transportOf(serve) },
      'serve-oscore': { name: 'serve-oscore', server: serveOscore, transport: transportOf(serveOscore) },
      proxy: { name: 'proxy', server: proxyServer, transport: transportOf(proxyServer) },
    };
  }

  /** Runs `count` datagrams, spread over the targets; `clockStepMs` of fake time pass per datagram. */
  async run(count: number, clockStepMs = 1): Promise<FuzzReport> {
    for (let i = 0; i < count; i++) {
      this.one();
      if ((i & 63) === 63) {
        this.wire.clock.advance(64 * clockStepMs);
        if ((i & 1023) === 1023) {
          // Let handlers' promises settle (async resources, upstream exchanges) and bound the state.
          await new Promise<void>((resolve) => setImmediate(resolve));
          this.checkOverdue();
        }
      }
    }
    // Upstream exchanges still open end within the proxy's upstream timeout.
    for (let t = 0; t < 12; t++) {
      this.wire.clock.advance(1000);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.checkOverdue(true);
    for (const t of Object.values(this.targets)) this.report.maxTracked = Math.max(this.report.maxTracked, t.server.endpoint.stats().trackedMessages);
    return this.report;
  }

  async close(): Promise<void> {
    for (const t of Object.values(this.targets)) await t.server.close();
  }

  private one(): void {
    let c = this.generate();
    while (!this.options.oscoreOuterBlockEdgeCases && c.target.name === 'serve-oscore' && hasLongOuterBlock(c.datagram)) c = this.generate();
    this.report.datagrams++;
    this.report.classes[c.cls] = (this.report.classes[c.cls] ?? 0) + 1;
    this.replies = [];
    try {
      c.target.transport.receive(c.datagram, c.peer);
    } catch (error) {
      this.report.thrownCount++;
      const where = (error as Error).stack?.split('\n').slice(0, 3).join(' / ') ?? String(error);
      if (this.report.thrown.length < 20) this.report.thrown.push(`${c.cls} at ${c.target.name}: ${where} — datagram ${Buffer.from(c.datagram).toString('hex')}`);
      return;
    }
    const replies = this.replies.filter((r) => r.to.address === c.peer.address && r.to.port === c.peer.port).map((r) => r.data);
    const problem = this.check(c, replies);
    if (problem) this.fail(`${c.cls} at ${c.target.name}: ${problem} — datagram ${Buffer.from(c.datagram).toString('hex')}, replies [${replies.map((r) => Buffer.from(r).toString('hex')).join(', ')}]`);
  }

  private fail(message: string): void {
    this.report.failureCount++;
    if (this.report.failures.length < 20) this.report.failures.push(message);
  }

  private onReply(data: Uint8Array, to: PeerAddress): void {
    this.replies.push({ data, to });
    if (this.eventually.size === 0) return;
    let message: CoapMessage;
    try {
      message = decodeMessage(data);
    } catch {
      return this.fail(`a target sent an undecodable datagram ${Buffer.from(data).toString('hex')}`);
    }
    if (message.code === 0) return;
    const k = `${key(to)}/${Buffer.from(message.token).toString('hex')}`;
    const open = this.eventually.get(k);
    if (!open) return;
    this.eventually.delete(k);
    const problem = codeProblem(message, open.expect.code, open.expect.payload);
    if (problem) this.fail(`${open.cls} (answered later): ${problem}`);
  }

  /** Expectations of a later answer must be met within the proxy's upstream timeout and a margin. */
  private checkOverdue(final = false): void {
    const now = this.wire.clock.now();
    for (const [k, open] of this.eventually) {
      if (!final && now - open.at < 7_000) continue;
      this.eventually.delete(k);
      this.report.unanswered++;
      this.fail(`${open.cls}: no answer within ${now - open.at} ms (${k})`);
    }
  }

  private check(c: Case, replies: Uint8Array[]): string | undefined {
    const e = c.expect;
    switch (e.kind) {
      case 'any':
        for (const r of replies) {
          try {
            decodeMessage(r);
          } catch (error) {
            if (error instanceof MessageFormatError) return `sent a malformed datagram (${error.message})`;
          }
        }
        return undefined;
      case 'none':
        return replies.length === 0 ? undefined : 'expected no answer';
      case 'rst': {
        if (replies.length !== 1) return `expected one RST, got ${replies.length} datagrams`;
        const m = decodeMessage(replies[0]!);
        const sentId = (c.datagram[2]! << 8) | c.datagram[3]!;
        return m.type === MessageType.RST && m.code === 0 && m.messageId === sentId ? undefined : 'expected an RST with the same Message ID';
      }
      case 'same-as':
        if (replies.length !== e.reply.length || replies.some((r, i) => !Buffer.from(r).equals(Buffer.from(e.reply[i]!)))) return 'a duplicate got another answer than the original';
        return undefined;
      case 'eventually':
      case 'response':
      case 'protected': {
        const sent = decodeMessage(c.datagram);
        if (e.kind === 'eventually' && replies.length === 0) {
          this.eventually.set(`${key(c.peer)}/${Buffer.from(sent.token).toString('hex')}`, { expect: e, cls: c.cls, at: this.wire.clock.now() });
          return undefined;
        }
        const answers = replies.map((r) => decodeMessage(r)).filter((m) => m.code !== 0);
        if (answers.length !== 1) return `expected one response, got ${replies.length} datagrams`;
        const m = answers[0]!;
        if (sent.type === MessageType.CON && (m.type !== MessageType.ACK || m.messageId !== sent.messageId)) return 'expected a piggybacked response';
        if (!Buffer.from(m.token).equals(Buffer.from(sent.token))) return 'token not echoed';
        if (e.kind === 'protected') {
          const inner = e.request.verify(m, false);
          if (inner instanceof Error) return `the protected response does not verify: ${inner.message}`;
          return codeProblem(inner, e.code, e.payload);
        }
        if (e.kind === 'response' && e.echo && !getOption(m, OptionNumber.Echo)) return 'expected an Echo option';
        return codeProblem(m, e.code, e.payload);
      }
    }
  }

  // --- generation -----------------------------------------------------------------------

  private generate(): Case {
    const r = this.random;
    const roll = r.int(100);
    const target = roll < 45 ? this.targets.serve : roll < 75 ? this.targets['serve-oscore'] : this.targets.proxy;
    const which = r.int(100);
    if (which < 30) return this.chaos(target);
    if (target.name === 'serve-oscore' && which < 65) return this.oscoreCase(target);
    if (target.name === 'proxy' && which < 65) return this.proxyCase(target);
    return this.coapCase(target);
  }

  private token(): Uint8Array {
    const t = this.tokenCounter++;
    return Uint8Array.of(0xf0, (t >>> 24) & 0xff, (t >>> 16) & 0xff, (t >>> 8) & 0xff, t & 0xff);
  }

  private request(cls: string, target: Target, fields: { type?: number; code: number; options?: CoapOption[]; payload?: Uint8Array | string }, expect: Expectation): Case {
    const { peer, messageId } = this.peers.next(cls, this.random);
    const payload = typeof fields.payload === 'string' ? encodeString(fields.payload) : (fields.payload ?? EMPTY_BYTES);
    const datagram = encodeMessage({ type: (fields.type ?? MessageType.CON) as MessageType, code: fields.code, messageId, token: this.token(), options: sortOptions(fields.options ?? []), payload });
    return { cls, target, peer, datagram, expect };
  }

  /** Raw header bytes for the message-layer classes. */
  private raw(cls: string, target: Target, build: (messageId: number) => Uint8Array, expect: Expectation): Case {
    const { peer, messageId } = this.peers.next(cls, this.random);
    return { cls, target, peer, datagram: build(messageId), expect };
  }

  /** RFC 7252 §3, §4, §5.4, §5.7.2, §5.8 and RFC 7959 §2.2 at any target (none of these carry Proxy-Uri). */
  private coapCase(target: Target): Case {
    const r = this.random;
    const con = (b0low: number, code: number, id: number, rest: number[] = []) => Uint8Array.of(0x40 | b0low, code, id >> 8, id & 0xff, ...rest);
    const hello = target.name === 'serve-oscore' || target.name === 'serve' ? 'Hello from coapsec' : undefined;
    switch (r.int(18)) {
      case 0: // §3: TKL 9-15 is a format error; in a CON it gets RST (§4.2).
        return this.raw('format-error CON', target, (id) => con(9 + r.int(7), 0x01, id, [1, 2, 3, 4, 5, 6, 7, 8, 9]), { kind: 'rst' });
      case 1: { // §3: a truncated option, a reserved nibble or a marker without payload; NON/ACK/RST are dropped.
        const bad = r.pick([[0xb5, 0x61], [0xf0], [0x0f], [0xff], [0xd1]]);
        const type = r.int(4);
        return this.raw(type === 0 ? 'format-error CON' : 'format-error non-CON', target, (id) => Uint8Array.of(0x40 | (type << 4), 0x01, id >> 8, id & 0xff, ...bad), type === 0 ? { kind: 'rst' } : { kind: 'none' });
      }
      case 2: // §3: unknown versions are silently ignored.
        return this.raw('unknown version', target, (id) => Uint8Array.of(r.pick([0x00, 0x80, 0xc0]), 0x01, id >> 8, id & 0xff, 0xb5, 0x68, 0x65, 0x6c, 0x6c, 0x6f), { kind: 'none' });
      case 3: // Shorter than a header: nothing to answer.
        return this.raw('runt', target, () => r.bytes(r.int(4)), { kind: 'none' });
      case 4: // §4.3: an Empty CON is a ping, answered with RST.
        return this.raw('ping', target, (id) => con(0, 0, id), { kind: 'rst' });
      case 5: // §4.1: an Empty message with anything after the header is a format error.
        return this.raw('empty with token', target, (id) => con(1, 0, id, [7]), { kind: 'rst' });
      case 6: // §4.3: an Empty NON is ignored; stray ACK/RST match nothing.
        return this.raw('empty non-CON', target, (id) => Uint8Array.of(0x40 | (r.pick([1, 2, 3]) << 4), 0, id >> 8, id & 0xff), { kind: 'none' });
      case 7: // §4.2: a CON with a reserved code class (1, 6, 7) is rejected.
        return this.raw('reserved class', target, (id) => con(0, r.pick([0x20, 0xc1, 0xe0]), id), { kind: 'rst' });
      case 8: // §5.4.1: an unrecognized critical option in a CON request: 4.02.
        return this.request('unknown critical option', target, { code: Method.GET, options: [...path('hello'), opt(r.pick([13, 25, 2049, 65001]), r.bytes(r.int(4)))] }, { kind: 'response', code: ResponseCode.BadOption });
      case 9: // §5.4.5: a repeated non-repeatable critical option is treated as unrecognized.
        return this.request('repeated critical option', target, { code: Method.GET, options: [...path('hello'), opt(OptionNumber.UriPort, 5683), opt(OptionNumber.UriPort, 5684)] }, { kind: 'response', code: ResponseCode.BadOption });
      case 10: // §5.4.3: a critical option with a length outside its range is treated as unrecognized.
        return this.request('critical option too long', target, { code: Method.GET, options: [opt(OptionNumber.UriPath, 'x'.repeat(256 + r.int(200)))] }, { kind: 'response', code: ResponseCode.BadOption });
      case 11: // §5.4.1: an unrecognized elective option is ignored.
        return this.request('unknown elective option', target, { code: Method.GET, options: [...path('hello'), opt(r.pick([2048, 65000, 4094]), r.bytes(3))] }, hello ? { kind: 'response', code: ResponseCode.Content, payload: hello } : { kind: 'response', code: ResponseCode.NotFound });
      case 12: // §5.7.2 at a server that is not a proxy (the proxy target handles these in proxyCase).
        if (target.name === 'proxy') return this.request('unknown path', target, { code: Method.GET, options: path('no', 'such') }, { kind: 'response', code: ResponseCode.NotFound });
        return this.request('Proxy-Uri at a server', target, { code: Method.GET, options: [opt(OptionNumber.ProxyUri, 'coap://10.9.9.9/x')] }, { kind: 'response', code: ResponseCode.ProxyingNotSupported });
      case 13: // §5.8: an unknown method code.
        return this.request('unknown method', target, { code: 0x08 + r.int(24), options: path('hello') }, { kind: 'response', code: ResponseCode.MethodNotAllowed });
      case 14: // RFC 7959 §2.2: SZX 7 is reserved.
        return this.request('Block2 SZX 7', target, { code: Method.GET, options: [...path('large'), opt(OptionNumber.Block2, 0x07)] }, { kind: 'response', code: ResponseCode.BadRequest });
      case 15: // Routing: 4.04 and 4.05.
        return r.chance(0.5)
          ? this.request('unknown path', target, { code: Method.GET, options: path('no', 'such') }, { kind: 'response', code: ResponseCode.NotFound })
          : this.request('method not allowed', target, { code: Method.DELETE, options: path('hello') }, { kind: 'response', code: target.name === 'proxy' ? ResponseCode.NotFound : ResponseCode.MethodNotAllowed });
      case 16: { // §4.5: a duplicate CON gets the same answer again and is not processed twice.
        const first = this.request('duplicate CON', target, { code: Method.POST, options: path('echo'), payload: r.bytes(1 + r.int(40)) }, { kind: 'any' });
        this.replies = [];
        first.target.transport.receive(first.datagram, first.peer);
        const original = this.replies.filter((x) => x.to.address === first.peer.address && x.to.port === first.peer.port).map((x) => x.data);
        return { ...first, expect: { kind: 'same-as', reply: original } };
      }
      default: // RFC 9175 §2.3: /valve demands a fresh Echo (not at the proxy, which has no resources).
        if (target.name === 'proxy') return this.request('ping', target, { code: 0 }, { kind: 'rst' });
        return this.request('valve without Echo', target, { code: Method.PUT, options: path('valve'), payload: 'open' }, { kind: 'response', code: ResponseCode.Unauthorized, echo: true });
    }
  }

  /** RFC 8613 §8.2 at `serve` with OSCORE. */
  private oscoreCase(target: Target): Case {
    const r = this.random;
    const protect = (inner: CoapMessage) => this.oscoreClient.protect(inner);
    const inner = (code: number, segments: string[], payload: Uint8Array = EMPTY_BYTES): CoapMessage => ({ type: MessageType.CON, code, messageId: 0, token: EMPTY_BYTES, options: path(...segments), payload });
    const send = (cls: string, message: CoapMessage, expect: Expectation): Case => this.request(cls, target, { code: message.code, options: message.options, payload: message.payload }, expect);
    switch (r.int(8)) {
      case 0:
      case 1: { // A valid request: a protected 2.05 that verifies against it.
        const p = protect(inner(Method.GET, ['oscore', 'hello', '1']));
        this.recentProtected.push(p.message);
        if (this.recentProtected.length > 8) this.recentProtected.shift();
        return send('OSCORE valid', p.message, { kind: 'protected', request: p, code: ResponseCode.Content, payload: 'Hello World!' });
      }
      case 2: { // §7.4: a Partial IV seen before, past deduplication (another Message ID): 4.01.
        const seen = this.recentProtected.at(-1);
        if (!seen) return send('OSCORE valid', protect(inner(Method.GET, ['oscore', 'hello', '1'])).message, { kind: 'any' });
        return send('OSCORE replay', seen, { kind: 'response', code: ResponseCode.Unauthorized, payload: 'Replay detected' });
      }
      case 3: { // §8.2 step 2: an unknown kid: 4.01, unprotected.
        const p = protect(inner(Method.GET, ['oscore', 'hello', '1']));
        const options = p.message.options.map((o) => (o.number === OptionNumber.Oscore ? { number: o.number, value: Uint8Array.of(0x09, 0x01, 0x77) } : o));
        return send('OSCORE unknown kid', { ...p.message, options }, { kind: 'response', code: ResponseCode.Unauthorized });
      }
      case 4: { // §6.1: reserved flag bits make the option malformed: 4.02.
        const p = protect(inner(Method.GET, ['oscore', 'hello', '1']));
        const options = p.message.options.map((o) => (o.number === OptionNumber.Oscore ? { number: o.number, value: Uint8Array.of(0xe0 | (o.value[0] ?? 0), ...o.value.subarray(1)) } : o));
        return send('OSCORE malformed option', { ...p.message, options }, { kind: 'response', code: ResponseCode.BadOption });
      }
      case 5: { // §8.2 step 6: the ciphertext does not verify: 4.00.
        const p = protect(inner(Method.POST, ['oscore', 'hello', '6'], r.bytes(1 + r.int(30))));
        const payload = Uint8Array.from(p.message.payload);
        payload[r.int(payload.length)]! ^= 1 << r.int(8);
        return send('OSCORE tampered', { ...p.message, payload }, { kind: 'response', code: ResponseCode.BadRequest });
      }
      case 6: // The resource policy: the plugtest resources need OSCORE.
        if (this.options.oscoreOuterBlockEdgeCases && r.chance(0.5)) {
          // RFC 7959 §2.2, RFC 7252 §5.4.3: an outer Block option of 4+ bytes is a bad critical option: 4.02.
          const p = protect(inner(Method.POST, ['oscore', 'hello', '6'], r.bytes(8)));
          const block = opt(r.pick([OptionNumber.Block1, OptionNumber.Block2]), r.bytes(4 + r.int(4)));
          return send('OSCORE outer Block too long', { ...p.message, options: sortOptions([...p.message.options, block]) }, { kind: 'response', code: ResponseCode.BadOption });
        }
        return this.request('OSCORE required', target, { code: Method.GET, options: path('oscore', 'hello', '1') }, { kind: 'response', code: ResponseCode.Unauthorized });
      default: { // Chaos inside OSCORE: a valid request with mutated bytes after the header.
        const p = protect(inner(r.pick([Method.GET, Method.POST, Method.PUT]), r.pick([['oscore', 'hello', '1'], ['echo'], ['oscore', 'hello', '6'], ['large']]), r.bytes(r.int(64))));
        const c = send('OSCORE mutated', p.message, { kind: 'any' });
        return { ...c, datagram: this.mutate(c.datagram) };
      }
    }
  }

  /** RFC 7252 §5.7 and RFC 8768 at the forward proxy. */
  private proxyCase(target: Target): Case {
    const r = this.random;
    const origin = `coap://${ORIGIN.address}:${ORIGIN.port}`;
    switch (r.int(7)) {
      case 0:
      case 1: // Forwarded to the origin and answered from there (piggybacked, or separately after the empty ACK).
        return this.request('proxied GET', target, { code: Method.GET, options: [opt(OptionNumber.ProxyUri, `${origin}/hello`)] }, { kind: 'eventually', code: ResponseCode.Content, payload: 'Hello from coapsec' });
      case 2: // §5.7.2: a scheme this proxy does not speak.
        return this.request('unsupported scheme', target, { code: Method.GET, options: [opt(OptionNumber.UriHost, 'example.org'), opt(OptionNumber.ProxyScheme, r.pick(['gopher', 'ftp', 'mqtt']))] }, { kind: 'response', code: ResponseCode.ProxyingNotSupported });
      case 3: // §5.10.2: an unparsable Proxy-Uri.
        return this.request('bad Proxy-Uri', target, { code: Method.GET, options: [opt(OptionNumber.ProxyUri, r.pick(['not a uri', 'coap://[::1/x', '://', 'coap://host:99999/']))] }, { kind: 'response', code: ResponseCode.BadOption });
      case 4: // RFC 8768 §3: Hop-Limit 1 cannot be forwarded.
        return this.request('Hop-Limit 1', target, { code: Method.GET, options: [opt(OptionNumber.ProxyUri, `${origin}/hello`), opt(OptionNumber.HopLimit, 1)] }, { kind: 'response', code: ResponseCode.HopLimitReached });
      case 5: // §5.7.1: an unknown unsafe option cannot be forwarded.
        return this.request('unknown unsafe option', target, { code: Method.GET, options: [opt(OptionNumber.ProxyUri, `${origin}/hello`), opt(r.pick([2050, 4098, 65002]), r.bytes(2))] }, { kind: 'response', code: ResponseCode.BadGateway });
      default: // Proxy-Scheme without Uri-Host names no target.
        return this.request('Proxy-Scheme without host', target, { code: Method.GET, options: [opt(OptionNumber.ProxyScheme, 'coap'), ...path('hello')] }, { kind: 'response', code: ResponseCode.BadRequest });
    }
  }

  /** Random bytes, mutated valid messages, and valid headers with random options. */
  private chaos(target: Target): Case {
    const r = this.random;
    const peer = this.peers.chaos(r);
    const cls = ['chaos: random bytes', 'chaos: mutated', 'chaos: random options'][r.int(3)]!;
    let datagram: Uint8Array;
    if (cls === 'chaos: random bytes') datagram = r.bytes(r.int(80));
    else if (cls === 'chaos: mutated') datagram = this.mutate(this.template(target));
    else datagram = this.randomOptions();
    return { cls, target, peer, datagram, expect: { kind: 'any' } };
  }

  private template(target: Target): Uint8Array {
    const r = this.random;
    const options: CoapOption[] = [];
    if (target.name === 'proxy' && r.chance(0.6)) options.push(opt(OptionNumber.ProxyUri, `coap://${ORIGIN.address}:${ORIGIN.port}/${r.pick(['hello', 'large', 'echo', 'time'])}`));
    else options.push(...path(r.pick(['hello', 'large', 'echo', 'config', 'time', 'valve', '.well-known'])));
    if (r.chance(0.3)) options.push(opt(OptionNumber.Block2, r.int(256)));
    if (r.chance(0.2)) options.push(opt(OptionNumber.Observe, r.int(2)));
    if (r.chance(0.2)) options.push(opt(OptionNumber.Block1, r.int(4096)));
    return encodeMessage({ type: r.int(2) as MessageType, code: r.pick([1, 2, 3, 4, 5, 6, 7]), messageId: r.int(0x10000), token: r.bytes(r.int(9)), options: sortOptions(options), payload: r.bytes(r.int(40)) });
  }

  private randomOptions(): Uint8Array {
    const r = this.random;
    const options: CoapOption[] = [];
    let number = 0;
    for (let i = r.int(6); i > 0; i--) {
      number += r.pick([0, 1, 3, 4, 7, 8, 11, 12, 13, 14, 15, 17, 20, 23, 27, 28, 35, 39, 60, 252, 258, 292, 2048, 2049]);
      if (number > 0xffff) break;
      options.push({ number, value: r.bytes(r.pick([0, 1, 2, 4, 8, 13, 40, 270])) });
    }
    return encodeMessage({ type: r.int(4) as MessageType, code: r.int(256), messageId: r.int(0x10000), token: r.bytes(r.int(9)), options, payload: r.bytes(r.int(20)) });
  }

  private mutate(datagram: Uint8Array): Uint8Array {
    const r = this.random;
    const out = Uint8Array.from(datagram);
    switch (r.int(4)) {
      case 0: // bit flips after the header, so most stay version 1
        for (let i = 1 + r.int(3); i > 0 && out.length > 4; i--) out[4 + r.int(out.length - 4)]! ^= 1 << r.int(8);
        return out;
      case 1: // truncation
        return out.subarray(0, r.int(out.length + 1));
      case 2: // random tail
        return Uint8Array.from([...out, ...r.bytes(1 + r.int(16))]);
      default: // one random byte anywhere after the version bits
        if (out.length > 1) out[1 + r.int(out.length - 1)] = r.int(256);
        return out;
    }
  }
}

/** An OSCORE message with a Block1 or Block2 option longer than its 3-byte maximum (RFC 7959 §2.2). */
function hasLongOuterBlock(datagram: Uint8Array): boolean {
  let message: CoapMessage;
  try {
    message = decodeMessage(datagram);
  } catch {
    return false;
  }
  return getOption(message, OptionNumber.Oscore) !== undefined && message.options.some((o) => (o.number === OptionNumber.Block1 || o.number === OptionNumber.Block2) && o.value.length > 3);
}

function codeProblem(m: CoapMessage, code: number, payload?: string): string | undefined {
  if (m.code !== code) return `expected ${codeToString(code)}, got ${codeToString(m.code)}${m.payload.length ? ` "${decodeString(m.payload).slice(0, 60)}"` : ''}`;
  if (payload !== undefined && decodeString(m.payload) !== payload) return `expected payload "${payload}"`;
  return undefined;
}

/** The WireTransport a server's endpoint was built on (Wire.endpoint registers it). */
function transportOf(server: CoapServer): WireTransport {
  return server.endpoint.transport as WireTransport;
}
