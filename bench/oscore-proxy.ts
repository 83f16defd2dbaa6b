/**
 * OSCORE-capable proxy benchmark (issue 6, draft-ietf-core-oscore-capable-proxies).
 *
 * GET /bench (2.05, 20-byte payload) at 32 in flight, OSCORE end to end (client ↔ origin, the
 * origin's resource requires OSCORE), coapsec everywhere, each role in its own process, loopback:
 *
 *   direct        client ══════════════════════════════▶ origin            (C–S only)
 *   plain-proxy   client ══ C–S ══▶ ForwardProxy ══ C–S ══▶ origin          (the proxy holds no
 *                 OSCORE context: it forwards the end-to-end protected request as it is)
 *   oscore-proxy  client ══ C–P(C–S) ══▶ OSCORE-capable ForwardProxy ══ C–S ══▶ origin: two
 *                 layers on the client→proxy leg (Appendix B.1). The proxy removes its C–P
 *                 layer (§2.4 loop), authorizes the client by that context (allowList, §2.4 step
 *                 4), forwards the end-to-end protected request, and protects the response with
 *                 C–P again (§2.5); the client removes C–P, then C–S (§2.6).
 *
 * Both proxied rows use the same client path (CoapClient `via`, RouteSecurity): one hop, with or
 * without a context. Origin and proxies are long-lived children of this process (this file, run
 * with `child …`); every measurement starts a fresh client child (this file, `child client JOB`).
 * OSCORE sequence numbers: the origin's and the proxy's contexts outlive the client processes, so
 * each client process starts its Sender Sequence Numbers (for C–S and for C–P) at its own range
 * (measurement × 50 000 000), and the receivers' replay windows are 1024 (reordering at 32 in
 * flight). Rounds rotate the contenders' order; tables show medians. CPU time of the origin and the
 * proxy comes from /proc around each measurement; the client reports its own.
 * Target: oscore-proxy ≥ 0.75× plain-proxy (req/s).
 *
 *   node dist/bench/oscore-proxy.js [--quick] [--rounds N] [--duration MS] [--warmup MS]
 *        [--concurrency 32] [--contenders direct,plain-proxy,oscore-proxy] [--port-base P (47390)]
 *        [--socket-buffer BYTES]
 *        [--profile DIR]   after the rounds, one extra measurement of each proxied contender with
 *                          the proxy process under the V8 sampling profiler (node:inspector);
 *                          writes DIR/oscore-proxy-<label>.cpuprofile and prints the top costs
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import type { RouteHop } from '../src/client/route.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { allowList } from '../src/proxy/oscore-proxy.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { BENCH_NSTART, OSCORE_MASTER_SALT, OSCORE_MASTER_SECRET, OSCORE_REPLAY_WINDOW, PAYLOAD, Recorder, percentile, type ClientResult } from './common.js';
import { ask, profileSummary, serveChildControl } from './child-control.js';
import { busiestCpu, perRequest, perRoundRatio, summarizeProxied, totalCpu, type ProxiedResult } from './proxy-results.js';
import { environment, fmt, forkAndAwait, here, met, parseCommonArgs, processCpuMicros, ratio, runMain, table } from './harness.js';

const HOST = '127.0.0.1';
const USAGE = `usage: node dist/bench/oscore-proxy.js [--quick] [--rounds N] [--duration MS] [--warmup MS] [--concurrency 32]
       [--contenders direct,plain-proxy,oscore-proxy] [--port-base P (default 47390)] [--socket-buffer BYTES] [--profile DIR]`;

const LABELS = ['direct', 'plain-proxy', 'oscore-proxy'] as const;
type Label = (typeof LABELS)[number];
const TARGET = 0.75; // oscore-proxy / plain-proxy

// --- keying material (benchmark only) ----------------------------------------------------------

/** Client ↔ origin (end to end): the same context as bench/oscore.ts (client ID empty, origin 01). */
const E2E = { masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, client: Buffer.alloc(0), origin: Buffer.from('01', 'hex') };
/** Client ↔ proxy (C–P, the proxy's own layer): client ID 20, proxy ID 02, as in Appendix B.1's test. */
const CP = { masterSecret: Buffer.from('101112131415161718191a1b1c1d1e1f', 'hex'), masterSalt: Buffer.from('5a5a5a5a5a5a5a5a', 'hex'), client: Buffer.from('20', 'hex'), proxy: Buffer.from('02', 'hex') };
/** The name the proxy's C–P context authenticates the client as (allowList). */
const CLIENT_NAME = 'bench-client';

