/**
 * CPU budget of a security layer (issues 4 and 8): how many µs of extra client CPU per request
 * plain CoAP can absorb before its GET req/s drops to a given fraction.
 *
 * The client spins a fixed number of µs before each request (ClientJob.burnMicros) against the
 * plain coapsec server, at the concurrencies of the OSCORE and DTLS targets, in interleaved
 * rounds; req/s is compared with no spin in the same round. The spin is pure CPU — no allocation,
 * no system call — so it is a lower bound on what real work of that size costs. Where the table
 * crosses 0.8× (OSCORE at 256 in flight) or 0.75× (DTLS at 32) is the client-side budget of that
 * target: OSCORE has to fit a seal, an open and its message transforms into it, DTLS a seal and an
 * open per request (BENCHMARKS.md compares these budgets with the measured costs).
 *
 *   node dist/bench/cpu-budget.js [--quick] [--rounds N] [--burn 0,2,4,6,8,12] [--concurrency 32,256]
 */
import type { ChildProcess } from 'node:child_process';
import { median, type ServerReady } from './common.js';
import {
  environment,
  fmt,
  forkAndAwait,
  here,
  parseCommonArgs,
  runGetRounds,
  runMain,
  stopChild,
  summarizeGet,
  table,
  type GetContender,
  type LabelledResult,
} from './harness.js';

const USAGE = `usage: node dist/bench/cpu-budget.js [--quick] [--rounds N] [--duration MS] [--warmup MS]
       [--burn 0,2,4,6,8,12] [--concurrency 32,256] [--port-base P (default 47325)] [--socket-buffer BYTES]`;

/** The targets this budget is about: issue 4 (OSCORE, 256 in flight) and issue 8 (DTLS, 32). */
const TARGETS: Array<{ concurrency: number; ratio: number; what: string }> = [
  { concurrency: 256, ratio: 0.8, what: 'OSCORE at 256 in flight (issue 4)' },
  { concurrency: 32, ratio: 0.75, what: 'DTLS at 32 in flight (issue 8)' },
];

const list = (text: string, what: string): number[] => {
  const values = text.split(',').map(Number);
  if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v < 0 || v > 1000)) throw new Error(`${what} must be a list of integers 0..1000`);
  return values;
};

/** For one round and concurrency: req/s of each spin ÷ req/s without spin. */
function perRoundRatios(results: readonly LabelledResult[], rounds: number, contenders: number, concurrency: number, label: string): number[] {
  const rows = results.filter((r) => r.concurrency === concurrency);
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const inRound = rows.slice(round * contenders, (round + 1) * contenders);
    const base = inRound.find((r) => r.label === 'spin 0 µs');
    const row = inRound.find((r) => r.label === label);
    if (base && row && base.rps > 0) ratios.push(row.rps / base.rps);
  }
  return ratios;
}

/**
 * Makes the ratios non-increasing in the spin by pooling adjacent violators (isotonic regression):
 * more work cannot make the client faster, so an upward step is noise and is averaged out.
 */
function monotone(points: ReadonlyArray<{ burn: number; ratio: number }>): Array<{ burn: number; ratio: number }> {
  const blocks: Array<{ sum: number; count: number }> = [];
  for (const p of points) {
    blocks.push({ sum: p.ratio, count: 1 });
    while (blocks.length > 1 && blocks.at(-2)!.sum / blocks.at(-2)!.count < blocks.at(-1)!.sum / blocks.at(-1)!.count) {
      const last = blocks.pop()!;
      blocks.at(-1)!.sum += last.sum;
      blocks.at(-1)!.count += last.count;
    }
  }
  const ratios = blocks.flatMap((b) => Array<number>(b.count).fill(b.sum / b.count));
  return points.map((p, i) => ({ burn: p.burn, ratio: ratios[i]! }));
}

/**
 * The spin at which the ratio falls to `target`: linear interpolation on the monotone fit of the
 * per-round medians.
 */
