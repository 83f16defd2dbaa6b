/**
 * OSCORE-capable proxies and nested OSCORE (draft-ietf-core-oscore-capable-proxies) on the lockstep
 * multi-node network: the Appendix B examples without EDHOC (B.1, B.2, B.3, B.6, B.7, B.8), the
 * §2.4 loop's branches, the §2.1 layer limit, §2.4.1 source lists, Hop-Limit (§3), tampering, and
 * a chain of three proxies with four layers. Each test states what every leg carries (outer
 * options, the layers present) and which layers each node removed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { encodeString, getOption, getStringOptions, getUintOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { parseCoapUri as parse } from '../src/coap/uri.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { RouteSecurity, TooManyLayersError, type RouteHop } from '../src/client/route.js';
import { PLAIN, securedSender, type MessageSecurity } from '../src/client/security.js';
import type { EndpointContext } from '../src/exchange/context.js';
import { OscoreSecurityContext } from '../src/oscore/security-context.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { allowList, type ForwardPolicy } from '../src/proxy/oscore-proxy.js';
import { ReverseProxy } from '../src/proxy/reverse-proxy.js';
import { OscoreServerSecurity, behindLayer, type SourceList } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork, type Delivery } from './support/network.js';
import { msg, names, outerNumbers, pair, path, peel } from './support/oscore-layers.js';

const S = { address: '10.0.0.1', port: 5683 };
const C = { address: '10.0.0.2', port: 40000 };
const P1 = { address: '10.0.0.3', port: 5683 };
const P2 = { address: '10.0.0.4', port: 5683 };
const P3 = { address: '10.0.0.5', port: 5683 };
const ORIGIN_URI = 'coap://10.0.0.1:5683/alarm_status';
const uriOf = (a: { address: string; port: number }) => `coap://${a.address}:${a.port}`;





interface World {
  net: FakeNetwork;
  /** Layers each node removed from the requests it handled (by node name). */
  removed: Map<string, string[][]>;
  /** The message each proxy was about to forward (after its own layers were removed). */
  seenByProxy: Map<string, CoapMessage[]>;
  send(message: CoapMessage, security: MessageSecurity, to?: { address: string; port: number }): Promise<{ message: CoapMessage; context: EndpointContext }>;
  leg(from: { address: string }, to: { address: string }, index?: number): Delivery;
  wire(): Delivery[];
}

function world(): World {
  const net = new FakeNetwork();
  const removed = new Map<string, string[][]>();
  const seenByProxy = new Map<string, CoapMessage[]>();
  const client = net.endpoint(C, { nstart: 64 }, 2);
  return {
    net,
    removed,
    seenByProxy,
    send: (message, security, to = P1) => net.until(securedSender(client, to, security)(message)),
    leg: (from, to, index = 0) => net.log.filter((d) => d.from.address === from.address && d.to.address === to.address && d.message.code !== 0)[index]!,
    wire: () => net.log,
  };
}

function origin(w: World, contexts: OscoreSecurityContext[], options: { sourceLists?: SourceList[]; maxOscoreLayers?: number } = {}): CoapServer {
  const security = contexts.length || options.sourceLists ? new OscoreServerSecurity(contexts, options.sourceLists ? { sourceLists: options.sourceLists } : {}) : undefined;
  const server = new CoapServer(w.net.endpoint(S, {}, 1), { ...(security ? { security } : {}), ...(options.maxOscoreLayers !== undefined ? { maxOscoreLayers: options.maxOscoreLayers } : {}) });
  const record = (context: EndpointContext) => w.removed.set('S', [...(w.removed.get('S') ?? []), names(context)]);
  server.resource('/alarm_status', {
    GET: (r) => (record(r.context), { code: ResponseCode.Content, payload: '0' }),
  });
  server.resource('/valve', { PUT: (r) => (record(r.context), { code: ResponseCode.Changed, payload: `valve ${r.text()}` }) });
  return server;
}

