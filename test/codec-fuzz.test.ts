/**
 * Property-based tests of the RFC 7252 §3 codec. A failure prints fast-check's seed and path;
 * pass them back as fc.assert(..., { seed, path }) to replay it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeMessage, encodeMessage, MessageFormatError } from '../src/coap/codec.js';
import { createMessage, type CoapMessage, type CoapOption, type MessageType } from '../src/coap/message.js';

/** Bytes from a short random head and a seeded pattern, so long values cost little to generate. */
function filledBytes(length: number, head: Uint8Array, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = i < head.length ? head[i]! : (seed + i * 167) & 0xff;
  return out;
}

const typeArb = fc.integer({ min: 0, max: 3 }).map((t) => t as MessageType);
const messageIdArb = fc.integer({ min: 0, max: 0xffff });
const tokenArb = fc.uint8Array({ minLength: 0, maxLength: 8 });

/** Option deltas and lengths cluster around the 12/13 and 268/269 nibble-extension boundaries (§3.1). */
const deltaArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 12 }) },
  { weight: 2, arbitrary: fc.constantFrom(12, 13, 14, 267, 268, 269, 270) },
  { weight: 2, arbitrary: fc.integer({ min: 13, max: 268 }) },
  { weight: 1, arbitrary: fc.integer({ min: 269, max: 65535 }) },
);
const lengthArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 12 }) },
  { weight: 2, arbitrary: fc.constantFrom(0, 1, 12, 13, 14, 267, 268, 269, 270) },
  { weight: 1, arbitrary: fc.integer({ min: 13, max: 600 }) },
);
const valueArb = fc
  .tuple(lengthArb, fc.uint8Array({ maxLength: 12 }), fc.nat(255))
  .map(([length, head, seed]) => filledBytes(length, head, seed));

/** Sorted by construction: each option's number is the previous one plus a delta; none past 65535. */
const optionsArb = fc.array(fc.tuple(deltaArb, valueArb), { maxLength: 8 }).map((entries) => {
  const options: CoapOption[] = [];
  let number = 0;
  for (const [delta, value] of entries) {
    number += delta;
    if (number > 0xffff) break;
    options.push({ number, value });
  }
  return options;
});

const payloadArb = fc.oneof(
  { weight: 2, arbitrary: fc.constant(new Uint8Array(0)) },
  { weight: 3, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 32 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 1, max: 1500 }), fc.uint8Array({ maxLength: 8 }), fc.nat(255))
      .map(([length, head, seed]) => filledBytes(length, head, seed)),
  },
);

const nonEmptyMessageArb = fc
  .record({
    type: typeArb,
    code: fc.integer({ min: 1, max: 255 }),
    messageId: messageIdArb,
    token: tokenArb,
    options: optionsArb,
    payload: payloadArb,
  })
  .map((fields): CoapMessage => ({ ...fields }));

/** §4.1: an Empty message is the bare 4-byte header with code 0.00. */
const emptyMessageArb = fc
  .record({ type: typeArb, messageId: messageIdArb })
  .map(({ type, messageId }) => createMessage({ type, code: 0, messageId }));

const messageArb = fc.oneof({ weight: 19, arbitrary: nonEmptyMessageArb }, { weight: 1, arbitrary: emptyMessageArb });

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

function messagesEqual(a: CoapMessage, b: CoapMessage): boolean {
  return (
    a.type === b.type &&
    a.code === b.code &&
    a.messageId === b.messageId &&
    bytesEqual(a.token, b.token) &&
    bytesEqual(a.payload, b.payload) &&
    a.options.length === b.options.length &&
    a.options.every((o, i) => o.number === b.options[i]!.number && bytesEqual(o.value, b.options[i]!.value))
  );
}

/** Only computed when a comparison failed, to give assert a readable diff. */
function describe(msg: CoapMessage): unknown {
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
  return { ...msg, token: hex(msg.token), payload: hex(msg.payload), options: msg.options.map((o) => [o.number, hex(o.value)]) };
}

