/** AEAD and HKDF algorithms by COSE id and name; context derivation limits (RFC 8613 §3). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  AeadId,
  HkdfId,
  OscoreConfigError,
  aeadAlgorithm,
  aeadIdFromName,
  aeadName,
  allAeadAlgorithms,
  deriveContext,
  findAeadAlgorithm,
  hkdfAlgorithm,
  hkdfIdFromName,
  hkdfName,
  nonce,
} from '../src/oscore/index.js';

const EXPECTED: [number, string, number, number, number][] = [
  [10, 'AES-CCM-16-64-128', 16, 13, 8],
  [11, 'AES-CCM-16-64-256', 32, 13, 8],
  [30, 'AES-CCM-16-128-128', 16, 13, 16],
  [1, 'A128GCM', 16, 12, 16],
  [2, 'A192GCM', 24, 12, 16],
  [3, 'A256GCM', 32, 12, 16],
  [24, 'ChaCha20/Poly1305', 32, 12, 16],
];

test('AEAD table: key, nonce and tag lengths per draft-ietf-cose-rfc8152bis-algs', () => {
  assert.equal(allAeadAlgorithms().length, EXPECTED.length);
  for (const [id, name, key, nonceLength, tag] of EXPECTED) {
    const a = aeadAlgorithm(id);
    assert.deepEqual([a.id, a.name, a.keyLength, a.nonceLength, a.tagLength, a.maxIdLength], [id, name, key, nonceLength, tag, nonceLength - 6]);
    assert.equal(aeadName(id), name);
    assert.equal(aeadIdFromName(name), id);
    assert.equal(findAeadAlgorithm(String(id))?.id, id);
  }
  assert.equal(aeadIdFromName('aes_ccm_16_64_128'), 10);
  assert.equal(aeadIdFromName('chacha20-poly1305'), 24);
  assert.equal(findAeadAlgorithm(99), undefined);
  assert.throws(() => aeadAlgorithm('AES-CCM-64-64-128'), OscoreConfigError);
});

test('HKDF table: names and ids', () => {
  assert.equal(hkdfName(-10), 'HKDF SHA-256');
  assert.equal(hkdfName(-11), 'HKDF SHA-512');
  assert.equal(hkdfIdFromName('HKDF SHA-256'), HkdfId.HKDF_SHA_256);
  assert.equal(hkdfIdFromName('hkdf-sha-512'), HkdfId.HKDF_SHA_512);
  assert.equal(hkdfIdFromName('direct+HKDF-SHA-256'), HkdfId.HKDF_SHA_256, 'the COSE registry name libcoap uses');
  assert.throws(() => hkdfAlgorithm(5), /unknown OSCORE HKDF algorithm 5/);
});

for (const alg of allAeadAlgorithms()) {
  test(`${alg.name}: seal/open round trip; tampering, wrong key/nonce/AAD fail without throwing`, () => {
    const key = randomBytes(alg.keyLength);
    const n = randomBytes(alg.nonceLength);
    const aad = randomBytes(21);
    for (const length of [1, 15, 16, 17, 200]) {
      const plaintext = randomBytes(length);
      const sealed = alg.seal(key, n, aad, plaintext);
      assert.equal(sealed.length, length + alg.tagLength);
      assert.deepEqual(alg.open(key, n, aad, sealed), new Uint8Array(plaintext));
      for (const at of [0, sealed.length - 1]) {
        const bad = Uint8Array.from(sealed);
        bad[at]! ^= 1;
        assert.equal(alg.open(key, n, aad, bad), undefined, `flipped byte ${at}`);
      }
      const otherAad = Uint8Array.from(aad);
      otherAad[3]! ^= 0x80;
      assert.equal(alg.open(key, n, otherAad, sealed), undefined);
      assert.equal(alg.open(randomBytes(alg.keyLength), n, aad, sealed), undefined);
      assert.equal(alg.open(key, randomBytes(alg.nonceLength), aad, sealed), undefined);
    }
    assert.equal(alg.open(key, n, aad, new Uint8Array(alg.tagLength - 1)), undefined, 'shorter than a tag');
    assert.equal(alg.open(key.subarray(1), n, aad, new Uint8Array(40)), undefined, 'short key');
    assert.equal(alg.open(key, n.subarray(1), aad, new Uint8Array(40)), undefined, 'short nonce');
    assert.throws(() => alg.seal(key.subarray(1), n, aad, Uint8Array.of(1)), OscoreConfigError);
  });

  test(`${alg.name}: context derivation gives keys and IV of the algorithm's lengths; both sides agree`, () => {
    const masterSecret = randomBytes(32);
    const a = deriveContext({ masterSecret, senderId: Uint8Array.of(1), recipientId: Uint8Array.of(2), aead: alg.id });
    const b = deriveContext({ masterSecret, senderId: Uint8Array.of(2), recipientId: Uint8Array.of(1), aead: alg.id });
    assert.equal(a.senderKey.length, alg.keyLength);
    assert.equal(a.commonIv.length, alg.nonceLength);
    assert.deepEqual(a.senderKey, b.recipientKey);
    assert.deepEqual(a.recipientKey, b.senderKey);
    assert.deepEqual(a.commonIv, b.commonIv);
  });
}

test('HKDF SHA-512 derives different material than SHA-256 (and the default is SHA-256)', () => {
  const base = { masterSecret: Uint8Array.of(1, 2, 3), senderId: Uint8Array.of(), recipientId: Uint8Array.of(1) };
  const d = deriveContext(base);
  const s256 = deriveContext({ ...base, hkdf: -10 });
  const s512 = deriveContext({ ...base, hkdf: -11 });
  assert.deepEqual(d.senderKey, s256.senderKey);
  assert.notDeepEqual(s256.senderKey, s512.senderKey);
  assert.equal(s512.hkdf, -11);
});

test('§3.3 identifier length limit: nonce length − 6, with a clear OscoreConfigError', () => {
  const masterSecret = Uint8Array.of(9);
  // AES-CCM-16-64-128: 7 bytes allowed, 8 refused.
  deriveContext({ masterSecret, senderId: new Uint8Array(7), recipientId: new Uint8Array(7).fill(1) });
  assert.throws(
    () => deriveContext({ masterSecret, senderId: new Uint8Array(8), recipientId: Uint8Array.of(1) }),
    (e: unknown) => e instanceof OscoreConfigError && /Sender ID is 8 bytes.*at most 7/.test(e.message),
  );
  assert.throws(
    () => deriveContext({ masterSecret, senderId: Uint8Array.of(1), recipientId: new Uint8Array(8) }),
    (e: unknown) => e instanceof OscoreConfigError && /Recipient ID is 8 bytes/.test(e.message),
  );
  // GCM (12-byte nonce): 6 bytes allowed, 7 refused.
  deriveContext({ masterSecret, senderId: new Uint8Array(6), recipientId: Uint8Array.of(1), aead: AeadId.A128GCM });
  assert.throws(
    () => deriveContext({ masterSecret, senderId: new Uint8Array(7), recipientId: Uint8Array.of(1), aead: AeadId.A128GCM }),
    /A128GCM allows at most 6/,
  );
});

test('derivation refuses an empty Master Secret, equal Sender and Recipient IDs, unknown algorithms', () => {
  assert.throws(() => deriveContext({ masterSecret: new Uint8Array(0), senderId: Uint8Array.of(), recipientId: Uint8Array.of(1) }), /Master Secret/);
  assert.throws(() => deriveContext({ masterSecret: Uint8Array.of(1), senderId: Uint8Array.of(1), recipientId: Uint8Array.of(1) }), /must differ/);
  assert.throws(() => deriveContext({ masterSecret: Uint8Array.of(1), senderId: Uint8Array.of(), recipientId: Uint8Array.of(1), aead: 4 }), OscoreConfigError);
  assert.throws(() => deriveContext({ masterSecret: Uint8Array.of(1), senderId: Uint8Array.of(), recipientId: Uint8Array.of(1), hkdf: -12 }), OscoreConfigError);
});

test('§5.2 nonce layout: S, padded ID, padded PIV, XOR Common IV', () => {
  const zeroIv = new Uint8Array(13);
  assert.deepEqual(
    nonce(zeroIv, Uint8Array.of(0xaa, 0xbb), Uint8Array.of(0x01, 0x02)),
    Uint8Array.of(2, 0, 0, 0, 0, 0, 0xaa, 0xbb, 0, 0, 0, 1, 2),
  );
  assert.deepEqual(nonce(new Uint8Array(12), new Uint8Array(0), Uint8Array.of(0xff, 1, 2, 3, 4)), Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3, 4));
  assert.throws(() => nonce(zeroIv, new Uint8Array(8), Uint8Array.of(0)), OscoreConfigError);
});
