/** COSE algorithms, keys, ECDH, signatures, Encrypt0 and CCS. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coseAead, CoseAead, CoseCurve, CoseError, CoseHmac, coseHash, CoseHash, coseKeyFromKeyObject, coseKeyToPrivateKey, coseKeyToPublicKey, CoseSignAlg, createSign1, decodeEncrypt0, decodeSign1, decodeStrict, decrypt0, encodeCbor, ecdhKeyPairFromPrivate, ecdhSharedSecret, encodeCcs, encodeCoseKey, encodeEncrypt0, encodeSign1, encrypt0, fromHex, generateEcdhKeyPair, hkdfByHmac, parseCcs, parseCoseKey, signBytes, toHex, verifyBytes, verifySign1, generateKeyPairOn } from '../src/cose/index.js';

describe('AEAD registry', () => {
  for (const id of [CoseAead.AES_CCM_16_64_128, CoseAead.AES_CCM_16_128_128, CoseAead.A128GCM, CoseAead.A256GCM, CoseAead.CHACHA20_POLY1305]) {
    it(`alg ${id}: seals, opens, and refuses any flipped bit`, () => {
      const a = coseAead(id);
      const key = new Uint8Array(a.keyLength).fill(7);
      const nonce = new Uint8Array(a.nonceLength).fill(3);
      const aad = Uint8Array.of(1, 2, 3);
      const sealed = a.seal(key, nonce, aad, Uint8Array.of(9, 8, 7, 6));
      assert.equal(sealed.length, 4 + a.tagLength);
      assert.deepEqual(a.open(key, nonce, aad, sealed), Uint8Array.of(9, 8, 7, 6));
      for (let i = 0; i < sealed.length; i += 1) {
        const bad = sealed.slice();
        bad[i]! ^= 1;
        assert.equal(a.open(key, nonce, aad, bad), undefined, `bit flip at ${i}`);
      }
      assert.equal(a.open(key, nonce, Uint8Array.of(1, 2), sealed), undefined);
      assert.equal(a.open(key, nonce, aad, sealed.subarray(0, a.tagLength - 1)), undefined);
      assert.throws(() => a.seal(key.subarray(1), nonce, aad, new Uint8Array(0)), CoseError);
    });
  }

  it('AES-CCM: a key array overwritten with another key seals and opens under the new key (its cached cipher is not reused)', () => {
    const a = coseAead(CoseAead.AES_CCM_16_64_128);
    const key = new Uint8Array(16).fill(7);
    const nonce = new Uint8Array(13).fill(3);
    const plaintext = Uint8Array.of(9, 8, 7, 6);
    const underFirst = a.seal(key, nonce, new Uint8Array(0), plaintext);
    key.fill(8);
    const underSecond = a.seal(key, nonce, new Uint8Array(0), plaintext);
    assert.deepEqual(underSecond, a.seal(new Uint8Array(16).fill(8), nonce, new Uint8Array(0), plaintext));
    assert.notDeepEqual(underSecond, underFirst);
    assert.equal(a.open(key, nonce, new Uint8Array(0), underFirst), undefined);
    assert.deepEqual(a.open(key, nonce, new Uint8Array(0), underSecond), plaintext);
  });
});

describe('hash and HKDF by HMAC id', () => {
  it('HKDF with HMAC 256/256 (5) is RFC 5869 test case 1', () => {
    const h = hkdfByHmac(CoseHmac.HMAC_256_256);
    const prk = h.extract(fromHex('000102030405060708090a0b0c'), new Uint8Array(22).fill(0x0b));
    assert.equal(toHex(prk), '077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5');
    assert.equal(
      toHex(h.expand(prk, fromHex('f0f1f2f3f4f5f6f7f8f9'), 42)),
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    );
    assert.throws(() => h.expand(prk, new Uint8Array(0), 255 * 32 + 1), CoseError);
  });
  it('HMAC 384/384 (6) and 512/512 (7) have their hash lengths; SHA-256/64 truncates', () => {
    assert.equal(hkdfByHmac(6).derive(new Uint8Array(0), Uint8Array.of(1), new Uint8Array(0), 48).length, 48);
    assert.equal(hkdfByHmac(7).hashLength, 64);
    assert.equal(toHex(coseHash(CoseHash.SHA_256_64).digest(new TextEncoder().encode('abc'))), 'ba7816bf8f01cfea');
  });
});

describe('COSE_Key', () => {
  for (const [name, curve] of [
    ['Ed25519', CoseCurve.Ed25519],
    ['Ed448', CoseCurve.Ed448],
    ['X25519', CoseCurve.X25519],
    ['X448', CoseCurve.X448],
    ['P-256', CoseCurve.P256],
    ['P-384', CoseCurve.P384],
  ] as const) {
    it(`${name}: KeyObject → COSE_Key → CBOR → KeyObject`, () => {
      const { privateKey, publicKey } = generateKeyPairOn(curve);
      const ck = coseKeyFromKeyObject(privateKey, { kid: Uint8Array.of(5), includePrivate: true });
      const back = parseCoseKey(decodeStrict(encodeCbor(encodeCoseKey(ck))));
      assert.ok(coseKeyToPublicKey(back).equals(publicKey));
      assert.ok(coseKeyToPrivateKey(back).equals(privateKey));
      assert.deepEqual(back.kid, Uint8Array.of(5));
    });
  }
  it('decompresses an EC2 key given by x and a sign bit, and refuses an x off the curve', () => {
    const { publicKey } = generateKeyPairOn(CoseCurve.P256);
    const full = coseKeyFromKeyObject(publicKey);
    const y = full.y as Uint8Array;
    const compressed = { ...full, y: (y[y.length - 1]! & 1) === 1 };
    assert.ok(coseKeyToPublicKey(compressed).equals(publicKey));
    const offCurve = { ...full, x: fromHex('a04e73601df544a70ba7ea1e57030f7d4b4eb7f673924e58d54ca77a5e7d4d4a'), y: false };
    assert.throws(() => coseKeyToPublicKey(offCurve), CoseError);
  });
  it('refuses malformed COSE_Keys', () => {
    assert.throws(() => parseCoseKey(new Map<number, unknown>([[1, 1], [-1, 4], [-2, new Uint8Array(31)]]) as never), CoseError);
    assert.throws(() => parseCoseKey(new Map<number, unknown>([[1, 2], [-1, 4], [-2, new Uint8Array(32)]]) as never), CoseError);
    assert.throws(() => parseCoseKey(new Map<number, unknown>([[1, 1], [-1, 6], [-2, new Uint8Array(32)], [-3, new Uint8Array(32)]]) as never), CoseError);
  });
});

describe('ECDH', () => {
  for (const crv of [CoseCurve.X25519, CoseCurve.X448, CoseCurve.P256, CoseCurve.P384]) {
    it(`curve ${crv}: both sides get the same secret from the public keys that travel`, () => {
      const a = generateEcdhKeyPair(crv);
      const b = generateEcdhKeyPair(crv);
      assert.equal(toHex(ecdhSharedSecret(crv, a.privateKey, b.publicKey)), toHex(ecdhSharedSecret(crv, b.privateKey, a.publicKey)));
      assert.equal(toHex(ecdhKeyPairFromPrivate(crv, a.privateKey).publicKey), toHex(a.publicKey));
    });
  }
  it('refuses low-order X25519 points, wrong lengths, x ≥ p and points off the curve', () => {
    const x = generateEcdhKeyPair(CoseCurve.X25519);
    for (const low of ['00'.repeat(32), '01' + '00'.repeat(31), 'ec' + 'ff'.repeat(30) + '7f', 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800']) {
      assert.throws(() => ecdhSharedSecret(CoseCurve.X25519, x.privateKey, fromHex(low)), CoseError, low);
    }
    const p = generateEcdhKeyPair(CoseCurve.P256);
    assert.throws(() => ecdhSharedSecret(CoseCurve.P256, p.privateKey, p.publicKey.subarray(1)), CoseError);
    assert.throws(() => ecdhSharedSecret(CoseCurve.P256, p.privateKey, fromHex('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff')), CoseError);
    assert.throws(() => ecdhSharedSecret(CoseCurve.P256, p.privateKey, fromHex('a04e73601df544a70ba7ea1e57030f7d4b4eb7f673924e58d54ca77a5e7d4d4a')), CoseError);
  });
});

describe('signatures and COSE_Sign1', () => {
  for (const [alg, name, curve, length] of [
    [CoseSignAlg.EdDSA, 'Ed25519', CoseCurve.Ed25519, 64],
    [CoseSignAlg.EdDSA, 'Ed448', CoseCurve.Ed448, 114],
    [CoseSignAlg.ES256, 'P-256', CoseCurve.P256, 64],
    [CoseSignAlg.ES384, 'P-384', CoseCurve.P384, 96],
  ] as const) {
    it(`${alg} with ${name}: P1363 length ${length}, verifies, refuses a changed byte`, () => {
      const { privateKey, publicKey } = generateKeyPairOn(curve);
      const data = Uint8Array.of(1, 2, 3);
      const sig = signBytes(alg, privateKey, data);
      assert.equal(sig.length, length);
      assert.ok(verifyBytes(alg, publicKey, data, sig));
      const bad = sig.slice();
      bad[0]! ^= 1;
      assert.ok(!verifyBytes(alg, publicKey, data, bad));
      const sign1 = createSign1(alg, privateKey, Uint8Array.of(7), { externalAad: Uint8Array.of(9) });
      const decoded = decodeSign1(encodeSign1(sign1));
      assert.ok(verifySign1(decoded, publicKey, Uint8Array.of(9)));
      assert.ok(!verifySign1(decoded, publicKey, Uint8Array.of(8)));
    });
  }
  it('a key of the wrong type never verifies and cannot sign', () => {
    const ed = generateKeyPairOn(CoseCurve.Ed25519);
    assert.throws(() => signBytes(CoseSignAlg.ES256, ed.privateKey, Uint8Array.of(1)), CoseError);
    assert.ok(!verifyBytes(CoseSignAlg.ES256, ed.publicKey, Uint8Array.of(1), new Uint8Array(64)));
  });
});

describe('COSE_Encrypt0 and CCS', () => {
  it('Encrypt0 binds protected header and external_aad', () => {
    const key = new Uint8Array(16).fill(1);
    const iv = new Uint8Array(13).fill(2);
    const ct = encrypt0(10, key, iv, Uint8Array.of(5, 5), fromHex('a1010a'), Uint8Array.of(3));
    const msg = decodeEncrypt0(encodeEncrypt0({ protectedHeader: fromHex('a1010a'), unprotectedHeader: new Map(), ciphertext: ct }));
    assert.deepEqual(decrypt0(10, key, iv, msg.ciphertext, msg.protectedHeader, Uint8Array.of(3)), Uint8Array.of(5, 5));
    assert.equal(decrypt0(10, key, iv, msg.ciphertext, new Uint8Array(0), Uint8Array.of(3)), undefined);
  });
  it('a CCS carries sub and cnf/COSE_Key, and round-trips byte for byte', () => {
    const { privateKey, publicKey } = generateKeyPairOn(CoseCurve.Ed25519);
    const ccs = encodeCcs({ sub: 'device-1', coseKey: coseKeyFromKeyObject(privateKey, { kid: Uint8Array.of(0x2b) }) });
    const claims = parseCcs(ccs);
    assert.equal(claims.sub, 'device-1');
    assert.ok(coseKeyToPublicKey(claims.coseKey).equals(publicKey));
    assert.equal(toHex(claims.encoded), toHex(ccs));
    assert.equal(claims.coseKey.d, undefined);
    assert.throws(() => parseCcs(fromHex('a102676578616d706c65')), CoseError);
  });
});
