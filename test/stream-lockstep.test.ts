/** RFC 8323 lockstep tests: framing, CSM, Ping/Pong, Release, Abort over an in-memory stream with a fake clock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { createMessage, decodeString, decodeUint, encodeString, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { FrameDecoder, decodeWebSocketFrame, encodeFrame } from '../src/stream/frame.js';
import { MessageTooLargeError, StreamConnection, type StreamSettings } from '../src/stream/connection.js';
import { CsmOption, SignalCode, csmMessage, pingMessage, releaseMessage } from '../src/stream/signals.js';
import { FakeScheduler } from '../src/util/scheduler.js';

const decodeAll = (bytes: Uint8Array, max = 1 << 20): CoapMessage[] => new FrameDecoder(max).push(bytes);

// --- framing (§3.2, §4.2) --------------------------------------------------------------------

/** A message whose options+payload part is exactly `bodyLength` bytes: no options, marker + payload. */
function messageWithBody(bodyLength: number): CoapMessage {
  return createMessage({ code: ResponseCode.Content, token: Uint8Array.of(0x7f), payload: new Uint8Array(bodyLength === 0 ? 0 : bodyLength - 1).fill(0x61) });
}

test('§3.2 Figure 5: 2.03 with token 7f and nothing else is 01 43 7f', () => {
  const frame = encodeFrame(createMessage({ code: ResponseCode.Valid, token: Uint8Array.of(0x7f) }), 'length');
  assert.deepEqual([...frame], [0x01, 0x43, 0x7f]);
});

test('§3.2 every length class and its boundaries round-trip: Len 0–12, 13 (+13), 14 (+269), 15 (+65805)', () => {
  const cases: Array<[number, number, number]> = [
    // body length, Len nibble, extended-length bytes
    [0, 0, 0], [2, 2, 0], [12, 12, 0],
    [13, 13, 1], [268, 13, 1],
    [269, 14, 2], [65804, 14, 2],
    [65805, 15, 4], [70000, 15, 4],
  ];
  for (const [bodyLength, nibble, extended] of cases) {
    const message = messageWithBody(bodyLength);
    const frame = encodeFrame(message, 'length');
    assert.equal(frame[0]! >> 4, nibble, `Len nibble for a ${bodyLength}-byte body`);
    assert.equal(frame[0]! & 0x0f, 1, 'TKL');
    assert.equal(frame.length, 1 + extended + 1 + 1 + bodyLength, `frame size for ${bodyLength}`);
    if (extended === 1) assert.equal(frame[1], bodyLength - 13);
    if (extended === 2) assert.equal(frame.readUInt16BE(1), bodyLength - 269);
    if (extended === 4) assert.equal(frame.readUInt32BE(1), bodyLength - 65805);
    const [decoded] = decodeAll(frame);
    assert.equal(decoded!.code, ResponseCode.Content);
    assert.deepEqual([...decoded!.token], [0x7f]);
    assert.equal(decoded!.payload.length, Math.max(0, bodyLength - 1));
  }
});

test('§3.2 frames split at every byte and glued together decode to the same messages', () => {
  const a = createMessage({ code: Method.GET, token: Uint8Array.of(1, 2), options: [{ number: OptionNumber.UriPath, value: encodeString('temperature') }] });
  const b = messageWithBody(300);
  const bytes = Buffer.concat([encodeFrame(a, 'length'), encodeFrame(b, 'length')]);
  for (let cut = 1; cut < bytes.length; cut += 7) {
    const decoder = new FrameDecoder(4096);
    const out = [...decoder.push(bytes.subarray(0, cut)), ...decoder.push(bytes.subarray(cut))];
    assert.equal(out.length, 2, `cut at ${cut}`);
    assert.equal(decodeString(out[0]!.options[0]!.value), 'temperature');
    assert.equal(out[1]!.payload.length, 299);
    assert.equal(decoder.pending, 0);
  }
});

