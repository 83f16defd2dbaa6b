/**
 * Cacheable OSCORE through a caching forward proxy (draft-ietf-core-cacheable-oscore §3.4,
 * draft-ietf-core-oscore-capable-proxies §4), on the lockstep network with its fake clock: five
 * group members read one resource with Deterministic Requests; the proxy answers them from one
 * cached protected response per freshness period, and every client verifies every response end to
 * end. Anything else that carries OSCORE passes the cache untouched.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, getOption, getUintOption, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { fromHex } from '../src/cose/cbor.js';
import { DeterministicClientSecurity } from '../src/client/deterministic.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { securedSender, VerificationError } from '../src/client/security.js';
import { GroupContextStore, type GroupSecurityContext } from '../src/group-oscore/context.js';
import { REQUEST_HASH_OPTION, protectDeterministicRequest } from '../src/group-oscore/deterministic.js';
import { DeterministicExchange, DeterministicRequester } from '../src/group-oscore/deterministic-exchange.js';
import { GroupManager, contextFromMemberFile } from '../src/group-oscore/manager.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { ResponseCache } from '../src/proxy/cache.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';

const ORIGIN = { address: '10.0.0.1', port: 5683 };
const PROXY = { address: '10.0.0.3', port: 5683 };
/** The RFC 8613 context between a client and the origin, for requests the cache must not hold. */
const SECRET = '0102030405060708090a0b0c0d0e0f10';
const CLIENTS = ['c1', 'c2', 'c3', 'c4', 'c5'] as const;

const request = (code: number, uri: string, extra: CoapOption[] = []): CoapMessage => ({
  type: MessageType.CON,
  code,
  messageId: 0,
  token: EMPTY_BYTES,
  options: [{ number: OptionNumber.ProxyUri, value: encodeString(uri) }, ...extra].sort((a, b) => a.number - b.number),
  payload: EMPTY_BYTES,
});

function world() {
  const gm = GroupManager.create({ name: 'firmware' });
  gm.addDeterministicClient();
  const origin = gm.addMember('origin');
  for (const name of CLIENTS) gm.addMember(name);
  const members = new Map<string, GroupSecurityContext>(['origin', ...CLIENTS].map((name) => [name, contextFromMemberFile(gm.memberFile(name))]));
  const net = new FakeNetwork();
  const contexts = new GroupContextStore();
  contexts.install('firmware', members.get('origin')!);
  const oscoreServer = new OscoreServerSecurity([new OscoreSecurityContext({ masterSecret: fromHex(SECRET), senderId: fromHex('01'), recipientIds: [fromHex('00')] }, new VolatileSequence())]);
  const server = new CoapServer(net.endpoint(ORIGIN, {}, 1), { group: { contexts }, security: oscoreServer });
  let originRequests = 0;
  let version = 0;
  server.resource('/fw', { GET: () => (originRequests++, { code: ResponseCode.Content, maxAge: 10, payload: `firmware v${++version}` }) }, { deterministic: true });
  server.resource('/private', { GET: () => (originRequests++, { code: ResponseCode.Content, payload: 'not for deterministic requests' }) });
  const cache = new ResponseCache({ maxBytes: 1 << 20, now: () => net.clock.now() });
  const proxyServer = new CoapServer(net.endpoint(PROXY, {}, 3));
  const upstream = net.endpoint({ address: PROXY.address, port: 40001 }, { nstart: 64 }, 4);
  const proxy = new ForwardProxy(proxyServer, { upstream: { endpoint: async () => upstream }, allowDestinations: ['10.0.0.0/8'], cache });
  const clients = CLIENTS.map((name, i) => {
    const endpoint = net.endpoint({ address: `10.0.1.${i + 1}`, port: 40000 }, { nstart: 64 }, 10 + i);
    const security = new DeterministicClientSecurity(members.get(name)!, { now: () => net.clock.now(), server: fromHex(origin.senderId) });
    return { name, send: (m: CoapMessage) => securedSender(endpoint, PROXY, security)(m) };
  });
  return { gm, net, server, proxy, cache, clients, members, originRequests: () => originRequests };
}

test('§3.3 with end-to-end protection: 5 clients, 25 s, Max-Age 10 → the origin sees ≤ 3 requests, every response verified end to end', async () => {
  const w = world();
  const verified = new Map<string, string[]>(CLIENTS.map((c) => [c, []]));
  const wireRequests = new Set<string>();
  // Each client reads /fw once a second for 25 s of fake time, all of them at once.
  for (let second = 0; second < 25; second++) {
    const round = w.clients.map(async (c) => {
      const r = await c.send(request(Method.GET, 'coap://10.0.0.1:5683/fw'));
      assert.equal(r.message.code, ResponseCode.Content);
      assert.equal(r.context.oscore?.[0]?.kidContext, Buffer.from(w.members.get('origin')!.gid).toString('hex'), 'a verified Group OSCORE layer');
      verified.get(c.name)!.push(decodeString(r.message.payload));
    });
    await w.net.until(Promise.all(round));
    await w.net.run(1000 - (w.net.clock.now() % 1000));
  }
  for (const d of w.net.log) if (d.to.address === PROXY.address && d.to.port === PROXY.port) wireRequests.add(Buffer.from(d.message.payload).toString('hex'));
  assert.ok(w.originRequests() <= 3, `the origin saw ${w.originRequests()} requests`);
  assert.ok(w.originRequests() >= 3, '25 s at Max-Age 10 needs three fresh representations');
  for (const [name, payloads] of verified) {
    assert.equal(payloads.length, 25, `${name} verified every response`);
    assert.deepEqual([...new Set(payloads)], ['firmware v1', 'firmware v2', 'firmware v3'], `${name}: each representation in order`);
  }
  assert.equal(wireRequests.size, 1, 'every client sent the same protected request (one ciphertext)');
  assert.ok(w.proxy.stats.cacheHits + w.proxy.stats.coalesced >= 125 - 3, `served from the cache: ${JSON.stringify(w.proxy.stats)}`);
  assert.equal(w.cache.stats().entries, 1);
  // The proxy saw the request only encrypted: no Uri-Path on any leg, outer code FETCH.
  for (const d of w.net.log.filter((x) => x.message.code === Method.FETCH)) {
    assert.equal(getOption(d.message, OptionNumber.UriPath), undefined);
    assert.ok(getOption(d.message, REQUEST_HASH_OPTION) !== undefined);
  }
  // The responses on the wire are protected, with the outer Max-Age the cache used.
  const fromOrigin = w.net.log.filter((d) => d.from.address === ORIGIN.address);
  assert.ok(fromOrigin.every((d) => getOption(d.message, OptionNumber.Oscore) !== undefined && getUintOption(d.message, OptionNumber.MaxAge) === 10));
});

