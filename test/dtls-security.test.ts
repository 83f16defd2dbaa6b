import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { AlertDescription, CookieJar, DtlsClient, DtlsServerEngine, handshake, MAX_SEQUENCE, decodeRecords, encodeRecord } from '../src/dtls/index.js';
import { alertsOf, FakeClock, hasEvent, p256, PEER, pump } from './dtls-helpers.js';
import { AesCcm } from '../src/crypto/aes-ccm.js';
import { MAX_CIPHERTEXT } from '../src/dtls/record.js';

const IDENTITY = Buffer.from('id');
const KEY = Buffer.alloc(16, 0x33);

function connectedPair(clock = new FakeClock()) {
  const server = new DtlsServerEngine({ now: clock.now, pskStore: (id) => (id.equals(IDENTITY) ? KEY : undefined) });
  const client = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY } });
  pump(client, server, client.start());
  assert.equal(client.state, 'connected');
  return { clock, server, client };
}

test('tampered application record is dropped silently; connection survives', () => {
  const { server, client } = connectedPair();
  const rec = client.send(Buffer.from('secret'))[0]!;
  for (const i of [3, 10, 13, 20, rec.length - 1]) {
    const bad = Buffer.from(rec);
    bad[i]! ^= 0x40;
    const o = server.receive(bad, PEER);
    assert.deepEqual(o, { send: [], appData: [], events: [] }, `flip byte ${i}`);
  }
  assert.equal(server.connection(PEER)?.state, 'connected');
  assert.deepEqual(server.receive(rec, PEER).appData.map(String), ['secret']);
});

test('replayed application record is dropped', () => {
  const { server, client } = connectedPair();
  const rec = client.send(Buffer.from('once'))[0]!;
  assert.equal(server.receive(rec, PEER).appData.length, 1);
  assert.equal(server.receive(rec, PEER).appData.length, 0);
});

test('application data once connected: one record per datagram (fast path) and everything else (general path) agree', () => {
  const { server, client } = connectedPair();
  const [a] = client.send(Buffer.from('a'));
  const [b] = client.send(Buffer.from('bb'));
  const [empty] = client.send(Buffer.alloc(0));
  assert.deepEqual(server.receive(Buffer.concat([a!, b!]), PEER).appData.map(String), ['a', 'bb'], 'two records in one datagram');
  assert.deepEqual(server.receive(a!, PEER).appData, [], 'replayed after the general path accepted it');
  assert.deepEqual(server.receive(empty!, PEER), { send: [], appData: [], events: [] }, 'empty application data: nothing to deliver');
  const [c] = client.send(Buffer.from('ccc'));
  const wrongVersion = Buffer.from(c!);
  wrongVersion.writeUInt16BE(0xfeff, 1);
  assert.deepEqual(server.receive(wrongVersion, PEER).appData, [], 'DTLS 1.0 version in epoch 1');
  const trailing = Buffer.concat([c!, Buffer.from([1, 2, 3])]);
  assert.deepEqual(server.receive(trailing, PEER).appData.map(String), ['ccc'], 'a record followed by bytes that are no record');
  assert.deepEqual(server.receive(c!, PEER).appData, [], 'replay');
  const [d] = client.send(Buffer.from('d'));
  const epoch0 = encodeRecord({ type: 23, version: 0xfefd, epoch: 0, seq: 99, fragment: Buffer.from('plain') });
  assert.deepEqual(server.receive(epoch0, PEER).appData, [], 'unprotected application data');
  assert.deepEqual(server.receive(d!, PEER).appData.map(String), ['d']);
  const view = new Uint8Array(client.send(Buffer.from('view'))[0]!);
  assert.deepEqual(client.receive(server.send(PEER, Buffer.from('to client'))[0]!).appData.map(String), ['to client']);
  assert.deepEqual(server.receive(view, PEER).appData.map(String), ['view'], 'a Uint8Array, not a Buffer');
  assert.equal(server.connection(PEER)?.state, 'connected');
});

test('an application_data record over MAX_CIPHERTEXT is dropped before any decryption, on the fast path too (RFC 5246 §6.2.3)', () => {
  const { server, client } = connectedPair();
  const [real] = client.send(Buffer.from('x'));
  const oversize = Buffer.alloc(13 + MAX_CIPHERTEXT + 1, 0x5a);
  real!.copy(oversize, 0, 0, 11); // type, version, epoch 1 and a fresh sequence number of a real record
  oversize.writeUInt16BE(MAX_CIPHERTEXT + 1, 11);
  const original = AesCcm.prototype.openAt;
  let opened = 0;
  AesCcm.prototype.openAt = function (this: AesCcm, ...args: Parameters<AesCcm['openAt']>) {
    opened++;
    return original.apply(this, args);
  };
  try {
    assert.deepEqual(server.receive(oversize, PEER), { send: [], appData: [], events: [] });
    assert.equal(opened, 0, 'not decrypted');
    assert.deepEqual(server.receive(real!, PEER).appData.map(String), ['x'], 'its sequence number was not consumed');
    assert.equal(opened, 1);
  } finally {
    AesCcm.prototype.openAt = original;
  }
});

