/**
 * The OSCORE test specification (shared/specs/oscore-interop-test-spec.txt, tests 0–17) between our
 * client and our server, on the lockstep network, plus inner block-wise, Observe through OSCORE,
 * replay versus retransmission, and the Appendix B.1.2 Echo exchange after a server restart.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, encodeUint, getOption, getUintOption, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { blockwiseRequest } from '../src/client/blockwise.js';
import { Observation } from '../src/client/observe.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { PLAIN, securedSender, withEchoRetry, type MessageSecurity } from '../src/client/security.js';
import { addDemoResources, largeText } from '../src/demo/resources.js';
import { addPlugtestResources } from '../src/demo/plugtest.js';
import { OscoreSecurityContext, VolatileSequence, type SecurityContextInput } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';

const SERVER = { address: '10.0.0.1', port: 5683 };
const CLIENT = { address: '10.0.0.2', port: 40000 };
const hex = (s: string): Uint8Array => Buffer.from(s, 'hex');

/** Security Contexts A (client) and B (server) of the test specification. */
const COMMON = { masterSecret: hex('0102030405060708090a0b0c0d0e0f10'), masterSalt: hex('9e7ca92223786340') };
const CONTEXT_A: SecurityContextInput = { ...COMMON, senderId: hex(''), recipientIds: [hex('01')], name: 'server' };
const CONTEXT_B: SecurityContextInput = { ...COMMON, senderId: hex('01'), recipientIds: [hex('')], name: 'client-a' };
/** Contexts C and D: the same with ID Context 0x37cbf3210017a2d3. */
const ID_CONTEXT = hex('37cbf3210017a2d3');
const CONTEXT_C: SecurityContextInput = { ...CONTEXT_A, idContext: ID_CONTEXT };
const CONTEXT_D: SecurityContextInput = { ...CONTEXT_B, idContext: ID_CONTEXT, name: 'client-c' };

function setup(options: { serverContexts?: SecurityContextInput[]; oscoreAware?: boolean; clientContext?: SecurityContextInput; restarted?: boolean } = {}) {
  const net = new FakeNetwork();
  const serverContexts = (options.serverContexts ?? [CONTEXT_B, CONTEXT_D]).map((c) => new OscoreSecurityContext(c, new VolatileSequence(), options.restarted));
  const server = new CoapServer(net.endpoint(SERVER, {}, 1), options.oscoreAware === false ? {} : { security: new OscoreServerSecurity(serverContexts) });
  addPlugtestResources(server);
  addDemoResources(server, { tick: false });
  server.resource('/whoami', { GET: (req) => ({ code: ResponseCode.Content, payload: JSON.stringify(req.context.oscore ?? null) }) });
  const client = net.endpoint(CLIENT, {}, 2);
  const clientContext = new OscoreSecurityContext(options.clientContext ?? CONTEXT_A, new VolatileSequence());
  const oscore = new OscoreClientSecurity(clientContext);
  const send = (security: MessageSecurity = oscore) => withEchoRetry(securedSender(client, SERVER, security));
  const request = (code: number, path: string, extra: { options?: CoapOption[]; payload?: Uint8Array } = {}): CoapMessage => ({
    type: MessageType.CON,
    code,
    messageId: 0,
    token: EMPTY_BYTES,
    options: [...path.split('/').filter(Boolean).map((segment) => ({ number: OptionNumber.UriPath, value: encodeString(segment) })), ...(extra.options ?? [])].sort((a, b) => a.number - b.number),
    payload: extra.payload ?? EMPTY_BYTES,
  });
  const wire = () => net.log.filter((d) => d.to.address === SERVER.address).map((d) => d.message);
  return { net, server, client, oscore, clientContext, send, request, wire };
}

test('TEST 0: an unprotected GET of /oscore/hello/coap works without OSCORE', async () => {
  const s = setup();
  const r = await s.net.until(s.send(PLAIN)(s.request(Method.GET, '/oscore/hello/coap')));
  assert.equal(r.message.code, ResponseCode.Content);
  assert.equal(decodeString(r.message.payload), 'Hello World!');
});

