/**
 * The command line's OSCORE defaults, run as a user runs them (`node bin/coapsec ...`) against an
 * in-process server on 127.0.0.1: no silent plaintext with --credentials (and the
 * --allow-unprotected opt-out), -v naming the protection, one counter per sender context across
 * --credentials and --oscore-conf, and `observe` ending at once on a refused registration and
 * answering a restarted server's Echo challenge.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { ResponseCode } from '../src/coap/codes.js';
import { formatLibcoapConf } from '../src/credentials/libcoap-conf.js';
import { loadCredentials } from '../src/credentials/credentials-file.js';
import { addDemoResources } from '../src/demo/resources.js';
import { CoapServer } from '../src/server/server.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'coapsec');
const root = mkdtempSync(join(tmpdir(), 'coapsec-cli-oscore-'));
const STATE = join(root, 'common-state');
// The in-process server registers its contexts in the common state directory too: this test's own.
process.env['COAPSEC_STATE_DIR'] = STATE;
const SECRET = '0102030405060708090a0b0c0d0e0f10';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `node bin/coapsec ARGS` with this test's own common state directory; killed after `timeout` ms. */
function coapsec(args: readonly string[], timeout = 10_000): Promise<Result> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COAPSEC_STATE_DIR: STATE, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`coapsec ${args.join(' ')} still running after ${timeout} ms; stderr: ${stderr}`));
    }, timeout);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

let server: CoapServer;
let port: number;
const serverFile = join(root, 'server.json');

function clientFile(name: string, match: string, senderId = '01'): string {
  const path = join(root, name);
  writeFileSync(path, JSON.stringify({ oscore: [{ match, context: { masterSecret: SECRET, senderId, recipientId: '02', name: 'demo-server' } }] }));
  return path;
}

async function startServer(): Promise<CoapServer> {
  const s = await CoapServer.listen({ host: '127.0.0.1', port, credentials: serverFile });
  addDemoResources(s, { tick: false });
  s.resource('/oscore/hello', { GET: (req) => ({ code: ResponseCode.Content, payload: `hello ${req.context.oscore?.[0]?.peer}` }) }, { requireOscore: true });
  return s;
}

before(async () => {
  writeFileSync(
    serverFile,
    JSON.stringify({
      recipients: {
        '01': { name: 'alice', context: { masterSecret: SECRET, senderId: '02' } },
        '03': { name: 'carol', context: { masterSecret: SECRET, senderId: '02' } },
      },
    }),
  );
  port = 0;
  server = await startServer();
  port = server.address().port;
});
after(async () => {
  await server.close();
  rmSync(root, { recursive: true, force: true });
});

test('get --credentials whose patterns do not match the URI: nothing is sent, exit 6, the URI and the patterns named', async () => {
  const silent = createSocket('udp4');
  const received: Buffer[] = [];
  silent.on('message', (data) => received.push(data));
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  try {
    const target = silent.address().port;
    const pattern = `coap://127.0.0.1:${target + 1}/*`;
    const uri = `coap://127.0.0.1:${target}/oscore/hello/1`;
    const r = await coapsec(['get', uri, '--credentials', clientFile('other-port.json', pattern), '-v']);
    assert.equal(r.code, 6, `exit code; stderr: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`no OSCORE context in .*other-port\\.json matches ${uri.replace(/[/.]/g, '\\$&')} \\(patterns tried: ${pattern.replace(/[/.*]/g, '\\$&')}\\)`));
    assert.match(r.stderr, /--allow-unprotected/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(received.length, 0, 'nothing reached the target');

    const observed = await coapsec(['observe', uri, '--credentials', clientFile('other-port.json', pattern)]);
    assert.equal(observed.code, 6, `observe too; stderr: ${observed.stderr}`);
    assert.equal(received.length, 0);
  } finally {
    silent.close();
  }
});

test('get --allow-unprotected sends a request no context matches as plain CoAP, and -v says so', async () => {
  const file = clientFile('path-only.json', `coap://127.0.0.1:${port}/oscore/*`);
  const plain = await coapsec(['get', `coap://127.0.0.1:${port}/hello`, '--credentials', file, '--allow-unprotected', '-v']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(plain.stdout, 'Hello from coapsec');
  assert.match(plain.stderr, /^protection: none$/m);

  const secured = await coapsec(['get', `coap://127.0.0.1:${port}/oscore/hello`, '--credentials', file, '--allow-unprotected', '-v']);
  assert.equal(secured.code, 0, secured.stderr);
  assert.equal(secured.stdout, 'hello alice');
  assert.match(secured.stderr, /^protection: OSCORE kid=02 \(demo-server\)$/m);
});

test('the same sender context from --credentials and then from --oscore-conf continues one counter: no "Replay detected"', async () => {
  const file = clientFile('carol.json', `coap://127.0.0.1:${port}/*`, '03');
  for (let i = 0; i < 2; i++) {
    const r = await coapsec(['get', `coap://127.0.0.1:${port}/oscore/hello`, '--credentials', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello carol');
  }
  const conf = join(root, 'carol.conf');
  writeFileSync(conf, formatLibcoapConf(loadCredentials(file).oscore[0]!.context));
  for (const argument of [conf, `${conf},${join(root, 'carol.seq')}`]) {
    const r = await coapsec(['get', `coap://127.0.0.1:${port}/oscore/hello`, '--oscore-conf', argument]);
    assert.equal(r.code, 0, `--oscore-conf ${argument}: ${r.stderr}`);
    assert.equal(r.stdout, 'hello carol');
  }
  const back = await coapsec(['get', `coap://127.0.0.1:${port}/oscore/hello`, '--credentials', file]);
  assert.equal(back.code, 0, back.stderr);
});

test('observe whose registration is refused (unknown kid: unprotected 4.01) ends at once with the error, well within --timeout', async () => {
  const stranger = clientFile('stranger.json', `coap://127.0.0.1:${port}/*`, '0f');
  const r = await coapsec(['observe', `coap://127.0.0.1:${port}/time`, '--credentials', stranger, '--timeout', '20'], 15_000);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Security context not found/);
  assert.ok(r.ms < 5_000, `ended after ${Math.round(r.ms)} ms`);
});

test('observe answers the Echo challenge of a restarted server (RFC 8613 Appendix B.1.2) and gets its notification', async () => {
  const file = clientFile('alice.json', `coap://127.0.0.1:${port}/*`);
  // The server restarts: its contexts resume from their persisted state, replay windows unset.
  await server.close();
  server = await startServer();
  const r = await coapsec(['observe', `coap://127.0.0.1:${port}/time`, '--credentials', file, '--count', '1', '-v']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\d{4}-\d\d-\d\dT/);
  assert.match(r.stderr, /^protection: OSCORE kid=02 \(demo-server\)$/m);
});

test('--help of the client commands names --allow-unprotected and the default state directory', async () => {
  for (const command of ['get', 'observe']) {
    const r = await coapsec([command, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--allow-unprotected/);
    assert.match(r.stdout, /\$COAPSEC_STATE_DIR, else \$XDG_STATE_HOME\/coapsec, else ~\/\.local\/state\/coapsec/);
  }
});
