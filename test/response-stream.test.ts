/**
 * Requests as response streams (exchange/response-stream.ts) in lockstep over UDP: request() is a
 * stream's first response; the matcher decides which sources may answer (token + peer by default,
 * RFC 7252 §5.3.2; token from any peer for a group request); every stream is bounded by a response
 * limit, a lifetime and a queue, and stopping the iteration drops its state.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { TimeoutError } from '../src/exchange/errors.js';
import { tokenFromAnyPeer } from '../src/exchange/matcher.js';
import { PEER, flush, lockstep, msg } from './support/lockstep.js';

const OTHER = { address: '192.0.2.2', port: 61616 };
const THIRD = { address: '192.0.2.3', port: 61616 };
const GROUP = { address: '224.0.1.187', port: 5683 };

const get = (): CoapMessage => ({ type: MessageType.NON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.UriPath, value: encodeString('r') }], payload: EMPTY_BYTES });

/** A NON 2.05 under `token` from `from`; returns what the endpoint sent back (an RST, or nothing). */
function answer(h: ReturnType<typeof lockstep>, token: Uint8Array, payload: string, from = PEER, type: MessageType = MessageType.NON, messageId = 0x4000 + payload.charCodeAt(0)) {
  h.transport.deliver(msg({ type, code: ResponseCode.Content, messageId, token, payload: Buffer.from(payload) }), from);
  return h.transport.take();
}

test('request() resolves with the first response of its stream; another source with the same token is refused (§5.3.2)', async () => {
  const h = lockstep();
  const pending = h.endpoint.request(get(), PEER, { confirmable: false });
  const [sent] = h.transport.take();
  const reply = answer(h, sent!.message.token, 'spoof', OTHER, MessageType.CON);
  assert.equal(reply.length, 1);
  assert.equal(reply[0]!.message.type, MessageType.RST, 'a CON from another peer is no answer to this request');
  answer(h, sent!.message.token, 'real');
  const response = await pending;
  assert.equal(Buffer.from(response.message.payload).toString(), 'real');
  assert.equal(h.endpoint.stats().pendingRequests, 0);
});

test('tokenFromAnyPeer: a group request yields one response per member, up to maxResponses', async () => {
  const h = lockstep();
  const stream = h.endpoint.stream(get(), GROUP, { confirmable: false, matcher: tokenFromAnyPeer, maxResponses: 2 });
  const [sent] = h.transport.take();
  assert.deepEqual(sent!.peer, GROUP);
  const token = sent!.message.token;
  answer(h, token, 'a', PEER);
  answer(h, token, 'b', OTHER);
  const late = answer(h, token, 'c', THIRD, MessageType.CON);
  assert.equal(late[0]?.message.type, MessageType.RST, 'the stream ended at its limit: a later answer is refused');
  const seen: string[] = [];
  for await (const response of stream) seen.push(`${response.context.peerKey} ${Buffer.from(response.message.payload).toString()}`);
  assert.deepEqual(seen, ['192.0.2.1:61616 a', '192.0.2.2:61616 b']);
  assert.equal(stream.ended, true);
});

test('the default matcher refuses the members of a group: only token + peer answers', async () => {
  const h = lockstep();
  const stream = h.endpoint.stream(get(), GROUP, { confirmable: false, maxResponses: 5, lifetime: 1000 });
  const [sent] = h.transport.take();
  const reply = answer(h, sent!.message.token, 'a', PEER, MessageType.CON);
  assert.equal(reply[0]?.message.type, MessageType.RST);
  h.clock.advance(1000);
  await assert.rejects(stream.next(), TimeoutError, 'no response within the lifetime: the stream fails');
});

test('lifetime ends a stream that has responses without error; a slow consumer loses the oldest beyond maxQueued', async () => {
  const h = lockstep();
  const stream = h.endpoint.stream(get(), GROUP, { confirmable: false, matcher: tokenFromAnyPeer, maxResponses: Infinity, lifetime: 5000, maxQueued: 2 });
  const [sent] = h.transport.take();
  for (const [i, from] of [PEER, OTHER, THIRD].entries()) answer(h, sent!.message.token, String(i), from);
  h.clock.advance(5000);
  const seen: string[] = [];
  for await (const response of stream) seen.push(Buffer.from(response.message.payload).toString());
  assert.deepEqual(seen, ['1', '2'], 'bounded queue: the oldest response went');
  assert.equal(answer(h, sent!.message.token, 'x', PEER, MessageType.CON)[0]?.message.type, MessageType.RST, 'after its lifetime the token is free');
});

test('stopping the iteration drops the stream: its waiting request, its token, its timer', async () => {
  const h = lockstep();
  const stream = h.endpoint.stream(get(), PEER, { maxResponses: Infinity, lifetime: 60_000 });
  const [sent] = h.transport.take();
  assert.equal(h.endpoint.stats().pendingRequests, 1);
  const iterate = (async () => {
    for await (const response of stream) return Buffer.from(response.message.payload).toString();
    return undefined;
  })();
  answer(h, sent!.message.token, 'first', PEER, MessageType.CON, sent!.message.messageId + 1);
  h.transport.take();
  assert.equal(await iterate, 'first');
  await flush();
  assert.equal(stream.ended, true, 'break/return closed the stream');
  assert.equal(h.endpoint.stats().pendingRequests, 0);
  const after = answer(h, sent!.message.token, 'again', PEER, MessageType.CON, 0x7777);
  assert.equal(after[0]?.message.type, MessageType.RST, 'the token is no longer listened to');
});

test('return() before any response abandons the waiting request: no retransmission, no late delivery', async () => {
  const h = lockstep();
  const stream = h.endpoint.stream(get(), PEER, { maxResponses: 3 });
  const [sent] = h.transport.take();
  assert.equal(sent!.message.type, MessageType.CON);
  await stream.return();
  assert.equal(h.endpoint.stats().pendingRequests, 0);
  h.clock.advance(10_000);
  assert.equal(h.transport.take().length, 0, 'the CON is not retransmitted');
  const next = await stream.next();
  assert.equal(next.done, true);
});
