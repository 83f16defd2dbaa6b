/**
 * CoAP over DTLS through the full stack against Debian's libcoap, both directions:
 * `coapsec serve` (CoapServer + DtlsServerTransport) against coap-client-openssl/-gnutls, and
 * `coapsec get/observe coaps://` (CoapClient + DtlsClientTransport) against coap-server-openssl/
 * -gnutls, which serve DTLS on their port + 1. PSK, GnuTLS restricted to CCM_8, RPK (GnuTLS -M),
 * X.509 certificates (OpenSSL -c/-j/-C), block-wise and Observe over DTLS.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapClient } from '../src/client/client.js';
import { largeText } from '../src/demo/resources.js';
import { TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_GCM_SHA256 } from '../src/dtls/index.js';
import { CoapServer } from '../src/server/server.js';
import { PKI_DIR } from '../test/support/pki.js';
import { COAPSEC, HOST, ROOT, coapsec, run, stop, waitForCoapPing, which } from './support.js';
import { generatePrivateKey, CoseCurve } from '../src/cose/index.js';

const ID = 'coapsec-interop';
const KEY = 'interop-psk-secret';
const BIN = {
  clientOpenssl: which('coap-client-openssl'),
  clientGnutls: which('coap-client-gnutls'),
  serverOpenssl: which('coap-server-openssl'),
  serverGnutls: which('coap-server-gnutls'),
};

let dir = '';
const f = (name: string): string => join(dir, name);

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'coapsec-dtls-coap-'));
  cpSync(PKI_DIR, dir, { recursive: true });
  const k = (): string => generatePrivateKey(CoseCurve.P256).export({ type: 'sec1', format: 'pem' }) as string;
  writeFileSync(f('server-rpk.pem'), k(), { mode: 0o600 });
  writeFileSync(f('client-rpk.pem'), k(), { mode: 0o600 });
  writeFileSync(f('other-rpk.pem'), k(), { mode: 0o600 });
  // GnuTLS system-wide overrides: only PSK key exchange and AES-128-CCM-8 remain for (D)TLS.
  writeFileSync(
    f('gnutls-ccm8.config'),
    [
      '[overrides]',
      'tls-disabled-cipher = AES-128-GCM',
      'tls-disabled-cipher = AES-256-GCM',
      'tls-disabled-cipher = AES-128-CCM',
      'tls-disabled-cipher = AES-256-CCM',
      'tls-disabled-cipher = AES-256-CCM-8',
      'tls-disabled-cipher = CHACHA20-POLY1305',
      'tls-disabled-cipher = AES-128-CBC',
      'tls-disabled-cipher = AES-256-CBC',
      'tls-disabled-cipher = CAMELLIA-128-GCM',
      'tls-disabled-cipher = CAMELLIA-256-GCM',
      'tls-disabled-kx = ECDHE-PSK',
      'tls-disabled-kx = DHE-PSK',
      'tls-disabled-kx = RSA-PSK',
      '',
    ].join('\n'),
  );
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function need(t: TestContext, ...bins: Array<string | undefined>): boolean {
  if (bins.some((b) => b === undefined)) {
    t.skip('libcoap DTLS binaries not installed');
    return false;
  }
  return true;
}

/** Two consecutive free UDP ports on loopback (libcoap serves DTLS on port + 1). */
async function freePortPair(): Promise<number> {
  const bindable = (port: number): Promise<boolean> =>
    new Promise((resolve) => {
      const s = createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, HOST, () => s.close(() => resolve(true)));
    });
  for (let i = 0; i < 50; i++) {
    const port = 20000 + 2 * Math.floor(Math.random() * 20000);
    if ((await bindable(port)) && (await bindable(port + 1))) return port;
  }
  throw new Error('no free port pair');
}

interface Daemon {
  child: ChildProcess;
  port: number;
  output: () => string;
}

