/**
 * CON GET benchmark: coapsec ↔ coapsec, node-coap ↔ node-coap, and a raw dgram echo pair as the
 * ceiling, at 1, 32 and 256 requests in flight. Each server runs in a child process of its own for
 * the whole run; each measurement runs its client in a fresh child process. Rounds interleave the
 * implementations (in a rotating order) so that noise on a shared machine hits all of them alike;
 * the table shows medians over rounds.
 *
 *   npm run bench                     # full run (~2.5 minutes)
 *   node dist/bench/run.js --quick    # short smoke run
 *   node dist/bench/run.js --rounds 7 --duration 3000 --json results.json
 *   node dist/bench/run.js --variant patched=/tmp/other-tree   # A/B: adds that tree's coapsec,
 *                                                              # interleaved with this one
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import os from 'node:os';
import { clientJobTiming, forkAndAwait, fmt, here, processCpuMicros, ratio, runMain, table } from './harness.js';
import { BENCH_NSTART, IMPLEMENTATIONS, isImpl, median, type ClientJob, type ClientResult, type Impl, type ServerReady } from './common.js';

interface Settings {
  rounds: number;
  warmupMs: number;
  durationMs: number;
  concurrencies: number[];
  impls: Impl[];
  portBase: number;
  json: string | undefined;
  quick: boolean;
  socketBuffer: number;
  /** Extra coapsec builds to compare, each a tree with its own compiled dist/bench. */
  variants: Array<{ label: string; dir: string }>;
}

/** One column of the comparison: an implementation, run from a compiled bench directory. */
interface Contender {
  label: string;
  impl: Impl;
  /** Directory holding server.js and client.js. */
  benchDir: string;
  port: number;
}

const USAGE = `usage: node dist/bench/run.js [--quick] [--rounds N] [--duration MS] [--warmup MS]
       [--concurrency 1,32,256] [--impl raw,coapsec,node-coap] [--port-base P]
       [--socket-buffer BYTES (default 1 MiB, 0 = OS default)] [--json FILE]
       [--variant LABEL=DIR (another tree's coapsec, from DIR/dist/bench; repeatable)]`;

function parseArgs(argv: string[]): Settings {
  const s: Settings = {
    rounds: 5,
    warmupMs: 500,
    durationMs: 2500,
    concurrencies: [1, 32, 256],
    impls: [...IMPLEMENTATIONS],
    portBase: 47_310,
    json: undefined,
    quick: false,
    socketBuffer: 1 << 20,
    variants: [],
  };
  let explicitRounds = false;
  let explicitDuration = false;
  let explicitWarmup = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    const int = (min: number, max: number): number => {
      const v = Number(value());
      if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${arg} must be an integer in ${min}..${max}`);
      return v;
    };
    switch (arg) {
      case '--quick':
        s.quick = true;
        break;
      case '--rounds':
        s.rounds = int(1, 50);
        explicitRounds = true;
        break;
      case '--duration':
        s.durationMs = int(100, 60_000);
        explicitDuration = true;
        break;
      case '--warmup':
        s.warmupMs = int(0, 10_000);
        explicitWarmup = true;
        break;
      case '--concurrency':
        s.concurrencies = value().split(',').map((x) => {
          const n = Number(x);
          if (!Number.isInteger(n) || n < 1 || n > 4096) throw new Error(`bad concurrency ${x}`);
          return n;
        });
        break;
      case '--impl':
        s.impls = value().split(',').map((x) => {
          if (!isImpl(x)) throw new Error(`unknown implementation ${x} (raw, coapsec, node-coap)`);
          return x;
        });
        break;
      case '--port-base':
        s.portBase = int(1024, 65_000);
        break;
      case '--socket-buffer':
        s.socketBuffer = int(0, 64 << 20);
        break;
      case '--variant': {
        const v = value();
        const eq = v.indexOf('=');
        if (eq <= 0) throw new Error(`--variant wants LABEL=DIR, got ${v}`);
        const dir = v.slice(eq + 1);
        if (!existsSync(`${dir}/dist/bench/server.js`)) throw new Error(`${dir}/dist/bench/server.js not found (compile that tree first)`);
        s.variants.push({ label: v.slice(0, eq), dir: resolvePath(dir) });
        break;
      }
      case '--json':
        s.json = value();
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${arg}\n${USAGE}`);
    }
  }
  if (s.quick) {
    if (!explicitRounds) s.rounds = 2;
    if (!explicitDuration) s.durationMs = 700;
    if (!explicitWarmup) s.warmupMs = 300;
  }
  return s;
}

function gitRevision(cwd: string): string {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8', timeout: 5000 }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', 'src'], { cwd, encoding: 'utf8', timeout: 5000 }).trim();
    return `commit ${rev}${dirty ? ' + uncommitted changes in src/' : ''}`;
  } catch {
    return 'commit unknown';
  }
}

