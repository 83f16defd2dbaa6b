/**
 * One OSCORE request layer (src/oscore/requester.ts) on every path a request takes: the same
 * rules hold for a direct request, an observation, a block-wise transfer, a route through an
 * OSCORE-capable proxy (`via`) and the proxy's own upstream leg.
 * - a notification replayed with a Partial IV already seen (RFC 8613 §7.4.1) is dropped wherever
 *   notifications are received: a direct observation, a routed one (both layers), and the proxy's
 *   upstream observation with its own layer;
 * - a 4.01 with Echo from a restarted server (Appendix B.1.2) is answered on every path, including
 *   the remaining blocks of a block-wise notification (RFC 7959 §2.6).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { encodeBlock, readBlockOption } from '../src/coap/block.js';
import { EMPTY_BYTES, MessageType, encodeString, encodeUint, getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { parseCoapUri as parse } from '../src/coap/uri.js';
import { blockwiseRequest } from '../src/client/blockwise.js';
import { Observation } from '../src/client/observe.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { OscoreLayer, RouteSecurity } from '../src/client/route.js';
import { PLAIN, securedSender, withEchoRetry, type MessageSecurity } from '../src/client/security.js';
import { protectResponse, unprotectRequest } from '../src/oscore/protect.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork, type Delivery } from './support/network.js';
import { msg, path } from './support/oscore-layers.js';

const S = { address: '10.0.0.1', port: 5683 };
const C = { address: '10.0.0.2', port: 40000 };
const P = { address: '10.0.0.3', port: 5683 };
const P_UP = { address: '10.0.0.3', port: 40001 };
const uriOf = (a: { address: string; port: number }) => `coap://${a.address}:${a.port}`;

/** A context pair; `receiver(restarted)` is the server side, as after a reboot when `restarted` (B.1.2). */
function pair(name: string, senderId: number, receiverId: number) {
  const masterSecret = Buffer.from(`secret of ${name}`.padEnd(16, '.'));
  return {
    sender: new OscoreSecurityContext({ masterSecret, senderId: Buffer.from([senderId]), recipientIds: [Buffer.from([receiverId])], name: `${name} (client)` }, new VolatileSequence()),
    receiver: (restarted = false) =>
      new OscoreSecurityContext({ masterSecret, senderId: Buffer.from([receiverId]), recipientIds: [Buffer.from([senderId])], name }, new VolatileSequence(restarted ? 1000 : 0), restarted),
  };
}

function world(options: { originRestarted?: boolean; proxyUpstreamLayer?: boolean } = {}) {
  const net = new FakeNetwork();
  const cs = pair('C-S', 0x5f, 0x01);
  const cp = pair('C-P', 0x20, 0x02);
  const ps = pair('P-S', 0x30, 0x03);
  const state = { value: 0, posted: 0 };
  const origin = new CoapServer(net.endpoint(S, {}, 1), { security: new OscoreServerSecurity([cs.receiver(options.originRestarted), ps.receiver(options.originRestarted)]) });
  origin.resource('/counter', { GET: () => ({ code: ResponseCode.Content, payload: `state ${state.value}`, maxAge: 60 }) }, { observable: true });
  origin.resource('/upload', { POST: (r) => ((state.posted = r.payload.length), { code: ResponseCode.Changed, payload: `got ${r.payload.length}` }) });
  const proxyServer = new CoapServer(net.endpoint(P, {}, 3), { security: new OscoreServerSecurity([cp.receiver()]) });
  const up = net.endpoint(P_UP, { nstart: 64 }, 103);
  const proxy = new ForwardProxy(proxyServer, {
    upstream: { endpoint: async () => up },
    allowDestinations: ['10.0.0.0/8'],
    ...(options.proxyUpstreamLayer ? { upstreamSecurity: () => ps.sender } : {}),
  });
  const client = net.endpoint(C, { nstart: 64 }, 2);
  const change = () => {
    state.value++;
    origin.changed('/counter');
  };
  const legs = (from: { address: string; port?: number }, to: { address: string; port?: number }): Delivery[] =>
    net.log.filter((d) => d.from.address === from.address && d.to.address === to.address && (to.port === undefined || d.to.port === to.port) && d.message.code !== 0 && !d.dropped);
  return { net, cs, cp, ps, state, origin, proxy, client, change, legs };
}
type World = ReturnType<typeof world>;

const routeTo = (w: World, resource: string): RouteSecurity => new RouteSecurity(parse(`${uriOf(S)}/${resource}`), [{ uri: uriOf(P), context: w.cp.sender }], new OscoreClientSecurity(w.cs.sender));