function forwardProxy(w: World, name: string, at: { address: string; port: number }, seed: number, options: { contexts?: OscoreSecurityContext[]; nextHop?: string; upstream?: OscoreSecurityContext; policy?: ForwardPolicy; maxOscoreLayers?: number } = {}) {
  const server = new CoapServer(w.net.endpoint(at, {}, seed), {
    ...(options.contexts ? { security: new OscoreServerSecurity(options.contexts) } : {}),
    ...(options.maxOscoreLayers !== undefined ? { maxOscoreLayers: options.maxOscoreLayers } : {}),
  });
  const up = w.net.endpoint({ address: at.address, port: 40001 }, { nstart: 64 }, seed + 100);
  const proxy = new ForwardProxy(server, {
    upstream: { endpoint: async () => up },
    allowDestinations: ['10.0.0.0/8'], // the fake network's private range (issue 17: refused unless allowed)
    ...(options.nextHop ? { nextHop: options.nextHop } : {}),
    ...(options.upstream ? { upstreamSecurity: () => options.upstream } : {}),
    authorize: (context, message) => {
      w.removed.set(name, [...(w.removed.get(name) ?? []), names(context)]);
      w.seenByProxy.set(name, [...(w.seenByProxy.get(name) ?? []), message]);
      return options.policy ? options.policy(context, message) : true;
    },
  });
  return { server, proxy };
}

const GET_ALARM = () => msg(Method.GET, path('alarm_status'));

/** No leg of the exchange shows the resource name or the payload in the clear. */
function assertHiddenOnEveryLeg(w: World): void {
  for (const d of w.wire()) {
    const bytes = Buffer.from([...d.message.options.flatMap((o) => [...o.value]), ...d.message.payload]);
    assert.equal(bytes.includes('alarm_status'), false, `alarm_status visible on ${d.from.address} → ${d.to.address}`);
  }
}

// --- Appendix B -----------------------------------------------------------------------------

test('B.1 (C–S, C–P): the proxy removes only its layer; proxy-related options travel inside it', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const cp = pair('C-P', 0x20, 0x02);
  origin(w, [cs.receiver]);
  forwardProxy(w, 'P', P1, 3, { contexts: [cp.receiver] });
  const security = new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1), context: cp.sender }], new OscoreClientSecurity(cs.sender));
  const r = await w.send(GET_ALARM(), security);
  assert.equal(r.message.code, ResponseCode.Content);
  assert.equal(Buffer.from(r.message.payload).toString(), '0');
  assert.deepEqual(names(r.context), ['C-P (towards the receiver)', 'C-S (towards the receiver)'], 'the client removed C-P, then C-S (§2.6)');

  const cToP = w.leg(C, P1).message;
  assert.deepEqual(outerNumbers(cToP), [OptionNumber.Oscore], 'C→P: only the OSCORE option is outer (Uri-Host, Proxy-Scheme inside, Appendix B.1)');
  assert.equal(cToP.code, Method.POST);
  const peeledCP = peel(cToP, [cs, cp]);
  assert.deepEqual(peeledCP.layers, ['C-P', 'C-S']);
  const pToS = w.leg({ address: P1.address }, S).message;
  assert.deepEqual(peel(pToS, [cs, cp]).layers, ['C-S'], 'P→S: the end-to-end layer only');
  assert.equal(getOption(pToS, OptionNumber.ProxyScheme), undefined);
  assert.deepEqual(w.removed.get('P'), [['C-P']], 'the proxy removed its own layer, nothing else');
  assert.deepEqual(w.removed.get('S'), [['C-S']]);
  const seen = w.seenByProxy.get('P')![0]!;
  assert.deepEqual(getStringOptions(seen, OptionNumber.UriPath), [], 'the proxy does not see the inner Uri-Path');
  assert.ok(getOption(seen, OptionNumber.Oscore), 'the proxy sees the end-to-end OSCORE option and forwards it');
  // Responses: protected on both legs; the proxy added its layer (Outer 2.04 each time).
  const sToP = w.leg(S, { address: P1.address }).message;
  const pToC = w.leg(P1, C).message;
  assert.equal(sToP.code, ResponseCode.Changed);
  assert.equal(pToC.code, ResponseCode.Changed);
  assert.ok(getOption(sToP, OptionNumber.Oscore) && getOption(pToC, OptionNumber.Oscore));
  assert.ok(pToC.payload.length > sToP.payload.length, 'the C–P layer wraps the protected response');
  assertHiddenOnEveryLeg(w);
});

