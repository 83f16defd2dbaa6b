/**
 * The client's OSCORE fast path (src/client/oscore-fast-request.ts, issue 21): taken for a simple
 * request to a URI protected with one OscoreClientSecurity, and not while a key update or Appendix
 * B.2 holds the requester; and, as a property, the same datagrams at the same (fake) times and the
 * same outcomes, in the same order, as a client with `fastPath: false` — through random request
 * sequences (Partial IVs crossing a byte boundary, with and without an ID Context, direct or
 * through a forward proxy — outer options on both sides of the OSCORE option —, plain URIs
 * interleaved) answered by protected piggybacked, separate (CON and NON), duplicated and lost
 * responses, responses with a Partial IV of their own, empty ACKs, RSTs, Echo challenges (RFC 9175
 * §2.4), inner and outer Block2, inner Observe, tampered ciphertexts, unprotected errors, wrong
 * tokens and unrecognized critical options, with clock steps through retransmissions and timeouts.
 *
 * The scripted server opens each request with the server's context (no replay window: the two
 * clients' transcripts must see the same answers) and protects its answer with RFC 8613 §8.3.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { encodeBlock } from '../src/coap/block.js';
import { decodeMessage, encodeEmpty, encodeMessage } from '../src/coap/codec.js';
import { ResponseCode } from '../src/coap/codes.js';
import { MessageType, encodeString, encodeUint, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { protectResponse, unprotectRequest } from '../src/oscore/protect.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import type { PeerAddress } from '../src/transport/transport.js';
import { SeededRandom } from '../src/util/random.js';
import { FakeScheduler } from '../src/util/scheduler.js';
import { runTranscript, type Transcript, type TranscriptHarness, type TranscriptStep } from './support/client-transcript.js';

type RequestKind = 'get' | 'get-other' | 'post' | 'non' | 'accept' | 'plain';

type Answer =
  | 'piggybacked'
  | 'own-piv'
  | 'empty-ack'
  | 'separate-con'
  | 'separate-non'
  | 'rst'
  | 'echo'
  | 'inner-block2'
  | 'outer-block2'
  | 'outer-block2-whole'
  | 'inner-observe'
  | 'tampered'
  | 'unprotected'
  | 'wrong-token'
  | 'critical'
  | 'error'
  | 'duplicate'
  | 'lost';

type Step = TranscriptStep<RequestKind, Exclude<Answer, 'duplicate' | 'lost'>>;

interface ContextShape {
  senderId: string;
  recipientId: string;
  idContext?: string;
  /** The client's first Sender Sequence Number (250: its Partial IV grows to two bytes during a run). */
  start: number;
}

const MASTER_SECRET = Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex');
const MASTER_SALT = Buffer.from('9e7ca92223786340', 'hex');

function contexts(shape: ContextShape): { client: OscoreSecurityContext; server: OscoreSecurityContext } {
  const idContext = shape.idContext !== undefined ? { idContext: Buffer.from(shape.idContext, 'hex') } : {};
  const client = new OscoreSecurityContext(
    { masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, senderId: Buffer.from(shape.senderId, 'hex'), recipientIds: [Buffer.from(shape.recipientId, 'hex')], ...idContext },
    new VolatileSequence(shape.start),
  );
  const server = new OscoreSecurityContext(
    { masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, senderId: Buffer.from(shape.recipientId, 'hex'), recipientIds: [Buffer.from(shape.senderId, 'hex')], ...idContext },
    new VolatileSequence(7000),
  );
  return { client, server };
}

interface Harness extends TranscriptHarness {
  security: OscoreClientSecurity;
  server: OscoreSecurityContext;
  /** Where the request URIs point (the proxy's target, or the server itself). */
  target: PeerAddress;
  address: PeerAddress;
}


/** With `proxied`, requests go to this forward proxy (Proxy-Scheme form: outer Uri-Host, Uri-Port and Proxy-Scheme around the OSCORE option) for TARGET. */
const PROXY: PeerAddress = { address: '192.0.2.9', port: 5683 };
const TARGET: PeerAddress = { address: '192.0.2.7', port: 5684 };

