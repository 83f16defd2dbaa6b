/**
 * The server's fast path for an OSCORE request whose inner request is simple (src/server/fast-path.ts
 * `takeInner`, issue 21): it is taken once the OSCORE stage has removed the layers, and a server with
 * it answers every datagram — protected requests simple or not, one or two layers (the
 * OSCORE-capable-proxies draft §2.4/§2.5), duplicates (RFC 7252 §4.5), replays (RFC 8613 §7.4),
 * forgeries and unprotected requests, refusals (4.01 "OSCORE required", 4.04, 4.05, 4.02), Observe,
 * Block2, async handlers — with the same bytes at the same (fake) times, and the same request-log
 * entries, as a server with `fastPath: false`. The client's datagrams are made once per run, so
 * both servers see the same Partial IVs; every protected response reuses the request's nonce
 * (§8.3) or takes the next Sender Sequence Number of a context both servers advance alike.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeUint, sortOptions, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { protectRequest } from '../src/oscore/protect.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import type { CoapRequest } from '../src/server/resource.js';
import { CoapServer, type RequestLogEntry } from '../src/server/server.js';
import { requestLogEntry } from '../src/server/request-log.js';
import type { OscoreLayerInfo } from '../src/exchange/context.js';
import { drainSent, flush, lockstep, msg, opt } from './support/lockstep.js';

const SEPARATE_AFTER_MS = 150;
const MASTER = { masterSecret: Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex'), masterSalt: Buffer.from('9e7ca92223786340', 'hex') };
const OTHER = { masterSecret: Buffer.from('f0e0d0c0b0a090807060504030201000', 'hex'), masterSalt: Buffer.from('0011223344556677', 'hex') };
const CLIENT_ID = EMPTY_BYTES;
const SERVER_ID = Uint8Array.of(1);
/** The second context, for the outer of two layers (as an OSCORE-capable proxy would add it). */
const HOP_CLIENT_ID = Uint8Array.of(0x0c);
const HOP_SERVER_ID = Uint8Array.of(0x5e);

function describe(request: CoapRequest): string {
  return JSON.stringify([request.method, request.path, request.subPath, request.query, request.contentFormat, request.accept, request.confirmable, request.text(), request.options.length, request.context.peerKey, request.context.oscore?.length]);
}

function server(fastPath: boolean) {
  const h = lockstep({}, 11);
  const log: string[] = [];
  const security = new OscoreServerSecurity([
    new OscoreSecurityContext({ ...MASTER, senderId: SERVER_ID, recipientIds: [CLIENT_ID] }, new VolatileSequence()),
    new OscoreSecurityContext({ ...OTHER, senderId: HOP_SERVER_ID, recipientIds: [HOP_CLIENT_ID] }, new VolatileSequence()),
  ]);
  const s = new CoapServer(h.endpoint, {
    fastPath,
    security,
    onRequestLog: (entry: RequestLogEntry) => log.push(JSON.stringify([entry.peer, entry.protection, entry.identity, entry.oscoreFailure, entry.request.code, entry.response.code, entry.response.payload.length])),
  });
  s.resource('/r', {
    GET: (r) => ({ code: ResponseCode.Content, contentFormat: 0, payload: describe(r) }),
    POST: (r) => ({ code: ResponseCode.Changed, payload: describe(r) }),
    PUT: () => ({ code: ResponseCode.Changed, maxAge: 30, etag: Uint8Array.of(1, 2) }),
  });
  s.resource('/big', { GET: (r) => ({ code: ResponseCode.Content, payload: describe(r).padEnd(2000, '.') }) });
  s.resource('/async', { GET: async (r) => ({ code: ResponseCode.Content, payload: describe(r) }) });
  s.resource('/slow', {
    GET: (r) => new Promise((resolve) => h.clock.schedule(SEPARATE_AFTER_MS, () => resolve({ code: ResponseCode.Content, payload: describe(r) }))),
    POST: () => Promise.reject(new Error('refused later')),
  });
  s.resource('/throw', { GET: () => { throw new Error('broken'); } });
  s.add({ path: '/sub', subtree: true, handlers: { GET: (r) => ({ code: ResponseCode.Content, payload: describe(r) }) } });
  s.resource('/secure', { GET: (r) => ({ code: ResponseCode.Content, payload: describe(r) }) }, { requireOscore: true });
  s.resource('/obs', { GET: () => ({ code: ResponseCode.Content, payload: 'state' }) }, { observable: true });
  return { h, s, log };
}