test('B.2 (C–S, P–S): the proxy adds a layer towards the server; the server removes P–S then C–S', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const ps = pair('P-S', 0xd4, 0x03);
  origin(w, [cs.receiver, ps.receiver]);
  forwardProxy(w, 'P', P1, 3, { upstream: ps.sender });
  const security = new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1) }], new OscoreClientSecurity(cs.sender));
  const r = await w.send(GET_ALARM(), security);
  assert.equal(Buffer.from(r.message.payload).toString(), '0');
  const cToP = w.leg(C, P1).message;
  assert.ok(getOption(cToP, OptionNumber.ProxyScheme) && getOption(cToP, OptionNumber.UriHost), 'C→P: Proxy-Scheme and Uri-Host outer (Appendix B.2)');
  assert.deepEqual(peel(cToP, [cs, ps]).layers, ['C-S']);
  const pToS = w.leg({ address: P1.address }, S).message;
  assert.deepEqual(peel(pToS, [cs, ps]).layers, ['P-S', 'C-S']);
  assert.deepEqual(outerNumbers(pToS), [OptionNumber.Oscore], 'P→S: the Hop-Limit the proxy inserted is inside its layer');
  assert.deepEqual(w.removed.get('S'), [['P-S', 'C-S']]);
  assertHiddenOnEveryLeg(w);
});

test('B.3 (C–S, C–P, P–S): three contexts, each node removes only its own layers', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const cp = pair('C-P', 0x20, 0x02);
  const ps = pair('P-S', 0xd4, 0x03);
  origin(w, [cs.receiver, ps.receiver]);
  forwardProxy(w, 'P', P1, 3, { contexts: [cp.receiver], upstream: ps.sender });
  const security = new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1), context: cp.sender }], new OscoreClientSecurity(cs.sender));
  const r = await w.send(GET_ALARM(), security);
  assert.equal(Buffer.from(r.message.payload).toString(), '0');
  assert.deepEqual(peel(w.leg(C, P1).message, [cs, cp, ps]).layers, ['C-P', 'C-S']);
  assert.deepEqual(peel(w.leg({ address: P1.address }, S).message, [cs, cp, ps]).layers, ['P-S', 'C-S']);
  assert.deepEqual(w.removed.get('P'), [['C-P']]);
  assert.deepEqual(w.removed.get('S'), [['P-S', 'C-S']]);
  assertHiddenOnEveryLeg(w);
});

test('B.6 (two forward proxies: C–S, C–P1, P1–P2, P2–S): Proxy-Scheme travels inside the P1–P2 layer', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const cp1 = pair('C-P1', 0x20, 0x02);
  const p1p2 = pair('P1-P2', 0xd4, 0x04);
  const p2s = pair('P2-S', 0x77, 0x03);
  const all = [cs, cp1, p1p2, p2s];
  origin(w, [cs.receiver, p2s.receiver]);
  forwardProxy(w, 'P1', P1, 3, { contexts: [cp1.receiver], nextHop: uriOf(P2), upstream: p1p2.sender });
  forwardProxy(w, 'P2', P2, 5, { contexts: [p1p2.receiver], upstream: p2s.sender });
  // The client shares no context with P2: P1 forwards via P2 on its own (its next hop).
  const security = new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1), context: cp1.sender }, { uri: uriOf(P2) }], new OscoreClientSecurity(cs.sender));
  const r = await w.send(GET_ALARM(), security);
  assert.equal(Buffer.from(r.message.payload).toString(), '0');
  assert.deepEqual(peel(w.leg(C, P1).message, all).layers, ['C-P1', 'C-S']);
  const p1p2Leg = w.leg({ address: P1.address }, P2).message;
  assert.deepEqual(outerNumbers(p1p2Leg), [OptionNumber.Oscore], 'P1→P2: Proxy-Scheme, Uri-Host, Hop-Limit all inside the P1–P2 layer');
  const inside = peel(p1p2Leg, all);
  assert.deepEqual(inside.layers, ['P1-P2', 'C-S']);
  assert.deepEqual(peel(w.leg({ address: P2.address }, S).message, all).layers, ['P2-S', 'C-S']);
  assert.deepEqual(w.removed.get('P1'), [['C-P1']]);
  assert.deepEqual(w.removed.get('P2'), [['P1-P2']]);
  assert.deepEqual(w.removed.get('S'), [['P2-S', 'C-S']]);
  assertHiddenOnEveryLeg(w);
});

