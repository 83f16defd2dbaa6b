/**
 * The native load generator (bench/native/coap-load.c) and what drives it: building it with the
 * system C compiler, the requests it sends (one plain GET reused, or a pool of OSCORE-protected
 * GETs each sent once), pinning server and load to separate cores, and starting and stopping
 * server processes that are not Node children of ours (coapsec serve, libcoap's coap-server).
 * Used by bench/server-cpu.ts, bench/contexts.ts and bench/proxy-cpu.ts.
 *
 * Why OSCORE requests are precomputed here rather than sealed in C: the generator then does the
 * same cheap work (copy, patch MID and token, send) for plain and OSCORE, so its own CPU stays far
 * below the server's, and the requests are made by coapsec's own `protectRequest` — no second
 * OSCORE implementation to keep right. Each record carries a fresh Sender Sequence Number from one
 * counter that only goes up, and the C program sends every record at most once (it never
 * retransmits), so no nonce is used twice (RFC 8613 §5.2, §7.2.1).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { encodeMessage } from '../src/coap/codec.js';
import { Method } from '../src/coap/codes.js';
import { MessageType, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import type { SenderParams } from '../src/oscore/context.js';
import { protectRequest } from '../src/oscore/protect.js';
import { here, track } from './harness.js';

/** The result line of one coap-load run (see the C file's header). */
export interface LoadResult {
  inFlight: number;
  /** Responses inside the measurement window. */
  responses: number;
  seconds: number;
  generatorCpuMicros: number;
  /** The server process's CPU over the window; -1 if /proc could not be read. */
  serverCpuMicros: number;
  /** Each process of `serverPid` (the server first), as `serverCpuMicros`. */
  processCpuMicros: number[];
  /** Responses that were not 2.xx (counted in `responses` too). */
  errors: number;
  /** Requests unanswered after the timeout (each replaced by a new one). */
  lost: number;
  stale: number;
  sendFailures: number;
  /** Empty ACKs received, and responses that came separately in a CON of their own (acknowledged). */
  emptyAcks: number;
  separate: number;
  exhausted: boolean;
  recordsUsed: number;
}

/** Command prefixes that pin the server and the load generator to different cores. */
export interface Pinning {
  server: string[];
  load: string[];
  describe: string;
}

export function pinning(): Pinning {
  const cpus = os.cpus().length;
  let taskset = false;
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore', timeout: 5000 });
    taskset = true;
  } catch {
    /* not installed, or not allowed */
  }
  if (!taskset || cpus < 2) {
    return { server: [], load: [], describe: `NOT pinned (${taskset ? `${cpus} CPU` : 'taskset unavailable'}): server and load generator share the CPUs` };
  }
  return { server: ['taskset', '-c', '1'], load: ['taskset', '-c', '0'], describe: 'server pinned to CPU 1, load generator (and clients) to CPU 0 (taskset)' };
}

