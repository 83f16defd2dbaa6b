/**
 * The client's fast path for simple requests (src/client/fast-request.ts, issue 21): taken for a
 * plain request with default settings to a URI routed before, and otherwise not; and, as a
 * property, the same datagrams at the same (fake) times and the same outcomes, in the same order,
 * as a client with `fastPath: false` — through random request sequences with piggybacked,
 * separate (CON and NON) and duplicated responses, empty ACKs, RSTs, lost answers and timeouts,
 * Block2 transfers, Echo challenges, wrong tokens, unrecognized critical options and protected
 * responses, with layered requests interleaved and NSTART queueing.
 *
 * Each client's UDP endpoint is real (127.0.0.1, port 0) but sends nothing: its datagrams are
 * captured, and the "server" is scripted, feeding the messaging layer directly; its clock is fake.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CoapClient } from '../src/client/client.js';
import { encodeBlock } from '../src/coap/block.js';
import { decodeMessage, encodeEmpty, encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { MessageType, encodeString, encodeUint, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import type { PeerAddress } from '../src/transport/transport.js';
import { SeededRandom } from '../src/util/random.js';
import { FakeScheduler } from '../src/util/scheduler.js';
import { FakeTransport, PEER } from './support/lockstep.js';
import { runTranscript, type Transcript, type TranscriptHarness, type TranscriptStep } from './support/client-transcript.js';

/** What a step's request is. */
// (Not Block1: concurrent Block1 operations draw their Request-Tags from the CSPRNG, not the seeded source.)
type RequestKind = 'get' | 'get-other' | 'post' | 'non' | 'accept' | 'confirmable';

type Answer = 'piggybacked' | 'empty-ack' | 'separate-con' | 'separate-non' | 'rst' | 'echo' | 'block2' | 'wrong-token' | 'critical' | 'oscore' | 'error' | 'duplicate' | 'lost';

type Step = TranscriptStep<RequestKind, Exclude<Answer, 'duplicate' | 'lost'>>;

interface Harness extends TranscriptHarness {
  server: PeerAddress;
}

async function harness(fastPath: boolean, nstart: number): Promise<Harness> {
  const clock = new FakeScheduler(0);
  const client = new CoapClient({ bindIpv4: '127.0.0.1', fastPath, scheduler: clock, random: new SeededRandom(23), parameters: { nstart } });
  const endpoint = await client.endpoint(4);
  // The "server" is the client's own address: nothing is sent there, the datagrams are captured.
  const server: PeerAddress = endpoint.transport.localAddress();
  const h: Harness = {
    client,
    clock,
    server,
    sent: [],
    requests: [],
    deliver: (bytes) => endpoint.messaging.receive(bytes, server),
  };
  (endpoint.transport as { send(data: Uint8Array, peer: PeerAddress): void }).send = (data) => {
    h.sent.push(`${clock.now()} ${Buffer.from(data).toString('hex')}`);
    const message = decodeMessage(data);
    if (message.code >= 1 && message.code <= 31 && (message.type === MessageType.CON || message.type === MessageType.NON)) h.requests.push(message);
  };
  return h;
}

const uriOf = (h: Harness, path: string): string => `coap://${h.server.address}:${h.server.port}/${path}`;

function startRequest(h: Harness, kind: RequestKind): Promise<unknown> {
  const uri = uriOf(h, kind === 'get-other' ? 'other?q=1' : 'a/b');
  switch (kind) {
    case 'get':
    case 'get-other':
      return h.client.get(uri);
    case 'post':
      return h.client.post(uri, 'body');
    case 'non':
      return h.client.get(uri, { confirmable: false });
    case 'confirmable':
      return h.client.request({ method: 'PUT', uri, payload: Uint8Array.of(1, 2, 3), confirmable: true });
    case 'accept':
      // Not simple (Accept): the layered path, its token in the other table.
      return h.client.get(uri, { accept: 50 });
  }
}

const reply = (request: CoapMessage, fields: Partial<CoapMessage> & { code: number }): Buffer =>
  encodeMessage({ type: MessageType.ACK, messageId: request.messageId, token: request.token, options: [], payload: new Uint8Array(0), ...fields });

let separateMessageId = 0x7000;

