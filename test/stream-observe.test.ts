/**
 * Observe over reliable transports (RFC 8323 §7), in lockstep over an in-memory stream and once
 * over real loopback TCP: notifications are neither CON nor NON and their Observe value is ignored
 * (§7.1, §7.2); the connection carries liveness, so when it closes the client's observation ends
 * with a SessionError and the server drops the observer (§7.4) — or the client registers again on
 * a new connection when asked (`reregisterOnClose`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { Observation } from '../src/client/observe.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { createMessage, encodeString, encodeUint, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapEndpoint, type ServerExchange } from '../src/exchange/endpoint.js';
import { SessionError } from '../src/exchange/errors.js';
import { CoapServer } from '../src/server/server.js';
import { encodeFrame } from '../src/stream/frame.js';
import { abortMessage, releaseMessage } from '../src/stream/signals.js';
import { FakeScheduler } from '../src/util/scheduler.js';
import { MemoryNet, MemoryTransport } from './support/memory-stream.js';

const SERVER = { address: '10.0.0.1', port: 5683 };
const CLIENT = { address: '10.0.0.2', port: 40000 };
const BLOCKWISE = { maxBodySize: 1 << 16, maxRestarts: 0 };

const observeCounter = (): CoapMessage => createMessage({ code: Method.GET, options: [{ number: OptionNumber.UriPath, value: encodeString('counter') }] });

function setup() {
  const net = new MemoryNet();
  const clock = new FakeScheduler();
  const serverTransport = new MemoryTransport(SERVER, net);
  const clientTransport = new MemoryTransport(CLIENT, net);
  const serverEndpoint = new CoapEndpoint({ transport: serverTransport, scheduler: clock });
  const client = new CoapEndpoint({ transport: clientTransport, scheduler: clock });
  const server = new CoapServer(serverEndpoint);
  let counter = 0;
  server.resource('counter', { GET: () => ({ code: ResponseCode.Content, payload: String(counter) }) }, { observable: true });
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setImmediate(r));
      net.deliver();
    }
  };
  const tick = (): void => {
    counter++;
    server.changed('counter');
  };
  return { net, clock, server, serverEndpoint, client, clientTransport, settle, tick };
}

/** What a pending next() settled to so far, without waiting for it (a test must not hang on old code). */
function outcomeOf<T>(promise: Promise<T>): { value?: T; error?: unknown; settled: boolean } {
  const outcome: { value?: T; error?: unknown; settled: boolean } = { settled: false };
  promise.then(
    (value) => Object.assign(outcome, { value, settled: true }),
    (error: unknown) => Object.assign(outcome, { error, settled: true }),
  );
  return outcome;
}

test('§7.1/§7.2: notifications come over the connection, and their Observe value is ignored (no §3.4 reordering)', async () => {
  const s = setup();
  let held: ServerExchange | undefined;
  s.serverEndpoint.setRequestHandler((_request, exchange) => (held = exchange));
  const observation = new Observation(s.client, SERVER, observeCounter(), BLOCKWISE);
  await s.settle();
  assert.ok(held, 'the registration arrived');
  const token = held.request.token;
  held.respond(createMessage({ code: ResponseCode.Content, options: [{ number: OptionNumber.Observe, value: encodeUint(9) }], payload: encodeString('a') }));
  // Lower Observe values than the last one: over UDP §3.4 of RFC 7641 would drop them as stale.
  for (const [sequence, payload] of [[5, 'b'], [3, 'c']] as const) {
    s.serverEndpoint.carrier.sendNonConfirmable(
      createMessage({ code: ResponseCode.Content, token, options: [{ number: OptionNumber.Observe, value: encodeUint(sequence) }], payload: encodeString(payload) }),
      CLIENT,
    );
  }
  await s.settle();
  const seen: string[] = [];
  for (let i = 0; i < 3; i++) seen.push((await observation.next()).value!.text());
  assert.deepEqual(seen, ['a', 'b', 'c']);
  assert.equal(observation.registered, true);
});

