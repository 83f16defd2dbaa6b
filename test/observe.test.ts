/** RFC 7641 Observe: lockstep tests of the server registry and the client iterator. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { decodeBlock } from '../src/coap/block.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, encodeUint, getOption, getUintOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { Observation } from '../src/client/observe.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { isNewerNotification } from '../src/exchange/observe-freshness.js';
import { CoapServer } from '../src/server/server.js';
import { PEER, SameMessageIdStart, flush, lockstep, msg, opt } from './support/lockstep.js';
import { FakeNetwork } from './support/network.js';

test('§3.4 freshness: serial-number order across the 24-bit wrap, and the 128 s rule', () => {
  assert.equal(isNewerNotification(5, 0, 6, 1), true);
  assert.equal(isNewerNotification(6, 0, 5, 1), false);
  assert.equal(isNewerNotification(7, 0, 7, 1), false, 'equal is not newer');
  assert.equal(isNewerNotification(0xfffffe, 0, 0x000001, 1), true, 'across the wrap');
  assert.equal(isNewerNotification(0x000001, 0, 0xfffffe, 1), false, 'backwards across the wrap');
  assert.equal(isNewerNotification(0, 0, 1 << 23, 1), false, 'exactly half the space is not newer');
  assert.equal(isNewerNotification(0, 0, (1 << 23) - 1, 1), true);
  assert.equal(isNewerNotification(100, 0, 50, 128_001), true, 'after 128 s anything is newer');
  assert.equal(isNewerNotification(100, 0, 50, 128_000), false);
});

// --- client side, against scripted notifications --------------------------------------------

function scriptedObservation(settings: ConstructorParameters<typeof Observation>[4] = {}) {
  const h = lockstep();
  const template: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.UriPath, value: encodeString('obs') }], payload: EMPTY_BYTES };
  const observation = new Observation(h.endpoint, PEER, template, { maxBodySize: 1 << 20, maxRestarts: 3 }, { reregisterDelay: () => 0, ...settings });
  const [registration] = h.transport.take();
  const token = registration!.message.token;
  let mid = 100;
  const notify = (sequence: number | undefined, payload: string, fields: Partial<CoapMessage> = {}) =>
    h.transport.deliver(msg({
      type: MessageType.NON, code: ResponseCode.Content, messageId: mid++, token,
      options: [...(sequence === undefined ? [] : [opt(OptionNumber.Observe, encodeUint(sequence))]), opt(OptionNumber.MaxAge, encodeUint(60))],
      payload: Buffer.from(payload), ...fields,
    }));
  return { ...h, observation, registration: registration!.message, token, notify };
}

test('client: registration carries Observe 0; reordered notifications are dropped across the wrap', async () => {
  // No re-registration within the 128 s this test skips: it would go unanswered and time out.
  const s = scriptedObservation({ reregisterDelay: () => 1e9 });
  assert.equal(getUintOption(s.registration, OptionNumber.Observe), 0);
  s.transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: s.registration.messageId, token: s.token, options: [opt(OptionNumber.Observe, encodeUint(0xfffffe))], payload: Buffer.from('a') }));
  s.notify(0xffffff, 'b');
  s.notify(0x000002, 'd');
  s.notify(0x000001, 'c'); // sent before 'd', arrives after it: stale
  s.clock.advance(128_001);
  s.notify(0x000001, 'e'); // 128 s later anything is newer
  const seen: string[] = [];
  for (let i = 0; i < 4; i++) seen.push((await s.observation.next()).value!.text());
  assert.deepEqual(seen, ['a', 'b', 'd', 'e']);
  assert.equal(s.observation.registered, true);
});

test('client: re-registers with the same token when Max-Age runs out without a notification (§3.3.1)', async () => {
  const s = scriptedObservation();
  s.transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: s.registration.messageId, token: s.token, options: [opt(OptionNumber.Observe, encodeUint(1)), opt(OptionNumber.MaxAge, encodeUint(2))], payload: Buffer.from('x') }));
  await flush();
  s.clock.advance(1999);
  assert.equal(s.transport.take().length, 0);
  s.clock.advance(1);
  const [again] = s.transport.take();
  assert.equal(again!.message.code, Method.GET);
  assert.equal(getUintOption(again!.message, OptionNumber.Observe), 0);
  assert.deepEqual([...again!.message.token], [...s.token]);
  assert.notEqual(again!.message.messageId, s.registration.messageId);
});

test('client: stopping the iteration deregisters with Observe 1 and the same token; later notifications get RST (§3.6)', async () => {
  const s = scriptedObservation();
  s.transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: s.registration.messageId, token: s.token, options: [opt(OptionNumber.Observe, encodeUint(1))], payload: Buffer.from('x') }));
  await s.observation.next();
  const done = s.observation.return();
  const [cancel] = s.transport.take();
  assert.equal(getUintOption(cancel!.message, OptionNumber.Observe), 1);
  assert.deepEqual([...cancel!.message.token], [...s.token]);
  s.transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: cancel!.message.messageId, token: s.token, payload: Buffer.from('x') }));
  assert.deepEqual(await done, { value: undefined, done: true });
  s.notify(5, 'late', { type: MessageType.CON });
  const [rst] = s.transport.take();
  assert.equal(rst!.message.type, MessageType.RST);
});

test('client: a 2.05 without Observe (server declined) or a 4.04 notification ends the iteration', async () => {
  const s = scriptedObservation();
  s.transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: s.registration.messageId, token: s.token, payload: Buffer.from('plain') }));
  assert.equal((await s.observation.next()).value!.text(), 'plain');
  assert.equal((await s.observation.next()).done, true);
  assert.equal(s.observation.registered, false);

  const t = scriptedObservation();
  t.transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: t.registration.messageId, token: t.token, options: [opt(OptionNumber.Observe, encodeUint(3))] }));
  t.notify(undefined, 'gone', { code: ResponseCode.NotFound });
  assert.equal((await t.observation.next()).value!.code, ResponseCode.Content);
  assert.equal((await t.observation.next()).value!.code, ResponseCode.NotFound);
  assert.equal((await t.observation.next()).done, true);
});

// --- server side, scripted client datagrams ---------------------------------------------------

function observedServer(type: 'con' | 'non' = 'con', observe: ConstructorParameters<typeof CoapServer>[1] = {}) {
  const h = lockstep();
  const server = new CoapServer(h.endpoint, observe);
  let state = 0;
  server.resource('/s', { GET: () => ({ code: ResponseCode.Content, maxAge: 30, payload: `state ${state}` }) }, { observable: { notifications: type } });
  const change = () => {
    state++;
    server.changed('/s');
  };
  const register = (token: number[], observeValue = 0, messageId = 0x100) => {
    h.transport.deliver(msg({ code: Method.GET, messageId, token: Buffer.from(token), options: [opt(OptionNumber.Observe, encodeUint(observeValue)), opt(OptionNumber.UriPath, 's')] }));
    return h.transport.take()[0]!.message;
  };
  return { ...h, server, change, register };
}

test('server: registration, CON notifications with increasing sequence numbers, deregistration by RST', async () => {
  const s = observedServer('con');
  const first = s.register([1, 2]);
  assert.equal(first.type, MessageType.ACK);
  assert.ok(getOption(first, OptionNumber.Observe) !== undefined, 'the response confirms the registration');
  assert.equal(s.server.observations.count('/s'), 1);
  const seqs = [getUintOption(first, OptionNumber.Observe)!];
  for (let i = 1; i <= 2; i++) {
    s.change();
    await flush();
    const [n] = s.transport.take();
    assert.equal(n!.message.type, MessageType.CON);
    assert.deepEqual([...n!.message.token], [1, 2]);
    assert.equal(decodeString(n!.message.payload), `state ${i}`);
    assert.equal(getUintOption(n!.message, OptionNumber.MaxAge), 30);
    seqs.push(getUintOption(n!.message, OptionNumber.Observe)!);
    if (i === 1) s.transport.deliver(msg({ type: MessageType.ACK, code: 0, messageId: n!.message.messageId }));
    else s.transport.deliver(msg({ type: MessageType.RST, code: 0, messageId: n!.message.messageId }));
  }
  assert.ok(seqs[0]! < seqs[1]! && seqs[1]! < seqs[2]!);
  assert.equal(s.server.observations.count('/s'), 0, 'RST removed the observer');
  s.change();
  await flush();
  assert.equal(s.transport.take().length, 0);
});

test('server: re-registration with the same token replaces the entry; Observe 1 deregisters (§4.1)', () => {
  const s = observedServer();
  s.register([7], 0, 1);
  s.register([7], 0, 2);
  assert.equal(s.server.observations.count('/s'), 1);
  s.register([8], 0, 3);
  assert.equal(s.server.observations.count('/s'), 2);
  const response = s.register([7], 1, 4);
  assert.equal(getOption(response, OptionNumber.Observe), undefined, 'a deregistration response has no Observe');
  assert.equal(response.code, ResponseCode.Content);
  assert.equal(s.server.observations.count('/s'), 1);
});

test('server: a NON notification not followed by a newer one is repeated as CON; an unanswered CON removes the observer (§4.5)', async () => {
  const s = observedServer('non', { observe: { confirmDelay: 5000 } });
  s.register([3]);
  s.change();
  await flush();
  const [non] = s.transport.take();
  assert.equal(non!.message.type, MessageType.NON);
  s.clock.advance(4999);
  await flush();
  assert.equal(s.transport.take().length, 0);
  s.clock.advance(1);
  await flush();
  const [con] = s.transport.take();
  assert.equal(con!.message.type, MessageType.CON, 'the possibly lost NON is repeated as CON');
  assert.equal(decodeString(con!.message.payload), 'state 1');
  assert.equal(getUintOption(con!.message, OptionNumber.Observe), getUintOption(non!.message, OptionNumber.Observe));
  s.clock.advance(100_000); // no ACK: 4 retransmissions, then the observer is gone
  await flush();
  assert.equal(s.transport.take().length, 4);
  assert.equal(s.server.observations.count('/s'), 0);
});

test('server: every maxNonInRow-th notification goes as CON', async () => {
  const s = observedServer('non', { observe: { maxNonInRow: 3, confirmDelay: 1e9 } });
  s.register([3]);
  const types: number[] = [];
  for (let i = 0; i < 4; i++) {
    s.change();
    await flush();
    const [n] = s.transport.take();
    types.push(n!.message.type);
    if (n!.message.type === MessageType.CON) s.transport.deliver(msg({ type: MessageType.ACK, code: 0, messageId: n!.message.messageId }));
  }
  assert.deepEqual(types, [MessageType.NON, MessageType.NON, MessageType.NON, MessageType.CON]);
});

test('server: changes while a CON notification is outstanding are superseded by the newest state (§4.5.2)', async () => {
  const s = observedServer('con');
  s.register([4]);
  s.change();
  await flush();
  const [first] = s.transport.take();
  s.change();
  s.change();
  await flush();
  assert.equal(s.transport.take().length, 0, 'nothing while the first CON is unacknowledged');
  s.transport.deliver(msg({ type: MessageType.ACK, code: 0, messageId: first!.message.messageId }));
  await flush();
  const sent = s.transport.take();
  assert.equal(sent.length, 1, 'only the newest state goes out');
  assert.equal(decodeString(sent[0]!.message.payload), 'state 3');
});

test('server: at most NSTART outstanding CON notifications per client across observations (§4.5.1)', async () => {
  const s = observedServer('con');
  s.server.resource('/t', { GET: () => ({ code: ResponseCode.Content, payload: 't' }) }, { observable: true });
  s.register([1], 0, 1);
  s.transport.deliver(msg({ code: Method.GET, messageId: 2, token: Buffer.from([2]), options: [opt(OptionNumber.Observe, encodeUint(0)), opt(OptionNumber.UriPath, 't')] }));
  s.transport.take();
  s.change();
  s.server.changed('/t');
  await flush();
  const sent = s.transport.take();
  assert.equal(sent.length, 1);
  s.transport.deliver(msg({ type: MessageType.ACK, code: 0, messageId: sent[0]!.message.messageId }));
  await flush();
  const next = s.transport.take();
  assert.equal(next.length, 1);
  assert.notDeepEqual([...next[0]!.message.token], [...sent[0]!.message.token]);
});

test('server: removing the resource sends a final 4.04 without Observe; a 4.xx/5.xx rendering ends the observation', async () => {
  const s = observedServer('con');
  s.register([9]);
  s.server.remove('/s');
  await flush();
  const [final] = s.transport.take();
  assert.equal(final!.message.code, ResponseCode.NotFound);
  assert.equal(getOption(final!.message, OptionNumber.Observe), undefined);
  assert.equal(s.server.observations.count(), 0);

  const h = lockstep();
  const server = new CoapServer(h.endpoint);
  let broken = false;
  server.resource('/x', { GET: () => (broken ? { code: ResponseCode.ServiceUnavailable } : { code: ResponseCode.Content }) }, { observable: true });
  h.transport.deliver(msg({ code: Method.GET, messageId: 1, token: Buffer.from([1]), options: [opt(OptionNumber.Observe, encodeUint(0)), opt(OptionNumber.UriPath, 'x')] }));
  h.transport.take();
  broken = true;
  server.changed('/x');
  await flush();
  assert.equal(h.transport.take()[0]!.message.code, ResponseCode.ServiceUnavailable);
  assert.equal(server.observations.count(), 0);
});

test('server: Observe on a resource that is not observable falls back to a plain GET (§4.1)', () => {
  const h = lockstep();
  const server = new CoapServer(h.endpoint);
  server.resource('/plain', { GET: () => ({ code: ResponseCode.Content }) });
  h.transport.deliver(msg({ code: Method.GET, token: Buffer.from([1]), options: [opt(OptionNumber.Observe, encodeUint(0)), opt(OptionNumber.UriPath, 'plain')] }));
  assert.equal(getOption(h.transport.take()[0]!.message, OptionNumber.Observe), undefined);
  assert.equal(server.observations.count(), 0);
});

test('Observe + Block2: notifications larger than a block come as block 0; the client fetches the rest (RFC 7959 §2.6)', async () => {
  const net = new FakeNetwork();
  const SERVER = { address: '10.0.0.1', port: 5683 };
  const server = new CoapServer(net.endpoint(SERVER, {}, 1));
  let version = 'A';
  server.resource('/icon', { GET: () => ({ code: ResponseCode.Content, payload: version.repeat(300) }) }, { observable: true });
  const client = net.endpoint({ address: '10.0.0.2', port: 40000 }, {}, 2);
  const template: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.UriPath, value: encodeString('icon') }, { number: OptionNumber.Block2, value: Uint8Array.of(0x02) }], payload: EMPTY_BYTES };
  const observation = new Observation(client, SERVER, template, { szx: 2, maxBodySize: 1 << 20, maxRestarts: 3 }, { reregisterDelay: () => 0 });
  assert.equal((await net.until(observation.next())).value!.text(), 'A'.repeat(300));
  version = 'B';
  server.changed('/icon');
  assert.equal((await net.until(observation.next())).value!.text(), 'B'.repeat(300));
  const notification = net.log.filter((d) => d.from.address === SERVER.address && getOption(d.message, OptionNumber.Observe) !== undefined).at(-1)!.message;
  const block = decodeBlock(getOption(notification, OptionNumber.Block2)!);
  assert.deepEqual(block, { num: 0, more: true, szx: 2 }, 'the notification carries only block 0');
  assert.ok(getOption(notification, OptionNumber.ETag));
  await net.until(observation.return());
  assert.equal(server.observations.count(), 0, 'active cancellation reached the server');
});

test('client: the deregistration (Observe 1, same token) has a Message ID of its own, so the server processes it rather than taking it for the registration again (§3.6; RFC 7252 §4.4, §4.5)', async () => {
  const net = new FakeNetwork();
  const SERVER = { address: '10.0.0.1', port: 5683 };
  const CLIENT = { address: '10.0.0.2', port: 40000 };
  const server = new CoapServer(net.endpoint(SERVER, {}, 1));
  let state = 20;
  server.resource('/temp', { GET: () => ({ code: ResponseCode.Content, payload: String(state) }) }, { observable: true });
  // The registration's exchange ends with its piggybacked ACK; a Message ID counter started afresh
  // for the server afterwards (here always at 0x1234) would give the deregistration the same ID.
  const client = new CoapEndpoint({ transport: net.transport(CLIENT), scheduler: net.clock, random: new SameMessageIdStart(2) });
  const template: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.UriPath, value: encodeString('temp') }], payload: EMPTY_BYTES };
  const observation = new Observation(client, SERVER, template, { maxBodySize: 1 << 20, maxRestarts: 0 }, { reregisterDelay: () => 1e9 });
  assert.equal((await net.until(observation.next())).value!.text(), '20');
  state = 21;
  server.changed('/temp');
  assert.equal((await net.until(observation.next())).value!.text(), '21');
  assert.equal(server.observations.count('/temp'), 1);
  await net.until(observation.cancel());
  const requests = net.log.filter((d) => d.from.address === CLIENT.address && d.message.code === Method.GET).map((d) => d.message);
  assert.deepEqual(requests.map((m) => getUintOption(m, OptionNumber.Observe)), [0, 1]);
  assert.notEqual(requests[1]!.messageId, requests[0]!.messageId, 'no Message ID reused within EXCHANGE_LIFETIME');
  assert.equal(server.observations.count('/temp'), 0, 'the server removed the observer (active cancellation)');
});
