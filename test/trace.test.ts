/**
 * Issue 28 item 3: the per-hop report from real captures of C → P → S on loopback (DTLS on each
 * hop, nested OSCORE), and the pcap files the captures are written to.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hopReport, renderHopReport, type NodeSecrets } from '../src/trace/hop-report.js';
import { encodePcap, ipv4UdpPacket } from '../src/trace/pcap.js';
import { runTrace } from '../src/trace/run.js';

test('pcap: classic header, LINKTYPE_RAW, IPv4 header with a valid checksum, UDP ports and length', () => {
  const d = { at: 1_700_000_000_123.456, from: { address: '10.0.0.2', port: 40000 }, to: { address: '10.0.0.3', port: 5684 }, payload: Buffer.from('abc') };
  const file = encodePcap([d]);
  assert.equal(file.readUInt32LE(0), 0xa1b2c3d4);
  assert.equal(file.readUInt16LE(4), 2);
  assert.equal(file.readUInt32LE(20), 101);
  assert.equal(file.readUInt32LE(24), 1_700_000_000);
  assert.equal(file.readUInt32LE(28), 123_456);
  const packet = file.subarray(40);
  assert.equal(file.readUInt32LE(32), packet.length);
  assert.deepEqual(packet, ipv4UdpPacket(d, 1));
  assert.equal(packet[0], 0x45);
  assert.equal(packet.readUInt16BE(2), 20 + 8 + 3);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += packet.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  assert.equal(sum, 0xffff, 'IPv4 header checksum');
  assert.deepEqual([...packet.subarray(12, 20)], [10, 0, 0, 2, 10, 0, 0, 3]);
  assert.equal(packet.readUInt16BE(20), 40000);
  assert.equal(packet.readUInt16BE(22), 5684);
  assert.equal(packet.readUInt16BE(24), 11);
  assert.equal(packet.subarray(28).toString(), 'abc');
  assert.throws(() => ipv4UdpPacket({ ...d, from: { address: '::1', port: 1 } }));
});

test('per-hop report: the proxy reads DTLS and its own layer, never the end-to-end layer; an observer sees only the handshake', async () => {
  const secrets: NodeSecrets[] = [];
  const run = await runTrace({ onSecret: (secret, node) => secrets.push({ secret, node }) });
  assert.equal(run.response, 'hello from the origin');
  const [cp, ps] = hopReport(run, secrets);
  assert.equal(cp!.leg, 'client-proxy');
  assert.equal(ps!.leg, 'proxy-server');
  for (const leg of [cp!, ps!]) {
    assert.match(leg.observer[0]!, /; 0 of them readable as CoAP$/);
    assert.match(leg.observer[1]!, /ClientHello.*ClientKeyExchange; PSK identity "(client|proxy)"/);
  }
  // C–P: DTLS (C, P) → the outer OSCORE message; C–P layer (C, P) → the request for P, with the
  // inner OSCORE option; C–S layer (C, S) → GET /hello.
  assert.deepEqual(cp!.layers.map((l) => [l.layer.split(' (')[0], l.readableBy.sort()]), [
    ['DTLS', ['client', 'proxy']],
    ['OSCORE C–P', ['client', 'proxy']],
    ['OSCORE C–S', ['client', 'server']],
  ]);
  assert.match(cp!.layers[0]!.reveals, /OSCORE kid 20/);
  assert.doesNotMatch(cp!.layers[1]!.reveals, /Uri-Path/);
  assert.match(cp!.layers[1]!.reveals, /Proxy-Scheme coaps.*OSCORE kid 5f/);
  assert.match(cp!.layers[2]!.reveals, /^code 0\.01, Uri-Path \/hello/);
  // P–S: DTLS (P, S) → the end-to-end OSCORE message, path hidden; C–S layer (C, S) → GET /hello.
  assert.deepEqual(ps!.layers.map((l) => [l.layer.split(' (')[0], l.readableBy.sort()]), [
    ['DTLS', ['proxy', 'server']],
    ['OSCORE C–S', ['client', 'server']],
  ]);
  assert.doesNotMatch(ps!.layers[0]!.reveals, /Uri-Path/);
  assert.match(ps!.layers[1]!.reveals, /^code 0\.01, Uri-Path \/hello$/);
  const table = renderHopReport([cp!, ps!]);
  assert.match(table, /^P \(proxy\) \| DTLS \+ OSCORE C–P \| DTLS$/m);
  assert.match(table, /^S \(server\) \| OSCORE C–S \| DTLS \+ OSCORE C–S$/m);
});

test('per-hop report: a session whose secret nobody reported stays opaque', async () => {
  const run = await runTrace();
  const reports = hopReport(run, []);
  for (const r of reports) assert.deepEqual(r.layers.map((l) => l.readableBy), [[]]);
});