/** Compiles coap-load.c into a temporary directory, removed when the process exits. */
export function buildLoadGenerator(): string {
  const source = here('../../bench/native/coap-load.c');
  const dir = mkdtempSync(join(os.tmpdir(), 'coapsec-bench-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const binary = join(dir, 'coap-load');
  try {
    execFileSync('cc', ['-O2', '-Wall', '-o', binary, source], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 60_000 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('no C compiler: `cc` was not found on PATH. This benchmark builds its load generator (bench/native/coap-load.c) with it; install one (e.g. apt-get install gcc) and run again.');
    }
    throw new Error(`building the load generator failed: cc -O2 -o ${binary} ${source}: ${(error as Error).message}`);
  }
  return binary;
}

/** The generator's temporary directory, for scratch files (removed on exit with it). */
export const scratchDir = (binary: string): string => dirname(binary);

export function scratchFile(binary: string, name: string, data: Uint8Array): string {
  const path = join(scratchDir(binary), name);
  writeFileSync(path, data);
  return path;
}

/** A confirmable GET of `path` with a 4-byte token (the generator overwrites MID and token). */
export function getRequest(path: string): CoapMessage {
  return {
    type: MessageType.CON,
    code: Method.GET,
    messageId: 0,
    token: new Uint8Array(4),
    options: path
      .split('/')
      .filter((s) => s.length > 0)
      .map((segment) => ({ number: OptionNumber.UriPath, value: Buffer.from(segment, 'utf8') })),
    payload: new Uint8Array(0),
  };
}

/** The generator's request file: records of a 2-byte big-endian length and the encoded message. */
export function requestFile(messages: Iterable<CoapMessage>): Buffer {
  const parts: Buffer[] = [];
  for (const message of messages) {
    const encoded = encodeMessage(message);
    const length = Buffer.alloc(2);
    length.writeUInt16BE(encoded.length);
    parts.push(length, encoded);
  }
  return Buffer.concat(parts);
}

/**
 * OSCORE-protected GETs for one sender, each with the next Sender Sequence Number. The counter
 * lives as long as the pool: a server's replay window for this sender only ever sees it go up.
 * `skip` leaves room for another process using the same sender (the coapsec client benchmark).
 */
export class OscoreRequestPool {
  constructor(
    private readonly sender: SenderParams,
    private nextSequence = 0,
  ) {}

  *requests(path: string, count: number): Generator<CoapMessage> {
    const template = getRequest(path);
    for (let i = 0; i < count; i++) yield protectRequest(template, this.sender, this.nextSequence++).message;
  }

  /** Reserves `count` sequence numbers for someone else; returns the first. */
  skip(count: number): number {
    const first = this.nextSequence;
    this.nextSequence += count;
    return first;
  }
}

/** Runs the generator once, pinned; rejects if it fails or overruns its time by 15 s. */
export function runLoad(
  binary: string,
  pin: Pinning,
  /** `serverPid`: the server, or the processes whose CPU to read (a proxy, then its origin). */
  options: { port: number; inFlight: number; warmupMs: number; durationMs: number; requests: string; serverPid: number | readonly number[]; timeoutMs?: number },
): Promise<LoadResult> {
  const args = [
    String(options.port),
    String(options.inFlight),
    String(options.warmupMs),
    String(options.durationMs),
    options.requests,
    typeof options.serverPid === 'number' ? String(options.serverPid) : options.serverPid.join(','),
    String(options.timeoutMs ?? 1000),
  ];
  const command = [...pin.load, binary, ...args];
  const child = track(spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.warmupMs + options.durationMs + 15_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`coap-load ${args.join(' ')} ended with ${signal ?? code}`));
      try {
        resolve(JSON.parse(out) as LoadResult);
      } catch {
        reject(new Error(`coap-load printed no result: ${out.slice(0, 200)}`));
      }
    });
  });
}

/**
 * Starts a server process (pinned), tracked so it dies with the benchmark. Its stderr is passed
 * through, and lines matching `refusal` are counted instead (`coapsec serve` logs every refused
 * OSCORE request, and an OSCORE refusal travels as an outer 2.04 the generator cannot tell apart).
 */
export function startServerProcess(pin: Pinning, command: string[], env: NodeJS.ProcessEnv = process.env, refusal = /OSCORE refused/): { child: ChildProcess; refusals: () => number } {
  const full = [...pin.server, ...command];
  const child = track(spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env }));
  let refusals = 0;
  let first: string | undefined;
  let partial = '';
  child.stderr!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (!refusal.test(line)) process.stderr.write(`${line}\n`);
      else if (refusals++ === 0) first = line;
    }
  });
  child.once('exit', () => {
    if (first !== undefined) console.error(`server ${full.join(' ')}: ${refusals} refused requests, the first: ${first}`);
  });
  return { child, refusals: () => refusals };
}

/**
 * Sends `request` (one encoded CoAP message) to 127.0.0.1:port every 200 ms until a response with
 * its Message ID comes back; resolves with that response. Rejects if `server` exits or `timeoutMs`
 * passes.
 */
export async function awaitResponse(port: number, request: Buffer, server: ChildProcess, timeoutMs: number): Promise<Buffer> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const started = Date.now();
      const done = (action: () => void): void => {
        clearInterval(timer);
        server.off('exit', exited);
        action();
      };
      const exited = (): void => done(() => reject(new Error(`server on port ${port} exited (${server.exitCode ?? server.signalCode}) before answering`)));
      server.once('exit', exited);
      socket.on('message', (msg) => {
        if (msg.length >= 4 && msg.readUInt16BE(2) === request.readUInt16BE(2)) done(() => resolve(msg));
      });
      const send = (): void => {
        if (Date.now() - started > timeoutMs) done(() => reject(new Error(`no answer from 127.0.0.1:${port} within ${timeoutMs} ms`)));
        else socket.send(request, port, '127.0.0.1');
      };
      const timer = setInterval(send, 200);
      send();
    });
  } finally {
    socket.close();
  }
}

/** SIGTERM, then SIGKILL after 3 s; resolves when the process is gone. */
export async function stopServerProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/** CPU µs per response, and the generator's share of one core, of a load result. */
export function perResponse(r: LoadResult): { serverMicros: number; rps: number; generatorMicros: number; generatorLoad: number } {
  return {
    serverMicros: r.serverCpuMicros >= 0 && r.responses > 0 ? r.serverCpuMicros / r.responses : NaN,
    rps: r.responses / r.seconds,
    generatorMicros: r.responses > 0 ? r.generatorCpuMicros / r.responses : NaN,
    generatorLoad: r.generatorCpuMicros / (r.seconds * 1e6),
  };
}
