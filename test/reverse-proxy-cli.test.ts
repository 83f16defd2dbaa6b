/**
 * `coapsec proxy --reverse` as a user runs it (issue 18): the proxy and the clients are spawned
 * CLI processes on 127.0.0.1 port 0, the origin an in-process CoapServer with the demo resources.
 * Block2 and Block1 at every block size (RFC 7959), Observe through the proxy with one upstream
 * observation that ends with the last client (RFC 7641 §5), and /.well-known/core with the mount
 * prefix (RFC 6690).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ResponseCode } from '../src/coap/codes.js';
import { parseLinkFormat } from '../src/coap/link-format.js';
import { addDemoResources, largeText } from '../src/demo/resources.js';
import { CoapServer } from '../src/server/server.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'coapsec');
const BLOCK_SIZES = [16, 32, 64, 128, 256, 512, 1024];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();

function start(args: readonly string[]): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function finish(child: ChildProcess, timeout = 30_000): Promise<Result> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`still running after ${timeout} ms; stderr: ${Buffer.concat(err).toString()}`));
    }, timeout);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

const coapsec = (args: readonly string[], timeout?: number): Promise<Result> => finish(start(args), timeout);

/** Resolves once `probe` holds, checking every 50 ms for at most `ms`. */
async function eventually(probe: () => boolean, ms: number, what: string): Promise<void> {
  for (let waited = 0; waited <= ms; waited += 50) {
    if (probe()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`not within ${ms} ms: ${what}`);
}

let origin: CoapServer;
let proxy: ChildProcess;
let proxyBase: string;
let counter = 0;

before(async () => {
  origin = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  addDemoResources(origin, { tick: false });
  origin.resource('/counter', { GET: () => ({ code: ResponseCode.Content, payload: String(counter) }) }, { observable: true, title: 'counter' });
  proxy = start(['proxy', '--bind', '127.0.0.1:0', '--reverse', `/dev1=coap://127.0.0.1:${origin.address().port}/`]);
  let text = '';
  proxy.stderr!.on('data', (b: Buffer) => (text += b.toString()));
  await eventually(() => /coapsec proxy on coap:\/\/127\.0\.0\.1:\d+/.test(text), 10_000, 'the proxy prints its address');
  proxyBase = `coap://127.0.0.1:${/coapsec proxy on coap:\/\/127\.0\.0\.1:(\d+)/.exec(text)![1]}`;
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await origin.close();
});

describe('Block2 through the reverse proxy: an 8 KiB GET arrives whole', { concurrency: 4 }, () => {
  for (const size of BLOCK_SIZES) {
    test(`-b ${size}`, async () => {
      const r = await coapsec(['get', `${proxyBase}/dev1/large`, '-b', String(size)]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, 8192, `got ${r.stdout.length} bytes`);
      assert.equal(r.stdout, largeText());
    });
  }
  test('no block size given', async () => {
    const r = await coapsec(['get', `${proxyBase}/dev1/large`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, largeText());
  });
});

describe('Block1 through the reverse proxy: a 3000-byte POST arrives whole', { concurrency: 4 }, () => {
  const body = Array.from({ length: 3000 }, (_, i) => String.fromCharCode(97 + ((i * 7) % 26))).join('');
  for (const size of BLOCK_SIZES) {
    test(`-b ${size}`, async () => {
      const r = await coapsec(['post', `${proxyBase}/dev1/echo`, '--payload', body, '-b', String(size)]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, body, `echoed ${r.stdout.length} bytes`);
    });
  }
});

test('Observe through the reverse proxy: every notification, one upstream observer, gone with the last client', async () => {
  counter = 0;
  const first = start(['observe', `${proxyBase}/dev1/counter`, '--count', '3']);
  const second = start(['observe', `${proxyBase}/dev1/counter`, '--count', '5']);
  const results = Promise.all([finish(first), finish(second)]);
  let ended = 0;
  void results.then(() => (ended = 1));
  // Both registered: the origin sees the proxy's single upstream observation (RFC 7641 §5).
  await eventually(() => origin.observations.count('/counter') === 1 && children.size >= 3, 10_000, 'the upstream observation');
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(origin.observations.count('/counter'), 1, 'one upstream observation for two clients');
  for (let change = 1; change <= 20 && ended === 0; change++) {
    counter = change;
    origin.changed('/counter');
    await new Promise((r) => setTimeout(r, 400));
  }
  const [a, b] = await results;
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const values = (r: Result): number[] => r.stdout.trim().split('\n').map(Number);
  assert.equal(values(a).length, 3, a.stdout);
  assert.equal(values(b).length, 5, b.stdout);
  for (const v of [values(a), values(b)]) for (let i = 1; i < v.length; i++) assert.ok(v[i]! > v[i - 1]!, `notifications in order, none repeated: ${v.join(',')}`);
  assert.deepEqual(values(b).slice(1), values(b).slice(1).map((_, i) => values(b)[1]! + i), 'every change delivered');
  await eventually(() => origin.observations.count('/counter') === 0, 5000, 'the proxy deregisters upstream after the last client left');
});

test('/dev1/.well-known/core: the origin links carry the mount prefix; the proxy lists its mounts', async () => {
  const mounted = await coapsec(['get', `${proxyBase}/dev1/.well-known/core`]);
  assert.equal(mounted.code, 0, mounted.stderr);
  const hrefs = parseLinkFormat(mounted.stdout).map((l) => l.href);
  assert.ok(hrefs.includes('/dev1/hello'), mounted.stdout);
  assert.ok(hrefs.includes('/dev1/large'), mounted.stdout);
  assert.ok(hrefs.every((h) => h.startsWith('/dev1/')), `every link under /dev1: ${hrefs.join(' ')}`);
  const own = await coapsec(['get', `${proxyBase}/.well-known/core`]);
  assert.equal(own.code, 0, own.stderr);
  assert.ok(parseLinkFormat(own.stdout).some((l) => l.href === '/dev1'), own.stdout);
});

describe('end-to-end OSCORE through the reverse proxy (--via coap://PROXY/PREFIX, --oscore-conf)', () => {
  let dir: string;
  let secureOrigin: string;
  let via: string;
  const conf = (sender: string, recipient: string) => `master_secret,hex,"0102030405060708090a0b0c0d0e0f10"\nmaster_salt,hex,"9e7ca92223786340"\nsender_id,hex,"${sender}"\nrecipient_id,hex,"${recipient}"\n`;
  const client = (): string[] => ['--via', via, '--oscore-conf', `${join(dir, 'client.conf')},${join(dir, 'client.seq')}`];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'coapsec-reverse-oscore-'));
    writeFileSync(join(dir, 'server.conf'), conf('', '01'));
    writeFileSync(join(dir, 'client.conf'), conf('01', ''));
    const serve = start(['serve', '--bind', '127.0.0.1:0', '--oscore-conf', `${join(dir, 'server.conf')},${join(dir, 'server.seq')}`]);
    let serveText = '';
    serve.stderr!.on('data', (b: Buffer) => (serveText += b.toString()));
    serve.stdout!.on('data', (b: Buffer) => (serveText += b.toString()));
    await eventually(() => /serving on coap:\/\/127\.0\.0\.1:\d+/.test(serveText), 10_000, 'the OSCORE origin prints its address');
    const originPort = /serving on coap:\/\/127\.0\.0\.1:(\d+)/.exec(serveText)![1];
    secureOrigin = `coap://127.0.0.1:${originPort}`;
    const secureProxy = start(['proxy', '--bind', '127.0.0.1:0', '--reverse', `/sec=${secureOrigin}/`]);
    let proxyText = '';
    secureProxy.stderr!.on('data', (b: Buffer) => (proxyText += b.toString()));
    await eventually(() => /coapsec proxy on coap:\/\/127\.0\.0\.1:\d+/.test(proxyText), 10_000, 'the proxy prints its address');
    via = `coap://127.0.0.1:${/coapsec proxy on coap:\/\/127\.0\.0\.1:(\d+)/.exec(proxyText)![1]}/sec`;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('an 8 KiB GET at 64-byte blocks, a 3000-byte POST, and Observe arrive whole, protected end to end', async () => {
    const get = await coapsec(['get', `${secureOrigin}/large`, '-b', '64', ...client()]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, largeText());
    const body = 'x'.repeat(3000);
    const post = await coapsec(['post', `${secureOrigin}/echo`, '--payload', body, '-b', '64', ...client()]);
    assert.equal(post.code, 0, post.stderr);
    assert.equal(post.stdout, body);
    const observed = await coapsec(['observe', `${secureOrigin}/time`, '--count', '2', ...client()]);
    assert.equal(observed.code, 0, observed.stderr);
    assert.equal(observed.stdout.trim().split('\n').length, 2, observed.stdout);
  });
});
