/**
 * src/crypto/aes-ccm.ts against Node's own AES-CCM (OpenSSL), byte for byte, for random keys,
 * nonces, AADs and messages; the SP 800-38C example; and rejection of every altered input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, type CipherCCMTypes } from 'node:crypto';
import fc from 'fast-check';
import { AesCcm } from '../src/crypto/aes-ccm.js';

function nodeSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, tagLength: number): Buffer {
  const c = createCipheriv(`aes-${key.length * 8}-ccm` as CipherCCMTypes, key, nonce, { authTagLength: tagLength });
  c.setAAD(aad, { plaintextLength: plaintext.length });
  // Buffer.from: Node's CCM fails ("tag not set") on an empty plain Uint8Array, not on an empty Buffer.
  return Buffer.concat([c.update(Buffer.from(plaintext)), c.final(), c.getAuthTag()]);
}

function nodeOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, tagLength: number): Buffer | undefined {
  const body = sealed.subarray(0, sealed.length - tagLength);
  const d = createDecipheriv(`aes-${key.length * 8}-ccm` as CipherCCMTypes, key, nonce, { authTagLength: tagLength });
  d.setAuthTag(sealed.subarray(sealed.length - tagLength));
  d.setAAD(aad, { plaintextLength: body.length });
  const out = d.update(Buffer.from(body));
  try {
    d.final();
    return out;
  } catch {
    return undefined;
  }
}

const open = (ccm: AesCcm, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Buffer | undefined =>
  ccm.open(nonce, aad, sealed.subarray(0, sealed.length - ccm.tagLength), sealed.subarray(sealed.length - ccm.tagLength));

test('NIST SP 800-38C Appendix C.1 example: 4-byte tag, 7-byte nonce', () => {
  const key = Buffer.from('404142434445464748494a4b4c4d4e4f', 'hex');
  const ccm = new AesCcm(key, 4, 7);
  const nonce = Buffer.from('10111213141516', 'hex');
  const aad = Buffer.from('0001020304050607', 'hex');
  const sealed = ccm.seal(nonce, aad, Buffer.from('20212223', 'hex'));
  assert.equal(sealed.toString('hex'), '7162015b4dac255d');
  assert.equal(open(ccm, nonce, aad, sealed)?.toString('hex'), '20212223');
});

test('seal and open match Node\'s AES-CCM for every key size, tag length, nonce length and message size (fast-check)', () => {
  const params = fc.record({
    keyLength: fc.constantFrom(16, 24, 32),
    tagLength: fc.constantFrom(4, 6, 8, 10, 12, 14, 16),
    nonceLength: fc.integer({ min: 7, max: 13 }),
    seed: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    aad: fc.uint8Array({ maxLength: 80 }),
    plaintext: fc.uint8Array({ maxLength: 200 }),
    messages: fc.integer({ min: 1, max: 4 }),
  });
  fc.assert(
    fc.property(params, ({ keyLength, tagLength, nonceLength, seed, aad, plaintext, messages }) => {
      const key = seed.subarray(0, keyLength);
      const ccm = new AesCcm(key, tagLength, nonceLength);
      // Several messages through one instance: the CBC chaining carried between them must not leak in.
      for (let m = 0; m < messages; m++) {
        const nonce = Buffer.alloc(nonceLength, m + 1);
        const text = plaintext.subarray(m);
        const expected = nodeSeal(key, nonce, aad, text, tagLength);
        const sealed = ccm.seal(nonce, aad, text);
        assert.deepEqual(sealed, expected);
        assert.deepEqual(open(ccm, nonce, aad, sealed), Buffer.from(text));
        assert.deepEqual(nodeOpen(key, nonce, aad, sealed, tagLength), Buffer.from(text));
      }
    }),
    { numRuns: 3000 },
  );
});

test('sealInto writes ciphertext || tag at an offset and returns the end', () => {
  const ccm = new AesCcm(Buffer.alloc(16, 7), 8, 13);
  const nonce = Buffer.alloc(13, 1);
  const out = Buffer.alloc(40, 0xaa);
  const end = ccm.sealInto(out, 5, nonce, Buffer.from('aad'), Buffer.from('hello world'));
  assert.equal(end, 5 + 11 + 8);
  assert.deepEqual(out.subarray(5, end), ccm.seal(nonce, Buffer.from('aad'), Buffer.from('hello world')));
  assert.equal(out[4], 0xaa);
  assert.equal(out[end], 0xaa);
});

test('AAD of 0xff00 bytes and more uses the 6-byte length encoding, as Node does', () => {
  const key = Buffer.alloc(16, 3);
  const ccm = new AesCcm(key, 8, 13);
  const nonce = Buffer.alloc(13, 9);
  for (const length of [0xfeff, 0xff00, 0x10000]) {
    const aad = Buffer.alloc(length, 5);
    assert.deepEqual(ccm.seal(nonce, aad, Buffer.from('x')), nodeSeal(key, nonce, aad, Buffer.from('x'), 8), `AAD ${length} bytes`);
  }
});

test('every single-bit change to ciphertext, tag, AAD or nonce is refused', () => {
  const ccm = new AesCcm(Buffer.alloc(16, 1), 8, 13);
  const nonce = Buffer.alloc(13, 2);
  const aad = Buffer.from('additional data');
  const sealed = ccm.seal(nonce, aad, Buffer.from('a message of some length'));
  const flip = (b: Uint8Array, bit: number): Buffer => {
    const c = Buffer.from(b);
    c[bit >> 3]! ^= 1 << (bit & 7);
    return c;
  };
  for (let bit = 0; bit < sealed.length * 8; bit++) assert.equal(open(ccm, nonce, aad, flip(sealed, bit)), undefined, `ciphertext bit ${bit}`);
  for (let bit = 0; bit < aad.length * 8; bit++) assert.equal(open(ccm, nonce, flip(aad, bit), sealed), undefined, `AAD bit ${bit}`);
  for (let bit = 0; bit < nonce.length * 8; bit++) assert.equal(open(ccm, flip(nonce, bit), aad, sealed), undefined, `nonce bit ${bit}`);
  // And the instance still works after all those failures.
  assert.equal(open(ccm, nonce, aad, sealed)?.toString(), 'a message of some length');
});

test('wrong lengths: seal throws RangeError naming the problem, open returns undefined', () => {
  assert.throws(() => new AesCcm(Buffer.alloc(15), 8, 13), /16-, 24- or 32-byte key/);
  assert.throws(() => new AesCcm(Buffer.alloc(16), 5, 13), /tag length/);
  assert.throws(() => new AesCcm(Buffer.alloc(16), 8, 14), /nonce length/);
  const ccm = new AesCcm(Buffer.alloc(16), 8, 13);
  assert.throws(() => ccm.seal(Buffer.alloc(12), Buffer.alloc(0), Buffer.alloc(1)), /13-byte nonce/);
  assert.throws(() => ccm.seal(Buffer.alloc(13), Buffer.alloc(0), Buffer.alloc(65536)), /at most 65535 bytes/);
  assert.equal(ccm.open(Buffer.alloc(12), Buffer.alloc(0), Buffer.alloc(4), Buffer.alloc(8)), undefined);
  assert.equal(ccm.open(Buffer.alloc(13), Buffer.alloc(0), Buffer.alloc(4), Buffer.alloc(7)), undefined);
  assert.equal(ccm.open(Buffer.alloc(13), Buffer.alloc(0), Buffer.alloc(65536), Buffer.alloc(8)), undefined);
});

test('keystreams: a nonce\'s part seals and opens as the computed keystream does; one too short for the message is not used', () => {
  const key = Buffer.alloc(16, 4);
  const ccm = new AesCcm(key, 8, 12);
  const nonces = Buffer.concat([Buffer.alloc(12, 1), Buffer.alloc(12, 2), Buffer.alloc(12, 3)]);
  const blocks = 3;
  const streams = ccm.keystreams(nonces, blocks);
  assert.equal(streams.length, 3 * blocks * 16);
  const aad = Buffer.from('aad');
  for (let k = 0; k < 3; k++) {
    const nonce = nonces.subarray(12 * k, 12 * k + 12);
    const stream = { bytes: streams, at: k * blocks * 16, length: blocks * 16 };
    // 32 bytes fit S_1, S_2; 33 need S_3, which `stream` lacks: computed instead.
    for (const length of [0, 1, 16, 31, 32, 33, 100]) {
      const plaintext = Buffer.alloc(length, 0x5a + k);
      const expected = nodeSeal(key, nonce, aad, plaintext, 8);
      const out = Buffer.alloc(length + 8);
      ccm.sealInto(out, 0, nonce, aad, plaintext, stream);
      assert.deepEqual(out, expected, `nonce ${k}, ${length} bytes`);
      assert.deepEqual(ccm.open(nonce, aad, expected.subarray(0, length), expected.subarray(length), stream), plaintext);
    }
  }
  // Another nonce's keystream does not open the message (a caller mix-up fails closed).
  const sealed = ccm.seal(nonces.subarray(0, 12), aad, Buffer.from('hello'));
  assert.equal(ccm.open(nonces.subarray(0, 12), aad, sealed.subarray(0, 5), sealed.subarray(5), { bytes: streams, at: blocks * 16, length: blocks * 16 }), undefined);
  assert.throws(() => ccm.keystreams(Buffer.alloc(13), 2), /whole number of 12-byte nonces/);
  assert.throws(() => ccm.keystreams(Buffer.alloc(0), 2), /whole number of 12-byte nonces/);
  assert.throws(() => ccm.keystreams(Buffer.alloc(12), 0), /positive integer/);
});

test('keystream at an offset of a batch, and openAt: the nonce\'s own part only, never the next nonce\'s', () => {
  const key = Buffer.alloc(16, 6);
  const ccm = new AesCcm(key, 8, 12);
  const nonces = Buffer.concat([Buffer.alloc(12, 7), Buffer.alloc(12, 8)]);
  const blocks = 3; // S_0 and 32 bytes of message per nonce
  const streams = ccm.keystreams(nonces, blocks);
  const aad = Buffer.from('header');
  for (const length of [0, 5, 32, 33, 60]) {
    const nonce = nonces.subarray(0, 12);
    const plaintext = Buffer.alloc(length, 0x33);
    const expected = nodeSeal(key, nonce, aad, plaintext, 8);
    // The first nonce's part: 48 bytes; 33 and more would run into the second nonce's stream.
    const out = Buffer.alloc(length + 8 + 4);
    assert.equal(ccm.sealInto(out, 4, nonce, aad, plaintext, { bytes: streams, at: 0, length: blocks * 16 }), 4 + length + 8);
    assert.deepEqual(out.subarray(4), expected, `${length} bytes`);
    const framed = Buffer.concat([Buffer.alloc(3), expected, Buffer.alloc(2)]);
    assert.deepEqual(ccm.openAt(nonce, aad, framed, 3, length, { bytes: streams, at: 0, length: blocks * 16 }), plaintext);
    assert.deepEqual(ccm.openAt(nonce, aad, framed, 3, length), plaintext);
    const second = nonces.subarray(12);
    const sealedSecond = nodeSeal(key, second, aad, plaintext, 8);
    assert.deepEqual(ccm.openAt(second, aad, sealedSecond, 0, length, { bytes: streams, at: blocks * 16, length: blocks * 16 }), plaintext);
  }
  const sealed = nodeSeal(key, nonces.subarray(0, 12), aad, Buffer.from('hello'), 8);
  assert.equal(ccm.openAt(nonces.subarray(0, 12), aad, sealed, 0, 6), undefined, 'tag beyond the data');
  assert.equal(ccm.openAt(nonces.subarray(0, 12), aad, sealed, 0, 4), undefined, 'wrong split');
  assert.equal(ccm.openAt(nonces.subarray(0, 12), aad, sealed, 0, 5, { bytes: streams, at: blocks * 16, length: blocks * 16 }), undefined, 'the other nonce\'s stream');
});

test('sealBytes and openAtBytes: plain Uint8Arrays with the bytes of seal and openAt, each its own bytes after later calls', () => {
  const key = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
  const ccm = new AesCcm(key, 8, 13);
  const aad = Buffer.from('a0a1a2', 'hex');
  const kept: Array<{ sealed: Uint8Array; opened: Uint8Array; plaintext: Buffer }> = [];
  // Enough messages to run through several of the shared 8 KiB areas the results are views of.
  for (let i = 0; i < 1500; i++) {
    const nonce = Buffer.alloc(13, i & 0xff);
    nonce.writeUInt32BE(i, 9);
    const plaintext = Buffer.alloc(1 + (i % 40), i & 0xff);
    const sealed = ccm.sealBytes(nonce, aad, plaintext);
    assert.equal(Object.getPrototypeOf(sealed), Uint8Array.prototype);
    assert.deepEqual(Buffer.from(sealed), nodeSeal(key, nonce, aad, plaintext, 8));
    const opened = ccm.openAtBytes(nonce, aad, sealed, 0, plaintext.length);
    assert.ok(opened !== undefined);
    assert.equal(Object.getPrototypeOf(opened), Uint8Array.prototype);
    kept.push({ sealed, opened, plaintext });
  }
  for (const [i, { sealed, opened, plaintext }] of kept.entries()) {
    const nonce = Buffer.alloc(13, i & 0xff);
    nonce.writeUInt32BE(i, 9);
    assert.deepEqual(Buffer.from(opened), plaintext, `message ${i}'s plaintext kept its bytes`);
    assert.deepEqual(Buffer.from(sealed), nodeSeal(key, nonce, aad, plaintext, 8), `message ${i}'s ciphertext kept its bytes`);
  }
  const tampered = ccm.sealBytes(Buffer.alloc(13), aad, Buffer.from('x'));
  tampered[0]! ^= 1;
  assert.equal(ccm.openAtBytes(Buffer.alloc(13), aad, tampered, 0, 1), undefined);
});

test('usesKey: the bytes decide, so a key array overwritten with another key is not the same key', () => {
  const key = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
  const ccm = new AesCcm(key, 8, 13);
  assert.equal(ccm.usesKey(key), true);
  assert.equal(ccm.usesKey(Buffer.from(key)), true);
  key[15] ^= 1;
  assert.equal(ccm.usesKey(key), false, 'the instance kept a copy of the key it was made with');
  assert.equal(ccm.usesKey(key.subarray(0, 8)), false);
});