test('B.7 (reverse proxy, C–P, P–S): claimed by Uri-Host once the C–P layer revealed the path', async () => {
  const w = world();
  const cp = pair('C-P', 0x20, 0x02);
  const ps = pair('P-S', 0xd4, 0x03);
  origin(w, [ps.receiver]);
  const proxyServer = new CoapServer(w.net.endpoint(P1, {}, 3), { security: new OscoreServerSecurity([cp.receiver]) });
  const up = w.net.endpoint({ address: P1.address, port: 40001 }, {}, 103);
  const seen: string[][] = [];
  new ReverseProxy(proxyServer, {
    upstream: { endpoint: async () => up },
    mappings: [{ host: 'dev.example', target: uriOf(S), context: ps.sender }],
    authorize: (context) => (seen.push(names(context)), true),
  });
  // The client believes the proxy is the origin: plain OSCORE with it, Uri-Host outer.
  const request = msg(Method.GET, [{ number: OptionNumber.UriHost, value: encodeString('dev.example') }, ...path('alarm_status')]);
  const r = await w.send(request, new OscoreClientSecurity(cp.sender));
  assert.equal(Buffer.from(r.message.payload).toString(), '0');
  const cToP = w.leg(C, P1).message;
  assert.deepEqual(outerNumbers(cToP), [OptionNumber.UriHost, OptionNumber.Oscore], 'C→P: Uri-Host outer (Appendix B.7)');
  assert.deepEqual(peel(cToP, [cp, ps]).layers, ['C-P']);
  const pToS = w.leg({ address: P1.address }, S).message;
  assert.deepEqual(outerNumbers(pToS), [OptionNumber.Oscore], 'P→S: no Uri-Host (IP literal), the path inside P–S');
  assert.deepEqual(peel(pToS, [cp, ps]).layers, ['P-S']);
  assert.deepEqual(seen, [['C-P']]);
  assert.deepEqual(w.removed.get('S'), [['P-S']]);
  assertHiddenOnEveryLeg(w);
});

test('B.8 (reverse proxy, C–S, C–P, P–S): the prefix is inside C–P, the resource inside C–S', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const cp = pair('C-P', 0x20, 0x02);
  const ps = pair('P-S', 0xd4, 0x03);
  origin(w, [cs.receiver, ps.receiver]);
  const proxyServer = new CoapServer(w.net.endpoint(P1, {}, 3), { security: new OscoreServerSecurity([cp.receiver]) });
  const up = w.net.endpoint({ address: P1.address, port: 40001 }, {}, 103);
  const seen: CoapMessage[] = [];
  new ReverseProxy(proxyServer, {
    upstream: { endpoint: async () => up },
    mappings: [{ prefix: '/dev1', target: uriOf(S), context: ps.sender }],
    authorize: (_c, m) => (seen.push(m), true),
  });
  const hops: RouteHop[] = [{ uri: `${uriOf(P1)}/dev1`, kind: 'reverse', context: cp.sender }];
  const r = await w.send(GET_ALARM(), new RouteSecurity(parse(ORIGIN_URI), hops, new OscoreClientSecurity(cs.sender)));
  assert.equal(Buffer.from(r.message.payload).toString(), '0');
  const cToP = w.leg(C, P1).message;
  assert.deepEqual(outerNumbers(cToP), [OptionNumber.Oscore]);
  const peeled = peel(cToP, [cs, cp, ps]);
  assert.deepEqual(peeled.layers, ['C-P', 'C-S']);
  assert.deepEqual(getStringOptions(seen[0]!, OptionNumber.UriPath), ['dev1'], 'the proxy sees its prefix only');
  assert.deepEqual(peel(w.leg({ address: P1.address }, S).message, [cs, cp, ps]).layers, ['P-S', 'C-S']);
  assert.deepEqual(w.removed.get('S'), [['P-S', 'C-S']]);
  assertHiddenOnEveryLeg(w);
});

// --- the §2.4 loop's branches ---------------------------------------------------------------