/** The client's side: both contexts, each with its own Sender Sequence Numbers. */
function client() {
  const end = new OscoreSecurityContext({ ...MASTER, senderId: CLIENT_ID, recipientIds: [SERVER_ID] }, new VolatileSequence()).sender;
  const hop = new OscoreSecurityContext({ ...OTHER, senderId: HOP_CLIENT_ID, recipientIds: [HOP_SERVER_ID] }, new VolatileSequence()).sender;
  let endSequence = 0;
  let hopSequence = 0;
  return {
    protect(message: CoapMessage, layers: 0 | 1 | 2): CoapMessage {
      if (layers === 0) return message;
      const once = protectRequest(message, end, endSequence++).message;
      return layers === 1 ? once : protectRequest(once, hop, hopSequence++).message;
    },
  };
}

const uriPath = fc.constantFrom('r', 'big', 'async', 'slow', 'throw', 'sub', 'secure', 'obs', 'missing', '');
/** Inner options: those of simple requests, and one of every kind that must take the stages. */
const option: fc.Arbitrary<CoapOption> = fc.oneof(
  { weight: 6, arbitrary: uriPath.map((p) => opt(OptionNumber.UriPath, p)) },
  { weight: 2, arbitrary: fc.constantFrom('a=1', 'b').map((q) => opt(OptionNumber.UriQuery, q)) },
  { weight: 2, arbitrary: fc.constantFrom(0, 50).map((f) => opt(OptionNumber.Accept, encodeUint(f))) },
  { weight: 1, arbitrary: fc.constantFrom(0, 42).map((f) => opt(OptionNumber.ContentFormat, encodeUint(f))) },
  { weight: 1, arbitrary: fc.constantFrom('h', 'example.org').map((v) => opt(OptionNumber.UriHost, v)) },
  {
    weight: 2,
    arbitrary: fc.constantFrom<CoapOption>(
      opt(OptionNumber.Observe, encodeUint(0)),
      opt(OptionNumber.Block2, encodeUint(0x02)),
      opt(OptionNumber.Block2, encodeUint(0x12)),
      opt(OptionNumber.Block1, encodeUint(0x0a)),
      opt(OptionNumber.NoResponse, encodeUint(2)),
      opt(OptionNumber.ProxyUri, 'coap://example.org/r'),
      opt(OptionNumber.ETag, Uint8Array.of(9)),
      opt(65001, 'critical and unknown'),
      opt(65000, 'elective and unknown'),
    ),
  },
);

const innerOptions: fc.Arbitrary<CoapOption[]> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
    .tuple(fc.constantFrom('r', 'r', 'big', 'async', 'slow', 'throw', 'sub', 'secure', 'obs'), fc.constantFrom('', '', '', '', 'a', 'a/b'), fc.array(option, { maxLength: 1 }))
    .map(([first, more, extra]) => [opt(OptionNumber.UriPath, first), ...(more === '' ? [] : more.split('/').map((p) => opt(OptionNumber.UriPath, p))), ...extra]),
  },
  { weight: 1, arbitrary: fc.array(option, { maxLength: 3 }) },
);

