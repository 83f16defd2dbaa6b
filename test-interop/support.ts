/**
 * Helpers for the interoperability tests: bounded child processes that are always cleaned up,
 * free loopback ports, a CoAP-ping readiness probe, and a parser for libcoap's PDU log lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { accessSync, constants, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HOST = '127.0.0.1';
/** The repository root (this file runs as dist/test-interop/support.js). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const COAPSEC = join(ROOT, 'bin', 'coapsec');
/** Every wait in these tests is bounded by this unless a test says otherwise. */
export const COMMAND_TIMEOUT = 10_000;

/** The absolute path of an executable on PATH, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

// --- child processes ------------------------------------------------------------------------

const children = new Set<ChildProcess>();

// Last resort if the runner dies before an after hook ran: no stray servers keep a port.
process.on('exit', () => {
  for (const child of children) if (isRunning(child)) child.kill('SIGKILL');
});

const isRunning = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Stops a child: SIGTERM, then SIGKILL if it has not exited within 3 s. */
export async function stop(child: ChildProcess): Promise<void> {
  if (!isRunning(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/** Stops every child these helpers started that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...children].map(stop));
}

export interface RunResult {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall-clock milliseconds from spawn to exit. */
  ms: number;
}

/** Runs a command to completion; rejects (after killing it) if it outlives `timeout` ms. */
export function run(command: string, args: readonly string[], options: { timeout?: number; input?: string | Buffer } = {}): Promise<RunResult> {
  const timeout = options.timeout ?? COMMAND_TIMEOUT;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = track(spawn(command, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } }));
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `${command} ${args.join(' ')} did not finish within ${timeout} ms\n--- stdout:\n${Buffer.concat(out).toString()}\n--- stderr:\n${Buffer.concat(err).toString()}`,
        ),
      );
    }, timeout);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - started });
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(options.input ?? '');
  });
}

/** Runs ./bin/coapsec with the current Node.js. */
export function coapsec(args: readonly string[], options: { timeout?: number; input?: string | Buffer } = {}): Promise<RunResult> {
  return run(process.execPath, [COAPSEC, ...args], options);
}

/** A long-running child whose output is collected as it comes. */
export interface Daemon {
  child: ChildProcess;
  port: number;
  output(): string;
  /** Resolves once the collected output matches, or rejects after `timeout` ms. */
  waitForOutput(pattern: RegExp, timeout?: number): Promise<string>;
}