/** The scripted server's datagram for `answer` to `request`. */
function answerBytes(answer: Exclude<Answer, 'duplicate' | 'lost'>, request: CoapMessage): Buffer {
  const content = encodeString(`r${request.messageId}`);
  switch (answer) {
    case 'piggybacked':
      return reply(request, { code: ResponseCode.Content, options: [{ number: OptionNumber.ContentFormat, value: encodeUint(0) }], payload: content });
    case 'empty-ack':
      return encodeEmpty(MessageType.ACK, request.messageId);
    case 'separate-con':
      return reply(request, { type: MessageType.CON, messageId: separateMessageId++ & 0xffff, code: ResponseCode.Content, payload: content });
    case 'separate-non':
      return reply(request, { type: MessageType.NON, messageId: separateMessageId++ & 0xffff, code: ResponseCode.Changed, payload: content });
    case 'rst':
      return encodeEmpty(MessageType.RST, request.messageId);
    case 'echo':
      return reply(request, { code: ResponseCode.Unauthorized, options: [{ number: OptionNumber.Echo, value: Uint8Array.of(9, 9, 9, 9) }] });
    case 'block2': {
      const block: CoapOption = { number: OptionNumber.Block2, value: encodeBlock({ num: 0, more: true, szx: 0 }) };
      return reply(request, { code: ResponseCode.Content, options: [block], payload: encodeString('0123456789abcdef') });
    }
    case 'wrong-token':
      return reply(request, { code: ResponseCode.Content, token: Uint8Array.of(1, 2, 3), payload: content });
    case 'critical':
      return reply(request, { code: ResponseCode.Content, options: [{ number: 1111, value: Uint8Array.of(1) }] });
    case 'oscore':
      return reply(request, { code: ResponseCode.Changed, options: [{ number: OptionNumber.Oscore, value: new Uint8Array(0) }], payload: Uint8Array.of(0xaa, 0xbb) });
    case 'error':
      return reply(request, { code: ResponseCode.NotFound, payload: encodeString('gone') });
  }
}

/** An outcome as text, the two clients' own server ports (in peer keys and messages) left out. */
const describeOutcome = (index: number, result: PromiseSettledResult<unknown>): string => {
  if (result.status === 'rejected') {
    const error = result.reason as Error;
    return `${index} ${error.constructor.name} ${error.message}`.replace(/127\.0\.0\.1:\d+/g, 'server');
  }
  const r = result.value as Awaited<ReturnType<CoapClient['get']>>;
  return `${index} ${r.status} ${r.payload.toString('hex')} ${r.contentFormat} ${r.options.map((o) => o.number).join(',')} ${r.context.peerKey.replace(/:\d+$/, '')} ${r.message.type} ${r.message.messageId}`;
};

export async function transcript(fastPath: boolean, nstart: number, steps: readonly Step[]): Promise<Transcript> {
  separateMessageId = 0x7000;
  const h = await harness(fastPath, nstart);
  return runTranscript<RequestKind, Exclude<Answer, 'duplicate' | 'lost'>>(h, { routes: ['a/b', 'other?q=1'], uriOf: (path) => uriOf(h, path), start: (kind) => startRequest(h, kind), answer: answerBytes, describe: describeOutcome }, steps);
}

