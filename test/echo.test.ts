/** RFC 9175 §2.3–§2.4: a 4.01 with Echo makes the client repeat the request once, with that Echo. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { PLAIN, securedSender, withEchoRetry } from '../src/client/security.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';

const SERVER = { address: '10.0.0.1', port: 5683 };

function setup(echoValues: Uint8Array[]) {
  const net = new FakeNetwork();
  const server = new CoapServer(net.endpoint(SERVER, {}, 1));
  const seen: Array<string | undefined> = [];
  server.resource('/valve', {
    PUT: (req) => {
      const echo = req.option(OptionNumber.Echo);
      seen.push(echo && Buffer.from(echo).toString('hex'));
      const expected = echoValues.shift();
      if (expected && !(echo && Buffer.from(echo).equals(Buffer.from(expected)))) {
        return { code: ResponseCode.Unauthorized, options: [{ number: OptionNumber.Echo, value: expected }] };
      }
      return { code: ResponseCode.Changed };
    },
  });
  const client = net.endpoint({ address: '10.0.0.2', port: 40000 }, {}, 2);
  const send = withEchoRetry(securedSender(client, SERVER, PLAIN));
  const put: CoapMessage = { type: MessageType.CON, code: Method.PUT, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.UriPath, value: encodeString('valve') }], payload: encodeString('7') };
  return { net, send, put, seen };
}

test('a 4.01 with Echo is answered by repeating the request with that Echo value, once', async () => {
  const challenge = Uint8Array.of(0xec, 0x40, 1, 2);
  const s = setup([challenge, challenge]);
  const response = await s.net.until(s.send(s.put));
  assert.equal(response.message.code, ResponseCode.Changed);
  assert.deepEqual(s.seen, [undefined, 'ec400102']);
  assert.equal(getOption(s.put, OptionNumber.Echo), undefined, 'the caller\'s message is not modified');
});

test('a second Echo challenge is returned to the caller, not retried forever', async () => {
  const s = setup([Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3)]);
  const response = await s.net.until(s.send(s.put));
  assert.equal(response.message.code, ResponseCode.Unauthorized);
  assert.equal(s.seen.length, 2);
});