function spawnDaemon(command: string, args: string[], port: number, env: NodeJS.ProcessEnv = {}): Daemon {
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let text = '';
  child.stdout!.on('data', (b: Buffer) => (text += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (text += b.toString()));
  return { child, port, output: () => text };
}

/** `coapsec serve` with DTLS flags on a free port; resolves once it prints its coaps:// line. */
async function coapsecServe(flags: string[]): Promise<Daemon> {
  const port = await freePortPair();
  const d = spawnDaemon(process.execPath, [COAPSEC, 'serve', '--bind', `${HOST}:${port}`, ...flags], port);
  const started = Date.now();
  while (!/serving on coaps:\/\//.test(d.output())) {
    if (d.child.exitCode !== null || Date.now() - started > 10_000) {
      await stop(d.child);
      throw new Error(`coapsec serve did not start: ${d.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return d;
}

/** A libcoap server (DTLS on port + 1), ready once its plain UDP port answers a CoAP ping. */
async function libcoapServe(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const port = await freePortPair();
  const d = spawnDaemon(bin, ['-A', HOST, '-p', String(port), ...args], port, env);
  try {
    await waitForCoapPing(port, () => d.child.exitCode === null);
  } catch (error) {
    await stop(d.child);
    throw new Error(`${(error as Error).message}\n${d.output()}`);
  }
  return d;
}

function libcoapClient(bin: string, args: string[], env: NodeJS.ProcessEnv = {}, timeout = 20_000) {
  return runEnv(bin, ['-B', '5', ...args], env, timeout);
}

/** run() with extra environment variables. */
function runEnv(bin: string, args: string[], env: NodeJS.ProcessEnv, timeout: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  if (Object.keys(env).length === 0) return run(bin, args, { timeout });
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${bin} timed out\n${stdout}\n${stderr}`));
    }, timeout);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const PSK_SERVE = ['--psk-identity', ID, '--psk', KEY];
const PSK_CLIENT = ['--psk-identity', ID, '--psk', KEY];

// --- libcoap clients → coapsec serve ----------------------------------------------------------

for (const name of ['openssl', 'gnutls'] as const) {
  test(`PSK: coap-client-${name} GET and PUT → coapsec serve (coaps)`, { timeout: 60_000 }, async (t) => {
    const bin = name === 'openssl' ? BIN.clientOpenssl : BIN.clientGnutls;
    if (!need(t, bin)) return;
    const srv = await coapsecServe(PSK_SERVE);
    try {
      const uri = `coaps://${HOST}:${srv.port}`;
      const get = await libcoapClient(bin!, ['-m', 'get', '-u', ID, '-k', KEY, `${uri}/whoami`]);
      assert.match(get.stdout, new RegExp(`coaps psk ${ID} TLS_PSK_`), `${get.stdout}${get.stderr}\n${srv.output()}`);
      t.diagnostic(get.stdout.trim());
      const put = await libcoapClient(bin!, ['-m', 'put', '-u', ID, '-k', KEY, '-e', 'over dtls', `${uri}/echo`]);
      assert.match(put.stdout, /over dtls/, `${put.stdout}${put.stderr}`);
      const wrong = await libcoapClient(bin!, ['-m', 'get', '-u', ID, '-k', 'not-the-key', `${uri}/whoami`]);
      assert.doesNotMatch(wrong.stdout, /coaps psk/);
    } finally {
      await stop(srv.child);
    }
  });
}

test('PSK: coap-client-openssl block-wise GET /large and Observe /time over DTLS → coapsec serve', { timeout: 60_000 }, async (t) => {
  if (!need(t, BIN.clientOpenssl)) return;
  const srv = await coapsecServe(PSK_SERVE);
  try {
    const uri = `coaps://${HOST}:${srv.port}`;
    const out = f('large.out');
    await libcoapClient(BIN.clientOpenssl!, ['-m', 'get', '-u', ID, '-k', KEY, '-b', '256', '-o', out, `${uri}/large`]);
    assert.equal(readFileSync(out, 'utf8'), largeText());
    const obs = await libcoapClient(BIN.clientOpenssl!, ['-m', 'get', '-u', ID, '-k', KEY, '-s', '3', `${uri}/time`], {}, 20_000);
    // libcoap prints each notification's payload (an ISO timestamp) without a newline.
    const notes = obs.stdout.match(/T\d\d:\d\d:\d\dZ/g) ?? [];
    assert.ok(notes.length >= 2, `expected notifications, got: ${obs.stdout}${obs.stderr}`);
  } finally {
    await stop(srv.child);
  }
});

test('PSK: coap-client-gnutls restricted to CCM_8 by GNUTLS_SYSTEM_PRIORITY_FILE', { timeout: 60_000 }, async (t) => {
  if (!need(t, BIN.clientGnutls)) return;
  const env = { GNUTLS_SYSTEM_PRIORITY_FILE: f('gnutls-ccm8.config') };
  // Our server prefers GCM: without the file GnuTLS gets GCM, with it CCM_8, and a GCM-only server fails.
  const preferGcm = await CoapServer.listen({ host: HOST, port: 0, dtls: { psk: { identity: ID, key: KEY }, cipherSuites: [TLS_PSK_WITH_AES_128_GCM_SHA256, TLS_PSK_WITH_AES_128_CCM_8] } });
  const gcmOnly = await CoapServer.listen({ host: HOST, port: 0, dtls: { psk: { identity: ID, key: KEY }, cipherSuites: [TLS_PSK_WITH_AES_128_GCM_SHA256] } });
  for (const s of [preferGcm, gcmOnly]) {
    s.resource('/who', { GET: (req) => ({ code: ResponseCode.Content, payload: `suite ${req.context.security?.cipherSuite}` }) });
  }
  try {
    const args = (port: number): string[] => ['-m', 'get', '-u', ID, '-k', KEY, `coaps://${HOST}:${port}/who`];
    const free = await libcoapClient(BIN.clientGnutls!, args(preferGcm.address().port));
    assert.match(free.stdout, /suite TLS_PSK_WITH_AES_128_GCM_SHA256/, free.stdout + free.stderr);
    const restricted = await libcoapClient(BIN.clientGnutls!, args(preferGcm.address().port), env);
    assert.match(restricted.stdout, /suite TLS_PSK_WITH_AES_128_CCM_8/, restricted.stdout + restricted.stderr);
    const refused = await libcoapClient(BIN.clientGnutls!, args(gcmOnly.address().port), env);
    assert.doesNotMatch(refused.stdout, /suite/, 'the override took effect: no GCM left');
    t.diagnostic('GnuTLS overrides verified: GCM without the file, CCM_8 with it, nothing against a GCM-only server');
  } finally {
    await preferGcm.close();
    await gcmOnly.close();
  }
});

test('RPK: coap-client-gnutls -M → coapsec serve --rpk --trusted-rpk', { timeout: 60_000 }, async (t) => {
  if (!need(t, BIN.clientGnutls)) return;
  const srv = await coapsecServe(['--rpk', f('server-rpk.pem'), '--trusted-rpk', f('client-rpk.pem')]);
  try {
    const r = await libcoapClient(BIN.clientGnutls!, ['-m', 'get', '-M', f('client-rpk.pem'), `coaps://${HOST}:${srv.port}/whoami`]);
    assert.match(r.stdout, /coaps rpk [0-9a-f]{64} TLS_ECDHE_ECDSA_WITH_AES_128_/, `${r.stdout}${r.stderr}\n${srv.output()}`);
    t.diagnostic(r.stdout.trim());
    const untrusted = await libcoapClient(BIN.clientGnutls!, ['-m', 'get', '-M', f('other-rpk.pem'), `coaps://${HOST}:${srv.port}/whoami`]);
    assert.doesNotMatch(untrusted.stdout, /coaps rpk/);
  } finally {
    await stop(srv.child);
  }
});

test('X.509: coap-client-openssl -c -j -C → coapsec serve --cert --key --ca', { timeout: 60_000 }, async (t) => {
  if (!need(t, BIN.clientOpenssl)) return;
  const srv = await coapsecServe(['--cert', f('server-direct.pem'), '--key', f('server-direct.key'), '--ca', f('ca.pem')]);
  try {
    const r = await libcoapClient(BIN.clientOpenssl!, ['-m', 'get', '-c', f('client.pem'), '-j', f('client.key'), '-C', f('ca.pem'), `coaps://${HOST}:${srv.port}/whoami`]);
    assert.match(r.stdout, /coaps x509 CN=client-1, O=coapsec TLS_ECDHE_ECDSA_WITH_AES_128_/, `${r.stdout}${r.stderr}\n${srv.output()}`);
    t.diagnostic(r.stdout.trim());
    // A client certificate from an unrelated CA is refused.
    const other = await libcoapClient(BIN.clientOpenssl!, ['-m', 'get', '-c', f('other.pem'), '-j', f('other.key'), '-C', f('ca.pem'), `coaps://${HOST}:${srv.port}/whoami`]);
    assert.doesNotMatch(other.stdout, /coaps x509/);
  } finally {
    await stop(srv.child);
  }
});

// --- coapsec client → libcoap servers ---------------------------------------------------------

for (const name of ['openssl', 'gnutls'] as const) {
  test(`PSK: coapsec get/put coaps:// → coap-server-${name} -k KEY`, { timeout: 60_000 }, async (t) => {
    const bin = name === 'openssl' ? BIN.serverOpenssl : BIN.serverGnutls;
    if (!need(t, bin)) return;
    const srv = await libcoapServe(bin!, ['-k', KEY]);
    try {
      const uri = `coaps://${HOST}:${srv.port + 1}`;
      const r = await coapsec(['get', `${uri}/time`, ...PSK_CLIENT], { timeout: 20_000 });
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${srv.output()}`);
      assert.ok(r.stdout.trim().length > 0);
      const put = await coapsec(['put', `${uri}/example_data`, '--payload', 'dtls put', ...PSK_CLIENT], { timeout: 20_000 });
      assert.equal(put.code, 0, put.stderr);
      const back = await coapsec(['get', `${uri}/example_data`, ...PSK_CLIENT], { timeout: 20_000 });
      assert.equal(back.stdout.trim(), 'dtls put');
      // libcoap's servers drop our Finished silently (no alert), so only a deadline ends this.
      const wrong = await coapsec(['get', `${uri}/time`, '--psk-identity', ID, '--psk', 'wrong-key', '--timeout', '4'], { timeout: 20_000 });
      assert.equal(wrong.code, 3);
      t.diagnostic(`wrong key: ${wrong.stderr.trim()}`);
    } finally {
      await stop(srv.child);
    }
  });
}

test('PSK: coapsec → coap-server-gnutls restricted to CCM_8 by GNUTLS_SYSTEM_PRIORITY_FILE', { timeout: 60_000 }, async (t) => {
  if (!need(t, BIN.serverGnutls)) return;
  const srv = await libcoapServe(BIN.serverGnutls!, ['-k', KEY], { GNUTLS_SYSTEM_PRIORITY_FILE: f('gnutls-ccm8.config') });
  const clients: CoapClient[] = [];
  try {
    const uri = `coaps://${HOST}:${srv.port + 1}/time`;
    const gcm = new CoapClient({ dtls: { psk: { identity: ID, key: KEY }, cipherSuites: [TLS_PSK_WITH_AES_128_GCM_SHA256] } });
    const any = new CoapClient({ dtls: { psk: { identity: ID, key: KEY }, cipherSuites: [TLS_PSK_WITH_AES_128_GCM_SHA256, TLS_PSK_WITH_AES_128_CCM_8] } });
    clients.push(gcm, any);
    await assert.rejects(gcm.get(uri), /handshake_failure|alert/);
    const r = await any.get(uri);
    assert.equal(r.status, '2.05 Content');
    assert.equal(r.context.security?.cipherSuite, 'TLS_PSK_WITH_AES_128_CCM_8');
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await stop(srv.child);
  }
});

test('PSK: coapsec block-wise GET and observe over DTLS → coap-server-openssl', { timeout: 60_000 }, async (t) => {
  if (!need(t, BIN.serverOpenssl)) return;
  const srv = await libcoapServe(BIN.serverOpenssl!, ['-k', KEY]);
  try {
    const uri = `coaps://${HOST}:${srv.port + 1}`;
    // libcoap's server: a large PUT to /example_data, fetched back in 64-byte blocks.
    const body = 'x'.repeat(700) + 'end';
    const put = await coapsec(['put', `${uri}/example_data`, '--payload', body, '-b', '64', ...PSK_CLIENT], { timeout: 20_000 });
    assert.equal(put.code, 0, put.stderr);
    const get = await coapsec(['get', `${uri}/example_data`, '-b', '64', ...PSK_CLIENT], { timeout: 20_000 });
    assert.equal(get.stdout, body, get.stderr);
    const obs = await coapsec(['observe', `${uri}/time`, '--count', '2', ...PSK_CLIENT], { timeout: 20_000 });
    assert.equal(obs.code, 0, obs.stderr);
    assert.equal(obs.stdout.trim().split('\n').length, 2);
  } finally {
    await stop(srv.child);
  }
});

test('coapsec block-wise GET /large and observe /time over DTLS → coapsec serve', { timeout: 60_000 }, async () => {
  const srv = await coapsecServe(PSK_SERVE);
  try {
    const uri = `coaps://${HOST}:${srv.port}`;
    const get = await coapsec(['get', `${uri}/large`, '-b', '128', ...PSK_CLIENT], { timeout: 20_000 });
    assert.equal(get.stdout, largeText(), get.stderr);
    const obs = await coapsec(['observe', `${uri}/time`, '--count', '2', ...PSK_CLIENT], { timeout: 20_000 });
    assert.equal(obs.code, 0, obs.stderr);
    assert.equal(obs.stdout.trim().split('\n').length, 2);
  } finally {
    await stop(srv.child);
  }
});

test('RPK: coapsec get --rpk --trusted-rpk → coap-server-gnutls -M', { timeout: 60_000 }, async (t) => {
  if (!need(t, BIN.serverGnutls)) return;
  const srv = await libcoapServe(BIN.serverGnutls!, ['-M', f('server-rpk.pem')]);
  try {
    const uri = `coaps://${HOST}:${srv.port + 1}/time`;
    const r = await coapsec(['get', uri, '--rpk', f('client-rpk.pem'), '--trusted-rpk', f('server-rpk.pem')], { timeout: 20_000 });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${srv.output()}`);
    const untrusted = await coapsec(['get', uri, '--rpk', f('client-rpk.pem'), '--trusted-rpk', f('other-rpk.pem')], { timeout: 20_000 });
    assert.equal(untrusted.code, 6, "a refused handshake is a security failure");
    assert.match(untrusted.stderr, /bad_certificate/);
  } finally {
    await stop(srv.child);
  }
});

test('X.509: coapsec get --cert --key --ca → coap-server-openssl -c -j -C', { timeout: 60_000 }, async (t) => {
  if (!need(t, BIN.serverOpenssl)) return;
  const srv = await libcoapServe(BIN.serverOpenssl!, ['-c', f('server-direct.pem'), '-j', f('server-direct.key'), '-C', f('ca.pem')]);
  try {
    const uri = `coaps://${HOST}:${srv.port + 1}/time`;
    const r = await coapsec(['get', uri, '--cert', f('client.pem'), '--key', f('client.key'), '--ca', f('ca.pem')], { timeout: 20_000 });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${srv.output()}`);
    const wrongCa = await coapsec(['get', uri, '--cert', f('client.pem'), '--key', f('client.key'), '--ca', f('other.pem')], { timeout: 20_000 });
    assert.equal(wrongCa.code, 6, "a refused handshake is a security failure");
    assert.match(wrongCa.stderr, /unknown_ca/);
  } finally {
    await stop(srv.child);
  }
});
