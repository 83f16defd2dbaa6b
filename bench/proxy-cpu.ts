/**
 * Proxy CPU per forwarded request under a native load generator (issue 21, "Proxy"): the
 * generator (bench/native/coap-load.c) → `coapsec proxy --forward` → `coapsec serve`, 32
 * confirmable GETs of /hello in flight, and the CPU of the proxy process per forwarded request
 * against the origin's own CPU per response in the same measurement window (both from /proc,
 * read by the generator at the window's edges). A proxy works two legs per request (a server leg
 * and a client leg), so about 2× the server is the natural cost; the target is ≤ 2.2×.
 *
 * Variants (each a fresh proxy and origin; rounds rotate the order):
 * - `plain (Proxy-Uri)`: GET with Proxy-Uri coap://127.0.0.1:ORIGIN/hello (RFC 7252 §5.10.2).
 * - `plain (Proxy-Scheme)`: Proxy-Scheme coap, Uri-Host, Uri-Port and Uri-Path instead.
 * - `OSCORE, two layers`: end-to-end OSCORE client↔origin and, around it, OSCORE client↔proxy
 *   (draft-ietf-core-oscore-capable-proxies §2.3, as Appendix B.1): the proxy removes its layer,
 *   authorizes the client by that context (`--allow`, §2.4 step 4), forwards the end-to-end
 *   protected request and protects the response again (§2.5). The generator cannot do OSCORE:
 *   each request is made beforehand by the client's own route code (RouteSecurity, the same
 *   function a CoapClient with `via` runs) with fresh Sender Sequence Numbers on both layers, and
 *   sent once (bench/native-load.ts: no retransmission, so no nonce is used twice).
 * - `floor: dgram` (`--floor`, not run by default): Node's floor for the ratio — bench/proxy-minimal.ts
 *   (a `dgram` forwarder, one receive and one send per leg, no CoAP processing) in front of the
 *   `dgram` echo (coap-echo.ts, the server's floor): the forwarder's CPU per request ÷ the echo's
 *   is what two legs cost against one in Node with nothing on top.
 *
 * Pinning (2 cores): the proxy alone on CPU 1; the origin and the generator share CPU 0. CPU
 * time is per process, so sharing a core changes the origin's figure little; the generator's
 * own share is printed to show it is not the bottleneck.
 *
 *   node dist/bench/proxy-cpu.js                  # 3 rounds, about 2 minutes
 *   node dist/bench/proxy-cpu.js --quick          # 1 short round
 *   node dist/bench/proxy-cpu.js --rounds 5 --concurrency 32,256 --json out.json
 *   node dist/bench/proxy-cpu.js --variant base=../other-tree   # A/B: that tree's compiled CLI as
 *                                 # proxy and origin too, interleaved; CPU ratios other/this per round
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { RouteSecurity } from '../src/client/route.js';
import type { ProtectedRequest } from '../src/client/security.js';
import { decodeMessage } from '../src/coap/codec.js';
import { encodeString, encodeUint, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { parseCoapUri } from '../src/coap/uri.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { median, OSCORE_MASTER_SALT, OSCORE_MASTER_SECRET } from './common.js';
import {
  BENCH_RECIPIENT,
  COAPSEC_BIN,
  HELLO,
  HELLO_PATH,
  recipientName,
  startCoapsecProxy,
  startCoapsecServe,
  startDgramEcho,
  startMinimalForwarder,
  writeServerCredentials,
  type BenchRecipient,
  type RunningServer,
} from './cpu-servers.js';
import { environment, fmt, parseCommonArgs, parseVariant, runMain, table } from './harness.js';
import { awaitResponse, buildLoadGenerator, getRequest, perResponse, pinning, requestFile, runLoad, scratchDir, scratchFile, type LoadResult, type Pinning } from './native-load.js';

const VARIANTS = ['plain (Proxy-Uri)', 'plain (Proxy-Scheme)', 'OSCORE, two layers', 'floor: dgram'] as const;
/** Run unless `--variants` names them: the floor is asked for (`--variants floor` or `--floor`). */
const DEFAULT_VARIANTS: Variant[] = ['plain (Proxy-Uri)', 'plain (Proxy-Scheme)', 'OSCORE, two layers'];
type Variant = (typeof VARIANTS)[number];

