/**
 * Server CPU per response under a native load generator (issue 21): `coapsec serve` plain and with
 * OSCORE, Debian's libcoap `coap-server-notls`, a Node `dgram` CoAP echo and the bench-only minimal
 * CoAP responder on coapsec's socket layer (bench/coap-minimal.ts), started one after
 * another, each pinned to one core while bench/native/coap-load.c (built here with `cc`) drives it
 * from the other with 1, 32 and 256 confirmable GETs in flight. CPU time per response is read from
 * /proc for the server process over the measurement window — far steadier on a shared machine than
 * throughput — and the generator reports its own CPU to show it is not the bottleneck.
 *
 * Then the coapsec *client*'s cost (bench/client.js, pinned to the load core) at 32 and 256 in
 * flight: plain against coap-server-notls, OSCORE against `coapsec serve` with OSCORE, printed
 * next to the coapsec server's figure; client and server CPU over the client's measurement window
 * only (ClientResult.window), as the server's is under native load. Before the plain client, the
 * bench-only minimal CoAP client (bench/coap-minimal-client.ts, a floor on coapsec's client socket
 * layer) against the same coap-server-notls: the client's figure less the floor's is what
 * coapsec's client layers cost.
 *
 *   node dist/bench/server-cpu.js                 # 3 rounds, about 5 minutes
 *   node dist/bench/server-cpu.js --quick         # 1 short round
 *   node dist/bench/server-cpu.js --rounds 5 --no-client --json out.json
 *   node dist/bench/server-cpu.js --servers coapsec,minimal --variant base=DIR   # A/B: DIR's `coapsec serve` too
 *   node dist/bench/server-cpu.js --servers coapsec,libcoap --clients floor,floor+promise,endpoint,plain   # the client's cost, rung by rung
 */
import { writeFileSync } from 'node:fs';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { CLIENT_RUNGS, median, OSCORE_MASTER_SALT, OSCORE_MASTER_SECRET, type ClientJob, type ClientResult } from './common.js';
import { resolve as resolvePath } from 'node:path';
import { BENCH_RECIPIENT, HELLO, HELLO_PATH, startCoapsecServe, startDgramEcho, startLibcoap, startMinimalCoap, startMinimalOscore, writeServerCredentials, type RunningServer } from './cpu-servers.js';
import { environment, fmt, forkAndAwait, here, parseCommonArgs, ratio, runMain, table } from './harness.js';
import {
  buildLoadGenerator,
  getRequest,
  OscoreRequestPool,
  perResponse,
  pinning,
  requestFile,
  runLoad,
  scratchDir,
  scratchFile,
  type LoadResult,
  type Pinning,
} from './native-load.js';

/** 'minimal CoAP' is bench/coap-minimal.ts: a floor, not a server (see there); 'minimal OSCORE' (bench/coap-minimal-oscore.ts, only when named in --servers) the same with OSCORE's AEAD work. */
const STANDARD_SERVERS = ['coapsec', 'coapsec OSCORE', 'libcoap', 'dgram echo', 'minimal CoAP'] as const;
const MINIMAL_OSCORE = 'minimal OSCORE';
/** A standard server, or `coapsec LABEL`: another tree's `coapsec serve` (plain), from `--variant LABEL=DIR`. */
type ServerName = string;
/** `--servers` names: the first word of each standard server, or `oscore` for coapsec OSCORE. */
const SERVER_KEYS: Record<string, ServerName> = { coapsec: 'coapsec', oscore: 'coapsec OSCORE', libcoap: 'libcoap', echo: 'dgram echo', minimal: 'minimal CoAP', 'minimal-oscore': MINIMAL_OSCORE };

const USAGE = `usage: node dist/bench/server-cpu.js [--quick] [--rounds N] [--duration MS] [--warmup MS] [--port-base P]
       [--concurrency 1,32,256] [--client-concurrency 32,256] [--no-client] [--json FILE]
       [--servers coapsec,oscore,libcoap,echo,minimal,minimal-oscore] [--variant LABEL=DIR (DIR's coapsec serve, plain; repeatable)]
       [--clients floor,plain,floor-oscore,oscore (default; also the rungs ${CLIENT_RUNGS.slice(1).join(',')}: common.ts CLIENT_RUNGS)]`;

