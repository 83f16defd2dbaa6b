/**
 * Block-wise benchmark (issue 3): a 1 MiB Block2 transfer (GET of a 1 MiB resource) and a 1 MiB
 * Block1 transfer (PUT of 1 MiB), coapsec client ↔ coapsec server against node-coap client ↔
 * node-coap server, 1024-byte blocks on both. As in bench/run.ts, each server is a long-lived
 * child process and each measurement a fresh client child process; rounds rotate the order; the
 * table shows medians. A measurement runs back-to-back transfers for `--duration` ms (at least
 * one, at most 50) and reports KiB/s over the transfers it completed.
 *
 *   node dist/bench/blockwise.js [--quick] [--rounds N] [--duration MS]
 *
 * The same file is the children: `blockwise.js --server IMPL PORT` and `blockwise.js --client JSON`.
 */
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
import { CoapClient } from '../src/client/client.js';
import { CoapServer } from '../src/server/server.js';
import { median, sizeSocketBuffers } from './common.js';
import { environment, fmt, forkAndAwait, here, parseCommonArgs, processCpuMicros, ratio, runMain, table } from './harness.js';

type NodeCoap = typeof import('coap');
const HOST = '127.0.0.1';
const SIZE = 1 << 20;
const BLOCK = 1024;
const SZX = 6; // 2^(6+4) = 1024
const MAX_TRANSFERS = 50;
const TRANSFER_TIMEOUT_MS = 60_000;
/** The 1 MiB body: a repeating pattern, so that a misplaced block shows up in the check. */
const BIG = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i += 4) BIG.writeUInt32BE(i >>> 2, i);

const IMPLS = ['coapsec', 'node-coap'] as const;
type BlockImpl = (typeof IMPLS)[number];
const DIRECTIONS = ['block2-get', 'block1-put'] as const;
type Direction = (typeof DIRECTIONS)[number];

interface BlockJob {
  impl: BlockImpl;
  port: number;
  direction: Direction;
  warmupTransfers: number;
  durationMs: number;
  socketBuffer: number;
}

interface BlockResult {
  type: 'result';
  impl: BlockImpl;
  direction: Direction;
  transfers: number;
  seconds: number;
  kibPerSecond: number;
  /** Median duration of one transfer, ms. */
  transferMs: number;
  errors: number;
  firstError?: string;
  clientCpuMicros: number;
  serverCpuMicros?: number;
}

// --- server child ------------------------------------------------------------------------------

async function serve(impl: BlockImpl, port: number, socketBuffer: number): Promise<void> {
  let received = 0;
  const check = (body: Uint8Array): boolean => body.length === SIZE && Buffer.compare(body, BIG) === 0;
  if (impl === 'coapsec') {
    const server = await CoapServer.listen({
      host: HOST,
      port,
      blockwise: { maxBodySize: 8 << 20, preferredSzx: SZX },
      ...(socketBuffer > 0 ? { receiveBufferSize: socketBuffer, sendBufferSize: socketBuffer } : {}),
    });
    server.resource('/big', {
      GET: () => ({ code: 69, payload: BIG }),
      PUT: (req) => {
        received++;
        return { code: check(req.payload) ? 68 : 128 /* 4.00 */ };
      },
    });
  } else {
    const coap = createRequire(import.meta.url)('coap') as NodeCoap;
    const server = coap.createServer({ type: 'udp4' });
    server.on('request', (req, res) => {
      if (req.url !== '/big') {
        res.code = '4.04';
        res.end();
      } else if (req.method === 'GET') {
        res.code = '2.05';
        res.end(BIG); // node-coap's server splits it into Block2 blocks of 1024 bytes (its maximum)
      } else if (req.method === 'PUT') {
        received++;
        res.code = check(req.payload) ? '2.04' : '4.00';
        res.end();
      } else {
        res.code = '4.05';
        res.end();
      }
    });
    server.on('error', () => {});
    await new Promise<void>((resolve) => server.listen(port, HOST, () => resolve()));
    if (server._sock instanceof dgram.Socket) sizeSocketBuffers(server._sock, socketBuffer);
  }
  const exit = (): void => process.exit(0);
  process.on('disconnect', exit);
  process.on('SIGTERM', exit);
  process.send?.({ type: 'ready', impl, port });
  void received;
}

// --- client child ------------------------------------------------------------------------------

type Transfer = () => Promise<void>;

async function coapsecTransfer(job: BlockJob): Promise<{ transfer: Transfer; close: () => Promise<void> }> {
  const client = new CoapClient({
    blockSize: BLOCK,
    maxBodySize: 8 << 20,
    ...(job.socketBuffer > 0 ? { receiveBufferSize: job.socketBuffer, sendBufferSize: job.socketBuffer } : {}),
  });
  const uri = `coap://${HOST}:${job.port}/big`;
  const transfer: Transfer =
    job.direction === 'block2-get'
      ? async () => {
          const r = await client.get(uri);
          if (r.code !== 69 || r.payload.length !== SIZE || Buffer.compare(r.payload, BIG) !== 0) throw new Error(`GET: code ${r.code}, ${r.payload.length} bytes`);
        }
      : async () => {
          const r = await client.put(uri, BIG);
          if (r.code !== 68) throw new Error(`PUT: code ${r.code >> 5}.${String(r.code & 31).padStart(2, '0')}`);
        };
  return { transfer, close: () => client.close() };
}

