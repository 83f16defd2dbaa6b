/** Lockstep tests of RFC 7252 §4 messaging: scripted datagrams, fake clock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { ResetError, TimeoutError } from '../src/exchange/errors.js';
import { SeededRandom } from '../src/util/random.js';
import { FakeScheduler } from '../src/util/scheduler.js';
import { FakeTransport, PEER, SameMessageIdStart, flush, lockstep, msg, opt } from './support/lockstep.js';

const get = () => ({ type: MessageType.CON, code: Method.GET, messageId: 0, token: new Uint8Array(0), options: [opt(OptionNumber.UriPath, 'x')], payload: new Uint8Array(0) });

test('CON retransmission: initial timeout in [2 s, 3 s], doubling, 4 retransmissions, then timeout (§4.2)', async () => {
  const { clock, transport, endpoint } = lockstep();
  const outcome = endpoint.request(get(), PEER).then(() => 'resolved', (e: unknown) => e);
  clock.advance(100_000);
  const sends = transport.take();
  assert.equal(sends.length, 5, 'one transmission and MAX_RETRANSMIT = 4 retransmissions');
  assert.ok(sends.every((s) => s.bytes.equals(sends[0]!.bytes)), 'retransmissions are byte-identical');
  const first = sends[1]!.at - sends[0]!.at;
  assert.ok(first >= 2000 && first <= 3000, `initial timeout ${first} within [ACK_TIMEOUT, ACK_TIMEOUT*ACK_RANDOM_FACTOR]`);
  for (let i = 2; i < 5; i++) {
    assert.equal(sends[i]!.at - sends[i - 1]!.at, first * 2 ** (i - 1), `gap ${i} doubles`);
  }
  const error = await outcome;
  assert.ok(error instanceof TimeoutError);
  // The request failed at 31 x the initial timeout: after the last retransmission's doubled wait.
  assert.equal(endpoint.stats().outstandingConfirmables, 0);
});

test('retransmission parameters are configurable', async () => {
  const { clock, transport, endpoint } = lockstep({ ackTimeout: 100, ackRandomFactor: 1, maxRetransmit: 2 });
  const outcome = endpoint.request(get(), PEER).catch((e: unknown) => e);
  clock.advance(10_000);
  assert.deepEqual(transport.take().map((s) => s.at), [0, 100, 300]);
  assert.ok((await outcome) instanceof TimeoutError);
});

test('a piggybacked ACK stops retransmission and resolves the request', async () => {
  const { clock, transport, endpoint } = lockstep();
  const pending = endpoint.request(get(), PEER);
  const [sent] = transport.take();
  transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: sent!.message.messageId, token: sent!.message.token, payload: Buffer.from('hi') }));
  const response = await pending;
  assert.equal(Buffer.from(response.message.payload).toString(), 'hi');
  clock.advance(100_000);
  assert.equal(transport.take().length, 0, 'nothing retransmitted after the ACK');
});

test('RST to a CON request rejects it (§4.2)', async () => {
  const { transport, endpoint } = lockstep();
  const pending = endpoint.request(get(), PEER).catch((e: unknown) => e);
  const [sent] = transport.take();
  transport.deliver(msg({ type: MessageType.RST, code: 0, messageId: sent!.message.messageId }));
  assert.ok((await pending) instanceof ResetError);
});

test('separate response: empty ACK, then a CON response that the client ACKs (§5.2.2)', async () => {
  const { clock, transport, endpoint } = lockstep();
  const pending = endpoint.request(get(), PEER);
  const [sent] = transport.take();
  transport.deliver(msg({ type: MessageType.ACK, code: 0, messageId: sent!.message.messageId }));
  clock.advance(60_000);
  assert.equal(transport.take().length, 0, 'no retransmission after the empty ACK');
  transport.deliver(msg({ type: MessageType.CON, code: ResponseCode.Content, messageId: 0x7777, token: sent!.message.token, payload: Buffer.from('late') }));
  const [ack] = transport.take();
  assert.equal(ack!.message.type, MessageType.ACK);
  assert.equal(ack!.message.code, 0);
  assert.equal(ack!.message.messageId, 0x7777);
  assert.equal(Buffer.from((await pending).message.payload).toString(), 'late');
});

test('a separate response that overtakes a lost empty ACK stops retransmission', async () => {
  const { clock, transport, endpoint } = lockstep();
  const pending = endpoint.request(get(), PEER);
  const [sent] = transport.take();
  transport.deliver(msg({ type: MessageType.NON, code: ResponseCode.Content, messageId: 0x10, token: sent!.message.token }));
  await pending;
  clock.advance(100_000);
  assert.equal(transport.take().length, 0);
});

test('a response with an unknown token is rejected with RST (§5.3.2)', () => {
  const { transport } = lockstep();
  transport.deliver(msg({ type: MessageType.CON, code: ResponseCode.Content, messageId: 0x55, token: Buffer.from('nobody') }));
  const [rst] = transport.take();
  assert.equal(rst!.message.type, MessageType.RST);
  assert.equal(rst!.message.messageId, 0x55);
});

test('a response from another endpoint than the request went to is not matched (§5.3.2)', async () => {
  const { transport, endpoint } = lockstep();
  let settled = false;
  void endpoint.request(get(), PEER, { confirmable: false }).then(() => (settled = true));
  const [sent] = transport.take();
  transport.deliver(msg({ type: MessageType.NON, code: ResponseCode.Content, messageId: 1, token: sent!.message.token }), { address: '192.0.2.99', port: PEER.port });
  await flush();
  assert.equal(settled, false);
});

test('a response with an unrecognized critical option is rejected (§5.4.1)', async () => {
  const { transport, endpoint } = lockstep();
  const pending = endpoint.request(get(), PEER).catch((e: unknown) => e);
  const [sent] = transport.take();
  transport.deliver(msg({ type: MessageType.CON, code: ResponseCode.Content, messageId: 9, token: sent!.message.token, options: [opt(65001, 'x')] }));
  const [rst] = transport.take().filter((s) => s.message.messageId === 9);
  assert.equal(rst!.message.type, MessageType.RST);
  assert.match(String(await pending), /unrecognized critical option/);
});

test('format errors: CON gets RST with its Message ID, NON and unknown versions are dropped (§3, §4.2)', () => {
  const { transport, endpoint } = lockstep();
  endpoint.setRequestHandler(() => assert.fail('no request should reach the handler'));
  const tkl9 = Buffer.from([0x49, 0x01, 0xab, 0xcd, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  transport.deliver(tkl9);
  const [rst] = transport.take();
  assert.equal(rst!.message.type, MessageType.RST);
  assert.equal(rst!.message.messageId, 0xabcd);
  assert.equal(rst!.bytes.length, 4);

  transport.deliver(Buffer.from([0x40, 0x01, 0x00, 0x01, 0xff])); // payload marker, empty payload
  assert.equal(transport.take()[0]!.message.type, MessageType.RST);
  transport.deliver(Buffer.from([0x40, 0x01, 0x00, 0x02, 0xf1, 0x00])); // option delta nibble 15
  assert.equal(transport.take()[0]!.message.type, MessageType.RST);
  transport.deliver(Buffer.from([0x40, 0x01, 0x00, 0x03, 0xb5, 0x61])); // truncated option value
  assert.equal(transport.take()[0]!.message.type, MessageType.RST);

  transport.deliver(Buffer.from([0x59, 0x01, 0x00, 0x04, 1, 2, 3, 4, 5, 6, 7, 8, 9])); // NON, TKL 9
  transport.deliver(Buffer.from([0x81, 0x01, 0x00, 0x05, 0x00])); // version 2
  transport.deliver(Buffer.from([0x40])); // shorter than a header
  assert.equal(transport.take().length, 0);
});

test('CoAP ping: an Empty CON is answered with RST (§4.3)', () => {
  const { transport } = lockstep();
  transport.deliver(Buffer.from([0x40, 0x00, 0x12, 0x34]));
  const [rst] = transport.take();
  assert.deepEqual([...rst!.bytes], [0x70, 0x00, 0x12, 0x34]);
});

test('ping() resolves on the RST', async () => {
  const { transport, endpoint } = lockstep();
  const rtt = endpoint.ping(PEER);
  const [ping] = transport.take();
  assert.equal(ping!.message.code, 0);
  assert.equal(ping!.bytes.length, 4);
  transport.deliver(msg({ type: MessageType.RST, code: 0, messageId: ping!.message.messageId }));
  assert.equal(await rtt, 0);
});

test('deduplication: a duplicate CON gets the cached piggybacked response, the handler runs once (§4.5)', () => {
  const { clock, transport, endpoint } = lockstep();
  let calls = 0;
  endpoint.setRequestHandler((request, exchange) => {
    calls++;
    exchange.respond({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: request.token, options: [], payload: Buffer.from(`call ${calls}`) });
  });
  const request = msg({ code: Method.GET, messageId: 0x4242, token: Buffer.from([1, 2]) });
  transport.deliver(request);
  const [first] = transport.take();
  clock.advance(30_000);
  transport.deliver(request);
  const [again] = transport.take();
  assert.equal(calls, 1);
  assert.ok(again!.bytes.equals(first!.bytes), 'the duplicate gets the identical ACK');
  assert.equal(Buffer.from(first!.message.payload).toString(), 'call 1');

  // After EXCHANGE_LIFETIME (247 s) the Message ID is forgotten.
  clock.advance(247_000);
  transport.deliver(request);
  transport.take();
  assert.equal(calls, 2);
  assert.equal(endpoint.stats().trackedMessages, 1);
});

test('a reused Message ID with another token is a new request, not a duplicate', () => {
  const { transport, endpoint } = lockstep();
  let calls = 0;
  endpoint.setRequestHandler((request, exchange) => {
    calls++;
    exchange.respond({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: request.token, options: [], payload: new Uint8Array(0) });
  });
  transport.deliver(msg({ code: Method.GET, messageId: 7, token: Buffer.from([1]) }));
  transport.deliver(msg({ code: Method.GET, messageId: 7, token: Buffer.from([2]) }));
  assert.equal(calls, 2);
});

test('a duplicate NON is ignored (§4.5)', () => {
  const { transport, endpoint } = lockstep();
  let calls = 0;
  endpoint.setRequestHandler(() => calls++);
  const request = msg({ type: MessageType.NON, code: Method.GET, messageId: 3, token: Buffer.from([9]) });
  transport.deliver(request);
  transport.deliver(request);
  assert.equal(calls, 1);
  assert.equal(transport.take().length, 0);
});

test('duplicate of a CON still being processed gets an empty ACK; the response then goes separately', () => {
  const { clock, transport, endpoint } = lockstep({}, 99);
  let exchange: Parameters<Parameters<CoapEndpoint['setRequestHandler']>[0] & object>[1] | undefined;
  endpoint.setRequestHandler((_request, ex) => (exchange = ex));
  const request = msg({ code: Method.GET, messageId: 0x0a0a, token: Buffer.from([5, 5]) });
  transport.deliver(request);
  assert.equal(transport.take().length, 0);
  transport.deliver(request);
  const [emptyAck] = transport.take();
  assert.deepEqual([...emptyAck!.bytes], [0x60, 0x00, 0x0a, 0x0a]);
  exchange!.respond({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: new Uint8Array(0), options: [], payload: Buffer.from('done') });
  const [separate] = transport.take();
  assert.equal(separate!.message.type, MessageType.CON);
  assert.notEqual(separate!.message.messageId, 0x0a0a);
  assert.deepEqual([...separate!.message.token], [5, 5]);
  // Unacknowledged, the separate CON is retransmitted; the client's ACK stops it.
  clock.advance(3_001);
  assert.equal(transport.take().length, 1);
  transport.deliver(msg({ type: MessageType.ACK, code: 0, messageId: separate!.message.messageId }));
  clock.advance(100_000);
  assert.equal(transport.take().length, 0);
});

test('a CON nobody answers is forgotten after EXCHANGE_LIFETIME; a late answer still goes out, and the Message ID is new again (§4.5)', () => {
  const { clock, transport, endpoint } = lockstep();
  const exchanges: Parameters<Parameters<CoapEndpoint['setRequestHandler']>[0] & object>[1][] = [];
  endpoint.setRequestHandler((_request, ex) => void exchanges.push(ex));
  const request = msg({ code: Method.GET, messageId: 0x0b0b, token: Buffer.from([7]) });
  transport.deliver(request);
  assert.equal(endpoint.stats().trackedMessages, 1);
  clock.advance(247_000 + 10_000);
  assert.equal(endpoint.stats().trackedMessages, 0, 'memory stays bounded when a handler never answers');
  assert.equal(endpoint.stats().peers, 0);
  exchanges[0]!.respond({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: new Uint8Array(0), options: [], payload: Buffer.from('late') });
  const [late] = transport.take();
  assert.equal(late!.message.type, MessageType.ACK);
  assert.equal(endpoint.stats().trackedMessages, 0, 'a forgotten record is not brought back by its answer');
  transport.deliver(request);
  assert.equal(exchanges.length, 2);
});

test('unanswered CONs beyond maxTrackedMessages: the oldest is forgotten, its retransmission is a new request', () => {
  const clock = new FakeScheduler();
  const transport = new FakeTransport(clock);
  const endpoint = new CoapEndpoint({ transport, scheduler: clock, maxTrackedMessages: 2 });
  const seen: number[] = [];
  endpoint.setRequestHandler((request) => void seen.push(request.messageId));
  const requests = [1, 2, 3].map((id) => msg({ code: Method.GET, messageId: id, token: Buffer.from([id]) }));
  for (const r of requests) transport.deliver(r);
  assert.equal(endpoint.stats().trackedMessages, 2);
  transport.deliver(requests[2]!);
  transport.deliver(requests[0]!);
  assert.deepEqual(seen, [1, 2, 3, 1], 'Message ID 3 is still remembered (empty ACK), 1 was forgotten');
  assert.deepEqual(transport.take().map((s) => [s.message.type, s.message.messageId]), [[MessageType.ACK, 3]]);
});

test('thousands of answered CONs from several peers: each duplicate gets its own reply again, small or large (§4.5)', () => {
  const { transport, endpoint } = lockstep();
  let calls = 0;
  endpoint.setRequestHandler((request, exchange) => {
    calls++;
    const size = request.messageId % 5 === 0 ? 300 : 10;
    exchange.respond({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: request.token, options: [], payload: Buffer.alloc(size, request.messageId & 0xff) });
  });
  const peers = [{ address: '192.0.2.1', port: 5683 }, { address: '192.0.2.2', port: 5683 }, { address: '192.0.2.3', port: 61616 }];
  const first = new Map<string, Buffer>();
  for (let i = 0; i < 3000; i++) {
    const peer = peers[i % 3]!;
    transport.deliver(msg({ code: Method.GET, messageId: i, token: Buffer.from([i & 0xff, i >> 8, 1, 2, 3, 4, 5, 6]) }), peer);
    first.set(`${peer.address}|${i}`, transport.take()[0]!.bytes);
  }
  for (let i = 2999; i >= 0; i -= 7) {
    const peer = peers[i % 3]!;
    transport.deliver(msg({ code: Method.GET, messageId: i, token: Buffer.from([i & 0xff, i >> 8, 1, 2, 3, 4, 5, 6]) }), peer);
    assert.ok(transport.take()[0]!.bytes.equals(first.get(`${peer.address}|${i}`)!), `duplicate ${i}`);
  }
  assert.equal(calls, 3000);
  assert.equal(endpoint.stats().trackedMessages, 3000);
});

test('acknowledgeUnansweredAfter: each CON request unanswered for the delay gets its empty ACK on time, one timer for all (§5.2.2)', () => {
  const { clock, transport, endpoint } = lockstep();
  endpoint.messaging.acknowledgeUnansweredAfter(100);
  const exchanges = new Map<number, Parameters<Parameters<CoapEndpoint['setRequestHandler']>[0] & object>[1]>();
  endpoint.setRequestHandler((request, ex) => void exchanges.set(request.messageId, ex));
  const answer = (id: number): void =>
    exchanges.get(id)!.respond({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: new Uint8Array(0), options: [], payload: Buffer.from(`r${id}`) });
  transport.deliver(msg({ code: Method.GET, messageId: 1, token: Buffer.from([1]) }));
  clock.advance(30);
  transport.deliver(msg({ code: Method.GET, messageId: 2, token: Buffer.from([2]) }));
  clock.advance(30);
  transport.deliver(msg({ code: Method.GET, messageId: 3, token: Buffer.from([3]) }));
  transport.deliver(msg({ type: MessageType.NON, code: Method.GET, messageId: 4, token: Buffer.from([4]) }));
  answer(2); // piggybacked at 60 ms: no empty ACK for it
  clock.advance(200);
  const sent = transport.take().map((s) => [s.at, s.message.type, s.message.code, s.message.messageId]);
  assert.deepEqual(sent, [
    [60, MessageType.ACK, ResponseCode.Content, 2],
    [100, MessageType.ACK, 0, 1],
    [160, MessageType.ACK, 0, 3],
  ]);
  // The responses then go separately, as CONs; a duplicate of an acknowledged request gets the empty ACK again.
  answer(1);
  assert.equal(transport.take()[0]!.message.type, MessageType.CON);
  transport.deliver(msg({ code: Method.GET, messageId: 3, token: Buffer.from([3]) }));
  assert.deepEqual([...transport.take()[0]!.bytes], [0x60, 0x00, 0x00, 0x03]);
  // Turned off, a request waits for its handler however long it takes.
  endpoint.messaging.acknowledgeUnansweredAfter(undefined);
  transport.deliver(msg({ code: Method.GET, messageId: 5, token: Buffer.from([5]) }));
  clock.advance(1000);
  assert.equal(transport.take().filter((s) => s.message.messageId === 5).length, 0);
});

test('NSTART = 1: a second request to the same peer waits until the first is answered (§4.7)', async () => {
  const { transport, endpoint } = lockstep();
  const first = endpoint.request(get(), PEER);
  const second = endpoint.request(get(), PEER);
  const third = endpoint.request(get(), { address: '192.0.2.2', port: 5683 });
  const sent = transport.take();
  assert.equal(sent.length, 2, 'first request and the one to another peer go out');
  assert.equal(sent[1]!.peer.address, '192.0.2.2');
  transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: sent[0]!.message.messageId, token: sent[0]!.message.token }));
  await first;
  const [next] = transport.take();
  assert.ok(next, 'the queued request is sent once the first completes');
  transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: next.message.messageId, token: next.message.token }));
  await second;
  transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: sent[1]!.message.messageId, token: sent[1]!.message.token }), { address: '192.0.2.2', port: 5683 });
  await third;
});

test('NSTART: an empty ACK ends the outstanding interaction; NSTART is configurable', async () => {
  const { transport, endpoint } = lockstep({ nstart: 2 });
  void endpoint.request(get(), PEER);
  void endpoint.request(get(), PEER);
  void endpoint.request(get(), PEER);
  const sent = transport.take();
  assert.equal(sent.length, 2);
  transport.deliver(msg({ type: MessageType.ACK, code: 0, messageId: sent[0]!.message.messageId }));
  assert.equal(transport.take().length, 1, 'the third goes out after the first is acknowledged');
});

test('tokens are 8 random bytes by default and differ per request', () => {
  const clock = new FakeScheduler();
  const transport = new FakeTransport(clock);
  const endpoint = new CoapEndpoint({ transport, scheduler: clock, random: new SeededRandom(1), parameters: { nstart: 10 } });
  for (let i = 0; i < 5; i++) void endpoint.request(get(), PEER).catch(() => {});
  const tokens = transport.take().map((s) => Buffer.from(s.message.token).toString('hex'));
  assert.equal(new Set(tokens).size, 5);
  assert.ok(tokens.every((t) => t.length === 16));
});

test('a deadline bounds the whole request, retransmissions included', async () => {
  const { clock, transport, endpoint } = lockstep();
  const outcome = endpoint.request(get(), PEER, { deadline: 1000 }).catch((e: unknown) => e);
  clock.advance(999);
  assert.equal(transport.take().length, 1);
  clock.advance(1);
  const error = await outcome;
  assert.ok(error instanceof TimeoutError);
  assert.match(String(error), /within 1000 ms/);
  clock.advance(100_000);
  assert.equal(transport.take().length, 0, 'no retransmission after the deadline');
});

test('a deadline longer than the first retransmission timeout ends on time: after retransmissions, after an empty ACK, and in the NSTART queue', async () => {
  // Its timer is armed lazily (endpoint.ts armDeadline); each way of waiting long must arm it.
  const failsAt = async (setup: (e: CoapEndpoint, t: FakeTransport) => Promise<unknown>, deadline: number): Promise<number> => {
    const clock = new FakeScheduler(0);
    const transport = new FakeTransport(clock);
    const endpoint = new CoapEndpoint({ transport, scheduler: clock, random: new SeededRandom(3) });
    const outcome = setup(endpoint, transport).catch((e: unknown) => e);
    let failedAt = -1;
    void outcome.then(() => (failedAt = clock.now()));
    for (let t = 0; t < 20_000 && failedAt < 0; t += 50) {
      clock.advance(50);
      await flush();
    }
    assert.ok(failedAt >= 0, `no failure within 20 s (deadline ${deadline})`);
    assert.ok((await outcome) instanceof TimeoutError);
    assert.ok(failedAt >= deadline && failedAt <= deadline + 50, `failed at ${failedAt}, deadline ${deadline}`);
    return failedAt;
  };
  // Unacknowledged: the CON is retransmitted (first at 2–3 s), the deadline of 7.5 s ends it.
  await failsAt((e) => e.request(get(), PEER, { deadline: 7500 }), 7500);
  // Acknowledged by an empty ACK at once, then no response.
  await failsAt(async (e, t) => {
    const result = e.request(get(), PEER, { deadline: 5000 });
    const [sent] = t.take();
    t.deliver(msg({ type: MessageType.ACK, code: 0, messageId: sent!.message.messageId }));
    return result;
  }, 5000);
  // Waiting behind another request for the NSTART slot the whole time.
  await failsAt((e) => {
    void e.request(get(), PEER).catch(() => {});
    return e.request(get(), PEER, { deadline: 4000 });
  }, 4000);
});

test('a response with a critical option this stack does not process (Q-Block2) is rejected, not misread', async () => {
  const { transport, endpoint } = lockstep();
  const pending = endpoint.request(get(), PEER).catch((e: unknown) => e);
  const [sent] = transport.take();
  transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: sent!.message.messageId, token: sent!.message.token, options: [opt(OptionNumber.QBlock2, Buffer.from([0x08]))] }));
  assert.match(String(await pending), /unsupported critical option Q-Block2 \(31\)/);
});

/** One GET to PEER, acknowledged with a piggybacked 2.05; returns the Message ID it went out with. */
async function acknowledgedExchange(endpoint: CoapEndpoint, transport: FakeTransport): Promise<number> {
  const pending = endpoint.request(get(), PEER);
  const [sent] = transport.take();
  transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: sent!.message.messageId, token: sent!.message.token }));
  await pending;
  return sent!.message.messageId;
}