test('§7.4: the connection closes — the client observation ends with a SessionError and the server drops the observer', async () => {
  const s = setup();
  const observation = new Observation(s.client, SERVER, observeCounter(), BLOCKWISE);
  await s.settle();
  assert.equal((await observation.next()).value!.text(), '0');
  assert.equal(s.server.observations.count('/counter'), 1);
  const next = outcomeOf(observation.next());
  s.net.links[1]!.end(); // the server's side of the connection goes away
  await s.settle();
  assert.equal(next.settled, true, 'the pending next() settled when the connection closed');
  assert.ok(next.error instanceof SessionError, `a SessionError, got ${String(next.error)}`);
  assert.match((next.error as Error).message, /connection .* closed/);
  assert.equal(s.server.observations.count('/counter'), 0, 'the server dropped the observer with the connection');
  assert.equal(s.client.stats().pendingRequests, 0);
});

for (const [signal, make] of [
  ['Abort', () => abortMessage('going away')],
  ['Release', () => releaseMessage('going away')],
] as const) {
  test(`§7.4: the server sends ${signal} and closes — the client's observation ends with a SessionError`, async () => {
    const s = setup();
    const observation = new Observation(s.client, SERVER, observeCounter(), BLOCKWISE);
    await s.settle();
    assert.equal((await observation.next()).value!.text(), '0');
    const next = outcomeOf(observation.next());
    s.net.links[1]!.write(encodeFrame(make(), 'websocket'));
    s.net.links[1]!.end();
    await s.settle();
    assert.ok(next.error instanceof SessionError, `a SessionError, got ${String(next.error)}`);
    assert.equal(s.server.observations.count('/counter'), 0);
  });
}

test('§7.4 with reregisterOnClose: the client registers again on a new connection and notifications continue', async () => {
  const s = setup();
  const observation = new Observation(s.client, SERVER, observeCounter(), BLOCKWISE, { reregisterOnClose: 1 });
  await s.settle();
  assert.equal((await observation.next()).value!.text(), '0');
  s.net.links[1]!.end();
  await s.settle();
  assert.equal(s.clientTransport.connects, 2, 'a new connection');
  assert.equal(s.server.observations.count('/counter'), 1, 'registered again on it');
  assert.equal((await observation.next()).value!.text(), '0', 'the new registration answers with the current state');
  s.tick();
  await s.settle();
  assert.equal((await observation.next()).value!.text(), '1');
  // A second loss exhausts the renewals: the observation ends with the error.
  const next = outcomeOf(observation.next());
  s.net.links[3]!.end();
  await s.settle();
  assert.ok(next.error instanceof SessionError);
});

test('§7.3: over a reliable transport the client does not re-register when Max-Age runs out (the keep-alive Ping checks the connection)', async () => {
  const s = setup();
  const observation = new Observation(s.client, SERVER, observeCounter(), BLOCKWISE, { reregisterDelay: () => 0 });
  await s.settle();
  assert.equal((await observation.next()).value!.text(), '0');
  const requestsBefore = s.net.links[0]!.wrote.filter((m) => m.code === Method.GET).length;
  // Past the default Max-Age of 60 s, in steps that let the keep-alive Pings get their Pongs.
  for (let i = 0; i < 7; i++) {
    s.clock.advance(10_000);
    await s.settle();
  }
  const requests = s.net.links[0]!.wrote.filter((m) => m.code === Method.GET).length;
  assert.equal(requests, requestsBefore, 'no new GET');
  assert.equal(s.server.observations.count('/counter'), 1);
});

test('coap+tcp over loopback: the server going away ends the observation with a SessionError, not a hang', async () => {
  const server = await CoapServer.listen({ scheme: 'coap+tcp', host: '127.0.0.1', port: 0 });
  let counter = 0;
  server.resource('counter', { GET: () => ({ code: ResponseCode.Content, payload: String(counter) }) }, { observable: true });
  const client = new CoapClient();
  try {
    const observation = await client.observe(`coap+tcp://127.0.0.1:${server.address().port}/counter`);
    assert.equal((await observation.next()).value!.text(), '0');
    counter++;
    server.changed('counter');
    assert.equal((await observation.next()).value!.text(), '1');
    const next = observation.next();
    await server.close();
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('the observation did not end within 5 s')), 5000).unref());
    await assert.rejects(Promise.race([next, timeout]), SessionError);
  } finally {
    await client.close();
    await server.close();
  }
});
