/**
 * The server's fast path for forwarded requests (src/server/proxy-fast-path.ts, issue 21): it is
 * taken for a simple proxied GET, and a forward proxy with it sends the same datagrams at the same
 * (fake) times on both legs — to the client (piggybacked, empty ACK and separate response, §5.2;
 * duplicates, §4.5; cache hits and revalidations, §5.6; 4.xx/5.xx for bad targets, refused
 * destinations, Hop-Limit, timeouts) and to the origin — as a proxy with `fastPath: false`, for
 * random mixes of simple and non-simple requests and of the origin's answers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeUint, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { ResponseCache } from '../src/proxy/cache.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { CoapServer, type RequestLogEntry } from '../src/server/server.js';
import { SeededRandom } from '../src/util/random.js';
import { FakeScheduler } from '../src/util/scheduler.js';
import type { PeerAddress } from '../src/transport/transport.js';
import { FakeTransport, flush, msg, opt } from './support/lockstep.js';

/** The origin the proxy may reach (TEST-NET-1, allowed; others, such as 10.1.2.3, are refused: 5.05). */
const ORIGIN = '192.0.2.10';
const UPSTREAM_TIMEOUT_MS = 3000;

/** `upstreamFastPath`: the proxy's simple upstream path (ForwardProxyOptions.fastPath), as the server's fast path unless given. */
function proxy(fastPath: boolean, upstreamFastPath = fastPath, cached = true) {
  const clock = new FakeScheduler(0);
  const downstream = new FakeTransport(clock);
  const upstream = new FakeTransport(clock);
  const server = new CoapServer(new CoapEndpoint({ transport: downstream, scheduler: clock, random: new SeededRandom(11) }), {
    fastPath,
    onRequestLog: (entry: RequestLogEntry) => log.push(JSON.stringify([entry.peer, entry.request.code, entry.request.options.length, entry.response.code, entry.response.payload.length])),
  });
  const log: string[] = [];
  // A request whose authority is the proxy itself is served here (RFC 7252 §5.7.2, `local`).
  server.resource('/own', { GET: () => ({ code: ResponseCode.Content, payload: 'local' }) });
  const upstreamEndpoint = new CoapEndpoint({ transport: upstream, scheduler: clock, random: new SeededRandom(12), parameters: { nstart: 64 } });
  const forward = new ForwardProxy(server, {
    upstream: { endpoint: async () => upstreamEndpoint },
    allowDestinations: [`${ORIGIN}/32`],
    upstreamTimeout: UPSTREAM_TIMEOUT_MS,
    ...(cached ? { cache: new ResponseCache({ maxBytes: 1 << 16, now: () => clock.now() }) } : {}),
    passFor: 500,
    fastPath: upstreamFastPath,
  });
  return { clock, downstream, upstream, server, forward, upstreamEndpoint, log };
}

const target = fc.constantFrom<CoapOption[]>(
  [opt(OptionNumber.ProxyUri, `coap://${ORIGIN}/r`)],
  [opt(OptionNumber.ProxyUri, `coap://${ORIGIN}/r`)],
  [opt(OptionNumber.ProxyUri, `coap://${ORIGIN}:5683/s?q=1`)],
  [opt(OptionNumber.ProxyScheme, 'coap'), opt(OptionNumber.UriHost, ORIGIN), opt(OptionNumber.UriPath, 'r')],
  [opt(OptionNumber.ProxyScheme, 'coap'), opt(OptionNumber.UriHost, ORIGIN), opt(OptionNumber.UriPort, encodeUint(5684)), opt(OptionNumber.UriPath, 's'), opt(OptionNumber.UriQuery, 'a')],
  [opt(OptionNumber.ProxyUri, 'coap://10.1.2.3/r')], // refused destination: 5.05
  [opt(OptionNumber.ProxyUri, 'coap://[::1')], // bad Proxy-Uri: 4.02
  [opt(OptionNumber.ProxyUri, 'gopher://h/r')], // 5.05
  [opt(OptionNumber.ProxyScheme, 'coap'), opt(OptionNumber.UriPath, 'r')], // no Uri-Host: 4.00
  [opt(OptionNumber.ProxyUri, `coap://${ORIGIN}/r`), opt(OptionNumber.UriPath, 'x')], // §5.10.2: 4.02
  [opt(OptionNumber.ProxyUri, 'coap://127.0.0.1:61617/own')], // this proxy itself: served locally
  [opt(OptionNumber.UriPath, 'own')], // not proxied at all
);