test('no Message ID is reused towards a peer within EXCHANGE_LIFETIME, also after every exchange with it ended (§4.4)', async () => {
  const clock = new FakeScheduler();
  const transport = new FakeTransport(clock);
  // Every counter would start at 0x1234: one started afresh for the peer repeats an ID it still remembers.
  const endpoint = new CoapEndpoint({ transport, scheduler: clock, random: new SameMessageIdStart(1) });
  const exchange = (): Promise<number> => acknowledgedExchange(endpoint, transport);
  const first = await exchange();
  assert.equal(endpoint.stats().outstandingConfirmables, 0);
  clock.advance(1000);
  const second = await exchange();
  assert.notEqual(second, first, 'the peer deduplicates by Message ID for EXCHANGE_LIFETIME (§4.5): a reused one would be taken for the first request again');
  clock.advance(240_000);
  const third = await exchange();
  assert.equal(new Set([first, second, third]).size, 3);
  assert.equal(endpoint.stats().peers, 1, 'the Message ID counter is kept while its IDs may be remembered');
  // 247 s (EXCHANGE_LIFETIME) after the last ID sent, the peer's state is forgotten: memory stays bounded.
  clock.advance(247_000 + 10_000);
  assert.equal(endpoint.stats().peers, 0);
});

test('forgetting received messages for capacity never forgets a Message ID counter still in use (§4.4)', async () => {
  const clock = new FakeScheduler();
  const transport = new FakeTransport(clock);
  const endpoint = new CoapEndpoint({ transport, scheduler: clock, random: new SameMessageIdStart(1), maxTrackedMessages: 2 });
  endpoint.setRequestHandler((request, exchange) => exchange.respond({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: request.token, options: [], payload: new Uint8Array(0) }));
  const exchange = (): Promise<number> => acknowledgedExchange(endpoint, transport);
  const first = await exchange();
  // Requests from other peers overflow the deduplication records (the oldest are evicted).
  for (let port = 1; port <= 5; port++) transport.deliver(msg({ code: Method.GET, messageId: port, token: Buffer.from([port]) }), { address: '192.0.2.9', port });
  transport.take();
  assert.equal(endpoint.stats().trackedMessages, 2);
  assert.notEqual(await exchange(), first);
});

