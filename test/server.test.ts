/** Server behaviour: RFC 7252 §5.4 option rules, 4.04/4.05/4.06/5.05, slow handlers, discovery. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Method, ResponseCode, code } from '../src/coap/codes.js';
import { decodeString, encodeUint, getUintOption, MessageType } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapClient } from '../src/client/client.js';
import { addDemoResources, largeText } from '../src/demo/resources.js';
import { CoapServer } from '../src/server/server.js';
import { lockstep, msg, opt, flush, PEER } from './support/lockstep.js';

function lockstepServer() {
  const harness = lockstep();
  const server = new CoapServer(harness.endpoint);
  return { ...harness, server };
}

/** Sends one CON request and returns the single reply. */
function exchange(h: ReturnType<typeof lockstepServer>, fields: Parameters<typeof msg>[0]) {
  h.transport.deliver(msg({ token: Buffer.from([0xaa]), ...fields }));
  const sent = h.transport.take();
  assert.equal(sent.length, 1, 'exactly one reply');
  return sent[0]!.message;
}

test('unrecognized critical option in a request → 4.02 Bad Option with a diagnostic (§5.4.1)', () => {
  const h = lockstepServer();
  h.server.resource('/r', { GET: () => ({ code: ResponseCode.Content }) });
  const reply = exchange(h, { code: Method.GET, options: [opt(OptionNumber.UriPath, 'r'), opt(2049, 'x')] });
  assert.equal(reply.type, MessageType.ACK);
  assert.equal(reply.code, ResponseCode.BadOption);
  assert.match(decodeString(reply.payload), /unrecognized critical option/);
});

test('unrecognized elective option is ignored (§5.4.1)', () => {
  const h = lockstepServer();
  h.server.resource('/r', { GET: (req) => ({ code: ResponseCode.Content, payload: String(req.options.length) }) });
  const reply = exchange(h, { code: Method.GET, options: [opt(OptionNumber.UriPath, 'r'), opt(2048, 'x')] });
  assert.equal(reply.code, ResponseCode.Content);
  assert.equal(decodeString(reply.payload), '1', 'the handler does not see the elective option');
});

test('critical option with a wrong length, or repeated though not repeatable → 4.02 (§5.4.3, §5.4.5)', () => {
  const h = lockstepServer();
  h.server.resource('/r', { GET: () => ({ code: ResponseCode.Content }) });
  assert.equal(exchange(h, { code: Method.GET, messageId: 1, options: [opt(OptionNumber.UriPort, Buffer.from([1, 2, 3])), opt(OptionNumber.UriPath, 'r')] }).code, ResponseCode.BadOption);
  assert.equal(exchange(h, { code: Method.GET, messageId: 2, options: [opt(OptionNumber.UriHost, 'a'), opt(OptionNumber.UriHost, 'b'), opt(OptionNumber.UriPath, 'r')] }).code, ResponseCode.BadOption);
  // Max-Age is elective: a supernumerary occurrence is ignored, not an error.
  assert.equal(exchange(h, { code: Method.GET, messageId: 3, options: [opt(OptionNumber.UriPath, 'r'), opt(OptionNumber.MaxAge, Buffer.from([1])), opt(OptionNumber.MaxAge, Buffer.from([2]))] }).code, ResponseCode.Content);
});

test('Proxy-Uri at a non-proxy → 5.05 (§5.7.2); OSCORE option at a server without OSCORE → 4.02', () => {
  const h = lockstepServer();
  assert.equal(exchange(h, { code: Method.GET, messageId: 1, options: [opt(OptionNumber.ProxyUri, 'coap://example.com/x')] }).code, ResponseCode.ProxyingNotSupported);
  assert.equal(exchange(h, { code: Method.GET, messageId: 2, options: [opt(OptionNumber.Oscore, Buffer.from([0x09, 0x00]))] }).code, ResponseCode.BadOption);
});

test('4.04 for an unknown path, 4.05 for an unsupported or unknown method code (§5.8)', () => {
  const h = lockstepServer();
  h.server.resource('/r', { GET: () => ({ code: ResponseCode.Content }) });
  assert.equal(exchange(h, { code: Method.GET, messageId: 1, options: [opt(OptionNumber.UriPath, 'nope')] }).code, ResponseCode.NotFound);
  assert.equal(exchange(h, { code: Method.DELETE, messageId: 2, options: [opt(OptionNumber.UriPath, 'r')] }).code, ResponseCode.MethodNotAllowed);
  assert.equal(exchange(h, { code: code(0, 8), messageId: 3, options: [opt(OptionNumber.UriPath, 'r')] }).code, ResponseCode.MethodNotAllowed);
});