// --- children: origin, proxies, client -----------------------------------------------------------

interface ProxyStats {
  type: 'stats';
  forwarded: number;
}

interface Job {
  label: Label;
  originPort: number;
  proxyPort?: number;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  drainMs: number;
  maxRequests: number;
  socketBuffer: number;
  sequenceStart: number;
}

async function serverChild(argv: string[]): Promise<void> {
  const [role, portArg, bufferArg] = argv;
  const port = Number(portArg);
  const buffer = Number(bufferArg ?? 1 << 20);
  if (!Number.isInteger(port) || port <= 0 || port > 0xffff || !(buffer >= 0)) throw new Error('usage: oscore-proxy.js child origin|plain-proxy|oscore-proxy <port> <socket buffer>');
  const buffers = buffer > 0 ? { receiveBufferSize: buffer, sendBufferSize: buffer } : {};
  let stop: () => Promise<void>;
  let stats = (): ProxyStats => ({ type: 'stats', forwarded: 0 });
  if (role === 'origin') {
    const security = new OscoreServerSecurity([
      new OscoreSecurityContext(
        { masterSecret: E2E.masterSecret, masterSalt: E2E.masterSalt, senderId: E2E.origin, recipientIds: [E2E.client], replayWindow: OSCORE_REPLAY_WINDOW, name: CLIENT_NAME },
        new VolatileSequence(),
      ),
    ]);
    const server = await CoapServer.listen({ host: HOST, port, parameters: { nstart: BENCH_NSTART }, security, ...buffers });
    server.resource('/bench', { GET: () => ({ code: 69 /* 2.05 Content */, payload: PAYLOAD }) }, { requireOscore: true });
    stop = () => server.close();
  } else if (role === 'plain-proxy' || role === 'oscore-proxy') {
    // The OSCORE-capable proxy: a server-side context per client (here one), forwarding only for
    // clients its C–P layer authenticated (§2.4 step 4), as the B.1 test and `coapsec proxy --allow`.
    const security =
      role === 'oscore-proxy'
        ? new OscoreServerSecurity([
            new OscoreSecurityContext(
              { masterSecret: CP.masterSecret, masterSalt: CP.masterSalt, senderId: CP.proxy, recipientIds: [CP.client], replayWindow: OSCORE_REPLAY_WINDOW, name: CLIENT_NAME },
              new VolatileSequence(),
            ),
          ])
        : undefined;
    const server = await CoapServer.listen({ host: HOST, port, parameters: { nstart: BENCH_NSTART }, ...(security ? { security } : {}), ...buffers });
    const upstream = new CoapClient({ parameters: { nstart: BENCH_NSTART }, ...buffers });
    const proxy = new ForwardProxy(server, { upstream, allowDestinations: ['127.0.0.1'], ...(security ? { authorize: allowList([CLIENT_NAME]) } : {}) });
    stats = () => ({ type: 'stats', forwarded: proxy.stats.forwarded });
    stop = async () => {
      await proxy.close();
      await upstream.close();
      await server.close();
    };
  } else {
    throw new Error(`unknown role ${role}`);
  }

  serveChildControl(port, stats, stop);
}

