import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AlertDescription,
  DtlsClient,
  DtlsServerEngine,
  TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
  TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256,
  TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
  TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
  spkiOf,
} from '../src/dtls/index.js';
import { alertsOf, FakeClock, hasEvent, p256, PEER, pump } from './dtls-helpers.js';

const IDENTITY = Buffer.from('client-1');
const KEY = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');

function pskServer(clock: FakeClock, extra: Partial<ConstructorParameters<typeof DtlsServerEngine>[0]> = {}): DtlsServerEngine {
  return new DtlsServerEngine({
    now: clock.now,
    pskStore: (id) => (id.equals(IDENTITY) ? KEY : undefined),
    identityHint: Buffer.from('hint'),
    ...extra,
  });
}

for (const suite of [
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
  TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256,
  TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
  TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
]) {
  test(`PSK handshake and application data, suite 0x${suite.toString(16)}`, () => {
    const clock = new FakeClock();
    const server = pskServer(clock, { cipherSuites: [suite] });
    const client = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY }, cipherSuites: [suite], serverName: 'coap.example' });
    const r = pump(client, server, client.start());
    assert.ok(hasEvent(r.clientEvents, 'connected'), 'client connected');
    assert.ok(hasEvent(r.serverEvents, 'connected'), 'server connected');
    assert.equal(client.state, 'connected');
    assert.equal(client.cipherSuite?.id, suite);
    assert.equal(client.extendedMasterSecret, true);
    const conn = server.connection(PEER)!;
    assert.equal(conn.state, 'connected');
    assert.deepEqual(conn.peerIdentity, { type: 'psk', identity: IDENTITY });
    assert.equal(client.nextTimeout(), undefined, 'client timer stopped');
    assert.equal(conn.nextTimeout(), undefined, 'server timer stopped');

    // application data both ways
    const toServer = client.send(Buffer.from('ping'));
    const o1 = server.receive(toServer[0]!, PEER);
    assert.deepEqual(o1.appData.map(String), ['ping']);
    const toClient = server.send(PEER, Buffer.from('pong'));
    const o2 = client.receive(toClient[0]!);
    assert.deepEqual(o2.appData.map(String), ['pong']);

    // close_notify
    const bye = client.close();
    assert.equal(client.state, 'closed');
    const o3 = server.receive(bye[0]!, PEER);
    assert.ok(hasEvent(o3.events, 'closed'));
    assert.equal(server.connectionCount, 0);
  });
}

for (const suite of [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]) {
  for (const mutual of [false, true]) {
    test(`RPK handshake suite 0x${suite.toString(16)} ${mutual ? 'with' : 'without'} client authentication`, () => {
      const clock = new FakeClock();
      const sk = p256();
      const ck = p256();
      const server = new DtlsServerEngine({
        now: clock.now,
        rpk: { privateKey: sk.privateKey, trustedPeerKeys: [ck.publicKey] },
        requireClientAuth: mutual,
      });
      const client = new DtlsClient({
        now: clock.now,
        rpk: { privateKey: ck.privateKey, trustedPeerKeys: (spki) => spki.equals(spkiOf(sk.publicKey)) },
        cipherSuites: [suite],
      });
      const r = pump(client, server, client.start());
      assert.ok(hasEvent(r.clientEvents, 'connected'), JSON.stringify(r.clientEvents) + client.failureReason);
      assert.ok(hasEvent(r.serverEvents, 'connected'));
      assert.equal(client.peerIdentity?.type, 'rpk');
      assert.ok(client.peerIdentity?.type === 'rpk' && client.peerIdentity.spki.equals(spkiOf(sk.publicKey)));
      const peer = server.peerIdentity(PEER);
      if (mutual) assert.ok(peer?.type === 'rpk' && peer.spki.equals(spkiOf(ck.publicKey)));
      else assert.equal(peer, undefined);
      const o = server.receive(client.send(Buffer.from('x'))[0]!, PEER);
      assert.deepEqual(o.appData.map(String), ['x']);
    });
  }
}

