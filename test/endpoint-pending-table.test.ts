/**
 * The endpoint's tables of waiting requests (src/exchange/endpoint.ts): requests under tokens the
 * endpoint makes in a number-keyed IntTable, requests under tokens the caller chose in a Map. As
 * a model test: whatever the interleaving of requests under fresh and chosen tokens (colliding on
 * the whole token and on the token's number), separate responses to them (matching, from the
 * wrong peer, under a token that shares only the number), a failed peer and closing, the outcomes
 * are those of one list of requests in send order — a response answers the request under its
 * token from its peer, a chosen token still waiting is refused, failing a peer or closing fails
 * its requests in the order they were sent.
 *
 * Token bytes are drawn from 0..3, so fresh tokens often share their number (the first four
 * bytes) or the whole token with chosen ones and with each other's, which the tables must tell apart.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, type CoapMessage } from '../src/coap/message.js';
import { CoapEndpoint, type ResponseHandler } from '../src/exchange/endpoint.js';
import { PeerUnreachableError, type PeerAddress } from '../src/transport/transport.js';
import { SeededRandom } from '../src/util/random.js';
import { FakeScheduler } from '../src/util/scheduler.js';
import { FakeTransport } from './support/lockstep.js';

const PEERS: PeerAddress[] = [
  { address: '192.0.2.1', port: 61616 },
  { address: '192.0.2.2', port: 61616 },
];

/** Seeded bytes in 0..3 for tokens; Message ID starts (2-byte draws) as drawn. */
class NarrowTokens extends SeededRandom {
  override bytes(n: number): Uint8Array {
    const b = super.bytes(n);
    if (n !== 2) for (let i = 0; i < n; i++) b[i] = b[i]! & 3;
    return b;
  }
}

type Step =
  | { kind: 'fresh'; peer: number; confirmable: boolean }
  | { kind: 'chosen'; peer: number; token: number[] }
  | { kind: 'respond'; pick: number; peer: number; confirmable: boolean; nearMiss: boolean }
  | { kind: 'fail-peer'; peer: number };

/** Mostly of a length the endpoint's own tokens have (1, 2, 4 or 8 bytes), so that they can be equal. */
const tokenBytes = fc.oneof(
  ...[1, 2, 4, 8].map((length) => fc.array(fc.integer({ min: 0, max: 3 }), { minLength: length, maxLength: length })),
  fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 0, maxLength: 8 }),
);
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('fresh' as const), peer: fc.integer({ min: 0, max: 1 }), confirmable: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('chosen' as const), peer: fc.integer({ min: 0, max: 1 }), token: tokenBytes }) },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('respond' as const), pick: fc.nat(), peer: fc.integer({ min: 0, max: 1 }), confirmable: fc.boolean(), nearMiss: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fail-peer' as const), peer: fc.integer({ min: 0, max: 1 }) }) },
);

interface Waiting {
  id: number;
  token: string;
  peer: number;
}

const hex = (b: Uint8Array | number[]): string => Buffer.from(b).toString('hex');