test('a simple request takes the fast path; settings, a block size or fastPath: false keep it layered', async () => {
  const h = await harness(true, 1);
  const uri = uriOf(h, 'a/b');
  const answerNext = async (promise: Promise<unknown>, answer: 'piggybacked' | 'separate-non' = 'piggybacked'): Promise<unknown> => {
    for (let i = 0; i < 100 && h.requests.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
    h.deliver(answerBytes(answer, h.requests.shift()!));
    return promise;
  };
  await answerNext(h.client.get(uri));
  assert.equal(h.client.fastPathRequests, 0, 'the first request routes the URI');
  await answerNext(h.client.get(uri));
  await answerNext(h.client.post(uri, 'x'));
  await answerNext(h.client.request({ method: 'GET', uri, confirmable: false }), 'separate-non');
  assert.equal(h.client.fastPathRequests, 3);
  await answerNext(h.client.get(uri, { accept: 50 }));
  await answerNext(h.client.get(uri, { timeout: 5000 }));
  // Block1 (RFC 7959): its first block is sent, the transfer is left to close().
  const big = h.client.post(uri, 'x'.repeat(1025)).catch((error: Error) => error.message);
  for (let i = 0; i < 100 && h.requests.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(h.client.fastPathRequests, 3, 'options, a timeout or a body of two blocks take the layers');
  await h.client.close();
  assert.equal(await big, 'endpoint closed');

  // A `security` map that leaves the URI plain keeps the fast path (its OSCORE targets:
  // test/client-oscore-fast-path.test.ts); `fastPath: false` or a default block size do not.
  for (const [options, fast] of [
    [{ fastPath: false }, 0],
    [{ security: () => undefined }, 1],
    [{ blockSize: 64 }, 0],
  ] as const) {
    const other = new CoapClient({ bindIpv4: '127.0.0.1', ...options });
    const endpoint = await other.endpoint(4);
    const server = endpoint.transport.localAddress();
    const requests: CoapMessage[] = [];
    (endpoint.transport as { send(data: Uint8Array, peer: PeerAddress): void }).send = (data) => requests.push(decodeMessage(data));
    for (let n = 0; n < 2; n++) {
      const response = other.get(`coap://${server.address}:${server.port}/a`);
      for (let i = 0; i < 100 && requests.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
      endpoint.messaging.receive(answerBytes('piggybacked', requests.shift()!), server);
      await response;
    }
    assert.equal(other.fastPathRequests, fast, JSON.stringify(options));
    await other.close();
  }
});

const steps: fc.Arbitrary<Step[]> = fc.array(
  fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom<RequestKind>('get', 'get', 'get-other', 'post', 'non', 'confirmable', 'accept').map((request): Step => ({ request })) },
    {
      weight: 6,
      arbitrary: fc
        .record({
          answer: fc.constantFrom<Answer>('piggybacked', 'piggybacked', 'piggybacked', 'empty-ack', 'separate-con', 'separate-non', 'rst', 'echo', 'block2', 'wrong-token', 'critical', 'oscore', 'error', 'duplicate', 'lost'),
          pick: fc.nat(40),
        })
        .map((a): Step => a),
    },
    { weight: 1, arbitrary: fc.constantFrom(100, 2_100, 3_500, 50_000).map((advance): Step => ({ advance })) },
  ),
  { maxLength: 60 },
);

test('property: the same datagrams at the same times and the same outcomes with and without the fast path', async () => {
  let fastRequests = 0;
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(1, 1, 2, 4), steps, async (nstart, script) => {
      const fast = await transcript(true, nstart, script);
      const layered = await transcript(false, nstart, script);
      assert.equal(layered.fast, 0);
      assert.deepEqual(fast.sent, layered.sent);
      assert.deepEqual(fast.outcomes, layered.outcomes);
      fastRequests += fast.fast;
    }),
    { numRuns: 300 },
  );
  assert.ok(fastRequests > 300, `the fast path was taken (${fastRequests} requests)`);
});

test('tokens stay unique across simple and layered requests: each path redraws one the other holds', async () => {
  const X = Uint8Array.of(1, 1, 1, 1, 1, 1, 1, 1);
  const Y = Uint8Array.of(2, 2, 2, 2, 2, 2, 2, 2);
  const Z = Uint8Array.of(3, 3, 3, 3, 3, 3, 3, 3);
  const draws = [X, X, Y, X, Y, Z];
  const random = { bytes: (n: number) => (n === 8 ? draws.shift()!.slice() : new Uint8Array(n)), float: () => 0.5 };
  const clock = new FakeScheduler(0);
  const transport = new FakeTransport(clock);
  const endpoint = new CoapEndpoint({ transport, scheduler: clock, random, parameters: { nstart: 4 } });
  const noHandler = { onResponse: () => {}, onError: () => {} };
  const path = encodeMessage({ type: MessageType.CON, code: 1, messageId: 0, token: new Uint8Array(0), options: [{ number: OptionNumber.UriPath, value: encodeString('a') }], payload: new Uint8Array(0) }).subarray(4);
  endpoint.sendSimple(Method.GET, path, new Uint8Array(0), PEER, {}, noHandler);
  void endpoint.request({ type: MessageType.CON, code: Method.GET, messageId: 0, token: new Uint8Array(0), options: [], payload: new Uint8Array(0) }, PEER).catch(() => undefined);
  endpoint.sendSimple(Method.GET, path, new Uint8Array(0), PEER, {}, noHandler);
  const tokens = transport.take().map((d) => Buffer.from(d.message.token).toString('hex'));
  assert.deepEqual(tokens, [X, Y, Z].map((t) => Buffer.from(t).toString('hex')));
  await endpoint.close();
});
