/**
 * Observe, block-wise and caching through nested OSCORE layers (draft-ietf-core-oscore-capable-
 * proxies, issue 6 item 4), and the §2.4 step-4 branch where the proxy-related options name the
 * proxy itself. Lockstep multi-node setups as in oscore-proxy.test.ts: client C, an OSCORE-capable
 * forward proxy P and an origin S, with an end-to-end context C–S and a hop context C–P.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blockwiseRequest } from '../src/client/blockwise.js';
import { Observation } from '../src/client/observe.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { RouteSecurity } from '../src/client/route.js';
import { PLAIN, securedSender, type MessageSecurity } from '../src/client/security.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType, encodeString, getOption, getStringOptions, getUintOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { parseCoapUri as parse } from '../src/coap/uri.js';
import type { EndpointContext } from '../src/exchange/context.js';
import type { CoapEndpoint } from '../src/exchange/endpoint.js';
import { decodeOscoreOption, decodePartialIv } from '../src/oscore/option.js';
import { OscoreSecurityContext } from '../src/oscore/security-context.js';
import { ResponseCache } from '../src/proxy/cache.js';
import { encodeMessage } from '../src/coap/codec.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';
import { msg, names, outerNumbers, pair, path, peel, type Pair } from './support/oscore-layers.js';

const S = { address: '10.0.0.1', port: 5683 };
const C = { address: '10.0.0.2', port: 40000 };
const P = { address: '10.0.0.3', port: 5683 };
const uriOf = (a: { address: string; port: number }) => `coap://${a.address}:${a.port}`;



const pivOf = (m: CoapMessage): number | undefined => {
  const piv = decodeOscoreOption(getOption(m, OptionNumber.Oscore)!).piv;
  return piv ? decodePartialIv(piv) : undefined;
};
const kidOf = (m: CoapMessage): number | undefined => decodeOscoreOption(getOption(m, OptionNumber.Oscore)!).kid?.[0];

interface Setup {
  net: FakeNetwork;
  client: CoapEndpoint;
  origin: CoapServer;
  proxyServer: CoapServer;
  proxy: ForwardProxy;
  cs: Pair;
  cp: Pair;
  /** What the proxy was about to forward (its own layer removed), in order. */
  seen: CoapMessage[];
  /** Layers the proxy removed per forwarded request. */
  removedByProxy: string[][];
  /** Layers the origin's application saw removed per request. */
  removedByOrigin: string[][];
  state: { alarm: number; body: Buffer; posted: Buffer | undefined; gets: number };
  route(uri: string, e2e?: MessageSecurity): RouteSecurity;
  legs(from: { address: string }, to: { address: string }): CoapMessage[];
}

