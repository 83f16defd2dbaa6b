/**
 * CoAP over DTLS through the real stack on loopback: CoapServer.listen({dtls}) and CoapClient
 * with coaps:// URIs. Session reuse, idle timeout, session bounds, a cookie-less ClientHello
 * flood, identities in the handler's context, prompt failure of a failed handshake, X.509.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapClient } from '../src/client/client.js';
import { addDemoResources, largeText } from '../src/demo/resources.js';
import { CoapRequestError, SessionError } from '../src/exchange/errors.js';
import { CoapServer } from '../src/server/server.js';
import { DtlsClientTransport, DtlsServerTransport } from '../src/transport/dtls.js';
import { parseCertificates, validateChain } from '../src/dtls/index.js';
import { encodeClientHello, encodeHandshakeMessage, HandshakeType } from '../src/dtls/handshake-messages.js';
import { ContentType, encodeRecord, DTLS_1_2 } from '../src/dtls/record.js';
import { PKI_DIR } from './support/pki.js';
import { generatePrivateKey, generateKeyPairOn, CoseCurve } from '../src/cose/index.js';

const PSK = { identity: 'client-1', key: 'secret-key-1' };

async function pskServer(extra: Record<string, unknown> = {}): Promise<{ server: CoapServer; transport: DtlsServerTransport; uri: (p: string) => string }> {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, dtls: { psk: PSK, ...extra } });
  server.resource('/who', {
    GET: (req) => ({ code: ResponseCode.Content, payload: `${req.context.scheme} ${req.context.security?.mode} ${req.context.security?.identity} ${req.context.security?.cipherSuite}` }),
  });
  server.resource('/hello', { GET: () => ({ code: ResponseCode.Content, payload: 'hello' }) });
  const port = server.address().port;
  return { server, transport: server.endpoint.transport as DtlsServerTransport, uri: (p) => `coaps://127.0.0.1:${port}${p}` };
}

async function clientTransport(client: CoapClient): Promise<DtlsClientTransport> {
  return (await client.endpoint(4, 'coaps')).transport as DtlsClientTransport;
}

test('coaps GET with PSK: the handler sees scheme, mode, identity and suite', async () => {
  const s = await pskServer();
  const client = new CoapClient({ dtls: { psk: PSK } });
  try {
    const r = await client.get(s.uri('/who'));
    assert.equal(r.status, '2.05 Content');
    assert.equal(r.text(), 'coaps psk client-1 TLS_PSK_WITH_AES_128_CCM_8');
    assert.equal(r.context.scheme, 'coaps');
    assert.equal(r.context.security?.identity, 'client-1', 'the client sees the server identity too');
  } finally {
    await client.close();
    await s.server.close();
  }
});

test('session reuse: one handshake for many sequential and concurrent requests', async () => {
  const s = await pskServer();
  const client = new CoapClient({ dtls: { psk: PSK } });
  try {
    for (let i = 0; i < 5; i++) assert.equal((await client.get(s.uri('/hello'))).text(), 'hello');
    const all = await Promise.all(Array.from({ length: 20 }, () => client.get(s.uri('/hello'))));
    assert.ok(all.every((r) => r.text() === 'hello'));
    assert.equal(s.transport.stats().handshakesCompleted, 1);
    assert.equal(s.transport.stats().sessions, 1);
    assert.equal((await clientTransport(client)).stats().handshakesCompleted, 1);
  } finally {
    await client.close();
    await s.server.close();
  }
});

test('concurrent first requests queue behind one handshake', async () => {
  const s = await pskServer();
  const client = new CoapClient({ dtls: { psk: PSK } });
  try {
    const all = await Promise.all(Array.from({ length: 8 }, () => client.get(s.uri('/hello'))));
    assert.equal(all.length, 8);
    assert.equal(s.transport.stats().handshakesCompleted, 1);
  } finally {
    await client.close();
    await s.server.close();
  }
});

test('idle timeout closes the session with close_notify; the next request handshakes again', async () => {
  const s = await pskServer({ idleTimeoutMs: 5_000 });
  const client = new CoapClient({ dtls: { psk: PSK, idleTimeoutMs: 150 } });
  try {
    await client.get(s.uri('/hello'));
    const ct = await clientTransport(client);
    assert.equal(ct.stats().sessions, 1);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(ct.stats().sessions, 0, 'client dropped the idle session');
    // The server got close_notify and forgot the peer.
    assert.equal(s.transport.stats().sessions, 0, 'server saw close_notify');
    await client.get(s.uri('/hello'));
    assert.equal(s.transport.stats().handshakesCompleted, 2);
  } finally {
    await client.close();
    await s.server.close();
  }
});

test('client close() delivers close_notify: the server frees the session slot at once', async () => {
  // Regression: dgram's close() cancelled the close_notify still waiting for its address lookup,
  // so closed clients held server slots until the idle timeout and new clients were turned away.
  const s = await pskServer({ maxSessions: 2 });
  try {
    for (let i = 0; i < 6; i++) {
      const client = new CoapClient({ dtls: { psk: PSK } });
      assert.equal((await client.get(s.uri('/hello'), { timeout: 2000 })).text(), 'hello', `client ${i} got a session`);
      await client.close();
      const deadline = Date.now() + 1000;
      while (s.transport.stats().sessions > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.equal(s.transport.stats().sessions, 0, `the server forgot client ${i} after its close_notify`);
    }
    assert.equal(s.transport.stats().handshakesCompleted, 6);
  } finally {
    await s.server.close();
  }
});

test('server idle timeout forgets sessions', async () => {
  const s = await pskServer({ idleTimeoutMs: 150 });
  const client = new CoapClient({ dtls: { psk: PSK } });
  try {
    await client.get(s.uri('/hello'));
    assert.equal(s.transport.stats().sessions, 1);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(s.transport.stats().sessions, 0);
    // The client received close_notify and starts over transparently.
    assert.equal((await client.get(s.uri('/hello'))).text(), 'hello');
  } finally {
    await client.close();
    await s.server.close();
  }
});

test('server idle timeout counts from the latest datagram: steady traffic keeps the session past the first deadline', async () => {
  // The transport does not re-arm its timer per application datagram: the timer set for the
  // first deadline fires, finds newer activity and waits for the later one.
  const s = await pskServer({ idleTimeoutMs: 300 });
  const client = new CoapClient({ dtls: { psk: PSK } });
  try {
    for (let i = 0; i < 8; i++) {
      assert.equal((await client.get(s.uri('/hello'))).text(), 'hello');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(s.transport.stats().sessions, 1);
    assert.equal(s.transport.stats().handshakesCompleted, 1, 'one session for 8 requests over ~800 ms, longer than the idle timeout');
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(s.transport.stats().sessions, 0, 'closed once idle for longer than idleTimeoutMs');
  } finally {
    await client.close();
    await s.server.close();
  }
});

test('session bound: the server keeps at most maxSessions sessions', async () => {
  // Every client has the same PSK identity: its share is the whole table here (dtls-identity-share.test.ts).
  const s = await pskServer({ maxSessions: 2, maxSessionsPerIdentity: 2 });
  const clients = [0, 1, 2, 3].map(() => new CoapClient({ dtls: { psk: PSK } }));
  try {
    // Established sessions are not evicted: the first two succeed, the others get no session.
    await clients[0]!.get(s.uri('/hello'));
    await clients[1]!.get(s.uri('/hello'));
    const third = await clients[2]!.get(s.uri('/hello'), { timeout: 1500 }).then(
      () => 'ok',
      (e: Error) => e.name,
    );
    assert.equal(third, 'TimeoutError');
    assert.ok(s.transport.stats().sessions <= 2);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await s.server.close();
  }
});

test('session bound: a session idle for staleSessionMs makes room for a new client and gets close_notify', async () => {
  const s = await pskServer({ maxSessions: 1, staleSessionMs: 200 });
  const a = new CoapClient({ dtls: { psk: PSK } });
  const b = new CoapClient({ dtls: { psk: PSK } });
  try {
    await a.get(s.uri('/hello'));
    // A fresh session is not displaced: b is turned away while a's session is younger than 200 ms.
    const early = await b.get(s.uri('/hello'), { timeout: 100 }).then(
      () => 'ok',
      (e: Error) => e.name,
    );
    assert.equal(early, 'TimeoutError');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await b.get(s.uri('/hello'), { timeout: 3000 })).text(), 'hello', 'b got the stale slot');
    assert.equal(s.transport.stats().sessions, 1);
    const at = await clientTransport(a);
    const deadline = Date.now() + 1000;
    while (at.stats().sessions > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(at.stats().sessions, 0, 'a received close_notify and dropped its session');
  } finally {
    await a.close();
    await b.close();
    await s.server.close();
  }
});

test('client session bound: the least recently used session is closed for a new peer', async () => {
  const a = await pskServer();
  const b = await pskServer();
  const client = new CoapClient({ dtls: { psk: PSK, maxSessions: 1 } });
  try {
    await client.get(a.uri('/hello'));
    await client.get(b.uri('/hello'));
    const ct = await clientTransport(client);
    assert.equal(ct.stats().sessions, 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(a.transport.stats().sessions, 0, 'server a received close_notify');
  } finally {
    await client.close();
    await a.server.close();
    await b.server.close();
  }
});

test('last-peer fast paths: alternating peers each get their own session, on the client and the server', async () => {
  const second = { identity: 'client-2', key: 'secret-key-2' };
  const a = await pskServer({ psk: [PSK, second] });
  const b = await pskServer();
  const portOf = (s: { server: CoapServer }): string => String(s.server.address().port);
  for (const s of [a, b]) s.server.resource('/port', { GET: () => ({ code: ResponseCode.Content, payload: portOf(s) }) });
  const client = new CoapClient({ dtls: { psk: PSK } });
  const other = new CoapClient({ dtls: { psk: second } });
  try {
    for (let round = 0; round < 3; round++) {
      // The client transport alternates between two servers...
      assert.equal((await client.get(a.uri('/port'))).text(), portOf(a));
      assert.equal((await client.get(b.uri('/port'))).text(), portOf(b));
      // ...and server a between two clients, each seen with its own identity.
      const [mine, theirs] = await Promise.all([client.get(a.uri('/who')), other.get(a.uri('/who'))]);
      assert.match(mine.text(), / client-1 /);
      assert.match(theirs.text(), / client-2 /);
    }
    assert.equal((await clientTransport(client)).stats().handshakesCompleted, 2);
    assert.equal(a.transport.stats().handshakesCompleted, 2);
  } finally {
    await client.close();
    await other.close();
    await a.server.close();
    await b.server.close();
  }
});

test('close() delivers close_notify: the peer forgets the session at once (client and server)', async () => {
  const s = await pskServer();
  const client = new CoapClient({ dtls: { psk: PSK } });
  const other = new CoapClient({ dtls: { psk: PSK } });
  try {
    await client.get(s.uri('/hello'));
    await other.get(s.uri('/hello'));
    assert.equal(s.transport.stats().sessions, 2);
    await client.close();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(s.transport.stats().sessions, 1, 'the server got the closing client\'s close_notify');
    const ct = await clientTransport(other);
    assert.equal(ct.stats().sessions, 1);
    await s.server.close();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(ct.stats().sessions, 0, 'the client got the closing server\'s close_notify');
  } finally {
    await client.close();
    await other.close();
    await s.server.close();
  }
});

test('a flood of ClientHellos without cookies creates no state', async () => {
  const s = await pskServer();
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  let replies = 0;
  sock.on('message', () => replies++);
  try {
    for (let i = 0; i < 2000; i++) {
      const body = encodeClientHello({
        version: DTLS_1_2,
        random: Buffer.alloc(32, i & 0xff),
        sessionId: Buffer.alloc(0),
        cookie: Buffer.alloc(0),
        cipherSuites: [0xc0a8],
        compressionMethods: [0],
        extensions: [{ type: 23, data: Buffer.alloc(0) }],
      });
      const rec = encodeRecord({ type: ContentType.Handshake, version: DTLS_1_2, epoch: 0, seq: i, fragment: encodeHandshakeMessage(HandshakeType.ClientHello, 0, body) });
      sock.send(rec, s.server.address().port, '127.0.0.1');
      if (i % 200 === 199) await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(replies > 100, `HelloVerifyRequests answered (${replies})`);
    assert.equal(s.transport.stats().sessions, 0);
    assert.equal(s.transport.stats().handshaking, 0);
  } finally {
    sock.close();
    await s.server.close();
  }
});

test('garbage datagrams never break the server', async () => {
  const s = await pskServer();
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const client = new CoapClient({ dtls: { psk: PSK } });
  try {
    for (let i = 0; i < 300; i++) sock.send(Buffer.from(Array.from({ length: (i % 60) + 1 }, (_, j) => (i * 31 + j * 7) & 0xff)), s.server.address().port, '127.0.0.1');
    sock.send(Buffer.from([22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), s.server.address().port, '127.0.0.1');
    assert.equal((await client.get(s.uri('/hello'))).text(), 'hello');
  } finally {
    sock.close();
    await client.close();
    await s.server.close();
  }
});

test('a wrong PSK fails the request promptly with a SessionError naming the alert', async () => {
  const s = await pskServer();
  const client = new CoapClient({ dtls: { psk: { identity: 'client-1', key: 'wrong' } } });
  try {
    const started = performance.now();
    const error = await client.get(s.uri('/hello')).then(
      () => undefined,
      (e: Error) => e,
    );
    assert.ok(error instanceof SessionError, String(error));
    assert.ok(error instanceof CoapRequestError);
    assert.match(error.message, /bad_record_mac|decrypt_error/);
    assert.ok(performance.now() - started < 3000, 'failed within seconds, not after 93 s');
  } finally {
    await client.close();
    await s.server.close();
  }
});

test('an unknown PSK identity fails with unknown_psk_identity', async () => {
  const s = await pskServer();
  const client = new CoapClient({ dtls: { psk: { identity: 'nobody', key: 'x' } } });
  try {
    await assert.rejects(client.get(s.uri('/hello')), (e: Error) => e instanceof SessionError && /unknown_psk_identity/.test(e.message));
  } finally {
    await client.close();
    await s.server.close();
  }
});

test('coaps:// without DTLS credentials is a clear CoapRequestError', async () => {
  const client = new CoapClient();
  try {
    await assert.rejects(client.get('coaps://127.0.0.1:1/x'), /needs DTLS credentials/);
  } finally {
    await client.close();
  }
});

test('block-wise GET of /large and an observation over DTLS', async () => {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, dtls: { psk: PSK } });
  addDemoResources(server);
  const client = new CoapClient({ dtls: { psk: PSK } });
  const base = `coaps://127.0.0.1:${server.address().port}`;
  try {
    const r = await client.get(`${base}/large`, { blockSize: 256 });
    assert.equal(r.text(), largeText());
    const obs = await client.observe(`${base}/time`);
    let n = 0;
    for await (const note of obs) {
      assert.equal(note.status, '2.05 Content');
      if (++n >= 2) break;
    }
    await obs.cancel();
    assert.equal((server.endpoint.transport as DtlsServerTransport).stats().handshakesCompleted, 1);
  } finally {
    await client.close();
    await server.close();
  }
});

test('RPK: identity is the SHA-256 of the client SPKI; untrusted keys are refused', async () => {
  const sk = generateKeyPairOn(CoseCurve.P256);
  const ck = generateKeyPairOn(CoseCurve.P256);
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, dtls: { rpk: { privateKey: sk.privateKey, trustedPeerKeys: [ck.publicKey] } } });
  server.resource('/who', { GET: (req) => ({ code: ResponseCode.Content, payload: `${req.context.security?.mode} ${req.context.security?.identity}` }) });
  const uri = `coaps://127.0.0.1:${server.address().port}/who`;
  const good = new CoapClient({ dtls: { rpk: { privateKey: ck.privateKey, trustedPeerKeys: [sk.publicKey] } } });
  const bad = new CoapClient({ dtls: { rpk: { privateKey: generatePrivateKey(CoseCurve.P256), trustedPeerKeys: [sk.publicKey] } } });
  try {
    const spki = ck.publicKey.export({ type: 'spki', format: 'der' });
    assert.equal((await good.get(uri)).text(), `rpk ${createHash('sha256').update(spki).digest('hex')}`);
    await assert.rejects(bad.get(uri), (e: Error) => e instanceof SessionError && /bad_certificate/.test(e.message));
  } finally {
    await good.close();
    await bad.close();
    await server.close();
  }
});

// --- X.509 ----------------------------------------------------------------------------------

test('X.509: chain validation, host check, client certificates and the subject as identity', async () => {
  const dir = PKI_DIR;
  const { createPrivateKey } = await import('node:crypto');
  const cert = (n: string): X509Certificate[] => parseCertificates(readFileSync(join(dir, `${n}.pem`)));
  const key = (n: string) => createPrivateKey(readFileSync(join(dir, `${n}.key`)));
  const server = await CoapServer.listen({
    host: '127.0.0.1',
    port: 0,
    dtls: { x509: { certificates: [...cert('server'), ...cert('inter')], privateKey: key('server'), roots: cert('ca') } },
  });
  server.resource('/who', { GET: (req) => ({ code: ResponseCode.Content, payload: `${req.context.security?.mode}|${req.context.security?.identity}` }) });
  const port = server.address().port;
  const clients: CoapClient[] = [];
  const mk = (x509: ConstructorParameters<typeof CoapClient>[0]): CoapClient => {
    const c = new CoapClient(x509);
    clients.push(c);
    return c;
  };
  try {
    const good = mk({ dtls: { x509: { certificates: cert('client'), privateKey: key('client'), roots: cert('ca') } } });
    const r = await good.get(`coaps://127.0.0.1:${port}/who`);
    assert.equal(r.text(), 'x509|CN=client-1, O=coapsec');
    assert.equal(r.context.security?.identity, 'CN=localhost, O=coapsec');
    assert.equal((await good.get(`coaps://localhost:${port}/who`)).status, '2.05 Content', 'DNS name in the SAN');

    // Untrusted root on the client side.
    const wrongRoot = mk({ dtls: { x509: { certificates: cert('client'), privateKey: key('client'), roots: cert('other') } } });
    await assert.rejects(wrongRoot.get(`coaps://127.0.0.1:${port}/who`), /unknown_ca/);
    // No client certificate: the server requires one.
    const anonymous = mk({ dtls: { x509: { roots: cert('ca') } } });
    await assert.rejects(anonymous.get(`coaps://127.0.0.1:${port}/who`), SessionError);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
  }

  // A server whose intermediate is not a CA, and a host that does not match.
  const evil = await CoapServer.listen({
    host: '127.0.0.1',
    port: 0,
    dtls: { x509: { certificates: [...cert('evil'), ...cert('fake-inter')], privateKey: key('evil'), roots: [] } },
  });
  evil.resource('/x', { GET: () => ({ code: ResponseCode.Content }) });
  const plain = await CoapServer.listen({
    host: '127.0.0.1',
    port: 0,
    dtls: { x509: { certificates: cert('client'), privateKey: key('client'), roots: [] } },
  });
  plain.resource('/x', { GET: () => ({ code: ResponseCode.Content }) });
  const c = new CoapClient({ dtls: { x509: { roots: cert('ca') } } });
  try {
    await assert.rejects(c.get(`coaps://127.0.0.1:${evil.address().port}/x`), /not a CA/);
    // client.pem has SAN IP:127.0.0.1 / DNS:localhost: fine by IP …
    assert.equal((await c.get(`coaps://127.0.0.1:${plain.address().port}/x`)).status, '2.05 Content');
    // … and validateChain checks names, validity periods and roots.
    const chain = [...cert('server'), ...cert('inter')].map((x) => x.raw);
    assert.equal(validateChain(chain, cert('ca'), { now: Date.now(), host: 'localhost' }).subject, 'CN=localhost, O=coapsec');
    assert.throws(() => validateChain(chain, cert('ca'), { now: Date.now(), host: 'example.com' }), /does not match host/);
    assert.throws(() => validateChain(chain, cert('ca'), { now: Date.now(), host: '10.0.0.1' }), /does not match host/);
    assert.throws(() => validateChain(chain, cert('ca'), { now: Date.now() + 101 * 365 * 86_400_000 }), /certificate_expired/);
    assert.throws(() => validateChain(chain.slice(0, 1), cert('ca'), { now: Date.now() }), /unknown_ca/);
    assert.throws(() => validateChain([chain[0]!, cert('other')[0]!.raw], cert('ca'), { now: Date.now() }), /bad_certificate/);
  } finally {
    await c.close();
    await evil.close();
    await plain.close();
  }
});
