/** Forward and reverse proxies (RFC 7252 §5.7, RFC 8768, RFC 7641 §5), on a multi-node lockstep network. */
import { ContentFormat } from '../src/coap/content-format.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, encodeUint, getOption, getUintOption, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { encodeMessage } from '../src/coap/codec.js';
import { OptionNumber } from '../src/coap/options.js';
import { Observation } from '../src/client/observe.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { PLAIN, securedSender, withEchoRetry } from '../src/client/security.js';
import { addDemoResources } from '../src/demo/resources.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { MissCoalescer, PASS_FOR } from '../src/proxy/coalescing.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { addReverseProxy } from '../src/proxy/reverse-proxy.js';
import { ResponseCache } from '../src/proxy/cache.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';

const ORIGIN = { address: '10.0.0.1', port: 5683 };
const PROXY = { address: '10.0.0.3', port: 5683 };
const PROXY2 = { address: '10.0.0.4', port: 5683 };
const CLIENT = { address: '10.0.0.2', port: 40000 };

function topology(options: { nextHop?: string; timeout?: number; originSecurity?: OscoreServerSecurity; cache?: boolean | ResponseCache; passFor?: number } = {}) {
  const net = new FakeNetwork();
  const origin = new CoapServer(net.endpoint(ORIGIN, {}, 1), options.originSecurity ? { security: options.originSecurity } : {});
  addDemoResources(origin, { tick: false });
  let originRequests = 0;
  origin.resource('/counted', { GET: () => (originRequests++, { code: ResponseCode.Content, maxAge: 10, payload: `n=${originRequests}` }) });
  let temperature = 20;
  origin.resource('/temp', { GET: () => ({ code: ResponseCode.Content, payload: String(temperature) }) }, { observable: true });
  const proxyServer = new CoapServer(net.endpoint(PROXY, {}, 3));
  const upstreamEndpoint = net.endpoint({ address: PROXY.address, port: 40001 }, { nstart: 64 }, 4);
  const proxy = new ForwardProxy(proxyServer, {
    upstream: { endpoint: async () => upstreamEndpoint },
    // The fake network is 10.0.0.0/8, a private range a proxy reaches only when allowed (issue 17).
    allowDestinations: ['10.0.0.0/8'],
    ...(options.nextHop ? { nextHop: options.nextHop } : {}),
    ...(options.timeout ? { upstreamTimeout: options.timeout } : {}),
    ...(options.passFor !== undefined ? { passFor: options.passFor } : {}),
    ...(options.cache ? { cache: options.cache === true ? new ResponseCache({ maxBytes: 1 << 20, now: () => net.clock.now() }) : options.cache } : {}),
  });
  const client = net.endpoint(CLIENT, { nstart: 64 }, 2);
  const send = (m: CoapMessage, security = PLAIN) => securedSender(client, PROXY, security)(m);
  /** As a CoapClient sends: a 4.01 + Echo (the demo /valve's freshness policy) is answered once (RFC 9175 §2.4). */
  const sendWithEcho = (m: CoapMessage, security = PLAIN) => withEchoRetry(securedSender(client, PROXY, security))(m);
  const setTemperature = (t: number) => {
    temperature = t;
    origin.changed('/temp');
  };
  return { net, origin, proxyServer, proxy, client, send, sendWithEcho, upstreamEndpoint, originRequests: () => originRequests, setTemperature };
}

const msg = (code: number, options: CoapOption[], payload: Uint8Array = EMPTY_BYTES): CoapMessage => ({
  type: MessageType.CON,
  code,
  messageId: 0,
  token: EMPTY_BYTES,
  options: options.sort((a, b) => a.number - b.number),
  payload,
});
const proxyUri = (uri: string) => ({ number: OptionNumber.ProxyUri, value: encodeString(uri) });
const str = (number: number, value: string) => ({ number, value: encodeString(value) });

