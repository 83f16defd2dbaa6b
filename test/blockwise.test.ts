/** RFC 7959 block-wise transfers (and RFC 9175 Request-Tag), lockstep and over a lossy fake network. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBlock, encodeBlock, formatBlock, szxForSize } from '../src/coap/block.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, encodeUint, getOption, getUintOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { blockwiseRequest } from '../src/client/blockwise.js';
import { CoapServer } from '../src/server/server.js';
import { lockstep, msg, opt } from './support/lockstep.js';
import { FakeNetwork } from './support/network.js';

const SERVER = { address: '10.0.0.1', port: 5683 };
const CLIENT = { address: '10.0.0.2', port: 40000 };

const body = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => 65 + (i % 26)));
const request = (code: number, path: string, payload: Uint8Array = EMPTY_BYTES): CoapMessage => ({
  type: MessageType.CON,
  code,
  messageId: 0,
  token: EMPTY_BYTES,
  options: [{ number: OptionNumber.UriPath, value: encodeString(path) }],
  payload,
});
const blockOf = (m: CoapMessage, n: number) => {
  const v = getOption(m, n);
  return v === undefined ? undefined : formatBlock(decodeBlock(v));
};

test('Block option values (RFC 7959 §2.2)', () => {
  assert.deepEqual([...encodeBlock({ num: 0, more: false, szx: 0 })], []);
  assert.deepEqual([...encodeBlock({ num: 1, more: true, szx: 2 })], [0x1a]);
  assert.deepEqual([...encodeBlock({ num: 16, more: false, szx: 6 })], [0x01, 0x06]);
  assert.deepEqual(decodeBlock(Uint8Array.of(0x0f, 0xfe)), { num: 0xff, more: true, szx: 6 });
  assert.throws(() => decodeBlock(Uint8Array.of(0x07)), /reserved/);
  assert.throws(() => szxForSize(2048), /power of two/);
  assert.equal(szxForSize(64), 2);
});

function networkPair(serverOptions: ConstructorParameters<typeof CoapServer>[1] = {}) {
  const net = new FakeNetwork();
  const server = new CoapServer(net.endpoint(SERVER, {}, 1), serverOptions);
  const client = net.endpoint(CLIENT, {}, 2);
  const send = (m: CoapMessage) => client.request(m, SERVER);
  return { net, server, client, send };
}

test('Block2: the server slices, the client reassembles with early size negotiation and Size2', async () => {
  const { net, server, send } = networkPair();
  const representation = body(3000);
  server.resource('/big', { GET: () => ({ code: ResponseCode.Content, contentFormat: 0, payload: representation }) });
  const progress: Array<[number, number | undefined]> = [];
  const response = await net.until(blockwiseRequest(send, request(Method.GET, 'big'), { szx: 2, maxBodySize: 1 << 20, maxRestarts: 3, onProgress: (b, t) => progress.push([b, t]) }));
  assert.ok(Buffer.from(response.message.payload).equals(representation));
  assert.equal(getOption(response.message, OptionNumber.Block2), undefined, 'the assembled response carries no Block2');
  const requests = net.log.filter((d) => d.to === SERVER || (d.to.address === SERVER.address && d.message.code === Method.GET));
  assert.equal(requests.length, Math.ceil(3000 / 64));
  assert.equal(blockOf(requests[0]!.message, OptionNumber.Block2), '0/0/64', 'early negotiation in the first request');
  const first = net.log.find((d) => d.from.address === SERVER.address)!.message;
  assert.equal(getUintOption(first, OptionNumber.Size2), 3000);
  assert.ok(getOption(first, OptionNumber.ETag), 'sliced responses carry an ETag');
  assert.deepEqual(progress.at(-1), [3000, 3000]);
});

test('Block1 with a lost block: the CON retransmission recovers it and the body arrives intact', async () => {
  const { net, server, send } = networkPair();
  const upload = body(20 * 1024);
  const received: Buffer[] = [];
  server.resource('/upload', {
    PUT: (req) => {
      received.push(req.payload);
      return { code: ResponseCode.Changed };
    },
  });
  let lost = false;
  net.drop = (d) => {
    const b = getOption(d.message, OptionNumber.Block1);
    if (!lost && d.message.code === Method.PUT && b && decodeBlock(b).num === 5) return (lost = true);
    return false;
  };
  const response = await net.until(blockwiseRequest(send, request(Method.PUT, 'upload', upload), { szx: 6, maxBodySize: 1 << 20, maxRestarts: 3 }));
  assert.equal(response.message.code, ResponseCode.Changed);
  assert.equal(blockOf(response.message, OptionNumber.Block1), '19/0/1024', 'the final response acknowledges the last block');
  assert.equal(received.length, 1, 'the handler runs once, on the whole body');
  assert.ok(received[0]!.equals(upload));
  const block5 = net.log.filter((d) => d.message.code === Method.PUT && blockOf(d.message, OptionNumber.Block1)?.startsWith('5/'));
  assert.equal(block5.length, 2, 'block 5 was sent twice: lost once, retransmitted');
  assert.equal(getUintOption(net.log[0]!.message, OptionNumber.Size1), upload.length, 'Size1 announces the body');
  const continues = net.log.filter((d) => d.message.code === ResponseCode.Continue);
  assert.equal(continues.length, 19, '2.31 Continue for every non-final block');
});

test('Block1: the client adopts the smaller block size the server prefers (§2.5)', async () => {
  const { net, server, send } = networkPair({ blockwise: { preferredSzx: 4 } });
  const upload = body(3000);
  let got: Buffer | undefined;
  server.resource('/up', { POST: (req) => ((got = req.payload), { code: ResponseCode.Changed }) });
  await net.until(blockwiseRequest(send, request(Method.POST, 'up', upload), { szx: 6, maxBodySize: 1 << 20, maxRestarts: 3 }));
  assert.ok(got!.equals(upload));
  const blocks = net.log.filter((d) => d.message.code === Method.POST).map((d) => blockOf(d.message, OptionNumber.Block1));
  assert.deepEqual(blocks, ['0/1/1024', '4/1/256', '5/1/256', '6/1/256', '7/1/256', '8/1/256', '9/1/256', '10/1/256', '11/0/256']);
});

test('Block1 + Block2: a large POST answered by a large response (§2.7)', async () => {
  const { net, server, send } = networkPair();
  server.resource('/echo', { POST: (req) => ({ code: ResponseCode.Changed, payload: Buffer.concat([req.payload, req.payload]) }) });
  const upload = body(1500);
  const response = await net.until(blockwiseRequest(send, request(Method.POST, 'echo', upload), { szx: 5, maxBodySize: 1 << 20, maxRestarts: 3 }));
  assert.ok(Buffer.from(response.message.payload).equals(Buffer.concat([upload, upload])));
  const follow = net.log.filter((d) => d.message.code === Method.POST && getOption(d.message, OptionNumber.Block2) && !getOption(d.message, OptionNumber.Block1));
  assert.ok(follow.length >= 5);
  assert.ok(follow.every((d) => d.message.payload.length === 0), 'Block2 follow-ups carry no body');
});

function rawServer(options: ConstructorParameters<typeof CoapServer>[1] = {}) {
  const h = lockstep();
  const server = new CoapServer(h.endpoint, options);
  const bodies: Buffer[] = [];
  server.resource('/r', { PUT: (req) => (bodies.push(req.payload), { code: ResponseCode.Changed }) });
  let mid = 1;
  const block = (num: number, more: boolean, szx: number, payload: Buffer, extra: ReturnType<typeof opt>[] = []) => {
    h.transport.deliver(msg({ code: Method.PUT, messageId: mid++, token: Buffer.from([mid & 0xff]), options: [opt(OptionNumber.UriPath, 'r'), ...extra, opt(OptionNumber.Block1, encodeBlock({ num, more, szx }))], payload }));
    const [reply] = h.transport.take();
    return reply!.message;
  };
  return { ...h, server, bodies, block };
}

test('4.08 Request Entity Incomplete: a gap, a missing start, a changed Content-Format (§2.5, §2.3)', () => {
  const s = rawServer();
  assert.equal(s.block(0, true, 0, body(16)).code, ResponseCode.Continue);
  const gap = s.block(2, true, 0, body(16));
  assert.equal(gap.code, ResponseCode.RequestEntityIncomplete);
  assert.equal(s.block(1, true, 0, body(16)).code, ResponseCode.Continue, 'the operation is still there after the rejected gap');

  const fresh = rawServer();
  assert.equal(fresh.block(3, false, 0, body(5)).code, ResponseCode.RequestEntityIncomplete, 'no block 0 before');

  const cf = rawServer();
  cf.block(0, true, 0, body(16), [opt(OptionNumber.ContentFormat, encodeUint(0))]);
  assert.equal(cf.block(1, false, 0, body(4), [opt(OptionNumber.ContentFormat, encodeUint(50))]).code, ResponseCode.RequestEntityIncomplete);
  assert.equal(cf.bodies.length, 0);
});

test('4.13 Request Entity Too Large with Size1: announced too large, or grown too large (§2.9.3)', () => {
  const s = rawServer({ blockwise: { maxBodySize: 40 } });
  const announced = s.block(0, true, 0, body(16), [opt(OptionNumber.Size1, encodeUint(100))]);
  assert.equal(announced.code, ResponseCode.RequestEntityTooLarge);
  assert.equal(getUintOption(announced, OptionNumber.Size1), 40);
  assert.equal(s.block(0, true, 0, body(16)).code, ResponseCode.Continue);
  assert.equal(s.block(1, true, 0, body(16)).code, ResponseCode.Continue);
  const grown = s.block(2, true, 0, body(16));
  assert.equal(grown.code, ResponseCode.RequestEntityTooLarge);
  assert.equal(getUintOption(grown, OptionNumber.Size1), 40);
  assert.equal(s.server.blockwise.stats().reassemblies, 0, 'the partial body is released');
});

test('a non-final block whose payload does not match its size → 4.00', () => {
  const s = rawServer();
  assert.equal(s.block(0, true, 1, body(20)).code, ResponseCode.BadRequest);
});

test('Request-Tag keeps two concurrent Block1 operations of one endpoint apart (RFC 9175 §3.3)', () => {
  const s = rawServer();
  const tagA = [opt(OptionNumber.RequestTag, Buffer.from([0xa]))];
  const tagB = [opt(OptionNumber.RequestTag, Buffer.from([0xb]))];
  s.block(0, true, 0, Buffer.alloc(16, 0x61), tagA);
  s.block(0, true, 0, Buffer.alloc(16, 0x62), tagB);
  assert.equal(s.block(1, false, 0, Buffer.from('A'), tagA).code, ResponseCode.Changed);
  assert.equal(s.block(1, false, 0, Buffer.from('B'), tagB).code, ResponseCode.Changed);
  assert.deepEqual(s.bodies.map((b) => b.toString()), ['a'.repeat(16) + 'A', 'b'.repeat(16) + 'B']);
});

test('reassembly state expires after its lifetime and is bounded in number: when full, the least recently active upload goes', () => {
  const s = rawServer({ blockwise: { lifetime: 10_000, maxOperations: 2 } });
  s.block(0, true, 0, body(16));
  s.clock.advance(10_001);
  assert.equal(s.block(1, false, 0, body(3)).code, ResponseCode.RequestEntityIncomplete);
  assert.equal(s.server.blockwise.stats().reassemblies, 0);
  const tag = (n: number) => [opt(OptionNumber.RequestTag, Buffer.from([n]))];
  s.block(0, true, 0, body(16), tag(1));
  s.block(0, true, 0, body(16), tag(2));
  assert.equal(s.block(1, true, 0, body(16), tag(1)).code, ResponseCode.Continue, 'upload 1 is active again');
  const third = s.block(0, true, 0, body(16), tag(3));
  assert.equal(third.code, ResponseCode.Continue, 'a new upload displaces the least recently active one (2), no 5.03');
  assert.equal(s.server.blockwise.stats().reassemblies, 2);
  assert.equal(s.block(1, false, 0, body(3), tag(2)).code, ResponseCode.RequestEntityIncomplete);
  assert.equal(s.block(2, false, 0, body(3), tag(1)).code, ResponseCode.Changed);
});

test('SZX 7 in a request → 4.00; a Block2 number beyond the end → 4.02', () => {
  const h = lockstep();
  const server = new CoapServer(h.endpoint);
  server.resource('/big', { GET: () => ({ code: ResponseCode.Content, payload: body(100) }) });
  h.transport.deliver(msg({ code: Method.GET, messageId: 1, options: [opt(OptionNumber.UriPath, 'big'), opt(OptionNumber.Block2, Uint8Array.of(0x07))] }));
  assert.equal(h.transport.take()[0]!.message.code, ResponseCode.BadRequest);
  h.transport.deliver(msg({ code: Method.GET, messageId: 2, options: [opt(OptionNumber.UriPath, 'big'), opt(OptionNumber.Block2, encodeBlock({ num: 9, more: false, szx: 0 }))] }));
  assert.equal(h.transport.take()[0]!.message.code, ResponseCode.BadOption);
});

test('Block2 with an ETag change mid-transfer: the client starts over and assembles the new version', async () => {
  const h = lockstep();
  const versions = [body(40), Buffer.alloc(40, 0x7a)];
  let served = 0;
  // A scripted server: the first transfer changes representation after block 0.
  const answer = (request: CoapMessage) => {
    const b = decodeBlock(getOption(request, OptionNumber.Block2) ?? new Uint8Array(0));
    const version = served++ === 0 ? 0 : 1;
    const data = versions[version]!.subarray(b.num * 16, b.num * 16 + 16);
    h.transport.deliver(msg({
      type: MessageType.ACK, code: ResponseCode.Content, messageId: request.messageId, token: request.token,
      options: [opt(OptionNumber.ETag, Buffer.from([version])), opt(OptionNumber.Block2, encodeBlock({ num: b.num, more: b.num < 2, szx: 0 }))],
      payload: data,
    }));
  };
  const result = blockwiseRequest((m) => h.endpoint.request(m, { address: '192.0.2.1', port: 61616 }), request(Method.GET, 'x'), { szx: 0, maxBodySize: 1000, maxRestarts: 3 });
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setImmediate(r));
    for (const s of h.transport.take()) answer(s.message);
  }
  const response = await result;
  assert.ok(Buffer.from(response.message.payload).equals(versions[1]!));
  assert.equal(served, 5, 'block 0 (v0), block 1 (v1: mismatch), then blocks 0–2 of v1');
});

test('a 4.13 with a smaller Block1 size makes the client start over with that size (§2.9.3)', async () => {
  const h = lockstep();
  const sizes: string[] = [];
  const answer = (request: CoapMessage) => {
    const b = decodeBlock(getOption(request, OptionNumber.Block1)!);
    sizes.push(formatBlock(b));
    const tooBig = b.szx > 1;
    h.transport.deliver(msg({
      type: MessageType.ACK, code: tooBig ? ResponseCode.RequestEntityTooLarge : b.more ? ResponseCode.Continue : ResponseCode.Changed,
      messageId: request.messageId, token: request.token,
      options: [opt(OptionNumber.Block1, encodeBlock({ num: b.num, more: b.more, szx: Math.min(b.szx, 1) }))],
    }));
  };
  const result = blockwiseRequest((m) => h.endpoint.request(m, { address: '192.0.2.1', port: 61616 }), request(Method.PUT, 'x', body(70)), { szx: 2, maxBodySize: 1000, maxRestarts: 3 });
  for (let i = 0; i < 12; i++) {
    await new Promise((r) => setImmediate(r));
    for (const s of h.transport.take()) answer(s.message);
  }
  assert.equal((await result).message.code, ResponseCode.Changed);
  assert.deepEqual(sizes, ['0/1/64', '0/1/32', '1/1/32', '2/0/32']);
});

test('the server serves later blocks from the representation of block 0, so a changing resource stays consistent', async () => {
  const { net, server, send } = networkPair();
  let counter = 0;
  server.resource('/changing', { GET: () => ({ code: ResponseCode.Content, payload: `${++counter}`.padEnd(100, '.') }) });
  const response = await net.until(blockwiseRequest(send, request(Method.GET, 'changing'), { szx: 0, maxBodySize: 1000, maxRestarts: 0 }));
  assert.equal(decodeString(response.message.payload), '1'.padEnd(100, '.'));
  assert.equal(counter, 1, 'the handler ran once for the whole transfer');
});