type Step =
  | { kind: 'request'; layers: 0 | 1 | 2; type: 0 | 1; code: number; messageId: number; token: Uint8Array; options: CoapOption[]; payload: Uint8Array; flip: number }
  | { kind: 'again' }
  | { kind: 'replay'; back: number; messageId: number }
  | { kind: 'notify' }
  | { kind: 'wait'; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant('request' as const),
      layers: fc.constantFrom<0 | 1 | 2>(1, 1, 1, 1, 1, 2, 0),
      type: fc.constantFrom(MessageType.CON, MessageType.NON),
      code: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(Method.GET, Method.GET, Method.POST, Method.PUT) }, { weight: 1, arbitrary: fc.constantFrom(Method.DELETE, 8, 31) }),
      messageId: fc.integer({ min: 1, max: 30 }),
      token: fc.uint8Array({ maxLength: 8 }),
      options: innerOptions,
      payload: fc.oneof(fc.constant(EMPTY_BYTES), fc.uint8Array({ minLength: 1, maxLength: 8 })),
      // A forgery now and then: one bit of the ciphertext flipped (0: none).
      flip: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 64 }) }),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'again' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('replay' as const), back: fc.integer({ min: 1, max: 10 }), messageId: fc.integer({ min: 100, max: 120 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'notify' as const }) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 400 }).map((ms) => ({ kind: 'wait' as const, ms })) },
);

/** The client's datagrams of a run, made once: the same Partial IVs for both servers. */
type Action = { kind: 'deliver'; bytes: Buffer } | { kind: 'notify' } | { kind: 'wait'; ms: number };

function actions(steps: readonly Step[]): Action[] {
  const c = client();
  const sent: Buffer[] = [];
  const out: Action[] = [];
  for (const st of steps) {
    if (st.kind === 'wait' || st.kind === 'notify') out.push(st);
    else if (st.kind === 'again') {
      const last = sent[sent.length - 1];
      if (last) out.push({ kind: 'deliver', bytes: last });
    } else if (st.kind === 'replay') {
      // The same protected request under a new Message ID: deduplication does not catch it, the replay window must.
      const earlier = sent[sent.length - Math.min(st.back, sent.length)];
      if (earlier) out.push({ kind: 'deliver', bytes: encodeMessage({ ...decodeMessage(earlier), messageId: st.messageId }) });
    } else {
      const inner: CoapMessage = { type: st.type, code: st.code, messageId: st.messageId, token: st.token, options: sortOptions(st.options), payload: st.payload };
      const bytes = msg(c.protect(inner, st.layers));
      if (st.flip > 0 && st.layers > 0) bytes[bytes.length - 1 - (st.flip % 8)] ^= 1 << st.flip % 8;
      sent.push(bytes);
      out.push({ kind: 'deliver', bytes });
    }
  }
  return out;
}

async function transcript(fastPath: boolean, run: readonly Action[]): Promise<{ sent: string[]; log: string[]; fast: number }> {
  const { h, s, log } = server(fastPath);
  for (const a of run) {
    if (a.kind === 'wait') h.clock.advance(a.ms);
    else if (a.kind === 'notify') s.changed('/obs');
    else h.transport.deliver(a.bytes);
    await flush();
  }
  const sent = await drainSent(h);
  await s.close();
  return { sent, log, fast: s.fastPathAnswers };
}

test('a protected GET whose inner request is simple takes the fast path, its answer protected (RFC 8613 §8.3); fastPath: false does not', async () => {
  for (const fastPath of [true, false]) {
    const { h, s } = server(fastPath);
    const c = client();
    const get = (messageId: number, options: CoapOption[], layers: 1 | 2 = 1): Buffer => msg(c.protect({ type: MessageType.CON, code: Method.GET, messageId, token: Uint8Array.of(messageId), options, payload: EMPTY_BYTES }, layers));
    h.transport.deliver(get(1, [opt(OptionNumber.UriPath, 'r')]));
    h.transport.deliver(get(2, [opt(OptionNumber.UriPath, 'secure')]));
    h.transport.deliver(get(3, [opt(OptionNumber.UriPath, 'r')], 2));
    assert.equal(s.fastPathAnswers, fastPath ? 3 : 0);
    h.transport.deliver(get(4, [opt(OptionNumber.UriPath, 'obs'), opt(OptionNumber.Observe, encodeUint(0))]));
    h.transport.deliver(get(5, [opt(OptionNumber.UriPath, 'missing')]));
    h.transport.deliver(get(6, [opt(OptionNumber.UriPath, 'big')]));
    assert.equal(s.fastPathAnswers, fastPath ? 3 : 0);
    const replies = h.transport.take();
    assert.equal(replies.length, 6);
    for (const r of replies) {
      assert.equal(r.message.type, MessageType.ACK);
      assert.ok(r.message.options.some((o) => o.number === OptionNumber.Oscore), 'every answer is protected');
    }
    // §4.2: the outer code is 2.04, or 2.05 for a response with Observe (the registration, the 4th).
    assert.deepEqual(replies.map((r) => r.message.code), [ResponseCode.Changed, ResponseCode.Changed, ResponseCode.Changed, ResponseCode.Content, ResponseCode.Changed, ResponseCode.Changed]);
    await s.close();
  }
});