test('unauthenticated epoch-0 alert after the handshake is ignored', () => {
  const { server } = connectedPair();
  const forged = encodeRecord({ type: 21, version: 0xfefd, epoch: 0, seq: 1000, fragment: Buffer.from([2, 40]) });
  assert.deepEqual(server.receive(forged, PEER).events, []);
  assert.equal(server.connection(PEER)?.state, 'connected');
});

test('garbage input never throws and creates no state', () => {
  const clock = new FakeClock();
  const server = new DtlsServerEngine({ now: clock.now, pskStore: () => KEY });
  const { client } = connectedPair(clock);
  for (let i = 0; i < 2000; i++) {
    const len = i % 97;
    const d = randomBytes(len);
    if (i % 3 === 0 && len > 13) {
      // plausible record header
      d[0] = 20 + (i % 4);
      d[1] = 0xfe;
      d[2] = 0xfd;
      d.writeUInt16BE(len - 13, 11);
    }
    server.receive(d, `10.0.0.${i % 200}:1`);
    client.receive(d);
  }
  assert.equal(server.connectionCount, 0);
  assert.equal(client.state, 'connected');
});

test('cookie exchange precedes any server state', () => {
  const clock = new FakeClock();
  const server = new DtlsServerEngine({ now: clock.now, pskStore: () => KEY });
  const client = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY } });
  const ch = client.start();
  const o = server.receive(ch[0]!, PEER);
  assert.equal(server.connectionCount, 0, 'no state for a ClientHello without cookie');
  assert.equal(o.send.length, 1);
  const hvrRec = decodeRecords(o.send[0]!)[0]!;
  const chRec = decodeRecords(ch[0]!)[0]!;
  assert.equal(hvrRec.seq, chRec.seq, '§4.2.1 record sequence number mirrored');
  const hvr = handshake.decodeHandshakeFragments(hvrRec.fragment)[0]!;
  assert.equal(hvr.msgType, handshake.HandshakeType.HelloVerifyRequest);
  // Same ClientHello flooded from many addresses: still no state
  for (let i = 0; i < 100; i++) server.receive(ch[0]!, `198.51.100.${i}:5684`);
  assert.equal(server.connectionCount, 0);
  // CH2 with the cookie, but sent from another address: cookie invalid → another HVR, no state
  const ch2 = client.receive(o.send[0]!).send;
  const o2 = server.receive(ch2[0]!, '203.0.113.9:1234');
  assert.equal(server.connectionCount, 0);
  assert.equal(handshake.decodeHandshakeFragments(decodeRecords(o2.send[0]!)[0]!.fragment)[0]!.msgType, 3);
  // from the right address: state is created
  server.receive(ch2[0]!, PEER);
  assert.equal(server.connectionCount, 1);
});

test('cookie secret rotation: valid for one rotation period more, then rejected', () => {
  const clock = new FakeClock();
  const jar = new CookieJar({ now: clock.now, rotationMs: 1000 });
  const ch = { version: 0xfefd, random: randomBytes(32), sessionId: Buffer.alloc(0), cookie: Buffer.alloc(0), cipherSuites: [0xc0a8], compressionMethods: [0], extensions: [] };
  const cookie = jar.generate('a:1', ch);
  assert.ok(jar.verify('a:1', { ...ch, cookie }));
  assert.ok(!jar.verify('a:2', { ...ch, cookie }), 'bound to address');
  assert.ok(!jar.verify('a:1', { ...ch, cookie, cipherSuites: [0xc0ae] }), 'bound to parameters');
  assert.ok(!jar.verify('a:1', { ...ch, cookie: Buffer.from(cookie).fill(0, 0, 1) }), 'tampered');
  clock.advance(1000);
  assert.ok(jar.verify('a:1', { ...ch, cookie }), 'previous secret still accepted');
  clock.advance(1000);
  assert.ok(!jar.verify('a:1', { ...ch, cookie }), 'two rotations later: expired');
});