function budgetFor(measured: Array<{ burn: number; ratio: number }>, target: number): string {
  const points = monotone(measured.filter((p) => Number.isFinite(p.ratio)));
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!;
    const b = points[i]!;
    if (a.ratio >= target && b.ratio < target) {
      const at = a.burn + ((a.ratio - target) / (a.ratio - b.ratio)) * (b.burn - a.burn);
      return `≈ ${at.toFixed(1)} µs`;
    }
  }
  const last = points.at(-1);
  return last && last.ratio >= target ? `> ${last.burn} µs` : `< ${points[1]?.burn ?? 0} µs`;
}

async function main(): Promise<void> {
  let burns = [0, 2, 4, 6, 8, 12];
  let concurrencies = [32, 256];
  const s = parseCommonArgs(
    process.argv.slice(2),
    { quick: false, rounds: 5, warmupMs: 400, durationMs: 2000, portBase: 47_325, socketBuffer: 1 << 20 },
    { rounds: 2, warmupMs: 300, durationMs: 800 },
    USAGE,
    (arg, value) => {
      if (arg === '--burn') burns = list(value(), '--burn');
      else if (arg === '--concurrency') concurrencies = list(value(), '--concurrency').filter((c) => c > 0);
      else return false;
      return true;
    },
  );
  if (!burns.includes(0)) burns = [0, ...burns];
  burns.sort((a, b) => a - b);

  const t0 = performance.now();
  // One plain server for every contender: only the client's spin differs between rows.
  const { child: server } = await forkAndAwait<ServerReady>(here('server.js'), ['coapsec', String(s.portBase), String(s.socketBuffer), 'plain'], 'ready', 10_000, true);
  const contenders: GetContender[] = burns.map((b) => ({ label: `spin ${b} µs`, impl: 'coapsec', variant: 'plain', port: s.portBase, burnMicros: b }));
  const servers = new Map<string, ChildProcess>(contenders.map((c) => [c.label, server]));
  const results = await runGetRounds(contenders, servers, s, concurrencies);
  await stopChild(server);

  console.log(`\n${environment()}`);
  console.log(`plain CoAP GET, coapsec ↔ coapsec, loopback, port ${s.portBase}; the client spins N µs of CPU before each request`);
  console.log(`${s.rounds} rounds × in-flight {${concurrencies.join(', ')}} × spin {${burns.join(', ')}} µs; each ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured`);
  console.log(`total time ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

  const rows: string[][] = [['in flight', 'client spin µs/req', 'req/s (median)', 'req/s (min–max)', 'CPU µs/req client', 'CPU µs/req server', 'ratio to no spin (per round, median)']];
  const curves = new Map<number, Array<{ burn: number; ratio: number }>>();
  for (const c of concurrencies) {
    const curve: Array<{ burn: number; ratio: number }> = [];
    for (const contender of contenders) {
      const x = summarizeGet(results, contender.label, c);
      if (!x) continue;
      const ratios = perRoundRatios(results, s.rounds, contenders.length, c, contender.label);
      const r = ratios.length ? median(ratios) : NaN;
      curve.push({ burn: contender.burnMicros ?? 0, ratio: r });
      rows.push([String(c), String(contender.burnMicros ?? 0), fmt(x.rps), `${fmt(x.rpsMin)}–${fmt(x.rpsMax)}`, fmt(x.clientCpu, 1), fmt(x.serverCpu, 1), `${fmt(r, 2)}×`]);
    }
    curves.set(c, curve);
  }
  console.log(table(rows));
  const budgetRows: string[][] = [['target', 'in flight', 'ratio', 'client CPU budget per request']];
  for (const t of TARGETS) {
    const curve = curves.get(t.concurrency);
    if (curve) budgetRows.push([t.what, String(t.concurrency), `≥ ${t.ratio}×`, budgetFor(curve, t.ratio)]);
  }
  console.log(`\n${table(budgetRows)}`);
}

runMain(main);
