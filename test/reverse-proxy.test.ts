/**
 * The reverse proxy (src/proxy/reverse-proxy.ts) on the lockstep multi-node network: what each leg
 * carries. Block-wise with independent sizes per leg and one ETag/Size2 downstream (RFC 7959
 * §2.4, §2.10), end-to-end OSCORE passing through with outer block-wise (RFC 8613 §4.1.3.4.2),
 * the proxy's own OSCORE layer towards the origin with block-wise (draft-ietf-core-oscore-capable-
 * proxies §2.3), Observe fan-out (RFC 7641 §5) and link-format under the mount (RFC 6690).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readBlockOption } from '../src/coap/block.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { parseLinkFormat } from '../src/coap/link-format.js';
import { EMPTY_BYTES, bytesEqual, decodeString, getOption, getUintOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { parseCoapUri } from '../src/coap/uri.js';
import { blockwiseRequest } from '../src/client/blockwise.js';
import { Observation } from '../src/client/observe.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { RouteSecurity } from '../src/client/route.js';
import { PLAIN, securedSender, type MessageSecurity } from '../src/client/security.js';
import { addDemoResources, largeText } from '../src/demo/resources.js';
import { ReverseProxy, type ReverseMapping } from '../src/proxy/reverse-proxy.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';
import { msg, pair, path } from './support/oscore-layers.js';

const ORIGIN = { address: '10.0.0.1', port: 5683 };
const CLIENT = { address: '10.0.0.2', port: 40000 };
const PROXY = { address: '10.0.0.3', port: 5683 };
const MOUNT = '/dev1';

function world(options: { originSecurity?: OscoreServerSecurity; mapping?: Partial<ReverseMapping> } = {}) {
  const net = new FakeNetwork();
  const origin = new CoapServer(net.endpoint(ORIGIN, {}, 1), options.originSecurity ? { security: options.originSecurity } : {});
  addDemoResources(origin, { tick: false });
  let temperature = 20;
  origin.resource('/temp', { GET: () => ({ code: ResponseCode.Content, payload: String(temperature) }) }, { observable: true });
  const proxyServer = new CoapServer(net.endpoint(PROXY, {}, 3));
  const upstream = net.endpoint({ address: PROXY.address, port: 40001 }, { nstart: 64 }, 4);
  const proxy = new ReverseProxy(proxyServer, { upstream: { endpoint: async () => upstream }, mappings: [{ prefix: MOUNT, target: `coap://${ORIGIN.address}:${ORIGIN.port}/`, ...options.mapping }] });
  const client = net.endpoint(CLIENT, { nstart: 64 }, 2);
  const sender = (security: MessageSecurity = PLAIN, outerSzx?: number) => securedSender(client, PROXY, security, {}, outerSzx);
  /** What went from one node to another, by address (the proxy's upstream leg has a port of its own), empty ACKs left out. */
  const leg = (from: { address: string }, to: { address: string }) =>
    net.log.filter((d) => d.from.address === from.address && d.to.address === to.address && d.message.code !== 0).map((d) => d.message);
  const setTemperature = (t: number) => {
    temperature = t;
    origin.changed('/temp');
  };
  return { net, origin, proxyServer, proxy, client, sender, leg, setTemperature };
}

const BODY = Buffer.from(Array.from({ length: 3000 }, (_, i) => 97 + ((i * 7) % 26)));

test('Block2: 16-byte blocks downstream, 1024-byte blocks upstream, one ETag and Size2 for the client', async () => {
  const w = world();
  const r = await w.net.until(blockwiseRequest(w.sender(), msg(Method.GET, path('dev1', 'large')), { szx: 0, maxBodySize: 1 << 20, maxRestarts: 0 }));
  assert.equal(decodeString(r.message.payload), largeText());
  const down = w.leg(PROXY, CLIENT);
  assert.equal(down.length, 512, 'every 16-byte block from the proxy');
  const etag = getOption(down[0]!, OptionNumber.ETag)!;
  assert.ok(down.every((m) => bytesEqual(getOption(m, OptionNumber.ETag)!, etag)), 'one ETag for every block (§2.4)');
  assert.equal(getUintOption(down[0]!, OptionNumber.Size2), 8192, 'Size2 with block 0 (§4)');
  const up = w.leg(PROXY, ORIGIN);
  assert.equal(up.length, 8, 'the origin served its own 1024-byte blocks, once');
  assert.deepEqual(up.map((m) => readBlockOption(m, OptionNumber.Block2)?.num ?? 0), [0, 1, 2, 3, 4, 5, 6, 7]);
});