test('server prefers its own suite order; client with PSK and RPK', () => {
  const clock = new FakeClock();
  const sk = p256();
  const server = new DtlsServerEngine({
    now: clock.now,
    pskStore: (id) => (id.equals(IDENTITY) ? KEY : undefined),
    rpk: { privateKey: sk.privateKey, trustedPeerKeys: [] },
    cipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CCM_8],
  });
  const client = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY }, rpk: { privateKey: p256().privateKey, trustedPeerKeys: [sk.publicKey] } });
  const r = pump(client, server, client.start());
  assert.ok(hasEvent(r.clientEvents, 'connected'));
  assert.equal(client.cipherSuite?.id, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8);
});

test('wrong PSK: both sides fail with an alert', () => {
  const clock = new FakeClock();
  const server = pskServer(clock);
  const client = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: Buffer.alloc(16, 7) } });
  const r = pump(client, server, client.start());
  assert.equal(client.state, 'failed');
  assert.ok(!hasEvent(r.serverEvents, 'connected'));
  assert.deepEqual(alertsOf(r.serverEvents, 'local'), [AlertDescription.BadRecordMac]);
  assert.deepEqual(alertsOf(r.clientEvents, 'remote'), [AlertDescription.BadRecordMac]);
  assert.equal(server.connectionCount, 0);
});

test('unknown PSK identity → unknown_psk_identity (115)', () => {
  const clock = new FakeClock();
  const server = pskServer(clock);
  const client = new DtlsClient({ now: clock.now, psk: { identity: Buffer.from('nobody'), key: KEY } });
  const r = pump(client, server, client.start());
  assert.equal(client.state, 'failed');
  assert.deepEqual(alertsOf(r.clientEvents, 'remote'), [115]);
});

test('untrusted server RPK → client sends bad_certificate', () => {
  const clock = new FakeClock();
  const server = new DtlsServerEngine({ now: clock.now, rpk: { privateKey: p256().privateKey, trustedPeerKeys: [] } });
  const client = new DtlsClient({ now: clock.now, rpk: { privateKey: p256().privateKey, trustedPeerKeys: [p256().publicKey] } });
  const r = pump(client, server, client.start());
  assert.equal(client.state, 'failed');
  assert.deepEqual(alertsOf(r.clientEvents, 'local'), [AlertDescription.BadCertificate]);
  assert.deepEqual(alertsOf(r.serverEvents, 'remote'), [AlertDescription.BadCertificate]);
  assert.equal(server.connectionCount, 0);
});

test('untrusted client RPK → server sends bad_certificate', () => {
  const clock = new FakeClock();
  const sk = p256();
  const server = new DtlsServerEngine({ now: clock.now, rpk: { privateKey: sk.privateKey, trustedPeerKeys: [p256().publicKey] }, requireClientAuth: true });
  const client = new DtlsClient({ now: clock.now, rpk: { privateKey: p256().privateKey, trustedPeerKeys: [sk.publicKey] } });
  const r = pump(client, server, client.start());
  assert.equal(client.state, 'failed');
  assert.deepEqual(alertsOf(r.serverEvents, 'local'), [AlertDescription.BadCertificate]);
  assert.deepEqual(alertsOf(r.clientEvents, 'remote'), [AlertDescription.BadCertificate]);
});

test('no shared suite → handshake_failure', () => {
  const clock = new FakeClock();
  const server = pskServer(clock, { cipherSuites: [TLS_PSK_WITH_AES_128_GCM_SHA256] });
  const client = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY }, cipherSuites: [TLS_PSK_WITH_AES_128_CCM_8] });
  const r = pump(client, server, client.start());
  assert.equal(client.state, 'failed');
  assert.deepEqual(alertsOf(r.clientEvents, 'remote'), [AlertDescription.HandshakeFailure]);
});

test('PSK chosen from the server identity hint', () => {
  const clock = new FakeClock();
  const server = pskServer(clock);
  const seen: string[] = [];
  const client = new DtlsClient({
    now: clock.now,
    psk: (hint) => {
      seen.push(hint.toString());
      return hint.toString() === 'hint' ? { identity: IDENTITY, key: KEY } : undefined;
    },
  });
  const r = pump(client, server, client.start());
  assert.ok(hasEvent(r.clientEvents, 'connected'));
  assert.deepEqual(seen, ['hint']);
});
