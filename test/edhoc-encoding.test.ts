/**
 * RFC 9528's encoding examples: byte-string identifiers (§3.3.2), the compact ID_CRED encoding
 * (§3.5.3.2), padding (§3.8.1), error messages (§6) and the identifiers → OSCORE IDs mapping (§3.3.3).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeStrict, encodeCbor, encodeSequence, fromHex, toHex } from '../src/cose/index.js';
import { EdhocError, idCredKid, identifierFromCbor, identifierToCbor, padding, parseErrorMessage } from '../src/edhoc/index.js';
import { idCredFromPlaintext, idCredToPlaintext } from '../src/edhoc/identifiers.js';
import { eadToCbor } from '../src/edhoc/ead.js';

describe('§3.3.2 byte-string identifiers', () => {
  const examples: [string, string][] = [
    ['21', '21'],
    ['0d', '0d'],
    ['18', '4118'],
    ['38', '4138'],
    ['abcd', '42abcd'],
    ['', '40'],
  ];
  for (const [id, wire] of examples) {
    it(`0x${id || "''"} is sent as ${wire} and read back`, () => {
      assert.equal(toHex(encodeCbor(identifierToCbor(fromHex(id)))), wire);
      assert.equal(toHex(identifierFromCbor(decodeStrict(fromHex(wire)), 'C_I')), id);
    });
  }
  it('refuses the bstr form of a one-byte integer, and integers beyond -24..23', () => {
    assert.throws(() => identifierFromCbor(decodeStrict(fromHex('4121')), 'C_I'), EdhocError);
    assert.throws(() => identifierFromCbor(decodeStrict(fromHex('1818')), 'C_I'), EdhocError);
    assert.throws(() => identifierFromCbor(decodeStrict(fromHex('3818')), 'C_I'), EdhocError);
  });
});

describe('§3.5.3.2 compact ID_CRED', () => {
  it("{4: h'FF'} is 0x41FF and {4: h'21'} is 0x21 in a plaintext, the map elsewhere", () => {
    assert.equal(toHex(encodeCbor(idCredToPlaintext(idCredKid(fromHex('ff'))))), '41ff');
    assert.equal(toHex(encodeCbor(idCredToPlaintext(idCredKid(fromHex('21'))))), '21');
    assert.equal(toHex(idCredKid(fromHex('21')).encoded), 'a1044121');
    assert.equal(toHex(idCredFromPlaintext(decodeStrict(fromHex('21')), 'ID_CRED_R').encoded), 'a1044121');
  });
  it('refuses the map form of a lone kid', () => {
    assert.throws(() => idCredFromPlaintext(decodeStrict(fromHex('a10441ff')), 'ID_CRED_R'), /compact encoding/);
  });
});

describe('§3.8.1 padding', () => {
  it('makes the examples 0x00, 0x0040 and 0x0041xx, and any requested length', () => {
    assert.equal(toHex(encodeSequence(...eadToCbor(padding(1)))), '00');
    assert.equal(toHex(encodeSequence(...eadToCbor(padding(2)))), '0040');
    assert.equal(toHex(encodeSequence(...eadToCbor(padding(3)))), '004100');
    for (const n of [24, 25, 26, 27, 200, 257, 258, 259, 300]) assert.equal(encodeSequence(...eadToCbor(padding(n))).length, n, `length ${n}`);
  });
});

describe('§6 error messages', () => {
  it('builds codes 1, 2 and 3 and reads them back', () => {
    assert.equal(toHex(new EdhocError(1, 'Method not supported').errorMessage), toHex(encodeSequence(1, 'Method not supported')));
    assert.equal(toHex(new EdhocError(2, 'x', [2]).errorMessage), '0202');
    assert.equal(toHex(new EdhocError(2, 'x', [9, 8]).errorMessage), '02820908');
    assert.equal(toHex(new EdhocError(3, 'x').errorMessage), '03f5');
    assert.deepEqual(parseErrorMessage(fromHex('02820908')).suitesR, [9, 8]);
    assert.equal(parseErrorMessage(fromHex('03f5')).code, 3);
    assert.equal(parseErrorMessage(encodeSequence(1, 'oops')).diagnostic, 'oops');
    assert.equal(parseErrorMessage(fromHex('00f6')).code, 0);
    // Malformed errors are still the peer's error (code 1, no diagnostic), never an exception.
    assert.equal(parseErrorMessage(fromHex('1900')).code, 1);
    assert.equal(parseErrorMessage(fromHex('0281')).code, 1);
  });
});