function osBuffers(): string {
  try {
    const read = (name: string): string => readFileSync(`/proc/sys/net/core/${name}`, 'utf8').trim();
    return ` (net.core.rmem_default ${read('rmem_default')}, rmem_max ${read('rmem_max')})`;
  } catch {
    return '';
  }
}


/** The host's UDP RcvbufErrors counter (datagrams dropped because a receive buffer was full). */
function udpRcvbufErrors(): number {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const names = lines[0]!.split(/\s+/);
    const values = lines[1]!.split(/\s+/);
    return Number(values[names.indexOf('RcvbufErrors')]);
  } catch {
    return NaN;
  }
}

/** A result with the contender it belongs to. */
type LabelledResult = ClientResult & { label: string };

async function measure(contender: Contender, job: ClientJob, server: ChildProcess): Promise<LabelledResult> {
  const limit = job.warmupMs + job.durationMs + job.drainMs + 10_000;
  const cpu0 = processCpuMicros(server.pid);
  const drops0 = udpRcvbufErrors();
  const { message } = await forkAndAwait<ClientResult>(join(contender.benchDir, 'client.js'), [JSON.stringify(job)], 'result', limit, false);
  message.serverCpuMicros = processCpuMicros(server.pid) - cpu0;
  message.rcvbufDrops = udpRcvbufErrors() - drops0;
  return { ...message, label: contender.label };
}

// --- report ----------------------------------------------------------------------------------

const TARGETS: Record<number, number> = { 1: 0.85, 32: 0.5, 256: 0.5 };


interface Summary {
  label: string;
  impl: Impl;
  concurrency: number;
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50: number;
  p99: number;
  errors: number;
  retransmissions: number;
  abandoned: number;
  drops: number;
  clientCpu: number;
  serverCpu: number;
}

function summarize(results: LabelledResult[], contenders: Contender[], concurrencies: number[]): Summary[] {
  const out: Summary[] = [];
  for (const concurrency of concurrencies) {
    for (const { label, impl } of contenders) {
      const rs = results.filter((r) => r.label === label && r.concurrency === concurrency);
      if (rs.length === 0) continue;
      const rps = rs.map((r) => r.rps);
      out.push({
        label,
        impl,
        concurrency,
        rps: median(rps),
        rpsMin: Math.min(...rps),
        rpsMax: Math.max(...rps),
        p50: median(rs.map((r) => r.p50)),
        p99: median(rs.map((r) => r.p99)),
        errors: rs.reduce((a, r) => a + r.errors, 0),
        retransmissions: rs.reduce((a, r) => a + Math.max(0, r.retransmissions), 0),
        abandoned: rs.reduce((a, r) => a + r.abandoned, 0),
        drops: rs.reduce((a, r) => a + (r.rcvbufDrops || 0), 0),
        clientCpu: median(rs.map((r) => r.clientCpuMicros / r.totalCompleted)),
        serverCpu: median(rs.map((r) => (r.serverCpuMicros ?? NaN) / r.totalCompleted)),
      });
    }
  }
  return out;
}


function report(summaries: Summary[], s: Settings, contenders: Contender[]): string {
  const get = (label: string, c: number): Summary | undefined => summaries.find((x) => x.label === label && x.concurrency === c);
  const main: string[][] = [
    ['in flight', 'implementation', 'req/s (median)', 'req/s (min–max)', 'p50 ms', 'p99 ms', 'CPU µs/req client', 'CPU µs/req server', 'errors', 'retx', 'host UDP drops'],
  ];
  for (const c of s.concurrencies) {
    for (const { label } of contenders) {
      const x = get(label, c);
      if (!x) continue;
      main.push([
        String(c),
        label,
        fmt(x.rps),
        `${fmt(x.rpsMin)}–${fmt(x.rpsMax)}`,
        fmt(x.p50, 3),
        fmt(x.p99, 3),
        fmt(x.clientCpu, 1),
        fmt(x.serverCpu, 1),
        String(x.errors + x.abandoned),
        x.impl === 'node-coap' ? 'n/a' : String(x.retransmissions),
        String(x.drops),
      ]);
    }
  }
  // Every coapsec build against raw (with the issue's target), node-coap against raw, and the
  // "by CPU" ratio: the raw pair's CPU time per request (client + server) over the contender's —
  // the throughput ratio if each process had a core to itself and nothing else ran.
  const ours = contenders.filter((c) => c.impl === 'coapsec').map((c) => c.label);
  const header = ['in flight', 'target'];
  for (const label of ours) header.push(`${label}/raw`, 'met?', `${label}/node-coap`, `${label}/raw by CPU`);
  header.push('node-coap/raw', 'node-coap/raw by CPU');
  const ratios: string[][] = [header];
  const cpu = (x: Summary | undefined): number => (x ? x.clientCpu + x.serverCpu : NaN);
  for (const c of s.concurrencies) {
    const raw = get('raw', c);
    const theirs = get('node-coap', c);
    const target = TARGETS[c];
    const row = [String(c), target === undefined ? '-' : `≥ ${target.toFixed(2)}×`];
    for (const label of ours) {
      const x = get(label, c);
      const r = (x?.rps ?? NaN) / (raw?.rps ?? NaN);
      row.push(ratio(x?.rps ?? NaN, raw?.rps ?? NaN), target === undefined || !Number.isFinite(r) ? '-' : r >= target ? 'yes' : 'NO');
      row.push(ratio(x?.rps ?? NaN, theirs?.rps ?? NaN), ratio(cpu(raw), cpu(x)));
    }
    row.push(ratio(theirs?.rps ?? NaN, raw?.rps ?? NaN), ratio(cpu(raw), cpu(theirs)));
    ratios.push(row);
  }
  return `${table(main)}\n\n${table(ratios)}`;
}

