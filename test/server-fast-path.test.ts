/**
 * The server's fast path for simple requests (src/server/fast-path.ts, issue 21): it is taken for a
 * simple GET, and a server with it answers every datagram — simple or not, duplicated, answered
 * late (separate responses, RFC 7252 §5.2.2), sliced (RFC 7959 Block2), refused (4.02, 4.04, 4.05,
 * 4.01) — with the same bytes at the same (fake) times as a server with `fastPath: false`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType, encodeUint, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapServer, type RequestLogEntry } from '../src/server/server.js';
import { requestLogEntry } from '../src/server/request-log.js';
import type { CoapRequest } from '../src/server/resource.js';
import { drainSent, flush, lockstep, msg, opt } from './support/lockstep.js';
import { MessageLayer } from '../src/messaging/message-layer.js';

const SEPARATE_AFTER_MS = 150;

/** What the handler saw, as text: any difference between the two paths' CoapRequest shows in the payload. */
function describe(request: CoapRequest): string {
  return JSON.stringify([request.method, request.methodName, request.path, request.subPath, request.query, request.contentFormat, request.accept, request.confirmable, request.notification, request.text(), request.options.length, request.context.peerKey, request.option(OptionNumber.UriHost) !== undefined]);
}

function server(fastPath: boolean) {
  const h = lockstep({}, 11);
  const log: string[] = [];
  const s = new CoapServer(h.endpoint, { fastPath, onRequestLog: (entry: RequestLogEntry) => log.push(JSON.stringify([entry.peer, entry.protection, entry.request.code, entry.response.code, entry.response.payload.length])) });
  s.resource('/r', {
    GET: (r) => ({ code: ResponseCode.Content, contentFormat: 0, payload: describe(r) }),
    POST: (r) => ({ code: ResponseCode.Changed, payload: describe(r) }),
    PUT: () => ({ code: ResponseCode.Changed, maxAge: 30, etag: Uint8Array.of(1, 2) }),
  });
  s.resource('/big', { GET: (r) => ({ code: ResponseCode.Content, contentFormat: 0, payload: describe(r).padEnd(2000, '.') }) });
  s.resource('/async', { GET: async (r) => ({ code: ResponseCode.Content, payload: describe(r) }) });
  s.resource('/slow', {
    GET: (r) => new Promise((resolve) => h.clock.schedule(SEPARATE_AFTER_MS, () => resolve({ code: ResponseCode.Content, payload: describe(r) }))),
    POST: () => Promise.reject(new Error('refused later')),
  });
  s.resource('/throw', { GET: () => { throw new Error('broken'); } });
  s.add({ path: '/sub', subtree: true, handlers: { GET: (r) => ({ code: ResponseCode.Content, payload: describe(r) }) } });
  s.resource('/secure', { GET: () => ({ code: ResponseCode.Content }) }, { requireOscore: true });
  // Its 4.01 carries a random Echo value (RFC 9175), different on every server: not in the property.
  s.resource('/fresh', { POST: () => ({ code: ResponseCode.Changed }) }, { freshness: { maxAgeMs: 1000 } });
  s.resource('/obs', { GET: () => ({ code: ResponseCode.Content, payload: 'state' }) }, { observable: true });
  s.resource('/json', { GET: () => ({ code: ResponseCode.Content, contentFormat: 50, payload: '{}' }) });
  return { h, s, log };
}

const uriPath = fc.constantFrom('r', 'big', 'async', 'slow', 'throw', 'sub', 'secure', 'obs', 'json', 'missing', '.well-known', 'core', 'a', '');
/** Options of simple requests and of every kind that must take the stages. */
const option: fc.Arbitrary<CoapOption> = fc.oneof(
  { weight: 6, arbitrary: uriPath.map((p) => opt(OptionNumber.UriPath, p)) },
  { weight: 2, arbitrary: fc.constantFrom('a=1', 'b', '').map((q) => opt(OptionNumber.UriQuery, q)) },
  { weight: 2, arbitrary: fc.constantFrom(0, 50, 60).map((f) => opt(OptionNumber.Accept, encodeUint(f))) },
  { weight: 1, arbitrary: fc.constantFrom(0, 42).map((f) => opt(OptionNumber.ContentFormat, encodeUint(f))) },
  { weight: 1, arbitrary: fc.constantFrom('h', 'example.org').map((v) => opt(OptionNumber.UriHost, v)) },
  { weight: 1, arbitrary: fc.constantFrom(encodeUint(5683), Uint8Array.of(1, 2, 3)).map((v) => opt(OptionNumber.UriPort, v)) },
  {
    weight: 2,
    arbitrary: fc.constantFrom<CoapOption>(
      opt(OptionNumber.Observe, encodeUint(0)),
      opt(OptionNumber.Observe, encodeUint(1)),
      opt(OptionNumber.Block2, encodeUint(0x02)), // num 0, szx 2
      opt(OptionNumber.Block2, encodeUint(0x12)), // num 1, szx 2
      opt(OptionNumber.Block2, encodeUint(0x07)), // SZX 7: 4.00
      opt(OptionNumber.Block1, encodeUint(0x0a)), // num 0, more, szx 2
      opt(OptionNumber.Size2, encodeUint(0)),
      opt(OptionNumber.NoResponse, encodeUint(2)),
      opt(OptionNumber.ProxyUri, 'coap://example.org/r'),
      opt(OptionNumber.ProxyScheme, 'coap'),
      opt(OptionNumber.Echo, Uint8Array.of(1, 2, 3)),
      opt(OptionNumber.ETag, Uint8Array.of(9)),
      opt(OptionNumber.IfNoneMatch, new Uint8Array(0)),
      opt(OptionNumber.Oscore, new Uint8Array(0)),
      opt(OptionNumber.Edhoc, new Uint8Array(0)),
      opt(65001, 'critical and unknown'),
      opt(65000, 'elective and unknown'),
    ),
  },
);

