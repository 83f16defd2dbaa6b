/**
 * RFC 8613 §3.2.1's HKDF info, written out by hand (issue 21: cbor2's generic encoder cost most of
 * a device's first request): byte for byte what a generic CBOR encoder gives, for every shape of
 * input the derivation can meet.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from 'cbor2';
import fc from 'fast-check';
import { hkdfInfo } from '../src/oscore/context-rules.js';

test('hkdfInfo is the CBOR array [id, id_context / null, alg_aead, type, L] in preferred serialization (fast-check)', () => {
  const lengths = fc.oneof(fc.integer({ min: 0, max: 30 }), fc.constantFrom(23, 24, 255, 256, 300));
  const bytes = lengths.chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));
  const integer = fc.oneof(fc.integer({ min: -300, max: 300 }), fc.constantFrom(-24, -25, -256, -257, 65_535, 65_536, -65_537, 2 ** 32 - 1, 2 ** 32, -(2 ** 32), 2 ** 40));
  fc.assert(
    fc.property(bytes, fc.option(bytes, { nil: undefined }), integer, fc.constantFrom('Key' as const, 'IV' as const), fc.oneof(fc.nat(100_000), fc.constant(2 ** 33)), (id, idContext, aead, type, length) => {
      const expected = encode([id, idContext === undefined ? null : idContext, aead, type, length]);
      assert.deepEqual(Buffer.from(hkdfInfo(id, idContext, aead, type, length)), Buffer.from(expected));
    }),
    { numRuns: 500 },
  );
});
