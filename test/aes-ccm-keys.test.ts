/**
 * AesCcmKeys (issue 21, many active devices): a key not in steady use is sealed and opened with
 * Node's one-shot CCM, a key seen again soon gets an AesCcm instance, found again by its bytes when
 * its context is made anew with fresh arrays. Either way the bytes must be exactly RFC 3610's CCM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, type CipherCCMTypes } from 'node:crypto';
import fc from 'fast-check';
import { AesCcmKeys } from '../src/crypto/ccm-keys.js';

function nodeSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, tagLength: number): Buffer {
  const c = createCipheriv(`aes-${key.length * 8}-ccm` as CipherCCMTypes, key, nonce, { authTagLength: tagLength });
  c.setAAD(aad, { plaintextLength: plaintext.length });
  return Buffer.concat([c.update(Buffer.from(plaintext)), c.final(), c.getAuthTag()]);
}

/** RFC 8613 §5.2-shaped: `mask` XOR the counter in the last 5 bytes. */
function countedNonce(mask: Uint8Array, counter: number): Uint8Array {
  const out = Uint8Array.from(mask);
  let v = counter;
  for (let i = 0; i < 5; i++) {
    out[out.length - 1 - i]! ^= v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}

const keyOf = (i: number, length = 16): Uint8Array => {
  const key = new Uint8Array(length).fill(0x17);
  key[0] = i >> 8;
  key[1] = i & 0xff;
  return key;
};

test('one-shot and instance paths seal and open as Node\'s AES-CCM, keys coming back in fresh arrays, forgeries refused (fast-check)', () => {
  const step = fc.record({
    key: fc.integer({ min: 0, max: 5 }),
    counter: fc.integer({ min: 0, max: 40 }),
    claimCounter: fc.boolean(),
    plaintext: fc.uint8Array({ maxLength: 300 }),
    aad: fc.uint8Array({ maxLength: 40 }),
    flip: fc.nat(),
  });
  const params = fc.record({
    keyLength: fc.constantFrom(16, 24, 32),
    tagLength: fc.constantFrom(4, 8, 16),
    nonceLength: fc.integer({ min: 7, max: 13 }),
    warm: fc.integer({ min: 1, max: 4 }),
    steps: fc.array(step, { minLength: 1, maxLength: 40 }),
  });
  fc.assert(
    fc.property(params, ({ keyLength, tagLength, nonceLength, warm, steps }) => {
      const keys = new AesCcmKeys(tagLength, nonceLength, { warm, counterBytes: 5 });
      const mask = new Uint8Array(nonceLength).fill(0x5c);
      let oneShots = 0;
      for (const { key: k, counter, claimCounter, plaintext, aad, flip } of steps) {
        // A fresh array each time, as a context made again from a table's bytes holds.
        const key = keyOf(k, keyLength);
        const nonce = countedNonce(mask, counter);
        const expected = nodeSeal(key, nonce, aad, plaintext, tagLength);
        assert.deepEqual(Buffer.from(keys.seal(key, nonce, aad, plaintext, claimCounter ? counter : undefined)), expected);
        assert.deepEqual(Buffer.from(keys.open(keyOf(k, keyLength), nonce, aad, expected, claimCounter ? counter : undefined)!), Buffer.from(plaintext));
        const forged = Buffer.from(expected);
        forged[flip % forged.length]! ^= 1 << (flip % 8);
        assert.equal(keys.open(key, nonce, aad, forged), undefined);
        assert.ok(keys.warmKeys <= warm);
        assert.ok(keys.oneShots >= oneShots);
        oneShots = keys.oneShots;
      }
    }),
    { numRuns: 300 },
  );
});

test('a key\'s first message is one-shot; seen again soon it gets an instance, which a fresh array of the same bytes finds', () => {
  const keys = new AesCcmKeys(8, 13, { warm: 8 });
  const nonce = new Uint8Array(13).fill(1);
  const text = new TextEncoder().encode('a response of 22 bytes');
  keys.seal(keyOf(1), nonce, new Uint8Array(0), text);
  assert.equal(keys.oneShots, 1);
  assert.equal(keys.warmKeys, 0, 'no instance for a key used once');
  const array = keyOf(1);
  keys.seal(array, nonce, new Uint8Array(0), text);
  assert.equal(keys.oneShots, 1, 'the second message goes through an instance');
  assert.equal(keys.warmKeys, 1);
  keys.seal(array, nonce, new Uint8Array(0), text);
  keys.open(keyOf(1), nonce, new Uint8Array(0), keys.seal(keyOf(1), nonce, new Uint8Array(0), text));
  assert.equal(keys.oneShots, 1, 'the same array, and fresh arrays of the same key, find the instance');
  assert.equal(keys.warmKeys, 1);
  // An array overwritten with another key is that other key (its first message: one-shot).
  array.set(keyOf(2));
  assert.deepEqual(Buffer.from(keys.seal(array, nonce, new Uint8Array(0), text)), nodeSeal(keyOf(2), nonce, new Uint8Array(0), text, 8));
  assert.equal(keys.oneShots, 2);
});

test('keys that come back only after more than `warm` other keys never get an instance; instances stay bounded', () => {
  const warm = 16;
  const keys = new AesCcmKeys(8, 13, { warm });
  const nonce = new Uint8Array(13).fill(3);
  const text = new TextEncoder().encode('one device among many');
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 4 * warm; i++) {
      const key = keyOf(i);
      assert.deepEqual(Buffer.from(keys.seal(key, nonce, new Uint8Array(0), text)), nodeSeal(key, nonce, new Uint8Array(0), text, 8));
    }
  }
  assert.equal(keys.warmKeys, 0, 'each key came back after 63 others: one-shot every time');
  assert.equal(keys.oneShots, 3 * 4 * warm);
  // A hot set larger than `warm`: instances are made, but at most `warm` are kept by their bytes.
  for (let round = 0; round < 3; round++) for (let i = 0; i < 2 * warm; i++) keys.seal(keyOf(1000 + (i % (warm + 4))), nonce, new Uint8Array(0), text);
  assert.ok(keys.warmKeys > 0 && keys.warmKeys <= warm, `${keys.warmKeys} warm keys`);
});

