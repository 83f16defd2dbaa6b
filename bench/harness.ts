/**
 * Orchestration shared by the block-wise, OSCORE and DTLS benchmarks (bench/blockwise.ts,
 * bench/oscore.ts, bench/dtls.ts): the same machinery as bench/run.ts — long-lived server child
 * processes, a fresh client child per measurement, rounds in rotating order, medians, CPU time of
 * the server from /proc — factored out so each benchmark file stays small.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, type ClientJob, type ClientResult, type Impl, type ServerReady, type Variant } from './common.js';

export interface CommonSettings {
  quick: boolean;
  rounds: number;
  warmupMs: number;
  durationMs: number;
  portBase: number;
  socketBuffer: number;
}

/**
 * Parses --quick, --rounds N, --duration MS, --warmup MS, --port-base P, --socket-buffer BYTES.
 * `quick` holds the defaults for --quick (rounds, durationMs, warmupMs).
 */
export function parseCommonArgs(
  argv: string[],
  defaults: CommonSettings,
  quick: Partial<CommonSettings>,
  usage: string,
  extra: (arg: string, value: () => string) => boolean = () => false,
): CommonSettings {
  const s = { ...defaults };
  const explicit = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value\n${usage}`);
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
        explicit.add('rounds');
        break;
      case '--duration':
        s.durationMs = int(100, 60_000);
        explicit.add('durationMs');
        break;
      case '--warmup':
        s.warmupMs = int(0, 10_000);
        explicit.add('warmupMs');
        break;
      case '--port-base':
        s.portBase = int(1024, 65_000);
        break;
      case '--socket-buffer':
        s.socketBuffer = int(0, 64 << 20);
        break;
      case '--help':
      case '-h':
        console.log(usage);
        process.exit(0);
        break;
      default:
        if (!extra(arg, value)) throw new Error(`unknown argument ${arg}\n${usage}`);
    }
  }
  if (s.quick) {
    for (const [k, v] of Object.entries(quick) as Array<[keyof CommonSettings, never]>) if (!explicit.has(k)) s[k] = v;
  }
  return s;
}

/** `LABEL=DIR` of an A/B option (`--tree`, `--variant`): the label and DIR resolved. */
export function labelledDir(value: string, flag: string): { label: string; dir: string } {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new Error(`${flag} wants LABEL=DIR, got ${value}`);
  return { label: value.slice(0, eq), dir: resolvePath(value.slice(eq + 1)) };
}

export function environment(): string {
  let rev = 'commit unknown';
  try {
    const cwd = fileURLToPath(new URL('../..', import.meta.url));
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8', timeout: 5000 }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', 'src'], { cwd, encoding: 'utf8', timeout: 5000 }).trim();
    rev = `commit ${head}${dirty ? ' + uncommitted changes in src/' : ''}`;
  } catch {
    /* not a git tree */
  }
  return `coapsec ${rev}; node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), ${os.platform()} ${os.release()}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`;
}

// --- child processes ------------------------------------------------------------------------

const children = new Set<ChildProcess>();

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}

/** Kills every child on exit and on SIGINT/SIGTERM; runs `main`, then lets the servers go. */
export function runMain(main: () => Promise<void>): void {
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      killAll();
      process.exit(130);
    });
  }
  main()
    .catch((error: unknown) => {
      console.error(`bench: ${(error as Error).stack ?? error}`);
      process.exitCode = 1;
    })
    .finally(() => {
      // Servers exit on disconnect; anything still alive is killed by the exit handler.
      for (const child of children) if (child.connected) child.disconnect();
      setTimeout(() => process.exit(), 1500).unref();
    });
}

/** Kills `child` (SIGKILL) if it is still running when the benchmark exits. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/**
 * Forks a child and resolves with its first IPC message of the wanted type, or rejects after `timeoutMs`.
 * `pin` (e.g. ['taskset', '-c', '0']) runs the child under that command, which execs Node: the IPC
 * channel's descriptor and environment pass through exec.
 */
export function forkAndAwait<T extends { type: string }>(
  script: string,
  args: string[],
  type: T['type'],
  timeoutMs: number,
  keepAlive: boolean,
  pin: readonly string[] = [],
): Promise<{ child: ChildProcess; message: T }> {
  const stdio: ['ignore', 'inherit', 'inherit', 'ipc'] = ['ignore', 'inherit', 'inherit', 'ipc'];
  const child =
    pin.length > 0
      ? spawn(pin[0]!, [...pin.slice(1), process.execPath, ...process.execArgv, script, ...args], { stdio, serialization: 'json' })
      : fork(script, args, { stdio, serialization: 'json' });
  children.add(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} ${args.join(' ')}: no ${type} within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', (m: { type?: string }) => {
      if (m?.type !== type) return;
      clearTimeout(timer);
      if (!keepAlive) {
        child.disconnect();
        children.delete(child);
      }
      resolve({ child, message: m as T });
    });
    // 'close', not 'exit': a child may exit right after sending, before its message is read here.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      reject(new Error(`${script} exited (${signal ?? code}) before sending ${type}`));
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Stops a long-lived server child (it exits on disconnect; killed after 2 s otherwise). */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.connected) child.disconnect();
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

/** CPU time (user + system) of a process in microseconds, from /proc (Linux); NaN elsewhere. */
export function processCpuMicros(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / 100) * 1e6; // utime + stime, USER_HZ = 100
  } catch {
    return NaN;
  }
}

export const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));

/** Another tree's compiled benchmark (`--variant LABEL=DIR`): its children run that tree's coapsec. */
export interface TreeVariant {
  label: string;
  /** DIR/dist/bench, holding that tree's server.js, client.js and the other children. */
  benchDir: string;
}

export function parseVariant(arg: string): TreeVariant {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new Error(`--variant wants LABEL=DIR, got ${arg}`);
  const benchDir = join(resolvePath(arg.slice(eq + 1)), 'dist', 'bench');
  if (!existsSync(join(benchDir, 'server.js'))) throw new Error(`${benchDir}/server.js not found (compile that tree first)`);
  return { label: arg.slice(0, eq), benchDir };
}

/**
 * A/B rows: for each pair (this tree's label, the variant's label) and concurrency, the median over
 * rounds of the req/s ratio, and the ratio of CPU per request (variant ÷ this: above 1 means this
 * tree is cheaper).
 */
export function variantTable(
  results: ReadonlyArray<{ label: string; concurrency: number; round?: number; rps: number }>,
  pairs: ReadonlyArray<readonly [string, string]>,
  concurrencies: readonly number[],
  cpuPerRequest: (label: string, concurrency: number) => number,
): string {
  const rows = [['in flight', 'this tree', 'variant', 'req/s this/variant (per-round median)', 'CPU/req variant/this (all its processes)']];
  for (const c of concurrencies) {
    for (const [ours, theirs] of pairs) {
      rows.push([String(c), ours, theirs, fmt(perRoundRatio(results, ours, theirs, c), 2) + '×', ratio(cpuPerRequest(theirs, c), cpuPerRequest(ours, c))]);
    }
  }
  return table(rows);
}

// --- the GET benchmark's server and client children, for coapsec variants --------------------

export interface GetContender {
  label: string;
  impl: Impl;
  variant: Variant;
  port: number;
  /** See ClientJob.burnMicros. */
  burnMicros?: number;
  /** Where server.js and client.js come from (another tree, for --variant); default this tree's. */
  benchDir?: string;
  /** coapsec plain: CoAP over TCP (RFC 8323) instead of UDP. */
  scheme?: 'coap' | 'coap+tcp';
}

/** `round` is set by runGetRounds (0-based); a single measurement has none. */
export type LabelledResult = ClientResult & { label: string; round?: number };

/**
 * The median over rounds of (a's req/s ÷ b's req/s in the same round). Rounds pair measurements
 * taken seconds apart, so this is steadier than a ratio of medians when other load drifts.
 */
export function perRoundRatio(
  results: ReadonlyArray<{ label: string; concurrency: number; round?: number; rps: number }>,
  a: string,
  b: string,
  concurrency: number,
): number {
  const ratios: number[] = [];
  for (const r of results) {
    if (r.label !== a || r.concurrency !== concurrency || r.round === undefined) continue;
    const base = results.find((x) => x.label === b && x.concurrency === concurrency && x.round === r.round);
    if (base && base.rps > 0) ratios.push(r.rps / base.rps);
  }
  return median(ratios);
}

/** Starts one server child per contender (bench/server.js). */
export async function startGetServers(contenders: readonly GetContender[], socketBuffer: number): Promise<Map<string, ChildProcess>> {
  const servers = new Map<string, ChildProcess>();
  for (const c of contenders) {
    const { child } = await forkAndAwait<ServerReady>(join(c.benchDir ?? here('.'), 'server.js'), [c.impl, String(c.port), String(socketBuffer), c.variant, ...(c.scheme ? [c.scheme] : [])], 'ready', 10_000, true);
    servers.set(c.label, child);
  }
  return servers;
}

let measurements = 0;
/** Disjoint OSCORE sequence ranges for successive client processes (each starts at most maxRequests). */
const sequenceStart = (): number => ++measurements * 50_000_000;

/** The fields every closed-loop client job shares: the run's timing and socket settings and the safety limits. */
export function clientJobTiming(s: Pick<CommonSettings, 'warmupMs' | 'durationMs' | 'socketBuffer'>, concurrency: number): Pick<ClientJob, 'concurrency' | 'warmupMs' | 'durationMs' | 'maxRequests' | 'drainMs' | 'socketBuffer'> {
  return { concurrency, warmupMs: s.warmupMs, durationMs: s.durationMs, maxRequests: 50_000_000, drainMs: 3000, socketBuffer: s.socketBuffer };
}

/** One measurement: a fresh bench/client.js child; the server's CPU time is read around it. */
export async function measureGet(c: GetContender, server: ChildProcess, s: CommonSettings, concurrency: number): Promise<LabelledResult> {
  const job: ClientJob = {
    impl: c.impl,
    port: c.port,
    ...clientJobTiming(s, concurrency),
    variant: c.variant,
    sequenceStart: sequenceStart(),
    ...(c.burnMicros ? { burnMicros: c.burnMicros } : {}),
    ...(c.scheme ? { scheme: c.scheme } : {}),
  };
  const cpu0 = processCpuMicros(server.pid);
  const limit = job.warmupMs + job.durationMs + job.drainMs + 10_000;
  const { message } = await forkAndAwait<ClientResult>(join(c.benchDir ?? here('.'), 'client.js'), [JSON.stringify(job)], 'result', limit, false);
  message.serverCpuMicros = processCpuMicros(server.pid) - cpu0;
  return { ...message, label: c.label };
}

export function logGet(round: number, rounds: number, r: LabelledResult): void {
  console.error(
    `round ${round + 1}/${rounds}  ${String(r.concurrency).padStart(3)} in flight  ${r.label.padEnd(12)}  ${fmt(r.rps).padStart(7)} req/s  p50 ${fmt(r.p50, 3)} ms  p99 ${fmt(r.p99, 3)} ms` +
      `  cpu µs/req client ${fmt(r.clientCpuMicros / r.totalCompleted, 1)} server ${fmt((r.serverCpuMicros ?? NaN) / r.totalCompleted, 1)}` +
      (r.errors || r.abandoned || r.retransmissions > 0 ? `  errors ${r.errors} abandoned ${r.abandoned} retx ${r.retransmissions}${r.firstError ? ` (first: ${r.firstError})` : ''}` : ''),
  );
}

/**
 * Runs `rounds` × concurrencies × contenders GET measurements, rotating the contenders' order, and
 * returns every result.
 */
export async function runGetRounds(contenders: readonly GetContender[], servers: Map<string, ChildProcess>, s: CommonSettings, concurrencies: readonly number[]): Promise<LabelledResult[]> {
  const results: LabelledResult[] = [];
  let order = 0;
  for (let round = 0; round < s.rounds; round++) {
    for (const concurrency of concurrencies) {
      const shift = order++ % contenders.length;
      for (const c of [...contenders.slice(shift), ...contenders.slice(0, shift)]) {
        const r: LabelledResult = { ...(await measureGet(c, servers.get(c.label)!, s, concurrency)), round };
        results.push(r);
        logGet(round, s.rounds, r);
      }
    }
  }
  return results;
}

export interface GetSummary {
  label: string;
  concurrency: number;
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50: number;
  p99: number;
  clientCpu: number;
  serverCpu: number;
  errors: number;
  retransmissions: number;
}

export function summarizeGet(results: readonly LabelledResult[], label: string, concurrency: number): GetSummary | undefined {
  const rs = results.filter((r) => r.label === label && r.concurrency === concurrency);
  if (rs.length === 0) return undefined;
  const rps = rs.map((r) => r.rps);
  return {
    label,
    concurrency,
    rps: median(rps),
    rpsMin: Math.min(...rps),
    rpsMax: Math.max(...rps),
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    clientCpu: median(rs.map((r) => r.clientCpuMicros / r.totalCompleted)),
    serverCpu: median(rs.map((r) => (r.serverCpuMicros ?? NaN) / r.totalCompleted)),
    errors: rs.reduce((a, r) => a + r.errors + r.abandoned, 0),
    retransmissions: rs.reduce((a, r) => a + Math.max(0, r.retransmissions), 0),
  };
}

/** The GET table rows of bench/run.ts for the given labels and concurrencies. */
export function getTable(results: readonly LabelledResult[], labels: readonly string[], concurrencies: readonly number[]): string {
  const rows: string[][] = [['in flight', 'variant', 'req/s (median)', 'req/s (min–max)', 'p50 ms', 'p99 ms', 'CPU µs/req client', 'CPU µs/req server', 'errors', 'retx']];
  for (const c of concurrencies) {
    for (const label of labels) {
      const x = summarizeGet(results, label, c);
      if (!x) continue;
      rows.push([String(c), label, fmt(x.rps), `${fmt(x.rpsMin)}–${fmt(x.rpsMax)}`, fmt(x.p50, 3), fmt(x.p99, 3), fmt(x.clientCpu, 1), fmt(x.serverCpu, 1), String(x.errors), String(x.retransmissions)]);
    }
  }
  return table(rows);
}

// --- in-process micro-benchmarks --------------------------------------------------------------

/**
 * Runs `op` in batches until `ms` have passed (or `maxOps`), after a short warm-up; returns ops/s
 * and the process CPU time per op in µs.
 */
export function opsPerSecond(op: () => void, ms: number, maxOps = 10_000_000, warmupMs = Math.min(200, ms / 4)): { ops: number; cpuMicros: number } {
  const until = (deadline: number, limit: number): number => {
    let n = 0;
    while (n < limit && performance.now() < deadline) {
      for (let i = 0; i < 16; i++) op();
      n += 16;
    }
    return n;
  };
  until(performance.now() + warmupMs, maxOps);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const n = until(t0 + ms, maxOps);
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { ops: n / elapsed, cpuMicros: (cpu.user + cpu.system) / n };
}

export interface MicroResult {
  name: string;
  ops: number[];
  cpu: number[];
}

/** Runs named operations `rounds` times each, rotating their order from round to round as the socket benchmarks do. */
export function runMicroCases(cases: ReadonlyArray<readonly [string, () => void]>, ms: number, rounds: number): MicroResult[] {
  const out: MicroResult[] = cases.map(([name]) => ({ name, ops: [], cpu: [] }));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < cases.length; k++) {
      const i = (k + round) % cases.length;
      const r = opsPerSecond(cases[i]![1], ms);
      out[i]!.ops.push(r.ops);
      out[i]!.cpu.push(r.cpuMicros);
    }
  }
  return out;
}

/**
 * A bare AES-CCM seal then open with Node's crypto (8-byte tag, a cipher object per message): the
 * reference the OSCORE and DTLS micro-benchmarks compare their per-message work with.
 */
export function nodeCcmSealOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): void {
  const c = createCipheriv('aes-128-ccm', key, nonce, { authTagLength: 8 });
  c.setAAD(aad, { plaintextLength: plaintext.length });
  const body = c.update(plaintext);
  c.final();
  const d = createDecipheriv('aes-128-ccm', key, nonce, { authTagLength: 8 });
  d.setAuthTag(c.getAuthTag());
  d.setAAD(aad, { plaintextLength: body.length });
  d.update(body);
  d.final();
}

// --- formatting -------------------------------------------------------------------------------

export const fmt = (v: number, digits = 0): string => (Number.isFinite(v) ? v.toFixed(digits) : '-');
export const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) + '×' : '-');
export const met = (r: number, target: number): string => (!Number.isFinite(r) ? '-' : r >= target ? 'yes' : 'NO');

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]): string => '| ' + r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ') + ' |';
  const sep = '|' + widths.map((w, c) => (c === 0 ? '-'.repeat(w + 1) + '-' : '-'.repeat(w + 1) + ':')).join('|') + '|';
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join('\n');
}