/** Issue 21's target: the proxy's CPU per forwarded request ÷ the origin's per response. */
const PROXY_VS_SERVER_MAX = 2.2;

const USAGE = `usage: node dist/bench/proxy-cpu.js [--quick] [--rounds N] [--duration MS] [--warmup MS] [--port-base P (default 47560)]
       [--concurrency 32] [--nstart N] [--variants plain-uri,plain-scheme,oscore,floor] [--floor] [--variant LABEL=DIR ...] [--json FILE]`;

const VARIANT_ARGS: Record<string, Variant> = { 'plain-uri': 'plain (Proxy-Uri)', 'plain-scheme': 'plain (Proxy-Scheme)', oscore: 'OSCORE, two layers', floor: 'floor: dgram' };

/** Client ↔ proxy, the proxy's own layer (client ID 20, proxy ID 02, as bench/oscore-proxy.ts and Appendix B.1's test). */
const CLIENT_PROXY: BenchRecipient & { masterSecret: Buffer; masterSalt: Buffer } = {
  recipientIdHex: '20',
  senderIdHex: '02',
  masterSecretHex: '101112131415161718191a1b1c1d1e1f',
  masterSaltHex: '5a5a5a5a5a5a5a5a',
  masterSecret: Buffer.from('101112131415161718191a1b1c1d1e1f', 'hex'),
  masterSalt: Buffer.from('5a5a5a5a5a5a5a5a', 'hex'),
};

/** A coapsec tree whose CLI plays proxy and origin: this one, or a `--variant`. */
interface Tree {
  label: string;
  bin: string;
}

interface Settings {
  trees: Tree[];
  rounds: number;
  warmupMs: number;
  durationMs: number;
  portBase: number;
  concurrencies: number[];
  /** `coapsec proxy --nstart`: upstream requests outstanding to the origin (1, the CLI's default, passes no flag). */
  nstart: number;
  variants: Variant[];
  json: string | undefined;
}

function parseArgs(argv: string[]): Settings {
  const extra = { nstart: 1, concurrencies: [32], variants: [...DEFAULT_VARIANTS], json: undefined as string | undefined, trees: [{ label: 'this', bin: COAPSEC_BIN }] as Tree[] };
  const common = parseCommonArgs(
    argv,
    { quick: false, rounds: 3, warmupMs: 2000, durationMs: 2500, portBase: 47_560, socketBuffer: 1 << 20 },
    { rounds: 1, warmupMs: 500, durationMs: 1000 },
    USAGE,
    (arg, value) => {
      if (arg === '--concurrency') {
        extra.concurrencies = value().split(',').map((x) => {
          const n = Number(x);
          if (!Number.isInteger(n) || n < 1 || n > 4096) throw new Error(`bad concurrency ${x}`);
          return n;
        });
      } else if (arg === '--nstart') {
        extra.nstart = Number(value());
        if (!Number.isInteger(extra.nstart) || extra.nstart < 1 || extra.nstart > 4096) throw new Error('--nstart needs a whole number from 1 to 4096');
      } else if (arg === '--variants') {
        extra.variants = value().split(',').map((x) => {
          const v = VARIANT_ARGS[x];
          if (v === undefined) throw new Error(`--variants: unknown ${x} (${Object.keys(VARIANT_ARGS).join(', ')})`);
          return v;
        });
      } else if (arg === '--variant') {
        const { label, benchDir } = parseVariant(value());
        if (extra.trees.some((t) => t.label === label)) throw new Error(`--variant: the label ${label} is taken`);
        extra.trees.push({ label, bin: join(benchDir, '..', '..', 'bin', 'coapsec') });
      } else if (arg === '--floor') {
        if (!extra.variants.includes('floor: dgram')) extra.variants.push('floor: dgram');
      } else if (arg === '--json') extra.json = value();
      else return false;
      return true;
    },
  );
  return { rounds: common.rounds, warmupMs: common.warmupMs, durationMs: common.durationMs, portBase: common.portBase, ...extra };
}

interface Measurement extends LoadResult {
  tree: string;
  variant: Variant;
  round: number;
  /** Requests the proxy or the origin logged as refused (OSCORE) during this measurement and the direct one. */
  refused: number;
  /** Right after: the generator against the origin alone, as many in flight (the server's own cost). */
  direct: LoadResult;
}