test('§2.4 step 4: a client outside the allow-list gets 4.01, protected with its own layer', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const alice = pair('alice', 0x20, 0x02);
  const mallory = pair('mallory', 0x21, 0x02);
  origin(w, [cs.receiver]);
  forwardProxy(w, 'P', P1, 3, { contexts: [alice.receiver, mallory.receiver], policy: allowList(['alice']) });
  const ok = await w.send(GET_ALARM(), new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1), context: alice.sender }], new OscoreClientSecurity(cs.sender)));
  assert.equal(ok.message.code, ResponseCode.Content);
  const refused = await w.send(GET_ALARM(), new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1), context: mallory.sender }], PLAIN));
  assert.equal(refused.message.code, ResponseCode.Unauthorized);
  assert.ok(getOption(w.leg(P1, C, 1).message, OptionNumber.Oscore), 'the 4.01 went back protected with the mallory layer (§2.5)');
  assert.deepEqual(names(refused.context), ['mallory (towards the receiver)']);
  // No OSCORE at all: no authenticated context, refused too.
  const plain = await w.send(msg(Method.GET, [{ number: OptionNumber.ProxyScheme, value: encodeString('coap') }, { number: OptionNumber.UriHost, value: encodeString(S.address) }, ...path('alarm_status')]), PLAIN);
  assert.equal(plain.message.code, ResponseCode.Unauthorized);
  assert.equal(w.net.log.filter((d) => d.to.address === S.address).length, 1, 'only alice reached the server');
});

test('§2.4 step 2: proxy-related options at an endpoint that is no proxy give 5.05 over the removed layer', async () => {
  const w = world();
  const cp = pair('C-P', 0x20, 0x02);
  // A plain server at P1's address with a context for the client, but no forwarding.
  new CoapServer(w.net.endpoint(P1, {}, 3), { security: new OscoreServerSecurity([cp.receiver]) });
  const r = await w.send(GET_ALARM(), new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1), context: cp.sender }], PLAIN));
  assert.equal(r.message.code, ResponseCode.ProxyingNotSupported);
  assert.ok(getOption(w.leg(P1, C).message, OptionNumber.Oscore), '5.05 protected with the C–P layer');
});

test('§2.4 step 5: no OSCORE left and no application → 4.04, protected', async () => {
  const w = world();
  const cp = pair('C-P', 0x20, 0x02);
  forwardProxy(w, 'P', P1, 3, { contexts: [cp.receiver] });
  const r = await w.send(msg(Method.GET, path('nothing-here')), new OscoreClientSecurity(cp.sender));
  assert.equal(r.message.code, ResponseCode.NotFound);
  assert.ok(getOption(w.leg(P1, C).message, OptionNumber.Oscore));
});

test('§2.4 step 6: a failure on the second layer is answered over the first (§2.5)', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const ps = pair('P-S', 0xd4, 0x03);
  origin(w, [ps.receiver]); // the server does not know C–S
  forwardProxy(w, 'P', P1, 3, { upstream: ps.sender });
  await assert.rejects(
    w.send(GET_ALARM(), new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1) }], new OscoreClientSecurity(cs.sender))),
    /unprotected 4\.01.*Security context not found/,
  );
  const sToP = w.leg(S, { address: P1.address }).message;
  assert.ok(getOption(sToP, OptionNumber.Oscore), 'the 4.01 for the C–S layer went back inside the P–S layer');
  assert.deepEqual(w.removed.get('S') ?? [], [], 'no application saw the request');
});

// --- tampering ------------------------------------------------------------------------------

test('tampering between hops is detected by the layer of that leg', async () => {
  for (const leg of ['C→P', 'P→S'] as const) {
    const w = world();
    const cs = pair('C-S', 0x5f, 0x01);
    const cp = pair('C-P', 0x20, 0x02);
    const ps = pair('P-S', 0xd4, 0x03);
    origin(w, [cs.receiver, ps.receiver]);
    forwardProxy(w, 'P', P1, 3, { contexts: [cp.receiver], upstream: ps.sender });
    w.net.mutate = (d, data) => {
      const hit = leg === 'C→P' ? d.to.address === P1.address && d.from.address === C.address : d.to.address === S.address;
      if (!hit || d.message.code === 0 || d.message.payload.length === 0) return undefined;
      const copy = Buffer.from(data);
      copy[copy.length - 1]! ^= 1;
      return copy;
    };
    const security = new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1), context: cp.sender }], new OscoreClientSecurity(cs.sender));
    if (leg === 'C→P') {
      await assert.rejects(w.send(GET_ALARM(), security), /unprotected 4\.00.*Decryption failed/);
      assert.equal(w.removed.get('P'), undefined, 'the proxy forwarded nothing');
    } else {
      // The proxy's 5.02 is authentic for the C–P layer, but carries no end-to-end layer: the
      // client does not take it for the origin's answer.
      await assert.rejects(w.send(GET_ALARM(), security), /unprotected 5\.02.*unprotected 4\.00/);
      assert.ok(getOption(w.leg(P1, C).message, OptionNumber.Oscore), 'the 5.02 went back inside the C–P layer');
      assert.deepEqual(w.removed.get('S') ?? [], []);
    }
  }
});