test('wrong sizes: seal throws RangeError on both paths, open answers undefined', () => {
  const keys = new AesCcmKeys(8, 13, { warm: 4 });
  const nonce = new Uint8Array(13);
  // Nonce of 13 bytes: L = 2, so at most 65,535 bytes.
  const huge = new Uint8Array(65_536);
  assert.throws(() => keys.seal(keyOf(7), nonce, new Uint8Array(0), huge), RangeError);
  assert.throws(() => keys.seal(keyOf(7), nonce, new Uint8Array(0), huge), RangeError);
  assert.throws(() => keys.seal(keyOf(7), new Uint8Array(12), new Uint8Array(0), new Uint8Array(1)), RangeError);
  assert.throws(() => keys.seal(new Uint8Array(15), nonce, new Uint8Array(0), new Uint8Array(1)), RangeError);
  assert.throws(() => new AesCcmKeys(5, 13), RangeError);
  assert.throws(() => new AesCcmKeys(8, 13, { warm: 0 }), RangeError);
  for (let i = 0; i < 2; i++) {
    assert.equal(keys.open(keyOf(8), nonce, new Uint8Array(0), new Uint8Array(7)), undefined, 'shorter than the tag');
    assert.equal(keys.open(keyOf(8), new Uint8Array(12), new Uint8Array(0), new Uint8Array(20)), undefined, 'wrong nonce length');
    assert.equal(keys.open(new Uint8Array(15), nonce, new Uint8Array(0), new Uint8Array(20)), undefined, 'wrong key length');
  }
});