test('Block1: a 3000-byte POST in 16-byte blocks reaches the origin whole, in its own blocks', async () => {
  const w = world();
  const r = await w.net.until(blockwiseRequest(w.sender(), msg(Method.POST, path('dev1', 'echo'), BODY), { szx: 0, maxBodySize: 1 << 20, maxRestarts: 0 }));
  assert.equal(r.message.code, ResponseCode.Changed);
  assert.deepEqual(Buffer.from(r.message.payload), BODY);
  const down = w.leg(CLIENT, PROXY).filter((m) => getOption(m, OptionNumber.Block1) !== undefined);
  assert.equal(down.length, Math.ceil(3000 / 16));
  const answers = w.leg(PROXY, CLIENT);
  assert.ok(answers.slice(0, down.length - 1).every((m) => m.code === ResponseCode.Continue), '2.31 for every block but the last');
  assert.equal(readBlockOption(answers[down.length - 1]!, OptionNumber.Block1)?.num, down.length - 1, 'the final answer acknowledges the last block (§2.3)');
  assert.equal(answers.length - down.length, Math.ceil(3000 / 16) - 1, 'the echoed body came back in 16-byte Block2 blocks too');
  const up = w.leg(PROXY, ORIGIN);
  assert.deepEqual(up.map((m) => readBlockOption(m, OptionNumber.Block1)?.num ?? `2:${readBlockOption(m, OptionNumber.Block2)?.num}`), [0, 1, 2, '2:1', '2:2'], 'upstream in the origin\'s 1024-byte blocks, the echo fetched whole once');
});

test('a Block1 block out of order gets 4.08 from the proxy itself (RFC 7959 §2.3)', async () => {
  const w = world();
  const stray = msg(Method.POST, path('dev1', 'echo'), BODY.subarray(0, 16));
  stray.options.push({ number: OptionNumber.Block1, value: Uint8Array.of((3 << 4) | 0x08) });
  const r = await w.net.until(w.sender()(stray));
  assert.equal(r.message.code, ResponseCode.RequestEntityIncomplete);
  assert.equal(w.leg(PROXY, ORIGIN).length, 0);
});

test('end-to-end OSCORE through the mount: ciphertext untouched, outer blocks on both legs', async () => {
  const cs = pair('C-S', 0x5f, 0x01);
  const w = world({ originSecurity: new OscoreServerSecurity([cs.receiver]) });
  const route = new RouteSecurity(parseCoapUri(`coap://${ORIGIN.address}/large`), [{ uri: `coap://${PROXY.address}${MOUNT}`, kind: 'reverse' }], new OscoreClientSecurity(cs.sender));
  // Inner Block2 at 512 bytes; the protected responses (≈ 530 bytes) in outer 64-byte blocks.
  const r = await w.net.until(blockwiseRequest(w.sender(route, 2), msg(Method.GET, path('large')), { szx: 5, maxBodySize: 1 << 20, maxRestarts: 0 }));
  assert.equal(decodeString(r.message.payload), largeText());
  const toProxy = w.leg(CLIENT, PROXY).filter((m) => (readBlockOption(m, OptionNumber.Block2)?.num ?? 0) === 0);
  const toOrigin = w.leg(PROXY, ORIGIN);
  assert.equal(toOrigin.length, toProxy.length, 'one upstream request per protected request: the outer blocks came from the proxy');
  for (let i = 0; i < toOrigin.length; i++) {
    assert.ok(bytesEqual(getOption(toOrigin[i]!, OptionNumber.Oscore)!, getOption(toProxy[i]!, OptionNumber.Oscore)!), 'the OSCORE option passes untouched');
    assert.ok(bytesEqual(toOrigin[i]!.payload, toProxy[i]!.payload), 'the ciphertext passes untouched');
    assert.equal(getOption(toOrigin[i]!, OptionNumber.UriPath), undefined, 'the mount prefix stays at the proxy; the resource is inside the ciphertext');
    assert.equal(getOption(toProxy[i]!, OptionNumber.UriPath) && decodeString(getOption(toProxy[i]!, OptionNumber.UriPath)!), 'dev1');
  }
  const outer = w.leg(PROXY, CLIENT);
  assert.ok(outer.every((m) => getOption(m, OptionNumber.Oscore) !== undefined && m.payload.length <= 64), 'outer 64-byte blocks of protected responses');
});

