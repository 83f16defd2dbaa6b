import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeEmpty, encodeMessage, MessageFormatError, tryDecodeMessage } from '../src/coap/codec.js';
import {
  addOption,
  createMessage,
  decodeString,
  decodeUint,
  encodeString,
  encodeUint,
  getOption,
  getOptions,
  getStringOptions,
  getUintOption,
  maxAgeOf,
  MessageType,
  printablePayload,
  removeOption,
  setOption,
  type CoapMessage,
} from '../src/coap/message.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { OptionNumber } from '../src/coap/options.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const fromHex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const ascii = (text: string): string => Buffer.from(text, 'latin1').toString('hex');

/** Compares decoded messages by value: decoded fields are Buffer views, built ones Uint8Arrays. */
function plain(msg: CoapMessage): unknown {
  return {
    type: msg.type,
    code: msg.code,
    messageId: msg.messageId,
    token: hex(msg.token),
    options: msg.options.map((o) => [o.number, hex(o.value)]),
    payload: hex(msg.payload),
  };
}

// --- RFC 7252 Appendix A, Figures 16 and 17 -----------------------------------------------------

test('Figure 16: CON GET /temperature with empty token is 16 bytes', () => {
  const request = createMessage({
    type: MessageType.CON,
    code: Method.GET,
    messageId: 0x7d34,
    options: [{ number: OptionNumber.UriPath, value: encodeString('temperature') }],
  });
  const expected = `40017d34bb${ascii('temperature')}`;
  assert.equal(hex(encodeMessage(request)), expected);
  assert.equal(expected.length / 2, 16);
  assert.deepEqual(plain(decodeMessage(fromHex(expected))), plain(request));
});

test('Figure 16: piggybacked ACK 2.05 with payload "22.3 C" is 11 bytes', () => {
  const response = createMessage({
    type: MessageType.ACK,
    code: ResponseCode.Content,
    messageId: 0x7d34,
    payload: encodeString('22.3 C'),
  });
  const expected = `60457d34ff${ascii('22.3 C')}`;
  assert.equal(hex(encodeMessage(response)), expected);
  assert.equal(expected.length / 2, 11);
  assert.deepEqual(plain(decodeMessage(fromHex(expected))), plain(response));
});

test('Figure 17: one-byte token 0x20 makes request and response 17 and 12 bytes', () => {
  const token = Uint8Array.of(0x20);
  const request = createMessage({
    code: Method.GET,
    messageId: 0x7d35,
    token,
    options: [{ number: OptionNumber.UriPath, value: encodeString('temperature') }],
  });
  const response = createMessage({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0x7d35, token, payload: encodeString('22.3 C') });
  assert.equal(hex(encodeMessage(request)), `41017d3520bb${ascii('temperature')}`);
  assert.equal(hex(encodeMessage(response)), `61457d3520ff${ascii('22.3 C')}`);
  assert.equal(encodeMessage(request).length, 17);
  assert.equal(encodeMessage(response).length, 12);
});

// --- extended option delta and length (§3.1) --------------------------------------------------

test('13 and 14 nibble extensions for delta and length, 8-byte token, payload', () => {
  const fill = (n: number, byte: number): Uint8Array => new Uint8Array(n).fill(byte);
  const message = createMessage({
    type: MessageType.NON,
    code: Method.POST,
    messageId: 0x1234,
    token: fromHex('0102030405060708'),
    options: [
      { number: 3, value: encodeString('abcdefghijklm') }, // length 13: nibble 13, extension 0
      { number: 300, value: new Uint8Array(0) }, // delta 297: nibble 14, extension 297-269 = 0x001c
      { number: 300, value: fill(268, 0xaa) }, // delta 0, length 268: nibble 13, extension 0xff
      { number: 301, value: fill(269, 0xbb) }, // delta 1, length 269: nibble 14, extension 0x0000
      { number: 320, value: fill(1, 0xcc) }, // delta 19: nibble 13, extension 6
      { number: 65535, value: fill(2, 0xdd) }, // delta 65215: nibble 14, extension 64946 = 0xfdb2
    ],
    payload: encodeString('hi'),
  });
  const expected = [
    '5802 1234', // Ver 01, T 01 (NON), TKL 1000; 0.02 POST; MID
    '0102030405060708',
    `3d 00 ${ascii('abcdefghijklm')}`,
    'e0 001c',
    `0d ff ${'aa'.repeat(268)}`,
    `1e 0000 ${'bb'.repeat(269)}`,
    'd1 06 cc',
    'e2 fdb2 dddd',
    `ff ${ascii('hi')}`,
  ].join('').replace(/\s+/g, '');
  assert.equal(hex(encodeMessage(message)), expected);
  assert.deepEqual(plain(decodeMessage(fromHex(expected))), plain(message));
});

