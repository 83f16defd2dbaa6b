/**
 * BERT in the block-wise code (RFC 8323 §6): over coap+tcp, where both CSMs offer Block-Wise-Transfer
 * and room for more than 1152 bytes (§5.3.2), the client and the server move large bodies in BERT
 * blocks (SZX 7, several 1024-byte units each, within the peer's Max-Message-Size) — far fewer
 * messages than 1024-byte blocks; over UDP SZX 7 stays reserved and the server answers it 4.00.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blockwiseRequest } from '../src/client/blockwise.js';
import { CoapClient } from '../src/client/client.js';
import { BERT_SZX, decodeBlock, encodeBlock } from '../src/coap/block.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { createMessage, encodeString, getOption, MessageType, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import type { RequestLogEntry } from '../src/server/request-log.js';
import { CoapServer } from '../src/server/server.js';
import { encodeFrame } from '../src/stream/frame.js';
import { FakeScheduler } from '../src/util/scheduler.js';
import { PEER, lockstep, msg, opt } from './support/lockstep.js';
import { MemoryNet, MemoryTransport } from './support/memory-stream.js';

const BODY = Buffer.alloc(64 * 1024).map((_, i) => (i * 7 + (i >> 10)) & 0xff);
const block2Of = (m: CoapMessage) => {
  const value = getOption(m, OptionNumber.Block2);
  return value === undefined ? undefined : decodeBlock(value, { bert: true });
};
const block1Of = (m: CoapMessage) => {
  const value = getOption(m, OptionNumber.Block1);
  return value === undefined ? undefined : decodeBlock(value, { bert: true });
};

async function tcpServer() {
  const log: RequestLogEntry[] = [];
  let stored: Buffer = Buffer.alloc(0);
  const server = await CoapServer.listen({ scheme: 'coap+tcp', host: '127.0.0.1', port: 0, onRequestLog: (entry) => log.push(entry) });
  server.resource('big', { GET: () => ({ code: ResponseCode.Content, payload: BODY }) });
  server.resource('store', {
    GET: () => ({ code: ResponseCode.Content, payload: stored }),
    PUT: (request) => {
      stored = Buffer.from(request.payload);
      return { code: ResponseCode.Changed };
    },
  });
  return { server, log, base: `coap+tcp://127.0.0.1:${server.address().port}`, stored: () => stored };
}

test('coap+tcp: a 64 KiB GET comes in BERT blocks, in fewer messages than 1024-byte blocks', async () => {
  const s = await tcpServer();
  const client = new CoapClient();
  try {
    const bert = await client.get(`${s.base}/big`);
    assert.deepEqual(bert.payload, BODY);
    const bertExchanges = s.log.splice(0);
    const plain = await client.get(`${s.base}/big`, { blockSize: 1024 });
    assert.deepEqual(plain.payload, BODY);
    const plainExchanges = s.log.splice(0);
    assert.equal(plainExchanges.length, 64, '1024-byte blocks: one exchange per KiB');
    assert.ok(bertExchanges.length <= 8, `BERT: at most 8 exchanges for 64 KiB, saw ${bertExchanges.length}`);
    for (const { response } of bertExchanges) {
      const block = block2Of(response)!;
      assert.equal(block.szx, BERT_SZX, 'every response carries a BERT Block2');
      if (block.more) assert.equal(response.payload.length % 1024, 0, 'a non-final BERT block is whole 1024-byte units');
      assert.ok(response.payload.length > 1024 || !block.more, 'several units per block');
    }
  } finally {
    await client.close();
    await s.server.close();
  }
});

test('coap+tcp: a 64 KiB PUT goes in BERT Block1 blocks, in fewer messages than 1024-byte blocks', async () => {
  const s = await tcpServer();
  const client = new CoapClient();
  try {
    await client.get(`${s.base}/store`); // the connection and both CSMs are in place
    s.log.length = 0;
    const put = await client.put(`${s.base}/store`, BODY);
    assert.equal(put.status, '2.04 Changed');
    assert.deepEqual(s.stored(), BODY);
    const bertExchanges = s.log.splice(0);
    await client.put(`${s.base}/store`, BODY, { blockSize: 1024 });
    const plainExchanges = s.log.splice(0);
    assert.equal(plainExchanges.length, 64);
    assert.ok(bertExchanges.length <= 8, `BERT: at most 8 exchanges, saw ${bertExchanges.length}`);
    let units = 0;
    for (const { request, response } of bertExchanges) {
      const block = block1Of(request)!;
      assert.equal(block.szx, BERT_SZX);
      assert.equal(block.num, units, 'NUM advances by the 1024-byte units carried (§6.2, Figure 14)');
      units += Math.ceil(request.payload.length / 1024);
      assert.equal(block1Of(response)!.szx, BERT_SZX, 'the server acknowledges with a BERT Block1');
    }
    assert.deepEqual(s.stored(), BODY);
  } finally {
    await client.close();
    await s.server.close();
  }
});

test('in-memory stream: every BERT frame stays within the peer Max-Message-Size (§5.3.1), and the client asks for BERT in later blocks', async () => {
  const net = new MemoryNet();
  const clock = new FakeScheduler();
  const SERVER = { address: '10.0.0.1', port: 5683 };
  const serverEndpoint = new CoapEndpoint({ transport: new MemoryTransport(SERVER, net), scheduler: clock });
  // The client takes at most 5248 bytes a message: the server's BERT blocks must fit.
  const client = new CoapEndpoint({ transport: new MemoryTransport({ address: '10.0.0.2', port: 40000 }, net), scheduler: clock, stream: { settings: { maxMessageSize: 4096 + 1152 } } });
  const server = new CoapServer(serverEndpoint);
  server.resource('big', { GET: () => ({ code: ResponseCode.Content, payload: BODY.subarray(0, 20_000) }) });
  const pump = setInterval(() => net.deliver(), 1);
  try {
    // The first request names 1024-byte blocks itself: the later ones ask for BERT in their place.
    const template = createMessage({
      code: Method.GET,
      options: [
        { number: OptionNumber.UriPath, value: encodeString('big') },
        { number: OptionNumber.Block2, value: encodeBlock({ num: 0, more: false, szx: 6 }) },
      ],
    });
    const send = (m: CoapMessage) => client.request(m, SERVER);
    const whole = await blockwiseRequest(send, template, { maxBodySize: 1 << 20, maxRestarts: 0, bert: async () => client.bertPayloadLimit(SERVER) });
    assert.deepEqual(Buffer.from(whole.message.payload), BODY.subarray(0, 20_000));
    const frames = net.links[1]!.wrote.filter((m) => m.code === ResponseCode.Content);
    const sizes = frames.map((m) => block2Of(m)!);
    assert.equal(sizes[0]!.szx, 6, 'the first block is the 1024 bytes asked for');
    assert.ok(sizes.slice(1).every((b) => b.szx === BERT_SZX), 'asked for BERT, the later blocks are BERT');
    for (const m of frames) assert.ok(encodeFrame(m, 'length').length <= 4096 + 1152, `a frame of ${m.payload.length} bytes fits the client's limit`);
    assert.equal(frames[1]!.payload.length, 5120, 'as many whole units as fit');
    const requests = net.links[0]!.wrote.filter((m) => m.code === Method.GET).slice(1);
    assert.ok(requests.every((m) => block2Of(m)!.szx === BERT_SZX), 'the client asked with a BERT Block2 (control usage)');
  } finally {
    clearInterval(pump);
  }
});

test('UDP: SZX 7 stays reserved — a request carrying it gets 4.00 (RFC 7959 §2.2)', () => {
  const h = lockstep();
  const server = new CoapServer(h.endpoint);
  server.resource('big', { GET: () => ({ code: ResponseCode.Content, payload: BODY }) });
  for (const option of [OptionNumber.Block2, OptionNumber.Block1]) {
    h.transport.deliver(msg({ type: MessageType.CON, code: Method.GET, messageId: 0x100 + option, token: Uint8Array.of(1), options: [opt(OptionNumber.UriPath, 'big'), opt(option, encodeBlock({ num: 1, more: false, szx: BERT_SZX }, { bert: true }))] }), PEER);
    const [reply] = h.transport.take();
    assert.equal(reply!.message.code, ResponseCode.BadRequest, `SZX 7 in option ${option}`);
  }
  // And an ordinary large response over UDP never carries SZX 7.
  h.transport.deliver(msg({ type: MessageType.CON, code: Method.GET, messageId: 0x300, token: Uint8Array.of(2), options: [opt(OptionNumber.UriPath, 'big')] }), PEER);
  const [reply] = h.transport.take();
  assert.equal(block2Of(reply!.message)!.szx, 6);
});
