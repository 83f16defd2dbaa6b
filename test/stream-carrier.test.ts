/**
 * StreamCarrier in lockstep: two CoapEndpoints over an in-memory stream transport and a fake
 * clock. One connection per peer, opened on demand and reused; kept alive with Ping while a
 * request or observation waits; released once idle; a closed connection fails what waited on it;
 * Release from the peer waits for the answers it is owed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { createMessage, decodeString, encodeString, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapEndpoint, type ServerExchange } from '../src/exchange/endpoint.js';
import { SessionError } from '../src/exchange/errors.js';
import { encodeFrame } from '../src/stream/frame.js';
import { SignalCode, releaseMessage } from '../src/stream/signals.js';
import { FakeScheduler } from '../src/util/scheduler.js';
import { MemoryNet, MemoryTransport } from './support/memory-stream.js';

const SERVER = { address: '10.0.0.1', port: 5683 };
const CLIENT = { address: '10.0.0.2', port: 40000 };

function setup(stream: { idleTimeout?: number; keepAliveInterval?: number } = {}) {
  const net = new MemoryNet();
  const clock = new FakeScheduler();
  const serverTransport = new MemoryTransport(SERVER, net);
  const clientTransport = new MemoryTransport(CLIENT, net);
  const server = new CoapEndpoint({ transport: serverTransport, scheduler: clock, stream });
  const client = new CoapEndpoint({ transport: clientTransport, scheduler: clock, stream });
  const held: ServerExchange[] = [];
  server.setRequestHandler((request, exchange) => {
    const path = request.options.find((o) => o.number === OptionNumber.UriPath);
    if (path && decodeString(path.value) === 'slow') {
      held.push(exchange);
      return;
    }
    exchange.respond(createMessage({ code: ResponseCode.Content, payload: encodeString('ok') }));
  });
  /** Lets the connect promise settle, then moves frames. */
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setImmediate(r));
      net.deliver();
    }
  };
  return { net, clock, server, client, clientTransport, held, settle };
}

const get = (path: string): CoapMessage => createMessage({ code: Method.GET, options: [{ number: OptionNumber.UriPath, value: encodeString(path) }] });

test('one connection per peer: opened by the first request, reused by the next ones', async () => {
  const s = setup();
  const first = s.client.request(get('a'), SERVER);
  await s.settle();
  assert.equal(decodeString((await first).message.payload), 'ok');
  const second = s.client.request(get('b'), SERVER);
  await s.settle();
  assert.equal(decodeString((await second).message.payload), 'ok');
  assert.equal(s.clientTransport.connects, 1);
  assert.equal(s.server.stats().peers, 1);
  const clientLink = s.net.links[0]!;
  assert.equal(clientLink.wrote[0]!.code, SignalCode.Csm, 'the CSM went first');
});

test('an idle connection is released (§5.5) and the next request opens a new one', async () => {
  const s = setup({ idleTimeout: 30_000, keepAliveInterval: 10_000 });
  const first = s.client.request(get('a'), SERVER);
  await s.settle();
  await first;
  s.clock.advance(30_000);
  await s.settle();
  const release = s.net.links.flatMap((l) => l.wrote).find((m) => m.code === SignalCode.Release);
  assert.ok(release, 'a Release went out');
  assert.ok(s.net.links.every((l) => l.ended), 'both ends closed');
  const second = s.client.request(get('b'), SERVER);
  await s.settle();
  assert.equal(decodeString((await second).message.payload), 'ok');
  assert.equal(s.clientTransport.connects, 2);
});

test('a connection something waits on is kept alive with Ping, not released', async () => {
  const s = setup({ idleTimeout: 30_000, keepAliveInterval: 10_000 });
  const waiting = s.client.request(get('slow'), SERVER, { responseTimeout: 120_000 });
  await s.settle();
  for (let i = 0; i < 6; i++) {
    s.clock.advance(10_000);
    await s.settle();
  }
  const sent = s.net.links[0]!.wrote.map((m) => m.code);
  assert.ok(sent.filter((c) => c === SignalCode.Ping).length >= 3, `keep-alive Pings: ${sent.join(',')}`);
  assert.ok(!sent.includes(SignalCode.Release));
  s.held[0]!.respond(createMessage({ code: ResponseCode.Content, payload: encodeString('late') }));
  await s.settle();
  assert.equal(decodeString((await waiting).message.payload), 'late');
});

test('a connection that closes fails the requests waiting on it with a SessionError', async () => {
  const s = setup();
  const failed = assert.rejects(s.client.request(get('slow'), SERVER), SessionError);
  await s.settle();
  s.net.links[1]!.end(); // the server side goes away
  await s.settle();
  await failed;
});

test('Release from the peer: the answers it is owed still go out, then the connection closes', async () => {
  const s = setup();
  const waiting = s.client.request(get('slow'), SERVER);
  await s.settle();
  // The client releases the connection while the server still owes it an answer.
  const clientSide = s.net.links[0]!;
  clientSide.write(encodeFrame(releaseMessage('moving'), 'websocket'));
  await s.settle();
  assert.equal(s.net.links[1]!.ended, false, 'the server waits until it has answered');
  s.held[0]!.respond(createMessage({ code: ResponseCode.Content, payload: encodeString('owed') }));
  await s.settle();
  assert.equal(decodeString((await waiting).message.payload), 'owed');
  assert.equal(s.net.links[1]!.ended, true, 'then it closes');
});

test('a request to a peer that refuses the connection fails with a SessionError', async () => {
  const s = setup();
  await assert.rejects(s.client.request(get('a'), { address: '10.0.0.9', port: 1 }), SessionError);
});

test('a request nobody serves is answered 5.01 (RFC 8323 §3.3)', async () => {
  const s = setup();
  s.server.setRequestHandler(undefined);
  const response = s.client.request(get('a'), SERVER);
  await s.settle();
  assert.equal((await response).message.code, ResponseCode.NotImplemented);
});