async function harness(fastPath: boolean, nstart: number, shape: ContextShape, proxied = false): Promise<Harness> {
  const clock = new FakeScheduler(0);
  const { client: clientContext, server } = contexts(shape);
  const security = new OscoreClientSecurity(clientContext);
  // URIs under /plain go unprotected: both kinds of simple target in one client.
  const client = new CoapClient({
    bindIpv4: '127.0.0.1',
    fastPath,
    scheduler: clock,
    random: new SeededRandom(31),
    parameters: { nstart },
    security: (uri) => (uri.includes('/plain') ? undefined : security),
    ...(proxied ? { proxy: `coap://${PROXY.address}:${PROXY.port}` } : {}),
  });
  const endpoint = await client.endpoint(4);
  // The "server" (or proxy) is never sent to: the datagrams are captured, its answers fed to the messaging layer.
  const address: PeerAddress = proxied ? PROXY : endpoint.transport.localAddress();
  const h: Harness = { client, security, server, clock, address, target: proxied ? TARGET : address, sent: [], requests: [], deliver: (bytes) => endpoint.messaging.receive(bytes, address) };
  (endpoint.transport as { send(data: Uint8Array, peer: PeerAddress): void }).send = (data) => {
    h.sent.push(`${clock.now()} ${Buffer.from(data).toString('hex')}`);
    const message = decodeMessage(data);
    if (message.code >= 1 && message.code <= 31 && (message.type === MessageType.CON || message.type === MessageType.NON)) h.requests.push(message);
  };
  return h;
}

const uriOf = (h: Harness, path: string): string => `coap://${h.target.address}:${h.target.port}/${path}`;

function startRequest(h: Harness, kind: RequestKind): Promise<unknown> {
  const uri = uriOf(h, kind === 'get-other' ? 'other?q=1' : kind === 'plain' ? 'plain' : 'a/b');
  switch (kind) {
    case 'get':
    case 'get-other':
    case 'plain':
      return h.client.get(uri);
    case 'post':
      return h.client.post(uri, 'body');
    case 'non':
      return h.client.get(uri, { confirmable: false });
    case 'accept':
      // Not simple (Accept): the layered path, protected by the same context.
      return h.client.get(uri, { accept: 50 });
  }
}

let separateMessageId = 0x7000;

const ack = (request: CoapMessage, fields: Partial<CoapMessage> & { code: number }): Buffer =>
  encodeMessage({ type: MessageType.ACK, messageId: request.messageId, token: request.token, options: [], payload: new Uint8Array(0), ...fields });

/** The scripted server's datagram for `answer` to `request` (protected unless the answer is about the outer message or is unprotected). */
function answerBytes(h: Harness, answer: Exclude<Answer, 'duplicate' | 'lost'>, request: CoapMessage): Buffer {
  if (answer === 'empty-ack') return encodeEmpty(MessageType.ACK, request.messageId);
  if (answer === 'rst') return encodeEmpty(MessageType.RST, request.messageId);
  const opened = unprotectRequest(request, () => h.server.primaryRecipient.params);
  const content = encodeString(`r${request.messageId}`);
  const contentFormat: CoapOption = { number: OptionNumber.ContentFormat, value: encodeUint(0) };
  if (!opened.ok || answer === 'unprotected') {
    // A plain request's answer, or an OSCORE error (§8.2: sent without OSCORE processing).
    const code = opened.ok ? ResponseCode.Unauthorized : ResponseCode.Content;
    return ack(request, { code, options: opened.ok ? [] : [contentFormat], payload: opened.ok ? encodeString('Replay detected') : content });
  }
  const inner = (code: number, options: CoapOption[], payload: Uint8Array): CoapMessage => ({ type: MessageType.ACK, code, messageId: request.messageId, token: request.token, options, payload });
  const protect = (message: CoapMessage, sequenceNumber?: number): CoapMessage =>
    protectResponse(message, h.server.sender, opened.binding, sequenceNumber !== undefined ? { sequenceNumber } : {});
  switch (answer) {
    case 'piggybacked':
      return encodeMessage(protect(inner(ResponseCode.Content, [contentFormat], content)));
    case 'own-piv':
      return encodeMessage(protect(inner(ResponseCode.Content, [contentFormat], content), h.server.nextSequenceNumber()));
    case 'separate-con':
      return encodeMessage({ ...protect(inner(ResponseCode.Content, [], content)), type: MessageType.CON, messageId: separateMessageId++ & 0xffff });
    case 'separate-non':
      return encodeMessage({ ...protect(inner(ResponseCode.Changed, [], content)), type: MessageType.NON, messageId: separateMessageId++ & 0xffff });
    case 'echo':
      return encodeMessage(protect(inner(ResponseCode.Unauthorized, [{ number: OptionNumber.Echo, value: Uint8Array.of(9, 9, 9, 9) }], new Uint8Array(0))));
    case 'inner-block2':
      return encodeMessage(protect(inner(ResponseCode.Content, [{ number: OptionNumber.Block2, value: encodeBlock({ num: 0, more: true, szx: 0 }) }], encodeString('0123456789abcdef'))));
    case 'outer-block2': {
      const whole = protect(inner(ResponseCode.Content, [contentFormat], encodeString('a protected response in two outer blocks')));
      const block: CoapOption = { number: OptionNumber.Block2, value: encodeBlock({ num: 0, more: true, szx: 0 }) };
      return encodeMessage({ ...whole, options: [...whole.options, block], payload: whole.payload.subarray(0, 16) });
    }
    case 'outer-block2-whole': {
      // One outer block holding the whole ciphertext (§8.4.1: reassembled, then verified).
      const whole = protect(inner(ResponseCode.Content, [contentFormat], content));
      return encodeMessage({ ...whole, options: [...whole.options, { number: OptionNumber.Block2, value: encodeBlock({ num: 0, more: false, szx: 6 }) }] });
    }
    case 'inner-observe':
      return encodeMessage(protect(inner(ResponseCode.Content, [{ number: OptionNumber.Observe, value: encodeUint(3) }], content)));
    case 'tampered': {
      const bytes = encodeMessage(protect(inner(ResponseCode.Content, [contentFormat], content)));
      bytes[bytes.length - 3]! ^= 0x40;
      return bytes;
    }
    case 'wrong-token':
      return encodeMessage({ ...protect(inner(ResponseCode.Content, [], content)), token: Uint8Array.of(1, 2, 3) });
    case 'critical': {
      const protectedMessage = protect(inner(ResponseCode.Content, [], content));
      return encodeMessage({ ...protectedMessage, options: [...protectedMessage.options, { number: 1111, value: Uint8Array.of(1) }] });
    }
    case 'error':
      return encodeMessage(protect(inner(ResponseCode.NotFound, [], encodeString('gone'))));
  }
}