/** Options beside the target: those of a simple forwarded request, and every kind that must take the stages. */
const extra = fc.constantFrom<CoapOption>(
  opt(OptionNumber.Accept, encodeUint(0)),
  opt(OptionNumber.Accept, encodeUint(50)),
  opt(OptionNumber.ContentFormat, encodeUint(0)),
  opt(OptionNumber.ETag, Uint8Array.of(7)),
  opt(OptionNumber.IfNoneMatch, EMPTY_BYTES),
  opt(OptionNumber.IfMatch, Uint8Array.of(7)),
  opt(OptionNumber.HopLimit, encodeUint(1)), // 5.08
  opt(OptionNumber.HopLimit, encodeUint(4)),
  opt(OptionNumber.Observe, encodeUint(0)),
  opt(OptionNumber.Block2, encodeUint(0x02)),
  opt(OptionNumber.Block1, encodeUint(0x02)),
  opt(OptionNumber.NoResponse, encodeUint(2)),
  opt(OptionNumber.NoResponse, encodeUint(16)),
  opt(OptionNumber.Oscore, EMPTY_BYTES),
  opt(OptionNumber.Size1, encodeUint(3)),
  opt(65001, 'critical and unknown'),
  opt(65004, 'unsafe and unknown'),
  opt(65000, 'safe and unknown'),
);

/** What the origin sends for the upstream request it picks (`pick`, modulo those not yet answered). */
type OriginAnswer = 'content' | 'content-etag' | 'fresh-0' | 'valid' | 'changed' | 'error' | 'empty-ack' | 'separate' | 'rst';

type Step =
  | { kind: 'request'; type: 0 | 1; code: number; messageId: number; token: Uint8Array; options: CoapOption[]; payload: Uint8Array }
  | { kind: 'again' }
  | { kind: 'wait'; ms: number }
  | { kind: 'origin'; pick: number; answer: OriginAnswer };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('request' as const),
      type: fc.constantFrom(MessageType.CON, MessageType.CON, MessageType.NON),
      code: fc.oneof({ weight: 10, arbitrary: fc.constantFrom(Method.GET, Method.GET, Method.GET, Method.POST, Method.PUT, Method.DELETE, Method.FETCH) }, { weight: 1, arbitrary: fc.constantFrom(8, 0x45) }),
      messageId: fc.integer({ min: 1, max: 24 }),
      token: fc.uint8Array({ maxLength: 4 }),
      options: fc.tuple(target, fc.oneof(fc.constant([]), fc.array(extra, { maxLength: 2 }))).map(([t, e]) => [...t, ...e]),
      payload: fc.oneof(fc.constant(EMPTY_BYTES), fc.uint8Array({ minLength: 1, maxLength: 4 })),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'again' as const }) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 2500 }).map((ms) => ({ kind: 'wait' as const, ms })) },
  {
    weight: 7,
    arbitrary: fc.record({
      kind: fc.constant('origin' as const),
      pick: fc.nat(8),
      answer: fc.constantFrom<OriginAnswer>('content', 'content', 'content-etag', 'fresh-0', 'valid', 'changed', 'error', 'empty-ack', 'separate', 'rst'),
    }),
  },
);

/** The origin's response to `request` (`answer` gives its kind; `type`, Message ID and token as the caller sets them). */
function originResponse(request: CoapMessage, answer: OriginAnswer, type: MessageType, messageId: number): CoapMessage {
  const options: CoapOption[] = [];
  let code: number = ResponseCode.Content;
  if (answer === 'content-etag' || answer === 'valid') options.push(opt(OptionNumber.ETag, Uint8Array.of(7)));
  if (answer === 'fresh-0') options.push(opt(OptionNumber.MaxAge, encodeUint(0)));
  else options.push(opt(OptionNumber.MaxAge, encodeUint(2)));
  if (answer === 'valid') code = ResponseCode.Valid;
  if (answer === 'changed') code = ResponseCode.Changed;
  if (answer === 'error') code = ResponseCode.InternalServerError;
  const payload = code === ResponseCode.Valid ? EMPTY_BYTES : Buffer.from(`origin ${request.code} ${request.options.length}`);
  return { type, code, messageId, token: request.token, options: options.sort((a, b) => a.number - b.number), payload };
}

