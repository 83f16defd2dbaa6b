/**
 * Interoperability of the sans-IO DTLS engine with Debian's libcoap (OpenSSL and GnuTLS builds)
 * over real UDP sockets on loopback. Every wait is bounded; child processes are killed on timeout.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KeyObject } from 'node:crypto';
import {
  DtlsClient,
  DtlsServerEngine,
  TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
  TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256,
  TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
  TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
  type DtlsClientOptions,
  type DtlsServerOptions,
} from '../src/dtls/index.js';
import { generateKeyPairOn, CoseCurve } from '../src/cose/index.js';

const BIN = {
  clientOpenssl: '/usr/bin/coap-client-openssl',
  clientGnutls: '/usr/bin/coap-client-gnutls',
  serverOpenssl: '/usr/bin/coap-server-openssl',
  serverGnutls: '/usr/bin/coap-server-gnutls',
};

const IDENTITY = 'coapsec-client';
const SECRET = 'interop-secret-key';
const HINT = 'coapsec-hint';

function missing(t: TestContext, ...bins: string[]): boolean {
  const absent = bins.filter((b) => !existsSync(b));
  if (absent.length) {
    t.skip(`libcoap binaries not installed: ${absent.join(', ')}`);
    return true;
  }
  return false;
}

interface RunResult {
  code: number | null;
  output: string;
  timedOut: boolean;
}

/** Runs a process to completion, killing it after `timeoutMs`. */
function run(bin: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, timedOut });
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: -1, output: output + String(e), timedOut });
    });
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => {
      child.kill('SIGKILL');
    }, 2000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function bind(port = 0): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(port, '127.0.0.1', () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

function closeSocket(s: Socket): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}

/** Finds a port P such that P and P+1 are free on 127.0.0.1 (libcoap's DTLS port is P+1). */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    try {
      const a = await bind(port);
      try {
        const b = await bind(port + 1);
        await closeSocket(b);
        await closeSocket(a);
        return port;
      } catch {
        await closeSocket(a);
      }
    } catch {
      /* try another */
    }
  }
  throw new Error('no free port pair');
}

// ---------------------------------------------------------------------------------------------
// Minimal byte-level CoAP (RFC 7252 §3) just for these tests.

/** Answers a CON GET with a piggybacked ACK 2.05 "hello dtls" (text/plain). */
function coapRespond(req: Buffer): Buffer | undefined {
  if (req.length < 4) return undefined;
  const ver = req[0]! >> 6;
  const type = (req[0]! >> 4) & 3;
  const tkl = req[0]! & 0x0f;
  if (ver !== 1 || type !== 0 || tkl > 8 || req[1] !== 0x01 || req.length < 4 + tkl) return undefined;
  const token = req.subarray(4, 4 + tkl);
  return Buffer.concat([
    Buffer.from([0x60 | tkl, 0x45, req[2]!, req[3]!]),
    token,
    Buffer.from([0xc0]), // Content-Format (12) = 0, text/plain
    Buffer.from([0xff]),
    Buffer.from('hello dtls'),
  ]);
}

function coapGet(messageId: number, token: Buffer, path: string[]): Buffer {
  const opts: Buffer[] = [];
  let prev = 0;
  for (const seg of path) {
    const v = Buffer.from(seg);
    const delta = 11 - prev;
    prev = 11;
    if (v.length >= 13) throw new Error('test helper: short segments only');
    opts.push(Buffer.from([(delta << 4) | v.length]), v);
  }
  return Buffer.concat([Buffer.from([0x40 | token.length, 0x01, messageId >> 8, messageId & 0xff]), token, ...opts]);
}

interface CoapResponse {
  type: number;
  code: number;
  messageId: number;
  token: Buffer;
  payload: Buffer;
}