test('§4.2 WebSocket framing: Len is 0 whatever the size, and a non-zero Len is a format error', () => {
  const frame = encodeFrame(messageWithBody(500), 'websocket');
  assert.equal(frame[0]! >> 4, 0);
  assert.equal(frame.length, 1 + 1 + 1 + 500);
  assert.equal(decodeWebSocketFrame(frame).payload.length, 499);
  const bad = Buffer.from(frame);
  bad[0] = (bad[0]! & 0x0f) | 0x20;
  assert.throws(() => decodeWebSocketFrame(bad), /Len is not 0/);
});

test('§3.2: a frame announcing more than our Max-Message-Size is refused before it is buffered', () => {
  const header = Buffer.from([0xf0, 0x00, 0x10, 0x00, 0x00]); // Len 15: 65805 + 0x00100000 bytes
  assert.throws(() => new FrameDecoder(2048).push(header), /exceeds the Max-Message-Size/);
});

// --- a connection pair over an in-memory stream ------------------------------------------------

interface Side {
  connection: StreamConnection;
  received: CoapMessage[];
  /** Frames this side wrote, decoded, for inspection. */
  wrote: CoapMessage[];
  closed: Array<Error | undefined>;
  ended: boolean;
}

/** Two connections wired back to back; `deliver` moves bytes in order (a TCP stream, in lockstep). */
function pair(settingsA: StreamSettings = {}, settingsB: StreamSettings = {}, framing: 'length' | 'websocket' = 'length') {
  const clock = new FakeScheduler();
  const queues: { a: Uint8Array[]; b: Uint8Array[] } = { a: [], b: [] };
  const make = (name: 'a' | 'b', settings: StreamSettings): Side => {
    const side: Side = { received: [], wrote: [], closed: [], ended: false } as unknown as Side;
    side.connection = new StreamConnection(
      framing,
      {
        write: (frame) => {
          queues[name].push(frame);
          side.wrote.push(framing === 'length' ? decodeAll(frame)[0]! : decodeWebSocketFrame(frame));
        },
        end: () => {
          side.ended = true;
        },
      },
      { onMessage: (m) => side.received.push(m), onClosed: (e) => side.closed.push(e) },
      clock,
      settings,
    );
    return side;
  };
  const a = make('a', settingsA);
  const b = make('b', settingsB);
  const deliver = (): void => {
    for (let round = 0; round < 10 && (queues.a.length || queues.b.length); round++) {
      const toB = queues.a.splice(0);
      const toA = queues.b.splice(0);
      for (const f of toB) (framing === 'length' ? b.connection.receiveBytes(f) : b.connection.receiveFrame(f));
      for (const f of toA) (framing === 'length' ? a.connection.receiveBytes(f) : a.connection.receiveFrame(f));
    }
  };
  return { clock, a, b, deliver, raw: queues };
}

test('§3.3 each side opens with a CSM carrying Max-Message-Size and Block-Wise-Transfer; messages wait for the peer CSM', () => {
  const p = pair({ maxMessageSize: 4000 }, { maxMessageSize: 1200 });
  p.a.connection.start();
  p.a.connection.send(createMessage({ code: Method.GET, token: Uint8Array.of(9) }));
  assert.equal(p.a.wrote.length, 1, 'the GET waits for the CSM of the peer');
  const csm = p.a.wrote[0]!;
  assert.equal(csm.code, SignalCode.Csm);
  assert.equal(decodeUint(csm.options.find((o) => o.number === CsmOption.MaxMessageSize)!.value), 4000);
  assert.ok(csm.options.some((o) => o.number === CsmOption.BlockWiseTransfer));
  p.b.connection.start();
  p.deliver();
  assert.equal(p.a.wrote.length, 2, 'the GET went out after the peer CSM');
  assert.equal(p.b.received.length, 1);
  assert.equal(p.b.received[0]!.code, Method.GET);
  assert.equal(p.a.connection.peerMaxMessage, 1200);
  assert.equal(p.a.connection.bertAllowed, true, 'both offered block-wise with more than 1152 bytes');
});