/** The endpoint under test, a log of its handlers' outcomes, and the one-list model beside it. */
function scenario(tokenLength: number, seed: number, narrow = true) {
  const clock = new FakeScheduler(0);
  const transport = new FakeTransport(clock);
  const endpoint = new CoapEndpoint({ transport, scheduler: clock, random: narrow ? new NarrowTokens(seed) : new SeededRandom(seed), tokenLength, parameters: { nstart: 3 } });
  const outcomes: string[] = [];
  const expected: string[] = [];
  const waiting: Waiting[] = [];
  const tokens: string[] = [];
  let ids = 0;
  let messageId = 0;
  const handler = (id: number): ResponseHandler => ({
    onResponse: (r) => outcomes.push(`${id} ${r.message.code === ResponseCode.Content ? 'Content' : r.message.code}`),
    onError: (e) => outcomes.push(`${id} ${e.constructor.name}`),
  });
  const request = (): CoapMessage => ({ type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES });
  const failAll = (peer: number | undefined, error: string): void => {
    for (const w of [...waiting]) {
      if (peer !== undefined && w.peer !== peer) continue;
      expected.push(`${w.id} ${error}`);
      waiting.splice(waiting.indexOf(w), 1);
    }
  };
  return {
    endpoint,
    outcomes,
    expected,
    waiting,
    tokens,
    apply(s: Step): void {
      const id = ids++;
      if (s.kind === 'fresh') {
        const message = request();
        endpoint.send(message, PEERS[s.peer]!, { confirmable: s.confirmable }, handler(id));
        const token = hex(message.token);
        assert.equal(message.token.length, tokenLength);
        assert.ok(!waiting.some((w) => w.token === token), `fresh token ${token} is already waiting`);
        waiting.push({ id, token, peer: s.peer });
        tokens.push(token);
      } else if (s.kind === 'chosen') {
        const token = hex(s.token);
        if (waiting.some((w) => w.token === token)) expected.push(`${id} CancelledError`);
        else waiting.push({ id, token, peer: s.peer });
        endpoint.send(request(), PEERS[s.peer]!, { token: Uint8Array.from(s.token) }, handler(id));
        tokens.push(token);
      } else if (s.kind === 'respond') {
        if (tokens.length === 0) return;
        const token = Buffer.from(tokens[s.pick % tokens.length]!, 'hex');
        // A token of the same number (its first four bytes) but another last byte.
        if (s.nearMiss && token.length > 4) token[token.length - 1] = (token[token.length - 1]! + 1) & 3;
        const answered = waiting.find((w) => w.token === hex(token) && w.peer === s.peer);
        if (answered) {
          expected.push(`${answered.id} Content`);
          waiting.splice(waiting.indexOf(answered), 1);
        }
        const type = s.confirmable ? MessageType.CON : MessageType.NON;
        transport.deliver(encodeMessage({ type, code: ResponseCode.Content, messageId: messageId++ & 0xffff, token, options: [], payload: EMPTY_BYTES }), PEERS[s.peer]!);
      } else {
        failAll(s.peer, 'UnreachableError');
        endpoint.failPeer(PEERS[s.peer]!, new PeerUnreachableError(PEERS[s.peer]!, 'ECONNREFUSED'));
      }
    },
    async close(): Promise<void> {
      failAll(undefined, 'CancelledError');
      await endpoint.close();
    },
  };
}

test('requests under fresh and chosen tokens are answered, refused and failed as one list in send order (model)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(1, 2, 4, 8),
      fc.integer({ min: 1, max: 0x7fffffff }),
      fc.array(step, { minLength: 1, maxLength: 60 }),
      async (tokenLength, seed, steps) => {
        const s = scenario(tokenLength, seed);
        for (const st of steps) {
          // Fewer waiting than fresh tokens can be told apart by number (4 of one byte, 16 of two
          // bytes of 0..3, 256 of more), or the endpoint would draw forever.
          if ((st.kind === 'fresh' || st.kind === 'chosen') && s.waiting.length >= (tokenLength === 1 ? 3 : tokenLength === 2 ? 12 : 40)) continue;
          s.apply(st);
          assert.deepEqual(s.outcomes, s.expected);
        }
        await s.close();
        assert.deepEqual(s.outcomes, s.expected);
        assert.equal(s.endpoint.stats().pendingRequests, 0);
      },
    ),
    { numRuns: 200 },
  );
});

test('thousands of requests: answered out of order, the rest failed in send order on close', async () => {
  const s = scenario(8, 99, false);
  const rng = new SeededRandom(5);
  for (let i = 0; i < 6000; i++) {
    const draw = rng.bytes(1)[0]!;
    if (draw < 150 || s.waiting.length === 0) s.apply({ kind: 'fresh', peer: draw & 1, confirmable: (draw & 2) === 0 });
    else if (draw < 160) s.apply({ kind: 'chosen', peer: draw & 1, token: [draw & 3, 1, 2, 3, (draw >> 2) & 3] });
    else {
      // A waiting request's token, answered from its peer.
      const w = s.waiting[draw % s.waiting.length]!;
      s.apply({ kind: 'respond', pick: s.tokens.indexOf(w.token), peer: w.peer, confirmable: false, nearMiss: false });
    }
  }
  assert.deepEqual(s.outcomes, s.expected);
  assert.ok(s.waiting.length > 100, `${s.waiting.length} still waiting`);
  await s.close();
  assert.deepEqual(s.outcomes, s.expected);
});