test('TEST 1: GET /oscore/hello/1 with OSCORE: outer POST, nothing of the request visible, inner 2.05', async () => {
  const s = setup();
  const r = await s.net.until(s.send()(s.request(Method.GET, '/oscore/hello/1')));
  assert.equal(r.message.code, ResponseCode.Content);
  assert.equal(decodeString(r.message.payload), 'Hello World!');
  assert.equal(getUintOption(r.message, OptionNumber.ContentFormat), 0);
  const [onWire] = s.wire();
  assert.equal(onWire!.code, Method.POST, 'outer code POST (§4.2)');
  assert.equal(getOption(onWire!, OptionNumber.UriPath), undefined, 'Uri-Path is encrypted');
  assert.ok(getOption(onWire!, OptionNumber.Oscore));
  const response = s.net.log.find((d) => d.from.address === SERVER.address)!.message;
  assert.equal(response.code, ResponseCode.Changed, 'outer code 2.04 (§4.2)');
  assert.deepEqual(r.context.oscore, [{ peer: 'server', kid: '01' }]);
});

test('TEST 2: with an ID Context, the request carries kid context and the server picks context D', async () => {
  const s = setup({ clientContext: CONTEXT_C });
  const r = await s.net.until(s.send()(s.request(Method.GET, '/whoami')));
  assert.deepEqual(JSON.parse(decodeString(r.message.payload)), [{ peer: 'client-c', kid: '', kidContext: '37cbf3210017a2d3' }]);
  const option = getOption(s.wire()[0]!, OptionNumber.Oscore)!;
  assert.equal(option[0]! & 0x10, 0x10, 'the h flag: kid context present (§6.1)');
});

test('TEST 3 and 4: Uri-Query and ETag; Accept and Max-Age travel inside', async () => {
  const s = setup();
  const three = await s.net.until(s.send()(s.request(Method.GET, '/oscore/hello/2', { options: [{ number: OptionNumber.UriQuery, value: encodeString('first=1') }] })));
  assert.deepEqual([...getOption(three.message, OptionNumber.ETag)!], [0x2b]);
  const four = await s.net.until(s.send()(s.request(Method.GET, '/oscore/hello/3', { options: [{ number: OptionNumber.Accept, value: encodeUint(0) }] })));
  assert.equal(getUintOption(four.message, OptionNumber.MaxAge), 5);
  for (const m of s.net.log.map((d) => d.message)) {
    assert.equal(getOption(m, OptionNumber.UriQuery), undefined);
    assert.equal(getOption(m, OptionNumber.ETag), undefined);
    assert.equal(getOption(m, OptionNumber.Accept), undefined);
  }
});

function observe(s: ReturnType<typeof setup>, path: string) {
  const template: CoapMessage = s.request(Method.GET, path);
  return new Observation(s.client, SERVER, template, { maxBodySize: 1 << 20, maxRestarts: 3 }, { reregisterDelay: () => 1e9 }, s.oscore);
}

test('TEST 5: Observe on a resource that is not observable: a plain protected response ends it', async () => {
  const s = setup();
  const o = observe(s, '/oscore/hello/1');
  const first = await s.net.until(o.next());
  assert.equal(first.value!.text(), 'Hello World!');
  assert.equal((await s.net.until(o.next())).done, true);
  assert.equal(s.wire()[0]!.code, Method.FETCH, 'a request with Observe has outer code FETCH (§4.1.3.5)');
});

test('TEST 6: /oscore/observe1 notifies "one", "two", then ends with a protected 5.00 "Terminate Observe"', async () => {
  const s = setup();
  const o = observe(s, '/oscore/observe1');
  const texts: string[] = [];
  const codes: number[] = [];
  for (let i = 0; i < 3; i++) {
    const n = await s.net.until(o.next(), 5000);
    texts.push(n.value!.text());
    codes.push(n.value!.code);
  }
  assert.deepEqual(texts, ['one', 'two', 'Terminate Observe']);
  assert.deepEqual(codes, [ResponseCode.Content, ResponseCode.Content, ResponseCode.InternalServerError]);
  assert.equal((await s.net.until(o.next())).done, true);
  const notifications = s.net.log.filter((d) => d.from.address === SERVER.address && getOption(d.message, OptionNumber.Oscore));
  const pivs = notifications.map((d) => getOption(d.message, OptionNumber.Oscore)!);
  assert.equal(pivs[0]!.length, 0, 'the first response may use the request nonce (no Partial IV)');
  assert.ok(pivs.slice(1).every((p) => (p[0]! & 0x07) > 0), 'later notifications carry a Partial IV (§4.1.3.5.2)');
});