// --- layer limit (§2.1) ---------------------------------------------------------------------

test('§2.1: an outgoing request beyond the layer limit is not sent', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const cp = pair('C-P', 0x20, 0x02);
  const security = new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1), context: cp.sender }], new OscoreClientSecurity(cs.sender), { maxLayers: 1 });
  await assert.rejects(w.send(GET_ALARM(), security), TooManyLayersError);
  assert.equal(w.net.log.length, 0);
  assert.throws(() => new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1), context: cp.sender }, { uri: uriOf(P2), context: cs.sender }], PLAIN, { maxLayers: 1 }), TooManyLayersError);
});

test('§2.1: an incoming request beyond the layer limit gets 4.01, protected with the layers removed', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const ps = pair('P-S', 0xd4, 0x03);
  origin(w, [cs.receiver, ps.receiver], { maxOscoreLayers: 1 });
  forwardProxy(w, 'P', P1, 3, { upstream: ps.sender });
  await assert.rejects(
    w.send(GET_ALARM(), new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1) }], new OscoreClientSecurity(cs.sender))),
    /unprotected 4\.01.*too many OSCORE layers/,
  );
  assert.ok(getOption(w.leg(S, { address: P1.address }).message, OptionNumber.Oscore), 'the 4.01 is inside the P–S layer');
});

// --- onion through three proxies --------------------------------------------------------------

test('a chain of three proxies with four layers: each proxy learns only the next hop', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const c1 = pair('C-P1', 0x20, 0x02);
  const c2 = pair('C-P2', 0x22, 0x04);
  const c3 = pair('C-P3', 0x23, 0x05);
  const all = [cs, c1, c2, c3];
  origin(w, [cs.receiver]);
  forwardProxy(w, 'P1', P1, 3, { contexts: [c1.receiver] });
  forwardProxy(w, 'P2', P2, 5, { contexts: [c2.receiver] });
  forwardProxy(w, 'P3', P3, 7, { contexts: [c3.receiver] });
  const hops: RouteHop[] = [
    { uri: uriOf(P1), context: c1.sender },
    { uri: uriOf(P2), context: c2.sender },
    { uri: uriOf(P3), context: c3.sender },
  ];
  const r = await w.send(GET_ALARM(), new RouteSecurity(parse(ORIGIN_URI), hops, new OscoreClientSecurity(cs.sender), { hopLimit: 8 }));
  assert.equal(Buffer.from(r.message.payload).toString(), '0');
  assert.equal(names(r.context).length, 4);
  assert.deepEqual(peel(w.leg(C, P1).message, all).layers, ['C-P1', 'C-P2', 'C-P3', 'C-S']);
  assert.deepEqual(peel(w.leg({ address: P1.address }, P2).message, all).layers, ['C-P2', 'C-P3', 'C-S']);
  assert.deepEqual(peel(w.leg({ address: P2.address }, P3).message, all).layers, ['C-P3', 'C-S']);
  assert.deepEqual(peel(w.leg({ address: P3.address }, S).message, all).layers, ['C-S']);
  const hostSeenBy = (p: string) => Buffer.from(getOption(w.seenByProxy.get(p)![0]!, OptionNumber.UriHost)!).toString();
  assert.deepEqual([hostSeenBy('P1'), hostSeenBy('P2'), hostSeenBy('P3')], [P2.address, P3.address, S.address]);
  assert.deepEqual([1, 2, 3].map((i) => getUintOption(w.seenByProxy.get(`P${i}`)![0]!, OptionNumber.HopLimit)), [8, 7, 6], 'Hop-Limit decremented hop by hop');
  assert.deepEqual(w.removed.get('S'), [['C-S']]);
  assertHiddenOnEveryLeg(w);
});

// --- Hop-Limit (§3) ---------------------------------------------------------------------------

