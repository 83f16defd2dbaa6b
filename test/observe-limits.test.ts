/**
 * Observe registrations are bounded per peer and in total (issue 17 item 7). Past a limit the
 * request is answered as a plain GET — no Observe option, so the client knows it is not on the
 * list (RFC 7641 §4.1: the server MAY add the client; §3.1: no Observe option = not registered).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType, encodeUint, getOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { DEFAULT_OBSERVE_SETTINGS } from '../src/server/observe.js';
import { CoapServer, type ServerOptions } from '../src/server/server.js';
import { flush, lockstep, msg, opt } from './support/lockstep.js';

function server(options: ServerOptions = {}) {
  const h = lockstep();
  const s = new CoapServer(h.endpoint, options);
  s.resource('/obs', { GET: () => ({ code: ResponseCode.Content, payload: 'state' }) }, { observable: { notifications: 'non' } });
  let mid = 1;
  const observe = (port: number, token: number, value = 0) => {
    h.transport.deliver(msg({ code: Method.GET, messageId: mid++, token: Uint8Array.of(token), options: [opt(OptionNumber.Observe, encodeUint(value)), opt(OptionNumber.UriPath, 'obs')] }), { address: '198.51.100.1', port });
    const [reply] = h.transport.take();
    assert.equal(reply?.message.code, ResponseCode.Content);
    return getOption(reply.message, OptionNumber.Observe) !== undefined;
  };
  return { h, server: s, observe };
}

test('the limits have documented defaults', () => {
  assert.equal(DEFAULT_OBSERVE_SETTINGS.maxObservers, 10_000);
  assert.equal(DEFAULT_OBSERVE_SETTINGS.maxObserversPerPeer, 256);
});

test('past maxObserversPerPeer a peer is answered without Observe and not registered; other peers still are', async () => {
  const s = server({ observe: { maxObserversPerPeer: 3 } });
  assert.deepEqual([1, 2, 3, 4, 5].map((t) => s.observe(1000, t)), [true, true, true, false, false]);
  assert.equal(s.server.observations.count('/obs'), 3);
  assert.equal(s.observe(1001, 1), true, 'another peer (another port) is registered');
  assert.equal(s.observe(1000, 2), true, 'a re-registration of a kept observer is still a registration (§4.1)');
  s.server.changed('/obs');
  await flush();
  const notified = s.h.transport.take().map((d) => `${d.peer.port}/${d.message.token[0]}`).sort();
  assert.deepEqual(notified, ['1000/1', '1000/2', '1000/3', '1001/1'], 'only registered observers are notified');
  // Deregistration (Observe 1) frees the slot.
  assert.equal(s.observe(1000, 1, 1), false);
  assert.equal(s.observe(1000, 4), true);
});

test('past maxObservers nobody new is registered until an observer leaves (RST, §3.6)', async () => {
  const s = server({ observe: { maxObservers: 4, maxObserversPerPeer: 100 } });
  for (let port = 2000; port < 2004; port++) assert.equal(s.observe(port, 1), true);
  assert.equal(s.observe(2004, 1), false);
  assert.equal(s.server.observations.count(), 4);
  s.server.changed('/obs');
  await flush();
  const notification = s.h.transport.take().find((d) => d.peer.port === 2000)!;
  s.h.transport.deliver(msg({ type: MessageType.RST, code: 0, messageId: notification.message.messageId }), notification.peer);
  assert.equal(s.server.observations.count(), 3);
  assert.equal(s.observe(2004, 1), true);
  assert.equal(s.server.observations.countOf('198.51.100.1:2004'), 1);
});