test('property: every datagram gets the same reply bytes at the same time, and the same log, with and without the fast path for OSCORE requests', async () => {
  let fastAnswers = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 6, maxLength: 24 }), async (steps) => {
      const run = actions(steps);
      const fast = await transcript(true, run);
      const layered = await transcript(false, run);
      assert.equal(layered.fast, 0);
      assert.deepEqual(fast.sent, layered.sent);
      assert.deepEqual(fast.log, layered.log);
      fastAnswers += fast.fast;
    }),
    { numRuns: 150 },
  );
  assert.ok(fastAnswers > 100, `the fast path answered ${fastAnswers} OSCORE requests of the property's runs`);
});

test('the fast path stays off for an OSCORE request when a proxy could claim the inner request', async () => {
  const { h, s } = server(true);
  const c = client();
  s.setForwardingHandler({ forward: () => {} });
  h.transport.deliver(msg(c.protect({ type: MessageType.CON, code: Method.GET, messageId: 1, token: Uint8Array.of(1), options: [opt(OptionNumber.UriPath, 'r')], payload: EMPTY_BYTES }, 1)));
  assert.equal(s.fastPathAnswers, 0, 'a forward proxy claims requests (§2.4 steps 1–4) before the route');
  assert.equal(h.transport.take().length, 1);
  s.setForwardingHandler(undefined);
  h.transport.deliver(msg(c.protect({ type: MessageType.CON, code: Method.GET, messageId: 2, token: Uint8Array.of(2), options: [opt(OptionNumber.UriPath, 'r')], payload: EMPTY_BYTES }, 1)));
  assert.equal(s.fastPathAnswers, 1, 'back on once the proxy is gone');
  await s.close();
});

test('the request log entry of a request with one OSCORE layer is the object the general case builds', () => {
  const request = { type: MessageType.CON, code: Method.GET, messageId: 1, token: Uint8Array.of(1), options: [], payload: EMPTY_BYTES };
  const response = { ...request, code: ResponseCode.Content };
  const peer = { address: '192.0.2.1', port: 5683 };
  const layer = { peer: 'device-01', kid: Uint8Array.of(1) } as unknown as OscoreLayerInfo;
  for (const [scheme, protection] of [['coap', 'oscore'], ['coap+tcp', 'oscore'], ['coaps+tcp', 'tls+oscore'], ['coaps', 'dtls+oscore']] as const) {
    const entry = requestLogEntry(request, { peer, peerKey: '192.0.2.1:5683', scheme, security: undefined, oscore: [layer] }, response, undefined);
    assert.deepEqual(entry, { peer: '192.0.2.1:5683', scheme, identity: 'device-01', protection, request, response });
    assert.deepEqual(Object.keys(entry), ['peer', 'scheme', 'identity', 'protection', 'request', 'response']);
  }
  const two = requestLogEntry(request, { peer, peerKey: '192.0.2.1:5683', scheme: 'coap', security: undefined, oscore: [layer, { ...layer, peer: 'proxy' }] }, response, undefined);
  assert.deepEqual([two.identity, two.protection], ['device-01 proxy', 'oscore+oscore']);
  const refused = requestLogEntry(request, { peer, peerKey: '192.0.2.1:5683', scheme: 'coap', security: undefined, oscore: [layer] }, response, 'replayed');
  assert.equal(refused.oscoreFailure, 'replayed');
});
