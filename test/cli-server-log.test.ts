/**
 * What serve and proxy log on stderr: -v one line per request (peer, identity, protection, method,
 * path, code), -vv the messages too, --log-format json one object per line; refused DTLS
 * handshakes and OSCORE failures always, with their reason.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { UdpTransport } from '../src/transport/udp.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertUsageError, coapsec, killChildren, startDaemon } from './support/cli-harness.js';

const SERVING = /serving on coap:\/\/127\.0\.0\.1:(\d+)/;
let tmp: string;

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'coapsec-log-'));
});

after(() => {
  killChildren();
  rmSync(tmp, { recursive: true, force: true });
});

const ISO_TIME = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';

test('serve without -v logs no requests', async () => {
  const serve = await startDaemon(['serve', '--bind', '127.0.0.1:0'], SERVING);
  try {
    assert.equal((await coapsec(['get', `coap://127.0.0.1:${serve.port}/hello`])).code, 0);
    await serve.stop();
    assert.equal(serve.stderr().trim().split('\n').length, 1, `only the "serving on" line: ${serve.stderr()}`);
  } finally {
    await serve.stop();
  }
});

test('serve -v: one line per request with peer, identity, protection, method, path and code', async () => {
  const serve = await startDaemon(['serve', '--bind', '127.0.0.1:0', '-v'], SERVING);
  try {
    assert.equal((await coapsec(['get', `coap://127.0.0.1:${serve.port}/hello`, '--local', '127.0.0.1:0'])).code, 0);
    assert.equal((await coapsec(['get', `coap://127.0.0.1:${serve.port}/nothing`])).code, 4);
    await serve.waitFor(/GET \/nothing 4\.04/);
    assert.match(serve.stderr(), new RegExp(`^${ISO_TIME} 127\\.0\\.0\\.1:\\d+ - none GET /hello 2\\.05$`, 'm'));
    assert.match(serve.stderr(), new RegExp(`^${ISO_TIME} 127\\.0\\.0\\.1:\\d+ - none GET /nothing 4\\.04$`, 'm'));
    assert.doesNotMatch(serve.stderr(), /request: /, '-v alone shows no messages');
  } finally {
    await serve.stop();
  }
});

test('serve -vv: the request and response messages under each line', async () => {
  const serve = await startDaemon(['serve', '--bind', '127.0.0.1:0', '-vv'], SERVING);
  try {
    assert.equal((await coapsec(['get', `coap://127.0.0.1:${serve.port}/hello`, '--token', '0a0b'])).code, 0);
    const m = await serve.waitFor(/GET \/hello 2\.05\n {2}request: {2}(.*)\n {2}response: (.*)\n/);
    assert.match(m[1]!, /^CON mid=\d+ GET token=0a0b Uri-Path: hello; 0-byte payload$/);
    assert.match(m[2]!, /^2\.05 token=- Content-Format: 0 .*; 18-byte payload$/);
  } finally {
    await serve.stop();
  }
});

test('serve --log-format json -v: one JSON object per request', async () => {
  const serve = await startDaemon(['serve', '--bind', '127.0.0.1:0', '-v', '--log-format', 'json'], SERVING);
  try {
    assert.equal((await coapsec(['get', `coap://127.0.0.1:${serve.port}/hello`])).code, 0);
    const served = await serve.waitFor(/\{[^\n]*"path":"\/hello"[^\n]*\}\n/);
    const line = JSON.parse(served[0]) as Record<string, unknown>;
    assert.match(String(line['time']), new RegExp(`^${ISO_TIME}$`));
    assert.match(String(line['peer']), /^127\.0\.0\.1:\d+$/);
    assert.deepEqual({ ...line, time: 'T', peer: 'P' }, { time: 'T', event: 'request', peer: 'P', identity: null, protection: 'none', method: 'GET', path: '/hello', code: '2.05' });
  } finally {
    await serve.stop();
  }
});

/** `credentials new` into DIR, the client context pointed at PORT. */
async function pairFor(dir: string, peer: string, port?: number): Promise<{ client: string; server: string }> {
  const r = await coapsec(['credentials', 'new', '--peer', peer, '--out-dir', dir, ...(port !== undefined ? ['--match', `coap://127.0.0.1:${port}/*`] : [])]);
  assert.equal(r.code, 0, r.stderr);
  return { client: join(dir, 'client.json'), server: join(dir, 'server.json') };
}

/** Points a client.json's context at PORT (the server's port is known only once it runs). */
function matchPort(clientJson: string, port: number): void {
  const json = JSON.parse(readFileSync(clientJson, 'utf8')) as { oscore: Array<{ match: string }> };
  json.oscore[0]!.match = `coap://127.0.0.1:${port}/*`;
  writeFileSync(clientJson, JSON.stringify(json), { mode: 0o600 });
}

test('OSCORE: -v names the client and "oscore"; a refusal is logged without -v, with its reason', async () => {
  const alice = await pairFor(join(tmp, 'alice'), 'alice');
  const quiet = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--plugtest', '--credentials', alice.server], SERVING);
  try {
    const mallory = await pairFor(join(tmp, 'mallory'), 'mallory', quiet.port);
    assert.equal((await coapsec(['get', `coap://127.0.0.1:${quiet.port}/oscore/hello/1`, '--credentials', mallory.client])).code, 6);
    const refused = await quiet.waitFor(/^.* OSCORE refused: .*$/m);
    assert.match(refused[0], new RegExp(`^${ISO_TIME} 127\\.0\\.0\\.1:\\d+ - none POST / 4\\.01 OSCORE refused: Security context not found$`));
  } finally {
    await quiet.stop();
  }
  const verbose = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--plugtest', '--credentials', alice.server, '-v'], SERVING);
  try {
    matchPort(alice.client, verbose.port);
    const r = await coapsec(['get', `coap://127.0.0.1:${verbose.port}/oscore/hello/1`, '--credentials', alice.client]);
    assert.equal(r.code, 0, r.stderr);
    assert.match((await verbose.waitFor(/^.*GET \/oscore\/hello\/1 2\.05$/m))[0], /127\.0\.0\.1:\d+ alice oscore GET \/oscore\/hello\/1 2\.05$/);
  } finally {
    await verbose.stop();
  }
});

