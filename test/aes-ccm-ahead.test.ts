/**
 * AesCcm.keystreamAhead (issue 21): keystreams computed in batches for nonces that end in a
 * counter (RFC 8613 §5.2's Partial IV) must give exactly the ciphertexts and plaintexts of the
 * unbatched computation — checked against Node's own AES-CCM — whatever order the counters come
 * in, whatever a caller claims the counter is, and however many keys hold batches.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, type CipherCCMTypes } from 'node:crypto';
import fc from 'fast-check';
import { AesCcm } from '../src/crypto/aes-ccm.js';

function nodeSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, tagLength: number): Buffer {
  const c = createCipheriv(`aes-${key.length * 8}-ccm` as CipherCCMTypes, key, nonce, { authTagLength: tagLength });
  c.setAAD(aad, { plaintextLength: plaintext.length });
  return Buffer.concat([c.update(Buffer.from(plaintext)), c.final(), c.getAuthTag()]);
}

/** An RFC 8613 §5.2-shaped nonce: `mask` XOR the counter in the last 5 bytes, big-endian. */
function countedNonce(mask: Uint8Array, counter: number): Buffer {
  const out = Buffer.from(mask);
  let v = counter;
  for (let i = 0; i < 5; i++) {
    out[out.length - 1 - i]! ^= v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}

const openSealed = (ccm: AesCcm, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, counter: number): Buffer | undefined => {
  const n = sealed.length - ccm.tagLength;
  return ccm.openAt(nonce, aad, sealed, 0, n, ccm.keystreamAhead(nonce, counter, 5, n));
};

test('batched keystreams seal and open exactly as Node\'s AES-CCM, for counters in any order and any claimed counter (fast-check)', () => {
  const step = fc.record({
    // Mostly the next counter, sometimes a jump back or ahead, sometimes a wrong claim.
    move: fc.constantFrom('next', 'next', 'next', 'back', 'jump', 'same'),
    jump: fc.integer({ min: 1, max: 40 }),
    claimOff: fc.constantFrom(0, 0, 0, 1, -1, 16),
    plaintext: fc.uint8Array({ maxLength: 300 }),
    aad: fc.uint8Array({ maxLength: 40 }),
  });
  const params = fc.record({
    keyLength: fc.constantFrom(16, 32),
    tagLength: fc.constantFrom(8, 16),
    nonceLength: fc.integer({ min: 7, max: 13 }),
    seed: fc.uint8Array({ minLength: 45, maxLength: 45 }),
    start: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constant(2 ** 40 - 3)),
    steps: fc.array(step, { minLength: 1, maxLength: 40 }),
  });
  fc.assert(
    fc.property(params, ({ keyLength, tagLength, nonceLength, seed, start, steps }) => {
      const key = seed.subarray(0, keyLength);
      const mask = seed.subarray(32, 32 + nonceLength);
      const ccm = new AesCcm(key, tagLength, nonceLength);
      let counter = start;
      for (const { move, jump, claimOff, plaintext, aad } of steps) {
        if (move === 'next') counter++;
        else if (move === 'back') counter = Math.max(0, counter - jump);
        else if (move === 'jump') counter += jump;
        const nonce = countedNonce(mask, counter);
        const claimed = Math.max(0, counter + claimOff);
        const expected = nodeSeal(key, nonce, aad, plaintext, tagLength);
        const sealed = ccm.seal(nonce, aad, plaintext, ccm.keystreamAhead(nonce, claimed, 5, plaintext.length));
        assert.deepEqual(Buffer.from(sealed), expected);
        assert.deepEqual(openSealed(ccm, nonce, aad, expected, claimed), Buffer.from(plaintext));
        // A changed tag is still refused with a batch keystream.
        const forged = Buffer.from(expected);
        forged[forged.length - 1]! ^= 1;
        assert.equal(openSealed(ccm, nonce, aad, forged, claimed), undefined);
      }
    }),
    { numRuns: 400 },
  );
});