/**
 * CPU µs per request of the proxy, of the origin behind it, and of the origin driven directly, and
 * the proxy's against each. The upstream leg has at most NSTART (1, RFC 7252 §4.7) requests
 * outstanding, so the origin behind the proxy serves one at a time and pays a wake-up per
 * request; driven directly it has as many in flight as the proxy: the figure to hold the proxy to.
 */
const perRequest = (r: Measurement): { proxyMicros: number; originMicros: number; directMicros: number; ratio: number; ratioDirect: number } => {
  const [proxy = -1, origin = -1] = r.processCpuMicros;
  const proxyMicros = proxy >= 0 && r.responses > 0 ? proxy / r.responses : NaN;
  const originMicros = origin >= 0 && r.responses > 0 ? origin / r.responses : NaN;
  const directMicros = perResponse(r.direct).serverMicros;
  return { proxyMicros, originMicros, directMicros, ratio: proxyMicros / originMicros, ratioDirect: proxyMicros / directMicros };
};

/** The proxy, its origin, and the requests that go through them. */
interface Setup {
  proxy: RunningServer;
  origin: RunningServer;
  stop(): Promise<void>;
}

class Bench {
  readonly binary = buildLoadGenerator();
  readonly pin: Pinning = pinning();
  /** The origin shares the generator's core; the proxy has the other one to itself. */
  readonly originPin: Pinning = { server: this.pin.load, load: this.pin.load, describe: '' };
  readonly proxyPort: number;
  readonly originPort: number;
  readonly originUri: string;
  /** Both layers' Sender Sequence Numbers only go up for the whole run: every start of proxy and origin begins with fresh replay state. */
  private readonly route: RouteSecurity;
  /** The end-to-end layer alone, for the origin measured directly (its Sequence Numbers shared with the route's). */
  private readonly endToEnd: OscoreClientSecurity;
  /** The highest OSCORE rate seen per path and in-flight count, to size the next pool. */
  private readonly oscoreRate = new Map<string, number>();
  private readonly plainFiles: Record<'plain (Proxy-Uri)' | 'plain (Proxy-Scheme)' | 'floor: dgram' | 'direct', string>;

  constructor(readonly s: Settings) {
    this.proxyPort = s.portBase;
    this.originPort = s.portBase + 1;
    this.originUri = `coap://127.0.0.1:${this.originPort}${HELLO_PATH}`;
    const endToEnd = new OscoreSecurityContext(
      { masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: Buffer.alloc(0), recipientIds: [Buffer.from('01', 'hex')] },
      new VolatileSequence(),
    );
    const clientProxy = new OscoreSecurityContext(
      { masterSecret: CLIENT_PROXY.masterSecret, masterSalt: CLIENT_PROXY.masterSalt, senderId: Buffer.from(CLIENT_PROXY.recipientIdHex, 'hex'), recipientIds: [Buffer.from(CLIENT_PROXY.senderIdHex!, 'hex')] },
      new VolatileSequence(),
    );
    this.endToEnd = new OscoreClientSecurity(endToEnd);
    this.route = new RouteSecurity(parseCoapUri(this.originUri), [{ uri: `coap://127.0.0.1:${this.proxyPort}`, context: clientProxy }], this.endToEnd);
    this.plainFiles = {
      'plain (Proxy-Uri)': scratchFile(this.binary, 'proxy-uri.req', requestFile([this.plainRequest('uri')])),
      // The floor's forwarder reads no options: it gets what the Proxy-Uri variant sends.
      'floor: dgram': scratchFile(this.binary, 'proxy-floor.req', requestFile([this.plainRequest('uri')])),
      'plain (Proxy-Scheme)': scratchFile(this.binary, 'proxy-scheme.req', requestFile([this.plainRequest('scheme')])),
      direct: scratchFile(this.binary, 'direct.req', requestFile([getRequest(HELLO_PATH)])),
    };
  }

  /** A GET of /hello at the origin, addressed to the proxy by Proxy-Uri or by Proxy-Scheme and Uri-* (§5.10.2). */
  plainRequest(addressing: 'uri' | 'scheme'): CoapMessage {
    const message = getRequest(addressing === 'uri' ? '' : HELLO_PATH);
    if (addressing === 'uri') message.options = [{ number: OptionNumber.ProxyUri, value: encodeString(this.originUri) }];
    else {
      message.options = [
        { number: OptionNumber.UriHost, value: encodeString('127.0.0.1') },
        { number: OptionNumber.UriPort, value: encodeUint(this.originPort) },
        ...message.options,
        { number: OptionNumber.ProxyScheme, value: encodeString('coap') },
      ];
    }
    return message;
  }

