/** The hand-written external_aad / Enc_structure encoding equals cbor2's, byte for byte (RFC 8613 §5.4). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode } from 'cbor2';
import fc from 'fast-check';
import { additionalData, externalAad } from '../src/oscore/protect.js';

const viaCbor2 = (aead: number, kid: Uint8Array, piv: Uint8Array): Uint8Array =>
  encode(['Encrypt0', new Uint8Array(0), encode([1, [aead], Uint8Array.from(kid), Uint8Array.from(piv), new Uint8Array(0)])]);

test('additionalData equals the generic CBOR encoding for every AEAD id and kid/Partial IV length', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(1, 2, 3, 10, 11, 24, 30, 0, 23, 255, 256, 1000),
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 5 }),
      (aead, kid, piv) => {
        assert.deepEqual([...additionalData(aead, kid, piv)], [...viaCbor2(aead, kid, piv)]);
      },
    ),
    { numRuns: 3000 },
  );
});

test('external_aad of RFC 8613 Appendix C.4 (kid empty, Partial IV 0x14, AES-CCM-16-64-128)', () => {
  assert.equal(Buffer.from(externalAad(10, new Uint8Array(0), Uint8Array.of(0x14))).toString('hex'), '8501810a40411440');
});