test('§3: the client’s Hop-Limit is Class U end to end and protected for the first proxy', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const cp = pair('C-P', 0x20, 0x02);
  origin(w, [cs.receiver]);
  forwardProxy(w, 'P', P1, 3, { contexts: [cp.receiver] });
  const r = await w.send(GET_ALARM(), new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1), context: cp.sender }], new OscoreClientSecurity(cs.sender), { hopLimit: 5 }));
  assert.equal(r.message.code, ResponseCode.Content);
  const cToP = w.leg(C, P1).message;
  assert.equal(getOption(cToP, OptionNumber.HopLimit), undefined, 'not outer on C→P: inside the C–P layer');
  const afterCP = peel(cToP, [cp]).inner;
  assert.equal(getUintOption(afterCP, OptionNumber.HopLimit), 5, 'outside the end-to-end layer, for the proxy');
  const e2eInner = peel(afterCP, [cs]).inner;
  assert.equal(getUintOption(e2eInner, OptionNumber.HopLimit), 5, 'after the C–S layer only the outer value remains (never encrypted end to end)');
  assert.equal(getUintOption(w.leg({ address: P1.address }, S).message, OptionNumber.HopLimit), 4, 'the proxy decremented it');
  // Hop-Limit 1: the proxy answers 5.08, protected.
  const stop = await w.send(GET_ALARM(), new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1), context: cp.sender }], PLAIN, { hopLimit: 1 }));
  assert.equal(stop.message.code, ResponseCode.HopLimitReached);
});

// --- §2.4.1 ------------------------------------------------------------------------------------

test('§2.4.1: the end-to-end context is only eligible behind the proxy’s layer', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const ps = pair('P-S', 0xd4, 0x03);
  origin(w, [ps.receiver], { sourceLists: [{ match: behindLayer('P-S'), contexts: [cs.receiver] }] });
  forwardProxy(w, 'P', P1, 3, { upstream: ps.sender });
  const r = await w.send(GET_ALARM(), new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1) }], new OscoreClientSecurity(cs.sender)));
  assert.equal(Buffer.from(r.message.payload).toString(), '0');
  // Straight to the server, the C–S context is not in the list searched: same 4.01 as an unknown kid.
  await assert.rejects(w.send(GET_ALARM(), new OscoreClientSecurity(cs.sender), S), /unprotected 4\.01.*Security context not found/);
});

// --- unrecognised options (§2.2) ----------------------------------------------------------------

test('§2.2: a protecting proxy answers 4.02 for an option it does not recognise', async () => {
  const w = world();
  const cp = pair('C-P', 0x20, 0x02);
  const ps = pair('P-S', 0xd4, 0x03);
  origin(w, [ps.receiver]);
  forwardProxy(w, 'P', P1, 3, { contexts: [cp.receiver], upstream: ps.sender });
  const request = msg(Method.GET, [...path('alarm_status'), { number: 65000, value: encodeString('x') }]);
  const r = await w.send(request, new RouteSecurity(parse(ORIGIN_URI), [{ uri: uriOf(P1), context: cp.sender }], PLAIN));
  assert.equal(r.message.code, ResponseCode.BadOption);
  assert.equal(w.net.log.filter((d) => d.to.address === S.address).length, 0);
});

// --- actuation -----------------------------------------------------------------------------------

test('PUT through B.3 actuates the valve; the proxy never sees the payload', async () => {
  const w = world();
  const cs = pair('C-S', 0x5f, 0x01);
  const cp = pair('C-P', 0x20, 0x02);
  const ps = pair('P-S', 0xd4, 0x03);
  origin(w, [cs.receiver, ps.receiver]);
  forwardProxy(w, 'P', P1, 3, { contexts: [cp.receiver], upstream: ps.sender });
  const security = new RouteSecurity(parse('coap://10.0.0.1:5683/valve'), [{ uri: uriOf(P1), context: cp.sender }], new OscoreClientSecurity(cs.sender));
  const r = await w.send(msg(Method.PUT, path('valve'), Buffer.from('open-secret')), security);
  assert.equal(Buffer.from(r.message.payload).toString(), 'valve open-secret');
  const seen = w.seenByProxy.get('P')![0]!;
  assert.equal(Buffer.from(seen.payload).includes('open-secret'), false);
  for (const d of w.wire()) assert.equal(Buffer.from(d.message.payload).includes('open-secret'), false);
});
