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
import { MessageFormatError, decodeMessage } from '../../src/coap/codec.js';
import { codeToString } from '../../src/coap/codes.js';
import { MessageType, decodeString, getOption, type CoapMessage } from '../../src/coap/message.js';
import { OptionNumber } from '../../src/coap/options.js';
import { addDemoResources } from '../../src/demo/resources.js';
import { addPlugtestResources } from '../../src/demo/plugtest.js';
import { OscoreSecurityContext, VolatileSequence } from '../../src/oscore/security-context.js';
import { ForwardProxy } from '../../src/proxy/forward-proxy.js';
import { OscoreServerSecurity } from '../../src/server/oscore.js';
import { CoapServer } from '../../src/server/server.js';
import type { PeerAddress } from '../../src/transport/transport.js';
import { CaseGenerator, ORIGIN, PROXY, SERVE, SERVE_OSCORE, SERVER_CONTEXTS, type Case, type Expectation, type Target, type TargetName } from './fuzz-cases.js';
import { Prng, Wire, key, type WireTransport } from './fuzz-wire.js';


export interface FuzzReport {
  datagrams: number;
  /** Datagrams per class. */
  classes: Record<string, number>;
  /** Oracle violations, first 20 kept (each names class, target, datagram and replies in hex). */
  failures: string[];
  failureCount: number;
  /** Violations and escaped exceptions per class. */
  failuresByClass: Record<string, number>;
  /** Exceptions that escaped the receive path, first 20 kept. */
  thrown: string[];
  thrownCount: number;
  /** Expectations of later answers still open at the end. */
  unanswered: number;
  maxTracked: number;
}

export class Fuzzer {
  readonly wire = new Wire();
  readonly targets: Record<TargetName, Target>;
  private readonly cases: CaseGenerator;
  private replies: Array<{ data: Uint8Array; to: PeerAddress }> = [];
  private readonly eventually = new Map<string, { expect: Extract<Expectation, { kind: 'eventually' }>; cls: string; at: number }>();
  readonly report: FuzzReport = { datagrams: 0, classes: {}, failures: [], failureCount: 0, failuresByClass: {}, thrown: [], thrownCount: 0, unanswered: 0, maxTracked: 0 };

  constructor(seed: number) {
    const wire = this.wire;
    wire.onReply = (data, to) => this.onReply(data, to);
    const serve = new CoapServer(wire.endpoint(SERVE, seed + 1));
    addDemoResources(serve, { tick: false });
    addPlugtestResources(serve);
    const contexts = SERVER_CONTEXTS.map((c) => new OscoreSecurityContext(c, new VolatileSequence(0)));
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
    this.cases = new CaseGenerator(new Prng(seed), this.targets, (c) => this.deliver(c));
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
    let c: Case;
    try {
      // A class may deliver an earlier copy while it is generated (deduplication).
      c = this.cases.next();
    } catch (error) {
      return this.thrown('(a first copy)', error, undefined);
    }
    this.report.datagrams++;
    this.report.classes[c.cls] = (this.report.classes[c.cls] ?? 0) + 1;
    let replies: Uint8Array[];
    try {
      replies = this.deliver(c);
    } catch (error) {
      return this.thrown(c.cls, error, c);
    }
    const problem = this.check(c, replies);
    if (problem) this.fail(c.cls, `${c.cls} at ${c.target.name}: ${problem} — datagram ${Buffer.from(c.datagram).toString('hex')}, replies [${replies.map((r) => Buffer.from(r).toString('hex')).join(', ')}]`);
  }

  /** Hands the datagram to the target as its socket would; the replies sent to its peer meanwhile. */
  private deliver(c: Case): Uint8Array[] {
    this.replies = [];
    c.target.transport.receive(c.datagram, c.peer);
    return this.replies.filter((r) => r.to.address === c.peer.address && r.to.port === c.peer.port).map((r) => r.data);
  }

  private thrown(cls: string, error: unknown, c: Case | undefined): void {
    this.report.thrownCount++;
    this.countFailure(cls);
    const where = (error as Error).stack?.split('\n').slice(0, 3).join(' / ') ?? String(error);
    if (this.report.thrown.length < 20) this.report.thrown.push(`${cls}${c ? ` at ${c.target.name}` : ''}: ${where}${c ? ` — datagram ${Buffer.from(c.datagram).toString('hex')}` : ''}`);
  }

  private countFailure(cls: string): void {
    this.report.failuresByClass[cls] = (this.report.failuresByClass[cls] ?? 0) + 1;
  }

  private fail(cls: string, message: string): void {
    this.report.failureCount++;
    this.countFailure(cls);
    if (this.report.failures.length < 20) this.report.failures.push(message);
  }

  private onReply(data: Uint8Array, to: PeerAddress): void {
    this.replies.push({ data, to });
    if (this.eventually.size === 0) return;
    let message: CoapMessage;
    try {
      message = decodeMessage(data);
    } catch {
      return this.fail('(reply)', `a target sent an undecodable datagram ${Buffer.from(data).toString('hex')}`);
    }
    if (message.code === 0) return;
    const k = `${key(to)}/${Buffer.from(message.token).toString('hex')}`;
    const open = this.eventually.get(k);
    if (!open) return;
    this.eventually.delete(k);
    const problem = codeProblem(message, open.expect.code, open.expect.payload);
    if (problem) this.fail(open.cls, `${open.cls} (answered later): ${problem}`);
  }

  /** Expectations of a later answer must be met within the proxy's upstream timeout and a margin. */
  private checkOverdue(final = false): void {
    const now = this.wire.clock.now();
    for (const [k, open] of this.eventually) {
      if (!final && now - open.at < 7_000) continue;
      this.eventually.delete(k);
      this.report.unanswered++;
      this.fail(open.cls, `${open.cls}: no answer within ${now - open.at} ms (${k})`);
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