function setup(options: { cache?: boolean; aliases?: string[]; proxyContexts?: OscoreSecurityContext[] } = {}): Setup {
  const net = new FakeNetwork();
  const cs = pair('C-S', 0x5f, 0x01);
  const cp = pair('C-P', 0x20, 0x02);
  const seen: CoapMessage[] = [];
  const removedByProxy: string[][] = [];
  const removedByOrigin: string[][] = [];
  const body = Buffer.from(Array.from({ length: 820 }, (_, i) => `LOG${String(i).padStart(6, '0')}|`).join('')).subarray(0, 8192);
  const state = { alarm: 0, body, posted: undefined as Buffer | undefined, gets: 0 };

  const origin = new CoapServer(net.endpoint(S, {}, 1), { security: new OscoreServerSecurity([cs.receiver]) });
  const record = (context: EndpointContext) => removedByOrigin.push(names(context));
  origin.resource('/alarm_status', { GET: (r) => (record(r.context), state.gets++, { code: ResponseCode.Content, payload: String(state.alarm), maxAge: 60 }) }, { observable: true });
  origin.resource('/big', { GET: (r) => (record(r.context), { code: ResponseCode.Content, payload: state.body }) });
  origin.resource('/upload', {
    POST: (r) => {
      record(r.context);
      state.posted = Buffer.from(r.payload);
      return { code: ResponseCode.Changed, payload: `got ${r.payload.length}` };
    },
  });

  const proxyServer = new CoapServer(net.endpoint(P, {}, 3), { security: new OscoreServerSecurity([cp.receiver, ...(options.proxyContexts ?? [])]) });
  proxyServer.resource('/local', { GET: (r) => ({ code: ResponseCode.Content, payload: `proxy itself, layers [${names(r.context).join(', ')}], path ${r.path.join('/')}` }) });
  const up = net.endpoint({ address: P.address, port: 40001 }, { nstart: 64 }, 103);
  const proxy = new ForwardProxy(proxyServer, {
    upstream: { endpoint: async () => up },
    allowDestinations: ['10.0.0.0/8'], // the fake network's private range (issue 17: refused unless allowed)
    ...(options.cache ? { cache: new ResponseCache({ maxBytes: 1 << 20, now: () => net.clock.now() }) } : {}),
    ...(options.aliases ? { aliases: options.aliases } : {}),
    authorize: (context, message) => {
      removedByProxy.push(names(context));
      seen.push(message);
      return true;
    },
  });
  const client = net.endpoint(C, { nstart: 64 }, 2);
  return {
    net, client, origin, proxyServer, proxy, cs, cp, seen, removedByProxy, removedByOrigin, state,
    route: (uri, e2e = new OscoreClientSecurity(cs.sender)) => new RouteSecurity(parse(uri), [{ uri: uriOf(P), context: cp.sender }], e2e),
    legs: (from, to) => net.log.filter((d) => d.from.address === from.address && d.to.address === to.address && d.message.code !== 0 && !d.dropped).map((d) => d.message),
  };
}

const bytesOf = (m: CoapMessage): Buffer => Buffer.from([...m.options.flatMap((o) => [...o.value]), ...m.payload]);

// --- 1. Observe through nested layers ------------------------------------------------------------