/** Runs the steps against one proxy; the transcript is every datagram sent on either leg, with its (fake) time, and the request log. */
async function transcript(fastPath: boolean, steps: readonly Step[], upstreamFastPath = fastPath, cached = true): Promise<{ sent: string[]; log: string[]; fast: number; simple: number }> {
  const p = proxy(fastPath, upstreamFastPath, cached);
  const sent: string[] = [];
  /** Upstream requests (CON or NON) not yet answered by the origin, oldest first. */
  const pending: Array<{ message: CoapMessage; peer: PeerAddress }> = [];
  let originMessageId = 0x4000;
  const collect = () => {
    for (const d of p.downstream.take()) sent.push(`${d.at} down ${d.bytes.toString('hex')}`);
    for (const d of p.upstream.take()) {
      sent.push(`${d.at} up ${d.bytes.toString('hex')}`);
      const m = d.message;
      if ((m.type === MessageType.CON || m.type === MessageType.NON) && m.code >= 1 && m.code <= 31 && !pending.some((x) => x.message.messageId === m.messageId)) pending.push({ message: m, peer: d.peer });
    }
  };
  let last: Buffer | undefined;
  for (const st of steps) {
    if (st.kind === 'wait') p.clock.advance(st.ms);
    else if (st.kind === 'again') {
      if (last) p.downstream.deliver(last);
    } else if (st.kind === 'request') {
      last = msg({ type: st.type, code: st.code, messageId: st.messageId, token: st.token, options: st.options, payload: st.payload });
      p.downstream.deliver(last);
    } else if (pending.length > 0) {
      const [request] = pending.splice(st.pick % pending.length, 1);
      const r = request!.message;
      // From the address the request went to (RFC 7252 §5.3.2).
      const fromOrigin = (m: CoapMessage) => p.upstream.deliver(encodeMessage(m), request!.peer);
      const confirmable = r.type === MessageType.CON;
      if (st.answer === 'rst') fromOrigin({ type: MessageType.RST, code: 0, messageId: r.messageId, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES });
      else if (st.answer === 'empty-ack') {
        if (confirmable) fromOrigin({ type: MessageType.ACK, code: 0, messageId: r.messageId, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES });
        pending.push(request!); // answered separately by a later step, if any
      } else if (st.answer === 'separate') {
        if (confirmable) fromOrigin({ type: MessageType.ACK, code: 0, messageId: r.messageId, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES });
        fromOrigin(originResponse(r, 'content', MessageType.CON, originMessageId++));
      } else fromOrigin(originResponse(r, st.answer, confirmable ? MessageType.ACK : MessageType.NON, confirmable ? r.messageId : originMessageId++));
    }
    await flush();
    collect();
  }
  for (let i = 0; i < 10; i++) {
    p.clock.advance(30_000);
    await flush();
  }
  collect();
  await p.forward.close();
  await p.server.close();
  await p.upstreamEndpoint.close();
  return { sent, log: p.log, fast: p.server.fastPathForwards, simple: p.forward.stats.simple };
}

test('a simple proxied GET takes the proxy fast path; Observe, No-Response, a local request and fastPath: false do not', async () => {
  for (const fastPath of [true, false]) {
    const p = proxy(fastPath);
    const get = (messageId: number, options: CoapOption[]) => p.downstream.deliver(msg({ code: Method.GET, messageId, token: Uint8Array.of(messageId), options }));
    get(1, [opt(OptionNumber.ProxyUri, `coap://${ORIGIN}/r`)]);
    get(2, [opt(OptionNumber.ProxyScheme, 'coap'), opt(OptionNumber.UriHost, ORIGIN), opt(OptionNumber.UriPath, 'r'), opt(OptionNumber.Accept, encodeUint(0))]);
    await flush();
    assert.equal(p.server.fastPathForwards, fastPath ? 2 : 0);
    get(3, [opt(OptionNumber.ProxyUri, `coap://${ORIGIN}/r`), opt(OptionNumber.Observe, encodeUint(0))]);
    get(4, [opt(OptionNumber.ProxyUri, `coap://${ORIGIN}/r`), opt(OptionNumber.NoResponse, encodeUint(2))]);
    get(5, [opt(OptionNumber.UriPath, 'own')]);
    await flush();
    assert.equal(p.server.fastPathForwards, fastPath ? 2 : 0);
    const upstream = p.upstream.take().map((d) => d.message);
    assert.equal(upstream.length, 4, 'the two GETs, the observation and the GET with No-Response went upstream');
    // The origin answers the first: the client gets the 2.05 piggybacked, the same on either path.
    const first = upstream[0]!;
    p.upstream.deliver(encodeMessage(originResponse(first, 'content', MessageType.ACK, first.messageId)), { address: ORIGIN, port: 5683 });
    await flush();
    const down = p.downstream.take().map((d) => d.message);
    assert.deepEqual(down.map((m) => [m.type, m.code, m.messageId]), [[MessageType.ACK, ResponseCode.Content, 5], [MessageType.ACK, ResponseCode.Content, 1]]);
    await p.forward.close();
    await p.server.close();
    await p.upstreamEndpoint.close();
  }
});

