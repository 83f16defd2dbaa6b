/**
 * A client's sockets (src/transport/udp-client.ts): an ICMP port unreachable ends a request at once
 * (client, forward proxy, CLI), and an unclosed client lets its process end once nothing waits,
 * while a pending request or an observation still keeps the process alive.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapClient } from '../src/client/client.js';
import { UnreachableError } from '../src/exchange/errors.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { CoapServer } from '../src/server/server.js';
import { UdpClientTransport } from '../src/transport/udp-client.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const INDEX = pathToFileURL(join(ROOT, 'dist', 'src', 'index.js')).href;
const BIN = join(ROOT, 'bin', 'coapsec');

/** A loopback port with nothing bound to it (bound once, then closed). */
async function closedPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  const { port } = socket.address();
  await new Promise<void>((r) => socket.close(() => r()));
  return port;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs node with `args`; kills it and fails the test after `limit` ms. */
function run(args: readonly string[], limit: number): Promise<Run> {
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node ${args.join(' ')} still running after ${limit} ms (stdout: ${stdout}; stderr: ${stderr})`));
    }, limit);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** Runs an ES module script (importing coapsec as `INDEX`) in a child process. */
async function runScript(source: string, args: readonly string[], limit: number): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-lifetime-'));
  try {
    const file = join(dir, 'script.mjs');
    writeFileSync(file, source.replaceAll('INDEX', JSON.stringify(INDEX)));
    return await run([file, ...args], limit);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a GET to a closed port fails at once with UnreachableError, not after 93 s of retransmissions', async () => {
  const port = await closedPort();
  const client = new CoapClient();
  try {
    const started = performance.now();
    const error = await client.get(`coap://127.0.0.1:${port}/hello`).then(
      () => assert.fail('a closed port answered'),
      (e: unknown) => e,
    );
    const ms = performance.now() - started;
    assert.ok(error instanceof UnreachableError, `expected UnreachableError, got ${String(error)}`);
    assert.match((error as Error).message, new RegExp(`127\\.0\\.0\\.1:${port} is unreachable: nothing listens on that port`));
    assert.ok(ms < 1000, `took ${Math.round(ms)} ms`);
  } finally {
    await client.close();
  }
});

test('a coaps:// GET to a closed port fails at once with UnreachableError, not after the handshake retransmissions', async () => {
  const port = await closedPort();
  const client = new CoapClient({ dtls: { psk: { identity: 'client1', key: 'secretPSK' } } });
  try {
    const started = performance.now();
    const error = await client.get(`coaps://127.0.0.1:${port}/hello`).then(
      () => assert.fail('a closed port answered'),
      (e: unknown) => e,
    );
    const ms = performance.now() - started;
    assert.ok(error instanceof UnreachableError, `expected UnreachableError, got ${String(error)}`);
    assert.match((error as Error).message, /is unreachable: nothing listens on that port/);
    assert.ok(ms < 1000, `took ${Math.round(ms)} ms`);
  } finally {
    await client.close();
  }
});

test('after an unreachable port, the same client reaches a server that starts there', async () => {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  server.resource('/hello', { GET: () => ({ code: ResponseCode.Content, payload: 'hi' }) });
  const port = await closedPort();
  const client = new CoapClient();
  try {
    await assert.rejects(client.get(`coap://127.0.0.1:${port}/x`), UnreachableError);
    const response = await client.get(`coap://127.0.0.1:${server.address().port}/hello`);
    assert.equal(response.text(), 'hi');
  } finally {
    await client.close();
    await server.close();
  }
});

test('a forward proxy answers 5.02 at once when its origin port is unreachable', async () => {
  const proxyServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  const upstream = new CoapClient();
  proxyServer.setForwardingHandler(new ForwardProxy(proxyServer, { upstream, allowDestinations: ['127.0.0.1'] }));
  const client = new CoapClient({ proxy: `coap://127.0.0.1:${proxyServer.address().port}` });
  const port = await closedPort();
  try {
    const started = performance.now();
    const response = await client.get(`coap://127.0.0.1:${port}/hello`);
    const ms = performance.now() - started;
    assert.equal(response.code, ResponseCode.BadGateway, response.status);
    assert.match(response.text(), /unreachable/);
    assert.ok(ms < 1000, `took ${Math.round(ms)} ms`);
  } finally {
    await client.close();
    await upstream.close();
    await proxyServer.close();
  }
});