/** An outcome as text, the clients' own ports left out. */
const describeOutcome = (index: number, result: PromiseSettledResult<unknown>): string => {
  if (result.status === 'rejected') {
    const error = result.reason as Error;
    return `${index} ${error.constructor.name} ${error.message}`.replace(/127\.0\.0\.1:\d+/g, 'server');
  }
  const r = result.value as Awaited<ReturnType<CoapClient['get']>>;
  const wire = r.wire === undefined ? '-' : Buffer.from(encodeMessage(r.wire)).toString('hex');
  return `${index} ${r.status} ${r.payload.toString('hex')} ${r.contentFormat} ${r.options.map((o) => `${o.number}=${Buffer.from(o.value).toString('hex')}`).join(',')} ${r.context.peerKey.replace(/:\d+$/, '')} ${JSON.stringify(r.context.oscore)} ${r.message.type} ${r.message.messageId} ${wire}`;
};

async function transcript(fastPath: boolean, nstart: number, shape: ContextShape, proxied: boolean, steps: readonly Step[]): Promise<Transcript> {
  separateMessageId = 0x7000;
  const h = await harness(fastPath, nstart, shape, proxied);
  const script = { routes: ['a/b', 'other?q=1', 'plain'], uriOf: (path: string) => uriOf(h, path), start: (kind: RequestKind) => startRequest(h, kind), answer: (answer: Exclude<Answer, 'duplicate' | 'lost'>, request: CoapMessage) => answerBytes(h, answer, request), describe: describeOutcome };
  return runTranscript<RequestKind, Exclude<Answer, 'duplicate' | 'lost'>>(h, script, steps);
}

const SHAPES: ContextShape[] = [
  { senderId: '', recipientId: '01', start: 250 },
  { senderId: '01', recipientId: '', start: 0 },
  { senderId: '0a0b', recipientId: '0c', idContext: '37cbf3210017a2d3', start: 65_530 },
];

