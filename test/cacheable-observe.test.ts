/**
 * Observe through a caching proxy with Deterministic Requests (draft-ietf-core-cacheable-oscore
 * §3.1, §3.4.2 steps 5 and 7, §3.4.4 steps 3, 4 and 8), on the lockstep network with its fake
 * clock: several group members observe one resource with the same Deterministic Request (Inner
 * Observe 0; the Outer Observe registers or deregisters), the proxy keeps one upstream observation
 * for all of them (RFC 7641 §5), and every notification — protected by the origin in group mode
 * with a fresh Partial IV — is verified end to end by each client. A client that leaves by
 * deregistering or by RST does not end the others' observation; the last one leaving ends the
 * upstream one.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, getOption, getUintOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { fromHex, toHex } from '../src/cose/cbor.js';
import { DeterministicClientSecurity } from '../src/client/deterministic.js';
import { Observation } from '../src/client/observe.js';
import { securedSender } from '../src/client/security.js';
import { GroupContextStore } from '../src/group-oscore/context.js';
import { REQUEST_HASH_OPTION } from '../src/group-oscore/deterministic.js';
import { GroupManager, contextFromMemberFile } from '../src/group-oscore/manager.js';
import { ResponseCache } from '../src/proxy/cache.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';

const ORIGIN = { address: '10.0.0.1', port: 5683 };
const PROXY = { address: '10.0.0.3', port: 5683 };
const UPSTREAM = { address: PROXY.address, port: 40001 };
const URI = 'coap://10.0.0.1:5683/temp';

const request = (code: number, uri: string): CoapMessage => ({
  type: MessageType.CON,
  code,
  messageId: 0,
  token: EMPTY_BYTES,
  options: [{ number: OptionNumber.ProxyUri, value: encodeString(uri) }],
  payload: EMPTY_BYTES,
});

function world(clients: readonly string[]) {
  const gm = GroupManager.create({ name: 'sensors' });
  gm.addDeterministicClient();
  const origin = gm.addMember('origin');
  for (const name of clients) gm.addMember(name);
  const net = new FakeNetwork();
  const contexts = new GroupContextStore();
  const originContext = contextFromMemberFile(gm.memberFile('origin'));
  contexts.install('sensors', originContext);
  const server = new CoapServer(net.endpoint(ORIGIN, {}, 1), { group: { contexts } });
  let temperature = 20;
  let handled = 0;
  server.resource('/temp', { GET: () => (handled++, { code: ResponseCode.Content, maxAge: 60, payload: `${temperature} C` }) }, { deterministic: true, observable: true });
  const proxyServer = new CoapServer(net.endpoint(PROXY, {}, 3));
  const upstream = net.endpoint(UPSTREAM, { nstart: 64 }, 4);
  const proxy = new ForwardProxy(proxyServer, { upstream: { endpoint: async () => upstream }, allowDestinations: ['10.0.0.0/8'], cache: new ResponseCache({ maxBytes: 1 << 20, now: () => net.clock.now() }) });
  const members = new Map(clients.map((name, i) => {
    const endpoint = net.endpoint({ address: `10.0.1.${i + 1}`, port: 40000 }, { nstart: 64 }, 10 + i);
    const security = new DeterministicClientSecurity(contextFromMemberFile(gm.memberFile(name)), { now: () => net.clock.now(), server: fromHex(origin.senderId) });
    return [name, { endpoint, security }] as const;
  }));
  /** The requests the origin received from the proxy, with their Outer Observe. */
  const originRequests = () => net.log.filter((d) => d.to.address === ORIGIN.address && d.message.code !== 0).map((d) => getUintOption(d.message, OptionNumber.Observe));
  return {
    net, server, proxy, members, originRequests,
    gid: toHex(originContext.gid),
    handled: () => handled,
    change: (value: number) => {
      temperature = value;
      server.changed('/temp');
    },
  };
}

type World = ReturnType<typeof world>;

/** One client's observation of /temp through the proxy; what it verified, in order. */
function observe(w: World, name: string) {
  const { endpoint, security } = w.members.get(name)!;
  const observation = new Observation(endpoint, PROXY, request(Method.GET, URI), { maxBodySize: 1 << 16, maxRestarts: 0 }, { reregisterDelay: () => 1e9 }, security);
  const seen: string[] = [];
  const done = (async () => {
    for await (const n of observation) {
      assert.equal(n.context.oscore?.[0]?.kidContext, w.gid, `${name}: every notification verified by the group's layer`);
      seen.push(n.text());
    }
  })();
  return { observation, seen, done };
}

