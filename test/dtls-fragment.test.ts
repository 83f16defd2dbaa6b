import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { DtlsClient, DtlsServerEngine, fragmentHandshake, HandshakeReassembler, handshake } from '../src/dtls/index.js';
import { FakeClock, hasEvent, p256, pump } from './dtls-helpers.js';

function frags(msgType: number, seq: number, body: Buffer, size: number) {
  return fragmentHandshake(msgType, seq, body, size).map((b) => handshake.decodeHandshakeFragments(b)[0]!);
}

test('fragmentHandshake splits into bounded fragments that cover the message', () => {
  const body = randomBytes(1000);
  const fs = fragmentHandshake(11, 3, body, 112);
  assert.ok(fs.length > 1);
  for (const f of fs) assert.ok(f.length <= 112);
  const parsed = fs.map((b) => handshake.decodeHandshakeFragments(b)[0]!);
  assert.deepEqual(Buffer.concat(parsed.map((p) => p.body)), body);
  assert.ok(parsed.every((p) => p.length === 1000 && p.messageSeq === 3 && p.msgType === 11));
  assert.equal(fragmentHandshake(14, 0, Buffer.alloc(0), 100).length, 1, 'empty message still sent');
});

test('reassembly with out-of-order and overlapping fragments', () => {
  const r = new HandshakeReassembler();
  const body = randomBytes(500);
  const parts = frags(11, 0, body, 62);
  const shuffled = [...parts].reverse();
  // overlapping fragment covering the middle
  shuffled.splice(2, 0, { msgType: 11, length: 500, messageSeq: 0, fragmentOffset: 100, fragmentLength: 150, body: body.subarray(100, 250) });
  for (let i = 0; i < shuffled.length; i++) {
    assert.equal(r.add(shuffled[i]!, 0), 'accepted');
    if (i < shuffled.length - 1) assert.equal(r.pop(), undefined, 'incomplete message must not pop');
  }
  const m = r.pop()!;
  assert.deepEqual(m.body, body);
  assert.equal(m.messageSeq, 0);
  assert.equal(r.nextReceiveSeq, 1);
  // a retransmitted fragment of message 0 is now a duplicate
  assert.equal(r.add(parts[0]!, 0), 'duplicate');
  assert.equal(r.pop(), undefined);
});

test('future messages are queued (bounded) and delivered in order', () => {
  const r = new HandshakeReassembler({ maxAhead: 4 });
  const m1 = frags(12, 1, Buffer.from('second'), 100)[0]!;
  const m0 = frags(2, 0, Buffer.from('first'), 100)[0]!;
  const far = frags(14, 4, Buffer.alloc(0), 100)[0]!;
  assert.equal(r.add(m1, 0), 'accepted');
  assert.equal(r.add(far, 0), 'dropped', 'beyond the queue window');
  assert.equal(r.pop(), undefined, 'seq 1 cannot overtake seq 0');
  assert.equal(r.add(m0, 0), 'accepted');
  assert.equal(r.pop()!.body.toString(), 'first');
  assert.equal(r.pop()!.body.toString(), 'second');
  assert.equal(r.pop(), undefined);
});

test('inconsistent fragments are dropped', () => {
  const r = new HandshakeReassembler({ maxMessageLength: 1000 });
  const a = { msgType: 11, length: 100, messageSeq: 0, fragmentOffset: 0, fragmentLength: 50, body: Buffer.alloc(50, 1) };
  assert.equal(r.add(a, 0), 'accepted');
  assert.equal(r.add({ ...a, length: 120, fragmentOffset: 50 }, 0), 'dropped', 'different total length');
  assert.equal(r.add({ ...a, msgType: 12, fragmentOffset: 50 }, 0), 'dropped', 'different type');
  assert.equal(r.add({ ...a, fragmentOffset: 50 }, 1), 'dropped', 'different epoch');
  assert.equal(r.add({ ...a, length: 5000 }, 0), 'dropped', 'too large');
  assert.equal(r.add({ ...a, fragmentOffset: 50, body: Buffer.alloc(50, 2) }, 0), 'accepted');
  assert.equal(r.pop()!.body.length, 100);
  assert.throws(() => handshake.decodeHandshakeFragments(Buffer.from([11, 0, 0, 10, 0, 0, 0, 0, 0, 8, 0, 0, 5, 1, 2, 3, 4, 5])));
});

test('engine handshake with a tiny MTU (fragmented RPK flights), datagrams of each flight reversed', () => {
  const clock = new FakeClock();
  const sk = p256();
  const ck = p256();
  const MTU = 110;
  const server = new DtlsServerEngine({ now: clock.now, mtu: MTU, rpk: { privateKey: sk.privateKey, trustedPeerKeys: [ck.publicKey] }, requireClientAuth: true });
  const client = new DtlsClient({ now: clock.now, mtu: MTU, rpk: { privateKey: ck.privateKey, trustedPeerKeys: [sk.publicKey] } });
  // deliver each batch reversed
  let toServer = client.start().reverse();
  let clientConnected = false;
  let serverConnected = false;
  let maxSize = 0;
  let fragmentedDatagrams = 0;
  // ClientHello datagrams are exempt (never fragmented, see connection.ts)
  const isClientHello = (d: Buffer) => d[0] === 22 && d[13] === 1;
  const measure = (d: Buffer) => {
    if (!isClientHello(d)) maxSize = Math.max(maxSize, d.length);
    if (d[0] === 22 && d.length > 25 && d.readUIntBE(13 + 6, 3) !== 0) fragmentedDatagrams++;
  };
  for (let round = 0; round < 20 && (toServer.length > 0); round++) {
    const toClient: Buffer[] = [];
    for (const d of toServer) {
      measure(d);
      const o = server.receive(d, 'p');
      serverConnected ||= hasEvent(o.events, 'connected');
      toClient.push(...o.send);
    }
    toServer = [];
    for (const d of toClient.reverse()) {
      measure(d);
      const o = client.receive(d);
      clientConnected ||= hasEvent(o.events, 'connected');
      toServer.push(...o.send);
    }
    toServer.reverse();
  }
  assert.ok(maxSize <= MTU, `datagram of ${maxSize} bytes exceeds MTU`);
  assert.ok(fragmentedDatagrams > 0, 'some handshake messages were fragmented');
  assert.ok(serverConnected && clientConnected, `client ${client.state} ${client.failureReason}`);
});

test('handshake with PSK and MTU small enough to fragment ClientKeyExchange', () => {
  const clock = new FakeClock();
  const id = Buffer.alloc(100, 0x41);
  const key = Buffer.alloc(16, 1);
  const server = new DtlsServerEngine({ now: clock.now, mtu: 80, pskStore: (i) => (i.equals(id) ? key : undefined) });
  const client = new DtlsClient({ now: clock.now, mtu: 80, psk: { identity: id, key } });
  const r = pump(client, server, client.start());
  assert.ok(hasEvent(r.clientEvents, 'connected'));
});