type Step =
  | { kind: 'request'; type: 0 | 1; code: number; messageId: number; token: Uint8Array; options: CoapOption[]; payload: Uint8Array }
  | { kind: 'again' }
  | { kind: 'wait'; ms: number };

/** Options of a request to a resource, often one the fast path takes, often with one option that it must not. */
const resourceOptions: fc.Arbitrary<CoapOption[]> = fc
  .tuple(fc.constantFrom('r', 'r', 'big', 'async', 'slow', 'throw', 'json', 'sub', 'sub'), fc.constantFrom('', '', 'a', 'a/b'), fc.array(option, { maxLength: 1 }))
  .map(([first, more, extra]) => [opt(OptionNumber.UriPath, first), ...(more === '' ? [] : more.split('/').map((p) => opt(OptionNumber.UriPath, p))), ...extra]);

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('request' as const),
      type: fc.constantFrom(MessageType.CON, MessageType.NON),
      code: fc.constantFrom(Method.GET, Method.GET, Method.POST),
      messageId: fc.integer({ min: 1, max: 6 }),
      token: fc.uint8Array({ maxLength: 8 }),
      options: resourceOptions,
      payload: fc.constant(new Uint8Array(0)),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('request' as const),
      type: fc.constantFrom(MessageType.CON, MessageType.NON),
      code: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(Method.GET, Method.POST, Method.PUT) }, { weight: 1, arbitrary: fc.constantFrom(Method.DELETE, Method.FETCH, 8, 31, 0x45) }),
      messageId: fc.integer({ min: 1, max: 6 }),
      token: fc.uint8Array({ maxLength: 8 }),
      options: fc.array(option, { maxLength: 4 }),
      payload: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ minLength: 1, maxLength: 8 })),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'again' as const }) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 400 }).map((ms) => ({ kind: 'wait' as const, ms })) },
);

/** Runs the steps against one server; the transcript is every datagram sent, with its (fake) time, and the log. */
async function transcript(fastPath: boolean, steps: readonly Step[]): Promise<{ sent: string[]; log: string[]; fast: number }> {
  const { h, s, log } = server(fastPath);
  let last: Buffer | undefined;
  for (const st of steps) {
    if (st.kind === 'wait') h.clock.advance(st.ms);
    else if (st.kind === 'again') {
      if (last) h.transport.deliver(last);
    } else {
      last = msg({ type: st.type, code: st.code, messageId: st.messageId, token: st.token, options: st.options, payload: st.payload });
      h.transport.deliver(last);
    }
    await flush();
  }
  const sent = await drainSent(h);
  await s.close();
  return { sent, log, fast: s.fastPathAnswers };
}

test('a simple GET takes the fast path; fastPath: false, a request with Observe or one the router refuses do not', async () => {
  for (const fastPath of [true, false]) {
    const { h, s } = server(fastPath);
    h.transport.deliver(msg({ code: Method.GET, messageId: 1, token: Uint8Array.of(1), options: [opt(OptionNumber.UriPath, 'r')] }));
    h.transport.deliver(msg({ type: MessageType.NON, code: Method.GET, messageId: 2, token: Uint8Array.of(2), options: [opt(OptionNumber.UriPath, 'r'), opt(OptionNumber.UriQuery, 'a=1')] }));
    assert.equal(s.fastPathAnswers, fastPath ? 2 : 0);
    h.transport.deliver(msg({ code: Method.GET, messageId: 3, token: Uint8Array.of(3), options: [opt(OptionNumber.Observe, encodeUint(0)), opt(OptionNumber.UriPath, 'obs')] }));
    h.transport.deliver(msg({ code: Method.GET, messageId: 4, token: Uint8Array.of(4), options: [opt(OptionNumber.UriPath, 'missing')] }));
    h.transport.deliver(msg({ code: Method.DELETE, messageId: 5, token: Uint8Array.of(5), options: [opt(OptionNumber.UriPath, 'r')] }));
    h.transport.deliver(msg({ code: Method.POST, messageId: 6, token: Uint8Array.of(6), options: [opt(OptionNumber.UriPath, 'fresh')] }));
    h.transport.deliver(msg({ code: Method.GET, messageId: 7, token: Uint8Array.of(7), options: [opt(OptionNumber.UriPath, 'secure')] }));
    assert.equal(s.fastPathAnswers, fastPath ? 2 : 0);
    assert.deepEqual(h.transport.take().map((d) => d.message.code), [ResponseCode.Content, ResponseCode.Content, ResponseCode.Content, ResponseCode.NotFound, ResponseCode.MethodNotAllowed, ResponseCode.Unauthorized, ResponseCode.Unauthorized]);
    await s.close();
  }
});