test('a kept key array gets an instance when it comes back within `warm` one-shot messages, not after more', () => {
  const warm = 8;
  const keys = new AesCcmKeys(8, 13, { warm });
  const nonce = new Uint8Array(13).fill(5);
  const text = new TextEncoder().encode('a device that stays');
  const seal = (key: Uint8Array): void => assert.deepEqual(Buffer.from(keys.seal(key, nonce, new Uint8Array(0), text)), nodeSeal(key, nonce, new Uint8Array(0), text, 8));
  // Many kept contexts taking turns: each key comes back after 31 others, one-shot every time.
  const many = Array.from({ length: 4 * warm }, (_, i) => keyOf(2000 + i));
  for (let round = 0; round < 3; round++) for (const key of many) seal(key);
  assert.equal(keys.oneShots, 3 * 4 * warm);
  assert.equal(keys.warmKeys, 0);
  // A few taking turns within the span: an instance each from their second message on.
  const few = Array.from({ length: 3 }, (_, i) => keyOf(3000 + i));
  for (let round = 0; round < 4; round++) for (const key of few) seal(key);
  assert.equal(keys.oneShots, 3 * 4 * warm + few.length);
});

/** FNV-1a as AesCcmKeys hashes a key, to build keys that share a slot and a hash. */
function fnvOf(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const b of bytes) hash = Math.imul(hash ^ b, 0x01000193);
  return hash | 0;
}

/** Two different 16-byte keys with the same 32-bit FNV-1a hash (a birthday search, ≈ 2^16 keys: bounded). */
function collidingKeys(): [Uint8Array, Uint8Array] {
  // Eight bytes from a counter, spread by a multiply: a counter in four bytes alone gives FNV no collision.
  const keyFor = (i: number): Uint8Array => {
    const key = keyOf(0, 16);
    const view = new DataView(key.buffer);
    view.setUint32(4, Math.imul(i, 0x9e3779b1));
    view.setUint32(8, Math.imul(i ^ 0x5bd1e995, 0x85ebca6b));
    return key;
  };
  const seen = new Map<number, number>();
  for (let i = 0; i < 1 << 20; i++) {
    const hash = fnvOf(keyFor(i));
    const earlier = seen.get(hash);
    if (earlier !== undefined) return [keyFor(earlier), keyFor(i)];
    seen.set(hash, i);
  }
  throw new Error('no collision found');
}

test('key arrays whose bytes are overwritten in place (a context table lends them on) and keys sharing a hash: every message is its key\'s CCM (fast-check)', () => {
  const [a, b] = collidingKeys();
  assert.equal(fnvOf(a), fnvOf(b));
  assert.notDeepEqual(a, b);
  const step = fc.record({ key: fc.integer({ min: 0, max: 5 }), array: fc.integer({ min: 0, max: 2 }), counter: fc.integer({ min: 0, max: 40 }), plaintext: fc.uint8Array({ maxLength: 60 }) });
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4 }), fc.array(step, { minLength: 1, maxLength: 60 }), (warm, steps) => {
      const keys = new AesCcmKeys(8, 13, { warm, counterBytes: 5 });
      const mask = new Uint8Array(13).fill(0x3a);
      const candidates = [a, b, keyOf(1), keyOf(2), keyOf(3), keyOf(4)];
      // Three arrays, each holding one key's bytes at a time and overwritten with another's.
      const arrays = [new Uint8Array(16), new Uint8Array(16), new Uint8Array(16)];
      for (const { key: k, array, counter, plaintext } of steps) {
        const key = arrays[array]!;
        key.set(candidates[k]!);
        const nonce = countedNonce(mask, counter);
        const expected = nodeSeal(candidates[k]!, nonce, new Uint8Array(0), plaintext, 8);
        assert.deepEqual(Buffer.from(keys.seal(key, nonce, new Uint8Array(0), plaintext, counter)), expected);
        assert.deepEqual(Buffer.from(keys.open(key, nonce, new Uint8Array(0), expected, counter)!), Buffer.from(plaintext));
      }
    }),
    { numRuns: 300 },
  );
});
