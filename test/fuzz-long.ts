/**
 * `npm run fuzz`: the fuzz of test/fuzz.test.ts at length — 1,000,000 datagrams by default. Usage:
 *   node dist/test/fuzz-long.js [DATAGRAMS] [SEED]
 * Prints the classes, any violations and the memory before and after; exits 1 on a violation,
 * an escaped exception or heap growth beyond the bound.
 */
import { Fuzzer } from './support/fuzz.js';
import { measureMemory } from './support/fuzz-memory.js';

/** Deduplication records (≤ 100,000 per server, ~10 MB each) and bounded stores; nothing grows with the count. */
const HEAP_BOUND = 192 * 1024 * 1024;

const datagrams = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.argv[3] ?? 2026);
if (!(Number.isInteger(datagrams) && datagrams >= 10_000) || !Number.isInteger(seed)) {
  process.stderr.write('usage: node dist/test/fuzz-long.js [DATAGRAMS ≥ 10000] [SEED]\n');
  process.exit(2);
}
const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
const started = Date.now();
const fuzzer = new Fuzzer(seed);
const { report, memory } = await measureMemory(fuzzer, datagrams);
await fuzzer.close();
const seconds = (Date.now() - started) / 1000;
process.stdout.write(`${report.datagrams} datagrams, seed ${seed}, ${seconds.toFixed(1)} s (${Math.round(report.datagrams / seconds)}/s)\n`);
for (const [cls, n] of Object.entries(report.classes).sort()) {
  const failed = report.failuresByClass[cls];
  process.stdout.write(`  ${String(n).padStart(8)}  ${cls}${failed ? `  — ${failed} FAILED` : ''}\n`);
}
process.stdout.write(`heap ${mib(memory.heapBefore)} → ${mib(memory.heapAfter)}, RSS ${mib(memory.rssBefore)} → ${mib(memory.rssAfter)}, max deduplication records per server ${report.maxTracked}\n`);
for (const t of report.thrown) process.stdout.write(`THROWN ${t}\n`);
for (const f of report.failures) process.stdout.write(`VIOLATION ${f}\n`);
if (report.thrownCount > 0) process.stdout.write(`${report.thrownCount} exceptions in all\n`);
if (report.failureCount > report.failures.length) process.stdout.write(`… ${report.failureCount} violations in all\n`);
const ok = report.thrownCount === 0 && report.failureCount === 0 && memory.heapGrowth < HEAP_BOUND;
if (memory.heapGrowth >= HEAP_BOUND) process.stdout.write(`heap grew by ${mib(memory.heapGrowth)}, bound ${mib(HEAP_BOUND)}\n`);
process.stdout.write(ok ? 'fuzz: ok\n' : 'fuzz: FAILED\n');
process.exit(ok ? 0 : 1);
