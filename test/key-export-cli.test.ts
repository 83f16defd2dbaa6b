/**
 * Issue 28 item 2 through the real CLI: `serve` and `get` over DTLS with OSCORE, both with
 * --keylog and --oscore-export. Both ends log the same DTLS session; both export the same OSCORE
 * context from the client's point of view; the warnings are on stderr and no secret is.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'coapsec');
const TIMEOUT = 15_000;
const dir = mkdtempSync(join(tmpdir(), 'coapsec-keylog-cli-'));
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const SECRET = '0102030405060708090a0b0c0d0e0f10';
const conf = (sender: string, recipient: string) => `master_secret,hex,"${SECRET}"\nmaster_salt,hex,"9e7ca92223786340"\nsender_id,hex,"${sender}"\nrecipient_id,hex,"${recipient}"\n`;

function spawnCoapsec(args: string[]): { child: ChildProcess; stderr: () => string; stdout: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COAPSEC_STATE_DIR: join(dir, 'state') } });
  children.add(child);
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => (children.delete(child), resolve(code))));
  return { child, stderr: () => stderr, stdout: () => stdout, exit };
}

const uatLines = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));

test('serve and get with --keylog and --oscore-export: matching key logs, matching contexts, warnings, no secret on stderr', async () => {
  writeFileSync(join(dir, 'server.conf'), conf('02', '01'));
  writeFileSync(join(dir, 'client.conf'), conf('01', '02'));
  const psk = ['--psk-identity', 'cli-test', '--psk', 'cli-test-key'];
  const server = spawnCoapsec(['serve', '--bind', '127.0.0.1:0', ...psk, '--oscore-conf', join(dir, 'server.conf'), '--keylog', join(dir, 'server.keylog'), '--oscore-export', join(dir, 'server.ctx')]);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${server.stderr()}`)), TIMEOUT);
    const poll = setInterval(() => {
      const m = /^coapsec serving on coaps:\/\/127\.0\.0\.1:(\d+)$/m.exec(server.stderr());
      if (m) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    }, 20);
  });
  const client = spawnCoapsec(['get', `coaps://127.0.0.1:${port}/.well-known/core`, ...psk, '--oscore-conf', join(dir, 'client.conf'), '--keylog', join(dir, 'client.keylog'), '--oscore-export', join(dir, 'client.ctx')]);
  const timer = setTimeout(() => client.child.kill('SIGKILL'), TIMEOUT);
  const code = await client.exit;
  clearTimeout(timer);
  server.child.kill('SIGTERM');
  await server.exit;
  assert.equal(code, 0, client.stderr());
  for (const [who, stderr] of [['client', client.stderr()], ['server', server.stderr()]] as const) {
    assert.match(stderr, /^WARNING: --keylog .*secret keys/m, who);
    assert.match(stderr, /^WARNING: --oscore-export .*secret keys/m, who);
    assert.ok(!stderr.includes(SECRET), `${who}: the OSCORE master secret is not on stderr`);
  }
  const clientLines = readFileSync(join(dir, 'client.keylog'), 'utf8').split('\n').filter((l) => l.startsWith('CLIENT_RANDOM '));
  const serverLines = readFileSync(join(dir, 'server.keylog'), 'utf8').split('\n').filter((l) => l.startsWith('CLIENT_RANDOM '));
  assert.equal(clientLines.length, 1);
  assert.deepEqual(serverLines, clientLines, 'both ends log the one session with the same secret');
  for (const l of [...clientLines, ...serverLines]) assert.ok(!client.stderr().includes(l.split(' ')[2]!) && !server.stderr().includes(l.split(' ')[2]!));
  const expected = [`"01","02","${SECRET}","9e7ca92223786340","","AES-CCM-16-64-128 (CCM*)"`];
  assert.deepEqual(uatLines(join(dir, 'client.ctx')), expected);
  assert.deepEqual(uatLines(join(dir, 'server.ctx')), expected, 'the server writes its context from the client\'s point of view');
});

test('serve --credentials with --oscore-export writes out every configured context at start-up (contexts kept as objects, not idle bytes)', async () => {
  const credentials = { stateDirectory: 'creds-state', recipients: { '01': { name: 'alice', context: { masterSecret: SECRET, masterSalt: '9e7ca92223786340', senderId: '02' } } } };
  writeFileSync(join(dir, 'server.json'), JSON.stringify(credentials), { mode: 0o600 });
  const server = spawnCoapsec(['serve', '--bind', '127.0.0.1:0', '--credentials', join(dir, 'server.json'), '--oscore-export', join(dir, 'creds-server.ctx')]);
  const deadline = Date.now() + TIMEOUT;
  while (!/serving on coap:\/\/127\.0\.0\.1:\d+/.test(server.stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  server.child.kill('SIGTERM');
  await server.exit;
  assert.match(server.stderr(), /serving on coap:\/\/127\.0\.0\.1:\d+/, `serve started: ${server.stderr()}`);
  assert.deepEqual(uatLines(join(dir, 'creds-server.ctx')), [`"01","02","${SECRET}","9e7ca92223786340","","AES-CCM-16-64-128 (CCM*)"`]);
});
