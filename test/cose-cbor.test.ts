/** The strict CBOR layer: deterministic encoding, and a decoder that refuses everything else. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CborError, decodeSequenceStrict, decodeStrict, encodeCbor, encodeSequence, fromHex, originalEncoding, toHex } from '../src/cose/index.js';

describe('strict CBOR', () => {
  it('encodes deterministically: shortest forms, map keys in bytewise order, byte strings never tagged', () => {
    assert.equal(toHex(encodeCbor(new Map<number, unknown>([[-1, 1], [4, Uint8Array.of(1)], [1, 2]]))), 'a30102044101' + '2001');
    assert.equal(toHex(encodeCbor(Buffer.from([1, 2]))), '420102');
    assert.equal(toHex(encodeSequence(24, -25, 'a', new Uint8Array(0))), '1818' + '3818' + '6161' + '40');
  });

  it('decodes a sequence into plain values with Uint8Array byte strings', () => {
    const items = decodeSequenceStrict(fromHex('03 82 06 02 41 0e f5 a1 04 41 32'));
    assert.equal(items.length, 5);
    assert.deepEqual(items[1], [6, 2]);
    assert.equal(Object.getPrototypeOf(items[2]), Uint8Array.prototype);
    assert.equal(items[3], true);
    assert.ok(items[4] instanceof Map);
  });

  const refused: [string, string][] = [
    ['non-preferred integer', '1900 03'],
    ['non-preferred byte-string length', '5801 aa'],
    ['non-preferred array length', '9801 01'],
    ['indefinite-length array', '9f 01 ff'],
    ['indefinite-length byte string', '5f 41aa ff'],
    ['duplicate map key', 'a2 0101 0102'],
    ['float', 'f9 3c00'],
    ['undefined', 'f7'],
    ['tag', 'c1 1a 5f000000'],
    ['truncated byte string', '5820 aabb'],
    ['unassigned simple value', 'f0'],
  ];
  for (const [what, hex] of refused) {
    it(`refuses a ${what}`, () => {
      assert.throws(() => decodeSequenceStrict(fromHex(hex)), CborError);
    });
  }

  it('decodeStrict wants exactly one item', () => {
    assert.equal(decodeStrict(fromHex('17')), 23);
    assert.throws(() => decodeStrict(fromHex('0102')), CborError);
    assert.throws(() => decodeStrict(new Uint8Array(0)), CborError);
  });

  it('keeps the original bytes of a decoded map (a credential is hashed as it was sent)', () => {
    // Keys out of bytewise order: valid CBOR, but not what the deterministic encoder would write.
    const sent = fromHex('a2 02 61 78 01 61 79');
    const value = decodeStrict(sent);
    assert.equal(toHex(originalEncoding(value)), toHex(sent));
    assert.notEqual(toHex(encodeCbor(value)), toHex(sent));
  });
});