async function nodeCoapTransfer(job: BlockJob): Promise<{ transfer: Transfer; close: () => Promise<void> }> {
  const coap = createRequire(import.meta.url)('coap') as NodeCoap;
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, HOST, () => resolve()));
  sizeSocketBuffers(socket, job.socketBuffer);
  const agent = new coap.Agent({ socket });
  const transfer: Transfer = () =>
    new Promise<void>((resolve, reject) => {
      const get = job.direction === 'block2-get';
      const req = coap.request({ hostname: HOST, port: job.port, pathname: '/big', method: get ? 'GET' : 'PUT', confirmable: true, agent });
      req.on('response', (res: { code: string; payload: Buffer }) => {
        if (get && (res.code !== '2.05' || res.payload.length !== SIZE || Buffer.compare(res.payload, BIG) !== 0)) reject(new Error(`GET: ${res.code}, ${res.payload.length} bytes`));
        else if (!get && res.code !== '2.04') reject(new Error(`PUT: ${res.code}`));
        else resolve();
      });
      req.on('error', reject);
      req.on('timeout', () => reject(new Error('timeout')));
      if (get) req.end();
      else {
        // node-coap's client sends Block1 when the request carries a Block1 option: its first
        // byte is the SZX of the block size (segmentation.ts).
        req.setOption('Block1', Buffer.of(SZX));
        req.end(BIG);
      }
    });
  return {
    transfer,
    close: async () => {
      agent.close();
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

async function runClient(job: BlockJob): Promise<BlockResult> {
  const { transfer, close } = job.impl === 'coapsec' ? await coapsecTransfer(job) : await nodeCoapTransfer(job);
  let errors = 0;
  let firstError: string | undefined;
  const once = async (): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([transfer(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('transfer timed out')), TRANSFER_TIMEOUT_MS)))]);
      return true;
    } catch (e) {
      errors++;
      firstError ??= String((e as Error)?.message ?? e);
      return false;
    } finally {
      clearTimeout(timer);
    }
  };
  for (let i = 0; i < job.warmupTransfers; i++) await once();
  const cpu0 = process.cpuUsage();
  const durations: number[] = [];
  const t0 = performance.now();
  while (durations.length < MAX_TRANSFERS && (durations.length === 0 || performance.now() - t0 < job.durationMs) && errors < 3) {
    const start = performance.now();
    if (await once()) durations.push(performance.now() - start);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await Promise.race([close().catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
  return {
    type: 'result',
    impl: job.impl,
    direction: job.direction,
    transfers: durations.length,
    seconds,
    kibPerSecond: (durations.length * SIZE) / 1024 / seconds,
    transferMs: median(durations),
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    clientCpuMicros: cpu.user + cpu.system,
  };
}

// --- orchestrator ------------------------------------------------------------------------------

const USAGE = `usage: node dist/bench/blockwise.js [--quick] [--rounds N] [--duration MS] [--port-base P (default 47340)] [--socket-buffer BYTES]`;

async function orchestrate(): Promise<void> {
  const s = parseCommonArgs(
    process.argv.slice(2),
    { quick: false, rounds: 5, warmupMs: 1, durationMs: 2000, portBase: 47_340, socketBuffer: 1 << 20 },
    { rounds: 2, durationMs: 500 },
    USAGE,
  );
  const started = performance.now();
  const describe = [
    environment(),
    `1 MiB body, 1024-byte blocks, CON, one transfer at a time; loopback, ports ${s.portBase}/${s.portBase + 1}; coapsec server blockwise.maxBodySize 8 MiB, client blockSize 1024`,
    `${s.rounds} rounds × {Block2 GET, Block1 PUT} × {coapsec, node-coap}; each measurement: ${s.warmupMs > 0 ? '1 warm-up transfer, then ' : ''}transfers for ${s.durationMs} ms (at least 1, at most ${MAX_TRANSFERS}), fresh client process`,
  ];
  for (const line of describe) console.error(line);
  const servers = new Map<BlockImpl, Awaited<ReturnType<typeof forkAndAwait>>['child']>();
  for (const [i, impl] of IMPLS.entries()) {
    const { child } = await forkAndAwait(here('blockwise.js'), ['--server', impl, String(s.portBase + i), String(s.socketBuffer)], 'ready', 10_000, true);
    servers.set(impl, child);
  }
  const results: BlockResult[] = [];
  let order = 0;
  for (let round = 0; round < s.rounds; round++) {
    for (const direction of DIRECTIONS) {
      const shift = order++ % IMPLS.length;
      for (const impl of [...IMPLS.slice(shift), ...IMPLS.slice(0, shift)]) {
        const job: BlockJob = { impl, port: s.portBase + IMPLS.indexOf(impl), direction, warmupTransfers: s.warmupMs > 0 ? 1 : 0, durationMs: s.durationMs, socketBuffer: s.socketBuffer };
        const server = servers.get(impl)!;
        const cpu0 = processCpuMicros(server.pid);
        const { message } = await forkAndAwait<BlockResult>(here('blockwise.js'), ['--client', JSON.stringify(job)], 'result', (MAX_TRANSFERS + 2) * TRANSFER_TIMEOUT_MS, false);
        // The server's CPU includes the warm-up transfer; per MiB it is divided by all of them.
        message.serverCpuMicros = (processCpuMicros(server.pid) - cpu0) / (message.transfers + job.warmupTransfers);
        results.push(message);
        console.error(
          `round ${round + 1}/${s.rounds}  ${direction.padEnd(10)}  ${impl.padEnd(9)}  ${fmt(message.kibPerSecond).padStart(6)} KiB/s  ${message.transfers} transfers, median ${fmt(message.transferMs)} ms` +
            `  cpu ms/MiB client ${fmt(message.clientCpuMicros / Math.max(1, message.transfers) / 1000, 1)} server ${fmt(message.serverCpuMicros / 1000, 1)}` +
            (message.errors ? `  errors ${message.errors} (first: ${message.firstError})` : ''),
        );
      }
    }
  }
  console.log('');
  for (const line of describe) console.log(line);
  console.log(`total time ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  const rows: string[][] = [['transfer', 'implementation', 'KiB/s (median)', 'KiB/s (min–max)', 'ms per MiB', 'CPU ms/MiB client', 'CPU ms/MiB server', 'transfers', 'errors']];
  const pick = (impl: BlockImpl, d: Direction): BlockResult[] => results.filter((r) => r.impl === impl && r.direction === d);
  for (const d of DIRECTIONS) {
    for (const impl of IMPLS) {
      const rs = pick(impl, d);
      const ok = rs.filter((r) => r.transfers > 0);
      const kib = ok.map((r) => r.kibPerSecond);
      rows.push([
        d === 'block2-get' ? 'Block2 (GET 1 MiB)' : 'Block1 (PUT 1 MiB)',
        impl,
        ok.length ? fmt(median(kib)) : 'failed',
        ok.length ? `${fmt(Math.min(...kib))}–${fmt(Math.max(...kib))}` : '-',
        fmt(median(ok.map((r) => r.transferMs))),
        fmt(median(ok.map((r) => r.clientCpuMicros / r.transfers / 1000)), 1),
        fmt(median(ok.map((r) => (r.serverCpuMicros ?? NaN) / 1000)), 1),
        String(rs.reduce((a, r) => a + r.transfers, 0)),
        rs.some((r) => r.errors) ? `${rs.reduce((a, r) => a + r.errors, 0)} (${rs.find((r) => r.firstError)?.firstError})` : '0',
      ]);
    }
  }
  console.log(table(rows));
  console.log('');
  const ratios: string[][] = [['transfer', 'coapsec/node-coap KiB/s', 'coapsec/node-coap by CPU (client+server)']];
  for (const d of DIRECTIONS) {
    const ours = pick('coapsec', d).filter((r) => r.transfers > 0);
    const theirs = pick('node-coap', d).filter((r) => r.transfers > 0);
    const cpu = (rs: BlockResult[]): number => median(rs.map((r) => r.clientCpuMicros / r.transfers)) + median(rs.map((r) => r.serverCpuMicros ?? NaN));
    ratios.push([d === 'block2-get' ? 'Block2 (GET 1 MiB)' : 'Block1 (PUT 1 MiB)', ratio(median(ours.map((r) => r.kibPerSecond)), median(theirs.map((r) => r.kibPerSecond))), ratio(cpu(theirs), cpu(ours))]);
  }
  console.log(table(ratios));
}

// --- entry -------------------------------------------------------------------------------------

const [mode, ...rest] = process.argv.slice(2);
if (mode === '--server') {
  const [impl, port, buffer] = rest;
  if (!IMPLS.includes(impl as BlockImpl)) throw new Error(`unknown implementation ${impl}`);
  serve(impl as BlockImpl, Number(port), Number(buffer ?? 0)).catch((e: unknown) => {
    console.error(`blockwise server: ${(e as Error).stack ?? e}`);
    process.exit(1);
  });
} else if (mode === '--client') {
  runClient(JSON.parse(rest[0] ?? '') as BlockJob)
    .then(async (result) => {
      if (process.send) await new Promise<void>((resolve) => process.send!(result, () => resolve()));
      else console.log(JSON.stringify(result));
      process.exit(0);
    })
    .catch((e: unknown) => {
      console.error(`blockwise client: ${(e as Error).stack ?? e}`);
      process.exit(1);
    });
} else {
  runMain(orchestrate);
}
