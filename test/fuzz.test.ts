/**
 * Issue 17: the broad fuzz — seeded, bounded, 120,000 datagrams through the receive path of `serve`,
 * `serve` with OSCORE and a forward proxy (test/support/fuzz.ts). No exception escapes, every edge
 * case class gets the protocol's answer, and memory stays bounded. `npm run fuzz` runs ≥ 1M.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Fuzzer } from './support/fuzz.js';
import { measureMemory } from './support/fuzz-memory.js';

const DATAGRAMS = 120_000;

test(`fuzz: ${DATAGRAMS.toLocaleString('en')} datagrams at serve, serve with OSCORE and a forward proxy`, async (t) => {
  const fuzzer = new Fuzzer(17);
  const { report, memory } = await measureMemory(fuzzer, DATAGRAMS);
  await fuzzer.close();
  const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
  t.diagnostic(`heap ${mib(memory.heapBefore)} → ${mib(memory.heapAfter)}, RSS ${mib(memory.rssBefore)} → ${mib(memory.rssAfter)}, ${Object.keys(report.classes).length} classes`);
  assert.deepEqual(report.thrown, [], 'no exception escapes the receive path');
  assert.equal(report.thrownCount, 0);
  assert.deepEqual(report.failures, [], `${report.failureCount} answers differ from the protocol's`);
  assert.equal(report.datagrams, DATAGRAMS);
  for (const [cls, n] of Object.entries(report.classes)) assert.ok(n >= 50, `class "${cls}" ran ${n} times only`);
  assert.ok(Object.keys(report.classes).length >= 30, 'every class ran');
  assert.ok(report.maxTracked <= 100_000, 'deduplication records stay within maxTrackedMessages');
  // 120k datagrams leave ≈ 40k deduplication records per server and bounded stores; far below this.
  assert.ok(memory.heapGrowth < 96 * 1024 * 1024, `heap grew by ${(memory.heapGrowth / 1048576).toFixed(1)} MiB`);
  assert.ok(memory.rssGrowth < 256 * 1024 * 1024, `RSS grew by ${(memory.rssGrowth / 1048576).toFixed(1)} MiB`);
});