/** Issue 21's targets at 32 in flight. */
const PLAIN_VS_LIBCOAP_MAX = 1.0;
const OSCORE_OVERHEAD_MAX_MICROS = 10;
const CLIENT_VS_SERVER_MAX = 1.0;

interface Settings {
  rounds: number;
  warmupMs: number;
  durationMs: number;
  portBase: number;
  concurrencies: number[];
  clientConcurrencies: number[];
  client: boolean;
  json: string | undefined;
  /** The servers measured, in their order of round 1 (rotating after). */
  servers: ServerName[];
  /** `coapsec LABEL` → DIR/bin/coapsec. */
  variants: Map<ServerName, string>;
  /** The clients measured, in this order: against coap-server-notls all but OSCORE, which goes to `coapsec serve` with OSCORE. */
  clients: ClientFlavour[];
}

/** 'floor' and 'floor-oscore': bench/coap-minimal-client.ts (plain, OSCORE); the rungs between the floor and the client (CLIENT_RUNGS); the coapsec client plain or OSCORE. */
type ClientFlavour = string;
const CLIENT_FLAVOURS: readonly ClientFlavour[] = [...CLIENT_RUNGS, 'plain', 'OSCORE', 'floor-oscore'];
/** The client flavours measured against coapsec serve with OSCORE (the others go to coap-server-notls); floor-oscore is bench/coap-minimal-client.ts minimalOscoreClient. */
const againstOscore = (flavour: ClientFlavour): boolean => flavour === 'OSCORE' || flavour === 'floor-oscore';

const list = (v: string): number[] =>
  v.split(',').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1 || n > 4096) throw new Error(`bad concurrency ${x}`);
    return n;
  });

function parseArgs(argv: string[]): Settings {
  const extra = {
    concurrencies: [1, 32, 256],
    clientConcurrencies: [32, 256],
    client: true,
    json: undefined as string | undefined,
    servers: [...STANDARD_SERVERS] as ServerName[],
    variants: new Map<ServerName, string>(),
    clients: ['floor', 'plain', 'floor-oscore', 'OSCORE'] as ClientFlavour[],
  };
  // The warm-up is long enough for coapsec's deduplication ring (100,000 records) to reach its
  // steady state before the window at every server's rate: a ring still growing inside the window
  // charges its copies to whichever server answers slowest (h21-oscore5 in BENCHMARKS.md).
  const common = parseCommonArgs(
    argv,
    { quick: false, rounds: 3, warmupMs: 5000, durationMs: 2500, portBase: 47_510, socketBuffer: 1 << 20 },
    { rounds: 1, warmupMs: 500, durationMs: 1000 },
    USAGE,
    (arg, value) => {
      if (arg === '--concurrency') extra.concurrencies = list(value());
      else if (arg === '--client-concurrency') extra.clientConcurrencies = list(value());
      else if (arg === '--no-client') extra.client = false;
      else if (arg === '--json') extra.json = value();
      else if (arg === '--servers') {
        extra.servers = value().split(',').map((key) => {
          const server = SERVER_KEYS[key];
          if (server === undefined) throw new Error(`unknown server ${key}\n${USAGE}`);
          return server;
        });
      } else if (arg === '--variant') {
        const v = value();
        const eq = v.indexOf('=');
        if (eq <= 0) throw new Error(`--variant wants LABEL=DIR, got ${v}`);
        extra.variants.set(`coapsec ${v.slice(0, eq)}`, resolvePath(v.slice(eq + 1), 'bin/coapsec'));
      } else if (arg === '--clients') {
        extra.clients = value().split(',').map((key) => {
          const flavour = key === 'oscore' ? 'OSCORE' : key;
          if (!CLIENT_FLAVOURS.includes(flavour)) throw new Error(`unknown client ${key}\n${USAGE}`);
          return flavour;
        });
      } else return false;
      return true;
    },
  );
  extra.servers.push(...extra.variants.keys());
  return { ...common, ...extra };
}

interface ServerResult extends LoadResult {
  server: ServerName;
  round: number;
  /** Requests the server refused (OSCORE), logged by it during this measurement. */
  refused: number;
}