test('§5.3.1 the peer Max-Message-Size is honoured: a larger message is refused, a smaller one goes', () => {
  const p = pair({}, { maxMessageSize: 200 });
  p.a.connection.start();
  p.b.connection.start();
  p.deliver();
  assert.throws(() => p.a.connection.send(messageWithBody(250)), MessageTooLargeError);
  p.a.connection.send(messageWithBody(150));
  p.deliver();
  assert.equal(p.b.received.length, 1);
  assert.equal(p.b.closed.length, 0);
});

test('§5.3.2 BERT is not indicated when either side offers 1152 bytes or less', () => {
  const p = pair({ maxMessageSize: 1152 }, { maxMessageSize: 9000 });
  p.a.connection.start();
  p.b.connection.start();
  p.deliver();
  assert.equal(p.a.connection.bertAllowed, false);
  assert.equal(p.b.connection.bertAllowed, false);
});

test('§5.4 Ping gets a Pong with the same token; Custody is echoed when asked for', async () => {
  const p = pair();
  p.a.connection.start();
  p.b.connection.start();
  p.deliver();
  const rtt = p.a.connection.ping(true);
  p.clock.advance(7);
  p.deliver();
  assert.equal(await rtt, 7);
  const pong = p.b.wrote.find((m) => m.code === SignalCode.Pong)!;
  const ping = p.a.wrote.find((m) => m.code === SignalCode.Ping)!;
  assert.deepEqual([...pong.token], [...ping.token]);
  assert.equal(pong.options[0]?.number, 2, 'Custody');
});

test('§5.4 a Ping without its Pong fails after pingTimeout', async () => {
  const p = pair({ pingTimeout: 1000 });
  p.a.connection.start();
  p.b.connection.start();
  p.deliver();
  const rtt = p.a.connection.ping();
  p.clock.advance(1000); // the Ping is never delivered
  await assert.rejects(rtt, /no Pong/);
});

test('§5.5 Release: the sender stops sending; the receiver hears it and the sender closes after releaseTimeout', () => {
  const p = pair({ releaseTimeout: 3000 });
  const released: string[] = [];
  // b reports the release to its owner instead of closing at once
  (p.b.connection as unknown as { events: { onRelease?: (i: { diagnostic: string }) => void } }).events.onRelease = (i) => released.push(i.diagnostic);
  p.a.connection.start();
  p.b.connection.start();
  p.deliver();
  p.a.connection.release('going away');
  assert.throws(() => p.a.connection.send(createMessage({ code: Method.GET })), /closed/);
  p.deliver();
  assert.deepEqual(released, ['going away']);
  assert.equal(p.a.ended, false);
  p.clock.advance(3000);
  assert.equal(p.a.ended, true);
  assert.deepEqual(p.a.closed, [undefined], 'an orderly close');
});

test('§5.5 Release without an owner handler: the receiver closes the connection', () => {
  const p = pair();
  p.a.connection.start();
  p.b.connection.start();
  p.deliver();
  p.a.connection.release();
  p.deliver();
  assert.equal(p.b.ended, true);
  assert.deepEqual(p.b.closed, [undefined]);
});

test('§5.6 Abort: the receiver closes with the diagnostic and processes nothing after it', () => {
  const p = pair();
  p.a.connection.start();
  p.b.connection.start();
  p.deliver();
  p.a.connection.abort('out of memory');
  p.deliver();
  assert.equal(p.b.closed.length, 1);
  assert.match(p.b.closed[0]!.message, /out of memory/);
  assert.equal(p.b.ended, true);
});