test('the fast path stays off where a stage must see every request: security, a proxy, its own stage list', async () => {
  const { h, s } = server(true);
  s.setForwardingHandler({ forward: () => {} });
  h.transport.deliver(msg({ code: Method.GET, messageId: 1, token: Uint8Array.of(1), options: [opt(OptionNumber.UriPath, 'r')] }));
  assert.equal(s.fastPathAnswers, 0, 'a forward proxy claims requests before the route');
  s.setForwardingHandler(undefined);
  h.transport.deliver(msg({ code: Method.GET, messageId: 2, token: Uint8Array.of(2), options: [opt(OptionNumber.UriPath, 'r')] }));
  assert.equal(s.fastPathAnswers, 1, 'back on once the proxy is gone');
  await s.close();
  const own = lockstep();
  const custom = new CoapServer(own.endpoint, { stages: (standard) => standard });
  custom.resource('/r', { GET: () => ({ code: ResponseCode.Content }) });
  own.transport.deliver(msg({ code: Method.GET, messageId: 1, token: Uint8Array.of(1), options: [opt(OptionNumber.UriPath, 'r')] }));
  assert.equal(custom.fastPathAnswers, 0);
  assert.equal(own.transport.take().length, 1);
  await custom.close();
});

test('property: every datagram gets the same reply bytes at the same time with and without the fast path', async () => {
  let fastAnswers = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
      const fast = await transcript(true, steps);
      const layered = await transcript(false, steps);
      assert.equal(layered.fast, 0);
      assert.deepEqual(fast.sent, layered.sent);
      assert.deepEqual(fast.log, layered.log);
      fastAnswers += fast.fast;
    }),
    { numRuns: 200 },
  );
  assert.ok(fastAnswers > 100, `the fast path answered ${fastAnswers} requests of the property's runs`);
});

test('a duplicate CON of a request the fast path answered gets the same ACK replayed, once processed', async () => {
  const { h, s } = server(true);
  let calls = 0;
  s.resource('/count', { GET: () => ({ code: ResponseCode.Content, payload: String(++calls) }) });
  const request = msg({ code: Method.GET, messageId: 9, token: Uint8Array.of(7, 7), options: [opt(OptionNumber.UriPath, 'count')] });
  h.transport.deliver(request);
  h.transport.deliver(request);
  const [first, again] = h.transport.take();
  assert.equal(calls, 1);
  assert.equal(s.fastPathAnswers, 1);
  assert.deepEqual(again!.bytes, first!.bytes);
  assert.equal(first!.message.type, MessageType.ACK);
  assert.equal((h.endpoint.carrier as MessageLayer).getStats().duplicates, 1);
  await s.close();
});

test('the request log entry of an unprotected request is the same object the general case builds', () => {
  const request = { type: MessageType.CON, code: Method.GET, messageId: 1, token: Uint8Array.of(1), options: [], payload: new Uint8Array(0) };
  const response = { ...request, code: ResponseCode.Content };
  const peer = { address: '192.0.2.1', port: 5683 };
  for (const [scheme, protection] of [['coap', 'none'], ['coap+tcp', 'none'], ['coaps+tcp', 'tls'], ['coaps+ws', 'tls'], ['coaps', 'dtls']] as const) {
    const entry = requestLogEntry(request, { peer, peerKey: '192.0.2.1:5683', scheme, security: undefined }, response, undefined);
    assert.deepEqual(entry, { peer: '192.0.2.1:5683', scheme, identity: undefined, protection, request, response });
    assert.deepEqual(Object.keys(entry), ['peer', 'scheme', 'identity', 'protection', 'request', 'response']);
  }
  const refused = requestLogEntry(request, { peer, peerKey: '192.0.2.1:5683', scheme: 'coap', security: undefined }, response, 'replayed');
  assert.deepEqual(refused, { peer: '192.0.2.1:5683', scheme: 'coap', identity: undefined, protection: 'none', request, response, oscoreFailure: 'replayed' });
});
