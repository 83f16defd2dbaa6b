import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { extendedMasterSecret, keyBlock, masterSecret, prf, pskPremaster } from '../src/dtls/index.js';

const h = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('TLS 1.2 PRF (P_SHA256) published known-answer vector', () => {
  const secret = h('9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35');
  const seed = h('a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c');
  const expected = h(`
    e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4 e6 1e db 5a
    6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d ef 17 ab fd 37 97 c0 56 4b ab
    4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1 22 ee 42 c5 a7 2e 5a 51 10 ff f7 01
    87 34 7b 66`);
  assert.equal(expected.length, 100);
  assert.deepEqual(prf(secret, 'test label', seed, 100), expected);
  // prefixes are consistent (output is a stream)
  assert.deepEqual(prf(secret, 'test label', seed, 17), expected.subarray(0, 17));
});

/** Independent, literal transcription of RFC 5246 §5 for cross-checking other lengths. */
function referencePrf(secret: Buffer, label: string, seed: Buffer, n: number): Buffer {
  const fullSeed = Buffer.concat([Buffer.from(label), seed]);
  const hmac = (data: Buffer) => createHmac('sha256', secret).update(data).digest();
  const a: Buffer[] = [fullSeed];
  let out = Buffer.alloc(0);
  for (let i = 1; out.length < n; i++) {
    a[i] = hmac(a[i - 1]!);
    out = Buffer.concat([out, hmac(Buffer.concat([a[i]!, fullSeed]))]);
  }
  return out.subarray(0, n);
}

test('PRF agrees with a reference transcription for assorted lengths', () => {
  const secret = Buffer.from('secret secret secret');
  const seed = Buffer.from('some seed');
  for (const n of [1, 12, 31, 32, 33, 48, 64, 65, 200]) {
    assert.deepEqual(prf(secret, 'label', seed, n), referencePrf(secret, 'label', seed, n), `length ${n}`);
  }
});

test('master secret, EMS and key block derivations use the RFC labels and seeds', () => {
  const pre = Buffer.alloc(48, 1);
  const cr = Buffer.alloc(32, 2);
  const sr = Buffer.alloc(32, 3);
  assert.deepEqual(masterSecret(pre, cr, sr), referencePrf(pre, 'master secret', Buffer.concat([cr, sr]), 48));
  const sessionHash = Buffer.alloc(32, 4);
  assert.deepEqual(extendedMasterSecret(pre, sessionHash), referencePrf(pre, 'extended master secret', sessionHash, 48));
  const ms = Buffer.alloc(48, 5);
  const kb = keyBlock(ms, cr, sr, 16, 4);
  const raw = referencePrf(ms, 'key expansion', Buffer.concat([sr, cr]), 40);
  assert.deepEqual(kb.clientWriteKey, raw.subarray(0, 16));
  assert.deepEqual(kb.serverWriteKey, raw.subarray(16, 32));
  assert.deepEqual(kb.clientWriteIv, raw.subarray(32, 36));
  assert.deepEqual(kb.serverWriteIv, raw.subarray(36, 40));
});

test('PSK premaster secret layout (RFC 4279 §2)', () => {
  const psk = Buffer.from([0xaa, 0xbb, 0xcc]);
  assert.deepEqual(pskPremaster(psk), Buffer.from([0, 3, 0, 0, 0, 0, 3, 0xaa, 0xbb, 0xcc]));
});