test('deduplication is per peer, also when datagrams alternate between peers and a forgotten peer comes back (§4.5)', () => {
  const { clock, transport, endpoint } = lockstep();
  const calls: string[] = [];
  endpoint.setRequestHandler((request, exchange) => {
    calls.push(`${exchange.context.peer.address}:${exchange.context.peer.port}`);
    exchange.respond({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: request.token, options: [], payload: new Uint8Array(0) });
  });
  const a = { address: '192.0.2.1', port: 5683 };
  const b = { address: '192.0.2.1', port: 5684 };
  const c = { address: '192.0.2.2', port: 5683 };
  // The same Message ID and token from three peers: three requests; each repeated is a duplicate.
  const request = msg({ code: Method.GET, messageId: 0x77, token: Buffer.from([5]), options: [opt(OptionNumber.UriPath, 'x')] });
  for (const peer of [a, b, a, c, b, c, a]) transport.deliver(request, peer);
  assert.deepEqual(calls, ['192.0.2.1:5683', '192.0.2.1:5684', '192.0.2.2:5683']);
  assert.deepEqual(transport.take().map((s) => `${s.peer.address}:${s.peer.port}`), ['192.0.2.1:5683', '192.0.2.1:5684', '192.0.2.1:5683', '192.0.2.2:5683', '192.0.2.1:5684', '192.0.2.2:5683', '192.0.2.1:5683']);
  // Once EXCHANGE_LIFETIME has passed, every peer's state is gone; the last peer's too.
  clock.advance(247_000 + 10_000);
  assert.equal(endpoint.stats().peers, 0);
  transport.deliver(request, a);
  transport.deliver(request, a);
  assert.equal(calls.length, 4, 'a new record for the returning peer, which deduplicates again');
  assert.equal(endpoint.stats().peers, 1);
});

test('CoapEndpoint.send: the handler hears the response within the delivery of its datagram, and failures once', async () => {
  const { clock, transport, endpoint } = lockstep();
  const heard: string[] = [];
  const handler = { onResponse: (r: { message: { payload: Uint8Array } }) => heard.push(`response ${Buffer.from(r.message.payload).toString()}`), onError: (e: Error) => heard.push(`error ${e.name}`) };
  endpoint.send(get(), PEER, {}, handler);
  const [sent] = transport.take();
  transport.deliver(msg({ type: MessageType.ACK, code: ResponseCode.Content, messageId: sent!.message.messageId, token: sent!.message.token, payload: Buffer.from('hi') }));
  assert.deepEqual(heard, ['response hi'], 'no promise or microtask in between');
  endpoint.send(get(), PEER, { deadline: 1000 }, handler);
  clock.advance(100_000);
  assert.deepEqual(heard, ['response hi', 'error TimeoutError']);
  await endpoint.close();
  endpoint.send(get(), PEER, {}, handler);
  assert.deepEqual(heard, ['response hi', 'error TimeoutError', 'error CancelledError']);
});