  /** One request protected for the origin and then for the proxy, with the next Sequence Numbers of both. */
  protectedRequest(): ProtectedRequest {
    return this.route.protect(getRequest(HELLO_PATH));
  }

  /** `count` requests with both layers, or (`direct`) the end-to-end layer alone, for the origin. */
  *protectedRequests(count: number, direct: boolean): Generator<CoapMessage> {
    for (let i = 0; i < count; i++) yield (direct ? this.endToEnd : this.route).protect(getRequest(HELLO_PATH)).message;
  }

  async start(variant: Variant, tree: Tree): Promise<Setup> {
    const scratch = scratchDir(this.binary);
    const oscore = variant === 'OSCORE, two layers';
    if (variant === 'floor: dgram') {
      // Node's floor: the dgram forwarder in front of the dgram echo (the server's floor, server-cpu.js).
      const echo = await startDgramEcho(this.originPin, this.originPort);
      const forwarder = await startMinimalForwarder(this.pin, this.proxyPort, this.originPort).catch(async (error: unknown) => {
        await echo.stop();
        throw error;
      });
      return this.checked(variant, { proxy: forwarder, origin: echo, stop: async () => void (await Promise.all([forwarder.stop(), echo.stop()])) });
    }
    // Fresh state per start: a context that resumes would challenge with Echo (Appendix B.1.2).
    const origin = await startCoapsecServe(this.originPin, this.originPort, scratch, oscore ? writeServerCredentials(scratch, [BENCH_RECIPIENT]) : undefined, 20_000, tree.bin);
    let proxy: RunningServer;
    try {
      const layer = oscore ? { credentials: writeServerCredentials(scratch, [CLIENT_PROXY]), allow: [recipientName(CLIENT_PROXY)] } : {};
      proxy = await startCoapsecProxy(this.pin, this.proxyPort, scratch, { ...layer, nstart: this.s.nstart, bin: tree.bin });
    } catch (error) {
      await origin.stop();
      throw error;
    }
    return this.checked(variant, { proxy, origin, stop: async () => void (await Promise.all([proxy.stop(), origin.stop()])) });
  }

  /** The setup, once one request through it has been checked; a setup that fails the check is stopped. */
  private async checked(variant: Variant, setup: Setup): Promise<Setup> {
    try {
      await this.check(variant, setup);
    } catch (error) {
      await setup.stop();
      throw error;
    }
    return setup;
  }