const steps: fc.Arbitrary<Step[]> = fc.array(
  fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom<RequestKind>('get', 'get', 'get-other', 'post', 'non', 'accept', 'plain').map((request): Step => ({ request })) },
    {
      weight: 6,
      arbitrary: fc
        .record({
          answer: fc.constantFrom<Answer>(
            'piggybacked',
            'piggybacked',
            'piggybacked',
            'own-piv',
            'empty-ack',
            'separate-con',
            'separate-non',
            'rst',
            'echo',
            'inner-block2',
            'outer-block2',
            'outer-block2-whole',
            'inner-observe',
            'tampered',
            'unprotected',
            'wrong-token',
            'critical',
            'error',
            'duplicate',
            'lost',
          ),
          pick: fc.nat(40),
        })
        .map((a): Step => a),
    },
    { weight: 1, arbitrary: fc.constantFrom(100, 2_100, 3_500, 50_000).map((advance): Step => ({ advance })) },
  ),
  { maxLength: 50 },
);

test('property: with and without the OSCORE fast path, the same datagrams at the same times and the same outcomes', async () => {
  let fastRequests = 0;
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(1, 1, 2, 4), fc.constantFrom(...SHAPES), fc.boolean(), steps, async (nstart, shape, proxied, script) => {
      const fast = await transcript(true, nstart, shape, proxied, script);
      const layered = await transcript(false, nstart, shape, proxied, script);
      assert.equal(layered.fast, 0);
      assert.deepEqual(fast.sent, layered.sent);
      assert.deepEqual(fast.outcomes, layered.outcomes);
      fastRequests += fast.fast;
    }),
    { numRuns: Number(process.env.OSCORE_FAST_PATH_RUNS ?? 150) },
  );
  assert.ok(fastRequests > 150, `the fast path was taken (${fastRequests} requests)`);
});

test('an OSCORE request takes the fast path unless a key update or Appendix B.2 holds the requester', async () => {
  const shape = { senderId: '', recipientId: '01', start: 0 };
  const h = await harness(true, 1, shape);
  const answerNext = async (promise: Promise<unknown>): Promise<unknown> => {
    for (let i = 0; i < 100 && h.requests.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
    h.deliver(answerBytes(h, 'piggybacked', h.requests.shift()!));
    return promise;
  };
  const uri = uriOf(h, 'a/b');
  await answerNext(h.client.get(uri));
  assert.equal(h.client.fastPathRequests, 0, 'the first request routes the URI');
  const response = (await answerNext(h.client.get(uri))) as Awaited<ReturnType<CoapClient['get']>>;
  assert.equal(h.client.fastPathRequests, 1);
  assert.equal(response.text(), `r${response.message.messageId}`);
  assert.deepEqual(response.context.oscore, [{ peer: 'kid 01', kid: '01' }]);
  // A key update attached (KUDOS, src/kudos/client.ts) protects every request itself.
  const requester = h.security.requester;
  const protectedByUpdate: string[] = [];
  requester.keyUpdate = {
    protect: (r, request, classOf) => {
      protectedByUpdate.push('protect');
      requester.keyUpdate = undefined;
      const exchange = r.protect(request, classOf);
      requester.keyUpdate = update;
      return exchange;
    },
    admit: () => Promise.resolve(() => undefined),
  };
  const update = requester.keyUpdate;
  await answerNext(h.client.get(uri));
  assert.deepEqual(protectedByUpdate, ['protect']);
  assert.equal(h.client.fastPathRequests, 1, 'a key update keeps requests layered');
  requester.keyUpdate = undefined;
  await answerNext(h.client.get(uri));
  assert.equal(h.client.fastPathRequests, 2);
  await h.client.close();

  // Appendix B.2 running (a context with re-derivation, rederive() called): layered until it completes.
  const b2 = new OscoreClientSecurity(new OscoreSecurityContext({ masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, senderId: Buffer.alloc(0), recipientIds: [Buffer.from('01', 'hex')], rederivation: true }, new VolatileSequence()));
  b2.rederive();
  assert.equal(b2.requester.rederiving, true);
  const client = new CoapClient({ bindIpv4: '127.0.0.1', security: () => b2 });
  const endpoint = await client.endpoint(4);
  const address = endpoint.transport.localAddress();
  const sent: CoapMessage[] = [];
  (endpoint.transport as { send(data: Uint8Array, peer: PeerAddress): void }).send = (data) => sent.push(decodeMessage(data));
  for (let n = 0; n < 2; n++) {
    const pending = client.get(`coap://${address.address}:${address.port}/a`).catch((error: Error) => error.message);
    for (let i = 0; i < 100 && sent.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
    endpoint.messaging.receive(encodeEmpty(MessageType.RST, sent.shift()!.messageId), address);
    assert.match(String(await pending), /RST/);
  }
  assert.equal(client.fastPathRequests, 0, 'B.2 running keeps requests layered');
  await client.close();
});
