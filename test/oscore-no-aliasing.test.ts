/**
 * Issue 21's OSCORE hot path reuses scratch buffers and computes keystreams in batches; nothing
 * it hands out may be one of those. What a caller keeps — a verified request's payload and option
 * values, a protected response, a datagram the server sent — must keep its bytes after the next
 * requests are processed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { protectRequest, protectResponse, unprotectRequest, unprotectResponse, type RequestBinding } from '../src/oscore/protect.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from '../src/transport/transport.js';

const SECRET = Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex');
const SALT = Buffer.from('9e7ca92223786340', 'hex');
const CLIENT_ID = Buffer.alloc(0);
const SERVER_ID = Buffer.from('01', 'hex');
const SERVER: PeerAddress = { address: '127.0.0.1', port: 5683 };
const CLIENT: PeerAddress = { address: '127.0.0.1', port: 40000 };

const clientContext = (): OscoreSecurityContext =>
  new OscoreSecurityContext({ masterSecret: SECRET, masterSalt: SALT, senderId: CLIENT_ID, recipientIds: [SERVER_ID] }, new VolatileSequence());
const serverContext = (): OscoreSecurityContext =>
  new OscoreSecurityContext({ masterSecret: SECRET, masterSalt: SALT, senderId: SERVER_ID, recipientIds: [CLIENT_ID], replayWindow: 64 }, new VolatileSequence());

/** A payload of `length` bytes that differs per request. */
const payloadOf = (i: number, length: number): Buffer => Buffer.from(Array.from({ length }, (_, j) => (i * 31 + j * 7) & 0xff));

const post = (i: number): CoapMessage => ({
  type: MessageType.CON,
  code: Method.POST,
  messageId: 0x100 + i,
  token: Buffer.from([i, i >> 8, 0xaa]),
  options: [
    { number: OptionNumber.UriPath, value: Buffer.from('items') },
    { number: OptionNumber.UriQuery, value: Buffer.from(`n=${i}`) },
  ],
  payload: payloadOf(i, 1 + ((i * 13) % 90)),
});

test('verified requests and protected responses keep their bytes while later ones are processed', () => {
  const client = clientContext();
  const server = serverContext();
  const recipient = server.recipient(CLIENT_ID)!.params;
  const kept: { payload: Uint8Array; queryValue: Uint8Array; sent: Uint8Array; response: Uint8Array; i: number; binding: RequestBinding }[] = [];
  for (let i = 0; i < 60; i++) {
    const { message, binding } = protectRequest(post(i), client.sender, i);
    const opened = unprotectRequest(decodeMessage(encodeMessage(message)), () => recipient);
    assert.ok(opened.ok, `request ${i}`);
    const response = protectResponse(
      { type: MessageType.ACK, code: ResponseCode.Changed, messageId: 0, token: message.token, options: [], payload: payloadOf(i + 1000, 1 + ((i * 7) % 70)) },
      server.sender,
      opened.binding,
    );
    kept.push({ payload: opened.message.payload, queryValue: opened.message.options[1]!.value, sent: response.payload, response: Buffer.from(response.payload), i, binding });
  }
  for (const { payload, queryValue, sent, response, i, binding } of kept) {
    assert.deepEqual(Buffer.from(payload), post(i).payload, `request ${i}'s payload`);
    assert.equal(Buffer.from(queryValue).toString(), `n=${i}`, `request ${i}'s Uri-Query`);
    assert.deepEqual(Buffer.from(sent), response, `response ${i}'s ciphertext`);
    const clear = unprotectResponse({ type: MessageType.ACK, code: ResponseCode.Changed, messageId: 0, token: Buffer.alloc(0), options: [{ number: OptionNumber.Oscore, value: new Uint8Array(0) }], payload: sent }, client.recipient(SERVER_ID)!.params, binding);
    assert.ok(clear.ok, `response ${i} opens`);
    assert.deepEqual(Buffer.from(clear.message.payload), payloadOf(i + 1000, 1 + ((i * 7) % 70)));
  }
});

class QueueTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  handler: DatagramHandler = () => {};
  readonly sent: Uint8Array[] = [];
  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }
  send(data: Uint8Array): void {
    this.sent.push(data);
  }
  localAddress(): PeerAddress {
    return SERVER;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

test('an OSCORE server: payloads a handler keeps and datagrams it sent are unchanged by the requests after them', async () => {
  const transport = new QueueTransport();
  const server = new CoapServer(new CoapEndpoint({ transport }), { security: new OscoreServerSecurity([serverContext()]) });
  const stored: Uint8Array[] = [];
  server.resource('/items', {
    POST: (request) => {
      stored.push(request.payload);
      // The answer echoes the payload reversed: its own bytes, from the request's.
      return { code: ResponseCode.Changed, payload: Buffer.from(request.payload).reverse() };
    },
  });
  const client = clientContext();
  const sentCopies: Buffer[] = [];
  const bindings: RequestBinding[] = [];
  try {
    for (let i = 0; i < 60; i++) {
      const { message, binding } = protectRequest(post(i), client.sender, i);
      bindings.push(binding);
      transport.handler(Buffer.from(encodeMessage(message)), CLIENT, undefined);
      assert.equal(transport.sent.length, i + 1, `request ${i} answered at once`);
      sentCopies.push(Buffer.from(transport.sent[i]!));
    }
    assert.equal(stored.length, 60);
    for (let i = 0; i < 60; i++) {
      assert.deepEqual(Buffer.from(stored[i]!), post(i).payload, `payload of request ${i} as the handler kept it`);
      assert.deepEqual(Buffer.from(transport.sent[i]!), sentCopies[i], `datagram ${i} as sent`);
      const opened = unprotectResponse(decodeMessage(Buffer.from(transport.sent[i]!)), client.recipient(SERVER_ID)!.params, bindings[i]!);
      assert.ok(opened.ok, `response ${i}`);
      assert.equal(opened.message.code, ResponseCode.Changed);
      assert.deepEqual(Buffer.from(opened.message.payload), Buffer.from(post(i).payload).reverse());
    }
  } finally {
    await server.close();
  }
});