// --- main ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const ownDir = here('.');
  const contenders: Contender[] = s.impls.map((impl) => ({ label: impl, impl, benchDir: ownDir, port: s.portBase + IMPLEMENTATIONS.indexOf(impl) }));
  s.variants.forEach((v, i) => {
    if (contenders.some((c) => c.label === v.label)) throw new Error(`variant label ${v.label} is taken`);
    contenders.push({ label: v.label, impl: 'coapsec', benchDir: join(v.dir, 'dist', 'bench'), port: s.portBase + IMPLEMENTATIONS.length + i });
  });
  const describe = [
    `coapsec ${gitRevision(here('../..'))}; node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), ${os.platform()} ${os.release()}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    ...s.variants.map((v) => `variant ${v.label}: coapsec from ${v.dir} (${gitRevision(v.dir)})`),
    `CON GET, 20-byte payload, loopback 127.0.0.1, ports ${contenders.map((c) => c.port).join('/')}; coapsec NSTART=${BENCH_NSTART} (client and server; RFC default 1); node-coap: no NSTART limit`,
    `socket buffers (SO_RCVBUF/SO_SNDBUF, all sockets): ${s.socketBuffer > 0 ? `${s.socketBuffer} bytes requested` : 'OS default'}${osBuffers()}`,
    `${s.rounds} rounds × in-flight {${s.concurrencies.join(', ')}} × {${contenders.map((c) => c.label).join(', ')}}; each ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured, fresh client process; servers in long-lived child processes`,
  ];
  for (const line of describe) console.error(line);

  const servers = new Map<string, ChildProcess>();
  for (const c of contenders) {
    const script = join(c.benchDir, 'server.js');
    const { child } = await forkAndAwait<ServerReady>(script, [c.impl, String(c.port), String(s.socketBuffer)], 'ready', 10_000, true);
    servers.set(c.label, child);
  }

  const results: LabelledResult[] = [];
  let order = 0;
  for (let round = 0; round < s.rounds; round++) {
    for (const concurrency of s.concurrencies) {
      // Rotate the order so no implementation always runs first (or right after another).
      const shift = order++ % contenders.length;
      const sequence = [...contenders.slice(shift), ...contenders.slice(0, shift)];
      for (const c of sequence) {
        const job: ClientJob = {
          impl: c.impl,
          port: c.port,
          ...clientJobTiming(s, concurrency),
        };
        const r = await measure(c, job, servers.get(c.label)!);
        results.push(r);
        console.error(
          `round ${round + 1}/${s.rounds}  ${String(concurrency).padStart(3)} in flight  ${c.label.padEnd(9)}  ${fmt(r.rps).padStart(7)} req/s  p50 ${fmt(r.p50, 3)} ms  p99 ${fmt(r.p99, 3)} ms` +
            `  cpu µs/req client ${fmt(r.clientCpuMicros / r.totalCompleted, 1)} server ${fmt((r.serverCpuMicros ?? NaN) / r.totalCompleted, 1)}` +
            (r.errors || r.abandoned || r.retransmissions > 0 || r.rcvbufDrops ? `  errors ${r.errors} abandoned ${r.abandoned} retx ${r.retransmissions} host drops ${r.rcvbufDrops}` : ''),
        );
      }
    }
  }

  const summaries = summarize(results, contenders, s.concurrencies);
  console.log('');
  for (const line of describe) console.log(line);
  console.log(`total time ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  console.log(report(summaries, s, contenders));
  if (s.json) {
    writeFileSync(s.json, JSON.stringify({ settings: s, environment: describe, results, summaries }, null, 2) + '\n');
    console.log(`\nraw results written to ${s.json}`);
  }
}

runMain(main);
