/**
 * Forward-proxy benchmark (issue 5).
 *
 * GET /bench (2.05, 20-byte payload) at 32 in flight, coapsec everywhere, each role in its own
 * process, loopback:
 *
 *   direct           client ──────────────────────────▶ origin (Max-Age 0)
 *   proxied          client ─▶ proxy (ForwardProxy + ResponseCache) ─▶ origin (Max-Age 0): nothing
 *                    is stored, every request is a cache miss (concurrent misses for the same key
 *                    may still be coalesced by the proxy: the table shows upstream requests per
 *                    client request)
 *   cache-hit        client ─▶ the same proxy ─▶ origin (Max-Age 60): after the first response,
 *                    everything is served from the cache
 *   proxied-nocache  client ─▶ a second proxy without a cache ─▶ origin (Max-Age 0): pure
 *                    forwarding, one upstream exchange per request (reference, no target)
 *
 * Origins and proxies are long-lived children of this process (this file, run with `child …`);
 * every measurement starts a fresh bench/client.js child (with ClientJob.proxyPort for the proxied
 * rows). Rounds rotate the contenders' order; tables show medians. CPU time of the origin and the
 * proxy comes from /proc around each measurement; the client reports its own.
 * Targets: proxied ≥ 0.45× direct; cache-hit ≥ 1.0× direct.
 *
 *   node dist/bench/proxy.js [--quick] [--rounds N] [--duration MS] [--warmup MS] [--concurrency 32]
 *        [--contenders direct,proxied,cache-hit,proxied-nocache] [--port-base P (default 47360)]
 *        [--profile DIR]   after the rounds, one extra measurement of each contender with the
 *                          proxy process (the origin for direct) under the V8 sampling profiler
 *                          (node:inspector); writes DIR/proxy-<label>.cpuprofile and
 *                          DIR/origin-direct.cpuprofile and prints the top costs
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CoapClient } from '../src/client/client.js';
import { ResponseCache } from '../src/proxy/cache.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { CoapServer } from '../src/server/server.js';
import { BENCH_NSTART, PAYLOAD, type ClientJob, type ClientResult } from './common.js';
import { ask, processSystemMicros, profileSummary, serveChildControl } from './child-control.js';
import { busiestCpu, perRequest, perRoundRatio, summarizeProxied, totalCpu, type ProxiedResult } from './proxy-results.js';
import { clientJobTiming, environment, fmt, forkAndAwait, here, met, parseCommonArgs, parseVariant, processCpuMicros, ratio, runMain, table, variantTable, type TreeVariant } from './harness.js';

const HOST = '127.0.0.1';
const USAGE = `usage: node dist/bench/proxy.js [--quick] [--rounds N] [--duration MS] [--warmup MS] [--concurrency 32]
       [--contenders direct,proxied,cache-hit,proxied-nocache] [--port-base P (default 47360)]
       [--socket-buffer BYTES] [--profile DIR]
       [--variant LABEL=DIR (another tree's origins, proxies and client, interleaved; repeatable)]`;

const LABELS = ['direct', 'proxied', 'cache-hit', 'proxied-nocache'] as const;
type Label = (typeof LABELS)[number];
const TARGETS: Partial<Record<Label, number>> = { proxied: 0.45, 'cache-hit': 1.0 };

// --- children: origin and proxy ----------------------------------------------------------------

interface ProxyStats {
  type: 'stats';
  forwarded: number;
  cacheHits: number;
  coalesced: number;
  cacheEntries: number;
}

async function child(argv: string[]): Promise<void> {
  const [role, portArg, mode, bufferArg] = argv;
  const port = Number(portArg);
  const buffer = Number(bufferArg ?? 1 << 20);
  if (!Number.isInteger(port) || port <= 0 || port > 0xffff || !(buffer >= 0)) throw new Error('usage: proxy.js child origin|proxy <port> <maxAge|cache|nocache> <socket buffer>');
  const buffers = buffer > 0 ? { receiveBufferSize: buffer, sendBufferSize: buffer } : {};
  let stop: () => Promise<void>;
  let stats = (): ProxyStats => ({ type: 'stats', forwarded: 0, cacheHits: 0, coalesced: 0, cacheEntries: 0 });
  if (role === 'origin') {
    const maxAge = Number(mode);
    if (!Number.isInteger(maxAge) || maxAge < 0) throw new Error(`bad Max-Age ${mode}`);
    const server = await CoapServer.listen({ host: HOST, port, parameters: { nstart: BENCH_NSTART }, ...buffers });
    server.resource('/bench', { GET: () => ({ code: 69 /* 2.05 Content */, payload: PAYLOAD, maxAge }) });
    stop = () => server.close();
  } else if (role === 'proxy') {
    const server = await CoapServer.listen({ host: HOST, port, parameters: { nstart: BENCH_NSTART }, ...buffers });
    const upstream = new CoapClient({ parameters: { nstart: BENCH_NSTART }, ...buffers });
    const cache = mode === 'cache' ? new ResponseCache({ maxBytes: 64 << 20, now: () => performance.now() }) : undefined;
    const proxy = new ForwardProxy(server, { upstream, allowDestinations: ['127.0.0.1'], ...(cache ? { cache } : {}) });
    stats = () => ({ type: 'stats', ...proxy.stats, cacheEntries: cache?.stats().entries ?? 0 });
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

// --- orchestrator ------------------------------------------------------------------------------

interface Contender {
  /** A Label, prefixed with the variant's label for another tree's contenders. */
  label: string;
  /** The Label whose setup this is. */
  kind: Label;
  /** Where client.js comes from. */
  benchDir: string;
  /** The origin's port: the URI's authority. */
  originPort: number;
  origin: ChildProcess;
  proxyPort?: number;
  proxy?: ChildProcess;
}

interface Result extends ProxiedResult {
  label: string;
  /** The kernel part of proxyCpuMicros (socket system calls, loopback delivery). */
  proxySystemMicros: number;
  /** Proxy counters over the client's run (whole run, warm-up included). */
  hits: number;
  coalesced: number;
}

let measurements = 0;

async function measure(c: Contender, s: ReturnType<typeof parseCommonArgs>, concurrency: number, round: number): Promise<Result> {
  measurements++;
  const job: ClientJob = {
    impl: 'coapsec',
    port: c.originPort,
    ...clientJobTiming(s, concurrency),
    variant: 'plain',
    ...(c.proxyPort !== undefined ? { proxyPort: c.proxyPort } : {}),
  };
  const stats0 = c.proxy ? await ask<ProxyStats>(c.proxy, { type: 'stats' }, 'stats') : undefined;
  const origin0 = processCpuMicros(c.origin.pid);
  const proxy0 = c.proxy ? processCpuMicros(c.proxy.pid) : NaN;
  const proxySys0 = c.proxy ? processSystemMicros(c.proxy.pid) : NaN;
  const limit = job.warmupMs + job.durationMs + job.drainMs + 10_000;
  const { message } = await forkAndAwait<ClientResult>(path.join(c.benchDir, 'client.js'), [JSON.stringify(job)], 'result', limit, false);
  const originCpuMicros = processCpuMicros(c.origin.pid) - origin0;
  const proxyCpuMicros = c.proxy ? processCpuMicros(c.proxy.pid) - proxy0 : NaN;
  const proxySystemMicros = c.proxy ? processSystemMicros(c.proxy.pid) - proxySys0 : NaN;
  const stats1 = c.proxy ? await ask<ProxyStats>(c.proxy, { type: 'stats' }, 'stats') : undefined;
  return {
    ...message,
    label: c.label,
    round,
    originCpuMicros,
    proxyCpuMicros,
    proxySystemMicros,
    upstream: stats0 && stats1 ? stats1.forwarded - stats0.forwarded : NaN,
    hits: stats0 && stats1 ? stats1.cacheHits - stats0.cacheHits : NaN,
    coalesced: stats0 && stats1 ? stats1.coalesced - stats0.coalesced : NaN,
  };
}

function log(round: number, rounds: number, r: Result): void {
  console.error(
    `round ${round + 1}/${rounds}  ${String(r.concurrency).padStart(3)} in flight  ${r.label.padEnd(15)}  ${fmt(r.rps).padStart(7)} req/s  p50 ${fmt(r.p50, 3)} ms  p99 ${fmt(r.p99, 3)} ms` +
      `  cpu µs/req client ${fmt(perRequest(r.clientCpuMicros, r), 1)} proxy ${fmt(perRequest(r.proxyCpuMicros, r), 1)} (sys ${fmt((100 * r.proxySystemMicros) / r.proxyCpuMicros)} %) origin ${fmt(perRequest(r.originCpuMicros, r), 1)}` +
      (Number.isFinite(r.upstream) ? `  upstream/req ${fmt(r.upstream / r.totalCompleted, 3)} hits ${r.hits} coalesced ${r.coalesced}` : '') +
      (r.errors || r.abandoned || r.retransmissions > 0 ? `  errors ${r.errors} abandoned ${r.abandoned} retx ${r.retransmissions}${r.firstError ? ` (first: ${r.firstError})` : ''}` : ''),
  );
}

// --- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  let concurrencies = [32];
  let labels: Label[] = [...LABELS];
  let profileDir: string | undefined;
  const variants: TreeVariant[] = [];
  const s = parseCommonArgs(
    process.argv.slice(2),
    { quick: false, rounds: 5, warmupMs: 500, durationMs: 2500, portBase: 47_360, socketBuffer: 1 << 20 },
    { rounds: 2, warmupMs: 300, durationMs: 800 },
    USAGE,
    (arg, value) => {
      if (arg === '--concurrency') concurrencies = value().split(',').map(Number);
      else if (arg === '--contenders') {
        labels = value().split(',') as Label[];
        for (const l of labels) if (!(LABELS as readonly string[]).includes(l)) throw new Error(`unknown contender ${l} (${LABELS.join(', ')})`);
      } else if (arg === '--profile') profileDir = path.resolve(value());
      else if (arg === '--variant') variants.push(parseVariant(value()));
      else return false;
      return true;
    },
  );
  for (const c of concurrencies) if (!Number.isInteger(c) || c < 1 || c > 256) throw new Error('--concurrency: integers in 1..256');
  const started = performance.now();
  const ports = { origin0: s.portBase, origin60: s.portBase + 1, proxy: s.portBase + 2, proxyNoCache: s.portBase + 3 };
  const describe = [
    environment(),
    `CON GET /bench (20-byte 2.05), coapsec client → [coapsec ForwardProxy] → coapsec origin, loopback; origins ${ports.origin0} (Max-Age 0) and ${ports.origin60} (Max-Age 60), ` +
      `proxy ${ports.proxy} (ResponseCache 64 MiB), proxy without cache ${ports.proxyNoCache}; NSTART 256 everywhere, socket buffers ${s.socketBuffer} B`,
    ...variants.map((v, i) => `variant ${v.label}: origins, proxies and client from ${v.benchDir}, ports ${s.portBase + 4 * (i + 1)}–${s.portBase + 4 * (i + 1) + 3}`),
    `${s.rounds} rounds × in-flight {${concurrencies.join(', ')}} × {${labels.join(', ')}}${variants.length > 0 ? ` × {this tree, ${variants.map((v) => v.label).join(', ')}}` : ''}; each ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured`,
  ];
  for (const line of describe) console.error(line);

  const buf = String(s.socketBuffer);
  /** One tree's origins and proxies (from its compiled proxy.js), on four ports from `base`. */
  const setUp = async (benchDir: string, prefix: string, base: number): Promise<Record<Label, Contender>> => {
    const start = async (args: string[]): Promise<ChildProcess> =>
      (await forkAndAwait<{ type: 'ready' }>(path.join(benchDir, 'proxy.js'), ['child', ...args], 'ready', 10_000, true)).child;
    const p = { origin0: base, origin60: base + 1, proxy: base + 2, proxyNoCache: base + 3 };
    const origin0 = await start(['origin', String(p.origin0), '0', buf]);
    const origin60 = labels.includes('cache-hit') ? await start(['origin', String(p.origin60), '60', buf]) : origin0;
    const proxy = labels.some((l) => l === 'proxied' || l === 'cache-hit') ? await start(['proxy', String(p.proxy), 'cache', buf]) : undefined;
    const proxyNoCache = labels.includes('proxied-nocache') ? await start(['proxy', String(p.proxyNoCache), 'nocache', buf]) : undefined;
    const contender = (kind: Label, c: Omit<Contender, 'label' | 'kind' | 'benchDir'>): Contender => ({ label: `${prefix}${kind}`, kind, benchDir, ...c });
    return {
      direct: contender('direct', { originPort: p.origin0, origin: origin0 }),
      proxied: contender('proxied', { originPort: p.origin0, origin: origin0, proxyPort: p.proxy, proxy: proxy! }),
      'cache-hit': contender('cache-hit', { originPort: p.origin60, origin: origin60, proxyPort: p.proxy, proxy: proxy! }),
      'proxied-nocache': contender('proxied-nocache', { originPort: p.origin0, origin: origin0, proxyPort: p.proxyNoCache, proxy: proxyNoCache! }),
    };
  };
  const all = await setUp(here('.'), '', ports.origin0);
  const contenders = labels.map((l) => all[l]);
  for (const [i, v] of variants.entries()) {
    const theirs = await setUp(v.benchDir, `${v.label} `, s.portBase + 4 * (i + 1));
    contenders.push(...labels.map((l) => theirs[l]));
  }

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
    // The origin under the direct row is profiled too: its handler path is what a cache hit competes with.
    for (const label of ['direct', 'proxied-nocache', 'proxied', 'cache-hit'] as const) {
      const c = all[label];
      const profiled = label === 'direct' ? c.origin : c.proxy;
      if (!profiled || !labels.includes(label)) continue;
      const role = label === 'direct' ? 'origin' : 'proxy';
      const file = path.join(profileDir, `${role}-${label}.cpuprofile`);
      await ask(profiled, { type: 'profile-start' }, 'profiling');
      const r = await measure(c, s, concurrencies[concurrencies.length - 1]!, -1);
      await ask(profiled, { type: 'profile-stop', file }, 'profiled', 20_000);
      console.error(`profiled: ${file}`);
      log(0, 1, r);
      const cpu = label === 'direct' ? r.originCpuMicros : r.proxyCpuMicros;
      profiles.push(
        `Profile of the ${role} process, '${label}' at ${r.concurrency} in flight (${fmt(r.rps)} req/s under the profiler; ` +
          `${role} ${fmt(perRequest(cpu, r), 1)} µs CPU/req) — ${file}\n\n${profileSummary(JSON.parse(readFileSync(file, 'utf8')))}`,
      );
    }
  }

  console.log('');
  for (const line of describe) console.log(line);
  console.log(`total time ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  const rows: string[][] = [
    ['in flight', 'path', 'req/s (median)', 'req/s (min–max)', 'p50 ms', 'p99 ms', 'CPU µs/req client', 'CPU µs/req proxy', 'proxy sys %', 'CPU µs/req origin', 'CPU µs/req total', 'upstream/req', 'errors', 'retx'],
  ];
  for (const c of concurrencies) {
    for (const { label } of contenders) {
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
        fmt(100 * x.proxySystemShare),
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
  const ratios: string[][] = [['in flight', 'vs direct', 'target', 'req/s ratio (medians)', 'met?', 'per-round req/s ratio (median)', 'by total CPU (2 shared cores)', 'by busiest process (a core each)']];
  for (const c of concurrencies) {
    for (const { label, kind, benchDir } of contenders) {
      if (kind === 'direct') continue;
      const direct = contenders.find((d) => d.kind === 'direct' && d.benchDir === benchDir)!.label;
      const d = summarizeProxied(results, direct, c);
      const x = summarizeProxied(results, label, c);
      if (!d || !x) continue;
      const target = TARGETS[kind];
      ratios.push([
        String(c),
        label,
        target === undefined ? '-' : `≥ ${target.toFixed(2)}×`,
        ratio(x.rps, d.rps),
        target === undefined ? '-' : met(x.rps / d.rps, target),
        fmt(perRoundRatio(results, label, direct, c), 2) + '×',
        ratio(totalCpu(d), totalCpu(x)),
        ratio(busiestCpu(d), busiestCpu(x)),
      ]);
    }
  }
  console.log(table(ratios));
  if (variants.length > 0) {
    const pairs = variants.flatMap((v) => labels.map((l) => [l, `${v.label} ${l}`] as const));
    console.log('');
    console.log(variantTable(results, pairs, concurrencies, (label, c) => {
      const x = summarizeProxied(results, label, c);
      return x ? totalCpu(x) : NaN;
    }));
  }
  for (const p of profiles) console.log(`\n${p}`);
}

if (process.argv[2] === 'child') {
  child(process.argv.slice(3)).catch((error: unknown) => {
    console.error(`bench proxy child: ${(error as Error).stack ?? error}`);
    process.exit(1);
  });
} else {
  runMain(main);
}