function coapParse(b: Buffer): CoapResponse | undefined {
  if (b.length < 4) return undefined;
  const tkl = b[0]! & 0x0f;
  const token = b.subarray(4, 4 + tkl);
  const marker = b.indexOf(0xff, 4 + tkl);
  return {
    type: (b[0]! >> 4) & 3,
    code: b[1]!,
    messageId: b.readUInt16BE(2),
    token,
    payload: marker >= 0 ? b.subarray(marker + 1) : Buffer.alloc(0),
  };
}

// ---------------------------------------------------------------------------------------------
// Our server over a UDP socket

interface LossHooks {
  /** Return true to drop the n-th datagram we would send (0-based). */
  dropOut?: (n: number, d: Buffer) => boolean;
  /** Return true to drop the n-th datagram we received. */
  dropIn?: (n: number, d: Buffer) => boolean;
}

/** First record of a datagram is an epoch-0 handshake message of this type. */
function startsWithHandshake(d: Buffer, msgType: number): boolean {
  return d.length > 13 && d[0] === 22 && d.readUInt16BE(3) === 0 && d[13] === msgType;
}

async function startEngineServer(
  opts: Omit<DtlsServerOptions, 'now'>,
  hooks: LossHooks = {},
): Promise<{ port: number; engine: DtlsServerEngine; stop: () => Promise<void>; log: string[] }> {
  const sock = await bind(0);
  let nIn = 0;
  let nOut = 0;
  const rawSend = sock.send.bind(sock) as (d: Buffer, port: number, address: string) => void;
  const sendOut = (d: Buffer, port: number, address: string) => {
    if (hooks.dropOut?.(nOut++, d)) return;
    rawSend(d, port, address);
  };
  const engine = new DtlsServerEngine({ now: Date.now, ...opts });
  const log: string[] = [];
  sock.on('message', (msg, rinfo) => {
    if (hooks.dropIn?.(nIn++, msg)) return;
    const peer = `${rinfo.address}:${rinfo.port}`;
    const out = engine.receive(msg, peer);
    for (const d of out.send) sendOut(d, rinfo.port, rinfo.address);
    for (const e of out.events) {
      log.push(`${peer} ${JSON.stringify(e)}`);
      if (e.type === 'connected') {
        const c = engine.connection(peer);
        log.push(`${peer} suite=${c?.cipherSuite?.name} ems=${c?.extendedMasterSecret} identity=${c?.peerIdentity?.type}`);
      }
    }
    for (const app of out.appData) {
      const resp = coapRespond(app);
      if (resp) for (const d of engine.send(peer, resp)) sendOut(d, rinfo.port, rinfo.address);
    }
  });
  const timer = setInterval(() => {
    for (const { peer, send } of engine.handleTimeout(Date.now())) {
      const i = peer.lastIndexOf(':');
      for (const d of send) sendOut(d, Number(peer.slice(i + 1)), peer.slice(0, i));
    }
  }, 50);
  return {
    port: sock.address().port,
    engine,
    log,
    stop: async () => {
      clearInterval(timer);
      await closeSocket(sock);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Our client over a UDP socket: handshake, then one CoAP GET

async function engineClientGet(
  port: number,
  opts: Omit<DtlsClientOptions, 'now'>,
  path: string[],
  timeoutMs: number,
  hooks: LossHooks = {},
): Promise<{ response?: CoapResponse; client: DtlsClient; events: string[] }> {
  const sock = await bind(0);
  let nIn = 0;
  let nOut = 0;
  const client = new DtlsClient({ now: Date.now, initialTimeoutMs: 300, maxRetransmissions: 5, ...opts });
  const events: string[] = [];
  const token = Buffer.from([0xca, 0xfe, 0x01, 0x02]);
  const send = (ds: readonly Buffer[]) => {
    for (const d of ds) if (!hooks.dropOut?.(nOut++, d)) sock.send(d, port, '127.0.0.1');
  };
  try {
    return await new Promise((resolve) => {
      let done = false;
      const finish = (response?: CoapResponse) => {
        if (done) return;
        done = true;
        clearInterval(timer);
        clearTimeout(deadline);
        sock.removeAllListeners('message');
        if (response) send(client.close());
        resolve({ response, client, events });
      };
      const deadline = setTimeout(() => finish(), timeoutMs);
      const timer = setInterval(() => {
        send(client.handleTimeout(Date.now()));
        if (client.state === 'failed') finish();
      }, 25);
      sock.on('message', (msg) => {
        if (hooks.dropIn?.(nIn++, msg)) return;
        const out = client.receive(msg);
        send(out.send);
        for (const e of out.events) {
          events.push(JSON.stringify(e));
          if (e.type === 'connected') send(client.send(coapGet(0x2345, token, path)));
        }
        for (const app of out.appData) {
          const r = coapParse(app);
          if (r && r.messageId === 0x2345 && r.token.equals(token)) return finish(r);
        }
        if (client.state === 'failed') finish();
      });
      send(client.start());
    });
  } finally {
    await closeSocket(sock);
  }
}

async function startLibcoapServer(bin: string, args: string[]): Promise<{ port: number; child: ChildProcess; output: () => string }> {
  const port = await freePortPair();
  const child = spawn(bin, ['-A', '127.0.0.1', '-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  await new Promise((r) => setTimeout(r, 400)); // let it bind; the client retransmits anyway
  return { port, child, output: () => output };
}

/** Runs `body` against a libcoap server started with `args`, and stops the server whatever happens. */
async function withLibcoapServer<T>(bin: string, args: string[], body: (srv: { port: number; output: () => string }) => Promise<T>): Promise<T> {
  const srv = await startLibcoapServer(bin, args);
  try {
    return await body(srv);
  } finally {
    await stop(srv.child);
  }
}

function p256(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairOn(CoseCurve.P256);
}

// ---------------------------------------------------------------------------------------------
// libcoap client → our server (PSK)

for (const [name, bin] of [
  ['openssl', BIN.clientOpenssl],
  ['gnutls', BIN.clientGnutls],
] as const) {
  test(`interop: coap-client-${name} (PSK) → DtlsServerEngine`, { timeout: 30_000 }, async (t) => {
    if (missing(t, bin)) return;
    const srv = await startEngineServer({
      pskStore: (id) => (id.toString() === IDENTITY ? Buffer.from(SECRET) : undefined),
      identityHint: Buffer.from(HINT),
    });
    try {
      const r = await run(bin, ['-m', 'get', '-k', SECRET, '-u', IDENTITY, '-B', '5', `coaps://127.0.0.1:${srv.port}/hello`], 15_000);
      assert.ok(r.output.includes('hello dtls'), `coap-client output: ${r.output}\nserver events: ${srv.log.join('\n')}`);
      assert.ok(srv.log.some((l) => l.includes('identity=psk')));
      t.diagnostic(srv.log.filter((l) => l.includes('suite=')).join('; '));
    } finally {
      await srv.stop();
    }
  });
}

test('interop: coap-client-openssl with wrong PSK fails against DtlsServerEngine', { timeout: 30_000 }, async (t) => {
  if (missing(t, BIN.clientOpenssl)) return;
  const srv = await startEngineServer({ pskStore: (id) => (id.toString() === IDENTITY ? Buffer.from(SECRET) : undefined) });
  try {
    const r = await run(BIN.clientOpenssl, ['-m', 'get', '-k', 'not-the-key', '-u', IDENTITY, '-B', '3', `coaps://127.0.0.1:${srv.port}/hello`], 15_000);
    assert.ok(!r.output.includes('hello dtls'));
    assert.ok(!srv.log.some((l) => l.includes('"connected"')));
    assert.ok(srv.log.some((l) => l.includes('"description":20')), srv.log.join('\n'));
  } finally {
    await srv.stop();
  }
});

// libcoap client → our server (RPK; only the GnuTLS build supports RPK)

test('interop: coap-client-gnutls (RPK) → DtlsServerEngine', { timeout: 30_000 }, async (t) => {
  if (missing(t, BIN.clientGnutls)) return;
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-dtls-'));
  const sk = p256();
  const ck = p256();
  const pem = join(dir, 'client-rpk.pem');
  writeFileSync(pem, ck.privateKey.export({ type: 'sec1', format: 'pem' }) as string, { mode: 0o600 });
  const srv = await startEngineServer({
    rpk: { privateKey: sk.privateKey, trustedPeerKeys: [ck.publicKey] },
    requireClientAuth: true,
    cipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8],
  });
  try {
    const r = await run(BIN.clientGnutls, ['-m', 'get', '-M', pem, '-B', '5', `coaps://127.0.0.1:${srv.port}/hello`], 15_000);
    assert.ok(r.output.includes('hello dtls'), `coap-client output: ${r.output}\nserver events: ${srv.log.join('\n')}`);
    assert.ok(srv.log.some((l) => l.includes('identity=rpk')), srv.log.join('\n'));
    t.diagnostic(srv.log.filter((l) => l.includes('suite=')).join('; '));
  } finally {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('interop: coap-client-gnutls with an untrusted RPK is rejected (bad_certificate)', { timeout: 30_000 }, async (t) => {
  if (missing(t, BIN.clientGnutls)) return;
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-dtls-'));
  const pem = join(dir, 'client-rpk.pem');
  writeFileSync(pem, p256().privateKey.export({ type: 'sec1', format: 'pem' }) as string, { mode: 0o600 });
  const srv = await startEngineServer({
    rpk: { privateKey: p256().privateKey, trustedPeerKeys: [p256().publicKey] },
    requireClientAuth: true,
  });
  try {
    const r = await run(BIN.clientGnutls, ['-m', 'get', '-M', pem, '-B', '3', `coaps://127.0.0.1:${srv.port}/hello`], 15_000);
    assert.ok(!r.output.includes('hello dtls'));
    assert.ok(srv.log.some((l) => l.includes('"description":42')), srv.log.join('\n'));
  } finally {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// our client → libcoap server

for (const [name, bin] of [
  ['openssl', BIN.serverOpenssl],
  ['gnutls', BIN.serverGnutls],
] as const) {
  test(`interop: DtlsClient (PSK) → coap-server-${name}`, { timeout: 30_000 }, async (t) => {
    if (missing(t, bin)) return;
    await withLibcoapServer(bin, ['-k', SECRET, '-h', HINT], async (srv) => {
      const r = await engineClientGet(
        srv.port + 1,
        { psk: (hint) => (hint.toString() === HINT || hint.length === 0 ? { identity: Buffer.from(IDENTITY), key: Buffer.from(SECRET) } : undefined) },
        ['time'],
        10_000,
      );
      assert.ok(r.response, `no CoAP response; client state ${r.client.state} ${r.client.failureReason ?? ''} events ${r.events.join(' ')}\n${srv.output()}`);
      assert.equal(r.response.code, 0x45, '2.05 Content');
      t.diagnostic(`suite ${r.client.cipherSuite?.name}, EMS ${r.client.extendedMasterSecret}, payload ${r.response.payload.toString()}`);
    });
  });
}

test('interop: DtlsClient (PSK CCM_8 only) → coap-server-openssl', { timeout: 30_000 }, async (t) => {
  if (missing(t, BIN.serverOpenssl)) return;
  await withLibcoapServer(BIN.serverOpenssl, ['-k', SECRET, '-h', HINT], async (srv) => {
    const r = await engineClientGet(
      srv.port + 1,
      { psk: { identity: Buffer.from(IDENTITY), key: Buffer.from(SECRET) }, cipherSuites: [TLS_PSK_WITH_AES_128_CCM_8] },
      [],
      10_000,
    );
    assert.ok(r.response, `no response; ${r.client.state} ${r.client.failureReason ?? ''} ${r.events.join(' ')}\n${srv.output()}`);
    assert.equal(r.response.code, 0x45);
  });
});

test('interop: DtlsClient with wrong PSK fails against coap-server-openssl', { timeout: 30_000 }, async (t) => {
  if (missing(t, BIN.serverOpenssl)) return;
  await withLibcoapServer(BIN.serverOpenssl, ['-k', SECRET, '-h', HINT], async (srv) => {
    const r = await engineClientGet(srv.port + 1, { psk: { identity: Buffer.from(IDENTITY), key: Buffer.from('wrong') } }, [], 8_000);
    assert.equal(r.response, undefined);
    assert.notEqual(r.client.state, 'connected');
    t.diagnostic(`client state ${r.client.state} (${r.client.failureReason ?? ''}) events ${r.events.join(' ')}`);
  });
});

test('interop: DtlsClient (RPK) → coap-server-gnutls -M', { timeout: 30_000 }, async (t) => {
  if (missing(t, BIN.serverGnutls)) return;
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-dtls-'));
  const sk = p256();
  const pem = join(dir, 'server-rpk.pem');
  writeFileSync(pem, sk.privateKey.export({ type: 'sec1', format: 'pem' }) as string, { mode: 0o600 });
  const srv = await startLibcoapServer(BIN.serverGnutls, ['-M', pem]);
  try {
    const r = await engineClientGet(
      srv.port + 1,
      { rpk: { privateKey: p256().privateKey, trustedPeerKeys: [sk.publicKey] } },
      ['time'],
      10_000,
    );
    assert.ok(r.response, `no response; ${r.client.state} ${r.client.failureReason ?? ''} ${r.events.join(' ')}\n${srv.output()}`);
    assert.equal(r.response.code, 0x45);
    const asked = (r.client as unknown as { certificateRequested: boolean }).certificateRequested;
    t.diagnostic(`suite ${r.client.cipherSuite?.name}; server requested our RPK (CertificateVerify sent): ${asked}`);
  } finally {
    await stop(srv.child);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('interop: DtlsClient rejects coap-server-gnutls RPK it does not trust', { timeout: 30_000 }, async (t) => {
  if (missing(t, BIN.serverGnutls)) return;
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-dtls-'));
  const pem = join(dir, 'server-rpk.pem');
  writeFileSync(pem, p256().privateKey.export({ type: 'sec1', format: 'pem' }) as string, { mode: 0o600 });
  const srv = await startLibcoapServer(BIN.serverGnutls, ['-M', pem]);
  try {
    const r = await engineClientGet(srv.port + 1, { rpk: { privateKey: p256().privateKey, trustedPeerKeys: [p256().publicKey] } }, [], 8_000);
    assert.equal(r.response, undefined);
    assert.equal(r.client.state, 'failed');
    assert.ok(r.events.some((e) => e.includes('"description":42')), r.events.join(' '));
  } finally {
    await stop(srv.child);
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Suite matrix: our client forced to one suite against each libcoap server build.

const MATRIX: Array<{ bin: string; name: string; suite: number; mode: 'psk' | 'rpk'; expect: boolean }> = [];
for (const [name, bin] of [
  ['openssl', BIN.serverOpenssl],
  ['gnutls', BIN.serverGnutls],
] as const) {
  for (const suite of [
    TLS_PSK_WITH_AES_128_CCM_8,
    TLS_PSK_WITH_AES_128_GCM_SHA256,
    TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
  ]) {
    MATRIX.push({ bin, name, suite, mode: 'psk', expect: true });
  }
  // Neither OpenSSL 3.0 nor GnuTLS 3.7 implements RFC 8442's ECDHE_PSK CCM_8 suite: expect a clean
  // handshake_failure from the server (ECDHE_PSK is covered engine-to-engine only).
  MATRIX.push({ bin, name, suite: TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256, mode: 'psk', expect: false });
  if (name === 'gnutls') {
    for (const suite of [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]) MATRIX.push({ bin, name, suite, mode: 'rpk', expect: true });
  }
}

for (const m of MATRIX) {
  test(`interop matrix: DtlsClient suite 0x${m.suite.toString(16)} (${m.mode}) → coap-server-${m.name}`, { timeout: 30_000 }, async (t) => {
    if (missing(t, m.bin)) return;
    const dir = mkdtempSync(join(tmpdir(), 'coapsec-dtls-'));
    const sk = p256();
    const pem = join(dir, 'server-rpk.pem');
    writeFileSync(pem, sk.privateKey.export({ type: 'sec1', format: 'pem' }) as string, { mode: 0o600 });
    const srv = await startLibcoapServer(m.bin, m.mode === 'psk' ? ['-k', SECRET, '-h', HINT] : ['-M', pem]);
    try {
      const creds: Omit<DtlsClientOptions, 'now'> =
        m.mode === 'psk'
          ? { psk: { identity: Buffer.from(IDENTITY), key: Buffer.from(SECRET) } }
          : { rpk: { privateKey: p256().privateKey, trustedPeerKeys: [sk.publicKey] } };
      const r = await engineClientGet(srv.port + 1, { ...creds, cipherSuites: [m.suite] }, ['time'], 6_000);
      t.diagnostic(`result: ${r.response ? 'OK ' + r.client.cipherSuite?.name : 'FAIL ' + r.client.state + ' ' + (r.client.failureReason ?? '') + ' ' + r.events.join(' ')}`);
      if (m.expect) assert.equal(r.response?.code, 0x45);
      else {
        assert.equal(r.client.state, 'failed');
        assert.ok(r.events.some((e) => e.includes('"description":40')), r.events.join(' '));
      }
    } finally {
      await stop(srv.child);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

// Suite matrix: each libcoap client build against our server restricted to one suite.

const SERVER_MATRIX: Array<{ bin: string; name: string; suite: number; mode: 'psk' | 'rpk'; clientAuth?: boolean }> = [];
for (const [name, bin] of [
  ['openssl', BIN.clientOpenssl],
  ['gnutls', BIN.clientGnutls],
] as const) {
  for (const suite of [
    TLS_PSK_WITH_AES_128_CCM_8,
    TLS_PSK_WITH_AES_128_GCM_SHA256,
    // ECDHE_PSK key exchange is interop-tested through the ChaCha20 suite libcoap clients offer
    TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
  ])
    SERVER_MATRIX.push({ bin, name, suite, mode: 'psk' });
}
for (const suite of [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]) {
  for (const clientAuth of [true, false]) SERVER_MATRIX.push({ bin: BIN.clientGnutls, name: 'gnutls', suite, mode: 'rpk', clientAuth });
}

for (const m of SERVER_MATRIX) {
  const label = `${m.mode}${m.mode === 'rpk' ? (m.clientAuth ? ', client auth' : ', server auth only') : ''}`;
  test(`interop matrix: coap-client-${m.name} → DtlsServerEngine suite 0x${m.suite.toString(16)} (${label})`, { timeout: 30_000 }, async (t) => {
    if (missing(t, m.bin)) return;
    const dir = mkdtempSync(join(tmpdir(), 'coapsec-dtls-'));
    const sk = p256();
    const ck = p256();
    const pem = join(dir, 'client-rpk.pem');
    writeFileSync(pem, ck.privateKey.export({ type: 'sec1', format: 'pem' }) as string, { mode: 0o600 });
    const srv = await startEngineServer(
      m.mode === 'psk'
        ? { pskStore: (id) => (id.toString() === IDENTITY ? Buffer.from(SECRET) : undefined), cipherSuites: [m.suite] }
        : { rpk: { privateKey: sk.privateKey, trustedPeerKeys: [ck.publicKey] }, requireClientAuth: m.clientAuth, cipherSuites: [m.suite] },
    );
    try {
      const args = m.mode === 'psk' ? ['-k', SECRET, '-u', IDENTITY] : ['-M', pem];
      const r = await run(m.bin, ['-m', 'get', ...args, '-B', '5', `coaps://127.0.0.1:${srv.port}/hello`], 15_000);
      assert.ok(r.output.includes('hello dtls'), `coap-client output: ${r.output}\nserver events: ${srv.log.join('\n')}`);
      t.diagnostic(srv.log.filter((l) => l.includes('suite=')).join('; '));
    } finally {
      await srv.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Lost flights over real sockets

test('interop loss: coap-client-openssl drops its own datagram (-l 3); handshake recovers', { timeout: 30_000 }, async (t) => {
  if (missing(t, BIN.clientOpenssl)) return;
  const srv = await startEngineServer({ pskStore: (id) => (id.toString() === IDENTITY ? Buffer.from(SECRET) : undefined) });
  try {
    const r = await run(BIN.clientOpenssl, ['-m', 'get', '-k', SECRET, '-u', IDENTITY, '-l', '3', '-B', '10', `coaps://127.0.0.1:${srv.port}/hello`], 20_000);
    assert.ok(r.output.includes('hello dtls'), `${r.output}\n${srv.log.join('\n')}`);
  } finally {
    await srv.stop();
  }
});

for (const [name, bin] of [
  ['openssl', BIN.clientOpenssl],
  ['gnutls', BIN.clientGnutls],
] as const) {
  test(`interop loss: DtlsServerEngine's flight 4 and flight 6 lost once, coap-client-${name} still completes`, { timeout: 30_000 }, async (t) => {
    if (missing(t, bin)) return;
    let droppedSh = false;
    let droppedFin = false;
    const srv = await startEngineServer(
      { pskStore: (id) => (id.toString() === IDENTITY ? Buffer.from(SECRET) : undefined) },
      {
        dropOut: (_n, d) => {
          if (!droppedSh && startsWithHandshake(d, 2)) return (droppedSh = true);
          if (!droppedFin && d[0] === 20) return (droppedFin = true); // CCS + Finished datagram
          return false;
        },
      },
    );
    try {
      const r = await run(bin, ['-m', 'get', '-k', SECRET, '-u', IDENTITY, '-B', '15', `coaps://127.0.0.1:${srv.port}/hello`], 25_000);
      assert.ok(droppedSh && droppedFin);
      assert.ok(r.output.includes('hello dtls'), `${r.output}\n${srv.log.join('\n')}`);
    } finally {
      await srv.stop();
    }
  });

  const serverBin = name === 'openssl' ? BIN.serverOpenssl : BIN.serverGnutls;
  test(`interop loss: DtlsClient loses coap-server-${name}'s flight 4 and its own flight 5 once`, { timeout: 30_000 }, async (t) => {
    if (missing(t, serverBin)) return;
    const srv = await startLibcoapServer(serverBin, ['-k', SECRET, '-h', HINT]);
    let droppedIn = false;
    let droppedOut = false;
    try {
      const r = await engineClientGet(
        srv.port + 1,
        { psk: { identity: Buffer.from(IDENTITY), key: Buffer.from(SECRET) }, initialTimeoutMs: 1000 },
        ['time'],
        20_000,
        {
          dropIn: (_n, d) => !droppedIn && startsWithHandshake(d, 2) && (droppedIn = true),
          dropOut: (_n, d) => !droppedOut && startsWithHandshake(d, 16) && (droppedOut = true),
        },
      );
      assert.ok(droppedIn && droppedOut);
      assert.ok(r.response, `no response; ${r.client.state} ${r.client.failureReason ?? ''} ${r.events.join(' ')}\n${srv.output()}`);
      assert.equal(r.response.code, 0x45);
    } finally {
      await stop(srv.child);
    }
  });
}