test('a resource not marked deterministic answers a protected 4.01; a request with side effects too', async () => {
  const w = world();
  const c = w.clients[0]!;
  const refused = await w.net.until(c.send(request(Method.GET, 'coap://10.0.0.1:5683/private')));
  assert.equal(refused.message.code, ResponseCode.Unauthorized, 'the 4.01 verified end to end');
  assert.equal(w.originRequests(), 0, 'the handler never ran');
  await assert.rejects(c.send(request(Method.POST, 'coap://10.0.0.1:5683/fw')), /must be safe/);
  // A POST made deterministic anyway (by hand, past the requester's check) is refused by the server, protected.
  const member = w.members.get('c1')!;
  const requester = new DeterministicRequester(member);
  const { message, binding, requestHash } = protectDeterministicRequest(request(Method.POST, 'coap://10.0.0.1:5683/fw'), member, requester.client);
  const endpoint = w.net.endpoint({ address: '10.0.4.1', port: 40000 }, {}, 55);
  const response = await w.net.until(endpoint.request(message, PROXY));
  const verdict = new DeterministicExchange(requester, message, binding, requestHash).verify(response.message);
  assert.ok(verdict.ok, verdict.ok ? '' : verdict.reason);
  assert.equal(verdict.message.code, ResponseCode.Unauthorized);
  assert.equal(decodeString(verdict.message.payload), 'Deterministic request with side effects');
  assert.equal(w.originRequests(), 0);
});

test('no replay window for Deterministic Requests: the same request is served again and again (§3.4.3)', async () => {
  const w = world();
  const [a, b] = w.clients;
  await w.net.until(a!.send(request(Method.GET, 'coap://10.0.0.1:5683/fw')));
  w.cache.clear();
  const again = await w.net.until(b!.send(request(Method.GET, 'coap://10.0.0.1:5683/fw')));
  assert.equal(decodeString(again.message.payload), 'firmware v2');
  assert.equal(w.originRequests(), 2, 'the identical request reached the origin twice and was served twice');
});

test('a client that is not in the group cannot read a cached protected response', async () => {
  const w = world();
  await w.net.until(w.clients[0]!.send(request(Method.GET, 'coap://10.0.0.1:5683/fw')));
  const outsider = GroupManager.create({ name: 'firmware' });
  outsider.addDeterministicClient();
  outsider.addMember('x');
  const stranger = new DeterministicClientSecurity(contextFromMemberFile(outsider.memberFile('x')), { now: () => w.net.clock.now() });
  const endpoint = w.net.endpoint({ address: '10.0.2.1', port: 40000 }, {}, 99);
  // Another group's keys make another request: a miss, and the origin cannot decrypt it.
  const r = await w.net.until(securedSender(endpoint, PROXY, stranger)(request(Method.GET, 'coap://10.0.0.1:5683/fw')).catch((e: unknown) => e));
  assert.ok(r instanceof VerificationError, String(r));
  assert.equal(w.originRequests(), 1);
});

test('everything else that carries OSCORE passes the cache uncached (RFC 8613 requests, every time to the origin)', async () => {
  const w = world();
  const context = new OscoreSecurityContext({ masterSecret: fromHex(SECRET), senderId: fromHex('00'), recipientIds: [fromHex('01')] }, new VolatileSequence());
  const security = new OscoreClientSecurity(context);
  const endpoint = w.net.endpoint({ address: '10.0.3.1', port: 40000 }, { nstart: 64 }, 77);
  for (let i = 0; i < 3; i++) {
    const r = await w.net.until(securedSender(endpoint, PROXY, security)(request(Method.GET, 'coap://10.0.0.1:5683/fw')));
    assert.equal(decodeString(r.message.payload), `firmware v${i + 1}`);
  }
  // An OSCORE FETCH (the outer code of an OSCORE observation) without Request-Hash is not cached either.
  const fetches = [0, 1].map(() => w.net.until(securedSender(endpoint, PROXY, security)({ ...request(Method.FETCH, 'coap://10.0.0.1:5683/fw'), payload: encodeString('q') })).catch((e: unknown) => e));
  await Promise.all(fetches);
  assert.equal(w.originRequests(), 3, 'three OSCORE GETs, three origin requests (the FETCHes have no handler: 4.05 from the origin)');
  assert.equal(w.cache.stats().entries, 0, 'nothing protected was stored');
  assert.equal(w.cache.stats().hits, 0);
});
