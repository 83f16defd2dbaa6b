/**
 * A request that sets no exchange or block-wise settings shares the client's default settings
 * objects (src/client/client.ts: requestOptionsOf, blockwiseOptions) and a plain response from
 * the same peer shares its context (src/exchange/endpoint.ts: responseContext). Whatever one
 * request sets of its own must stay with it: the Request-Tag of a concurrent Block1 operation
 * (RFC 9175 §3.4), a NON, an explicit token. Real UDP on 127.0.0.1, port 0.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { decodeMessage } from '../src/coap/codec.js';
import { ResponseCode } from '../src/coap/codes.js';
import { MessageType, getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapServer } from '../src/server/server.js';
import type { PeerAddress } from '../src/transport/transport.js';

/** A client whose sent datagrams are also recorded (decoded), and a server that echoes a body's length. */
async function setup(): Promise<{ client: CoapClient; server: CoapServer; uri: string; sent: CoapMessage[] }> {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  server.resource('/upload', { POST: (request) => ({ code: ResponseCode.Changed, payload: String(request.payload.length) }) });
  server.resource('/hello', { GET: () => ({ code: ResponseCode.Content, payload: 'hi' }) });
  const client = new CoapClient({ bindIpv4: '127.0.0.1' });
  const endpoint = await client.endpoint(4);
  const transport = endpoint.transport as { send(data: Uint8Array, peer: PeerAddress): void };
  const send = transport.send.bind(transport);
  const sent: CoapMessage[] = [];
  transport.send = (data, peer) => {
    sent.push(decodeMessage(data));
    send(data, peer);
  };
  return { client, server, uri: `coap://127.0.0.1:${server.address().port}`, sent };
}

const requestTagOf = (m: CoapMessage): string | undefined => {
  const tag = getOption(m, OptionNumber.RequestTag);
  return tag === undefined ? undefined : Buffer.from(tag).toString('hex');
};

test('a concurrent Block1 operation keeps its Request-Tag to itself: the first and a later one go without (RFC 9175 §3.4)', async () => {
  const { client, server, uri, sent } = await setup();
  try {
    const body = Buffer.alloc(2500, 0x61); // three 1024-byte blocks
    const [a, b] = await Promise.all([client.post(`${uri}/upload`, body), client.post(`${uri}/upload`, body)]);
    assert.equal(a.text(), '2500');
    assert.equal(b.text(), '2500');
    const blocks = sent.filter((m) => m.type === MessageType.CON && getOption(m, OptionNumber.Block1) !== undefined);
    const tags = new Set(blocks.map(requestTagOf));
    // One operation without a Request-Tag, the concurrent one with a tag of its own on every block.
    assert.equal(tags.size, 2, `tags seen: ${[...tags].join(', ')}`);
    assert.ok(tags.has(undefined));
    assert.equal(blocks.filter((m) => requestTagOf(m) === undefined).length, 3);
    sent.length = 0;
    const later = await client.post(`${uri}/upload`, body);
    assert.equal(later.text(), '2500');
    assert.deepEqual(
      sent.filter((m) => m.type === MessageType.CON).map(requestTagOf),
      [undefined, undefined, undefined],
      'a Block1 operation with none in flight goes without Request-Tag',
    );
  } finally {
    await client.close();
    await server.close();
  }
});

test('requests with settings of their own keep them between requests with none', async () => {
  const { client, server, uri, sent } = await setup();
  try {
    assert.equal((await client.get(`${uri}/hello`)).text(), 'hi');
    assert.equal((await client.get(`${uri}/hello`, { confirmable: false })).text(), 'hi');
    const token = Uint8Array.from([1, 2, 3]);
    assert.equal((await client.get(`${uri}/hello`, { token })).text(), 'hi');
    assert.equal((await client.get(`${uri}/hello`)).text(), 'hi');
    const requests = sent.filter((m) => m.code !== 0);
    assert.deepEqual(
      requests.map((m) => m.type),
      [MessageType.CON, MessageType.NON, MessageType.CON, MessageType.CON],
    );
    assert.deepEqual([...requests[2]!.token], [1, 2, 3]);
    assert.equal(requests[3]!.token.length, 8, 'a fresh token again after the request that chose one');
    assert.notDeepEqual([...requests[3]!.token], [1, 2, 3]);
  } finally {
    await client.close();
    await server.close();
  }
});

test('plain responses from one peer share their context, which says who answered', async () => {
  const { client, server, uri } = await setup();
  try {
    const first = await client.get(`${uri}/hello`);
    const second = await client.get(`${uri}/hello`);
    assert.equal(second.context, first.context);
    assert.equal(first.context.peerKey, `127.0.0.1:${server.address().port}`);
    assert.equal(first.context.scheme, 'coap');
    assert.equal(first.context.security, undefined);
  } finally {
    await client.close();
    await server.close();
  }
});