test('Observe through C–S and C–P: registration, notifications verified layer by layer, cancellation', async () => {
  const t = setup();
  const security = t.route(`${uriOf(S)}/alarm_status`);
  const observation = new Observation(t.client, P, msg(Method.GET, path('alarm_status')), { maxBodySize: 1 << 20, maxRestarts: 0 }, { reregisterDelay: () => 1e9 }, security);
  const first = await t.net.until(observation.next());
  assert.equal(first.done, false);
  assert.equal(first.value!.text(), '0');
  assert.deepEqual(names(first.value!.context), ['C-P (towards the receiver)', 'C-S (towards the receiver)'], 'the client removed C–P, then C–S');
  assert.ok(observation.registered);
  assert.equal(t.origin.observations.count('/alarm_status'), 1, 'the origin sees one observer: the proxy');
  assert.equal(t.proxy.activeUpstreamObservations, 1);

  // Registration, C→P: only OSCORE (and the outer Observe) visible; the proxy sees the end-to-end
  // message with Proxy-Scheme/Uri-Host, never the path.
  const reg = t.legs(C, P)[0]!;
  assert.deepEqual(outerNumbers(reg), [OptionNumber.Observe, OptionNumber.Oscore], 'C→P: outer Observe (for the proxy, RFC 8613 §4.1.3.5) and OSCORE');
  assert.deepEqual(peel(reg, [t.cs, t.cp]).layers, ['C-P', 'C-S']);
  const atProxy = t.seen[0]!;
  assert.deepEqual(t.removedByProxy, [['C-P']]);
  assert.equal(getUintOption(atProxy, OptionNumber.Observe), 0, 'the proxy sees Observe 0 and runs an upstream observation');
  assert.deepEqual(getStringOptions(atProxy, OptionNumber.UriPath), [], 'the proxy cannot see the resource');
  assert.equal(kidOf(atProxy), 0x5f, 'what the proxy forwards carries the C–S layer');
  const regUp = t.legs(P, S)[0]!;
  assert.deepEqual(peel(regUp, [t.cs, t.cp]).layers, ['C-S'], 'P→S: the end-to-end layer only');
  assert.equal(getUintOption(regUp, OptionNumber.Observe), 0);

  // Notifications: each one protected end to end by S (own Partial IV) and again by P (own Partial IV).
  for (const value of [1, 2, 3]) {
    t.state.alarm = value;
    t.origin.changed('/alarm_status');
    const n = await t.net.until(observation.next());
    assert.equal(n.value!.text(), String(value));
    assert.deepEqual(names(n.value!.context), ['C-P (towards the receiver)', 'C-S (towards the receiver)']);
  }
  const fromS = t.legs(S, P);
  const toC = t.legs(P, C);
  assert.equal(fromS.length, 4, 'first response + three notifications on S→P');
  assert.equal(toC.length, 4, 'and on P→C');
  for (const m of [...fromS, ...toC]) {
    assert.ok(getOption(m, OptionNumber.Oscore), 'every response and notification is protected');
    assert.equal(Buffer.from(m.payload).includes('alarm'), false);
  }
  // §2.5.1: the first response uses the request's nonce; notifications carry their own Partial IV,
  // strictly growing per layer (the end-to-end Notification Number and the proxy's).
  const sPivs = fromS.slice(1).map(pivOf);
  const pPivs = toC.slice(1).map(pivOf);
  assert.ok(sPivs.every((v, i) => v !== undefined && (i === 0 || v > sPivs[i - 1]!)), `S→P Partial IVs grow: ${sPivs}`);
  assert.ok(pPivs.every((v, i) => v !== undefined && (i === 0 || v > pPivs[i - 1]!)), `P→C Partial IVs grow: ${pPivs}`);
  // The proxy can remove only the outer C–P layer of what it sends; the notification inside it is
  // exactly what S sent (the proxy cannot read or alter it).
  for (let i = 1; i < toC.length; i++) {
    assert.equal(Buffer.from(toC[i]!.payload).equals(Buffer.from(fromS[i]!.payload)), false, 'P→C is wrapped again');
  }

  // Replay on the S→P leg with a fresh outer Observe (not integrity-protected): the proxy cannot
  // tell and passes it on inside a new C–P layer, but the client's end-to-end check (the C–S
  // Notification Number did not grow, RFC 8613 §7.4.1) drops it.
  const replayed = t.net.log.find((d) => d.from.address === S.address && d.message.code !== 0 && pivOf(d.message) === sPivs[0])!;
  const lastObserve = getUintOption(fromS.at(-1)!, OptionNumber.Observe)!;
  const forged: CoapMessage = { ...replayed.message, type: MessageType.NON, messageId: 0x6666, options: replayed.message.options.map((o) => (o.number === OptionNumber.Observe ? { number: o.number, value: Buffer.from([lastObserve + 1]) } : o)) };
  const toCBefore = t.legs(P, C).length;
  t.net.carry(S, { address: P.address, port: 40001 }, encodeMessage(forged));
  await t.net.run(20);
  assert.equal(t.legs(P, C).length, toCBefore + 1, 'the proxy forwarded the replayed notification (it cannot verify C–S)');
  // The origin's next Observe number equals the forged one (the proxy keeps the forged as newest);
  // the one after it is newer again.
  for (const value of [7, 8]) {
    t.state.alarm = value;
    t.origin.changed('/alarm_status');
    await t.net.run(20);
  }
  let text: string;
  do {
    text = (await t.net.until(observation.next())).value!.text();
    assert.notEqual(text, '1', 'the replayed notification (value 1) is never delivered');
  } while (text !== '8');

  // Replay on the P→C leg: an old notification with a fresh Message ID is not delivered (the C–P
  // layer's Partial IV did not grow).
  const before = t.net.log.length;
  const old = t.net.log.find((d) => d.from.address === P.address && d.to.address === C.address && d.message.code !== 0 && getUintOption(d.message, OptionNumber.Observe) !== undefined && pivOf(d.message) === pPivs[0])!;
  t.net.carry(P, C, encodeMessage({ ...old.message, type: MessageType.NON, messageId: 0x7777 }));
  await t.net.run(10);
  assert.ok(t.net.log.length > before);
  t.state.alarm = 9;
  t.origin.changed('/alarm_status');
  const after = await t.net.until(observation.next());
  assert.equal(after.value!.text(), '9', 'the replayed notification was dropped; the next genuine one arrives');

  // Cancellation: Observe 1 through both layers; the proxy drops the client and, being the last
  // observer, ends its upstream observation.
  const cancelled = t.net.until(observation.cancel());
  await cancelled;
  await t.net.run(50);
  const dereg = t.legs(C, P).at(-1)!;
  assert.deepEqual(peel(dereg, [t.cs, t.cp]).layers, ['C-P', 'C-S']);
  assert.equal(getUintOption(t.seen.at(-1)!, OptionNumber.Observe), 1, 'the proxy sees the deregistration');
  for (const m of fromS.slice(1)) {
    assert.deepEqual(outerNumbers(m), [OptionNumber.Observe, OptionNumber.Oscore], 'what the proxy sees of a notification: the outer Observe and the C–S OSCORE option');
  }
  const upstreamRequests = t.legs(P, S);
  const deregUp = upstreamRequests.at(-1)!;
  assert.deepEqual(peel(deregUp, [t.cs, t.cp]).layers, ['C-S'], 'the client’s own end-to-end deregistration went upstream');
  assert.equal(getUintOption(peel(deregUp, [t.cs]).inner, OptionNumber.Observe), 1);
  assert.deepEqual(Buffer.from(deregUp.token), Buffer.from(upstreamRequests[0]!.token), 'with the upstream observation’s token (RFC 7641 §3.6)');
  assert.equal(t.net.log.filter((d) => d.message.type === MessageType.RST).length, 0, 'no observation ended by RST: all by deregistration');
  assert.equal(t.proxyServer.observations.count(), 0, 'the proxy forgot the client');
  assert.equal(t.proxy.activeUpstreamObservations, 0, 'and ended the upstream observation');
  assert.equal(t.origin.observations.count('/alarm_status'), 0, 'the origin has no observer left');
  assert.deepEqual(t.removedByProxy.every((l) => l.length === 1 && l[0] === 'C-P'), true, 'the proxy only ever removed C–P');
});

