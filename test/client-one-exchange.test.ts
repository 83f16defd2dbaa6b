/**
 * An ordinary request settles its one promise from the response's datagram callback
 * (src/client/one-exchange.ts), plain and OSCORE; the cases that need more than one exchange — an
 * Echo challenge (RFC 9175 §2.4), a Block2 transfer (RFC 7959), a protected response to a plain
 * request — still take the layers' way from that first response. The client's UDP endpoint is
 * real (127.0.0.1, port 0); its datagrams are captured and answered in process.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CoapClient, type ClientResponse } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { encodeBlock } from '../src/coap/block.js';
import { ResponseCode } from '../src/coap/codes.js';
import { MessageType, encodeString, getOption, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { protectResponse, unprotectRequest } from '../src/oscore/protect.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import type { PeerAddress } from '../src/transport/transport.js';

const SECRET = Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex');
const SALT = Buffer.from('9e7ca92223786340', 'hex');
const CLIENT_ID = Buffer.alloc(0);
const SERVER_ID = Buffer.from('01', 'hex');

/** Microtask turns a settled promise may take to reach its awaiter: one for the request's own promise, one for the test's `then`. */
const TURNS = 2;

const content = (text: string, options: CoapOption[] = []): Omit<CoapMessage, 'messageId' | 'token' | 'type'> => ({ code: ResponseCode.Content, options, payload: encodeString(text) });

interface Harness {
  client: CoapClient;
  uri: string;
  sent: CoapMessage[];
  answer(request: CoapMessage, response: Omit<CoapMessage, 'messageId' | 'token' | 'type'>): void;
  answerRaw(bytes: Uint8Array): void;
}

/** The server's side of OSCORE: opens a captured request and protects the answer to it. */
function oscoreAnswer(serverContext: OscoreSecurityContext, request: CoapMessage, text: string): Uint8Array {
  const opened = unprotectRequest(request, () => serverContext.primaryRecipient.params);
  assert.ok(opened.ok, 'the request verifies');
  assert.equal(Buffer.from(getOption(opened.message, OptionNumber.UriPath)!).toString(), 'hello');
  return encodeMessage(protectResponse({ type: MessageType.ACK, messageId: request.messageId, token: request.token, ...content(text) }, serverContext.sender, opened.binding));
}

async function harness(security?: OscoreClientSecurity, serverContext?: OscoreSecurityContext): Promise<Harness> {
  const client = new CoapClient({ bindIpv4: '127.0.0.1', parameters: { nstart: 4 }, ...(security ? { security: () => security } : {}) });
  const endpoint = await client.endpoint(4);
  // The "server" is the client's own address: nothing is sent there, the datagrams are captured.
  const server: PeerAddress = endpoint.transport.localAddress();
  const sent: CoapMessage[] = [];
  (endpoint.transport as { send(data: Uint8Array, peer: PeerAddress): void }).send = (data) => sent.push(decodeMessage(data));
  const h: Harness = {
    client,
    uri: `coap://${server.address}:${server.port}/hello`,
    sent,
    answer: (request, response) => endpoint.messaging.receive(encodeMessage({ ...response, type: MessageType.ACK, messageId: request.messageId, token: request.token }), server),
    answerRaw: (bytes) => endpoint.messaging.receive(bytes, server),
  };
  // The first request to a URI parses and routes it (asynchronously); the tests' requests find it routed.
  const first = client.get(h.uri);
  for (let i = 0; i < 100 && sent.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
  const request = sent.shift()!;
  if (serverContext) h.answerRaw(oscoreAnswer(serverContext, request, 'first'));
  else h.answer(request, content('first'));
  assert.equal((await first).text(), 'first');
  return h;
}

/** Whether `promise` settles within `turns` microtask turns. */
async function settlesWithin(promise: Promise<unknown>, turns: number): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < turns && !settled; i++) await Promise.resolve();
  return settled;
}


test('a plain GET settles within two microtask turns of its response', async () => {
  const h = await harness();
  try {
    const pending = h.client.get(h.uri);
    assert.equal(h.sent.length, 1, 'the request went out within get()');
    h.answer(h.sent[0]!, content('hello'));
    assert.ok(await settlesWithin(pending, TURNS), `settled within ${TURNS} turns`);
    const response = await pending;
    assert.equal(response.status, '2.05 Content');
    assert.equal(response.text(), 'hello');
  } finally {
    await h.client.close();
  }
});

