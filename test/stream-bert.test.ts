/** RFC 8323 §6 BERT in lockstep over an in-memory stream: negotiation by CSM, SZX 7 Block2 and Block1 exchanges, and the limits. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BERT_SZX, decodeBlock, encodeBlock } from '../src/coap/block.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { createMessage, getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { BERT_UNIT, BertAssembler, BertError, bertPayloadLimit, nextBertNum, sliceBert } from '../src/stream/bert.js';
import { StreamConnection, type StreamSettings } from '../src/stream/connection.js';
import { FakeScheduler } from '../src/util/scheduler.js';

/** Client and server connections back to back; frames are delivered by `deliver`, sizes recorded. */
function pair(client: StreamSettings, server: StreamSettings) {
  const clock = new FakeScheduler();
  const toServer: Uint8Array[] = [];
  const toClient: Uint8Array[] = [];
  const clientReceived: CoapMessage[] = [];
  const serverReceived: CoapMessage[] = [];
  const frameSizes = { toServer: [] as number[], toClient: [] as number[] };
  const c = new StreamConnection('length', { write: (f) => (toServer.push(f), frameSizes.toServer.push(f.length)), end() {} }, { onMessage: (m) => clientReceived.push(m), onClosed() {} }, clock, client);
  const s = new StreamConnection('length', { write: (f) => (toClient.push(f), frameSizes.toClient.push(f.length)), end() {} }, { onMessage: (m) => serverReceived.push(m), onClosed() {} }, clock, server);
  const deliver = (): void => {
    for (let i = 0; i < 10 && (toServer.length || toClient.length); i++) {
      for (const f of toServer.splice(0)) s.receiveBytes(f);
      for (const f of toClient.splice(0)) c.receiveBytes(f);
    }
  };
  c.start();
  s.start();
  deliver();
  return { c, s, deliver, clientReceived, serverReceived, frameSizes };
}

const BODY = Buffer.from(Array.from({ length: 12903 }, (_, i) => (i * 7) % 251)); // §6.1: 3072 + 5120 + 4711 bytes

test('§5.3.2 BERT needs Block-Wise-Transfer and a Max-Message-Size above 1152 on both sides', () => {
  assert.equal(pair({ maxMessageSize: 6000 }, { maxMessageSize: 6000 }).c.bertAllowed, true);
  assert.equal(pair({ maxMessageSize: 6000 }, { maxMessageSize: 6000, blockWiseTransfer: false }).c.bertAllowed, false);
  assert.equal(pair({ maxMessageSize: 6000 }, { maxMessageSize: 1152 }).c.bertAllowed, false);
});

test('§6 SZX 7 is a BERT option only where BERT was negotiated; elsewhere (UDP) it stays reserved', () => {
  const bert = encodeBlock({ num: 3, more: true, szx: BERT_SZX }, { bert: true });
  assert.deepEqual(decodeBlock(bert, { bert: true }), { num: 3, more: true, szx: 7 });
  assert.throws(() => decodeBlock(bert), /reserved/);
  assert.throws(() => encodeBlock({ num: 3, more: true, szx: BERT_SZX }), RangeError);
});

test('§6.1 GET with BERT Block2: the body comes in multi-KiB BERT blocks, each within the peer Max-Message-Size', () => {
  const p = pair({ maxMessageSize: 6000 }, { maxMessageSize: 6000 });
  assert.equal(p.s.bertAllowed, true);
  const token = Uint8Array.of(0xb1);
  const assembler = new BertAssembler(1 << 20);
  let num = 0;
  let body: Uint8Array | undefined;
  for (let round = 0; round < 10 && body === undefined; round++) {
    // Client: a GET with a BERT Block2 option in control use (§6: "as SZX 6, plus the BERT capability").
    p.c.send(createMessage({ code: Method.GET, token, options: [{ number: OptionNumber.Block2, value: encodeBlock({ num, more: false, szx: BERT_SZX }, { bert: true }) }] }));
    p.deliver();
    // Server: the request's Block2 read with BERT allowed on this connection; the block as large as the client takes.
    const request = p.serverReceived.shift()!;
    const wanted = decodeBlock(getOption(request, OptionNumber.Block2)!, { bert: p.s.bertAllowed });
    const { block, payload } = sliceBert(BODY, wanted.num, bertPayloadLimit(p.s.peerMaxMessage));
    p.s.send(createMessage({ code: ResponseCode.Content, token, options: [{ number: OptionNumber.Block2, value: encodeBlock(block, { bert: true }) }], payload }));
    p.deliver();
    const response = p.clientReceived.shift()!;
    const got = decodeBlock(getOption(response, OptionNumber.Block2)!, { bert: p.c.bertAllowed });
    body = assembler.add(got, response.payload);
    num = nextBertNum(got, response.payload.length);
  }
  assert.ok(body && Buffer.from(body).equals(BODY), 'the body reassembles');
  assert.equal(p.frameSizes.toClient.filter((n) => n > 1152).length, 3, 'three BERT responses, each beyond a plain block');
  assert.ok(p.frameSizes.toClient.every((n) => n <= 6000), 'none beyond the client Max-Message-Size');
});

test('§6.2 PUT with BERT Block1: the server reassembles by 1024-byte units and the NUMs advance by units', () => {
  const p = pair({ maxMessageSize: 4000 }, { maxMessageSize: 9000 });
  const token = Uint8Array.of(0xb2);
  const limit = bertPayloadLimit(p.c.peerMaxMessage); // 8192 bytes per BERT block to this server
  const assembler = new BertAssembler(1 << 20);
  const nums: number[] = [];
  let num = 0;
  let stored: Uint8Array | undefined;
  for (let round = 0; round < 10 && stored === undefined; round++) {
    const { block, payload } = sliceBert(BODY, num, limit);
    nums.push(block.num);
    p.c.send(createMessage({ code: Method.PUT, token, options: [{ number: OptionNumber.Block1, value: encodeBlock(block, { bert: true }) }], payload }));
    p.deliver();
    const request = p.serverReceived.shift()!;
    stored = assembler.add(decodeBlock(getOption(request, OptionNumber.Block1)!, { bert: true }), request.payload);
    num = nextBertNum(block, payload.length);
  }
  assert.deepEqual(nums, [0, 8], '8192 bytes, then the rest from unit 8');
  assert.ok(stored && Buffer.from(stored).equals(BODY));
});

test('§6: a non-final BERT block must carry whole 1024-byte units, in order, within the body limit', () => {
  const assembler = new BertAssembler(4096);
  assert.throws(() => assembler.add({ num: 0, more: true, szx: 7 }, new Uint8Array(1500)), BertError);
  assert.throws(() => assembler.add({ num: 1, more: true, szx: 7 }, new Uint8Array(BERT_UNIT)), /out of order/);
  assembler.add({ num: 0, more: true, szx: 7 }, new Uint8Array(2 * BERT_UNIT));
  assert.throws(() => assembler.add({ num: 2, more: false, szx: 7 }, new Uint8Array(3000)), /larger than 4096/);
  assert.equal(assembler.add({ num: 2, more: false, szx: 7 }, new Uint8Array(10))!.length, 2 * BERT_UNIT + 10);
});
