/**
 * CoAP over IP multicast (draft-ietf-core-groupcomm-bis §3) end to end: three `coapsec serve`
 * processes join a group in network namespaces of their own; `coapsec get` from a fourth sends one
 * NON request to the group and prints every answer labelled with its server's unicast address.
 * IPv4 224.0.1.187 and IPv6 ff05::fd, error suppression, a CON refused, Observe of a group.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupNet } from './support/group-netns.js';

const PORT = 5799;
const SERVERS = ['s1', 's2', 's3'];
const FIXTURE = new URL('./support/group-fixture.js', import.meta.url).pathname;

describe('CoAP over IP multicast, 1 client and 3 servers in network namespaces', () => {
  let net: GroupNet;

  before(async () => {
    net = new GroupNet(['c', ...SERVERS]);
    for (const s of SERVERS) {
      const h = net.host(s);
      await net.serve(s, ['--bind', `${h.v4}:${PORT}`, '--group-address', '224.0.1.187', '--leisure', '0.3']);
    }
  });

  after(async () => {
    await net?.stopChildren();
    net?.teardown();
  });

  test('one GET to 224.0.1.187 gets an answer from each server, labelled with its unicast address', async () => {
    const result = await net.run('c', ['get', `coap://224.0.1.187:${PORT}/hello`, '--timeout', '2']);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n').sort();
    assert.deepEqual(lines, SERVERS.map((s) => `${net.host(s).v4}:${PORT}: 2.05 Content Hello from coapsec`).sort());
  });

  test('errors to a group request are suppressed (§3.1.2): no 4.04 from anyone, while unicast gets its 4.04', async () => {
    const group = await net.run('c', ['get', `coap://224.0.1.187:${PORT}/nowhere`, '--timeout', '1.5']);
    assert.equal(group.stdout, '');
    assert.equal(group.code, 3, group.stderr);
    const unicast = await net.run('c', ['get', `coap://${net.host('s1').v4}:${PORT}/nowhere`, '--timeout', '2']);
    assert.equal(unicast.code, 4, unicast.stderr);
  });

  test('a CON sent to the group gets nothing back: no ACK, no RST, no response (RFC 7252 §8.1)', async () => {
    const result = await net.run('c', ['con', '224.0.1.187', String(PORT)], FIXTURE);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { datagrams: 0 });
  });

  test('Observe of a group: notifications from every server', async () => {
    const result = await net.run('c', ['get', `coap://224.0.1.187:${PORT}/time`, '--observe', '--timeout', '3']);
    const origins = new Map<string, number>();
    for (const line of result.stdout.trim().split('\n')) {
      const origin = line.split(': ')[0]!;
      origins.set(origin, (origins.get(origin) ?? 0) + 1);
    }
    assert.deepEqual([...origins.keys()].sort(), SERVERS.map((s) => `${net.host(s).v4}:${PORT}`).sort(), result.stdout);
    for (const [origin, count] of origins) assert.ok(count >= 2, `${origin}: ${count} notification(s)`);
  });
});

describe('CoAP over IPv6 multicast (ff05::fd)', () => {
  let net: GroupNet;

  before(async () => {
    net = new GroupNet(['c', ...SERVERS]);
    for (const s of SERVERS) {
      const h = net.host(s);
      await net.serve(s, ['--bind', `[${h.v6}]:${PORT}`, '--group-address', 'ff05::fd', '--group-interface', 'eth0', '--leisure', '0.3']);
    }
  });

  after(async () => {
    await net?.stopChildren();
    net?.teardown();
  });

  test('one GET to [ff05::fd] gets an answer from each server', async () => {
    const result = await net.run('c', ['get', `coap://[ff05::fd]:${PORT}/hello`, '--interface', 'eth0', '--timeout', '2']);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n').sort();
    assert.deepEqual(lines, SERVERS.map((s) => `[${net.host(s).v6}]:${PORT}: 2.05 Content Hello from coapsec`).sort());
  });
});
