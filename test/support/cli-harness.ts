/**
 * Runs the coapsec command line as a user does: `node bin/coapsec ...` as a child process, with a
 * bounded run time. Shared by the test/cli*.test.ts files.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs as dist/test/support/cli-harness.js). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'coapsec');
export const RUN_TIMEOUT = 10_000;

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
  ms: number;
}

/** Every child a test spawned, killed by killChildren(). */
export const children = new Set<ChildProcess>();

/** Kills what is still running (call from an after hook). */
export function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}

/** Runs `node bin/coapsec ARGS`; rejects (after killing it) if it runs longer than `timeout` ms. */
export function coapsec(args: readonly string[], options: { input?: string; timeout?: number; cwd?: string } = {}): Promise<Result> {
  const timeout = options.timeout ?? RUN_TIMEOUT;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    children.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`coapsec ${args.join(' ')} still running after ${timeout} ms; stderr: ${Buffer.concat(err).toString()}`));
    }, timeout);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBytes.toString(), stdoutBytes, stderr: Buffer.concat(err).toString(), ms: performance.now() - started });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** A usage error: exit 2, nothing on stdout, exactly one line on stderr, no stack trace. */
export function assertUsageError(r: Result, pattern?: RegExp): void {
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  assert.equal(r.stdout, '');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^coapsec: /);
  assert.doesNotMatch(r.stderr, /\n\s+at |Error:|node:internal/, 'no stack trace');
  if (pattern) assert.match(lines[0]!, pattern);
}

export interface Daemon {
  port: number;
  /** What the process has written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once stderr matches `pattern` (bounded by RUN_TIMEOUT). */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  /** SIGTERM, then the exit code (SIGKILL after 5 s). */
  stop(): Promise<number | null>;
}

/**
 * Spawns a long-running command (serve, proxy, trust-anchor) and waits for its line
 * `announce` (a RegExp whose first group is the port) on stderr.
 */
export async function startDaemon(args: readonly string[], announce: RegExp, cwd = ROOT): Promise<Daemon> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  let stdout = '';
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => {
    stderr += b.toString();
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = (pattern: RegExp): Promise<RegExpExecArray> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${pattern} on stderr within ${RUN_TIMEOUT} ms: ${stderr}`)), RUN_TIMEOUT);
      const check = (): void => {
        const m = pattern.exec(stderr);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        } else waiters.push(check);
      };
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${args[0]} exited with ${code}: ${stderr}`));
      });
      check();
    });
  const m = await waitFor(announce);
  const stop = async (): Promise<number | null> => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    const code = await exited;
    clearTimeout(timer);
    children.delete(child);
    return code;
  };
  return { port: Number(m[1]), stdout: () => stdout, stderr: () => stderr, waitFor, stop };
}

export interface WatchedProcess {
  /** Settles once the process printed its first line (on stdout, or also stderr with `lineOnStderr`), or rejects after RUN_TIMEOUT. */
  firstLine: Promise<void>;
  /** Settles when it exits; it is killed after 3 × RUN_TIMEOUT. */
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  stderr: () => string;
}

/** A spawned `coapsec ARGS` that runs for a while (subscribe, observe): bounded in time, its output collected. */
export function watchedProcess(args: readonly string[], options: { lineOnStderr?: boolean } = {}): WatchedProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  // killChildren() stops it too: a test that ends it early must not wait for the 3 × RUN_TIMEOUT killer.
  children.add(child);
  let stdout = '';
  let stderr = '';
  let seen: () => void = () => undefined;
  const firstLine = new Promise<void>((resolve, reject) => {
    seen = resolve;
    setTimeout(() => reject(new Error(`coapsec ${args[0]} printed nothing within ${RUN_TIMEOUT} ms; stderr: ${stderr}`)), RUN_TIMEOUT).unref();
  });
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString();
    if (stdout.includes('\n')) seen();
  });
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
    if (options.lineOnStderr === true && stderr.includes('\n')) seen();
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 3 * RUN_TIMEOUT);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code) => {
      clearTimeout(killer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    }),
  );
  return { firstLine, done, stderr: () => stderr };
}

/** A loopback UDP port nothing listens on right now (bound once, then closed). */
export async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  const { port } = socket.address();
  await new Promise<void>((r) => socket.close(() => r()));
  return port;
}

/**
 * Runs a docs walkthrough as its reader would, in `work` (the walkthrough's files already there):
 * `coapsec` on PATH is this checkout's CLI, state goes to `work/state`, and `script` (by default:
 * source walkthrough.sh, stop its two background servers, exit with its status) runs under bash.
 */
export function runWalkthrough(work: string, script = '. ./walkthrough.sh; status=$?; kill %1 %2; wait; exit $status'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  mkdirSync(join(work, 'bin'));
  writeFileSync(join(work, 'bin', 'coapsec'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, { mode: 0o755 });
  return new Promise((resolve) => {
    execFile('bash', ['-c', script], { cwd: work, timeout: 60_000, env: { ...process.env, PATH: `${join(work, 'bin')}:${process.env['PATH']}`, COAPSEC_STATE_DIR: join(work, 'state') } }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