test('boundary deltas 12/13 and 268/269 use the smallest encoding', () => {
  const optionBytes = (number: number): string =>
    hex(encodeMessage(createMessage({ code: Method.GET, options: [{ number, value: new Uint8Array(0) }] })).subarray(4));
  assert.equal(optionBytes(12), 'c0');
  assert.equal(optionBytes(13), 'd000');
  assert.equal(optionBytes(268), 'd0ff');
  assert.equal(optionBytes(269), 'e00000');
});

test('the longest option value (65804 bytes) encodes with extension 0xffff; one more is refused', () => {
  const longest = createMessage({ code: Method.PUT, options: [{ number: 1, value: new Uint8Array(65804) }] });
  const bytes = encodeMessage(longest);
  assert.equal(hex(bytes.subarray(4, 7)), '1effff');
  assert.equal(decodeMessage(bytes).options[0]!.value.length, 65804);
  const tooLong = createMessage({ code: Method.PUT, options: [{ number: 1, value: new Uint8Array(65805) }] });
  assert.throws(() => encodeMessage(tooLong), RangeError);
});

test('encoder refuses tokens over 8 bytes, unsorted options and option numbers over 65535', () => {
  assert.throws(() => encodeMessage(createMessage({ code: 1, token: new Uint8Array(9) })), RangeError);
  const unsorted = createMessage({ code: 1 });
  unsorted.options = [{ number: 11, value: new Uint8Array(0) }, { number: 3, value: new Uint8Array(1) }];
  assert.throws(() => encodeMessage(unsorted), /not sorted/);
  assert.throws(() => encodeMessage(createMessage({ code: 1, options: [{ number: 65536, value: new Uint8Array(0) }] })), RangeError);
});

test('Empty message (code 0.00) is exactly 4 bytes and decodes', () => {
  assert.equal(hex(encodeEmpty(MessageType.RST, 0xabcd)), '7000abcd');
  assert.equal(hex(encodeEmpty(MessageType.ACK, 0x0001)), '60000001');
  const ping = decodeMessage(fromHex('40000007'));
  assert.deepEqual(plain(ping), plain(createMessage({ type: MessageType.CON, code: 0, messageId: 7 })));
});

// --- message format errors (§3, §3.1, §4.1) ----------------------------------------------------

function assertFormatError(
  bytes: string,
  kind: 'format' | 'unknown-version',
  messagePattern: RegExp,
  header: { type: number; messageId: number } | undefined,
): void {
  assert.throws(
    () => decodeMessage(fromHex(bytes)),
    (e: unknown) => {
      assert.ok(e instanceof MessageFormatError, `expected MessageFormatError, got ${String(e)}`);
      assert.equal(e.kind, kind);
      assert.match(e.message, messagePattern);
      assert.deepEqual(e.header, header);
      return true;
    },
  );
}

test('version other than 1 is kind unknown-version (to be silently ignored, §3)', () => {
  assertFormatError('00011234', 'unknown-version', /version 0/, { type: 0, messageId: 0x1234 });
  assertFormatError('a0011234', 'unknown-version', /version 2/, { type: 2, messageId: 0x1234 });
  assertFormatError('d0011234', 'unknown-version', /version 3/, { type: 1, messageId: 0x1234 });
});

test('TKL 9 to 15 is a format error', () => {
  for (let tkl = 9; tkl <= 15; tkl++) {
    const bytes = `${(0x40 | tkl).toString(16)}01beef${'00'.repeat(15)}`;
    assertFormatError(bytes, 'format', new RegExp(`reserved token length ${tkl}`), { type: 0, messageId: 0xbeef });
  }
});

test('option delta nibble 15 without length 15, and length nibble 15, are format errors', () => {
  assertFormatError('4001beef f0', 'format', /delta 15/, { type: 0, messageId: 0xbeef });
  assertFormatError('4001beef f7 00000000000000', 'format', /delta 15/, { type: 0, messageId: 0xbeef });
  assertFormatError('4001beef 0f', 'format', /length 15/, { type: 0, messageId: 0xbeef });
  assertFormatError('4001beef bf', 'format', /length 15/, { type: 0, messageId: 0xbeef });
});