test('PR1.1: Proxy-Uri is resolved into Uri-* options; tokens and Message IDs are per leg', async () => {
  const t = topology();
  const r = await t.net.until(t.send(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/hello')])));
  assert.equal(decodeString(r.message.payload), 'Hello from coapsec');
  const fromClient = t.net.log.find((d) => d.to.address === PROXY.address)!.message;
  const upstream = t.net.log.find((d) => d.to.address === ORIGIN.address)!.message;
  assert.equal(getOption(upstream, OptionNumber.ProxyUri), undefined);
  assert.deepEqual(getStringOptionsOf(upstream, OptionNumber.UriPath), ['hello']);
  assert.equal(getOption(upstream, OptionNumber.UriHost), undefined, 'an IP literal equal to the destination is not sent (RFC 7252 §6.4)');
  assert.notDeepEqual([...upstream.token], [...fromClient.token], 'the upstream leg has its own token');
  assert.equal(getUintOption(upstream, OptionNumber.HopLimit), 15, 'RFC 8768: Hop-Limit inserted and decremented');
});

test('PR1.2: Proxy-Scheme with Uri-Host, Uri-Port, Uri-Path, Uri-Query', async () => {
  const t = topology();
  const r = await t.net.until(t.send(msg(Method.GET, [str(OptionNumber.ProxyScheme, 'coap'), str(OptionNumber.UriHost, '10.0.0.1'), { number: OptionNumber.UriPort, value: encodeUint(5683) }, str(OptionNumber.UriPath, '.well-known'), str(OptionNumber.UriPath, 'core'), str(OptionNumber.UriQuery, 'rt=demo.valve')])));
  assert.match(decodeString(r.message.payload), /^<\/valve>/);
});

test('a configured next hop gets the request with Proxy-Uri kept (PR1.1 towards another proxy)', async () => {
  const t = topology({ nextHop: `coap://${PROXY2.address}:${PROXY2.port}` });
  const second = new CoapServer(t.net.endpoint(PROXY2, {}, 5));
  const secondUp = t.net.endpoint({ address: PROXY2.address, port: 40002 }, {}, 6);
  new ForwardProxy(second, { upstream: { endpoint: async () => secondUp }, allowDestinations: ['10.0.0.0/8'] });
  const r = await t.net.until(t.send(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/hello')])));
  assert.equal(decodeString(r.message.payload), 'Hello from coapsec');
  const hop = t.net.log.find((d) => d.to.address === PROXY2.address)!.message;
  assert.equal(decodeString(getOption(hop, OptionNumber.ProxyUri)!), 'coap://10.0.0.1:5683/hello');
  assert.equal(getUintOption(hop, OptionNumber.HopLimit), 15);
});

test('RFC 8768: a forwarding loop ends with 5.08 Hop Limit Reached', async () => {
  const t = topology({ nextHop: `coap://${PROXY2.address}:${PROXY2.port}` });
  const second = new CoapServer(t.net.endpoint(PROXY2, {}, 5));
  const secondUp = t.net.endpoint({ address: PROXY2.address, port: 40002 }, {}, 6);
  new ForwardProxy(second, { upstream: { endpoint: async () => secondUp }, nextHop: `coap://${PROXY.address}:${PROXY.port}`, name: 'proxy-2' });
  const r = await t.net.until(t.send(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/hello'), { number: OptionNumber.HopLimit, value: encodeUint(6) }])));
  assert.equal(r.message.code, ResponseCode.HopLimitReached);
  const hops = t.net.log.filter((d) => d.message.code === Method.GET).length;
  // RFC 8768 §3: each proxy decrements before forwarding and stops when that yields 0: the
  // client's 6 becomes 5, 4, 3, 2, 1 on five forwarded legs, and the hop that receives 1 answers 5.08.
  assert.equal(hops, 6, 'the client\'s request and five forwarded legs');
});

test('§5.7.1: an unknown safe-to-forward option is forwarded; an unknown unsafe one gets 4.02', async () => {
  const t = topology();
  const safe = await t.net.until(t.send(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/hello'), { number: 65000, value: Uint8Array.of(1) }])));
  assert.equal(safe.message.code, ResponseCode.Content);
  assert.ok(getOption(t.net.log.find((d) => d.to.address === ORIGIN.address)!.message, 65000), 'forwarded upstream');
  const unsafe = await t.net.until(t.send(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/hello'), { number: 65002, value: Uint8Array.of(1) }])));
  // §5.7.1: "Unsafe options in a request that are not recognized by the proxy MUST lead to a 4.02".
  assert.equal(unsafe.message.code, ResponseCode.BadOption);
});

test('5.05 for a scheme the proxy does not serve; 5.04 when the origin is silent; 5.02 when it resets', async () => {
  const t = topology({ timeout: 1000 });
  assert.equal((await t.net.until(t.send(msg(Method.GET, [proxyUri('mqtt://10.0.0.1/x')])))).message.code, ResponseCode.ProxyingNotSupported);
  assert.equal((await t.net.until(t.send(msg(Method.GET, [proxyUri('coap://10.0.0.99:5683/x')])))).message.code, ResponseCode.GatewayTimeout);
  t.net.endpoint({ address: '10.0.0.98', port: 5683 }); // an endpoint with no server: it resets requests
  assert.equal((await t.net.until(t.send(msg(Method.GET, [proxyUri('coap://10.0.0.98:5683/x')])))).message.code, ResponseCode.BadGateway);
});

test('two clients using the same token are never confused', async () => {
  const t = topology();
  const other = t.net.endpoint({ address: '10.0.0.5', port: 40000 }, {}, 2); // same seed: same tokens
  const a = securedSender(t.client, PROXY, PLAIN)(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/hello')]));
  const b = securedSender(other, PROXY, PLAIN)(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/alarm')]));
  const [ra, rb] = await t.net.until(Promise.all([a, b]));
  const tokens = t.net.log.filter((d) => d.to.address === PROXY.address).map((d) => Buffer.from(d.message.token).toString('hex'));
  assert.equal(tokens[0], tokens[1], 'both clients chose the same token');
  assert.equal(decodeString(ra.message.payload), 'Hello from coapsec');
  assert.match(decodeString(rb.message.payload), /"alarm"/);
});

test('PR4.1/PR4.2: one upstream observation serves every client; each has its own sequence; it ends with the last client', async () => {
  const t = topology();
  const clients = [t.client, t.net.endpoint({ address: '10.0.0.5', port: 40000 }, {}, 7), t.net.endpoint({ address: '10.0.0.6', port: 40000 }, {}, 8)];
  const observations = clients.map((c) => new Observation(c, PROXY, msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/temp')]), { maxBodySize: 1 << 20, maxRestarts: 0 }, { reregisterDelay: () => 1e9 }));
  for (const o of observations) assert.equal((await t.net.until(o.next())).value!.text(), '20');
  assert.equal(t.origin.observations.count('/temp'), 1, 'the origin sees one observer: the proxy');
  assert.equal(t.proxy.activeUpstreamObservations, 1);
  t.setTemperature(21);
  for (const o of observations) assert.equal((await t.net.until(o.next())).value!.text(), '21');
  const sequences = t.net.log.filter((d) => d.from.address === PROXY.address && d.to.address !== ORIGIN.address && getOption(d.message, OptionNumber.Observe) !== undefined);
  assert.ok(sequences.length >= 6);
  for (const o of observations) await t.net.until(o.return());
  await t.net.run(10);
  assert.equal(t.proxy.activeUpstreamObservations, 0, 'the last client left');
  assert.equal(t.origin.observations.count('/temp'), 0, 'the proxy cancelled upstream');
});

test('OSCORE end to end through the proxy: the proxy never sees class E options or the payload; tampering is detected', async () => {
  const secret = { masterSecret: Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex') };
  const originSecurity = new OscoreServerSecurity([new OscoreSecurityContext({ ...secret, senderId: Buffer.from([1]), recipientIds: [EMPTY_BYTES] }, new VolatileSequence())]);
  const t = topology({ originSecurity });
  const oscore = new OscoreClientSecurity(new OscoreSecurityContext({ ...secret, senderId: EMPTY_BYTES, recipientIds: [Buffer.from([1])] }, new VolatileSequence()));
  const request = () => msg(Method.PUT, [proxyUri('coap://10.0.0.1:5683/valve'), { number: OptionNumber.ContentFormat, value: encodeUint(0) }], encodeString('7'));
  const ok = await t.net.until(t.sendWithEcho(request(), oscore));
  assert.equal(ok.message.code, ResponseCode.Changed);
  for (const d of t.net.log.filter((x) => x.to.address === PROXY.address || x.from.address === PROXY.address)) {
    assert.equal(getOption(d.message, OptionNumber.UriPath), undefined, 'Uri-Path is inside the OSCORE ciphertext');
    assert.equal(getOption(d.message, OptionNumber.ContentFormat), undefined);
    assert.ok(!Buffer.from(d.message.payload).includes(Buffer.from('7')) || d.message.payload.length > 1, 'the payload is ciphertext');
  }
  const toOrigin = t.net.log.find((d) => d.to.address === ORIGIN.address)!.message;
  assert.ok(getOption(toOrigin, OptionNumber.Oscore));
  // A malicious proxy flips a ciphertext bit on the way to the origin: 4.00 Decryption failed.
  t.net.mutate = (d, data) => (d.to.address === ORIGIN.address ? flipLastByte(data) : undefined);
  await assert.rejects(t.net.until(t.send(request(), oscore)), /unprotected 4\.00 Bad Request: "Decryption failed"/);
  // ... or in the response on the way back: the client's verification fails.
  t.net.mutate = (d, data) => (d.from.address === ORIGIN.address && d.message.payload.length > 0 ? flipLastByte(data) : undefined);
  await assert.rejects(t.net.until(t.send(request(), oscore)), /OSCORE verification failed/);
});

test('reverse proxy: /dev1/... maps to the device behind it', async () => {
  const t = topology();
  addReverseProxy(t.proxyServer, { prefix: '/dev1', target: 'coap://10.0.0.1:5683/' }, { endpoint: async () => t.upstreamEndpoint });
  const r = await t.net.until(t.send(msg(Method.GET, [str(OptionNumber.UriPath, 'dev1'), str(OptionNumber.UriPath, 'hello')])));
  assert.equal(decodeString(r.message.payload), 'Hello from coapsec');
  const put = await t.net.until(t.sendWithEcho(msg(Method.PUT, [str(OptionNumber.UriPath, 'dev1'), str(OptionNumber.UriPath, 'valve')], encodeString('3'))));
  assert.equal(put.message.code, ResponseCode.Changed);
  const upstream = t.net.log.filter((d) => d.to.address === ORIGIN.address).map((d) => getStringOptionsOf(d.message, OptionNumber.UriPath));
  // The PUT twice: /valve's freshness policy answers the first with 4.01 + Echo (RFC 9175 §2.3).
  assert.deepEqual(upstream, [['hello'], ['valve'], ['valve']]);
});

function getStringOptionsOf(m: CoapMessage, n: number): string[] {
  return m.options.filter((o) => o.number === n).map((o) => decodeString(o.value));
}

function flipLastByte(data: Buffer): Buffer {
  const copy = Buffer.from(data);
  copy[copy.length - 1]! ^= 0x01;
  return copy;
}


test('cache: N clients, one origin request per freshness period; Max-Age counts down (PR2.1, PR2.4)', async () => {
  const t = topology({ cache: true });
  const clients = Array.from({ length: 5 }, (_, i) => t.net.endpoint({ address: `10.0.1.${i + 1}`, port: 40000 }, {}, 20 + i));
  const get = (c: (typeof clients)[number]) => securedSender(c, PROXY, PLAIN)(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/counted')]));
  for (let second = 0; second < 25; second++) {
    const responses = await t.net.until(Promise.all(clients.map(get)));
    for (const r of responses) assert.equal(r.message.code, ResponseCode.Content);
    // A little over 3 s in the cache: 6.9… s of freshness left, rounded down.
    if (second === 3) assert.equal(getUintOption(responses[0]!.message, OptionNumber.MaxAge), 6, 'Max-Age decremented by the time in cache');
    await t.net.run(1000);
  }
  // Max-Age 10 over 25 s of requests: fetched at 0 s, ~10 s and ~20 s.
  assert.equal(t.originRequests(), 3);
  assert.equal(t.proxy.stats.coalesced, 3 * 4, 'the other four clients of each period waited for the one upstream request');
  assert.equal(t.proxy.stats.cacheHits, 5 * 25 - 3 - 12);
});

test('cache: OSCORE-protected responses are never served from the cache to another client', async () => {
  const secret = { masterSecret: Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex') };
  const originSecurity = new OscoreServerSecurity([new OscoreSecurityContext({ ...secret, senderId: Buffer.from([1]), recipientIds: [EMPTY_BYTES] }, new VolatileSequence())]);
  const t = topology({ cache: true, originSecurity });
  const oscore = new OscoreClientSecurity(new OscoreSecurityContext({ ...secret, senderId: EMPTY_BYTES, recipientIds: [Buffer.from([1])] }, new VolatileSequence()));
  for (let i = 0; i < 3; i++) {
    const r = await t.net.until(t.send(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/counted')]), oscore));
    assert.equal(decodeString(r.message.payload), `n=${i + 1}`, 'each protected request reaches the origin');
  }
  assert.equal(t.proxy.stats.cacheHits, 0);
  // A plain client asking for the same URI is not given any protected response.
  const plain = await t.net.until(t.send(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/counted')])));
  assert.equal(getOption(plain.message, OptionNumber.Oscore), undefined);
  assert.equal(decodeString(plain.message.payload), 'n=4');
});

test('cache: a stale entry is revalidated upstream with its ETag; 2.03 refreshes it (§5.6.2)', async () => {
  const t = topology({ cache: true });
  let version = 1;
  let validations = 0;
  t.origin.resource('/doc', {
    GET: (req) => {
      const etag = Uint8Array.of(version);
      const asked = req.options.filter((o) => o.number === OptionNumber.ETag);
      if (asked.some((o) => o.value[0] === version)) return (validations++, { code: ResponseCode.Valid, etag, maxAge: 5 });
      return { code: ResponseCode.Content, etag, maxAge: 5, payload: `version ${version}` };
    },
  });
  const get = () => t.send(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/doc')]));
  assert.equal(decodeString((await t.net.until(get())).message.payload), 'version 1');
  await t.net.run(6000);
  const revalidated = await t.net.until(get());
  assert.equal(decodeString(revalidated.message.payload), 'version 1', 'the client gets the full stored response');
  assert.equal(validations, 1);
  version = 2;
  await t.net.run(6000);
  assert.equal(decodeString((await t.net.until(get())).message.payload), 'version 2');
});

test('cache: a fresh hit is answered while the request is received: no upstream leg, no timer of its own (§5.6, §5.2.1)', async () => {
  const t = topology({ cache: true });
  const get = (messageId: number, token: number) =>
    encodeMessage({ ...msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/counted')]), messageId, token: Uint8Array.of(token) });
  // The first request is a miss: it goes upstream and its 2.05 (Max-Age 10) is stored.
  t.proxyServer.endpoint.messaging.receive(get(0x100, 1), CLIENT);
  await t.net.run(10);
  assert.equal(t.originRequests(), 1);
  const logged = t.net.log.length;
  const timers = t.net.clock.pendingTimers();
  t.proxyServer.endpoint.messaging.receive(get(0x101, 2), CLIENT);
  // Before any promise callback or timer ran: the piggybacked response is already on its way.
  const sent = t.net.log.slice(logged);
  assert.equal(sent.length, 1);
  assert.deepEqual([sent[0]!.from, sent[0]!.to], [PROXY, CLIENT]);
  assert.deepEqual([sent[0]!.message.type, sent[0]!.message.messageId, sent[0]!.message.code], [MessageType.ACK, 0x101, ResponseCode.Content]);
  assert.equal(decodeString(sent[0]!.message.payload), 'n=1');
  assert.equal(t.net.clock.pendingTimers(), timers + 1, 'the only new timer delivers the datagram: no upstream exchange, no timer per request');
  await t.net.run(10);
  assert.equal(t.originRequests(), 1);
  assert.deepEqual([t.proxy.stats.cacheHits, t.proxy.stats.forwarded], [1, 1]);
});

test('coalescing never shares a response that is not fresh on arrival (Max-Age 0, RFC 7252 §5.6.1)', async () => {
  const t = topology({ cache: true });
  let served = 0;
  t.origin.resource('/now', { GET: () => ({ code: ResponseCode.Content, maxAge: 0, payload: `reading ${++served}` }) });
  const clients = Array.from({ length: 4 }, (_, i) => t.net.endpoint({ address: `10.0.2.${i + 1}`, port: 40000 }, {}, 40 + i));
  const responses = await t.net.until(Promise.all(clients.map((c) => securedSender(c, PROXY, PLAIN)(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/now')])))));
  assert.equal(served, 4, 'every concurrent request reached the origin');
  assert.equal(new Set(responses.map((r) => decodeString(r.message.payload))).size, 4);
  assert.equal(t.proxy.stats.coalesced, 0);
});

/**
 * A proxy with a cache before an origin whose /now answers with a new reading each time and the
 * Max-Age `setMaxAge` gives (0 at first); four clients at `subnet`.x asking for it.
 */
function readings(subnet: string, firstSeed: number, passFor?: number) {
  const t = topology({ cache: true, ...(passFor !== undefined ? { passFor } : {}) });
  let served = 0;
  let maxAge = 0;
  t.origin.resource('/now', { GET: () => ({ code: ResponseCode.Content, maxAge, payload: `reading ${++served}` }) });
  const clients = Array.from({ length: 4 }, (_, i) => t.net.endpoint({ address: `${subnet}.${i + 1}`, port: 40000 }, {}, firstSeed + i));
  const get = (c: (typeof clients)[number]) => securedSender(c, PROXY, PLAIN)(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/now')]));
  const getAll = async () => (await t.net.until(Promise.all(clients.map(get)))).map((r) => r.message);
  return { t, clients, get, getAll, served: () => served, setMaxAge: (seconds: number) => void (maxAge = seconds) };
}

test('hit-for-pass: after a response that cannot be shared, misses go upstream alone, each with its own response', async () => {
  const { t, getAll, served } = readings('10.0.3', 50);
  await getAll();
  assert.equal(served(), 4);
  // The key now passes: the next misses neither wait for nor lead a shared request.
  const passing = await getAll();
  assert.equal(served(), 8);
  assert.equal(t.proxy.stats.passed, 4);
  assert.equal(t.proxy.stats.coalesced, 0);
  assert.deepEqual(passing.map((m) => decodeString(m.payload)).sort(), ['reading 5', 'reading 6', 'reading 7', 'reading 8'], 'each passing miss gets its own, current response');
  for (const m of passing) assert.equal(getUintOption(m, OptionNumber.MaxAge), 0, 'forwarded as the origin sent it (never served from a cache)');
});

test('hit-for-pass ends when the origin sends a fresh response: it is stored and served, misses coalesce again', async () => {
  const { t, clients, get, getAll, served, setMaxAge } = readings('10.0.4', 60);
  await t.net.until(get(clients[0]!));
  setMaxAge(30);
  // Still passing: the one miss goes upstream, and its fresh response ends the passing and is stored.
  assert.equal(decodeString((await t.net.until(get(clients[1]!))).message.payload), 'reading 2');
  assert.equal(t.proxy.stats.passed, 1);
  const hits = await getAll();
  assert.equal(served(), 2, 'served from the cache');
  assert.deepEqual(hits.map((m) => decodeString(m.payload)), Array(4).fill('reading 2'));
  // Once that entry expires, concurrent misses share one upstream request again.
  await t.net.run(31_000);
  const after = await getAll();
  assert.equal(served(), 3);
  assert.deepEqual(after.map((m) => decodeString(m.payload)), Array(4).fill('reading 3'));
  assert.deepEqual([t.proxy.stats.passed, t.proxy.stats.coalesced], [1, 3]);
});

test('hit-for-pass expires after PASS_FOR without requests: concurrent misses coalesce again', async () => {
  const { t, clients, get, getAll, served, setMaxAge } = readings('10.0.5', 70);
  await t.net.until(get(clients[0]!));
  setMaxAge(30);
  await t.net.run(PASS_FOR + 1);
  const responses = await getAll();
  assert.equal(served(), 2, 'one upstream request for the four concurrent misses');
  assert.deepEqual(responses.map((m) => decodeString(m.payload)), Array(4).fill('reading 2'));
  assert.deepEqual([t.proxy.stats.passed, t.proxy.stats.coalesced], [0, 3]);
});

test('passFor: a configured hit-for-pass period ends when set; 0 turns passing off (every miss coalesces)', async () => {
  const short = readings('10.0.6', 80, 200);
  await short.getAll();
  await short.getAll();
  assert.equal(short.t.proxy.stats.passed, 4, 'passing within 200 ms of the unshareable response');
  await short.t.net.run(201);
  short.setMaxAge(30);
  await short.getAll();
  assert.deepEqual([short.t.proxy.stats.passed, short.t.proxy.stats.coalesced], [4, 3], 'after 200 ms the misses coalesce again');
  const never = readings('10.0.7', 90, 0);
  await never.getAll();
  await never.getAll();
  assert.equal(never.t.proxy.stats.passed, 0);
  assert.equal(never.served(), 8, 'responses with Max-Age 0 are never shared: each waiter still gets its own');
  assert.throws(() => new MissCoalescer(() => 0, -1), RangeError);
});

test('a miss whose upstream send throws gets 5.00 and leaves nothing waiting on it: the next miss on the key is answered', async () => {
  const { t, clients, get } = readings('10.0.8', 100);
  const send = t.upstreamEndpoint.send.bind(t.upstreamEndpoint);
  const sendSimple = t.upstreamEndpoint.sendSimple.bind(t.upstreamEndpoint);
  let failing = true;
  const failOnce = (): void => {
    if (failing) {
      failing = false;
      throw new Error('upstream send failed');
    }
  };
  // A GET of nothing but its target goes out on the simple path (ForwardProxyOptions.fastPath), any other as a message.
  t.upstreamEndpoint.send = (...args: Parameters<typeof send>) => (failOnce(), send(...args));
  t.upstreamEndpoint.sendSimple = (...args: Parameters<typeof sendSimple>) => (failOnce(), sendSimple(...args));
  assert.equal((await t.net.until(get(clients[0]!))).message.code, ResponseCode.InternalServerError);
  const next = await t.net.until(get(clients[1]!), 20_000);
  assert.equal(decodeString(next.message.payload), 'reading 1');
});

test('coalescing and hit-for-pass are per Accept variant: concurrent misses with different Accept get their own representation (§5.6)', async () => {
  const t = topology({ cache: true });
  let served = 0;
  t.origin.resource('/fmt', {
    GET: (req) => (served++, req.accept === ContentFormat.Json ? { code: ResponseCode.Content, contentFormat: ContentFormat.Json, maxAge: 30, payload: '{"v":1}' } : { code: ResponseCode.Content, contentFormat: ContentFormat.TextPlain, maxAge: 30, payload: 'v=1' }),
  });
  const clients = [1, 2].map((i) => t.net.endpoint({ address: `10.0.9.${i}`, port: 40000 }, {}, 110 + i));
  const get = (c: (typeof clients)[number], accept: number) =>
    securedSender(c, PROXY, PLAIN)(msg(Method.GET, [{ number: OptionNumber.Accept, value: encodeUint(accept) }, proxyUri('coap://10.0.0.1:5683/fmt')]));
  const [text, json] = await t.net.until(Promise.all([get(clients[0]!, ContentFormat.TextPlain), get(clients[1]!, ContentFormat.Json)]));
  assert.equal(decodeString(text!.message.payload), 'v=1');
  assert.equal(decodeString(json!.message.payload), '{"v":1}');
  assert.equal(served, 2, 'one upstream request per variant');
  assert.equal(t.proxy.stats.coalesced, 0);
});

test('a 2.03 that revalidates a stale entry answers the misses waiting for it: no hit-for-pass, one origin request (§5.6.2)', async () => {
  const t = topology({ cache: true });
  let requests = 0;
  t.origin.resource('/doc', {
    GET: (req) => {
      requests++;
      const asked = req.options.some((o) => o.number === OptionNumber.ETag && o.value[0] === 1);
      return asked ? { code: ResponseCode.Valid, etag: Uint8Array.of(1), maxAge: 5 } : { code: ResponseCode.Content, etag: Uint8Array.of(1), maxAge: 5, payload: 'version 1' };
    },
  });
  const clients = [1, 2, 3].map((i) => t.net.endpoint({ address: `10.0.10.${i}`, port: 40000 }, {}, 120 + i));
  const get = (c: (typeof clients)[number]) => securedSender(c, PROXY, PLAIN)(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/doc')]));
  await t.net.until(get(clients[0]!));
  await t.net.run(6000);
  const answers = await t.net.until(Promise.all(clients.map(get)));
  assert.deepEqual(answers.map((r) => decodeString(r.message.payload)), Array(3).fill('version 1'));
  assert.equal(requests, 2, 'the first request, then one revalidation for the three stale misses');
  assert.deepEqual([t.proxy.stats.coalesced, t.proxy.stats.passed], [2, 0]);
});

test('Hop-Limit is checked before the unrecognized unsafe options: a request that is both gets 5.08 (RFC 8768 §3, §5.7.1)', async () => {
  const t = topology();
  const r = await t.net.until(t.send(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/hello'), { number: OptionNumber.HopLimit, value: encodeUint(1) }, { number: 0xff01, value: Uint8Array.of(1) }])));
  assert.equal(r.message.code, ResponseCode.HopLimitReached);
});

test('upstream requests: addressing and Hop-Limit merged in option order, other options kept (routes remembered)', async () => {
  const t = topology();
  const accept = { number: OptionNumber.Accept, value: encodeUint(0) };
  for (let i = 0; i < 2; i++) {
    await t.net.until(t.send(msg(Method.GET, [str(OptionNumber.ProxyScheme, 'coap'), str(OptionNumber.UriHost, '10.0.0.1'), { number: OptionNumber.UriPort, value: encodeUint(5683) }, str(OptionNumber.UriPath, 'hello'), accept])));
    await t.net.until(t.send(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/hello?x=1'), accept])));
  }
  const upstream = t.net.log.filter((d) => d.to.address === ORIGIN.address).map((d) => d.message.options.map((o) => o.number));
  assert.deepEqual(upstream, Array(4).fill(null).map((_, i) =>
    i % 2 === 0 ? [OptionNumber.UriPath, OptionNumber.HopLimit, OptionNumber.Accept] : [OptionNumber.UriPath, OptionNumber.UriQuery, OptionNumber.HopLimit, OptionNumber.Accept]));
});

test('a failure while forwarding an upstream response still answers the client (5.00)', async () => {
  class FailingCache extends ResponseCache {
    override store(): boolean {
      throw new Error('store failed');
    }
  }
  const t = topology({ cache: new FailingCache({ maxBytes: 1 << 20, now: () => 0 }) });
  const r = await t.net.until(t.send(msg(Method.GET, [proxyUri('coap://10.0.0.1:5683/hello')])));
  assert.equal(r.message.code, ResponseCode.InternalServerError);
  assert.equal(decodeString(r.message.payload), 'proxy error: store failed');
});
