/**
 * Trust-anchor building blocks: P_SHA256 known answers (computed independently with OpenSSL's
 * TLS1-PRF KDF and Python's hmac), the DK nonce syntax, the sliding window, MacCert and
 * revocation encodings.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spkiOf } from '../src/dtls/connection.js';
import { deriveKey, formatNonce, isDkIdentity, parseNonce } from '../src/trust-anchor/derive.js';
import { computeMac, decodeMacCert, encodeMacCert, issueMacCert, macMatches, MacCertError } from '../src/trust-anchor/maccert.js';
import { decodeRevocation, encodeRevocation, revocationMacValid } from '../src/trust-anchor/revocation.js';
import { SlidingWindow } from '../src/trust-anchor/window.js';
import { generateKeyPairOn, CoseCurve } from '../src/cose/index.js';

// P_SHA256(K_RS-TA, nonce), 32 bytes, from `openssl kdf -keylen 32 -kdfopt digest:SHA256
// -kdfopt hexsecret:K -kdfopt hexseed:hex(nonce) TLS1-PRF` (OpenSSL 3.0.19); the first vector
// also from Python: A1 = HMAC(K, nonce); HMAC(K, A1 + nonce). Computed once and written here, so
// the test needs no openssl CLI: the last five have keys of 16 to 32 bytes and nonces with a random part.
const KAT = [
  ['000102030405060708090a0b0c0d0e0f', 'DK.ta1.alice.1', '7ba65e3f34d134452567b3eb736668692d9eb8a3d3034fe9a4cbd831b8448e98'],
  [
    '4b6579206f66207468652074727573742d616e63686f722c2033322062797465',
    'DK.ta-main.client_7.4294967295.0123456789abcdef0123456789abcdef',
    'e96387bf7b815bea913848fdd9e6a565fb7472ebc3217887427eac24ee17e495',
  ],
  ['ffeeddccbbaa99887766554433221100', 'DK.t.c.0', '484e7cfb29a2505316c8088659550ca0521c25d9eefade9f1a0fea43d4f11710'],
  ['00254a6f94b9de03284d7297bce1062b', 'DK.ta0.c0.1.abababababababab', '7aec4f985774a474a521932c989ea8a43778bd79be0dcc63f7895eecf03d7ad2'],
  ['01264b7095badf04294e7398bde2072c51769bc0', 'DK.ta1.c1.1001.ababababababababab', 'e47c21e065d14c0605c78a0602846e321344cec46b148bf9284b75d7bb8fd72b'],
  ['02274c7196bbe0052a4f7499bee3082d52779cc1e60b3055', 'DK.ta2.c2.2001.abababababababababab', 'f6e8952bd1954400f0a95cf35ba27422571c23a4bd676bd6124160192ae52d94'],
  ['03284d7297bce1062b50759abfe4092e53789dc2e70c31567ba0c5ea', 'DK.ta3.c3.3001.ababababababababababab', 'f1b27b265ed350a3a83211213bf5391e8665307f5296fdc36cee58bee78117b1'],
  ['04294e7398bde2072c51769bc0e50a2f54799ec3e80d32577ca1c6eb10355a7f', 'DK.ta4.c4.4001.abababababababababababab', 'f179ed8ed757eb21da7607c87d9aabe8aac8e50ba106e10b505ffce298e39a34'],
] as const;

describe('DerivedKey derivation: P_SHA256 known answers', () => {
  for (const [key, nonce, expected] of KAT) {
    it(`${nonce}: 256-bit and 128-bit K_RS-C`, () => {
      assert.equal(deriveKey(Buffer.from(key, 'hex'), nonce, 32).toString('hex'), expected);
      assert.equal(deriveKey(Buffer.from(key, 'hex'), nonce, 16).toString('hex'), expected.slice(0, 32));
    });
  }
});

describe('DK nonce', () => {
  it('formats and parses, with and without the random part', () => {
    const n = { taId: 'ta1', clientId: 'alice', sequence: 42 };
    assert.equal(formatNonce(n), 'DK.ta1.alice.42');
    assert.deepEqual(parseNonce('DK.ta1.alice.42'), n);
    const r = { ...n, random: '00112233445566778899aabbccddeeff' };
    assert.deepEqual(parseNonce(formatNonce(r)), r);
    assert.ok(isDkIdentity(Buffer.from('DK.x')));
    assert.ok(!isDkIdentity(Buffer.from('DKx')));
  });
  it('rejects malformed nonces', () => {
    for (const bad of ['DK.ta1.alice', 'DK.ta1.alice.042', 'DK.ta1.alice.4294967296', 'DK..alice.1', 'DK.ta1.alice.1.XYZ', 'DK.ta1.alice.1.00', 'dk.ta1.alice.1', 'DK.ta1.al ice.1', 'DK.a.b.1.0011223344556677.x'])
      assert.equal(parseNonce(bad), undefined, bad);
    assert.throws(() => formatNonce({ taId: 'a.b', clientId: 'c', sequence: 1 }));
  });
});

describe('sliding window (RFC 4303 Appendix A style)', () => {
  it('accepts fresh numbers, refuses replays and numbers left of the window', () => {
    const w = new SlidingWindow(64);
    assert.equal(w.check(0), 'replayed'); // the initial right edge counts as used
    assert.equal(w.check(1), 'fresh');
    assert.ok(w.mark(5));
    assert.equal(w.check(5), 'replayed');
    assert.equal(w.check(3), 'fresh'); // within the window, unused
    assert.ok(w.mark(3));
    assert.ok(!w.mark(3));
    assert.ok(w.mark(100));
    assert.equal(w.check(36), 'left-of-window'); // 100 - 36 = 64
    assert.equal(w.check(37), 'fresh');
    assert.equal(w.check(5), 'left-of-window');
    assert.ok(w.mark(37));
    assert.equal(w.check(37), 'replayed');
    // A jump wider than the window clears it.
    assert.ok(w.mark(1000));
    assert.equal(w.check(999), 'fresh');
    assert.equal(w.check(936), 'left-of-window');
    assert.equal(w.check(2 ** 32), 'invalid');
  });
  it('enforces the minimum size 32, defaults to 64, and round-trips its state', () => {
    assert.throws(() => new SlidingWindow(31));
    assert.equal(new SlidingWindow().size, 64);
    const w = new SlidingWindow(32);
    for (const s of [1, 2, 4, 40, 39]) w.mark(s);
    const r = SlidingWindow.restore(w.state());
    for (let s = 0; s < 50; s++) assert.equal(r.check(s), w.check(s), `seq ${s}`);
    assert.equal(r.check(8), 'left-of-window');
  });
  it('matches a brute-force model on random sequences', () => {
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    const w = new SlidingWindow(32);
    const used = new Set<number>([0]);
    let top = 0;
    for (let i = 0; i < 3000; i++) {
      const s = Math.max(0, top + (rnd() % 80) - 50);
      const expected = s > top ? 'fresh' : top - s >= 32 ? 'left-of-window' : used.has(s) ? 'replayed' : 'fresh';
      assert.equal(w.check(s), expected);
      if (expected === 'fresh' && rnd() % 2) {
        w.mark(s);
        used.add(s);
        top = Math.max(top, s);
      }
    }
  });
});

describe('MacCert', () => {
  const key = Buffer.alloc(32, 7);
  const spki = spkiOf(generateKeyPairOn(CoseCurve.P256).publicKey);
  it('encodes the documented layout and verifies', () => {
    const c = issueMacCert(key, spki, 'ta1', 9);
    const enc = encodeMacCert(c);
    assert.equal(enc.length, 3 + spki.length + 1 + 3 + 4 + 1 + 1 + 32);
    assert.equal(enc.readUIntBE(0, 3), spki.length);
    assert.equal(enc[3 + spki.length], 3);
    assert.equal(enc.subarray(4 + spki.length, 7 + spki.length).toString(), 'ta1');
    assert.equal(enc.readUInt32BE(7 + spki.length), 9);
    assert.equal(enc[11 + spki.length], 3); // hmac_sha256
    assert.equal(enc[12 + spki.length], 32);
    const d = decodeMacCert(enc);
    assert.deepEqual(d, c);
    assert.ok(macMatches(key, d));
    assert.ok(!macMatches(Buffer.alloc(32, 8), d));
  });
  it('binds every field, including mac_length (truncation)', () => {
    const c = issueMacCert(key, spki, 'ta1', 9, 16);
    assert.ok(macMatches(key, c));
    assert.ok(!macMatches(key, { ...c, sequence: 10 }));
    assert.ok(!macMatches(key, { ...c, trustAnchorId: 'ta2' }));
    const longer = { ...c, macLength: 20, mac: computeMac(key, { ...c, macLength: 32 }).subarray(0, 20) };
    assert.ok(!macMatches(key, longer));
  });
  it('rejects malformed encodings', () => {
    const enc = encodeMacCert(issueMacCert(key, spki, 'ta1', 9));
    assert.throws(() => decodeMacCert(enc.subarray(0, enc.length - 1)), MacCertError);
    assert.throws(() => decodeMacCert(Buffer.concat([enc, Buffer.from([0])])), MacCertError);
    assert.throws(() => decodeMacCert(Buffer.from([0, 0, 0])), MacCertError);
    for (let n = 0; n < enc.length; n++) {
      try {
        decodeMacCert(enc.subarray(0, n));
        assert.fail('truncated MacCert decoded');
      } catch (e) {
        assert.ok(e instanceof MacCertError);
      }
    }
  });
});

describe('revocation message', () => {
  it('round-trips and authenticates with K_RS-TA', () => {
    const key = Buffer.alloc(16, 1);
    const m = encodeRevocation(key, 'ta1', 77);
    const d = decodeRevocation(m)!;
    assert.deepEqual({ taId: d.taId, sequence: d.sequence }, { taId: 'ta1', sequence: 77 });
    assert.ok(revocationMacValid(key, d));
    assert.ok(!revocationMacValid(Buffer.alloc(16, 2), d));
    const tampered = Buffer.from(m);
    tampered[6] = 78;
    assert.ok(!revocationMacValid(key, decodeRevocation(tampered)!));
    assert.equal(decodeRevocation(m.subarray(1)), undefined);
  });
});