test('truncated token, option extensions and option values are format errors', () => {
  const con = { type: 0, messageId: 0xbeef };
  assertFormatError('4401beef aabb', 'format', /truncated token/, con);
  assertFormatError('4001beef d0', 'format', /truncated option delta/, con);
  assertFormatError('4001beef e0 00', 'format', /truncated option delta/, con);
  assertFormatError('4001beef 0d', 'format', /truncated option length/, con);
  assertFormatError('4001beef 0e 01', 'format', /truncated option length/, con);
  assertFormatError('4001beef 03 6162', 'format', /truncated option value/, con);
  assertFormatError('4001beef 0d 00 6162', 'format', /truncated option value/, con);
});

test('payload marker followed by nothing is a format error', () => {
  assertFormatError('4001beef ff', 'format', /payload marker/, { type: 0, messageId: 0xbeef });
  assertFormatError('4001beef b1 61 ff', 'format', /payload marker/, { type: 0, messageId: 0xbeef });
});

test('option numbers beyond 65535 are a format error', () => {
  assertFormatError('4001beef e0 ffff', 'format', /beyond 65535/, { type: 0, messageId: 0xbeef });
});

test('Empty message with a token, options or payload is a format error (§4.1)', () => {
  assertFormatError('4100beef aa', 'format', /empty message/, { type: 0, messageId: 0xbeef });
  assertFormatError('4000beef b0', 'format', /empty message/, { type: 0, messageId: 0xbeef });
  assertFormatError('6000beef ff61', 'format', /empty message/, { type: 2, messageId: 0xbeef });
});

test('datagrams shorter than 4 bytes are a format error without a header', () => {
  for (const bytes of ['', '40', '4001', '4001be']) {
    assertFormatError(bytes, 'format', /shorter than the 4-byte header/, undefined);
  }
});

test('a CON with a format error carries type and Message ID so the receiver can RST it (§4.2)', () => {
  const result = tryDecodeMessage(fromHex('4f01c0de'));
  assert.ok(result instanceof MessageFormatError);
  assert.deepEqual(result.header, { type: MessageType.CON, messageId: 0xc0de });
  const nonResult = tryDecodeMessage(fromHex('5001c0de ff'));
  assert.ok(nonResult instanceof MessageFormatError);
  assert.deepEqual(nonResult.header, { type: MessageType.NON, messageId: 0xc0de });
});

test('decoded token, option values and payload are views into the datagram', () => {
  const data = fromHex(`41017d3520bb${ascii('temperature')}ff${ascii('x')}`);
  const msg = decodeMessage(data);
  assert.equal(msg.token.buffer, data.buffer);
  assert.equal(msg.options[0]!.value.buffer, data.buffer);
  assert.equal(msg.payload.buffer, data.buffer);
});

// --- option values and helpers (§3.2, §5.4.5) --------------------------------------------------

test('encodeUint is the minimal big-endian encoding, 0 being empty', () => {
  const cases: Array<[number, string]> = [
    [0, ''],
    [1, '01'],
    [255, 'ff'],
    [256, '0100'],
    [65535, 'ffff'],
    [65536, '010000'],
    [0xffffff, 'ffffff'],
    [0x1000000, '01000000'],
    [0xffffffff, 'ffffffff'],
  ];
  for (const [value, expected] of cases) {
    assert.equal(hex(encodeUint(value)), expected, `encodeUint(${value})`);
    assert.equal(decodeUint(encodeUint(value)), value);
  }
  for (const bad of [-1, 1.5, 2 ** 32, Number.NaN]) assert.throws(() => encodeUint(bad), RangeError);
});

test('decodeUint tolerates leading zero bytes', () => {
  assert.equal(decodeUint(fromHex('000005')), 5);
  assert.equal(decodeUint(new Uint8Array(0)), 0);
});

test('addOption keeps repeated options in insertion order and the list sorted', () => {
  const msg = createMessage({ code: Method.GET });
  addOption(msg, OptionNumber.UriPath, encodeString('a'));
  addOption(msg, OptionNumber.UriHost, encodeString('h'));
  addOption(msg, OptionNumber.UriPath, encodeString('b'));
  addOption(msg, OptionNumber.UriQuery, encodeString('q'));
  addOption(msg, OptionNumber.UriPath, encodeString('c'));
  assert.deepEqual(msg.options.map((o) => o.number), [3, 11, 11, 11, 15]);
  assert.deepEqual(getStringOptions(msg, OptionNumber.UriPath), ['a', 'b', 'c']);
  const decoded = decodeMessage(encodeMessage(msg));
  assert.deepEqual(getStringOptions(decoded, OptionNumber.UriPath), ['a', 'b', 'c']);
});

