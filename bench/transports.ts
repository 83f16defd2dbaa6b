/**
 * Transports benchmark (issue 18): the same confirmable-style GET /bench (2.05, 20-byte payload)
 * from a coapsec client to a coapsec server over CoAP over TCP (RFC 8323, coap+tcp://) and over
 * UDP (coap://), and node-coap ↔ node-coap over UDP for reference, in one run: servers in
 * long-lived child processes, a fresh client process per measurement, rounds rotating the order,
 * medians (the machinery of bench/run.ts, bench/harness.ts).
 *
 *   node dist/bench/transports.js [--quick] [--rounds N] [--duration MS] [--concurrency 1,32,256]
 */
import { BENCH_NSTART, median } from './common.js';
import { environment, fmt, getTable, parseCommonArgs, perRoundRatio, ratio, runGetRounds, runMain, startGetServers, summarizeGet, table, type GetContender } from './harness.js';

const USAGE = `usage: node dist/bench/transports.js [--quick] [--rounds N] [--duration MS] [--warmup MS]
       [--concurrency 1,32,256] [--port-base P (default 47380)] [--socket-buffer BYTES]`;

async function main(): Promise<void> {
  let concurrencies = [1, 32, 256];
  const s = parseCommonArgs(
    process.argv.slice(2),
    { quick: false, rounds: 3, warmupMs: 1000, durationMs: 2500, portBase: 47_380, socketBuffer: 1 << 20 },
    { rounds: 1, warmupMs: 300, durationMs: 800 },
    USAGE,
    (arg, value) => {
      if (arg !== '--concurrency') return false;
      concurrencies = value().split(',').map(Number);
      for (const c of concurrencies) if (!Number.isInteger(c) || c < 1 || c > 256) throw new Error('--concurrency: integers in 1..256');
      return true;
    },
  );
  const started = performance.now();
  const contenders: GetContender[] = [
    { label: 'coapsec coap', impl: 'coapsec', variant: 'plain', port: s.portBase },
    { label: 'coapsec coap+tcp', impl: 'coapsec', variant: 'plain', port: s.portBase + 1, scheme: 'coap+tcp' },
    { label: 'node-coap coap', impl: 'node-coap', variant: 'plain', port: s.portBase + 2 },
  ];
  const describe = [
    environment(),
    `GET /bench (2.05, 20-byte payload), loopback, ports ${s.portBase}–${s.portBase + 2}: coapsec over UDP and over TCP (RFC 8323), node-coap over UDP; coapsec NSTART ${BENCH_NSTART}; UDP socket buffers ${s.socketBuffer} B`,
    `${s.rounds} rounds × in-flight {${concurrencies.join(', ')}} × {${contenders.map((c) => c.label).join(', ')}}; each ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured`,
  ];
  for (const line of describe) console.error(line);

  const servers = await startGetServers(contenders, s.socketBuffer);
  const results = await runGetRounds(contenders, servers, s, concurrencies);

  console.log('');
  for (const line of describe) console.log(line);
  console.log(`total time ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  console.log(getTable(results, contenders.map((c) => c.label), concurrencies));
  console.log('');
  const cpu = (label: string, c: number): number => {
    const x = summarizeGet(results, label, c);
    return (x?.clientCpu ?? NaN) + (x?.serverCpu ?? NaN);
  };
  const rows = [['in flight', 'tcp/udp req/s (per round)', 'tcp/udp by CPU', 'coapsec udp/node-coap req/s', 'coapsec tcp/node-coap req/s', 'tcp server µs/req − udp']];
  for (const c of concurrencies) {
    const serverMicros = (label: string): number => median(results.filter((r) => r.label === label && r.concurrency === c).map((r) => (r.serverCpuMicros ?? NaN) / r.totalCompleted));
    rows.push([
      String(c),
      fmt(perRoundRatio(results, 'coapsec coap+tcp', 'coapsec coap', c), 2) + '×',
      ratio(cpu('coapsec coap', c), cpu('coapsec coap+tcp', c)),
      fmt(perRoundRatio(results, 'coapsec coap', 'node-coap coap', c), 2) + '×',
      fmt(perRoundRatio(results, 'coapsec coap+tcp', 'node-coap coap', c), 2) + '×',
      fmt(serverMicros('coapsec coap+tcp') - serverMicros('coapsec coap'), 1),
    ]);
  }
  console.log(table(rows));
}

runMain(main);