test('end-to-end OSCORE, a 3000-byte POST: the proxy fragments the protected request upstream (outer Block1)', async () => {
  const cs = pair('C-S', 0x5f, 0x01);
  const w = world({ originSecurity: new OscoreServerSecurity([cs.receiver]) });
  const route = new RouteSecurity(parseCoapUri(`coap://${ORIGIN.address}/echo`), [{ uri: `coap://${PROXY.address}${MOUNT}`, kind: 'reverse' }], new OscoreClientSecurity(cs.sender));
  const r = await w.net.until(blockwiseRequest(w.sender(route), msg(Method.POST, path('echo'), BODY), { szx: 6, maxBodySize: 1 << 20, maxRestarts: 0 }));
  assert.equal(r.message.code, ResponseCode.Changed);
  assert.deepEqual(Buffer.from(r.message.payload), BODY);
  const outerBlock1 = w.leg(PROXY, ORIGIN).filter((m) => getOption(m, OptionNumber.Block1) !== undefined && getOption(m, OptionNumber.Oscore) !== undefined);
  assert.ok(outerBlock1.length > 0, 'protected requests larger than a block went upstream in outer Block1 blocks');
});

test('the proxy\'s own OSCORE layer towards the origin, with block-wise on both legs (§2.3, §2.6)', async () => {
  const ps = pair('P-S', 0xd4, 0x03);
  const w = world({ originSecurity: new OscoreServerSecurity([ps.receiver]), mapping: { context: ps.sender } });
  const get = await w.net.until(blockwiseRequest(w.sender(), msg(Method.GET, path('dev1', 'large')), { szx: 1, maxBodySize: 1 << 20, maxRestarts: 0 }));
  assert.equal(decodeString(get.message.payload), largeText());
  assert.equal(w.leg(PROXY, ORIGIN).length, 8, 'the GET went upstream in the origin\'s 1024-byte blocks, not the client\'s 32-byte ones');
  const post = await w.net.until(blockwiseRequest(w.sender(), msg(Method.POST, path('dev1', 'echo'), BODY), { szx: 3, maxBodySize: 1 << 20, maxRestarts: 0 }));
  assert.deepEqual(Buffer.from(post.message.payload), BODY);
  assert.ok(w.leg(PROXY, ORIGIN).every((m) => getOption(m, OptionNumber.Oscore) !== undefined), 'every upstream request protected with P–S');
  assert.ok(w.leg(PROXY, CLIENT).every((m) => getOption(m, OptionNumber.Oscore) === undefined), 'the client sees plain CoAP');
});

test('Observe: two clients, one upstream observation, every notification, deregistered with the last client', async () => {
  const w = world();
  const other = w.net.endpoint({ address: '10.0.0.9', port: 40000 }, {}, 9);
  const observe = (endpoint: typeof w.client) => new Observation(endpoint, PROXY, msg(Method.GET, path('dev1', 'temp')), { maxBodySize: 1 << 20, maxRestarts: 0 });
  const a = observe(w.client);
  const b = observe(other);
  const first = await w.net.until(Promise.all([a.next(), b.next()]));
  assert.deepEqual(first.map((r) => r.value!.text()), ['20', '20']);
  assert.equal(w.origin.observations.count('/temp'), 1, 'one upstream observation');
  for (const t of [21, 22, 23]) {
    w.setTemperature(t);
    const got = await w.net.until(Promise.all([a.next(), b.next()]));
    assert.deepEqual(got.map((r) => r.value!.text()), [String(t), String(t)]);
  }
  await w.net.until(a.cancel());
  assert.equal(w.origin.observations.count('/temp'), 1, 'still observed for the other client');
  await w.net.until(b.cancel());
  await w.net.run(1000);
  assert.equal(w.origin.observations.count('/temp'), 0, 'the last client left: deregistered upstream');
  assert.equal(w.proxy.activeUpstreamObservations, 0);
});

