import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DtlsClient, DtlsServerEngine, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 } from '../src/dtls/index.js';
import { FakeClock, hasEvent, p256, PEER, pump, type PumpResult } from './dtls-helpers.js';

const IDENTITY = Buffer.from('id');
const KEY = Buffer.alloc(16, 0x5a);

function setup(clock: FakeClock) {
  const server = new DtlsServerEngine({ now: clock.now, pskStore: (id) => (id.equals(IDENTITY) ? KEY : undefined) });
  const client = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY } });
  return { server, client };
}

/** Fires due timers on both sides and pumps what they send, with the same drop rules. */
function tick(clock: FakeClock, client: DtlsClient, server: DtlsServerEngine, r: PumpResult, ms: number, opts: Parameters<typeof pump>[3] = {}): void {
  clock.advance(ms);
  const fromClient = client.handleTimeout(clock.t);
  pump(client, server, fromClient, opts, r);
  for (const { send } of server.handleTimeout(clock.t)) {
    // deliver the server's retransmissions to the client, then pump replies
    for (const d of send) {
      const n = r.toClient++;
      if (opts.dropToClient?.(n, d)) continue;
      const o = client.receive(d);
      r.clientEvents.push(...o.events);
      pump(client, server, o.send, opts, r);
    }
  }
}

// Datagram indices to the server: 0 = CH, 1 = CH+cookie, 2 = flight 5 (single datagram at default MTU)
// Datagram indices to the client: 0 = HVR, 1 = flight 4, 2 = flight 6

test('lost initial ClientHello: retransmitted after 1 s', () => {
  const clock = new FakeClock();
  const { server, client } = setup(clock);
  const start = clock.t;
  const r = pump(client, server, client.start(), { dropToServer: (n) => n === 0 });
  assert.equal(client.state, 'handshaking');
  assert.equal(client.nextTimeout(), start + 1000);
  assert.deepEqual(client.handleTimeout(start + 999), [], 'not yet due');
  tick(clock, client, server, r, 1000);
  assert.equal(client.state, 'connected');
});

test('lost client flight 5: client retransmits, handshake completes', () => {
  const clock = new FakeClock();
  const { server, client } = setup(clock);
  const r = pump(client, server, client.start(), { dropToServer: (n) => n === 2 });
  assert.equal(client.state, 'handshaking');
  assert.equal(server.connection(PEER)?.state, 'handshaking');
  tick(clock, client, server, r, 1000);
  assert.ok(hasEvent(r.clientEvents, 'connected'));
  assert.ok(hasEvent(r.serverEvents, 'connected'));
});

test('lost server flight 4: server retransmits on its own timer', () => {
  const clock = new FakeClock();
  const { server, client } = setup(clock);
  const r = pump(client, server, client.start(), { dropToClient: (n) => n === 1 });
  assert.equal(client.state, 'handshaking');
  const conn = server.connection(PEER)!;
  assert.equal(conn.nextTimeout(), clock.t + 1000);
  // the server's timer fires first (client's CH2 timer fires at the same time; both are fine)
  tick(clock, client, server, r, 1000);
  assert.equal(client.state, 'connected');
  assert.equal(conn.state, 'connected');
});

test('lost server final flight: client retransmits flight 5 and the server resends flight 6', () => {
  const clock = new FakeClock();
  const { server, client } = setup(clock);
  const r = pump(client, server, client.start(), { dropToClient: (n) => n === 2 });
  assert.equal(server.connection(PEER)?.state, 'connected');
  assert.equal(server.connection(PEER)?.nextTimeout(), undefined, 'server does not time its last flight');
  assert.equal(client.state, 'handshaking');
  const before = r.toClient;
  tick(clock, client, server, r, 1000);
  assert.equal(r.toClient, before + 1, 'exactly one retransmission of flight 6');
  assert.equal(client.state, 'connected');
});

test('retransmission timer doubles from 1 s up to 60 s, then the handshake fails', () => {
  const clock = new FakeClock();
  const client = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY }, maxRetransmissions: 9 });
  const t0 = clock.t;
  assert.equal(client.start().length, 1);
  const intervals: number[] = [];
  let last = t0;
  for (let i = 0; i < 9; i++) {
    const due = client.nextTimeout()!;
    intervals.push(due - last);
    clock.t = due;
    last = due;
    assert.equal(client.handleTimeout(due).length, 1, 'one ClientHello datagram');
  }
  assert.deepEqual(intervals, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  clock.t = client.nextTimeout()!;
  assert.deepEqual(client.handleTimeout(clock.t), []);
  assert.equal(client.state, 'failed');
  assert.match(client.failureReason ?? '', /timed out/);
  assert.equal(client.nextTimeout(), undefined);
});

test('server connections that never finish are removed after their retransmissions', () => {
  const clock = new FakeClock();
  const server = new DtlsServerEngine({ now: clock.now, pskStore: () => KEY, maxRetransmissions: 2 });
  const client = new DtlsClient({ now: clock.now, psk: { identity: IDENTITY, key: KEY } });
  // deliver CH, HVR, CH2; then the client goes silent
  pump(client, server, client.start(), { dropToClient: (n) => n >= 1 });
  assert.equal(server.connectionCount, 1);
  const closed: string[] = [];
  for (let i = 0; i < 5 && server.nextTimeout() !== undefined; i++) {
    clock.t = server.nextTimeout()!;
    for (const p of server.handleTimeout(clock.t)) if (p.closed) closed.push(p.peer);
  }
  assert.equal(server.connectionCount, 0);
  assert.deepEqual(closed, [PEER], 'removal reported once');
});

test('RPK handshake completes under 30% random datagram loss (seeded)', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const clock = new FakeClock();
    const sk = p256();
    const ck = p256();
    const common = { now: clock.now, maxRetransmissions: 12 };
    const server = new DtlsServerEngine({ ...common, rpk: { privateKey: sk.privateKey, trustedPeerKeys: [ck.publicKey] }, requireClientAuth: true });
    const client = new DtlsClient({ ...common, rpk: { privateKey: ck.privateKey, trustedPeerKeys: [sk.publicKey] }, cipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8] });
    let state = seed * 2654435761;
    const drop = () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 2 ** 32 < 0.3;
    };
    const opts = { dropToServer: drop, dropToClient: drop };
    const r = pump(client, server, client.start(), opts);
    for (let i = 0; i < 40 && client.state === 'handshaking'; i++) {
      const next = Math.min(client.nextTimeout() ?? Infinity, server.nextTimeout() ?? Infinity);
      assert.ok(Number.isFinite(next));
      tick(clock, client, server, r, next - clock.t, opts);
    }
    assert.equal(client.state, 'connected', `seed ${seed}: ${client.failureReason}`);
    // the server may still be waiting for a lost client Finished retransmission; the client is
    // connected, so the server must have sent its Finished
    assert.equal(server.connection(PEER)?.state, 'connected', `seed ${seed}`);
  }
});
