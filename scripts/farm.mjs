#!/usr/bin/env node
/**
 * A coapsec farm on one machine, without docker: a private Redis (append-only file, fsync on every
 * write), N `coapsec serve --store redis://…` nodes on loopback, and nginx's stream module in
 * front of them as a UDP load balancer (deploy/nginx-coap.conf). Everything lives in one temp
 * folder and is stopped by stop() (or Ctrl-C when run as a script).
 *
 *   node scripts/farm.mjs --nodes 3 --credentials server.json --listen 127.0.0.1:15683
 *
 * As a module: `const farm = await startFarm({ nodes: 3, credentials })`; farm.nodes[i].kill('SIGKILL')
 * and farm.nodes[i].restart() (same port) for failover tests; farm.stop().
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'coapsec');
const TEMPLATE = join(ROOT, 'deploy', 'nginx-coap.conf');
const START_TIMEOUT_MS = 10_000;

/**
 * @param {{ nodes?: number, credentials?: string, listen?: string, hashKey?: string,
 *           nodeArgs?: string[], metrics?: boolean }} [options]
 */
export async function startFarm(options = {}) {
  const count = options.nodes ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > 64) throw new Error(`farm: --nodes must be 1..64, got ${count}`);
  requireCommand('redis-server', 'redis-server');
  requireCommand('nginx', 'nginx and libnginx-mod-stream');
  const directory = mkdtempSync(join(tmpdir(), 'coapsec-farm-'));
  const stoppers = [];
  const stop = async () => {
    for (const s of stoppers.splice(0).reverse()) await s();
    rmSync(directory, { recursive: true, force: true });
  };
  try {
    const redis = await startRedis(directory, await freeTcpPort());
    stoppers.push(() => redis.stop());
    if (options.credentials !== undefined) {
      const put = spawnSync(process.execPath, [BIN, 'store', 'put', '--store', redis.url, '--credentials', options.credentials], { encoding: 'utf8' });
      if (put.status !== 0) throw new Error(`farm: coapsec store put failed: ${put.stderr.trim()}`);
    }
    const nodes = [];
    for (let i = 0; i < count; i++) {
      const node = new FarmNode(i, await freeUdpPort(), redis.url, options.nodeArgs ?? [], options.metrics ? await freeTcpPort() : undefined);
      await node.restart();
      nodes.push(node);
    }
    stoppers.push(() => Promise.all(nodes.map((n) => n.stop())));
    const listen = options.listen ?? `127.0.0.1:${await freeUdpPort()}`;
    const balancer = await startNginx(directory, listen, options.hashKey ?? '$remote_addr', nodes.map((n) => n.port));
    stoppers.push(() => balancer.stop());
    const port = Number(listen.slice(listen.lastIndexOf(':') + 1));
    return { url: `coap://${listen}`, port, redisUrl: redis.url, nodes, directory, balancer, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** One `coapsec serve --store` process on a fixed port, so that it can be killed and started again. */
class FarmNode {
  #child;
  #exited = Promise.resolve(null);
  stderr = '';

  constructor(index, port, storeUrl, extraArgs, metricsPort) {
    this.index = index;
    this.port = port;
    this.metricsPort = metricsPort;
    this.args = ['serve', '--bind', `127.0.0.1:${port}`, '--store', storeUrl, ...(metricsPort !== undefined ? ['--metrics', `127.0.0.1:${metricsPort}`] : []), ...extraArgs];
  }

  get pid() {
    return this.running ? this.#child.pid : undefined;
  }

  get running() {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Starts the node (again), resolving once it says it is serving. */
  async restart() {
    if (this.running) throw new Error(`farm: node ${this.index} is already running`);
    const child = spawn(process.execPath, [BIN, ...this.args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`farm: node ${this.index} did not start within ${START_TIMEOUT_MS} ms: ${this.stderr}`)), START_TIMEOUT_MS);
      child.stderr.on('data', (b) => {
        this.stderr += b.toString();
        if (/serving on coap:\/\//.test(this.stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
      void this.#exited.then((how) => {
        clearTimeout(timer);
        reject(new Error(`farm: node ${this.index} exited (${how}): ${this.stderr}`));
      });
    });
  }

  /** SIGKILL is a crash (no sequence numbers written back); SIGTERM a clean stop. Resolves with the exit code or signal. */
  async kill(signal = 'SIGTERM') {
    if (this.running) this.#child.kill(signal);
    return this.#exited;
  }

  stop() {
    return this.kill('SIGTERM');
  }
}

async function startRedis(directory, port) {
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--dir', directory, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--protected-mode', 'yes', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr.on('data', (d) => (output += d.toString()));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'PING'], { encoding: 'utf8', timeout: 2000 }).stdout?.trim() !== 'PONG') {
    if (child.exitCode !== null) throw new Error(`farm: redis-server exited: ${output}`);
    if (Date.now() > deadline) throw new Error(`farm: redis-server did not answer within ${START_TIMEOUT_MS} ms`);
    await sleep(50);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function startNginx(directory, listen, hashKey, nodePorts) {
  const config = readFileSync(TEMPLATE, 'utf8')
    .replaceAll('{{PREFIX}}', directory)
    .replaceAll('{{LISTEN}}', listen)
    .replaceAll('{{HASH_KEY}}', hashKey.includes('$remote_port') ? `"${hashKey}"` : hashKey)
    .replaceAll('{{SERVERS}}', nodePorts.map((p) => `        server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;`).join('\n'));
  const file = join(directory, 'nginx.conf');
  writeFileSync(file, config);
  const test = spawnSync('nginx', ['-t', '-q', '-p', directory, '-c', file], { encoding: 'utf8' });
  if (test.status !== 0) throw new Error(`farm: nginx rejects the configuration: ${test.stderr.trim()}`);
  const child = spawn('nginx', ['-p', directory, '-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr.on('data', (d) => (output += d.toString()));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!existsSync(join(directory, 'nginx.pid')) || !(await udpPortTaken(listen))) {
    if (child.exitCode !== null) throw new Error(`farm: nginx exited: ${output}${readIfThere(join(directory, 'error.log'))}`);
    if (Date.now() > deadline) throw new Error(`farm: nginx did not start within ${START_TIMEOUT_MS} ms`);
    await sleep(50);
  }
  return {
    config: file,
    get pid() {
      return child.exitCode === null ? child.pid : undefined;
    },
    errorLog: () => readIfThere(join(directory, 'error.log')),
    // SIGTERM, nginx's fast shutdown: a graceful one (SIGQUIT) waits for every UDP session's
    // proxy_timeout, and there is nothing to drain — CoAP retransmits what a stop cuts off.
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

function requireCommand(command, debianPackages) {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  if (found.status !== 0) throw new Error(`farm: ${command} is not installed (Debian: ${debianPackages})`);
}

function readIfThere(file) {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** True once something listens on the UDP address (binding it fails with EADDRINUSE). */
function udpPortTaken(listen) {
  const colon = listen.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => resolve(true));
    socket.bind(Number(listen.slice(colon + 1)), listen.slice(0, colon), () => socket.close(() => resolve(false)));
  });
}

async function main() {
  const { values } = parseArgs({
    options: { nodes: { type: 'string' }, credentials: { type: 'string' }, listen: { type: 'string' }, 'hash-key': { type: 'string' } },
  });
  const farm = await startFarm({
    nodes: values.nodes !== undefined ? Number(values.nodes) : 3,
    ...(values.credentials !== undefined ? { credentials: values.credentials } : {}),
    listen: values.listen ?? '127.0.0.1:15683',
    ...(values['hash-key'] !== undefined ? { hashKey: values['hash-key'] } : {}),
  });
  process.stdout.write(`farm: balancer ${farm.url}, store ${farm.redisUrl}\n`);
  for (const n of farm.nodes) process.stdout.write(`farm: node ${n.index} on coap://127.0.0.1:${n.port}\n`);
  await new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await farm.stop();
  process.stdout.write('farm: stopped\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error) => {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = 2;
  });
}
