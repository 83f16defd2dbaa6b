/**
 * DTLS benchmark (issue 8).
 *
 * 1. GET req/s over DTLS 1.2 (TLS_PSK_WITH_AES_128_CCM_8) against plain CoAP over UDP, coapsec ↔
 *    coapsec in separate processes (bench/server.js and bench/client.js, variants 'dtls' and
 *    'plain'), sequentially and at 32 in flight. Target: DTLS ≥ 0.75× plain at 32 in flight.
 *    A third contender, 'record floor' (bench/aead-floor.ts), is plain CoAP plus only the CCM_8
 *    record encryption and decryption DTLS needs per datagram: the best any DTLS on Node's
 *    crypto could do here, so it says whether the target is reachable at all.
 * 2. Handshakes per second, PSK (TLS_PSK_WITH_AES_128_CCM_8) and ECDHE-ECDSA
 *    (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, raw public keys, server authentication only):
 *    a. engine to engine in memory (src/dtls DtlsClient ↔ DtlsServerEngine, cookie exchange
 *       included), one handshake at a time, in this process;
 *    b. over real sockets (src/transport/dtls.ts through CoapClient/CoapServer): a client child
 *       process runs, one after another, "new CoapClient → GET coaps://…/bench → close()"
 *       (bind, full handshake, one request, close_notify) against a long-lived server child.
 *
 *   node dist/bench/dtls.js [--quick] [--rounds N] [--duration MS] [--concurrency 1,32]
 *
 * The same file is the handshake client child: `dtls.js --handshake-client JSON`.
 */
import { createRecordProtection } from '../src/dtls/index.js';
import { CoapClient } from '../src/client/client.js';
import { PeerRecords } from './aead-floor.js';
import { DTLS_PSK, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CCM_8, benchRpk, median } from './common.js';
import {
  environment,
  fmt,
  forkAndAwait,
  getTable,
  here,
  met,
  nodeCcmSealOpen,
  opsPerSecond,
  runMicroCases,
  parseCommonArgs,
  perRoundRatio,
  processCpuMicros,
  ratio,
  runGetRounds,
  runMain,
  startGetServers,
  summarizeGet,
  table,
  type GetContender,
} from './harness.js';

const TARGET_32 = 0.75;
import { DTLS_HANDSHAKE_MODES as MODES, dtlsHandshakeInMemory as engines, type DtlsHandshakeMode as Mode } from './dtls-handshake.js';

// --- over sockets: the client child ----------------------------------------------------------

interface HandshakeJob {
  mode: Mode;
  port: number;
  warmup: number;
  durationMs: number;
  maxHandshakes: number;
}

interface HandshakeResult {
  type: 'result';
  mode: Mode;
  handshakes: number;
  seconds: number;
  perSecond: number;
  /** Median of one "new client, GET, close" in ms. */
  medianMs: number;
  clientCpuMicros: number;
  errors: number;
  firstError?: string;
  serverCpuMicros?: number;
}

async function handshakeClient(job: HandshakeJob): Promise<HandshakeResult> {
  const rpk = benchRpk('client');
  let errors = 0;
  let firstError: string | undefined;
  const once = async (): Promise<boolean> => {
    const client = new CoapClient(
      job.mode === 'psk' ? { dtls: { psk: DTLS_PSK, cipherSuites: [TLS_PSK_WITH_AES_128_CCM_8] } } : { dtls: { rpk, cipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8] } },
    );
    let timer: NodeJS.Timeout | undefined;
    try {
      const r = await Promise.race([
        client.get(`coaps://127.0.0.1:${job.port}/bench`),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('handshake + GET timed out')), 10_000))),
      ]);
      if (r.code !== 69) throw new Error(`GET: code ${r.code}`);
      return true;
    } catch (e) {
      errors++;
      firstError ??= String((e as Error)?.message ?? e);
      return false;
    } finally {
      clearTimeout(timer);
      await client.close();
    }
  };
  for (let i = 0; i < job.warmup; i++) await once();
  const cpu0 = process.cpuUsage();
  const times: number[] = [];
  const t0 = performance.now();
  while (times.length < job.maxHandshakes && performance.now() - t0 < job.durationMs && errors < 5) {
    const start = performance.now();
    if (await once()) times.push(performance.now() - start);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    type: 'result',
    mode: job.mode,
    handshakes: times.length,
    seconds,
    perSecond: times.length / seconds,
    medianMs: median(times),
    clientCpuMicros: cpu.user + cpu.system,
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
  };
}

// --- orchestrator --------------------------------------------------------------------------------

const USAGE = `usage: node dist/bench/dtls.js [--quick] [--rounds N] [--duration MS] [--warmup MS] [--concurrency 1,32]
       [--handshake-ms MS] [--port-base P (default 47350)] [--socket-buffer BYTES]`;