test('TEST 7: /oscore/observe2 registration, then cancellation with a protected Observe 1', async () => {
  const s = setup();
  const o = observe(s, '/oscore/observe2');
  assert.equal((await s.net.until(o.next(), 5000)).value!.text(), 'one');
  assert.equal((await s.net.until(o.next(), 5000)).value!.text(), 'two');
  assert.equal(s.server.observations.count('/oscore/observe2'), 1);
  await s.net.until(o.return());
  assert.equal(s.server.observations.count('/oscore/observe2'), 0);
  const cancel = s.wire().at(-1)!;
  assert.equal(getUintOption(cancel, OptionNumber.Observe), 1, 'outer Observe 1 (§4.1.3.5.1)');
  assert.ok(getOption(cancel, OptionNumber.Oscore));
});

test('TEST 8–11: POST, PUT with If-Match, PUT with If-None-Match (4.12), DELETE', async () => {
  const s = setup();
  const post = await s.net.until(s.send()(s.request(Method.POST, '/oscore/hello/6', { options: [{ number: OptionNumber.ContentFormat, value: encodeUint(0) }], payload: Uint8Array.of(0x4a) })));
  assert.equal(post.message.code, ResponseCode.Changed);
  assert.deepEqual([...post.message.payload], [0x4a]);
  const put = await s.net.until(s.send()(s.request(Method.PUT, '/oscore/hello/7', { options: [{ number: OptionNumber.IfMatch, value: Uint8Array.of(0x7b) }, { number: OptionNumber.ContentFormat, value: encodeUint(0) }], payload: Uint8Array.of(0x7a) })));
  assert.equal(put.message.code, ResponseCode.Changed);
  const none = await s.net.until(s.send()(s.request(Method.PUT, '/oscore/hello/7', { options: [{ number: OptionNumber.IfNoneMatch, value: EMPTY_BYTES }, { number: OptionNumber.ContentFormat, value: encodeUint(0) }], payload: Uint8Array.of(0x8a) })));
  assert.equal(none.message.code, ResponseCode.PreconditionFailed, 'an application error is protected too (§8.3)');
  const del = await s.net.until(s.send()(s.request(Method.DELETE, '/oscore/test')));
  assert.equal(del.message.code, ResponseCode.Deleted);
});

test('TEST 12: an unknown Sender ID → unprotected 4.01 "Security context not found", Max-Age 0', async () => {
  const s = setup({ clientContext: { ...CONTEXT_A, senderId: hex('99') } });
  await assert.rejects(s.net.until(s.send()(s.request(Method.GET, '/oscore/hello/1'))), /unprotected 4\.01 Unauthorized: "Security context not found"/);
  const response = s.net.log.find((d) => d.from.address === SERVER.address)!.message;
  assert.equal(getOption(response, OptionNumber.Oscore), undefined);
  assert.equal(getUintOption(response, OptionNumber.MaxAge), 0);
});

test('TEST 13: a wrong sender key → unprotected 4.00 "Decryption failed"', async () => {
  const s = setup({ clientContext: { ...CONTEXT_A, masterSecret: hex('ff02030405060708090a0b0c0d0e0f10') } });
  await assert.rejects(s.net.until(s.send()(s.request(Method.GET, '/oscore/hello/1'))), /unprotected 4\.00 Bad Request: "Decryption failed"/);
});