interface ClientRun {
  flavour: ClientFlavour;
  concurrency: number;
  round: number;
  clientMicros: number;
  serverMicros: number;
  rps: number;
  errors: number;
  firstError?: string;
}

/** Everything one run keeps between measurements: the generator, its files, the OSCORE counter. */
class Bench {
  readonly binary = buildLoadGenerator();
  readonly pin: Pinning = pinning();
  readonly plainRequests = scratchFile(this.binary, 'plain.req', requestFile([getRequest(HELLO_PATH)]));
  readonly pool = new OscoreRequestPool(
    new OscoreSecurityContext(
      { masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: Buffer.alloc(0), recipientIds: [Buffer.from('01', 'hex')] },
      new VolatileSequence(),
    ).sender,
  );
  /** The highest OSCORE rate seen per in-flight count, to size the next pool. */
  private readonly oscoreRate = new Map<number, number>();

  constructor(readonly s: Settings) {}

  port(server: ServerName): number {
    return this.s.portBase + this.s.servers.indexOf(server);
  }

  start(server: ServerName): Promise<RunningServer> {
    const scratch = scratchDir(this.binary);
    const variantBin = this.s.variants.get(server);
    if (variantBin !== undefined) return startCoapsecServe(this.pin, this.port(server), scratch, undefined, 20_000, variantBin);
    switch (server) {
      case 'coapsec':
        return startCoapsecServe(this.pin, this.port(server), scratch);
      case 'coapsec OSCORE':
        // Fresh state per start: a context that resumes would challenge with Echo (Appendix B.1.2).
        return startCoapsecServe(this.pin, this.port(server), scratch, writeServerCredentials(scratch, [BENCH_RECIPIENT]));
      case 'libcoap':
        return startLibcoap(this.pin, this.port(server));
      case 'dgram echo':
        return startDgramEcho(this.pin, this.port(server));
      case 'minimal CoAP':
        return startMinimalCoap(this.pin, this.port(server));
      case MINIMAL_OSCORE:
        return startMinimalOscore(this.pin, this.port(server));
      default:
        throw new Error(`unknown server ${server}`);
    }
  }

  /**
   * One measurement. OSCORE gets a pool of fresh requests sized from the best rate seen so far
   * (50 % spare); if it still runs dry, the measurement is repeated with a pool twice as large.
   */
  async load(server: ServerName, running: RunningServer, inFlight: number): Promise<LoadResult> {
    const oscore = server === 'coapsec OSCORE' || server === MINIMAL_OSCORE;
    const windowSeconds = (this.s.warmupMs + this.s.durationMs) / 1000;
    let poolSize = Math.ceil((this.oscoreRate.get(inFlight) ?? 40_000) * windowSeconds * 1.5) + 2 * inFlight;
    for (let attempt = 0; attempt < 3; attempt++) {
      const requests = oscore ? scratchFile(this.binary, 'oscore.req', requestFile(this.pool.requests(HELLO_PATH, poolSize))) : this.plainRequests;
      const r = await runLoad(this.binary, this.pin, { port: this.port(server), inFlight, warmupMs: this.s.warmupMs, durationMs: this.s.durationMs, requests, serverPid: running.pid });
      if (!r.exhausted) {
        if (oscore) this.oscoreRate.set(inFlight, Math.max(this.oscoreRate.get(inFlight) ?? 0, r.responses / r.seconds));
        return r;
      }
      poolSize *= 2;
    }
    throw new Error(`${server}: the OSCORE request pool ran dry three times at ${inFlight} in flight`);
  }