function spawnDaemon(command: string, args: readonly string[], port: number): Daemon {
  const child = track(spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } }));
  let text = '';
  const listeners = new Set<() => void>();
  const onData = (b: Buffer): void => {
    text += b.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  child.once('exit', () => {
    for (const l of listeners) l();
  });
  child.once('error', () => {
    for (const l of listeners) l();
  });
  return {
    child,
    port,
    output: () => text,
    waitForOutput(pattern, timeout = COMMAND_TIMEOUT) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = pattern.exec(text);
          if (m) done(() => resolve(m[0]));
          else if (!isRunning(child)) done(() => reject(new Error(`${command} exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}; output:\n${text}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`${command} did not print ${pattern} within ${timeout} ms; output:\n${text}`))), timeout);
        const done = (f: () => void): void => {
          clearTimeout(timer);
          listeners.delete(check);
          f();
        };
        listeners.add(check);
        check();
      });
    },
  };
}

/** Starts `coapsec proxy` on a free loopback port and waits for its "proxy on" line. */
export async function startCoapsecProxy(extraArgs: readonly string[]): Promise<Daemon> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const daemon = spawnDaemon(process.execPath, [COAPSEC, 'proxy', '--bind', `${HOST}:${port}`, ...extraArgs], port);
    try {
      await daemon.waitForOutput(/coapsec proxy on coap:\/\/\S+/);
      return daemon;
    } catch (error) {
      lastError = error;
      await stop(daemon.child);
    }
  }
  throw lastError;
}

/**
 * Starts `coapsec serve` on a free loopback port and waits for its "serving on" line;
 * tries another port if the chosen one was taken meanwhile.
 */
export async function startCoapsecServer(extraArgs: readonly string[] = []): Promise<Daemon> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const daemon = spawnDaemon(process.execPath, [COAPSEC, 'serve', '--bind', `${HOST}:${port}`, ...extraArgs], port);
    try {
      await daemon.waitForOutput(/coapsec serving on coap:\/\/\S+/);
      return daemon;
    } catch (error) {
      lastError = error;
      await stop(daemon.child);
    }
  }
  throw lastError;
}

/**
 * Starts libcoap's example server on a free loopback port and waits until it answers a CoAP ping,
 * or, with `ready: 'log'` (needs -v 7), until it logs its UDP endpoint: for a server started with
 * `-l` (drop datagrams it sends), where a ping's RST would use up the drop.
 */
export async function startLibcoapServer(extraArgs: readonly string[] = [], options: { ready?: 'ping' | 'log' } = {}): Promise<Daemon> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const daemon = spawnDaemon('coap-server-notls', ['-A', HOST, '-p', String(port), ...extraArgs], port);
    try {
      if (options.ready === 'log') await daemon.waitForOutput(new RegExp(`created UDP +endpoint ${HOST.replace(/\./g, '\\.')}:${port}`));
      else await waitForCoapPing(port, () => isRunning(daemon.child));
      return daemon;
    } catch (error) {
      lastError = new Error(`${(error as Error).message}; output:\n${daemon.output()}`);
      await stop(daemon.child);
    }
  }
  throw lastError;
}

// --- ports and probes -----------------------------------------------------------------------

/**
 * A loopback port that is free for both UDP and TCP right now (libcoap's server binds both).
 * Bound to 0 and closed again, so it is random and never a default CoAP port.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const socket = createSocket('udp4');
      socket.once('error', reject);
      socket.bind(0, HOST, () => {
        const { port } = socket.address();
        socket.close(() => resolve(port));
      });
    });
    if (port === 5683 || port === 5684) continue;
    const tcpFree = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, HOST, () => server.close(() => resolve(true)));
    });
    if (tcpFree) return port;
  }
  throw new Error('no free loopback port found');
}

/**
 * Sends CoAP pings (an Empty CON, RFC 7252 §4.3) every 100 ms until the port answers with a
 * RST carrying the same Message ID. Independent of the stack under test.
 */
export function waitForCoapPing(port: number, alive: () => boolean = () => true, timeout = COMMAND_TIMEOUT): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    const messageId = Math.floor(Math.random() * 0xffff);
    const ping = Buffer.from([0x40, 0x00, messageId >> 8, messageId & 0xff]);
    let timer: NodeJS.Timeout | undefined;
    const finish = (error?: Error): void => {
      clearInterval(timer);
      clearTimeout(deadline);
      socket.close();
      if (error) reject(error);
      else resolve();
    };
    const deadline = setTimeout(() => finish(new Error(`no CoAP ping answer from ${HOST}:${port} within ${timeout} ms`)), timeout);
    socket.on('message', (msg) => {
      if (msg.length >= 4 && (msg[0]! & 0x30) === 0x30 && msg.readUInt16BE(2) === messageId) finish();
    });
    socket.on('error', () => undefined); // ICMP port unreachable before the server is up
    socket.bind(0, HOST, () => {
      const send = (): void => {
        if (!alive()) return finish(new Error(`server on port ${port} exited before answering a CoAP ping`));
        socket.send(ping, port, HOST);
      };
      send();
      timer = setInterval(send, 100);
    });
  });
}

// --- libcoap's output -----------------------------------------------------------------------

/** One PDU as libcoap logs it: `v:1 t:ACK c:2.05 i:3393 {01} [ Content-Format:text/plain ] :: 'Hello'`. */
export interface LoggedPdu {
  type: 'CON' | 'NON' | 'ACK' | 'RST';
  /** "GET", "FETCH", "iPATCH", or a response code such as "2.05"; "0.00" for Empty. */
  code: string;
  messageId: number;
  /** Hex. */
  token: string;
  /** The option list as printed, e.g. "Uri-Port:5683, Uri-Path:hello". */
  options: string;
  /** The text after " :: ", if any (libcoap's quoting kept). */
  payload: string | undefined;
  line: string;
}

const PDU_LINE = /^v:1 t:(CON|NON|ACK|RST) c:(\S+) i:([0-9a-f]{1,4}) \{([0-9a-f]*)\} \[ ?(.*?) ?\](?: :: (.*))?$/;

export function parsePdus(log: string): LoggedPdu[] {
  const pdus: LoggedPdu[] = [];
  for (const line of log.split('\n')) {
    // libcoap prints the payload after a PDU line without a newline, so a PDU line may follow a payload.
    const at = line.indexOf('v:1 t:');
    if (at < 0) continue;
    const m = PDU_LINE.exec(line.slice(at));
    if (!m) continue;
    pdus.push({
      type: m[1] as LoggedPdu['type'],
      code: m[2]!,
      messageId: parseInt(m[3]!, 16),
      token: m[4]!,
      options: m[5]!,
      payload: m[6],
      line: line.slice(at),
    });
  }
  return pdus;
}

export const isResponseCode = (code: string): boolean => /^[2-5]\.\d\d$/.test(code);

export interface LibcoapResult extends RunResult {
  pdus: LoggedPdu[];
  /** The (last) response PDU libcoap logged, if any. */
  response: LoggedPdu | undefined;
  /** Its code, e.g. "2.05". */
  responseCode: string | undefined;
  /** The response body libcoap wrote with -o (empty when none). */
  body: string;
}

let outputCounter = 0;

/**
 * Runs coap-client-notls with `-v 6` (PDU log on stdout) and `-o FILE` (the response body alone),
 * `-B seconds` so it never waits long. libcoap's client exits 0 even on 4.xx/5.xx.
 */
export async function libcoapClient(args: readonly string[], options: { tmpDir: string; waitSeconds?: number; timeout?: number }): Promise<LibcoapResult> {
  const bodyFile = join(options.tmpDir, `libcoap-body-${process.pid}-${++outputCounter}`);
  const result = await run('coap-client-notls', ['-v', '6', '-B', String(options.waitSeconds ?? 5), '-o', bodyFile, ...args], {
    timeout: options.timeout ?? COMMAND_TIMEOUT,
  });
  const pdus = parsePdus(result.stdout);
  const responses = pdus.filter((p) => isResponseCode(p.code));
  const response = responses[responses.length - 1];
  let body = '';
  try {
    body = readFileSync(bodyFile, 'utf8');
  } catch {
    // no body written
  }
  return { ...result, pdus, response, responseCode: response?.code, body };
}