  /**
   * Requests through the chain before measuring: the answer must be the origin's 2.05 "Hello from
   * coapsec". A cold proxy may take longer than the server's empty-ACK delay (100 ms) and answer
   * separately, which a probe does not follow: then the next probe, up to 5.
   */
  private async check(variant: Variant, setup: Setup): Promise<void> {
    let text = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const sent = variant === 'OSCORE, two layers' ? this.protectedRequest() : undefined;
      const request = requestFile([sent?.message ?? this.plainRequest(variant === 'plain (Proxy-Uri)' ? 'uri' : 'scheme')]).subarray(2);
      request.writeUInt16BE(0x7a00 + attempt, 2);
      const answer = decodeMessage(await awaitResponse(this.proxyPort, request, setup.proxy.child, 10_000));
      if (answer.code === 0) {
        text = 'an empty ACK (a separate response follows)';
        continue;
      }
      const response = sent ? sent.verify(answer, false) : answer;
      text = response instanceof Error ? response.message : `${response.code >> 5}.${String(response.code & 31).padStart(2, '0')} ${Buffer.from(response.payload).toString('utf8')}`;
      if (text === `2.05 ${HELLO}`) return;
      break;
    }
    throw new Error(`${variant}: GET ${this.originUri} through the proxy answered ${text}`);
  }

  /**
   * One measurement: through the proxy, or (`direct`) the origin alone, the generator sending to
   * it what the proxy would (the server's own cost at the same number in flight). OSCORE gets a
   * pool of fresh requests sized from the best rate seen so far (50 % spare); if it still runs
   * dry, the measurement is repeated with a pool twice as large.
   */
  async load(variant: Variant, setup: Setup, inFlight: number, direct: boolean): Promise<LoadResult> {
    const oscore = variant === 'OSCORE, two layers';
    const rateKey = `${direct} ${inFlight}`;
    const windowSeconds = (this.s.warmupMs + this.s.durationMs) / 1000;
    let poolSize = Math.ceil((this.oscoreRate.get(rateKey) ?? 8000) * windowSeconds * 1.5) + 2 * inFlight;
    for (let attempt = 0; attempt < 3; attempt++) {
      const requests = oscore
        ? scratchFile(this.binary, 'proxy-oscore.req', requestFile(this.protectedRequests(poolSize, direct)))
        : this.plainFiles[direct ? 'direct' : (variant as 'plain (Proxy-Uri)' | 'plain (Proxy-Scheme)' | 'floor: dgram')];
      const port = direct ? this.originPort : this.proxyPort;
      const serverPid = direct ? [setup.origin.pid] : [setup.proxy.pid, setup.origin.pid];
      const r = await runLoad(this.binary, this.pin, { port, inFlight, warmupMs: this.s.warmupMs, durationMs: this.s.durationMs, requests, serverPid });
      if (!r.exhausted) {
        if (oscore) this.oscoreRate.set(rateKey, Math.max(this.oscoreRate.get(rateKey) ?? 0, r.responses / r.seconds));
        return r;
      }
      poolSize *= 2;
    }
    throw new Error(`${variant}: the OSCORE request pool ran dry three times at ${inFlight} in flight`);
  }
}

function log(r: Measurement, rounds: number): void {
  const x = perRequest(r);
  const g = perResponse(r);
  console.error(
    `round ${r.round + 1}/${rounds}  ${r.tree.padEnd(6)} ${r.variant.padEnd(20)} ${String(r.inFlight).padStart(3)} in flight  ${fmt(g.rps).padStart(6)} req/s  proxy ${fmt(x.proxyMicros, 1)} µs/req` +
      `  origin ${fmt(x.originMicros, 1)} µs/resp (${fmt(x.ratio, 2)}×), directly ${fmt(x.directMicros, 1)} (${fmt(x.ratioDirect, 2)}×)  generator ${fmt(100 * g.generatorLoad)} % of a core` +
      (r.separate ? `  ${r.separate} answered separately` : '') +
      (r.errors || r.lost || r.refused || r.stale || r.direct.errors || r.direct.lost ? `  errors ${r.errors}+${r.direct.errors} lost ${r.lost}+${r.direct.lost} stale ${r.stale} refused ${r.refused}` : ''),
  );
}

/** A ratio's median over rounds, and each round's. */
const each = (xs: readonly number[]): string => `${fmt(median(xs), 2)}× (${xs.map((x) => fmt(x, 2)).join(' / ')})`;

function report(results: readonly Measurement[], s: Settings): string {
  const rows = [
    ['in flight', 'tree', 'variant', 'proxy CPU µs/forwarded request', 'origin behind it µs/response', 'origin directly µs/response', 'proxy ÷ origin behind it (per round)', 'proxy ÷ origin directly (per round)', `met? (≤ ${PROXY_VS_SERVER_MAX}×, both)`, 'req/s through the proxy', 'load gen % of a core (max)', 'answered separately', 'non-2.xx, refused, lost'],
  ];
  for (const c of s.concurrencies) {
    for (const variant of s.variants) {
      for (const tree of s.trees) {
        const rs = results.filter((r) => r.variant === variant && r.inFlight === c && r.tree === tree.label);
        if (rs.length === 0) continue;
        const xs = rs.map(perRequest);
        const worst = Math.max(median(xs.map((x) => x.ratio)), median(xs.map((x) => x.ratioDirect)));
        rows.push([
          String(c),
          tree.label,
          variant,
          fmt(median(xs.map((x) => x.proxyMicros)), 1),
          fmt(median(xs.map((x) => x.originMicros)), 1),
          fmt(median(xs.map((x) => x.directMicros)), 1),
          each(xs.map((x) => x.ratio)),
          each(xs.map((x) => x.ratioDirect)),
          Number.isFinite(worst) ? (worst <= PROXY_VS_SERVER_MAX ? 'yes' : 'NO') : '-',
          fmt(median(rs.map((r) => perResponse(r).rps))),
          fmt(100 * Math.max(...rs.flatMap((r) => [perResponse(r).generatorLoad, perResponse(r.direct).generatorLoad]))),
          String(rs.reduce((a, r) => a + r.separate, 0)),
          String(rs.reduce((a, r) => a + r.errors + r.refused + r.lost + r.direct.errors + r.direct.lost, 0)),
        ]);
      }
    }
  }
  return table(rows);
}

