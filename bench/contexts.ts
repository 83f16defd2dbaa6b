/**
 * Many OSCORE contexts (issue 21, "Many peers"): what a server holding one context per device
 * pays as devices are added, at 1, 1k, 10k and 100k contexts, each device with its own master
 * secret and 4-byte Sender ID (so each is a context of its own, not one context with many
 * recipients):
 *
 * - in a child process (node --expose-gc): the contexts created in memory (in a ContextTable, as serverCredentials holds them; no
 *   persistence), heap and RSS growth after GC, and `ContextDirectory.find` alone per lookup — for
 *   the last device (the far end of a scan) and for devices drawn at random; and, up to
 *   --store-max contexts (default 100,000), the same contexts loaded from a credentials file as
 *   `coapsec serve` loads it (serverCredentials: parse, validate, make the contexts; sequence
 *   stores open on first use), wall clock and CPU;
 * - the server: CoapServer with OscoreServerSecurity over the in-memory contexts (the OSCORE stage
 *   `coapsec serve` runs, without its persistence), in a process pinned to one core, its CPU per
 *   response under the native load generator (bench/native/coap-load.c) at 32 in flight, the
 *   OSCORE requests coming from the last device.
 *
 *   node dist/bench/contexts.js                        # 1,1000,10000,100000 × 3 rounds (rounds go over every count in turn)
 *   node dist/bench/contexts.js --counts 1,1000 --rounds 1 --no-server
 *
 * Only the library's public shapes are used (OscoreSecurityContext, serverCredentials,
 * ContextDirectory.find, OscoreServerSecurity, protectRequest), so the same command measures any
 * later layout of the directory.
 */
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContextTable } from '../src/oscore/context-table.js';
import { ContextDirectory, OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { serverCredentials } from '../src/server/credentials.js';
import { ResponseCode } from '../src/coap/codes.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { median, OSCORE_MASTER_SALT, OSCORE_REPLAY_WINDOW } from './common.js';
import { HELLO, HELLO_PATH, writeServerCredentials, type BenchRecipient } from './cpu-servers.js';
import { environment, fmt, forkAndAwait, here, parseCommonArgs, runMain, stopChild, table, track } from './harness.js';
import { buildLoadGenerator, OscoreRequestPool, perResponse, pinning, requestFile, runLoad, scratchDir, scratchFile } from './native-load.js';

const USAGE = `usage: node dist/bench/contexts.js [--counts 1,1000,10000,100000] [--rounds N] [--duration MS] [--warmup MS]
       [--port-base P (default 47530)] [--no-server] [--lookup-ms MS] [--store-max N (default 100000)]`;

/** Issue 21's targets at 100,000 contexts. */
const TARGET = { cpuWithin: 0.05, heapMiB: 64, loadSeconds: 2 };

/** Device i: Sender ID = i as 4 bytes, its own master secret. */
function device(i: number): BenchRecipient {
  const id = Buffer.alloc(4);
  id.writeUInt32BE(i);
  return { recipientIdHex: id.toString('hex'), masterSecretHex: createHash('sha256').update(`coapsec bench device ${i}`).digest().subarray(0, 16).toString('hex') };
}

const devices = (n: number): BenchRecipient[] => Array.from({ length: n }, (_, i) => device(i));

/**
 * The server's contexts for `count` devices, in memory, as serverCredentials now holds them: in a
 * ContextTable (bytes until a request names one), minus the sequence stores.
 */
function deviceContexts(count: number): ContextTable {
  const table = new ContextTable();
  for (const d of devices(count)) {
    table.add({
      masterSecret: Buffer.from(d.masterSecretHex, 'hex'),
      masterSalt: OSCORE_MASTER_SALT,
      senderId: Buffer.from('01', 'hex'),
      recipientIds: [Buffer.from(d.recipientIdHex, 'hex')],
      replayWindow: OSCORE_REPLAY_WINDOW,
    });
  }
  return table;
}

/** `contexts.js serve PORT COUNT`: a CoapServer answering GET /hello, OSCORE with COUNT device contexts. */
async function serveChild(port: number, count: number): Promise<void> {
  const t0 = performance.now();
  const security = new OscoreServerSecurity([], { table: deviceContexts(count) });
  const createMs = performance.now() - t0;
  const server = await CoapServer.listen({ host: '127.0.0.1', port, security, receiveBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
  server.resource(HELLO_PATH, { GET: () => ({ code: ResponseCode.Content, payload: HELLO }) }, { requireOscore: true });
  process.on('disconnect', () => void server.close().finally(() => process.exit(0)));
  process.send!({ type: 'ready', createMs });
}

// --- in-process child ------------------------------------------------------------------------

interface InProcessResult {
  type: 'in-process';
  count: number;
  /** Creating the contexts in memory, wall clock and CPU. */
  createMs: number;
  createCpuMs: number;
  /** Loading them from a credentials file (serverCredentials), wall clock and CPU; NaN above --store-max. */
  loadMs: number;
  loadCpuMs: number;
  heapBytes: number;
  rssBytes: number;
  /** µs per ContextDirectory.find for the last device, and for random ones. */
  findLastMicros: number;
  findRandomMicros: number;
}

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run with --expose-gc');
  collect();
  collect();
};

/** µs per call of `op(i)`, over at least `ms` or 200,000 calls, whichever ends first (at least 3 calls). */
function microsPerCall(op: (i: number) => void, ms: number): number {
  let n = 0;
  const t0 = performance.now();
  while (n < 3 || (n < 200_000 && performance.now() - t0 < ms)) op(n++);
  return ((performance.now() - t0) * 1000) / n;
}

function inProcess(file: string | undefined, count: number, registry: string, lookupMs: number): InProcessResult {
  gc();
  const before = process.memoryUsage();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const contexts = deviceContexts(count);
  const createMs = performance.now() - t0;
  const createCpu = process.cpuUsage(cpu0);
  const createCpuMs = (createCpu.user + createCpu.system) / 1000;
  gc();
  const after = process.memoryUsage();
  const directory = new ContextDirectory([], contexts);
  const ids = devices(count).map((d) => Buffer.from(d.recipientIdHex, 'hex'));
  const last = ids[count - 1]!;
  const find = (kid: Uint8Array): void => {
    if (!directory.find(kid, undefined)) throw new Error(`no context for kid ${Buffer.from(kid).toString('hex')}`);
  };
  find(last); // warm
  const findLastMicros = microsPerCall(() => find(last), lookupMs);
  let seed = 12345;
  const random = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) % count;
  const findRandomMicros = microsPerCall(() => find(ids[random()]!), lookupMs);
  let loadMs = NaN;
  let loadCpuMs = NaN;
  if (file !== undefined) {
    const t1 = performance.now();
    const cpu1 = process.cpuUsage();
    const loaded = serverCredentials(file, { registryDirectory: registry });
    loadMs = performance.now() - t1;
    const cpu = process.cpuUsage(cpu1);
    loadCpuMs = (cpu.user + cpu.system) / 1000;
    if (loaded.security.contextCount !== count) throw new Error(`loaded ${loaded.security.contextCount} contexts, wanted ${count}`);
    loaded.close();
  }
  return {
    type: 'in-process',
    count,
    createMs,
    createCpuMs,
    loadMs,
    loadCpuMs,
    // The table's bytes are ArrayBuffers outside V8's heap: counted too.
    heapBytes: after.heapUsed + after.external - before.heapUsed - before.external,
    rssBytes: after.rss - before.rss,
    findLastMicros,
    findRandomMicros,
  };
}

// --- orchestrator ----------------------------------------------------------------------------

interface ServerMeasurement {
  round: number;
  /** The server process's creation of its contexts. */
  createMs: number;
  rssBytes: number;
  micros: number;
  rps: number;
  refused: number;
  lost: number;
}

function rssOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return line ? Number(line.split(/\s+/)[1]) * 1024 : NaN;
}

