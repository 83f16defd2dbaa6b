/**
 * RFC 7252 §5.4.1: an unrecognized critical option in a CON request gets 4.02; in a NON it "MUST
 * cause the message to be rejected (Section 4.3)" — silently, no NON 4.02 in return.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapServer } from '../src/server/server.js';
import { lockstep, msg, opt } from './support/lockstep.js';

function server() {
  const h = lockstep();
  const s = new CoapServer(h.endpoint);
  let calls = 0;
  s.resource('/r', { GET: () => (calls++, { code: ResponseCode.Content, payload: 'ok' }) });
  return { h, handlerCalls: () => calls };
}

const cases: Array<[string, ReturnType<typeof opt>[]]> = [
  ['an unrecognized critical option', [opt(OptionNumber.UriPath, 'r'), opt(65001, 'x')]],
  ['a critical option of the wrong length (§5.4.3)', [opt(OptionNumber.UriPath, 'r'), opt(OptionNumber.Block2, Uint8Array.of(1, 2, 3, 4))]],
  ['a repeated non-repeatable critical option (§5.4.5)', [opt(OptionNumber.UriHost, 'a'), opt(OptionNumber.UriHost, 'b'), opt(OptionNumber.UriPath, 'r')]],
];

for (const [what, options] of cases) {
  test(`NON with ${what}: rejected silently; the same in a CON gets 4.02`, () => {
    const s = server();
    s.h.transport.deliver(msg({ type: MessageType.NON, code: Method.GET, messageId: 1, token: Uint8Array.of(1), options }));
    assert.deepEqual(s.h.transport.take(), [], 'nothing is sent for the NON');
    s.h.transport.deliver(msg({ type: MessageType.CON, code: Method.GET, messageId: 2, token: Uint8Array.of(2), options }));
    const replies = s.h.transport.take();
    assert.equal(replies.length, 1);
    assert.equal(replies[0]!.message.code, ResponseCode.BadOption);
    assert.equal(s.handlerCalls(), 0);
  });
}

test('a NON with only good options is still answered by a NON', () => {
  const s = server();
  s.h.transport.deliver(msg({ type: MessageType.NON, code: Method.GET, messageId: 3, token: Uint8Array.of(3), options: [opt(OptionNumber.UriPath, 'r')] }));
  const [reply] = s.h.transport.take();
  assert.equal(reply?.message.type, MessageType.NON);
  assert.equal(reply?.message.code, ResponseCode.Content);
});