test('OSCORE refusal as JSON: event "oscore-refused" with the reason in oscoreFailure', async () => {
  const alice = await pairFor(join(tmp, 'alice-json'), 'alice');
  const serve = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--plugtest', '--credentials', alice.server, '--log-format', 'json'], SERVING);
  try {
    const bob = await pairFor(join(tmp, 'bob-json'), 'bob', serve.port);
    assert.equal((await coapsec(['get', `coap://127.0.0.1:${serve.port}/oscore/hello/1`, '--credentials', bob.client])).code, 6);
    const line = JSON.parse((await serve.waitFor(/\{[^\n]*"oscore-refused"[^\n]*\}/))[0]) as Record<string, unknown>;
    assert.equal(line['oscoreFailure'], 'Security context not found');
    assert.equal(line['code'], '4.01');
    assert.equal(line['protection'], 'none');
  } finally {
    await serve.stop();
  }
});

test('serve with DTLS: a refused handshake is logged without -v, with the alert', async () => {
  const serve = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--psk-identity', 'alice', '--psk', '0x00112233445566778899aabbccddeeff'], /serving on coaps:\/\/127\.0\.0\.1:(\d+)/);
  try {
    const r = await coapsec(['get', `coaps://127.0.0.1:${serve.port}/hello`, '--psk-identity', 'alice', '--psk', 'wrong key', '--timeout', '5']);
    assert.equal(r.code, 6, r.stderr);
    const m = await serve.waitFor(/^.* DTLS handshake refused: .*$/m);
    assert.match(m[0], new RegExp(`^${ISO_TIME} 127\\.0\\.0\\.1:\\d+ DTLS handshake refused: .*alert`));
  } finally {
    await serve.stop();
  }
});

test('proxy -v logs the forwarded requests', async () => {
  const origin = await startDaemon(['serve', '--bind', '127.0.0.1:0'], SERVING);
  const proxy = await startDaemon(['proxy', '--bind', '127.0.0.1:0', '--forward', '--allow-destination', '127.0.0.1', '-v'], /proxy on coap:\/\/127\.0\.0\.1:(\d+)/);
  try {
    const r = await coapsec(['get', `coap://127.0.0.1:${origin.port}/hello`, '--proxy', `coap://127.0.0.1:${proxy.port}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match((await proxy.waitFor(/^.* 2\.05$/m))[0], new RegExp(`^${ISO_TIME} 127\\.0\\.0\\.1:\\d+ - none GET /hello 2\\.05$`));
  } finally {
    await proxy.stop();
    await origin.stop();
  }
});

test('trust-anchor -v --log-format json: its requests (identity, oscore) and its decisions', async () => {
  const dir = join(tmp, 'ta');
  mkdirSync(dir);
  const probe = await UdpTransport.bind({ host: '127.0.0.1', port: 0 });
  const port = probe.localAddress().port;
  await probe.close();
  const secret = randomBytes(16).toString('hex');
  const write = (name: string, value: unknown): string => {
    writeFileSync(join(dir, name), JSON.stringify(value), { mode: 0o600 });
    return join(dir, name);
  };
  write('ta-credentials.json', { stateDirectory: 'ta-state', recipients: { '01': { name: 'alice', context: { masterSecret: secret, senderId: 'ff' } } } });
  const alice = write('alice.json', { stateDirectory: 'alice-state', oscore: [{ match: `coap://127.0.0.1:${port}/*`, context: { masterSecret: secret, senderId: '01', recipientId: 'ff' } }] });
  const config = write('ta.json', { id: 'ta1', bind: `127.0.0.1:${port}`, credentials: 'ta-credentials.json', stateFile: 'ta-counters.json', resourceServers: { rs1: { key: randomBytes(16).toString('hex') } }, policy: { alice: ['rs1'] } });
  const ta = await startDaemon(['trust-anchor', '--config', config, '-v', '--log-format', 'json'], /trust anchor ta1 serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  try {
    const r = await coapsec(['ta-request', '--ta', `coap://127.0.0.1:${port}`, '--rs', 'rs1', '--credentials', alice, '--out', join(dir, 'cred.json')]);
    assert.equal(r.code, 0, r.stderr);
    const request = JSON.parse((await ta.waitFor(/\{[^\n]*"path":"\/ta\/dk"[^\n]*"code":"2\.05"[^\n]*\}/))[0]) as Record<string, unknown>;
    assert.equal(request['identity'], 'alice');
    assert.equal(request['protection'], 'oscore');
    assert.equal(request['method'], 'POST');
    const decision = JSON.parse((await ta.waitFor(/\{[^\n]*"event":"trust-anchor"[^\n]*\}/))[0]) as Record<string, unknown>;
    assert.match(String(decision['message']), /^ta: .*alice/);
  } finally {
    await ta.stop();
  }
});

test('--log-format other than text or json is a usage error', async () => {
  assertUsageError(await coapsec(['serve', '--bind', '127.0.0.1:0', '--log-format', 'xml']), /--log-format must be text or json/);
});