function observeVia(w: World, to: { address: string; port: number }, message: CoapMessage, security: MessageSecurity): Observation {
  return new Observation(w.client, to, message, { maxBodySize: 1 << 20, maxRestarts: 0 }, { reregisterDelay: () => 1e9 }, security);
}

/** Sends `delivery` again as a new message (fresh Message ID, so deduplication does not hide it). */
function replay(w: World, delivery: Delivery): void {
  const again: CoapMessage = { ...delivery.message, messageId: (delivery.message.messageId + 7777) & 0xffff };
  w.net.carry(delivery.from, delivery.to, encodeMessage(again));
}

/** Two notifications, then the older one replayed on `leg`, then a fresh one: only the fresh one is delivered. */
async function assertReplayDropped(w: World, observation: Observation, leg: () => Delivery[]): Promise<void> {
  assert.equal((await w.net.until(observation.next(), 5_000)).value!.text(), 'state 0');
  w.change();
  assert.equal((await w.net.until(observation.next(), 5_000)).value!.text(), 'state 1');
  w.change();
  assert.equal((await w.net.until(observation.next(), 5_000)).value!.text(), 'state 2');
  const notifications = leg();
  const stale = notifications[notifications.length - 2]!; // "state 1": a Partial IV already seen
  assert.ok(getOption(stale.message, OptionNumber.Oscore), 'the replayed notification is OSCORE-protected');
  replay(w, stale);
  await w.net.run(200);
  w.change();
  assert.equal((await w.net.until(observation.next(), 5_000)).value!.text(), 'state 3', 'the replayed "state 1" was dropped, not delivered');
  await w.net.until(observation.cancel(), 5_000);
}

// --- a notification with a stale Partial IV is dropped on every path that receives notifications ---

test('direct observation: a replayed notification (Partial IV already seen) is dropped', async () => {
  const w = world();
  const observation = observeVia(w, S, msg(Method.GET, path('counter')), new OscoreClientSecurity(w.cs.sender));
  await assertReplayDropped(w, observation, () => w.legs(S, C));
});

test('routed observation (via an OSCORE-capable proxy, C–P and C–S): a replayed notification is dropped', async () => {
  const w = world();
  const observation = observeVia(w, P, msg(Method.GET, path('counter')), routeTo(w, 'counter'));
  await assertReplayDropped(w, observation, () => w.legs(P, C));
});

test("the proxy's upstream observation with its own layer (P–S): a notification replayed to the proxy is dropped there", async () => {
  const w = world({ proxyUpstreamLayer: true });
  const request = msg(Method.GET, [{ number: OptionNumber.ProxyUri, value: encodeString(`${uriOf(S)}/counter`) }]);
  const observation = observeVia(w, P, request, PLAIN);
  await assertReplayDropped(w, observation, () => w.legs(S, P_UP));
  assert.ok(w.legs(S, P_UP).every((d) => getOption(d.message, OptionNumber.Oscore) !== undefined), 'S→P carries the P–S layer');
});

// --- the Echo challenge of a restarted server (B.1.2) is answered on every path ---

/** The requests the origin received (each challenge costs one more). */
function requestsAtOrigin(w: World): number {
  return w.net.log.filter((d) => d.to.address === S.address && d.message.code !== 0 && !d.dropped).length;
}

test('Echo after a restart: a direct request', async () => {
  const w = world({ originRestarted: true });
  const send = withEchoRetry(securedSender(w.client, S, new OscoreClientSecurity(w.cs.sender)));
  const r = await w.net.until(send(msg(Method.GET, path('counter'))));
  assert.equal(r.message.code, ResponseCode.Content);
  assert.equal(requestsAtOrigin(w), 2, 'the request, challenged, then again with Echo');
});

test('Echo after a restart: a block-wise (Block1) upload, challenged on its first block', async () => {
  const w = world({ originRestarted: true });
  const send = withEchoRetry(securedSender(w.client, S, new OscoreClientSecurity(w.cs.sender)));
  const body = Buffer.alloc(3000, 0x61);
  const r = await w.net.until(blockwiseRequest(send, msg(Method.POST, path('upload'), body), { szx: 6, maxBodySize: 1 << 20, maxRestarts: 0 }));
  assert.equal(r.message.code, ResponseCode.Changed);
  assert.equal(w.state.posted, 3000);
  assert.equal(requestsAtOrigin(w), 4, 'three blocks and the first again with Echo');
});

test('Echo after a restart: a routed (via) request, the challenge coming back through both layers', async () => {
  const w = world({ originRestarted: true });
  const send = withEchoRetry(securedSender(w.client, P, routeTo(w, 'counter')));
  const r = await w.net.until(send(msg(Method.GET, path('counter'))));
  assert.equal(r.message.code, ResponseCode.Content);
  assert.equal(Buffer.from(r.message.payload).toString(), 'state 0');
  assert.equal(requestsAtOrigin(w), 2, 'the request, challenged, then again with Echo');
});

