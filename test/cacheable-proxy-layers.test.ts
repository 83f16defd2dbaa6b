/**
 * Cacheable OSCORE through an OSCORE-capable proxy (draft-ietf-core-oscore-capable-proxies §4 with
 * §2.3–§2.6, draft-ietf-core-cacheable-oscore §3.4), on the lockstep network: the proxy shares an
 * OSCORE context with each client (and, in the second test, one with the origin), outside the
 * end-to-end Deterministic Request. The cache key is the request once the proxy removed the
 * client's layer, so two clients with different contexts hit one entry; the stored response is
 * the origin's once the proxy removed its own upstream layer, and each client gets it under its
 * own layer and verifies it end to end.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { decodeString, getOption, type CoapMessage } from '../src/coap/message.js';
import { parseCoapUri } from '../src/coap/uri.js';
import { fromHex, toHex } from '../src/cose/cbor.js';
import { DeterministicClientSecurity } from '../src/client/deterministic.js';
import { RouteSecurity } from '../src/client/route.js';
import { securedSender } from '../src/client/security.js';
import { GroupContextStore } from '../src/group-oscore/context.js';
import { REQUEST_HASH_OPTION } from '../src/group-oscore/deterministic.js';
import { GroupManager, contextFromMemberFile } from '../src/group-oscore/manager.js';
import { ResponseCache } from '../src/proxy/cache.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';
import { msg, names, pair, path, peel } from './support/oscore-layers.js';

const ORIGIN = { address: '10.0.0.1', port: 5683 };
const PROXY = { address: '10.0.0.3', port: 5683 };
const UPSTREAM = { address: PROXY.address, port: 40001 };

function world(options: { upstreamLayer: boolean }) {
  const gm = GroupManager.create({ name: 'firmware' });
  gm.addDeterministicClient();
  const origin = gm.addMember('origin');
  for (const name of ['c1', 'c2']) gm.addMember(name);
  const net = new FakeNetwork();
  const contexts = new GroupContextStore();
  const originContext = contextFromMemberFile(gm.memberFile('origin'));
  contexts.install('firmware', originContext);
  const ps = pair('P-S', 0x30, 0x31);
  const server = new CoapServer(net.endpoint(ORIGIN, {}, 1), { group: { contexts }, ...(options.upstreamLayer ? { security: new OscoreServerSecurity([ps.receiver]) } : {}) });
  let served = 0;
  server.resource('/fw', { GET: (r) => (served++, { code: ResponseCode.Content, maxAge: 10, payload: `firmware v1 (layers at the origin: ${names(r.context).join(', ')})` }) }, { deterministic: true });
  const c1p = pair('C1-P', 0x21, 0x02);
  const c2p = pair('C2-P', 0x22, 0x03);
  const proxyServer = new CoapServer(net.endpoint(PROXY, {}, 3), { security: new OscoreServerSecurity([c1p.receiver, c2p.receiver]) });
  const upstream = net.endpoint(UPSTREAM, { nstart: 64 }, 4);
  const cache = new ResponseCache({ maxBytes: 1 << 20, now: () => net.clock.now() });
  const seen: CoapMessage[] = [];
  const proxy = new ForwardProxy(proxyServer, {
    upstream: { endpoint: async () => upstream },
    allowDestinations: ['10.0.0.0/8'],
    cache,
    authorize: (_context, message) => (seen.push(message), true),
    ...(options.upstreamLayer ? { upstreamSecurity: () => ps.sender } : {}),
  });
  const clients = ([['c1', c1p, 1], ['c2', c2p, 2]] as const).map(([name, layer, i]) => {
    const endpoint = net.endpoint({ address: `10.0.1.${i}`, port: 40000 }, {}, 10 + i);
    const e2e = new DeterministicClientSecurity(contextFromMemberFile(gm.memberFile(name)), { now: () => net.clock.now(), server: fromHex(origin.senderId) });
    const security = new RouteSecurity(parseCoapUri('coap://10.0.0.1:5683/fw'), [{ uri: 'coap://10.0.0.3:5683', context: layer.sender }], e2e);
    return { name, address: `10.0.1.${i}`, get: () => net.until(securedSender(endpoint, PROXY, security)(msg(Method.GET, path('fw')))) };
  });
  const legs = (from: string, to: string) => net.log.filter((d) => d.from.address === from && d.to.address === to && d.message.code !== 0).map((d) => d.message);
  return { net, proxy, cache, clients, seen, legs, ps, c1p, c2p, gid: toHex(originContext.gid), served: () => served };
}

test('two clients with their own OSCORE layer for the proxy share one cached protected response (the key is the request after the proxy removed its layer, §4)', async () => {
  const w = world({ upstreamLayer: false });
  for (const c of w.clients) {
    const r = await c.get();
    assert.equal(r.message.code, ResponseCode.Content);
    assert.equal(decodeString(r.message.payload), 'firmware v1 (layers at the origin: deterministic client)');
    assert.deepEqual(names(r.context), [`${c.name.toUpperCase()}-P (towards the receiver)`, 'group member'], `${c.name}: its proxy layer removed, then the group's verified`);
    assert.equal(r.context.oscore?.[1]?.kidContext, w.gid);
  }
  assert.equal(w.served(), 1, 'the origin answered once');
  assert.equal(w.proxy.stats.cacheHits, 1, 'the second client was served from the cache');
  assert.equal(w.cache.stats().entries, 1);
  // What the proxy keyed on: the same Deterministic Request from both, once their layers were removed.
  assert.equal(w.seen.length, 2);
  assert.deepEqual(w.seen[0]!.payload, w.seen[1]!.payload);
  assert.ok(w.seen.every((m) => m.code === Method.FETCH && getOption(m, REQUEST_HASH_OPTION) !== undefined));
  // On the wire the two clients' requests differ (each its own layer), and hide the Request-Hash.
  const [toProxy1, toProxy2] = [w.legs('10.0.1.1', PROXY.address)[0]!, w.legs('10.0.1.2', PROXY.address)[0]!];
  assert.notDeepEqual(toProxy1.payload, toProxy2.payload);
  assert.ok([toProxy1, toProxy2].every((m) => getOption(m, REQUEST_HASH_OPTION) === undefined && m.code === Method.POST));
  assert.deepEqual(peel(toProxy2, [w.c2p]).layers, ['C2-P']);
  // Each client got the one response under its own layer.
  const [back1, back2] = [w.legs(PROXY.address, '10.0.1.1')[0]!, w.legs(PROXY.address, '10.0.1.2')[0]!];
  assert.notDeepEqual(back1.payload, back2.payload);
});

test('a proxy with its own OSCORE layer towards the origin forwards, caches and serves Deterministic Requests (stored: the response after its layer was removed, §4)', async () => {
  const w = world({ upstreamLayer: true });
  for (const c of w.clients) {
    const r = await c.get();
    assert.equal(r.message.code, ResponseCode.Content, `${c.name}: ${decodeString(r.message.payload)}`);
    assert.equal(decodeString(r.message.payload), 'firmware v1 (layers at the origin: P-S, deterministic client)', 'the origin removed the proxy\'s layer, then the Deterministic Request');
    assert.equal(r.context.oscore?.[1]?.kidContext, w.gid, `${c.name} verified the response end to end`);
  }
  assert.equal(w.served(), 1);
  assert.equal(w.proxy.stats.cacheHits, 1);
  // The proxy-to-origin leg: the proxy's layer around the Deterministic Request, Request-Hash inside it (§2.2: Class E for X).
  const up = w.legs(PROXY.address, ORIGIN.address);
  assert.equal(up.length, 1);
  assert.equal(getOption(up[0]!, REQUEST_HASH_OPTION), undefined);
  const { layers, inner } = peel(up[0]!, [w.ps]);
  assert.deepEqual(layers, ['P-S']);
  assert.equal(inner.code, Method.FETCH);
  assert.deepEqual(getOption(inner, REQUEST_HASH_OPTION), getOption(w.seen[0]!, REQUEST_HASH_OPTION));
  // The origin's response came back under the proxy's layer; what was cached is the group-protected one inside it.
  const down = w.legs(ORIGIN.address, PROXY.address);
  assert.equal(down.length, 1);
  assert.equal(down[0]!.code, ResponseCode.Changed, 'outer code of the proxy\'s layer (RFC 8613 §4.2)');
});