// --- 2. Block-wise through nested layers -----------------------------------------------------------

test('block-wise GET (8 KiB) and POST (3 KiB) through C–S and C–P: every block a protected exchange; the proxy never sees the payload', async () => {
  const t = setup();
  const send = securedSender(t.client, P, t.route(`${uriOf(S)}/big`));
  const got = await t.net.until(blockwiseRequest(send, msg(Method.GET, path('big')), { szx: 6, maxBodySize: 1 << 20, maxRestarts: 0 }));
  assert.equal(got.message.code, ResponseCode.Content);
  assert.ok(Buffer.from(got.message.payload).equals(t.state.body), 'the 8 KiB body arrives intact');
  assert.deepEqual(names(got.context), ['C-P (towards the receiver)', 'C-S (towards the receiver)']);
  const gets = t.legs(C, P);
  assert.equal(gets.length, 8, 'eight Block2 exchanges of 1024 bytes');
  gets.forEach((m, i) => {
    assert.deepEqual(outerNumbers(m), [OptionNumber.Oscore], `block ${i}: only OSCORE outer on C→P`);
    const { layers, inner } = peel(m, [t.cs, t.cp]);
    assert.deepEqual(layers, ['C-P', 'C-S'], `block ${i}: both layers`);
    assert.equal(getOption(inner, OptionNumber.Block2)![0]! >> 4, i, `block ${i}: Block2 is end-to-end (inner) in the request`);
  });
  assert.equal(t.seen.length, 8, 'each block went through the proxy separately');
  for (const m of t.seen) {
    assert.equal(getOption(m, OptionNumber.Block2), undefined, 'the proxy cannot see which block is asked for');
    assert.ok(getOption(m, OptionNumber.Oscore), 'each block request is still protected end to end at the proxy');
  }
  const responses = [...t.legs(S, P), ...t.legs(P, C)];
  assert.equal(responses.length, 16);
  for (const m of responses) {
    assert.equal(getOption(m, OptionNumber.Block2), undefined, 'no outer Block2 on the responses: inner block-wise');
    assert.equal(Buffer.from(m.payload).includes('LOG0'), false, 'no leg carries the body in the clear');
  }
  assert.deepEqual(new Set(t.removedByProxy.map((l) => l.join())), new Set(['C-P']));

  // POST of 3 KiB: three Block1 exchanges.
  const secret = Buffer.from('TOPSECRET-'.repeat(308)).subarray(0, 3072);
  const before = t.seen.length;
  const beforeLegs = t.legs(C, P).length;
  const posted = await t.net.until(blockwiseRequest(securedSender(t.client, P, t.route(`${uriOf(S)}/upload`)), msg(Method.POST, path('upload'), secret), { szx: 6, maxBodySize: 1 << 20, maxRestarts: 0 }));
  assert.equal(posted.message.code, ResponseCode.Changed);
  assert.equal(Buffer.from(posted.message.payload).toString(), 'got 3072');
  assert.ok(t.state.posted?.equals(secret), 'the origin reassembled exactly the body sent');
  const posts = t.legs(C, P).slice(beforeLegs);
  assert.equal(posts.length, 3, 'three Block1 exchanges');
  posts.forEach((m, i) => {
    const { layers, inner } = peel(m, [t.cs, t.cp]);
    assert.deepEqual(layers, ['C-P', 'C-S']);
    assert.equal(getOption(inner, OptionNumber.Block1)![0]! >> 4, i, `block ${i}: Block1 inner`);
  });
  for (const m of t.seen.slice(before)) {
    assert.equal(getOption(m, OptionNumber.Block1), undefined, 'the proxy cannot see Block1');
    assert.equal(Buffer.from(m.payload).includes('TOPSECRET'), false, 'the proxy never sees the payload');
  }
  for (const d of t.net.log) assert.equal(bytesOf(d.message).includes('TOPSECRET'), false, `no leg carries the body in the clear (${d.from.address} → ${d.to.address})`);
  assert.deepEqual(t.removedByOrigin, [['C-S'], ['C-S']], 'the origin application ran once per operation, each time behind C–S only');
});