test('TEST 14: a response the client cannot verify (its recipient key differs from the server\'s sender key) is discarded', async () => {
  // The client's sender key matches the server's recipient key, so the request verifies; the
  // client's recipient context (ID 02) does not match the server's sender (ID 01).
  const s = setup({ clientContext: { ...CONTEXT_A, recipientIds: [hex('02')] } });
  await assert.rejects(s.net.until(s.send()(s.request(Method.GET, '/oscore/hello/1'))), /response discarded: OSCORE verification failed/);
  const response = s.net.log.find((d) => d.from.address === SERVER.address)!.message;
  assert.ok(getOption(response, OptionNumber.Oscore), 'the server did answer, protected');
});

test('TEST 15: a replayed request gets 4.01 "Replay detected"; a CoAP retransmission gets the cached response instead', async () => {
  const s = setup();
  await s.net.until(s.send()(s.request(Method.GET, '/oscore/hello/1')));
  const original = s.wire()[0]!;
  const responses = () => s.net.log.filter((d) => d.from.address === SERVER.address).map((d) => d.message);
  // The same datagram again (same Message ID): deduplication answers with the cached ACK (§4.5).
  const bytes = (await import('../src/coap/codec.js')).encodeMessage(original);
  s.net.carry(CLIENT, SERVER, bytes);
  await s.net.run(5);
  assert.equal(responses().at(-1)!.code, ResponseCode.Changed, 'retransmission: the cached protected response, not a replay error');
  // The same OSCORE request in a new CoAP message (new Message ID): a replay (§7.4).
  s.net.carry(CLIENT, SERVER, (await import('../src/coap/codec.js')).encodeMessage({ ...original, messageId: (original.messageId + 1) & 0xffff }));
  await s.net.run(5);
  const replayAnswer = responses().at(-1)!;
  assert.equal(replayAnswer.code, ResponseCode.Unauthorized);
  assert.equal(decodeString(replayAnswer.payload), 'Replay detected');
  assert.equal(getOption(replayAnswer, OptionNumber.Oscore), undefined, 'OSCORE errors are unprotected (§8.2)');
});

test('TEST 16: an OSCORE request to an OSCORE-unaware server gets 4.02', async () => {
  const s = setup({ oscoreAware: false });
  await assert.rejects(s.net.until(s.send()(s.request(Method.GET, '/oscore/hello/coap'))), /unprotected 4\.02 Bad Option/);
});

test('TEST 17: an unprotected request to a protected resource gets 4.01', async () => {
  const s = setup();
  const r = await s.net.until(s.send(PLAIN)(s.request(Method.GET, '/oscore/hello/1')));
  assert.equal(r.message.code, ResponseCode.Unauthorized);
  assert.equal(decodeString(r.message.payload), 'OSCORE required');
});

test('inner block-wise through OSCORE: every 64-byte block is a separately protected exchange (§4.1.3.4.1)', async () => {
  const s = setup();
  const r = await s.net.until(blockwiseRequest(s.send(), s.request(Method.GET, '/large'), { szx: 2, maxBodySize: 1 << 20, maxRestarts: 3 }));
  assert.equal(decodeString(r.message.payload), largeText());
  const requests = s.wire();
  assert.equal(requests.length, 8192 / 64);
  assert.ok(requests.every((m) => getOption(m, OptionNumber.Block2) === undefined && getOption(m, OptionNumber.Oscore)), 'no Block option in the clear');
  const upload = Buffer.alloc(3000, 0x41);
  const echoed = await s.net.until(blockwiseRequest(s.send(), s.request(Method.POST, '/echo', { payload: upload }), { szx: 4, maxBodySize: 1 << 20, maxRestarts: 3 }));
  assert.ok(Buffer.from(echoed.message.payload).equals(upload));
});

test('Observe through OSCORE with notifications larger than a block', async () => {
  const s = setup();
  let version = 'A';
  s.server.resource('/icon', { GET: () => ({ code: ResponseCode.Content, payload: version.repeat(300) }) }, { observable: true });
  const template = s.request(Method.GET, '/icon', { options: [{ number: OptionNumber.Block2, value: Uint8Array.of(0x02) }] });
  const o = new Observation(s.client, SERVER, template, { szx: 2, maxBodySize: 1 << 20, maxRestarts: 3 }, { reregisterDelay: () => 1e9 }, s.oscore);
  assert.equal((await s.net.until(o.next())).value!.text(), 'A'.repeat(300));
  version = 'B';
  s.server.changed('/icon');
  assert.equal((await s.net.until(o.next())).value!.text(), 'B'.repeat(300));
  await s.net.until(o.return());
});