  /** The coapsec client (bench/client.js) pinned to the load core, against `running`. */
  async client(flavour: ClientRun['flavour'], running: RunningServer, port: number, concurrency: number, round: number): Promise<ClientRun> {
    const job: ClientJob = {
      impl: 'coapsec',
      port,
      concurrency,
      warmupMs: this.s.warmupMs,
      durationMs: this.s.durationMs,
      maxRequests: 50_000_000,
      drainMs: 3000,
      socketBuffer: 1 << 20,
      variant: againstOscore(flavour) ? 'oscore' : 'plain',
      minimalClient: flavour === 'floor' || flavour === 'floor-oscore',
      ...(flavour !== 'floor' && flavour !== 'plain' && !againstOscore(flavour) ? { clientRung: flavour } : {}),
      // Its Partial IVs come after every one the generator has used and before any it will use.
      sequenceStart: this.pool.skip(50_000_000),
      path: HELLO_PATH,
      payloadLength: HELLO.length,
      serverPid: running.pid,
    };
    const limit = job.warmupMs + job.durationMs + job.drainMs + 10_000;
    const { message } = await forkAndAwait<ClientResult>(here('client.js'), [JSON.stringify(job)], 'result', limit, false, this.pin.load);
    // The steady-state window, as for the server under native load: warm-up and JIT excluded.
    const w = message.window;
    return {
      flavour,
      concurrency,
      round,
      clientMicros: w ? w.clientCpuMicros / w.completed : NaN,
      serverMicros: w ? w.serverCpuMicros / w.completed : NaN,
      rps: message.rps,
      errors: message.errors + message.abandoned,
      ...(message.firstError !== undefined ? { firstError: message.firstError } : {}),
    };
  }
}

function logLoad(r: ServerResult, rounds: number): void {
  const x = perResponse(r);
  console.error(
    `round ${r.round + 1}/${rounds}  ${r.server.padEnd(14)} ${String(r.inFlight).padStart(3)} in flight  ${fmt(x.rps).padStart(6)} resp/s  server ${fmt(x.serverMicros, 1)} µs/resp` +
      `  generator ${fmt(x.generatorMicros, 1)} µs/resp (${fmt(100 * x.generatorLoad)} % of a core)` +
      (r.errors || r.lost || r.refused ? `  errors ${r.errors} lost ${r.lost} refused ${r.refused}` : ''),
  );
}

// --- report ----------------------------------------------------------------------------------

function serverTable(results: readonly ServerResult[], s: Settings): string {
  const rows = [['in flight', 'server', 'CPU µs/response (median)', '(min–max)', 'responses/s', 'load gen µs/response', 'load gen % of a core (max)', 'non-2.xx or refused', 'lost']];
  for (const c of s.concurrencies) {
    for (const server of s.servers) {
      const rs = results.filter((r) => r.server === server && r.inFlight === c);
      if (rs.length === 0) continue;
      const xs = rs.map(perResponse);
      const micros = xs.map((x) => x.serverMicros);
      rows.push([
        String(c),
        server,
        fmt(median(micros), 1),
        `${fmt(Math.min(...micros), 1)}–${fmt(Math.max(...micros), 1)}`,
        fmt(median(xs.map((x) => x.rps))),
        fmt(median(xs.map((x) => x.generatorMicros)), 1),
        fmt(100 * Math.max(...xs.map((x) => x.generatorLoad))),
        String(rs.reduce((a, r) => a + r.errors + r.refused, 0)),
        String(rs.reduce((a, r) => a + r.lost, 0)),
      ]);
    }
  }
  return table(rows);
}

/** Median over rounds of f(a's result, b's result) in the same round. */
function perRound(results: readonly ServerResult[], a: ServerName, b: ServerName, c: number, f: (a: number, b: number) => number): number {
  const values: number[] = [];
  for (const r of results) {
    if (r.server !== a || r.inFlight !== c) continue;
    const other = results.find((x) => x.server === b && x.inFlight === c && x.round === r.round);
    if (other) values.push(f(perResponse(r).serverMicros, perResponse(other).serverMicros));
  }
  return median(values);
}

/** Median over rounds of (coapsec OSCORE − coapsec) − (minimal OSCORE − minimal CoAP): coapsec's own OSCORE cost above the AEAD floor. */
function perRoundOf4(results: readonly ServerResult[], c: number): number {
  const at = (server: ServerName, round: number): number => {
    const r = results.find((x) => x.server === server && x.inFlight === c && x.round === round);
    return r === undefined ? NaN : perResponse(r).serverMicros;
  };
  const rounds = [...new Set(results.map((r) => r.round))];
  const values = rounds.map((k) => at('coapsec OSCORE', k) - at('coapsec', k) - (at(MINIMAL_OSCORE, k) - at('minimal CoAP', k))).filter(Number.isFinite);
  return median(values);
}