// --- 3. §4: the cache after the proxy's own layer is removed -------------------------------------

test('§4: a request protected only C–P is served from the cache keyed on the message after the C–P layer', async () => {
  const t = setup({ cache: true });
  const send = securedSender(t.client, P, t.route(`${uriOf(S)}/alarm_status`, PLAIN));
  const a = await t.net.until(send(msg(Method.GET, path('alarm_status'))));
  const b = await t.net.until(send(msg(Method.GET, path('alarm_status'))));
  assert.equal(Buffer.from(a.message.payload).toString(), '0');
  assert.equal(Buffer.from(b.message.payload).toString(), '0');
  assert.deepEqual(names(b.context), ['C-P (towards the receiver)'], 'the cached response came back inside the C–P layer');
  assert.equal(t.state.gets, 1, 'the origin answered once');
  assert.equal(t.legs(P, S).length, 1, 'one upstream request');
  assert.equal(t.proxy.stats.cacheHits, 1);
  // The two requests differ on the wire (each C–P layer has its own Partial IV) and are the same once
  // the proxy's layer is removed: that is what the cache key is computed on.
  const [r1, r2] = t.legs(C, P);
  assert.notDeepEqual(getOption(r1!, OptionNumber.Oscore), getOption(r2!, OptionNumber.Oscore));
  assert.deepEqual(outerNumbers(r1!), [OptionNumber.Oscore], 'the path is hidden on C→P');
  assert.deepEqual(getStringOptions(t.seen[1]!, OptionNumber.UriPath), ['alarm_status'], 'after its layer the proxy sees the request and can cache');
  for (const m of t.legs(P, C)) assert.ok(getOption(m, OptionNumber.Oscore), 'both responses protected C–P');
});