async function orchestrate(): Promise<void> {
  let concurrencies = [1, 32];
  let handshakeMs = 1500;
  const s = parseCommonArgs(
    process.argv.slice(2),
    { quick: false, rounds: 5, warmupMs: 500, durationMs: 2500, portBase: 47_350, socketBuffer: 1 << 20 },
    { rounds: 2, warmupMs: 300, durationMs: 800 },
    USAGE,
    (arg, value) => {
      if (arg === '--concurrency') concurrencies = value().split(',').map(Number);
      else if (arg === '--handshake-ms') handshakeMs = Number(value());
      else return false;
      return true;
    },
  );
  if (s.quick) handshakeMs = Math.min(handshakeMs, 500);
  const started = performance.now();
  const describe = [
    environment(),
    `GET over DTLS 1.2 PSK (TLS_PSK_WITH_AES_128_CCM_8) vs plain CoAP over UDP; coapsec ↔ coapsec, loopback, ports ${s.portBase}/${s.portBase + 1} (record floor ${s.portBase + 3}); NSTART 256 on both sides`,
    `handshakes: PSK (0xC0A8) and ECDHE-ECDSA (0xC0AE, raw public keys, P-256, no client auth), extended master secret, cookie exchange; in memory and over sockets (port ${s.portBase + 2} for ECDHE-ECDSA)`,
    `${s.rounds} rounds × in-flight {${concurrencies.join(', ')}} × {plain, dtls, record floor}; each ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured; handshakes ${s.rounds} rounds × ${handshakeMs} ms per mode and method`,
  ];
  for (const line of describe) console.error(line);

  const contenders: GetContender[] = [
    { label: 'plain', impl: 'coapsec', variant: 'plain', port: s.portBase },
    { label: 'dtls', impl: 'coapsec', variant: 'dtls', port: s.portBase + 1 },
    { label: 'record floor', impl: 'coapsec', variant: 'record-floor', port: s.portBase + 3 },
  ];
  const rpkServer: GetContender = { label: 'dtls-rpk', impl: 'coapsec', variant: 'dtls-rpk', port: s.portBase + 2 };
  const servers = await startGetServers([...contenders, rpkServer], s.socketBuffer);
  const results = await runGetRounds(contenders, servers, s, concurrencies);

  // Handshakes: rounds × modes, in memory then over sockets, rotating the mode order.
  const memory = new Map<Mode, { ops: number[]; cpu: number[] }>(MODES.map((m) => [m, { ops: [], cpu: [] }]));
  const sockets = new Map<Mode, HandshakeResult[]>(MODES.map((m) => [m, []]));
  const memoryOps = new Map(MODES.map((m) => [m, engines(m)] as const));
  for (let round = 0; round < s.rounds; round++) {
    for (let k = 0; k < MODES.length; k++) {
      const mode = MODES[(k + round) % MODES.length]!;
      const r = opsPerSecond(memoryOps.get(mode)!, handshakeMs, 1_000_000, 100);
      memory.get(mode)!.ops.push(r.ops);
      memory.get(mode)!.cpu.push(r.cpuMicros);
      const server = servers.get(mode === 'psk' ? 'dtls' : 'dtls-rpk')!;
      const job: HandshakeJob = { mode, port: mode === 'psk' ? s.portBase + 1 : s.portBase + 2, warmup: 5, durationMs: handshakeMs, maxHandshakes: 100_000 };
      const cpu0 = processCpuMicros(server.pid);
      const { message } = await forkAndAwait<HandshakeResult>(here('dtls.js'), ['--handshake-client', JSON.stringify(job)], 'result', handshakeMs + 80_000, false);
      message.serverCpuMicros = (processCpuMicros(server.pid) - cpu0) / (message.handshakes + job.warmup);
      sockets.get(mode)!.push(message);
      console.error(
        `round ${round + 1}/${s.rounds}  ${mode.padEnd(11)}  in memory ${fmt(r.ops).padStart(5)}/s (${fmt(r.cpuMicros)} µs CPU)  sockets ${fmt(message.perSecond).padStart(5)}/s, median ${fmt(message.medianMs, 2)} ms` +
          `, CPU µs client ${fmt(message.clientCpuMicros / message.handshakes)} server ${fmt(message.serverCpuMicros)}` +
          (message.errors ? `  errors ${message.errors} (first: ${message.firstError})` : ''),
      );
    }
  }

  console.log('');
  for (const line of describe) console.log(line);
  console.log(`total time ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  console.log(getTable(results, ['plain', 'dtls', 'record floor'], concurrencies));
  console.log('');
  const ratios: string[][] = [
    ['in flight', 'target', 'dtls/plain req/s', 'met?', 'dtls/plain per round', 'dtls/plain by CPU (client+server)', 'record floor/plain req/s', 'record floor/plain per round', 'record floor/plain by CPU'],
  ];
  for (const c of concurrencies) {
    const p = summarizeGet(results, 'plain', c);
    const d = summarizeGet(results, 'dtls', c);
    const f = summarizeGet(results, 'record floor', c);
    ratios.push([
      String(c),
      c === 32 ? `≥ ${TARGET_32.toFixed(2)}×` : '-',
      ratio(d?.rps ?? NaN, p?.rps ?? NaN),
      c === 32 ? met((d?.rps ?? NaN) / (p?.rps ?? NaN), TARGET_32) : '-',
      ratio(perRoundRatio(results, 'dtls', 'plain', c), 1),
      ratio((p?.clientCpu ?? NaN) + (p?.serverCpu ?? NaN), (d?.clientCpu ?? NaN) + (d?.serverCpu ?? NaN)),
      ratio(f?.rps ?? NaN, p?.rps ?? NaN),
      ratio(perRoundRatio(results, 'record floor', 'plain', c), 1),
      ratio((p?.clientCpu ?? NaN) + (p?.serverCpu ?? NaN), (f?.clientCpu ?? NaN) + (f?.serverCpu ?? NaN)),
    ]);
  }
  console.log(table(ratios));
  console.log('');
  const rows: string[][] = [['handshake', 'method', 'per second (median)', 'min–max', 'ms each (median)', 'CPU µs client', 'CPU µs server', 'errors']];
  for (const mode of MODES) {
    const m = memory.get(mode)!;
    rows.push([mode, 'in memory (both engines, one process)', fmt(median(m.ops)), `${fmt(Math.min(...m.ops))}–${fmt(Math.max(...m.ops))}`, fmt(1000 / median(m.ops), 2), fmt(median(m.cpu)) + ' (both)', '', '0']);
    const rs = sockets.get(mode)!.filter((r) => r.handshakes > 0);
    const per = rs.map((r) => r.perSecond);
    rows.push([
      mode,
      'sockets (new client + GET + close)',
      fmt(median(per)),
      per.length ? `${fmt(Math.min(...per))}–${fmt(Math.max(...per))}` : '-',
      fmt(median(rs.map((r) => r.medianMs)), 2),
      fmt(median(rs.map((r) => r.clientCpuMicros / r.handshakes))),
      fmt(median(rs.map((r) => r.serverCpuMicros ?? NaN))),
      String(sockets.get(mode)!.reduce((a, r) => a + r.errors, 0)),
    ]);
  }
  console.log(table(rows));
  console.log('');
  console.log(recordMicro(s.quick ? 300 : 1000, s.rounds));
}

/**
 * What DTLS adds to one side of one GET in record protection: encrypt the outgoing CoAP message,
 * decrypt the incoming one (CCM_8, the benchmark's message sizes), as a connection does it: the
 * sender's sequence number counts up, and the incoming records are the peer's consecutive ones
 * (PeerRecords), so both directions use their batched keystreams (src/dtls/ccm8.ts). Against a bare Node
 * AES-128-CCM seal + open with a cipher object per message (what the record layer did before
 * src/crypto).
 */
function recordMicro(ms: number, rounds: number): string {
  const key = Buffer.alloc(16, 7);
  const iv = Buffer.alloc(4, 9);
  const mine = createRecordProtection('CCM_8', key, iv);
  const request = Buffer.alloc(25, 1); // CON GET /bench with an 8-byte token
  const responses = new PeerRecords(Buffer.alloc(16, 8), Buffer.alloc(4, 10), 33); // 2.05 with the 20-byte payload
  let seq = 0;
  const oneSide = (): void => {
    mine.encrypt(23, 0xfefd, 1, seq++, request, 13);
    responses.open();
  };
  const nonce = Buffer.alloc(12, 3);
  const aad = Buffer.alloc(13, 4);
  const cases: Array<[string, () => void]> = [
    ['one side of one GET: record encrypt + decrypt (CCM_8, batched keystreams)', oneSide],
    ['raw Node AES-128-CCM seal + open, cipher object per message', () => nodeCcmSealOpen(key, nonce, aad, request)],
  ];
  const out = runMicroCases(cases, ms, rounds);
  const rows: string[][] = [['operation (in process)', 'ops/s (median)', 'ops/s (min–max)', 'CPU µs/op']];
  cases.forEach(([name], i) => rows.push([name, fmt(median(out[i]!.ops)), `${fmt(Math.min(...out[i]!.ops))}–${fmt(Math.max(...out[i]!.ops))}`, fmt(median(out[i]!.cpu), 2)]));
  return table(rows);
}

const [mode, arg] = process.argv.slice(2);
if (mode === '--handshake-client') {
  handshakeClient(JSON.parse(arg ?? '') as HandshakeJob)
    .then(async (result) => {
      if (process.send) await new Promise<void>((resolve) => process.send!(result, () => resolve()));
      else console.log(JSON.stringify(result));
      process.exit(0);
    })
    .catch((e: unknown) => {
      console.error(`dtls handshake client: ${(e as Error).stack ?? e}`);
      process.exit(1);
    });
} else {
  runMain(orchestrate);
}