test('Appendix B.1.2: after a restart the first request is challenged with a protected Echo; the client repeats it once', async () => {
  const s = setup({ restarted: true });
  const r = await s.net.until(s.send()(s.request(Method.GET, '/oscore/hello/1')));
  assert.equal(r.message.code, ResponseCode.Content);
  const responses = s.net.log.filter((d) => d.from.address === SERVER.address).map((d) => d.message);
  assert.equal(responses.length, 2, 'the Echo challenge, then the answer');
  const challengeOption = getOption(responses[0]!, OptionNumber.Oscore)!;
  assert.ok((challengeOption[0]! & 0x07) > 0, 'the challenge carries the server\'s own Partial IV (B.1.2)');
  assert.equal(getOption(responses[0]!, OptionNumber.Echo), undefined, 'Echo travels encrypted');
  const requests = s.wire();
  assert.equal(requests.length, 2);
  // Later requests pass without a challenge. The echoed request, replayed, is a replay.
  const again = await s.net.until(s.send()(s.request(Method.GET, '/oscore/hello/1')));
  assert.equal(again.message.code, ResponseCode.Content);
  const codec = await import('../src/coap/codec.js');
  const lastFromServer = () => s.net.log.filter((d) => d.from.address === SERVER.address).at(-1)!.message;
  s.net.carry(CLIENT, SERVER, codec.encodeMessage({ ...requests[1]!, messageId: 0x7777 }));
  await s.net.run(5);
  assert.equal(decodeString(lastFromServer().payload), 'Replay detected');
  // The request from before the Echo is below the window's lower limit: whether it was received
  // cannot be told, so it is not processed and gets a new challenge (RFC 9175 §2.3), protected
  // with a fresh server Partial IV — not the resource's answer, which would use the request's nonce.
  s.net.carry(CLIENT, SERVER, codec.encodeMessage({ ...requests[0]!, messageId: 0x7778 }));
  await s.net.run(5);
  const rechallenge = lastFromServer();
  assert.ok((getOption(rechallenge, OptionNumber.Oscore)![0]! & 0x07) > 0, 'a challenge with its own Partial IV');
});

test('no (key, nonce) pair is used twice across many requests, notifications and responses', async () => {
  const s = setup();
  for (let i = 0; i < 20; i++) await s.net.until(s.send()(s.request(Method.GET, '/oscore/hello/1')));
  const o = observe(s, '/oscore/observe2');
  await s.net.until(o.next(), 5000);
  await s.net.until(o.next(), 5000);
  await s.net.until(o.return());
  const seen = new Set<string>();
  for (const d of s.net.log) {
    const option = getOption(d.message, OptionNumber.Oscore);
    if (!option || option.length === 0) continue; // no Partial IV: the request's nonce, bound to it
    const pivLength = option[0]! & 0x07;
    const sender = d.from.address === SERVER.address ? 'server' : 'client';
    const key = `${sender}:${Buffer.from(option.subarray(1, 1 + pivLength)).toString('hex')}`;
    assert.ok(!seen.has(key), `Partial IV ${key} used twice`);
    seen.add(key);
  }
  assert.equal(seen.size, 20 + 2 + 1, '22 client requests (20 GETs, register, deregister) and 1 server notification with its own Partial IV');
});

test('a client without a context for the URI refuses an OSCORE-protected response', async () => {
  const { PLAIN: plain } = await import('../src/client/security.js');
  const verified = plain.protect({ type: 0, code: 1, messageId: 0, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES }).verify(
    { type: 2, code: ResponseCode.Changed, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.Oscore, value: EMPTY_BYTES }], payload: Uint8Array.of(1, 2, 3) },
    false,
  );
  assert.match(String(verified), /no security context is configured/);
});