test('an OSCORE GET settles within two microtask turns of its verified response', async () => {
  const clientContext = new OscoreSecurityContext({ masterSecret: SECRET, masterSalt: SALT, senderId: CLIENT_ID, recipientIds: [SERVER_ID] }, new VolatileSequence());
  const serverContext = new OscoreSecurityContext({ masterSecret: SECRET, masterSalt: SALT, senderId: SERVER_ID, recipientIds: [CLIENT_ID] }, new VolatileSequence());
  const h = await harness(new OscoreClientSecurity(clientContext), serverContext);
  try {
    const pending = h.client.get(h.uri);
    assert.equal(h.sent.length, 1, 'the request went out within get()');
    h.answerRaw(oscoreAnswer(serverContext, h.sent[0]!, 'secret'));
    assert.ok(await settlesWithin(pending, TURNS), `settled within ${TURNS} turns`);
    const verified: ClientResponse = await pending;
    assert.equal(verified.text(), 'secret');
    assert.equal(verified.context.oscore?.[0]?.kid, '01');
    assert.notEqual(verified.wire, undefined, 'the protected message is kept as wire');
  } finally {
    await h.client.close();
  }
});

test('a 4.01 with Echo to an ordinary GET is answered by the request again with that Echo, once', async () => {
  const h = await harness();
  try {
    const pending = h.client.get(h.uri);
    const echo = Uint8Array.of(0xec, 0x40, 1, 2);
    h.answer(h.sent[0]!, { code: ResponseCode.Unauthorized, options: [{ number: OptionNumber.Echo, value: echo }], payload: new Uint8Array(0) });
    for (let i = 0; i < 10 && h.sent.length < 2; i++) await Promise.resolve();
    assert.equal(h.sent.length, 2, 'the request was repeated');
    assert.deepEqual(getOption(h.sent[1]!, OptionNumber.Echo), Buffer.from(echo));
    assert.notDeepEqual(h.sent[1]!.token, h.sent[0]!.token, 'under a new token');
    h.answer(h.sent[1]!, content('fresh'));
    assert.equal((await pending).text(), 'fresh');
  } finally {
    await h.client.close();
  }
});

test('a response in Block2 blocks to an ordinary GET is fetched whole', async () => {
  const h = await harness();
  try {
    const body = 'x'.repeat(16) + 'y'.repeat(5);
    const pending = h.client.get(h.uri);
    h.answer(h.sent[0]!, { code: ResponseCode.Content, options: [{ number: OptionNumber.Block2, value: encodeBlock({ num: 0, more: true, szx: 0 }) }], payload: encodeString(body.slice(0, 16)) });
    for (let i = 0; i < 10 && h.sent.length < 2; i++) await Promise.resolve();
    assert.equal(h.sent.length, 2, 'block 1 was asked for');
    assert.deepEqual(getOption(h.sent[1]!, OptionNumber.Block2), Buffer.from(encodeBlock({ num: 1, more: false, szx: 0 })));
    h.answer(h.sent[1]!, { code: ResponseCode.Content, options: [{ number: OptionNumber.Block2, value: encodeBlock({ num: 1, more: false, szx: 0 }) }], payload: encodeString(body.slice(16)) });
    const response = await pending;
    assert.equal(response.text(), body);
    assert.equal(getOption(response.message, OptionNumber.Block2), undefined);
  } finally {
    await h.client.close();
  }
});

test('an OSCORE-protected answer to a plain GET is refused, not returned', async () => {
  const h = await harness();
  try {
    const pending = h.client.get(h.uri);
    h.answer(h.sent[0]!, content('?', [{ number: OptionNumber.Oscore, value: Uint8Array.of(0x09, 0x01) }]));
    await assert.rejects(pending, /response discarded: the response is protected with OSCORE/);
  } finally {
    await h.client.close();
  }
});

test('tokens that differ only by a trailing zero byte belong to different requests', async () => {
  const h = await harness();
  try {
    const endpoint = await h.client.endpoint(4);
    const peer = { address: '127.0.0.1', port: Number(new URL(h.uri.replace('coap:', 'http:')).port) };
    const get = (): CoapMessage => ({ type: MessageType.CON, code: 1, messageId: 0, token: new Uint8Array(0), options: [{ number: OptionNumber.UriPath, value: encodeString('hello') }], payload: new Uint8Array(0) });
    const short = endpoint.request(get(), peer, { token: Uint8Array.of(1) });
    const long = endpoint.request(get(), peer, { token: Uint8Array.of(1, 0) });
    assert.equal(h.sent.length, 2, 'both requests went out');
    h.answer(h.sent[1]!, content('long'));
    h.answer(h.sent[0]!, content('short'));
    assert.equal(Buffer.from((await short).message.payload).toString(), 'short');
    assert.equal(Buffer.from((await long).message.payload).toString(), 'long');
  } finally {
    await h.client.close();
  }
});
