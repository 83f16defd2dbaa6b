/**
 * The direct deterministic encoder of src/cose/cbor.ts against cbor2's own deterministic (cde)
 * encoder on random values of the data model COSE and EDHOC use: both must give the same bytes,
 * map-key order and integer head sizes included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encode } from 'cbor2';
import { encodeCbor, decodeStrict } from '../src/cose/cbor.js';

const view = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

// Integers around every head-size boundary, and the extremes of the 64-bit range.
const boundaryInts = fc.constantFrom(0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, -1, -24, -25, -256, -257, -65536, -65537, -(2 ** 32), -(2 ** 32) - 1, Number.MIN_SAFE_INTEGER);
const bigInts = fc.constantFrom(2n ** 53n, 2n ** 64n - 1n, -(2n ** 64n), -(2n ** 53n) - 1n);

const { value } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer(),
    boundaryInts,
    fc.maxSafeInteger(),
    bigInts,
    fc.string({ unit: 'grapheme' }),
    fc.uint8Array({ maxLength: 300 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.array(fc.tuple(fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.string({ maxLength: 30 }), fc.uint8Array({ maxLength: 4 })), tie('value')), { maxLength: 6 }).map((entries) => new Map(entries)),
  ),
}));

test('the direct encoder gives cbor2 cde bytes for random values', () => {
  fc.assert(
    fc.property(value, (v) => {
      assert.deepEqual(encodeCbor(v), view(encode(v, { cde: true })));
    }),
    { numRuns: 2000 },
  );
});

test('every integer head size is the preferred one and round-trips through the strict decoder', () => {
  for (const n of [0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, -1, -24, -25, -65537, Number.MIN_SAFE_INTEGER]) {
    const bytes = encodeCbor(n);
    assert.equal(decodeStrict(bytes), n, `integer ${n}`);
  }
  assert.deepEqual(encodeCbor(24), Uint8Array.of(0x18, 0x18));
  assert.deepEqual(encodeCbor(-25), Uint8Array.of(0x38, 0x18));
  assert.deepEqual(encodeCbor(2n ** 64n - 1n), Uint8Array.of(0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
});

test('a map is written in bytewise order of its encoded keys (RFC 8949 §4.2.1)', () => {
  const m = new Map<unknown, unknown>([['b', 1], [-1, 2], [10, 3], [new Uint8Array([1]), 4], [100, 5]]);
  // keys: 10 → 0a, 100 → 1864, -1 → 20, h'01' → 4101, "b" → 6162
  assert.equal(Buffer.from(encodeCbor(m)).toString('hex'), 'a50a03186405200241010461620' + '1');
});

test('a Node Buffer is a byte string, not a tagged object', () => {
  assert.deepEqual(encodeCbor(Buffer.from([1, 2])), Uint8Array.of(0x42, 1, 2));
});

test('values outside the direct data model still encode through cbor2', () => {
  assert.deepEqual(encodeCbor(1.5), view(encode(1.5, { cde: true })));
  assert.deepEqual(encodeCbor(2n ** 70n), view(encode(2n ** 70n, { cde: true })));
});