test('a batch serves the nonces after the one that made it, and only for messages it covers', () => {
  const ccm = new AesCcm(Buffer.alloc(16, 6), 8, 13);
  const mask = Buffer.alloc(13, 0x5c);
  // A key's first message gets no batch (it may be the only one for a long time); the next does.
  assert.equal(ccm.keystreamAhead(countedNonce(mask, 99), 99, 5, 22), undefined);
  const first = ccm.keystreamAhead(countedNonce(mask, 100), 100, 5, 22);
  assert.ok(first);
  const bytes = first.bytes;
  // The next counters' keystreams come from the same buffer (no new AES call), further along.
  for (let k = 1; k < 16; k++) {
    const slice = ccm.keystreamAhead(countedNonce(mask, 100 + k), 100 + k, 5, 22);
    assert.equal(slice?.bytes, bytes, `counter ${100 + k}`);
    assert.equal(slice.at, k * slice.length);
  }
  // Past the batch, and for another nonce claiming a batched counter: a new batch.
  assert.notEqual(ccm.keystreamAhead(countedNonce(mask, 116), 116, 5, 22)?.bytes, bytes);
  // (The slice is reused by the next call: its buffer is read at once.)
  const other = ccm.keystreamAhead(countedNonce(Buffer.alloc(13, 0x33), 117), 117, 5, 22)?.bytes;
  assert.ok(other);
  assert.notEqual(ccm.keystreamAhead(countedNonce(mask, 117), 117, 5, 22)?.bytes, other);
  // Too long to batch: the caller computes the keystream itself.
  assert.equal(ccm.keystreamAhead(countedNonce(mask, 118), 118, 5, 241), undefined);
  assert.equal(ccm.keystreamAhead(countedNonce(mask, 118), -1, 5, 10), undefined);
  assert.equal(ccm.keystreamAhead(Buffer.alloc(12), 1, 5, 10), undefined);
});

test('batches are bounded across keys: an instance whose batch was dropped still seals correctly', () => {
  const mask = Buffer.alloc(13, 0x21);
  const instances = Array.from({ length: 300 }, (_, i) => {
    const key = Buffer.alloc(16, 0);
    key.writeUInt16BE(i, 0);
    return { key, ccm: new AesCcm(key, 8, 13) };
  });
  const plaintext = Buffer.from('a response of 22 bytes');
  for (let round = 0; round < 3; round++) {
    for (const [i, { key, ccm }] of instances.entries()) {
      const counter = round * 3 + (i % 5);
      const nonce = countedNonce(mask, counter);
      const sealed = ccm.seal(nonce, Buffer.alloc(0), plaintext, ccm.keystreamAhead(nonce, counter, 5, plaintext.length));
      assert.deepEqual(Buffer.from(sealed), nodeSeal(key, nonce, Buffer.alloc(0), plaintext, 8), `key ${i} round ${round}`);
    }
  }
});

test('a sealed message is its own array: sealing the next message under a batch does not change it', () => {
  const key = Buffer.alloc(16, 9);
  const ccm = new AesCcm(key, 8, 13);
  const mask = Buffer.alloc(13, 0x44);
  const kept: { sealed: Uint8Array; copy: Buffer }[] = [];
  for (let counter = 0; counter < 40; counter++) {
    const nonce = countedNonce(mask, counter);
    const text = Buffer.alloc(20, counter);
    const sealed = ccm.seal(nonce, Buffer.alloc(0), text, ccm.keystreamAhead(nonce, counter, 5, text.length));
    kept.push({ sealed, copy: Buffer.from(sealed) });
    const opened = openSealed(ccm, nonce, Buffer.alloc(0), sealed, counter);
    assert.deepEqual(opened, text);
  }
  for (const [i, { sealed, copy }] of kept.entries()) assert.deepEqual(Buffer.from(sealed), copy, `message ${i}`);
});

test('a key used rarely among many computes no batch, and still seals correctly', () => {
  const mask = Buffer.alloc(13, 0x37);
  const rare = new AesCcm(Buffer.alloc(16, 0x42), 8, 13);
  const busy = Array.from({ length: 300 }, (_, i) => new AesCcm(Buffer.alloc(16, i & 0xff).fill(i >> 8, 0, 1), 8, 13));
  const plaintext = Buffer.from('one device among many');
  for (let round = 0; round < 3; round++) {
    // Every other key is used in between: more than a batch slot's lifetime of calls.
    for (const [i, ccm] of busy.entries()) ccm.keystreamAhead(countedNonce(mask, round * 1000 + i), round * 1000 + i, 5, plaintext.length);
    const nonce = countedNonce(mask, round);
    assert.equal(rare.keystreamAhead(nonce, round, 5, plaintext.length), undefined, `round ${round}: no batch for a key not used within the last calls`);
    const sealed = rare.seal(nonce, Buffer.alloc(0), plaintext, undefined);
    assert.deepEqual(Buffer.from(sealed), nodeSeal(Buffer.alloc(16, 0x42), nonce, Buffer.alloc(0), plaintext, 8), `round ${round}`);
  }
  // Used again at once, it batches.
  assert.ok(rare.keystreamAhead(countedNonce(mask, 3), 3, 5, plaintext.length));
});