function runChild(file: string | undefined, count: number, registry: string, lookupMs: number): Promise<InProcessResult> {
  const child = track(fork(here('contexts.js'), ['child', String(count), registry, String(lookupMs), ...(file !== undefined ? [file] : [])], { execArgv: [...process.execArgv, '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.on('message', (m: InProcessResult) => {
      clearTimeout(timer);
      resolve(m);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`contexts child for ${count} contexts ended with ${code}`));
    });
  });
}

async function main(): Promise<void> {
  let counts = [1, 1000, 10_000, 100_000];
  let server = true;
  let lookupMs = 300;
  let storeMax = 100_000;
  const s = parseCommonArgs(
    process.argv.slice(2),
    { quick: false, rounds: 3, warmupMs: 2000, durationMs: 2500, portBase: 47_530, socketBuffer: 1 << 20 },
    { rounds: 1, warmupMs: 1000, durationMs: 1000 },
    USAGE,
    (arg, value) => {
      if (arg === '--counts') counts = value().split(',').map(Number);
      else if (arg === '--no-server') server = false;
      else if (arg === '--lookup-ms') lookupMs = Number(value());
      else if (arg === '--store-max') storeMax = Number(value());
      else return false;
      return true;
    },
  );
  for (const n of counts) if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw new Error('--counts: integers in 1..1000000');
  const started = performance.now();
  const binary = buildLoadGenerator();
  const scratch = scratchDir(binary);
  const pin = pinning();
  const describe = [
    environment(),
    `OSCORE contexts, one per device (own master secret, 4-byte Sender ID), loaded from a coapsec credentials file; counts {${counts.join(', ')}}, ${s.rounds} rounds`,
    `in process: contexts created in memory, heap/RSS growth after GC, ContextDirectory.find per lookup (last device; random devices), ${lookupMs} ms each; serverCredentials() load from a file up to ${storeMax} contexts`,
    ...(server
      ? [`server: CoapServer + OscoreServerSecurity over in-memory contexts, ${pin.describe}; native load generator, 32 OSCORE GETs ${HELLO_PATH} in flight from the last device, ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured`]
      : []),
  ];
  for (const line of describe) console.error(line);

  const inProcessResults: InProcessResult[] = [];
  const serverResults = new Map<number, ServerMeasurement[]>();
  const rates = new Map<number, number>();
  // One pool per count for the whole run: its Sender Sequence Numbers only go up. Rounds go over
  // every count in turn, so a change in the machine's load reaches every count alike.
  const pools = new Map(
    counts.map((count) => {
      const last = device(count - 1);
      const sender = new OscoreSecurityContext(
        { masterSecret: Buffer.from(last.masterSecretHex, 'hex'), masterSalt: OSCORE_MASTER_SALT, senderId: Buffer.from(last.recipientIdHex, 'hex'), recipientIds: [Buffer.from('01', 'hex')] },
        new VolatileSequence(),
      ).sender;
      return [count, new OscoreRequestPool(sender)] as const;
    }),
  );
  for (let round = 0; round < s.rounds; round++) {
    for (const count of counts) {
      const pool = pools.get(count)!;
      // A fresh file (and state directory) each round: a store that resumes does more work.
      const file = count <= storeMax ? writeServerCredentials(scratch, devices(count)) : undefined;
      const r = await runChild(file, count, mkdtempSync(join(scratch, 'registry-')), lookupMs);
      inProcessResults.push(r);
      console.error(
        `round ${round + 1}/${s.rounds}  ${String(count).padStart(6)} contexts  create ${fmt(r.createMs)} ms (CPU ${fmt(r.createCpuMs)} ms)  load from file ${fmt(r.loadMs)} ms (CPU ${fmt(r.loadCpuMs)} ms)  heap +${fmt(r.heapBytes / 2 ** 20, 1)} MiB  rss +${fmt(r.rssBytes / 2 ** 20, 1)} MiB` +
          `  find ${fmt(r.findLastMicros, 2)} µs (last) ${fmt(r.findRandomMicros, 2)} µs (random)`,
      );
      if (!server) continue;
      const { child, message } = await forkAndAwait<{ type: 'ready'; createMs: number }>(here('contexts.js'), ['serve', String(s.portBase), String(count)], 'ready', 600_000, true, pin.server);
      try {
        const rssBytes = rssOf(child.pid!);
        // Sized for at least 20k responses/s: a slow earlier round must not starve a faster one.
        let poolSize = Math.ceil(Math.max(rates.get(count) ?? 0, 20_000) * ((s.warmupMs + s.durationMs) / 1000) * 1.5) + 64;
        for (let attempt = 0; ; attempt++) {
          const requests = scratchFile(binary, 'contexts.req', requestFile(pool.requests(HELLO_PATH, poolSize)));
          // No request is given up on before the window ends: with a scan per lookup, 100k contexts answer slowly.
          const load = await runLoad(binary, pin, { port: s.portBase, inFlight: 32, warmupMs: s.warmupMs, durationMs: s.durationMs, requests, serverPid: child.pid!, timeoutMs: 60_000 });
          if (load.exhausted && attempt < 2) {
            poolSize *= 2;
            continue;
          }
          const x = perResponse(load);
          rates.set(count, Math.max(rates.get(count) ?? 0, x.rps));
          const m: ServerMeasurement = { round, createMs: message.createMs, rssBytes, micros: x.serverMicros, rps: x.rps, refused: load.errors, lost: load.lost };
          (serverResults.get(count) ?? serverResults.set(count, []).get(count)!).push(m);
          console.error(
            `round ${round + 1}/${s.rounds}  ${String(count).padStart(6)} contexts  server created them in ${fmt(m.createMs / 1000, 1)} s  rss ${fmt(m.rssBytes / 2 ** 20)} MiB` +
              `  ${fmt(m.micros, 1)} µs/response  ${fmt(m.rps)} resp/s${m.refused || m.lost ? `  refused ${m.refused} lost ${m.lost}` : ''}${load.exhausted ? '  (request pool ran dry)' : ''}`,
          );
          break;
        }
      } finally {
        await stopChild(child);
      }
    }
  }

  console.log('');
  for (const line of describe) console.log(line);
  console.log(`total time ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  const baseline = median((serverResults.get(counts[0]!) ?? []).map((m) => m.micros));
  const rows = [
    ['contexts', 'create ms (in memory)', 'load ms (credentials file)', 'heap MiB', 'RSS MiB', 'find µs (last)', 'find µs (random)', 'server RSS MiB', 'server CPU µs/response', `vs ${counts[0]} context(s)`, 'responses/s', 'non-2.xx/lost'],
  ];
  for (const count of counts) {
    const rs = inProcessResults.filter((r) => r.count === count);
    const ms = serverResults.get(count) ?? [];
    const micros = median(ms.map((m) => m.micros));
    rows.push([
      String(count),
      `${fmt(median(rs.map((r) => r.createMs)))} (CPU ${fmt(median(rs.map((r) => r.createCpuMs)))})`,
      count <= storeMax ? `${fmt(median(rs.map((r) => r.loadMs)))} (CPU ${fmt(median(rs.map((r) => r.loadCpuMs)))})` : 'not run',
      fmt(median(rs.map((r) => r.heapBytes)) / 2 ** 20, 1),
      fmt(median(rs.map((r) => r.rssBytes)) / 2 ** 20, 1),
      fmt(median(rs.map((r) => r.findLastMicros)), 2),
      fmt(median(rs.map((r) => r.findRandomMicros)), 2),
      fmt(median(ms.map((m) => m.rssBytes)) / 2 ** 20),
      fmt(micros, 1),
      Number.isFinite(baseline) ? fmt(micros / baseline, 2) + '×' : '-',
      fmt(median(ms.map((m) => m.rps))),
      ms.length > 0 ? `${ms.reduce((a, m) => a + m.refused, 0)}/${ms.reduce((a, m) => a + m.lost, 0)}` : '-',
    ]);
  }
  console.log(table(rows));
  const largest = counts[counts.length - 1]!;
  const big = inProcessResults.filter((r) => r.count === largest);
  // The server's cost at the largest count against the smallest, within each round, then the median.
  const small = serverResults.get(counts[0]!) ?? [];
  const perRound = (serverResults.get(largest) ?? []).flatMap((m) => {
    const same = small.find((x) => x.round === m.round);
    return same ? [m.micros / same.micros] : [];
  });
  const vsSmallest = median(perRound);
  const verdict = (ok: boolean | undefined): string => (ok === undefined ? '-' : ok ? 'yes' : 'NO');
  console.log('');
  console.log(
    table([
      ['target (issue 21) at ' + largest + ' contexts', 'measured', 'met?'],
      [
        `server CPU per response within ${TARGET.cpuWithin * 100} % of ${counts[0]} context(s) (per round)`,
        Number.isFinite(vsSmallest) ? `${fmt(vsSmallest, 2)}× (${perRound.map((x) => fmt(x, 2)).join(' / ')})` : '-',
        verdict(Number.isFinite(vsSmallest) ? vsSmallest <= 1 + TARGET.cpuWithin : undefined),
      ],
      [`heap ≤ ${TARGET.heapMiB} MiB`, fmt(median(big.map((r) => r.heapBytes)) / 2 ** 20, 1) + ' MiB', verdict(median(big.map((r) => r.heapBytes)) / 2 ** 20 <= TARGET.heapMiB)],
      [
        `creating (in memory) ≤ ${TARGET.loadSeconds} s`,
        `${fmt(median(big.map((r) => r.createMs)) / 1000, 2)} s (CPU ${fmt(median(big.map((r) => r.createCpuMs)) / 1000, 2)} s)`,
        verdict(median(big.map((r) => r.createMs)) / 1000 <= TARGET.loadSeconds),
      ],
      [
        `loading from a credentials file ≤ ${TARGET.loadSeconds} s`,
        largest <= storeMax ? `${fmt(median(big.map((r) => r.loadMs)) / 1000, 2)} s (CPU ${fmt(median(big.map((r) => r.loadCpuMs)) / 1000, 2)} s)` : `not run (above --store-max ${storeMax})`,
        largest <= storeMax ? verdict(median(big.map((r) => r.loadMs)) / 1000 <= TARGET.loadSeconds) : '-',
      ],
    ]),
  );
}

if (process.argv[2] === 'child') {
  const [count, registry, lookupMs, file] = process.argv.slice(3);
  try {
    process.send!(inProcess(file, Number(count), registry!, Number(lookupMs)), () => process.exit(0));
  } catch (error) {
    console.error(`contexts child: ${(error as Error).stack ?? error}`);
    process.exit(1);
  }
} else if (process.argv[2] === 'serve') {
  serveChild(Number(process.argv[3]), Number(process.argv[4])).catch((error: unknown) => {
    console.error(`contexts server: ${(error as Error).stack ?? error}`);
    process.exit(1);
  });
} else {
  runMain(main);
}