test('CLI: a GET to a closed port exits 3 at once (not after 66 s) with one clear line', async () => {
  const port = await closedPort();
  const r = await run([BIN, 'get', `coap://127.0.0.1:${port}/hello`], 10_000);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /unreachable: nothing listens on that port/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  // The process start (≈ 200 ms, more on a loaded machine) is in the measurement too; before, 66 s.
  assert.ok(r.ms < 3000, `took ${Math.round(r.ms)} ms`);
});

test('an unclosed client lets the script end once its request is answered', async () => {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  server.resource('/hello', { GET: () => ({ code: ResponseCode.Content, payload: 'hi' }) });
  try {
    const r = await runScript(
      `import { CoapClient } from INDEX;
       const client = new CoapClient();
       const response = await client.get(process.argv[2]);
       console.log(response.status, response.text());`,
      [`coap://127.0.0.1:${server.address().port}/hello`],
      5000,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '2.05 Content hi');
  } finally {
    await server.close();
  }
});

test('a pending request keeps the process alive until its (slow) response comes', async () => {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  server.resource('/slow', { GET: () => new Promise((r) => setTimeout(() => r({ code: ResponseCode.Content, payload: 'late' }), 1500)) });
  try {
    const r = await runScript(
      `import { CoapClient } from INDEX;
       const client = new CoapClient();
       const response = await client.get(process.argv[2]);
       console.log(response.status, response.text());`,
      [`coap://127.0.0.1:${server.address().port}/slow`],
      8000,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '2.05 Content late');
    assert.ok(r.ms >= 1500, `ended after ${Math.round(r.ms)} ms`);
  } finally {
    await server.close();
  }
});

test('an observation keeps the process alive until it is cancelled', async () => {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  let n = 0;
  server.resource('/count', { GET: () => ({ code: ResponseCode.Content, payload: String(n) }) }, { observable: true });
  const ticker = setInterval(() => {
    n++;
    server.changed('/count');
  }, 200);
  try {
    const r = await runScript(
      `import { CoapClient } from INDEX;
       const client = new CoapClient();
       const observation = await client.observe(process.argv[2]);
       let count = 0;
       for await (const notification of observation) if (++count === 4) break;
       console.log('four notifications');`,
      [`coap://127.0.0.1:${server.address().port}/count`],
      8000,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'four notifications');
  } finally {
    clearInterval(ticker);
    await server.close();
  }
});

test('peers beyond maxPeerSockets share one socket: their datagrams still go out and replies come back', async () => {
  const echo = async () => {
    const socket = createSocket('udp4');
    socket.on('message', (m, rinfo) => socket.send(m, rinfo.port, rinfo.address));
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
    return socket;
  };
  const first = await echo();
  const second = await echo();
  const transport = await UdpClientTransport.bind({ host: '127.0.0.1', maxPeerSockets: 1 });
  const heard: string[] = [];
  const sources = new Set<number>();
  transport.setHandler((data, peer) => heard.push(`${peer.port === first.address().port ? 'first' : 'second'} ${data.toString()}`));
  first.on('message', (_m, rinfo) => sources.add(rinfo.port));
  second.on('message', (_m, rinfo) => sources.add(rinfo.port));
  try {
    for (let i = 0; i < 2; i++) {
      transport.send(Buffer.from(`a${i}`), { address: '127.0.0.1', port: first.address().port });
      transport.send(Buffer.from(`b${i}`), { address: '127.0.0.1', port: second.address().port });
    }
    const deadline = Date.now() + 2000;
    while (heard.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(heard.sort(), ['first a0', 'first a1', 'second b0', 'second b1']);
    // The first peer got a connected socket of its own; the second went through the shared one.
    assert.equal(sources.size, 2);
    assert.ok(sources.has(transport.localAddress().port));
  } finally {
    await transport.close();
    first.close();
    second.close();
  }
});