test('createMessage sorts options stably', () => {
  const msg = createMessage({
    code: Method.GET,
    options: [
      { number: 15, value: encodeString('q1') },
      { number: 11, value: encodeString('p1') },
      { number: 15, value: encodeString('q2') },
      { number: 11, value: encodeString('p2') },
    ],
  });
  assert.deepEqual(msg.options.map((o) => [o.number, Buffer.from(o.value).toString()]), [
    [11, 'p1'],
    [11, 'p2'],
    [15, 'q1'],
    [15, 'q2'],
  ]);
});

test('setOption replaces every instance, removeOption removes them, getters see the result', () => {
  const msg = createMessage({ code: Method.GET });
  addOption(msg, OptionNumber.ETag, fromHex('01'));
  addOption(msg, OptionNumber.ETag, fromHex('02'));
  setOption(msg, OptionNumber.ETag, fromHex('03'));
  assert.deepEqual(getOptions(msg, OptionNumber.ETag).map(hex), ['03']);
  setOption(msg, OptionNumber.MaxAge, encodeUint(30));
  assert.equal(getUintOption(msg, OptionNumber.MaxAge), 30);
  assert.equal(maxAgeOf(msg), 30);
  removeOption(msg, OptionNumber.MaxAge);
  assert.equal(getOption(msg, OptionNumber.MaxAge), undefined);
  assert.equal(maxAgeOf(msg), 60, 'Max-Age defaults to 60 s (§5.10.5)');
});

test('printablePayload: diagnostic text quoted, anything else (control characters, invalid UTF-8) as hex', () => {
  assert.equal(printablePayload(Buffer.from('Security context not found')), '"Security context not found"');
  assert.equal(printablePayload(Buffer.from('grüße')), '"grüße"');
  // A terminal escape sequence from the network never reaches a terminal or log as such.
  assert.equal(printablePayload(Buffer.from('\x1b[31mred')), '0x1b5b33316d726564 (8 bytes)');
  assert.equal(printablePayload(Uint8Array.of(0xe2, 0x28)), '0xe228 (2 bytes)');
  assert.equal(printablePayload(Buffer.from('abcdefgh'), 4), '"abcd…"');
  assert.equal(printablePayload(Uint8Array.of(0xff, 0xfe, 0xfd, 0xfc, 0xfb), 4), '0xfffe… (5 bytes)');
  assert.equal(printablePayload(new Uint8Array(0)), '""');
});

test('decodeString reads every short and long value as UTF-8 does (ASCII by a loop, the rest by TextDecoder, BOM and bad bytes included)', () => {
  const reference = new TextDecoder('utf-8', { fatal: false });
  const samples: Uint8Array[] = [
    new Uint8Array(0),
    encodeString('hello'),
    encodeString('grüße/温度'),
    Uint8Array.of(0xef, 0xbb, 0xbf, 0x61), // a BOM, which TextDecoder drops
    Uint8Array.of(0x61, 0xff, 0x62), // an invalid byte: U+FFFD
    Uint8Array.of(0x00, 0x7f, 0x41),
    encodeString('x'.repeat(33)),
  ];
  let seed = 21;
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 256;
  for (let i = 0; i < 500; i++) samples.push(Uint8Array.from({ length: next() % 40 }, () => (i % 2 === 0 ? next() & 0x7f : next())));
  for (const bytes of samples) assert.equal(decodeString(bytes), reference.decode(bytes), `bytes ${Buffer.from(bytes).toString('hex')}`);
});

test('addOption keeps options sorted by number and repeated options in insertion order, whether it appends or inserts', () => {
  const message = { options: [] as { number: number; value: Uint8Array }[] };
  const added: Array<[number, number]> = [];
  let seed = 7;
  for (let i = 0; i < 200; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const number = [1, 4, 11, 12, 14, 60][seed % 6]!;
    addOption(message, number, Uint8Array.of(i & 0xff));
    added.push([number, i & 0xff]);
  }
  const expected = added.map(([number, v], index) => ({ number, v, index })).sort((a, b) => a.number - b.number || a.index - b.index);
  assert.deepEqual(message.options.map((o) => [o.number, o.value[0]]), expected.map((e) => [e.number, e.v]));
});