test('connection count is bounded; half-open handshakes are evicted first', () => {
  const clock = new FakeClock();
  const server = new DtlsServerEngine({ now: clock.now, pskStore: () => KEY, maxConnections: 3 });
  const clients: DtlsClient[] = [];
  for (let i = 0; i < 5; i++) {
    const c = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY } });
    clients.push(c);
    // complete cookie exchange, then drop the server's flight 4 so the handshake stays half-open
    pump(c, server, c.start(), { peer: `p${i}`, dropToClient: (n) => n >= 1 });
    assert.ok(server.connectionCount <= 3);
  }
  assert.equal(server.connectionCount, 3);
  assert.equal(server.connection('p0'), undefined, 'oldest half-open evicted');
  // fill with established connections; a new client is then refused
  // One PSK identity for every client: its share is the whole table here (the share has its own test).
  const server2 = new DtlsServerEngine({ now: clock.now, pskStore: () => KEY, maxConnections: 2, maxConnectionsPerIdentity: 2 });
  for (let i = 0; i < 2; i++) {
    const c = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY } });
    pump(c, server2, c.start(), { peer: `q${i}` });
    assert.equal(c.state, 'connected');
  }
  const late = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY } });
  pump(late, server2, late.start(), { peer: 'late' });
  assert.equal(late.state, 'handshaking');
  assert.equal(server2.connectionCount, 2);
});

test('a client reconnecting from the same address replaces the old association (§4.2.8)', () => {
  const { clock, server, client } = connectedPair();
  const old = server.connection(PEER);
  const again = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY } });
  const r = pump(again, server, again.start());
  assert.ok(hasEvent(r.clientEvents, 'connected'));
  assert.notEqual(server.connection(PEER), old);
  // the old client's records no longer decrypt: dropped silently
  assert.equal(server.receive(client.send(Buffer.from('x'))[0]!, PEER).appData.length, 0);
});

test('sequence numbers never wrap: sending refuses at 2^48-1', () => {
  const { client } = connectedPair();
  (client as unknown as { writeStates: Array<{ seq: number }> }).writeStates[1]!.seq = MAX_SEQUENCE - 1;
  const last = client.send(Buffer.from('last'));
  assert.equal(decodeRecords(last[0]!)[0]!.seq, MAX_SEQUENCE - 1);
  assert.throws(() => client.send(Buffer.from('one too many')));
});

test('extended master secret is required by default', () => {
  const clock = new FakeClock();
  const server = new DtlsServerEngine({ now: clock.now, pskStore: () => KEY, requireCookie: false });
  const client = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY } });
  const stripEms = (n: number, d: Buffer) => {
    if (n !== 0) return d;
    const rec = decodeRecords(d)[0]!;
    const f = handshake.decodeHandshakeFragments(rec.fragment)[0]!;
    const ch = handshake.decodeClientHello(f.body);
    ch.extensions = ch.extensions.filter((e) => e.type !== handshake.ExtensionType.ExtendedMasterSecret);
    return encodeRecord({ ...rec, fragment: handshake.encodeHandshakeMessage(1, f.messageSeq, handshake.encodeClientHello(ch)) });
  };
  const r = pump(client, server, client.start(), { mutateToServer: stripEms });
  assert.deepEqual(alertsOf(r.serverEvents, 'local'), [AlertDescription.HandshakeFailure]);
  assert.equal(client.state, 'failed');
  // a relaxed server still negotiates EMS whenever the client offers it
  const server2 = new DtlsServerEngine({ now: clock.now, pskStore: () => KEY, requireExtendedMasterSecret: false });
  const client2 = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY }, requireExtendedMasterSecret: false });
  pump(client2, server2, client2.start());
  assert.equal(client2.extendedMasterSecret, true);
});

test('Finished verify_data mismatch → decrypt_error', () => {
  // Tamper with the transcript only: strip extended_master_secret from the ClientHello on the way
  // (EMS off on both sides, so the keys still agree) — the peers then hash different
  // ClientHellos and the Finished check must catch it. This is the downgrade protection.
  const clock = new FakeClock();
  const server = new DtlsServerEngine({ now: clock.now, pskStore: () => KEY, requireCookie: false, requireExtendedMasterSecret: false });
  const client = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY }, requireExtendedMasterSecret: false });
  const r = pump(client, server, client.start(), {
    mutateToServer: (n, d) => {
      if (n !== 0) return d;
      const rec = decodeRecords(d)[0]!;
      const f = handshake.decodeHandshakeFragments(rec.fragment)[0]!;
      const ch = handshake.decodeClientHello(f.body);
      ch.extensions = ch.extensions.filter((e) => e.type !== handshake.ExtensionType.ExtendedMasterSecret);
      const body = handshake.encodeClientHello(ch);
      return encodeRecord({ ...rec, fragment: handshake.encodeHandshakeMessage(1, f.messageSeq, body) });
    },
  });
  assert.equal(client.state, 'failed');
  assert.equal(client.extendedMasterSecret, false);
  assert.deepEqual(alertsOf(r.serverEvents, 'local'), [AlertDescription.DecryptError]);
  assert.deepEqual(alertsOf(r.clientEvents, 'remote'), [AlertDescription.DecryptError]);
});

