/**
 * `coapsec proxy --ws` facing browsers: the Origin allow-list (RFC 6455 §10.2), the connection
 * limit, the per-connection message rate (close 1008 with a reason) and `--web DIR` (static files
 * on the WebSocket port, no traversal, content types) — against the real CLI over loopback.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { assertUsageError, coapsec, killChildren, startDaemon, type Daemon } from './support/cli-harness.js';

const CSM = Uint8Array.of(0x00, 0xe1);
const PING = Uint8Array.of(0x00, 0xe2);

let work: string;
let proxy: Daemon;
let port: number;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'coapsec-ws-limits-'));
  process.env.COAPSEC_STATE_DIR = join(work, 'state');
  const web = join(work, 'web');
  mkdirSync(join(web, 'sub'), { recursive: true });
  writeFileSync(join(web, 'index.html'), '<!doctype html><title>demo</title>');
  writeFileSync(join(web, 'sub', 'app.js'), 'export const x = 1;');
  writeFileSync(join(web, 'notes.xyz'), 'unknown type');
  writeFileSync(join(work, 'secret.txt'), 'outside the web root');
  symlinkSync(join(work, 'secret.txt'), join(web, 'escape.txt'));
  proxy = await startDaemon(
    ['proxy', '--forward', '--bind', '127.0.0.1:0', '--ws', '0', '--ws-origin', 'https://app.example', '--ws-max-connections', '2', '--ws-rate', '5', '--web', web],
    /proxy on coap:\/\/127\.0\.0\.1:(\d+)/,
  );
  port = Number((await proxy.waitFor(/proxy on coap\+ws:\/\/127\.0\.0\.1:(\d+)/))[1]);
});

after(async () => {
  await proxy?.stop();
  killChildren();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Opened {
  socket: WebSocket;
  closed: Promise<{ code: number; reason: string }>;
}

/** Opens a coap+ws connection; resolves with it, or rejects with the HTTP status of a refused handshake. */
function connect(origin?: string): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/.well-known/coap`, 'coap', origin !== undefined ? { origin } : {});
    const closed = new Promise<{ code: number; reason: string }>((done) => socket.on('close', (code, reason) => done({ code, reason: reason.toString() })));
    socket.on('unexpected-response', (_request, response) => {
      reject(Object.assign(new Error(`HTTP ${response.statusCode}`), { status: response.statusCode }));
      socket.terminate();
    });
    socket.on('error', () => {
      /* the close or unexpected-response says what happened */
    });
    socket.on('open', () => resolve({ socket, closed }));
  });
}

function get(path: string, method = 'GET'): Promise<{ status: number; type: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, type: response.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function closeAll(opened: Opened[]): Promise<void> {
  for (const o of opened) o.socket.close(1000);
  await Promise.all(opened.map((o) => o.closed));
}

test('Origin: a listed origin, the proxy\'s own and a program without Origin are admitted; another site gets 403', async () => {
  const listed = await connect('https://app.example');
  const own = await connect(`http://127.0.0.1:${port}`);
  await closeAll([listed, own]);
  const program = await connect();
  await closeAll([program]);
  await assert.rejects(connect('https://evil.example'), { status: 403 });
  await assert.rejects(connect('null'), { status: 403 });
  // DNS rebinding: the attacker's name points at the proxy, Host and Origin agree — still refused.
  await assert.rejects(connect(`http://rebind.example:${port}`), { status: 403 });
});

test('connection limit: the third connection at once gets 503; after one closes, a new one opens', async () => {
  const first = await connect();
  const second = await connect();
  await assert.rejects(connect(), { status: 503 });
  await closeAll([first]);
  const third = await connect();
  await closeAll([second, third]);
});

test('rate limit: within the rate the connection lives (Pongs come back); a burst past it is closed with 1008 and a reason', async () => {
  const calm = await connect();
  let pongs = 0;
  calm.socket.on('message', (data: Buffer) => {
    if (data[1] === 0xe3) pongs++;
  });
  calm.socket.send(CSM);
  for (let i = 0; i < 3; i++) calm.socket.send(PING);
  const deadline = Date.now() + 5_000;
  while (pongs < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(pongs, 3);
  await closeAll([calm]);

  const runaway = await connect();
  runaway.socket.send(CSM);
  for (let i = 0; i < 20; i++) runaway.socket.send(PING);
  const { code, reason } = await runaway.closed;
  assert.equal(code, 1008);
  assert.match(reason, /rate limit: more than 5 CoAP messages per second/);
});

test('--web: files under DIR with their content types; traversal, symlinks out, unknown types and POST are refused', async () => {
  const index = await get('/');
  assert.equal(index.status, 200);
  assert.equal(index.type, 'text/html; charset=utf-8');
  assert.match(index.body, /<title>demo<\/title>/);
  const script = await get('/sub/app.js?v=1');
  assert.equal(script.status, 200);
  assert.equal(script.type, 'text/javascript; charset=utf-8');
  for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/sub/%2E%2E/%2E%2E/secret.txt', '/..%2fsecret.txt', '/sub%5c..%5c..%5csecret.txt', '/escape.txt', '/notes.xyz', '/missing.html', '/%00index.html', '/%zz']) {
    const r = await get(path);
    assert.equal(r.status, 404, path);
    assert.doesNotMatch(r.body, /outside the web root/, path);
  }
  assert.equal((await get('/', 'POST')).status, 405);
  const head = await get('/', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
});

test('flags: --ws-origin needs an origin, limits need whole numbers, --web needs a directory, all need --ws', async () => {
  assertUsageError(await coapsec(['proxy', '--forward', '--bind', '127.0.0.1:0', '--ws', '0', '--ws-origin', 'app.example']), /--ws-origin needs an origin/);
  assertUsageError(await coapsec(['proxy', '--forward', '--bind', '127.0.0.1:0', '--ws', '0', '--ws-rate', '0']), /--ws-rate needs a positive whole number/);
  assertUsageError(await coapsec(['proxy', '--forward', '--bind', '127.0.0.1:0', '--ws', '0', '--ws-max-connections', 'many']), /--ws-max-connections needs a positive whole number/);
  assertUsageError(await coapsec(['proxy', '--forward', '--bind', '127.0.0.1:0', '--ws', '0', '--web', join(work, 'nowhere')]), /--web: no directory/);
  assertUsageError(await coapsec(['proxy', '--forward', '--bind', '127.0.0.1:0', '--web', work]), /--web needs --ws PORT/);
});