test('Echo after a restart: a direct and a routed observation register again with the Echo value', async () => {
  for (const routed of [false, true]) {
    const w = world({ originRestarted: true });
    const observation = routed
      ? observeVia(w, P, msg(Method.GET, path('counter')), routeTo(w, 'counter'))
      : observeVia(w, S, msg(Method.GET, path('counter')), new OscoreClientSecurity(w.cs.sender));
    assert.equal((await w.net.until(observation.next(), 5_000)).value!.text(), 'state 0', routed ? 'routed' : 'direct');
    assert.equal(observation.registered, true);
    assert.equal(requestsAtOrigin(w), 2, 'the registration, challenged, then again with Echo');
    await w.net.until(observation.cancel(), 5_000);
  }
});

test("Echo on the remaining blocks of a block-wise notification: the block is asked for again with the server's Echo", async () => {
  // A server that wants freshness (RFC 9175 §2.4) for the blocks after a notification's block 0.
  const net = new FakeNetwork();
  const server = net.endpoint(S, {}, 1);
  const ECHO = Uint8Array.of(0xec, 0x40);
  const body = Buffer.from('0123456789abcdef' + 'ghijklmnopqrstuv');
  const blockRequests: Array<{ num: number; echo: boolean }> = [];
  server.setRequestHandler((request, exchange) => {
    const block = readBlockOption(request, OptionNumber.Block2);
    const num = block?.num ?? 0;
    const reply = (code: number, options: CoapMessage['options'], payload: Uint8Array = EMPTY_BYTES): void =>
      exchange.respond({ type: MessageType.ACK, code, messageId: request.messageId, token: request.token, options, payload });
    if (num === 0) {
      return reply(ResponseCode.Content, [{ number: OptionNumber.Observe, value: encodeUint(5) }, { number: OptionNumber.Block2, value: encodeBlock({ num: 0, more: true, szx: 0 }) }], body.subarray(0, 16));
    }
    const echo = getOption(request, OptionNumber.Echo);
    blockRequests.push({ num, echo: echo !== undefined });
    if (echo === undefined) return reply(ResponseCode.Unauthorized, [{ number: OptionNumber.Echo, value: ECHO }]);
    return reply(ResponseCode.Content, [{ number: OptionNumber.Block2, value: encodeBlock({ num, more: false, szx: 0 }) }], body.subarray(16));
  });
  const client = net.endpoint(C, {}, 2);
  const observation = new Observation(client, S, msg(Method.GET, path('big')), { maxBodySize: 1 << 20, maxRestarts: 0 }, { reregisterDelay: () => 1e9 });
  const first = await net.until(observation.next(), 5_000);
  assert.equal(first.value!.code, ResponseCode.Content, 'the notification, not the challenge');
  assert.equal(first.value!.text(), body.toString(), 'completed from both blocks');
  assert.deepEqual(blockRequests, [{ num: 1, echo: false }, { num: 1, echo: true }]);
  await net.until(observation.cancel(), 5_000);
});

// --- where the two former copies differed -------------------------------------------------------

test("§8.4.2 'If the request was an Observe registration': a route's layer no longer applies the Notification Number to a non-Observe request's response", () => {
  // The route layer's former copy ordered any response handed to it as a notification; the
  // end-to-end copy (and RFC 8613 §8.4.2) only those to an Observe registration. A response to a
  // non-Observe request is bound to its request alone (the exchange layer accepts one).
  const cp = pair('C-P', 0x20, 0x02);
  const server = cp.receiver();
  const layer = new OscoreLayer(cp.sender);
  const verifyTwice = (request: CoapMessage): Array<boolean> => {
    const sent = layer.protect(request);
    const unprotected = unprotectRequest(sent.message, () => server.primaryRecipient.params);
    assert.ok(unprotected.ok);
    const answer = (n: number) => protectResponse(msg(ResponseCode.Content, request.options.some((o) => o.number === OptionNumber.Observe) ? [{ number: OptionNumber.Observe, value: EMPTY_BYTES }] : []), server.sender, unprotected.binding, { sequenceNumber: n });
    return [5, 3].map((n) => !(sent.verify({ ...answer(n), token: EMPTY_BYTES }, true) instanceof Error));
  };
  assert.deepEqual(verifyTwice(msg(Method.GET, path('alarm'))), [true, true], 'no Notification Number for a non-Observe request');
  assert.deepEqual(verifyTwice(msg(Method.GET, [{ number: OptionNumber.Observe, value: EMPTY_BYTES }, ...path('alarm')])), [true, false], 'an Observe registration: Partial IV 3 after 5 is refused (§7.4.1)');
});