test('§4: a request with an end-to-end layer is never served from the cache', async () => {
  const t = setup({ cache: true });
  const send = securedSender(t.client, P, t.route(`${uriOf(S)}/alarm_status`));
  for (let i = 0; i < 2; i++) {
    const r = await t.net.until(send(msg(Method.GET, path('alarm_status'))));
    assert.equal(Buffer.from(r.message.payload).toString(), '0');
    assert.deepEqual(names(r.context), ['C-P (towards the receiver)', 'C-S (towards the receiver)']);
  }
  assert.equal(t.state.gets, 2, 'the origin answered both');
  assert.equal(t.legs(P, S).length, 2);
  assert.equal(t.proxy.stats.cacheHits, 0);
  // And a cached plain entry is not used for an end-to-end request to the same resource either.
  await t.net.until(securedSender(t.client, P, t.route(`${uriOf(S)}/alarm_status`, PLAIN))(msg(Method.GET, path('alarm_status'))));
  assert.equal(t.state.gets, 3);
  await t.net.until(send(msg(Method.GET, path('alarm_status'))));
  assert.equal(t.state.gets, 4, 'the end-to-end request went to the origin despite the cached plain response');
  assert.equal(t.proxy.stats.cacheHits, 0);
});

// --- 4. §2.4 step 4: the request URI identifies the proxy itself -----------------------------------

test('§2.4 step 4: proxy-related options naming the proxy itself are consumed and the request is processed locally', async () => {
  const t = setup({ aliases: ['proxy.example'] });
  // (a) Proxy-Scheme + Uri-Host = the proxy's own address, inside the C–P layer.
  const send = securedSender(t.client, P, t.route(`${uriOf(P)}/local`, PLAIN));
  const a = await t.net.until(send(msg(Method.GET, path('local'))));
  assert.equal(a.message.code, ResponseCode.Content);
  assert.equal(Buffer.from(a.message.payload).toString(), 'proxy itself, layers [C-P], path local');
  assert.deepEqual(names(a.context), ['C-P (towards the receiver)'], 'answered inside the C–P layer');
  assert.equal(t.removedByProxy.length, 1, 'the step-4 authorization check ran first');
  // (b) Proxy-Uri naming a configured name of the proxy, no OSCORE at all: Uri-Path from Proxy-Uri.
  const b = await t.net.until(securedSender(t.client, P, PLAIN)(msg(Method.GET, [{ number: OptionNumber.ProxyUri, value: encodeString('coap://proxy.example/local') }])));
  assert.equal(Buffer.from(b.message.payload).toString(), 'proxy itself, layers [], path local');
  // Nothing was ever forwarded: not to itself, not anywhere.
  assert.equal(t.net.log.filter((d) => d.from.address === P.address && d.from.port !== P.port).length, 0, 'no upstream leg');
  assert.equal(t.net.log.filter((d) => d.to.address === P.address).length, 2, 'one request per case reached the proxy');
});

test('§2.4 step 4 → step 1: after consuming its own proxy options the proxy goes on removing layers (an inner C–P application layer)', async () => {
  const app = pair('C-Papp', 0x33, 0x09);
  const t = setup({ proxyContexts: [app.receiver] });
  const security = t.route(`${uriOf(P)}/local`, new OscoreClientSecurity(app.sender));
  const r = await t.net.until(securedSender(t.client, P, security)(msg(Method.GET, path('local'))));
  assert.equal(r.message.code, ResponseCode.Content);
  assert.equal(Buffer.from(r.message.payload).toString(), 'proxy itself, layers [C-P, C-Papp], path local', 'the application saw both layers removed');
  assert.deepEqual(names(r.context), ['C-P (towards the receiver)', 'C-Papp (towards the receiver)'], 'the response carries both layers, in reverse order of removal');
  const wire = t.legs(C, P)[0]!;
  assert.deepEqual(peel(wire, [t.cp, app]).layers, ['C-P', 'C-Papp']);
  assert.equal(getOption(t.seen[0]!, OptionNumber.UriPath), undefined, 'at step 4 the path was still inside the inner layer');
  assert.equal(t.net.log.filter((d) => d.from.address === P.address && d.from.port !== P.port).length, 0, 'no upstream leg');
});