test('Accept that the resource cannot satisfy → 4.06 (§5.10.4)', () => {
  const h = lockstepServer();
  h.server.resource('/r', { GET: () => ({ code: ResponseCode.Content, contentFormat: 0, payload: 'text' }) });
  assert.equal(exchange(h, { code: Method.GET, messageId: 1, options: [opt(OptionNumber.UriPath, 'r'), opt(OptionNumber.Accept, encodeUint(50))] }).code, ResponseCode.NotAcceptable);
  assert.equal(exchange(h, { code: Method.GET, messageId: 2, options: [opt(OptionNumber.UriPath, 'r'), opt(OptionNumber.Accept, encodeUint(0))] }).code, ResponseCode.Content);
});

test('a throwing handler gives 5.00 with a diagnostic, no stack trace', () => {
  const h = lockstepServer();
  h.server.resource('/r', { GET: () => { throw new Error('boom'); } });
  const reply = exchange(h, { code: Method.GET, options: [opt(OptionNumber.UriPath, 'r')] });
  assert.equal(reply.code, ResponseCode.InternalServerError);
  assert.equal(decodeString(reply.payload), 'internal error: boom');
});

test('No-Response suppresses the chosen classes; a CON still gets its empty ACK (RFC 7967)', () => {
  const h = lockstepServer();
  h.server.resource('/r', { PUT: () => ({ code: ResponseCode.Changed }) });
  const reply = exchange(h, { code: Method.PUT, options: [opt(OptionNumber.UriPath, 'r'), opt(OptionNumber.NoResponse, encodeUint(2))] });
  assert.equal(reply.type, MessageType.ACK);
  assert.equal(reply.code, 0);
  h.transport.deliver(msg({ type: MessageType.NON, code: Method.PUT, messageId: 77, token: Buffer.from([1]), options: [opt(OptionNumber.UriPath, 'r'), opt(OptionNumber.NoResponse, encodeUint(2))] }));
  assert.equal(h.transport.take().length, 0);
});

test('a fast async handler is piggybacked; a slow one gets an empty ACK after 100 ms and a separate CON (§5.2.2)', async () => {
  const h = lockstepServer();
  let release: (() => void) | undefined;
  h.server.resource('/fast', { GET: async () => ({ code: ResponseCode.Content, payload: 'fast' }) });
  h.server.resource('/slow', { GET: () => new Promise((resolve) => (release = () => resolve({ code: ResponseCode.Content, payload: 'slow' }))) });

  h.transport.deliver(msg({ code: Method.GET, messageId: 1, token: Buffer.from([1]), options: [opt(OptionNumber.UriPath, 'fast')] }));
  await flush();
  const [fast] = h.transport.take();
  assert.equal(fast!.message.type, MessageType.ACK);
  assert.equal(decodeString(fast!.message.payload), 'fast');

  h.transport.deliver(msg({ code: Method.GET, messageId: 2, token: Buffer.from([2]), options: [opt(OptionNumber.UriPath, 'slow')] }));
  h.clock.advance(99);
  assert.equal(h.transport.take().length, 0);
  h.clock.advance(1);
  const [emptyAck] = h.transport.take();
  assert.deepEqual([emptyAck!.message.type, emptyAck!.message.code, emptyAck!.message.messageId], [MessageType.ACK, 0, 2]);
  release!();
  await flush();
  const [separate] = h.transport.take();
  assert.equal(separate!.message.type, MessageType.CON);
  assert.deepEqual([...separate!.message.token], [2]);
  assert.equal(decodeString(separate!.message.payload), 'slow');
});

test('a NON request gets a NON response (§5.2.3)', () => {
  const h = lockstepServer();
  h.server.resource('/r', { GET: () => ({ code: ResponseCode.Content }) });
  h.transport.deliver(msg({ type: MessageType.NON, code: Method.GET, messageId: 5, token: Buffer.from([3]), options: [opt(OptionNumber.UriPath, 'r')] }));
  const [reply] = h.transport.take();
  assert.equal(reply!.message.type, MessageType.NON);
  assert.deepEqual([...reply!.message.token], [3]);
});

test('handlers see the endpoint context of the sender', () => {
  const h = lockstepServer();
  h.server.resource('/who', { GET: (req) => ({ code: ResponseCode.Content, payload: `${req.context.scheme}://${req.context.peerKey}` }) });
  const reply = exchange(h, { code: Method.GET, options: [opt(OptionNumber.UriPath, 'who')] });
  assert.equal(decodeString(reply.payload), `coap://${PEER.address}:${PEER.port}`);
});

