/**
 * A private redis-server for the store tests: started on a free loopback port in a temp folder,
 * with the append-only file fsync'd on every write (`appendonly yes`, `appendfsync always`) and
 * no RDB snapshots. `kill()` is SIGKILL (no shutdown save); `start()` again reuses folder, port
 * and AOF — a Redis crash and restart. A machine without redis-server fails the test, saying so.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class TestRedis {
  #child: ChildProcess | undefined;

  private constructor(
    readonly directory: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<TestRedis> {
    const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
    if (found.error !== undefined || found.status !== 0) {
      throw new Error('redis-server is not installed (Debian package "redis-server"); the context store tests need it (.ci/run installs it)');
    }
    const redis = new TestRedis(mkdtempSync(join(tmpdir(), 'coapsec-redis-')), await freePort());
    await redis.start();
    return redis;
  }

  /** (Re)starts the server on the same folder, port and AOF. */
  async start(): Promise<void> {
    if (this.#child) throw new Error('redis-server is already running');
    const child = spawn(
      'redis-server',
      ['--bind', '127.0.0.1', '--port', String(this.port), '--dir', this.directory, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--protected-mode', 'yes', '--daemonize', 'no', '--loglevel', 'warning'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 10_000;
    while (!(await this.answersPing())) {
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${output.slice(-500)}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${this.port} within 10 s: ${output.slice(-500)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGKILL: what a power cut does to Redis (no shutdown, no save); waits until it is gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.directory, { recursive: true, force: true });
  }

  private answersPing(): Promise<boolean> {
    return new Promise((resolve) => {
      const result = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(this.port), 'PING'], { encoding: 'utf8', timeout: 2000 });
      resolve(result.status === 0 && result.stdout.trim() === 'PONG');
    });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