function ratioTable(results: readonly ServerResult[], s: Settings): string {
  const rows = [
    [
      'in flight',
      'coapsec/libcoap',
      `met? (≤ ${PLAIN_VS_LIBCOAP_MAX.toFixed(1)}× at 32)`,
      'coapsec/dgram echo',
      'libcoap/dgram echo',
      'coapsec − minimal CoAP µs',
      'minimal CoAP/libcoap',
      'OSCORE − plain µs',
      `met? (≤ ${OSCORE_OVERHEAD_MAX_MICROS} µs at 32)`,
      'OSCORE/libcoap',
      'minimal OSCORE − minimal CoAP µs',
      'OSCORE − plain above it µs',
      ...[...s.variants.keys()].map((v) => `${v}/coapsec`),
    ],
  ];
  const divide = (a: number, b: number): number => a / b;
  for (const c of s.concurrencies) {
    const vsLibcoap = perRound(results, 'coapsec', 'libcoap', c, divide);
    const overhead = perRound(results, 'coapsec OSCORE', 'coapsec', c, (a, b) => a - b);
    rows.push([
      String(c),
      fmt(vsLibcoap, 2) + '×',
      c !== 32 || !Number.isFinite(vsLibcoap) ? '-' : vsLibcoap <= PLAIN_VS_LIBCOAP_MAX ? 'yes' : 'NO',
      fmt(perRound(results, 'coapsec', 'dgram echo', c, divide), 2) + '×',
      fmt(perRound(results, 'libcoap', 'dgram echo', c, divide), 2) + '×',
      fmt(perRound(results, 'coapsec', 'minimal CoAP', c, (a, b) => a - b), 1),
      fmt(perRound(results, 'minimal CoAP', 'libcoap', c, divide), 2) + '×',
      fmt(overhead, 1),
      c !== 32 || !Number.isFinite(overhead) ? '-' : overhead <= OSCORE_OVERHEAD_MAX_MICROS ? 'yes' : 'NO',
      fmt(perRound(results, 'coapsec OSCORE', 'libcoap', c, divide), 2) + '×',
      fmt(perRound(results, MINIMAL_OSCORE, 'minimal CoAP', c, (a, b) => a - b), 1),
      fmt(perRoundOf4(results, c), 1),
      ...[...s.variants.keys()].map((v) => fmt(perRound(results, v, 'coapsec', c, divide), 3) + '×'),
    ]);
  }
  return table(rows);
}

/**
 * The client rows: the minimal client (floor), the coapsec client plain and OSCORE; each against the
 * coapsec server's own figure under native load (the target), and the plain client's excess over
 * the floor measured against the same server in the same round (coapsec's client layers).
 */
function clientTable(runs: readonly ClientRun[], results: readonly ServerResult[], s: Settings): string {
  const rows = [
    [
      'in flight',
      'client',
      'against',
      'client CPU µs/request',
      '(min–max)',
      'that server µs/request',
      'req/s',
      'coapsec server µs/response (native load)',
      'client/server',
      `met? (≤ ${CLIENT_VS_SERVER_MAX.toFixed(1)}×)`,
      'client − floor µs (per round, median)',
      'errors',
    ],
  ];
  for (const c of s.clientConcurrencies) {
    for (const flavour of s.clients) {
      const rs = runs.filter((r) => r.flavour === flavour && r.concurrency === c);
      if (rs.length === 0) continue;
      const ours: ServerName = againstOscore(flavour) ? 'coapsec OSCORE' : 'coapsec';
      const serverMicros = median(results.filter((r) => r.server === ours && r.inFlight === c).map((r) => perResponse(r).serverMicros));
      const micros = rs.map((r) => r.clientMicros);
      const clientMicros = median(micros);
      const vs = clientMicros / serverMicros;
      const aboveFloor = rs.flatMap((r) => {
        const floorFlavour = againstOscore(flavour) ? 'floor-oscore' : 'floor';
        const floor = runs.find((f) => f.flavour === floorFlavour && f.concurrency === c && f.round === r.round);
        return floor === undefined ? [] : [r.clientMicros - floor.clientMicros];
      });
      rows.push([
        String(c),
        flavour === 'floor' ? 'minimal (floor)' : flavour === 'floor-oscore' ? 'minimal OSCORE (floor)' : flavour === 'plain' || flavour === 'OSCORE' ? `coapsec ${flavour}` : flavour,
        againstOscore(flavour) ? 'coapsec serve (OSCORE)' : 'coap-server-notls',
        fmt(clientMicros, 1),
        `${fmt(Math.min(...micros), 1)}–${fmt(Math.max(...micros), 1)}`,
        fmt(median(rs.map((r) => r.serverMicros)), 1),
        fmt(median(rs.map((r) => r.rps))),
        fmt(serverMicros, 1),
        ratio(clientMicros, serverMicros),
        flavour.startsWith('floor') || !Number.isFinite(vs) ? '-' : vs <= CLIENT_VS_SERVER_MAX ? 'yes' : 'NO',
        flavour.startsWith('floor') || aboveFloor.length === 0 ? '-' : fmt(median(aboveFloor), 1),
        String(rs.reduce((a, r) => a + r.errors, 0)),
      ]);
    }
  }
  return table(rows);
}

