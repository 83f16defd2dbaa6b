/**
 * Block-wise state per peer (issue 17 items 5 and 6): one peer's partial uploads and stored
 * representations are bounded by its own quota, so it cannot take the pools every client shares.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBlock, encodeBlock } from '../src/coap/block.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { getOption, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapServer, type ServerOptions } from '../src/server/server.js';
import { lockstep, msg, opt } from './support/lockstep.js';

const HOSTILE = { address: '198.51.100.66', port: 50000 };
const HONEST = { address: '192.0.2.10', port: 40000 };

function server(options: ServerOptions = {}) {
  const h = lockstep();
  const s = new CoapServer(h.endpoint, options);
  const bodies: string[] = [];
  s.resource('/up', { PUT: (req) => (bodies.push(req.text()), { code: ResponseCode.Changed }) });
  let version = 0;
  // Changes with every rendering: a later block rendered anew would not match the first one.
  s.resource('/changing', { GET: (req) => ({ code: ResponseCode.Content, payload: `${req.query.join('&')} v${++version} `.padEnd(3000, '.') }) });
  let mid = 1;
  const send = (peer: typeof HOSTILE, code: number, options: CoapOption[], payload: Uint8Array = new Uint8Array(0)) => {
    h.transport.deliver(msg({ code, messageId: mid++ & 0xffff, token: Uint8Array.of(mid & 0xff, (mid >> 8) & 0xff), options, payload }), peer);
    const replies = h.transport.take();
    assert.equal(replies.length, 1);
    return replies[0]!.message;
  };
  const block1 = (peer: typeof HOSTILE, tag: number, num: number, more: boolean, payload: Uint8Array) =>
    send(peer, Method.PUT, [opt(OptionNumber.UriPath, 'up'), opt(OptionNumber.Block1, encodeBlock({ num, more, szx: 0 })), opt(OptionNumber.RequestTag, Uint8Array.of(tag >> 8, tag & 0xff))], payload);
  return { h, server: s, bodies, send, block1 };
}

const sixteen = (c: string) => Buffer.alloc(16, c);

test('item 5: 1,024 partial uploads from one source port (≈37 KB) no longer lock every other client out', () => {
  const s = server();
  for (let tag = 0; tag < 1024; tag++) assert.equal(s.block1(HOSTILE, tag, 0, true, sixteen('x')).code, ResponseCode.Continue);
  assert.ok(s.server.blockwise.stats().reassemblies <= 8, `one peer holds ${s.server.blockwise.stats().reassemblies} operations`);
  assert.equal(s.block1(HONEST, 1, 0, true, sixteen('a')).code, ResponseCode.Continue, 'another client can still upload');
  assert.equal(s.block1(HONEST, 1, 1, false, Buffer.from('end')).code, ResponseCode.Changed);
  assert.deepEqual(s.bodies, ['a'.repeat(16) + 'end']);
});

test('item 5: past its count quota a peer loses its least recently active upload, and only its own', () => {
  const s = server({ blockwise: { maxOperationsPerPeer: 3 } });
  assert.equal(s.block1(HONEST, 9, 0, true, sixteen('h')).code, ResponseCode.Continue);
  for (const tag of [1, 2, 3]) s.block1(HOSTILE, tag, 0, true, sixteen('x'));
  s.block1(HOSTILE, 1, 1, true, sixteen('y')); // 1 is now the most recently active
  s.block1(HOSTILE, 4, 0, true, sixteen('x')); // evicts 2
  assert.equal(s.block1(HOSTILE, 2, 1, false, Buffer.from('!')).code, ResponseCode.RequestEntityIncomplete, 'the oldest one went');
  assert.equal(s.block1(HOSTILE, 1, 2, false, Buffer.from('!')).code, ResponseCode.Changed);
  assert.equal(s.block1(HOSTILE, 3, 1, false, Buffer.from('!')).code, ResponseCode.Changed);
  assert.equal(s.block1(HONEST, 9, 1, false, Buffer.from('!')).code, ResponseCode.Changed, "another peer's upload is untouched");
  assert.equal(s.server.blockwise.stats().reassemblies, 1);
});

test('item 5: hostile uploads from many source ports, each within its quota, fill the pool: a legitimate upload displaces the least recently active one', () => {
  const s = server({ blockwise: { maxOperations: 64, reassemblyBudget: 4096 } });
  for (let port = 0; port < 200; port++) s.block1({ ...HOSTILE, port: 50000 + port }, 1, 0, true, sixteen('x'));
  assert.equal(s.server.blockwise.stats().reassemblies, 64);
  assert.equal(s.block1(HONEST, 1, 0, true, sixteen('a')).code, ResponseCode.Continue);
  for (let port = 200; port < 230; port++) s.block1({ ...HOSTILE, port: 50000 + port }, 1, 0, true, sixteen('x'));
  assert.equal(s.block1(HONEST, 1, 1, true, sixteen('b')).code, ResponseCode.Continue, 'still there: 30 newer uploads displaced older hostile ones');
  // Bytes: a block that does not fit the pool makes room the same way.
  for (let n = 2; n < 256; n++) assert.equal(s.block1(HONEST, 1, n, true, sixteen('c')).code, ResponseCode.Continue);
  assert.ok(s.server.blockwise.stats().reassembledBytes <= 4096);
  assert.equal(s.block1(HONEST, 1, 256, false, Buffer.from('!')).code, ResponseCode.RequestEntityTooLarge, 'past the whole pool: 4.13');
});

test("item 5: past its byte quota a peer's other uploads make room; one upload alone past it gets 4.13", () => {
  const s = server({ blockwise: { peerReassemblyBudget: 64, maxBodySize: 1024 } });
  s.block1(HOSTILE, 1, 0, true, sixteen('a'));
  s.block1(HOSTILE, 1, 1, true, sixteen('a'));
  s.block1(HOSTILE, 2, 0, true, sixteen('b'));
  s.block1(HOSTILE, 2, 1, true, sixteen('b'));
  assert.equal(s.block1(HOSTILE, 2, 2, true, sixteen('b')).code, ResponseCode.Continue, 'upload 1 made room');
  assert.equal(s.block1(HOSTILE, 1, 2, false, Buffer.from('!')).code, ResponseCode.RequestEntityIncomplete);
  assert.equal(s.block1(HOSTILE, 2, 3, true, sixteen('b')).code, ResponseCode.Continue);
  assert.equal(s.block1(HOSTILE, 2, 4, true, sixteen('b')).code, ResponseCode.RequestEntityTooLarge);
  assert.deepEqual(s.server.blockwise.stats(), { reassemblies: 0, reassembledBytes: 0, representations: 0, representedBytes: 0, peers: 0 });
});

test('item 6: stored representations are bounded in bytes, in total and per peer', () => {
  const s = server({ blockwise: { representationBudget: 30_000, peerRepresentationBudget: 10_000 } });
  for (let i = 0; i < 50; i++) s.send(HOSTILE, Method.GET, [opt(OptionNumber.UriPath, 'changing'), opt(OptionNumber.UriQuery, `n=${i}`)]);
  assert.ok(s.server.blockwise.stats().representedBytes <= 10_000, `one peer: ${s.server.blockwise.stats().representedBytes} bytes`);
  for (let p = 1; p <= 5; p++) {
    for (let i = 0; i < 10; i++) s.send({ ...HOSTILE, port: HOSTILE.port + p }, Method.GET, [opt(OptionNumber.UriPath, 'changing'), opt(OptionNumber.UriQuery, `n=${i}`)]);
  }
  const stats = s.server.blockwise.stats();
  assert.ok(stats.representedBytes <= 30_000 && stats.representedBytes > 0, `all peers: ${stats.representedBytes} bytes`);
});

test("item 6: one peer's many representations do not evict another peer's (its later blocks stay consistent, RFC 7959 §2.4)", () => {
  const s = server();
  const first = s.send(HONEST, Method.GET, [opt(OptionNumber.UriPath, 'changing'), opt(OptionNumber.Block2, encodeBlock({ num: 0, more: false, szx: 6 }))]);
  const etag = getOption(first, OptionNumber.ETag)!;
  for (let i = 0; i < 300; i++) s.send(HOSTILE, Method.GET, [opt(OptionNumber.UriPath, 'changing'), opt(OptionNumber.UriQuery, `n=${i}`)]);
  const second = s.send(HONEST, Method.GET, [opt(OptionNumber.UriPath, 'changing'), opt(OptionNumber.Block2, encodeBlock({ num: 1, more: false, szx: 6 }))]);
  assert.equal(decodeBlock(getOption(second, OptionNumber.Block2)!).num, 1);
  assert.deepEqual(Buffer.from(getOption(second, OptionNumber.ETag)!), Buffer.from(etag), 'block 1 comes from the same representation as block 0');
});

test('a quota of one holds: the eviction that empties a peer\'s share does not let its next entries escape the count', () => {
  const s = server({ blockwise: { maxOperationsPerPeer: 1, maxRepresentationsPerPeer: 1 } });
  for (const tag of [1, 2, 3, 4]) assert.equal(s.block1(HOSTILE, tag, 0, true, sixteen('x')).code, ResponseCode.Continue);
  assert.equal(s.server.blockwise.stats().reassemblies, 1);
  assert.equal(s.block1(HOSTILE, 4, 1, false, Buffer.from('!')).code, ResponseCode.Changed);
  for (let i = 0; i < 4; i++) s.send(HOSTILE, Method.GET, [opt(OptionNumber.UriPath, 'changing'), opt(OptionNumber.UriQuery, `n=${i}`)]);
  assert.equal(s.server.blockwise.stats().representations, 1);
  assert.equal(s.server.blockwise.stats().peers, 1);
});