test('server requires the client to offer raw public keys → unsupported_certificate (43)', () => {
  const clock = new FakeClock();
  const sk = p256();
  const server = new DtlsServerEngine({ now: clock.now, rpk: { privateKey: sk.privateKey, trustedPeerKeys: [] }, requireCookie: false });
  const client = new DtlsClient({ now: clock.now, rpk: { privateKey: p256().privateKey, trustedPeerKeys: [sk.publicKey] } });
  const r = pump(client, server, client.start(), {
    mutateToServer: (n, d) => {
      if (n !== 0) return d;
      const rec = decodeRecords(d)[0]!;
      const f = handshake.decodeHandshakeFragments(rec.fragment)[0]!;
      const ch = handshake.decodeClientHello(f.body);
      ch.extensions = ch.extensions.filter((e) => e.type !== handshake.ExtensionType.ServerCertificateType);
      return encodeRecord({ ...rec, fragment: handshake.encodeHandshakeMessage(1, f.messageSeq, handshake.encodeClientHello(ch)) });
    },
  });
  assert.deepEqual(alertsOf(r.serverEvents, 'local'), [AlertDescription.UnsupportedCertificate]);
  assert.equal(client.state, 'failed');
});

test('idle established connections are closed after idleTimeoutMs', () => {
  const clock = new FakeClock();
  const server = new DtlsServerEngine({ now: clock.now, pskStore: () => KEY, idleTimeoutMs: 30_000 });
  const client = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY } });
  pump(client, server, client.start());
  assert.equal(server.connectionCount, 1);
  assert.equal(server.nextTimeout(), clock.t + 30_000);
  clock.advance(20_000);
  server.receive(client.send(Buffer.from('keepalive'))[0]!, PEER);
  assert.equal(server.nextTimeout(), clock.t + 30_000, 'activity pushes the deadline');
  clock.advance(30_000);
  const out = server.handleTimeout(clock.t);
  assert.equal(server.connectionCount, 0);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.closed, true);
  const o = client.receive(out[0]!.send[0]!);
  assert.ok(hasEvent(o.events, 'closed'), 'client sees close_notify');
});

test('mutation fuzz: corrupted handshake datagrams never throw out of receive', () => {
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const corrupt = (d: Buffer) => {
    const b = Buffer.from(d);
    const flips = 1 + rnd(3);
    for (let i = 0; i < flips; i++) b[rnd(b.length)] ^= 1 << rnd(8);
    return rnd(5) === 0 ? b.subarray(0, rnd(b.length)) : b;
  };
  const sk = p256();
  const ck = p256();
  const outcomes = new Map<string, number>();
  for (let iter = 0; iter < 200; iter++) {
    const clock = new FakeClock();
    const server = new DtlsServerEngine({
      now: clock.now,
      pskStore: () => KEY,
      rpk: { privateKey: sk.privateKey, trustedPeerKeys: [ck.publicKey] },
      requireClientAuth: iter % 4 === 0,
    });
    const client =
      iter % 2 === 0
        ? new DtlsClient({ now: clock.now, rpk: { privateKey: ck.privateKey, trustedPeerKeys: [sk.publicKey] } })
        : new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY } });
    const index = rnd(3);
    const opts =
      rnd(2) === 0
        ? { mutateToServer: (n: number, d: Buffer) => (n === index ? corrupt(d) : d) }
        : { mutateToClient: (n: number, d: Buffer) => (n === index ? corrupt(d) : d) };
    pump(client, server, client.start(), opts);
    for (let i = 0; i < 20 && client.state === 'handshaking'; i++) {
      const next = Math.min(client.nextTimeout() ?? Infinity, server.nextTimeout() ?? Infinity);
      if (!Number.isFinite(next)) break;
      clock.t = next;
      pump(client, server, client.handleTimeout(next));
      for (const { send } of server.handleTimeout(next)) for (const d of send) pump(client, server, client.receive(d).send);
    }
    outcomes.set(client.state, (outcomes.get(client.state) ?? 0) + 1);
    assert.notEqual(client.state, 'handshaking', 'every run terminates (connected or failed)');
  }
  assert.ok((outcomes.get('connected') ?? 0) > 0 && (outcomes.get('failed') ?? 0) >= 0);
});