/** The client child: a closed loop of `concurrency` GETs, as bench/client.ts, with this file's routes. */
async function clientChild(job: Job): Promise<ClientResult> {
  const buffers = job.socketBuffer > 0 ? { receiveBufferSize: job.socketBuffer, sendBufferSize: job.socketBuffer } : {};
  const e2e = new OscoreClientSecurity(
    new OscoreSecurityContext({ masterSecret: E2E.masterSecret, masterSalt: E2E.masterSalt, senderId: E2E.client, recipientIds: [E2E.origin], name: 'origin' }, new VolatileSequence(job.sequenceStart)),
  );
  let hops: readonly RouteHop[] | undefined;
  if (job.label === 'plain-proxy') hops = [{ uri: `coap://${HOST}:${job.proxyPort}` }];
  else if (job.label === 'oscore-proxy') {
    const cp = new OscoreSecurityContext({ masterSecret: CP.masterSecret, masterSalt: CP.masterSalt, senderId: CP.client, recipientIds: [CP.proxy], name: 'proxy' }, new VolatileSequence(job.sequenceStart));
    hops = [{ uri: `coap://${HOST}:${job.proxyPort}`, context: cp }];
  }
  const client = new CoapClient({ parameters: { nstart: BENCH_NSTART }, ...buffers, security: () => e2e, ...(hops ? { via: () => hops } : {}) });
  const uri = `coap://${HOST}:${job.originPort}/bench`;
  const endpoint = await client.endpoint(4, 'coap');
  let firstError: string | undefined;

  const recorder = new Recorder();
  const cpu0 = process.cpuUsage();
  let totalCompleted = 0;
  const t0 = performance.now();
  recorder.start = t0 + job.warmupMs;
  recorder.end = recorder.start + job.durationMs;
  let started = 0;
  let inFlight = 0;
  let errors = 0;
  let onIdle: (() => void) | undefined;
  const next = (): void => {
    if (started >= job.maxRequests || performance.now() >= recorder.end) {
      if (inFlight === 0) onIdle?.();
      return;
    }
    started++;
    inFlight++;
    const sentAt = performance.now();
    const done = (ok: boolean): void => {
      inFlight--;
      if (ok) {
        totalCompleted++;
        recorder.record(sentAt, performance.now());
        next();
      } else {
        errors++;
        setImmediate(next);
      }
    };
    client.get(uri).then(
      (r) => {
        const ok = r.code === 69 && r.payload.length === PAYLOAD.length;
        if (!ok) firstError ??= `response ${r.code >> 5}.${String(r.code & 31).padStart(2, '0')} ${Buffer.from(r.payload).toString('utf8', 0, 80)}`;
        done(ok);
      },
      (e: unknown) => {
        firstError ??= String((e as Error)?.message ?? e);
        done(false);
      },
    );
  };
  // Ramp up, 16 chains every 2 ms (as bench/client.ts).
  let chains = 0;
  const ramp = (): void => {
    for (let i = 0; i < 16 && chains < job.concurrency; i++, chains++) next();
    if (chains < job.concurrency) setTimeout(ramp, 2);
  };
  ramp();
  await new Promise<void>((resolve) => {
    const deadline = setTimeout(resolve, job.warmupMs + job.durationMs + job.drainMs);
    onIdle = () => {
      clearTimeout(deadline);
      resolve();
    };
    if (inFlight === 0) onIdle();
  });
  const abandoned = inFlight;
  const cpu = process.cpuUsage(cpu0);
  const retransmissions = endpoint.stats().retransmissions;
  await Promise.race([client.close().catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
  const sorted = recorder.sortedLatencies();
  const seconds = job.durationMs / 1000;
  return {
    type: 'result',
    impl: 'coapsec',
    concurrency: job.concurrency,
    completed: recorder.completed,
    seconds,
    rps: recorder.completed / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    errors,
    retransmissions,
    abandoned,
    totalCompleted,
    clientCpuMicros: cpu.user + cpu.system,
    clientSystemMicros: cpu.system,
    ...(firstError !== undefined ? { firstError } : {}),
  };
}

// --- orchestrator ------------------------------------------------------------------------------

interface Contender {
  label: Label;
  originPort: number;
  origin: ChildProcess;
  proxyPort?: number;
  proxy?: ChildProcess;
}

interface Result extends ProxiedResult {
  label: Label;
}

let measurements = 0;

async function measure(c: Contender, s: ReturnType<typeof parseCommonArgs>, concurrency: number, round: number): Promise<Result> {
  const job: Job = {
    label: c.label,
    originPort: c.originPort,
    ...(c.proxyPort !== undefined ? { proxyPort: c.proxyPort } : {}),
    concurrency,
    warmupMs: s.warmupMs,
    durationMs: s.durationMs,
    drainMs: 3000,
    maxRequests: 50_000_000,
    socketBuffer: s.socketBuffer,
    // Disjoint Sender Sequence Number ranges per client process (each starts at most maxRequests).
    sequenceStart: ++measurements * 50_000_000,
  };
  const stats0 = c.proxy ? await ask<ProxyStats>(c.proxy, { type: 'stats' }, 'stats') : undefined;
  const origin0 = processCpuMicros(c.origin.pid);
  const proxy0 = c.proxy ? processCpuMicros(c.proxy.pid) : NaN;
  const limit = job.warmupMs + job.durationMs + job.drainMs + 10_000;
  const { message } = await forkAndAwait<ClientResult>(here('oscore-proxy.js'), ['child', 'client', JSON.stringify(job)], 'result', limit, false);
  const originCpuMicros = processCpuMicros(c.origin.pid) - origin0;
  const proxyCpuMicros = c.proxy ? processCpuMicros(c.proxy.pid) - proxy0 : NaN;
  const stats1 = c.proxy ? await ask<ProxyStats>(c.proxy, { type: 'stats' }, 'stats') : undefined;
  return { ...message, label: c.label, round, originCpuMicros, proxyCpuMicros, upstream: stats0 && stats1 ? stats1.forwarded - stats0.forwarded : NaN };
}

function log(round: number, rounds: number, r: Result): void {
  console.error(
    `round ${round + 1}/${rounds}  ${String(r.concurrency).padStart(3)} in flight  ${r.label.padEnd(12)}  ${fmt(r.rps).padStart(7)} req/s  p50 ${fmt(r.p50, 3)} ms  p99 ${fmt(r.p99, 3)} ms` +
      `  cpu µs/req client ${fmt(perRequest(r.clientCpuMicros, r), 1)} proxy ${fmt(perRequest(r.proxyCpuMicros, r), 1)} origin ${fmt(perRequest(r.originCpuMicros, r), 1)}` +
      (Number.isFinite(r.upstream) ? `  upstream/req ${fmt(r.upstream / r.totalCompleted, 3)}` : '') +
      (r.errors || r.abandoned || r.retransmissions > 0 ? `  errors ${r.errors} abandoned ${r.abandoned} retx ${r.retransmissions}${r.firstError ? ` (first: ${r.firstError})` : ''}` : ''),
  );
}

// --- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  let concurrencies = [32];
  let labels: Label[] = [...LABELS];
  let profileDir: string | undefined;
  const s = parseCommonArgs(
    process.argv.slice(2),
    { quick: false, rounds: 5, warmupMs: 500, durationMs: 2500, portBase: 47_390, socketBuffer: 1 << 20 },
    { rounds: 2, warmupMs: 300, durationMs: 800 },
    USAGE,
    (arg, value) => {
      if (arg === '--concurrency') concurrencies = value().split(',').map(Number);
      else if (arg === '--contenders') {
        labels = value().split(',') as Label[];
        for (const l of labels) if (!(LABELS as readonly string[]).includes(l)) throw new Error(`unknown contender ${l} (${LABELS.join(', ')})`);
      } else if (arg === '--profile') profileDir = path.resolve(value());
      else return false;
      return true;
    },
  );
  for (const c of concurrencies) if (!Number.isInteger(c) || c < 1 || c > 256) throw new Error('--concurrency: integers in 1..256');
  const started = performance.now();
  const ports = { origin: s.portBase, plainProxy: s.portBase + 1, oscoreProxy: s.portBase + 2 };
  const describe = [
    environment(),
    `OSCORE GET /bench (20-byte 2.05; AES-CCM-16-64-128, replay windows ${OSCORE_REPLAY_WINDOW}), coapsec everywhere, loopback; origin ${ports.origin} (requireOscore, C–S context), ` +
      `plain ForwardProxy ${ports.plainProxy} (no OSCORE), OSCORE-capable ForwardProxy ${ports.oscoreProxy} (C–P context, allowList); NSTART 256 everywhere, socket buffers ${s.socketBuffer} B`,
    `${s.rounds} rounds × in-flight {${concurrencies.join(', ')}} × {${labels.join(', ')}}; each ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured; a fresh client process per measurement`,
  ];
  for (const line of describe) console.error(line);

  const self = here('oscore-proxy.js');
  const start = async (args: string[]): Promise<ChildProcess> => (await forkAndAwait<{ type: 'ready' }>(self, ['child', ...args], 'ready', 10_000, true)).child;
  const buf = String(s.socketBuffer);
  const origin = await start(['origin', String(ports.origin), buf]);
  const plainProxy = labels.includes('plain-proxy') ? await start(['plain-proxy', String(ports.plainProxy), buf]) : undefined;
  const oscoreProxy = labels.includes('oscore-proxy') ? await start(['oscore-proxy', String(ports.oscoreProxy), buf]) : undefined;
  const all: Record<Label, Contender> = {
    direct: { label: 'direct', originPort: ports.origin, origin },
    'plain-proxy': { label: 'plain-proxy', originPort: ports.origin, origin, proxyPort: ports.plainProxy, proxy: plainProxy! },
    'oscore-proxy': { label: 'oscore-proxy', originPort: ports.origin, origin, proxyPort: ports.oscoreProxy, proxy: oscoreProxy! },
  };
  const contenders = labels.map((l) => all[l]);

  const results: Result[] = [];
  let order = 0;
  for (let round = 0; round < s.rounds; round++) {
    for (const concurrency of concurrencies) {
      const shift = order++ % contenders.length;
      for (const c of [...contenders.slice(shift), ...contenders.slice(0, shift)]) {
        const r = await measure(c, s, concurrency, round);
        results.push(r);
        log(round, s.rounds, r);
      }
    }
  }

  const profiles: string[] = [];
  if (profileDir) {
    mkdirSync(profileDir, { recursive: true });
    for (const label of ['plain-proxy', 'oscore-proxy'] as const) {
      const c = all[label];
      if (!c.proxy || !labels.includes(label)) continue;
      const file = path.join(profileDir, `oscore-proxy-${label}.cpuprofile`);
      await ask(c.proxy, { type: 'profile-start' }, 'profiling');
      const r = await measure(c, s, concurrencies[concurrencies.length - 1]!, -1);
      await ask(c.proxy, { type: 'profile-stop', file }, 'profiled', 20_000);
      console.error(`profiled: ${file}`);
      log(0, 1, r);
      profiles.push(
        `Profile of the proxy process, '${label}' at ${r.concurrency} in flight (${fmt(r.rps)} req/s under the profiler; proxy ${fmt(perRequest(r.proxyCpuMicros, r), 1)} µs CPU/req) — ${file}\n\n` +
          profileSummary(JSON.parse(readFileSync(file, 'utf8'))),
      );
    }
  }

  console.log('');
  for (const line of describe) console.log(line);
  console.log(`total time ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  const rows: string[][] = [
    ['in flight', 'path', 'req/s (median)', 'req/s (min–max)', 'p50 ms', 'p99 ms', 'CPU µs/req client', 'CPU µs/req proxy', 'CPU µs/req origin', 'CPU µs/req total', 'upstream/req', 'errors', 'retx'],
  ];
  for (const c of concurrencies) {
    for (const label of labels) {
      const x = summarizeProxied(results, label, c);
      if (!x) continue;
      rows.push([
        String(c),
        label,
        fmt(x.rps),
        `${fmt(x.rpsMin)}–${fmt(x.rpsMax)}`,
        fmt(x.p50, 3),
        fmt(x.p99, 3),
        fmt(x.client, 1),
        fmt(x.proxy, 1),
        fmt(x.origin, 1),
        fmt(totalCpu(x), 1),
        fmt(x.upstreamPerRequest, 3),
        String(x.errors),
        String(x.retransmissions),
      ]);
    }
  }
  console.log(table(rows));
  console.log('');
  const ratios: string[][] = [['in flight', 'ratio', 'target', 'req/s ratio (medians)', 'met?', 'per-round req/s ratio (median)', 'by total CPU', 'by busiest process']];
  const pairs: Array<[Label, Label, number | undefined]> = [
    ['oscore-proxy', 'plain-proxy', TARGET],
    ['oscore-proxy', 'direct', undefined],
    ['plain-proxy', 'direct', undefined],
  ];
  for (const c of concurrencies) {
    for (const [a, b, target] of pairs) {
      const x = summarizeProxied(results, a, c);
      const y = summarizeProxied(results, b, c);
      if (!x || !y) continue;
      ratios.push([
        String(c),
        `${a} / ${b}`,
        target === undefined ? '-' : `≥ ${target.toFixed(2)}×`,
        ratio(x.rps, y.rps),
        target === undefined ? '-' : met(x.rps / y.rps, target),
        fmt(perRoundRatio(results, a, b, c), 2) + '×',
        ratio(totalCpu(y), totalCpu(x)),
        ratio(busiestCpu(y), busiestCpu(x)),
      ]);
    }
  }
  console.log(table(ratios));
  for (const p of profiles) console.log(`\n${p}`);
}

if (process.argv[2] === 'child') {
  const role = process.argv[3];
  if (role === 'client') {
    clientChild(JSON.parse(process.argv[4] ?? '') as Job)
      .then(async (result) => {
        if (!process.send) {
          console.log(JSON.stringify(result));
          process.exit(0);
        }
        // Exit once the parent has the result (it disconnects on receipt): exiting right after
        // send() can let the parent see 'exit' before the message.
        process.on('disconnect', () => process.exit(0));
        setTimeout(() => process.exit(0), 5000).unref();
        process.send(result);
      })
      .catch((error: unknown) => {
        console.error(`bench oscore-proxy client: ${(error as Error).stack ?? error}`);
        process.exit(1);
      });
  } else {
    serverChild(process.argv.slice(3)).catch((error: unknown) => {
      console.error(`bench oscore-proxy child: ${(error as Error).stack ?? error}`);
      process.exit(1);
    });
  }
} else {
  runMain(main);
}