// --- main ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const bench = new Bench(s);
  const describe = [
    environment(),
    `confirmable GET ${HELLO_PATH} → 2.05 "${HELLO}" (18 bytes), 127.0.0.1 ports ${s.portBase}–${s.portBase + s.servers.length - 1}; native load generator bench/native/coap-load.c (cc -O2), 1 MiB socket buffers`,
    bench.pin.describe,
    ...[...s.variants].map(([server, bin]) => `${server}: ${bin} serve`),
    `${s.rounds} rounds × {${s.servers.join(', ')}} (started one after another, order rotating) × in flight {${s.concurrencies.join(', ')}}; each ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured; CPU of the server process from /proc over the window`,
    ...(s.client ? [`clients (bench/client.js) at {${s.clientConcurrencies.join(', ')}} in flight: {${s.clients.join(', ')}}, OSCORE against coapsec serve, the others against coap-server-notls`] : []),
  ];
  for (const line of describe) console.error(line);

  const results: ServerResult[] = [];
  const clientRuns: ClientRun[] = [];
  for (let round = 0; round < s.rounds; round++) {
    const order = s.servers.map((_, i) => s.servers[(i + round) % s.servers.length]!);
    for (const server of order) {
      const running = await bench.start(server);
      try {
        for (const inFlight of s.concurrencies) {
          const refused0 = running.refusals();
          const load = await bench.load(server, running, inFlight);
          const r: ServerResult = { ...load, server, round, refused: running.refusals() - refused0 };
          results.push(r);
          logLoad(r, s.rounds);
        }
        if (s.client && (server === 'libcoap' || server === 'coapsec OSCORE')) {
          for (const c of s.clientConcurrencies) {
            for (const flavour of s.clients.filter((f) => againstOscore(f) === (server === 'coapsec OSCORE'))) {
              const run = await bench.client(flavour, running, bench.port(server), c, round);
              clientRuns.push(run);
              console.error(
                `round ${round + 1}/${s.rounds}  client ${run.flavour.padEnd(16)} → ${server.padEnd(14)} ${String(c).padStart(3)} in flight  ${fmt(run.rps).padStart(6)} req/s` +
                  `  client ${fmt(run.clientMicros, 1)} µs/req  server ${fmt(run.serverMicros, 1)} µs/req${run.errors ? `  errors ${run.errors} (${run.firstError ?? '?'})` : ''}`,
              );
            }
          }
        }
      } finally {
        await running.stop();
      }
    }
  }

  console.log('');
  for (const line of describe) console.log(line);
  console.log(`total time ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  console.log(serverTable(results, s));
  console.log('');
  console.log(ratioTable(results, s));
  if (s.client) {
    console.log('');
    console.log(clientTable(clientRuns, results, s));
  }
  if (s.json) {
    writeFileSync(s.json, JSON.stringify({ settings: s, environment: describe, results, clientRuns }, null, 2) + '\n');
    console.log(`\nraw results written to ${s.json}`);
  }
}

runMain(main);
