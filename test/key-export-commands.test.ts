/**
 * Issue 28 item 2 on the commands beyond get/serve/proxy: broker, publish and subscribe (DTLS and
 * OSCORE), trust-anchor and ta-request (OSCORE), demo (OSCORE, both layers of its nested
 * exchange). Each runs on loopback with --keylog/--oscore-export; the files hold the expected
 * secret and context lines, the loud warning is on stderr, and no secret is.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { coapsec, killChildren, startDaemon } from './support/cli-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'coapsec-key-export-commands-'));
after(() => {
  killChildren();
  rmSync(dir, { recursive: true, force: true });
});

const CCM = 'AES-CCM-16-64-128 (CCM*)';
const uatLines = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
const keylogLines = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('CLIENT_RANDOM '));

function assertWarned(who: string, stderr: string, flags: ReadonlyArray<'--keylog' | '--oscore-export'>, secrets: readonly string[]): void {
  for (const flag of flags) assert.match(stderr, new RegExp(`^WARNING: ${flag} .*secret keys`, 'm'), `${who}: ${flag} warning`);
  for (const s of secrets) assert.ok(!stderr.includes(s), `${who}: a secret is on stderr`);
}

test('broker, publish and subscribe: --keylog logs every DTLS session at both ends, --oscore-export the OSCORE context', async () => {
  const secret = randomBytes(16).toString('hex');
  const conf = (sender: string, recipient: string): string => `master_secret,hex,"${secret}"\nsender_id,hex,"${sender}"\nrecipient_id,hex,"${recipient}"\n`;
  writeFileSync(join(dir, 'broker.conf'), conf('02', '01'));
  writeFileSync(join(dir, 'client.conf'), conf('01', '02'));
  const psk = ['--psk-identity', 'broker-test', '--psk', 'broker-test-key'];
  const client = ['--oscore-conf', join(dir, 'client.conf'), ...psk];
  const files = (who: string): string[] => ['--keylog', join(dir, `${who}.keylog`), '--oscore-export', join(dir, `${who}.ctx`)];
  const broker = await startDaemon(['broker', '--bind', '127.0.0.1:0', ...psk, '--oscore-conf', join(dir, 'broker.conf'), ...files('broker')], /coapsec broker on coaps:\/\/127\.0\.0\.1:(\d+)\/ps/);
  let subscribed;
  let published;
  try {
    published = await coapsec(['publish', `coaps://127.0.0.1:${broker.port}/ps`, '--create-topic', 'keys', '--payload', 'hello', ...client, ...files('publish')]);
    assert.equal(published.code, 0, published.stderr);
    const topicData = /topic-data: (\S+)/.exec(published.stderr)![1]!;
    subscribed = await coapsec(['subscribe', topicData, '--count', '1', ...client, ...files('subscribe')]);
    assert.equal(subscribed.code, 0, subscribed.stderr);
    assert.equal(subscribed.stdout, 'hello\n');
  } finally {
    await broker.stop();
  }
  const expected = [`"01","02","${secret}","","","${CCM}"`];
  for (const who of ['broker', 'publish', 'subscribe']) assert.deepEqual(uatLines(join(dir, `${who}.ctx`)), expected, who);
  const publishSession = keylogLines(join(dir, 'publish.keylog'));
  const subscribeSession = keylogLines(join(dir, 'subscribe.keylog'));
  assert.equal(publishSession.length, 1);
  assert.equal(subscribeSession.length, 1);
  assert.deepEqual(keylogLines(join(dir, 'broker.keylog')).sort(), [...publishSession, ...subscribeSession].sort(), 'the broker logs both sessions with the same secrets');
  const dtlsSecrets = [...publishSession, ...subscribeSession].map((l) => l.split(' ')[2]!);
  for (const [who, stderr] of [['broker', broker.stderr()], ['publish', published.stderr], ['subscribe', subscribed.stderr]] as const) {
    assertWarned(who, stderr, ['--keylog', '--oscore-export'], [secret, ...dtlsSecrets]);
  }
});

test('trust-anchor and ta-request: --oscore-export writes the context between them at both ends', async () => {
  const ta = join(dir, 'ta');
  mkdirSync(ta);
  const secret = randomBytes(16).toString('hex');
  const write = (name: string, value: unknown): string => {
    writeFileSync(join(ta, name), JSON.stringify(value), { mode: 0o600 });
    return join(ta, name);
  };
  write('ta-credentials.json', { stateDirectory: 'ta-state', recipients: { '01': { name: 'alice', context: { masterSecret: secret, senderId: 'ff' } } } });
  const config = write('ta.json', { id: 'ta1', bind: '127.0.0.1:0', credentials: 'ta-credentials.json', stateFile: 'ta-counters.json', resourceServers: { rs1: { key: randomBytes(16).toString('hex') } }, policy: { alice: ['rs1'] } });
  const anchor = await startDaemon(['trust-anchor', '--config', config, '--oscore-export', join(ta, 'anchor.ctx'), '--keylog', join(ta, 'anchor.keylog')], /trust anchor ta1 serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  let requested;
  try {
    const alice = write('alice.json', { stateDirectory: 'alice-state', oscore: [{ match: `coap://127.0.0.1:${anchor.port}/*`, context: { masterSecret: secret, senderId: '01', recipientId: 'ff' } }] });
    requested = await coapsec(['ta-request', '--ta', `coap://127.0.0.1:${anchor.port}`, '--rs', 'rs1', '--credentials', alice, '--out', join(ta, 'cred.json'), '--oscore-export', join(ta, 'alice.ctx')]);
    assert.equal(requested.code, 0, requested.stderr);
  } finally {
    await anchor.stop();
  }
  const expected = [`"01","ff","${secret}","","","${CCM}"`];
  assert.deepEqual(uatLines(join(ta, 'alice.ctx')), expected);
  assert.deepEqual(uatLines(join(ta, 'anchor.ctx')), expected, 'the trust anchor writes its context from the client\'s point of view');
  // No revocation went out over DTLS in this run, so its key log holds no session.
  assert.deepEqual(keylogLines(join(ta, 'anchor.keylog')), []);
  assertWarned('trust-anchor', anchor.stderr(), ['--keylog', '--oscore-export'], [secret]);
  assertWarned('ta-request', requested.stderr, ['--oscore-export'], [secret]);
});

test('trust-anchor --keylog: the DTLS session of a revocation it sends to a resource server', async () => {
  const ta = join(dir, 'ta-revoke');
  mkdirSync(ta);
  const secret = randomBytes(16).toString('hex');
  const rsKey = randomBytes(16).toString('hex');
  const write = (name: string, value: unknown): string => {
    writeFileSync(join(ta, name), JSON.stringify(value), { mode: 0o600 });
    return join(ta, name);
  };
  const rs = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--trust-anchor', `ta1=0x${rsKey}`, '--keylog', join(ta, 'rs.keylog')], /^coapsec serving on coaps:\/\/127\.0\.0\.1:(\d+)$/m);
  let revoked;
  let anchor;
  try {
    write('ta-credentials.json', { stateDirectory: 'ta-state', recipients: { '01': { name: 'admin', context: { masterSecret: secret, senderId: 'ff' } } } });
    const resourceServers = { rs1: { key: rsKey, revocationUri: `coaps://127.0.0.1:${rs.port}/ta/revoke` } };
    const config = write('ta.json', { id: 'ta1', bind: '127.0.0.1:0', credentials: 'ta-credentials.json', stateFile: 'ta-counters.json', resourceServers, policy: { admin: ['rs1'] }, administrators: ['admin'] });
    anchor = await startDaemon(['trust-anchor', '--config', config, '--keylog', join(ta, 'anchor.keylog')], /trust anchor ta1 serving on coap:\/\/127\.0\.0\.1:(\d+)/);
    const admin = write('admin.json', { stateDirectory: 'admin-state', oscore: [{ match: `coap://127.0.0.1:${anchor.port}/*`, context: { masterSecret: secret, senderId: '01', recipientId: 'ff' } }] });
    const issued = await coapsec(['ta-request', '--ta', `coap://127.0.0.1:${anchor.port}`, '--rs', 'rs1', '--credentials', admin, '--out', join(ta, 'cred.json')]);
    assert.equal(issued.code, 0, issued.stderr);
    const sequence = /sequence (\d+)/.exec(issued.stdout)![1]!;
    revoked = await coapsec(['ta-request', '--ta', `coap://127.0.0.1:${anchor.port}`, '--rs', 'rs1', '--credentials', admin, '--revoke', sequence]);
    assert.equal(revoked.code, 0, revoked.stderr);
  } finally {
    await anchor?.stop();
    await rs.stop();
  }
  const session = keylogLines(join(ta, 'anchor.keylog'));
  assert.equal(session.length, 1, 'one DTLS session: the revocation');
  assert.deepEqual(keylogLines(join(ta, 'rs.keylog')), session, 'the resource server logs the same session');
  assertWarned('trust-anchor', anchor.stderr(), ['--keylog'], [secret, rsKey, session[0]!.split(' ')[2]!]);
});

test('demo --oscore-export writes every context it runs: the end-to-end one through the caching proxy and both layers of the nested one', async () => {
  const ctx = join(dir, 'demo.ctx');
  const r = await coapsec(['demo', '--oscore-export', ctx], { timeout: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const lines = uatLines(ctx);
  const ids = lines.map((l) => l.split(',').slice(0, 2).join(','));
  assert.deepEqual(ids.sort(), ['"00","01"', '"20","02"', '"5f","01"'].sort());
  for (const l of lines) {
    const masterSecret = JSON.parse(l.split(',')[2]!) as string;
    assert.match(masterSecret, /^[0-9a-f]{32}$/);
    assert.ok(!r.stdout.includes(masterSecret) && !r.stderr.includes(masterSecret), 'no secret printed');
  }
  assert.doesNotMatch(r.stderr, /not exported/, 'every context is one Wireshark can use');
  assertWarned('demo', r.stderr, ['--oscore-export'], []);
});

test('--help of each of these commands lists --keylog and --oscore-export', async () => {
  for (const command of ['broker', 'publish', 'subscribe', 'trust-anchor', 'ta-request', 'demo']) {
    const r = await coapsec([command, '--help']);
    assert.equal(r.code, 0, command);
    assert.match(r.stdout, /--keylog FILE/, command);
    assert.match(r.stdout, /--oscore-export FILE/, command);
  }
});