test('three members observe one resource with one Deterministic Request: one upstream observation, every notification verified by each', async () => {
  const w = world(['c1', 'c2', 'c3']);
  const observers = ['c1', 'c2', 'c3'].map((name) => observe(w, name));
  await w.net.run(2000);
  for (const o of observers) assert.equal(o.observation.registered, true);
  assert.deepEqual(w.originRequests(), [0], 'one registration reached the origin');
  assert.equal(w.proxy.stats.upstreamObservations, 1);
  assert.equal(w.server.observations.count('/temp'), 1, 'the origin has one observer: the proxy');

  for (const value of [21, 22, 23]) {
    w.change(value);
    await w.net.run(2000);
  }
  for (const o of observers) assert.deepEqual(o.seen, ['20 C', '21 C', '22 C', '23 C']);
  assert.equal(w.handled(), 4, 'the origin rendered each state once, for all three');
  assert.deepEqual(w.originRequests(), [0], 'no further request upstream');

  // Every request on the wire is the same Deterministic Request: outer FETCH, the Request-Hash, one ciphertext.
  const requests = w.net.log.filter((d) => d.to.address === PROXY.address && d.to.port === PROXY.port && d.message.code === Method.FETCH);
  assert.equal(new Set(requests.map((d) => toHex(d.message.payload))).size, 1);
  assert.ok(requests.every((d) => getOption(d.message, REQUEST_HASH_OPTION) !== undefined && getOption(d.message, OptionNumber.UriPath) === undefined));
  await w.net.until(Promise.all(observers.map(async (o) => {
    await o.observation.cancel();
    await o.done;
  })));
});

test('a member that deregisters, and one whose notification gets a RST, leave the others observing; the last one leaving ends the upstream observation', async () => {
  const w = world(['c1', 'c2', 'c3']);
  const [a, b] = ['c1', 'c2'].map((name) => observe(w, name));
  // c3 registers on a raw stream and drops it: its endpoint answers the next notification with RST.
  const c3 = w.members.get('c3')!;
  const registration = c3.security.protect({ ...request(Method.GET, URI), options: [...request(Method.GET, URI).options, { number: OptionNumber.Observe, value: new Uint8Array(0) }] });
  const raw = c3.endpoint.openStream(PROXY, { maxResponses: Infinity });
  const rawSeen: string[] = [];
  raw.consume({ onResponse: (r) => {
    const verified = registration.verify(r.message, true);
    assert.ok(!(verified instanceof Error), String(verified));
    rawSeen.push(decodeString(verified.payload));
  }, onEnd: () => {} });
  raw.send(registration.message);
  await w.net.run(2000);
  assert.deepEqual(rawSeen, ['20 C']);
  assert.deepEqual(w.originRequests(), [0]);

  raw.close();
  w.change(21);
  await w.net.run(2000);
  assert.ok(w.net.log.some((d) => d.from.address === '10.0.1.3' && d.message.type === MessageType.RST), 'c3 rejected the notification with RST');
  assert.deepEqual(a!.seen, ['20 C', '21 C']);
  assert.deepEqual(b!.seen, ['20 C', '21 C']);

  // c1 deregisters (Outer Observe 1 on the same Deterministic Request): the proxy answers it from the observation.
  await w.net.until(a!.observation.cancel());
  await w.net.until(a!.done);
  w.change(22);
  await w.net.run(2000);
  assert.deepEqual(a!.seen, ['20 C', '21 C'], 'c1 gets nothing after leaving');
  assert.deepEqual(b!.seen, ['20 C', '21 C', '22 C'], 'c2 still observes');
  assert.deepEqual(w.originRequests(), [0], 'the origin saw no deregistration yet');
  assert.equal(w.proxy.activeUpstreamObservations, 1);

  // c2, the last one, deregisters: the deregistration goes upstream and ends the origin's observation.
  await w.net.until(b!.observation.cancel());
  await w.net.until(b!.done);
  await w.net.run(2000);
  assert.deepEqual(w.originRequests(), [0, 1], 'the last deregistration reached the origin');
  assert.equal(w.proxy.activeUpstreamObservations, 0);
  assert.equal(w.server.observations.count('/temp'), 0, 'the origin no longer notifies the proxy');
});

test('a plain read with an Inner Observe is the same request as an observation (§3.1); the origin does not register it (§3.4.4 step 8)', async () => {
  const w = world(['c1', 'c2']);
  const reader = w.members.get('c2')!;
  const security = new DeterministicClientSecurity(reader.security.requester.context, { now: () => w.net.clock.now(), innerObserve: true });
  const read = await w.net.until(securedSender(reader.endpoint, PROXY, security)(request(Method.GET, URI)));
  assert.equal(read.message.code, ResponseCode.Content);
  assert.equal(getOption(read.message, OptionNumber.Observe), undefined, 'the Inner Observe of the response is ignored (step 4)');
  assert.equal(w.server.observations.count('/temp'), 0, 'no Outer Observe: no observation at the origin');
  const fromOrigin = w.net.log.find((d) => d.from.address === ORIGIN.address && d.message.code !== 0)!;
  assert.equal(getOption(fromOrigin.message, OptionNumber.Observe), undefined, 'no Outer Observe in the response (step 8)');

  const o = observe(w, 'c1');
  await w.net.run(2000);
  assert.deepEqual(o.seen, ['20 C']);
  const fetches = w.net.log.filter((d) => d.to.address === PROXY.address && d.to.port === PROXY.port && d.message.code === Method.FETCH);
  assert.equal(new Set(fetches.map((d) => toHex(d.message.payload))).size, 1, 'the reader and the observer sent one ciphertext');
  await w.net.until(o.observation.cancel());
});
