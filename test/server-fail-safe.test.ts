/**
 * The server's last line of defence: whatever a datagram makes its pipeline throw is answered 5.00
 * once, without a stack trace, instead of unwinding into the transport (where it became an empty
 * ACK plus a stack trace on stderr per datagram, issue 17 item 4).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType, decodeString } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapServer } from '../src/server/server.js';
import { lockstep, msg, opt } from './support/lockstep.js';

function server(unprotect: () => never) {
  const h = lockstep();
  new CoapServer(h.endpoint, { security: { unprotect } });
  return h;
}

test('a pipeline step that throws (here a security plug-in) gets a 5.00 piggybacked on the ACK, not an exception', () => {
  const h = server(() => {
    throw new Error('plug-in bug');
  });
  assert.doesNotThrow(() => h.transport.deliver(msg({ code: Method.GET, messageId: 1, token: Uint8Array.of(1), options: [opt(OptionNumber.Oscore, Uint8Array.of(0x09, 0x01)), opt(OptionNumber.UriPath, 'x')], payload: Buffer.from('p') })));
  const replies = h.transport.take();
  assert.equal(replies.length, 1);
  assert.equal(replies[0]!.message.type, MessageType.ACK);
  assert.equal(replies[0]!.message.code, ResponseCode.InternalServerError);
  const diagnostic = decodeString(replies[0]!.message.payload);
  assert.match(diagnostic, /plug-in bug/);
  assert.doesNotMatch(diagnostic, /\n\s+at /, 'no stack trace goes to the network');
});

test('a NON whose processing throws gets one NON 5.00 and nothing else', () => {
  const h = server(() => {
    throw new RangeError('boom');
  });
  h.transport.deliver(msg({ type: MessageType.NON, code: Method.POST, messageId: 2, token: Uint8Array.of(2), options: [opt(OptionNumber.Oscore, Uint8Array.of(0x09, 0x01))], payload: Buffer.from('p') }));
  const replies = h.transport.take();
  assert.deepEqual(replies.map((r) => [r.message.type, r.message.code]), [[MessageType.NON, ResponseCode.InternalServerError]]);
});