test('/.well-known/core lists resources with attributes and filters by query (RFC 6690 §4.1)', () => {
  const h = lockstepServer();
  addDemoResources(h.server);
  const all = exchange(h, { code: Method.GET, messageId: 1, options: [opt(OptionNumber.UriPath, '.well-known'), opt(OptionNumber.UriPath, 'core')] });
  assert.equal(getUintOption(all, OptionNumber.ContentFormat), 40);
  const text = decodeString(all.payload);
  for (const href of ['/hello', '/echo', '/alarm', '/valve', '/config', '/time', '/large']) assert.ok(text.includes(`<${href}>`), href);
  assert.ok(text.includes('</large>;rt="demo.large";ct=0;sz=8192'), text);
  const filtered = exchange(h, { code: Method.GET, messageId: 2, options: [opt(OptionNumber.UriPath, '.well-known'), opt(OptionNumber.UriPath, 'core'), opt(OptionNumber.UriQuery, 'rt=demo.v*')] });
  assert.equal(decodeString(filtered.payload), '</valve>;rt="demo.valve";ct=0;title="Valve level 0-10"');
  const byHref = exchange(h, { code: Method.GET, messageId: 3, options: [opt(OptionNumber.UriPath, '.well-known'), opt(OptionNumber.UriPath, 'core'), opt(OptionNumber.UriQuery, 'href=/al*')] });
  assert.match(decodeString(byHref.payload), /^<\/alarm>/);
});

test('demo resources over real UDP: valve validation, FETCH/PATCH/iPATCH with ETags, files below --dir', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-files-'));
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'note.txt'), 'a file');
  writeFileSync(join(tmpdir(), 'coapsec-outside.txt'), 'secret');
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  addDemoResources(server, { dir });
  const client = new CoapClient();
  t.after(async () => {
    await client.close();
    await server.close();
  });
  const base = `coap://127.0.0.1:${server.address().port}`;

  assert.equal((await client.put(`${base}/valve`, '10')).code, ResponseCode.Changed);
  assert.equal((await client.get(`${base}/valve`)).text(), '10');
  const bad = await client.put(`${base}/valve`, '11');
  assert.equal(bad.code, ResponseCode.BadRequest);
  assert.match(bad.text(), /0 to 10/);
  assert.equal((await client.put(`${base}/valve`, '3', { contentFormat: 50 })).code, ResponseCode.UnsupportedContentFormat);

  const config = await client.get(`${base}/config`);
  const etag = config.options.find((o) => o.number === OptionNumber.ETag)!.value;
  assert.deepEqual(JSON.parse((await client.fetch(`${base}/config`, '["unit"]', { contentFormat: 50 })).text()), { unit: 'celsius' });
  assert.equal((await client.fetch(`${base}/config`, '["unit"]')).code, ResponseCode.UnsupportedContentFormat);
  const ifMatch = [{ number: OptionNumber.IfMatch, value: etag }];
  assert.equal((await client.ipatch(`${base}/config`, '{"unit":"kelvin"}', { contentFormat: 52, options: ifMatch })).code, ResponseCode.Changed);
  assert.equal((await client.ipatch(`${base}/config`, '{"unit":"kelvin"}', { contentFormat: 52, options: ifMatch })).code, ResponseCode.PreconditionFailed);
  assert.equal((await client.patch(`${base}/config`, '{"id":"x"}', { contentFormat: 52 })).code, ResponseCode.Conflict);
  assert.equal((await client.patch(`${base}/config`, '[1]', { contentFormat: 52 })).code, ResponseCode.UnprocessableEntity);
  assert.equal((await client.patch(`${base}/config`, '{', { contentFormat: 52 })).code, ResponseCode.BadRequest);
  assert.equal(JSON.parse((await client.get(`${base}/config`)).text()).unit, 'kelvin');

  assert.equal((await client.post(`${base}/echo`, 'round trip', { contentFormat: 0 })).text(), 'round trip');
  assert.equal((await client.get(`${base}/large`)).text(), largeText());
  assert.equal((await client.get(`${base}/sub/note.txt`)).text(), 'a file');
  assert.equal((await client.get(`${base}/sub/note.txt`)).contentFormat, 0);
  assert.equal((await client.get(`${base}/sub/..%2F..%2Fcoapsec-outside.txt`)).code, ResponseCode.NotFound);
  assert.equal((await client.get(`${base}/../coapsec-outside.txt`)).code, ResponseCode.NotFound);
  assert.equal((await client.put(`${base}/sub/note.txt`, 'x')).code, ResponseCode.MethodNotAllowed);
  assert.match((await client.get(`${base}/.well-known/core`)).text(), /<\/sub\/note\.txt>;ct=0;sz=6/);
  assert.equal((await client.get(`${base}/hello`, { confirmable: false })).text(), 'Hello from coapsec');
});