/** Each `--variant` tree against this one: CPU per request other/this within a round (above 1: this tree is cheaper), median over rounds. */
function variantReport(results: readonly Measurement[], s: Settings): string {
  const rows = [['in flight', 'variant', 'tree', 'proxy CPU/request tree/this (per round)', 'origin behind it tree/this (per round)', 'origin directly tree/this (per round)']];
  const [ours, ...others] = s.trees;
  for (const c of s.concurrencies) {
    for (const variant of s.variants) {
      if (variant === 'floor: dgram') continue; // the same programs for every tree
      for (const other of others) {
        const proxy: number[] = [];
        const origin: number[] = [];
        const direct: number[] = [];
        for (const r of results) {
          if (r.tree !== other.label || r.variant !== variant || r.inFlight !== c) continue;
          const mine = results.find((x) => x.tree === ours!.label && x.variant === variant && x.inFlight === c && x.round === r.round);
          if (!mine) continue;
          proxy.push(perRequest(r).proxyMicros / perRequest(mine).proxyMicros);
          origin.push(perRequest(r).originMicros / perRequest(mine).originMicros);
          direct.push(perRequest(r).directMicros / perRequest(mine).directMicros);
        }
        rows.push([String(c), variant, other.label, each(proxy), each(origin), each(direct)]);
      }
    }
  }
  return table(rows);
}

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const bench = new Bench(s);
  const describe = [
    environment(),
    `confirmable GET ${bench.originUri} → 2.05 "${HELLO}" through coapsec proxy --forward (127.0.0.1:${bench.proxyPort}, no cache, NSTART ${s.nstart}) to coapsec serve; native load generator bench/native/coap-load.c (cc -O2), 1 MiB socket buffers`,
    bench.pin.describe.replace('server pinned to CPU 1', 'proxy pinned to CPU 1').replace('load generator (and clients) to CPU 0', 'origin and load generator to CPU 0'),
    ...s.trees.slice(1).map((t) => `variant ${t.label}: ${t.bin} as proxy and origin`),
    `${s.rounds} rounds × {${s.variants.join(', ')}} × trees {${s.trees.map((t) => t.label).join(', ')}} (order rotating) × in flight {${s.concurrencies.join(', ')}}; each ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured; CPU of proxy and origin from /proc over the window`,
  ];
  for (const line of describe) console.error(line);

  const results: Measurement[] = [];
  for (let round = 0; round < s.rounds; round++) {
    // The floor is the same programs whatever the tree: run once per round.
    const cases = s.variants.flatMap((variant) => (variant === 'floor: dgram' ? s.trees.slice(0, 1) : s.trees).map((tree) => ({ variant, tree })));
    const order = cases.map((_, i) => cases[(i + round) % cases.length]!);
    for (const { variant, tree } of order) {
      const setup = await bench.start(variant, tree);
      try {
        for (const inFlight of s.concurrencies) {
          const refused0 = setup.proxy.refusals() + setup.origin.refusals();
          const load = await bench.load(variant, setup, inFlight, false);
          const direct = await bench.load(variant, setup, inFlight, true);
          const r: Measurement = { ...load, direct, tree: tree.label, variant, round, refused: setup.proxy.refusals() + setup.origin.refusals() - refused0 };
          results.push(r);
          log(r, s.rounds);
        }
      } finally {
        await setup.stop();
      }
    }
  }

  console.log('');
  for (const line of describe) console.log(line);
  console.log(`total time ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  console.log(report(results, s));
  if (s.trees.length > 1) {
    console.log('');
    console.log(variantReport(results, s));
  }
  if (s.json) {
    writeFileSync(s.json, JSON.stringify({ settings: s, environment: describe, results }, null, 2) + '\n');
    console.log(`\nraw results written to ${s.json}`);
  }
}

runMain(main);
