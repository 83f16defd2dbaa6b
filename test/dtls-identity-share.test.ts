/**
 * One credential holder cannot fill the DTLS server's session table (issue 17 item 10): each
 * client identity holds at most its share of established connections; a handshake beyond it
 * closes that identity's least recently active connection, never another identity's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DtlsClient, DtlsServerEngine } from '../src/dtls/index.js';
import type { KeyObject } from 'node:crypto';
import { FakeClock, p256, pump } from './dtls-helpers.js';

const KEYS = new Map([
  ['mallory', Buffer.alloc(16, 0x11)],
  ['alice', Buffer.alloc(16, 0x22)],
  ['bob', Buffer.alloc(16, 0x33)],
]);

function connect(clock: FakeClock, server: DtlsServerEngine, identity: string, peer: string): DtlsClient {
  const client = new DtlsClient({ now: clock.now, psk: { identity: Buffer.from(identity), key: KEYS.get(identity)! } });
  pump(client, server, client.start(), { peer });
  return client;
}

test('one PSK identity from many addresses keeps at most its share; other identities still get in', () => {
  const clock = new FakeClock();
  const server = new DtlsServerEngine({ now: clock.now, pskStore: (id) => KEYS.get(id.toString()), maxConnections: 8, maxConnectionsPerIdentity: 3 });
  const mallory: DtlsClient[] = [];
  const displaced = [];
  for (let i = 0; i < 20; i++) {
    mallory.push(connect(clock, server, 'mallory', `10.0.0.66:${1000 + i}`));
    displaced.push(...server.takeDisplaced()); // as the transport takes them, after each datagram
    clock.advance(10);
    assert.ok(server.connectionCount <= 3, `after ${i + 1} handshakes: ${server.connectionCount} connections`);
  }
  assert.equal(server.connectionCount, 3);
  assert.deepEqual(server.peers().sort(), ['10.0.0.66:1017', '10.0.0.66:1018', '10.0.0.66:1019'], 'the newest three: a restarted client always gets in');
  assert.equal(displaced.length, 17, 'every displaced connection gets close_notify');
  assert.ok(displaced.every((d) => d.closed && d.send.length === 1));

  for (const [i, name] of ['alice', 'bob', 'alice', 'bob', 'alice'].entries()) {
    const c = connect(clock, server, name, `10.0.1.${i}:5684`);
    assert.equal(c.state, 'connected', `${name} #${i}`);
  }
  assert.equal(server.connectionCount, 8, 'the table is full, with three identities in it');
  assert.equal(mallory.filter((_, i) => server.connection(`10.0.0.66:${1000 + i}`) !== undefined).length, 3, 'mallory still has her share');
});

test('the least recently active connection of the identity is the one that goes', () => {
  const clock = new FakeClock();
  const server = new DtlsServerEngine({ now: clock.now, pskStore: (id) => KEYS.get(id.toString()), maxConnections: 8, maxConnectionsPerIdentity: 2 });
  const first = connect(clock, server, 'alice', 'a:1');
  clock.advance(10);
  connect(clock, server, 'alice', 'a:2');
  clock.advance(10);
  // a:1 is used after a:2 was made: a:2 is now the least recently active.
  server.receive(first.send(Buffer.from('ping'))[0]!, 'a:1');
  clock.advance(10);
  connect(clock, server, 'alice', 'a:3');
  assert.deepEqual(server.peers().sort(), ['a:1', 'a:3']);
});

test('default share: a quarter of the table', () => {
  const clock = new FakeClock();
  const server = new DtlsServerEngine({ now: clock.now, pskStore: (id) => KEYS.get(id.toString()), maxConnections: 8 });
  for (let i = 0; i < 6; i++) connect(clock, server, 'mallory', `m:${i}`);
  assert.equal(server.connectionCount, 2);
});

test('raw public keys: the key is the identity; clients without client authentication are not counted', () => {
  const clock = new FakeClock();
  const serverKey = p256();
  const mallory = p256();
  const alice = p256();
  const trusted = [mallory.publicKey, alice.publicKey];
  const rpkServer = (requireClientAuth: boolean) =>
    new DtlsServerEngine({ now: clock.now, rpk: { privateKey: serverKey.privateKey, trustedPeerKeys: trusted }, requireClientAuth, maxConnections: 8, maxConnectionsPerIdentity: 2 });
  const rpkClient = (key: { privateKey: KeyObject }) => new DtlsClient({ now: clock.now, rpk: { privateKey: key.privateKey, trustedPeerKeys: [serverKey.publicKey] } });
  const server = rpkServer(true);
  for (let i = 0; i < 5; i++) {
    const c = rpkClient(mallory);
    pump(c, server, c.start(), { peer: `m:${i}` });
    assert.equal(c.state, 'connected');
  }
  const a = rpkClient(alice);
  pump(a, server, a.start(), { peer: 'a:1' });
  assert.deepEqual(server.peers().sort(), ['a:1', 'm:3', 'm:4']);

  const anonymous = rpkServer(false);
  for (let i = 0; i < 5; i++) {
    const c = rpkClient(mallory);
    pump(c, anonymous, c.start(), { peer: `x:${i}` });
  }
  assert.equal(anonymous.connectionCount, 5, 'no client identity: only the table bounds them');
});