test('§5.6 a bad frame is answered with Abort carrying a diagnostic payload, and the connection closes', () => {
  const p = pair();
  p.a.connection.start();
  p.b.connection.start();
  p.deliver();
  // TKL 9 is reserved (RFC 7252 §3): a message format error.
  p.b.connection.receiveBytes(Uint8Array.of(0x09, 0x45, 1, 2, 3, 4, 5, 6, 7, 8, 9));
  const abort = p.b.wrote.at(-1)!;
  assert.equal(abort.code, SignalCode.Abort);
  assert.match(decodeString(abort.payload), /bad frame: reserved token length 9/);
  assert.equal(p.b.ended, true);
  assert.equal(p.b.closed.length, 1);
  assert.equal(p.b.received.length, 0);
});

test('§3.3 a first message that is not a CSM aborts the connection', () => {
  const p = pair();
  p.b.connection.start();
  p.b.connection.receiveBytes(encodeFrame(createMessage({ code: Method.GET, token: Uint8Array.of(1) }), 'length'));
  const abort = p.b.wrote.at(-1)!;
  assert.equal(abort.code, SignalCode.Abort);
  assert.match(decodeString(abort.payload), /not a CSM/);
  assert.equal(p.b.received.length, 0);
});

test('§3.3 no CSM within csmTimeout aborts the connection', () => {
  const p = pair({}, { csmTimeout: 500 });
  p.b.connection.start();
  p.clock.advance(500);
  assert.equal(p.b.wrote.at(-1)!.code, SignalCode.Abort);
  assert.equal(p.b.closed.length, 1);
});

test('§5.2 an unknown critical CSM option aborts with Bad-CSM-Option; unknown elective ones are ignored', () => {
  const p = pair();
  p.b.connection.start();
  const csm = csmMessage({});
  csm.options = [{ number: 6, value: new Uint8Array(0) }, { number: 9, value: new Uint8Array(0) }];
  p.b.connection.receiveBytes(encodeFrame(csm, 'length'));
  const abort = p.b.wrote.at(-1)!;
  assert.equal(abort.code, SignalCode.Abort);
  assert.equal(decodeUint(abort.options[0]!.value), 9);
});

test('§3.4 Empty messages are ignored; signalling over WebSocket framing works the same', async () => {
  const p = pair({}, {}, 'websocket');
  p.a.connection.start();
  p.b.connection.start();
  p.deliver();
  p.b.connection.receiveFrame(Uint8Array.of(0x00, 0x00));
  assert.equal(p.b.received.length, 0);
  assert.equal(p.b.closed.length, 0);
  const rtt = p.a.connection.ping();
  p.deliver();
  assert.equal(await rtt, 0);
  p.b.connection.receiveFrame(encodeFrame(releaseMessage('bye'), 'websocket'));
  assert.equal(p.b.ended, true);
});

test('§5.4 a Ping before the CSM is not a CSM: abort', () => {
  const p = pair();
  p.b.connection.start();
  p.b.connection.receiveBytes(encodeFrame(pingMessage(Uint8Array.of(1), false), 'length'));
  assert.equal(p.b.wrote.at(-1)!.code, SignalCode.Abort);
});

test('§3.2 a message split across reads is delivered once complete', () => {
  const p = pair();
  p.a.connection.start();
  p.b.connection.start();
  p.deliver();
  const frame = encodeFrame(createMessage({ code: Method.PUT, token: Uint8Array.of(5), payload: encodeString('x'.repeat(400)) }), 'length');
  p.b.connection.receiveBytes(frame.subarray(0, 3));
  assert.equal(p.b.received.length, 0);
  p.b.connection.receiveBytes(frame.subarray(3));
  assert.equal(p.b.received.length, 1);
  assert.equal(p.b.received[0]!.payload.length, 400);
});

test('§5.4 a Pong without a token (libcoap 4.3.1) answers the oldest outstanding Ping', async () => {
  const p = pair();
  p.a.connection.start();
  p.b.connection.start();
  p.deliver();
  const first = p.a.connection.ping();
  const second = p.a.connection.ping();
  p.clock.advance(3);
  p.a.connection.receiveBytes(encodeFrame(createMessage({ code: SignalCode.Pong }), 'length'));
  assert.equal(await first, 3);
  p.deliver();
  assert.equal(await second, 3);
});