test('an OSCORE-capable proxy (its layer is removed before the claim) takes the layered path; without it the fast path is back', async () => {
  const p = proxy(true);
  const context = new OscoreSecurityContext({ masterSecret: Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex'), senderId: Buffer.from([1]), recipientIds: [EMPTY_BYTES] }, new VolatileSequence());
  // Two targets: a second GET of the same one would wait for the first's response (coalescing).
  const get = (messageId: number) => p.downstream.deliver(msg({ code: Method.GET, messageId, token: Uint8Array.of(messageId), options: [opt(OptionNumber.ProxyUri, `coap://${ORIGIN}/${messageId}`)] }));
  p.server.security = new OscoreServerSecurity([context]);
  get(1);
  await flush();
  assert.equal(p.server.fastPathForwards, 0);
  p.server.security = undefined;
  get(2);
  await flush();
  assert.equal(p.server.fastPathForwards, 1);
  assert.equal(p.upstream.take().length, 2, 'both forwarded, one each way');
  await p.forward.close();
  await p.server.close();
  await p.upstreamEndpoint.close();
});

test('property: both legs carry the same datagrams at the same times with and without the proxy fast path', async () => {
  let fastForwards = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 30 }), async (steps) => {
      const fast = await transcript(true, steps);
      const layered = await transcript(false, steps);
      assert.equal(layered.fast, 0);
      assert.deepEqual(fast.sent, layered.sent);
      assert.deepEqual(fast.log, layered.log);
      fastForwards += fast.fast;
    }),
    // Seen failing against mutants: the fast path taking requests with No-Response (its suppression
    // skipped: the counterexample is a 5.04 sent that No-Response 16 suppresses), and one not recording the answer in the request log.
    { numRuns: 250 },
  );
  assert.ok(fastForwards > 200, `the proxy fast path forwarded ${fastForwards} requests of the property's runs`);
});

test('property: both legs carry the same datagrams at the same times with and without the simple upstream path', async () => {
  let simple = 0;
  await fc.assert(
    // Without a cache (and so without coalescing) as well: every request goes upstream.
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 30 }), fc.boolean(), async (steps, cached) => {
      const on = await transcript(true, steps, true, cached);
      const off = await transcript(true, steps, false, cached);
      assert.equal(off.simple, 0);
      assert.deepEqual(on.sent, off.sent);
      assert.deepEqual(on.log, off.log);
      simple += on.simple;
    }),
    // Seen failing against mutants: every request on the simple path whatever its options, option
    // bytes remembered per target and route but not per Hop-Limit, and sendSimple without the deadline.
    { numRuns: 200 },
  );
  assert.ok(simple > 80, `the simple upstream path sent ${simple} requests of the property's runs`);
});

test('the transcript sees what differs: a proxy that answers from a cache the other lacks sends other datagrams', async () => {
  // The property's own check (that two different proxies are told apart by the transcripts): a
  // request, its upstream copy, the origin's 2.05 and the same request again, which a cache answers.
  const steps: Step[] = [
    { kind: 'request', type: MessageType.CON, code: Method.GET, messageId: 1, token: Uint8Array.of(1), options: [opt(OptionNumber.ProxyUri, `coap://${ORIGIN}/r`)], payload: EMPTY_BYTES },
    { kind: 'origin', pick: 0, answer: 'content' },
    { kind: 'request', type: MessageType.CON, code: Method.GET, messageId: 2, token: Uint8Array.of(2), options: [opt(OptionNumber.ProxyUri, `coap://${ORIGIN}/r`)], payload: EMPTY_BYTES },
  ];
  const a = await transcript(true, steps);
  const b = await transcript(false, steps);
  assert.deepEqual(a.sent, b.sent);
  assert.equal(a.sent.filter((line) => line.includes(' up ')).length, 1, 'the second GET was a cache hit');
  assert.equal(decodeMessage(Buffer.from(a.sent.at(-1)!.split(' ')[2]!, 'hex')).code, ResponseCode.Content);
});