test('link-format under a mount whose target has a base path: links below it rewritten, others dropped', async () => {
  const w = world({ mapping: { target: `coap://${ORIGIN.address}:${ORIGIN.port}/api/` } });
  w.origin.resource('/api/.well-known/core', {
    GET: () => ({ code: ResponseCode.Content, contentFormat: ContentFormat.LinkFormat, payload: '</api/a>;rt="x",</api>,</elsewhere>,<relative>,<coap://other.example/z>,</api/b>;anchor="/api/a"' }),
  });
  const r = await w.net.until(w.sender()(msg(Method.GET, path('dev1', '.well-known', 'core'))));
  assert.deepEqual(
    parseLinkFormat(decodeString(r.message.payload)).map((l) => [l.href, ...l.attributes.map(([k, v]) => `${k}=${String(v)}`)]),
    [['/dev1/a', 'rt=x'], ['/dev1'], ['relative'], ['coap://other.example/z'], ['/dev1/b', 'anchor=/dev1/a']],
  );
  const own = await w.net.until(w.sender()(msg(Method.GET, path('.well-known', 'core'))));
  assert.ok(parseLinkFormat(decodeString(own.message.payload)).some((l) => l.href === MOUNT), 'the proxy lists its mount');
});

test('an unknown unsafe option gets 4.02 and SZX 7 gets 4.00 from the proxy, nothing goes upstream', async () => {
  const w = world();
  const unsafe = msg(Method.GET, [...path('dev1', 'hello'), { number: 2050, value: EMPTY_BYTES }]);
  assert.equal((await w.net.until(w.sender()(unsafe))).message.code, ResponseCode.BadOption);
  const szx7 = msg(Method.GET, [...path('dev1', 'hello'), { number: OptionNumber.Block2, value: Uint8Array.of(0x07) }]);
  assert.equal((await w.net.until(w.sender()(szx7))).message.code, ResponseCode.BadRequest);
  assert.equal(w.leg(PROXY, ORIGIN).length, 0);
});

test('Observe of a large resource: notifications carry block 0 in the client\'s size, the rest by GET (RFC 7959 §2.6)', async () => {
  const w = world();
  let version = 0;
  const big = () => Buffer.alloc(300, 65 + version);
  w.origin.resource('/big', { GET: () => ({ code: ResponseCode.Content, payload: big() }) }, { observable: true });
  const registration = msg(Method.GET, [...path('dev1', 'big'), { number: OptionNumber.Block2, value: Uint8Array.of(0x02) }]);
  const observation = new Observation(w.client, PROXY, registration, { szx: 2, maxBodySize: 1 << 20, maxRestarts: 0 });
  const first = await w.net.until(observation.next());
  assert.deepEqual(first.value!.payload, big());
  for (let i = 1; i <= 2; i++) {
    version = i;
    w.origin.changed('/big');
    const next = await w.net.until(observation.next());
    assert.deepEqual(next.value!.payload, big(), `notification ${i} whole`);
  }
  const notifications = w.leg(PROXY, CLIENT).filter((m) => getOption(m, OptionNumber.Observe) !== undefined);
  assert.equal(notifications.length, 3);
  for (const n of notifications) {
    assert.equal(n.payload.length, 64, 'block 0 only, in the registration\'s block size');
    assert.deepEqual(readBlockOption(n, OptionNumber.Block2), { num: 0, more: true, szx: 2 });
  }
  await w.net.until(observation.cancel());
});

test('two clients posting at once: distinct Request-Tags upstream keep their bodies apart (RFC 9175 §3.4)', async () => {
  const w = world();
  const other = w.net.endpoint({ address: '10.0.0.9', port: 40000 }, {}, 9);
  const otherBody = Buffer.from(BODY.map((b) => b + 1));
  const post = (endpoint: typeof w.client, body: Buffer) =>
    blockwiseRequest(securedSender(endpoint, PROXY, PLAIN), msg(Method.POST, path('dev1', 'echo'), body), { szx: 0, maxBodySize: 1 << 20, maxRestarts: 0 });
  const [a, b] = await w.net.until(Promise.all([post(w.client, BODY), post(other, otherBody)]));
  assert.deepEqual(Buffer.from(a.message.payload), BODY);
  assert.deepEqual(Buffer.from(b.message.payload), otherBody);
  const tags = new Set(w.leg(PROXY, ORIGIN).filter((m) => getOption(m, OptionNumber.Block1) !== undefined).map((m) => Buffer.from(getOption(m, OptionNumber.RequestTag) ?? EMPTY_BYTES).toString('hex')));
  assert.equal(tags.size, 2, 'one operation without a tag, the concurrent one with its own');
});