function assertSameMessage(actual: CoapMessage, expected: CoapMessage): void {
  if (!messagesEqual(actual, expected)) assert.deepEqual(describe(actual), describe(expected));
}

/**
 * The contract every datagram must meet: decodeMessage either throws MessageFormatError (with a
 * header exactly when 4 bytes were there to read) or returns a message whose encoding is the very
 * same datagram. The second holds because the §3 encoding is unique: each delta and length has
 * exactly one nibble/extension form, and the payload marker is present iff the payload is not empty.
 */
function checkDecodeContract(data: Uint8Array): void {
  let decoded: CoapMessage;
  try {
    decoded = decodeMessage(data);
  } catch (e) {
    if (!(e instanceof MessageFormatError)) throw e;
    if (data.length < 4) {
      assert.equal(e.header, undefined);
      assert.equal(e.kind, 'format');
    } else {
      assert.deepEqual(e.header, { type: (data[0]! >> 4) & 3, messageId: (data[2]! << 8) | data[3]! });
      assert.equal(e.kind, data[0]! >> 6 === 1 ? 'format' : 'unknown-version');
    }
    return;
  }
  const reencoded = encodeMessage(decoded);
  if (!bytesEqual(reencoded, data)) {
    assert.equal(Buffer.from(reencoded).toString('hex'), Buffer.from(data).toString('hex'));
  }
  assertSameMessage(decodeMessage(reencoded), decoded);
}

test('valid messages round-trip through encode and decode, and re-encode to the same bytes', () => {
  fc.assert(
    fc.property(messageArb, (message) => {
      const bytes = encodeMessage(message);
      const decoded = decodeMessage(bytes);
      assertSameMessage(decoded, message);
      assert.ok(bytesEqual(encodeMessage(decoded), bytes), 're-encoding changed the bytes');
    }),
    { numRuns: 40_000 },
  );
});

test('arbitrary datagrams decode to a re-encodable message or throw MessageFormatError', () => {
  // Three in four random first bytes have the wrong version; half the cases fix it to reach deeper.
  const datagramArb = fc
    .tuple(fc.uint8Array({ maxLength: 48 }), fc.constantFrom('raw', 'version-1', 'version-1-short-token'))
    .map(([bytes, shape]) => {
      if (bytes.length > 0 && shape !== 'raw') bytes[0] = (bytes[0]! & 0x3f) | 0x40;
      if (bytes.length > 0 && shape === 'version-1-short-token') bytes[0] = bytes[0]! & 0xf7;
      return bytes;
    });
  fc.assert(fc.property(datagramArb, checkDecodeContract), { numRuns: 40_000 });
});

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; byte: number }
  | { kind: 'delete'; at: number }
  | { kind: 'overwrite'; at: number; byte: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.constantFrom(0xff, 0x0d, 0x0e, 0xd0, 0xe0, 0x00, 0xf0) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('overwrite' as const), at: fc.nat(), byte: fc.nat(255) }),
);

function mutate(data: Uint8Array, mutation: Mutation): Uint8Array {
  const bytes = [...data];
  const at = mutation.at % (bytes.length + 1);
  switch (mutation.kind) {
    case 'flip':
      if (at < bytes.length) bytes[at]! ^= 1 << mutation.bit;
      break;
    case 'truncate':
      bytes.length = at;
      break;
    case 'insert':
      bytes.splice(at, 0, mutation.byte);
      break;
    case 'delete':
      bytes.splice(at, 1);
      break;
    case 'overwrite':
      if (at < bytes.length) bytes[at] = mutation.byte;
      break;
  }
  return Uint8Array.from(bytes);
}

test('mutated valid encodings decode to a re-encodable message or throw MessageFormatError', () => {
  const smallMessageArb = nonEmptyMessageArb.filter((m) => m.options.every((o) => o.value.length < 300) && m.payload.length < 64);
  fc.assert(
    fc.property(smallMessageArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (message, mutations) => {
      checkDecodeContract(mutations.reduce(mutate, new Uint8Array(encodeMessage(message))));
    }),
    { numRuns: 30_000 },
  );
});
