/**
 * KUDOS updateCtx() (draft-ietf-core-oscore-key-update §4.2) against vectors of our own. The draft
 * has none (its Appendix A flows use symbolic nonces), so the values below were computed with the
 * independent derivation in this file, which follows the draft's formulas with node:crypto only:
 *
 *   old context: RFC 8613 C.1.1 Master Secret 0102…10 (client side: Sender ID h'', Recipient ID h'01',
 *                no ID Context, AES-CCM-16-64-128, HKDF SHA-256); KUDOS ignores the old salt.
 *   N1 = 0001020304050607, X1 = 0x07 (divergent, b = p = 0, m = 7)
 *   N2 = a0a1a2a3a4a5a6a7, X2 = 0x47 as sent in a convergent message; it enters CTX_NEW with
 *        the z bit cleared, 0x07 (our reading, docs/kudos.md: the only one under which two peers
 *        that both sent divergent messages, Appendix A.6, reach the same CTX_NEW).
 *
 *   CTX_TEMP = updateCtx(X1|N1, 0x, CTX_OLD):
 *     X_N = bstr(h'') | bstr(X1|N1) = 40 | 49 07 0001020304050607   (0x40 sorts before 0x49)
 *     ExpandLabel = uint16 16 | 17 "oscore key update" | len(X_N) X_N
 *     Master Secret = HKDF-Expand(old MS, ExpandLabel, 16); Master Salt = X_N
 *   CTX_NEW = updateCtx(X1|N1, X2|N2, CTX_OLD): X_N = 49 07 N1 | 49 07 N2.
 *   Keys: RFC 8613 §3.2.1, HKDF(salt = Master Salt, IKM = Master Secret,
 *         info = [id, null, 10, "Key"/"IV", L]).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, hkdfSync } from 'node:crypto';
import { deriveKeys, kudosExpandLabelInfo, splitMasterSalt, updateCtx, xN, type ContextMaterial } from '../src/kudos/index.js';

const h = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const OLD: ContextMaterial = {
  masterSecret: h('0102030405060708090a0b0c0d0e0f10'),
  masterSalt: h('9e7ca92223786340'),
  senderId: new Uint8Array(0),
  recipientId: h('01'),
  aead: 10,
  hkdf: -10,
};
const X1N1 = h('07 0001020304050607');
const X2N2 = h('07 a0a1a2a3a4a5a6a7');

const VECTORS = {
  temp: {
    masterSecret: '8050368a3ee4f620c43cfefa1712c337',
    masterSalt: '4049070001020304050607',
    senderKey: '7db86e1eb2c70dd0793f48260a26221a',
    recipientKey: 'd0e512199cf9e58db228561db6dae040',
    commonIv: '3535913c468e865e5567477c49',
  },
  next: {
    masterSecret: '0284b54d9688fbd8ef21b3f1dea77b75',
    masterSalt: '490700010203040506074907a0a1a2a3a4a5a6a7',
    senderKey: '5868ca12b5beff0a6791e5b7831a632d',
    recipientKey: '0f5c2ead567e62af6e2631a5da5afcd3',
    commonIv: '76257e1e95c8706a6906fed18d',
  },
};

// --- the independent derivation (node:crypto only) ---------------------------------------------
const bstr = (b: Buffer): Buffer => (b.length < 24 ? Buffer.concat([Buffer.of(0x40 + b.length), b]) : Buffer.concat([Buffer.of(0x58, b.length), b]));
function hkdfExpandSha256(prk: Buffer, info: Buffer, length: number): Buffer {
  let t = Buffer.alloc(0);
  let out = Buffer.alloc(0);
  for (let i = 1; out.length < length; i++) {
    t = createHmac('sha256', prk).update(Buffer.concat([t, info, Buffer.of(i)])).digest();
    out = Buffer.concat([out, t]);
  }
  return out.subarray(0, length);
}
function independentUpdate(ms: Buffer, in1: Buffer, in2: Buffer): { masterSecret: Buffer; masterSalt: Buffer } {
  const a = bstr(in1);
  const b = bstr(in2);
  const salt = Buffer.compare(a, b) <= 0 ? Buffer.concat([a, b]) : Buffer.concat([b, a]);
  const label = Buffer.from('oscore key update');
  const info = Buffer.concat([Buffer.of(ms.length >> 8, ms.length & 0xff, label.length), label, Buffer.of(salt.length), salt]);
  return { masterSecret: hkdfExpandSha256(ms, info, ms.length), masterSalt: salt };
}
function independentKeys(ms: Buffer, salt: Buffer, senderId: Buffer, recipientId: Buffer) {
  const info = (id: Buffer, type: string, l: number): Buffer =>
    Buffer.concat([Buffer.of(0x85), bstr(id), Buffer.of(0xf6, 0x0a, 0x60 + type.length), Buffer.from(type), Buffer.of(l)]);
  const k = (id: Buffer, type: string, l: number): string => Buffer.from(hkdfSync('sha256', ms, salt, info(id, type, l), l)).toString('hex');
  return { senderKey: k(senderId, 'Key', 16), recipientKey: k(recipientId, 'Key', 16), commonIv: k(Buffer.alloc(0), 'IV', 13) };
}

test('the written-down vectors are what the independent derivation gives', () => {
  const ms = Buffer.from(OLD.masterSecret);
  const sid = Buffer.alloc(0);
  const rid = Buffer.from('01', 'hex');
  for (const [name, inputs] of [['temp', [X1N1, new Uint8Array(0)]], ['next', [X1N1, X2N2]]] as const) {
    const u = independentUpdate(ms, Buffer.from(inputs[0]), Buffer.from(inputs[1]));
    const v = VECTORS[name];
    assert.equal(u.masterSecret.toString('hex'), v.masterSecret, `${name} Master Secret`);
    assert.equal(u.masterSalt.toString('hex'), v.masterSalt, `${name} Master Salt`);
    assert.deepEqual(independentKeys(u.masterSecret, u.masterSalt, sid, rid), { senderKey: v.senderKey, recipientKey: v.recipientKey, commonIv: v.commonIv });
  }
});

test('updateCtx gives CTX_TEMP and CTX_NEW of the vectors, keeping IDs and algorithms', () => {
  for (const [name, out] of [['temp', updateCtx(X1N1, new Uint8Array(0), OLD)], ['next', updateCtx(X1N1, X2N2, OLD)]] as const) {
    const v = VECTORS[name];
    assert.equal(hex(out.masterSecret), v.masterSecret);
    assert.equal(hex(out.masterSalt), v.masterSalt);
    assert.deepEqual([out.senderId, out.recipientId, out.aead, out.hkdf, out.idContext], [OLD.senderId, OLD.recipientId, 10, -10, undefined]);
    const keys = deriveKeys(out);
    assert.deepEqual({ senderKey: hex(keys.senderKey), recipientKey: hex(keys.recipientKey), commonIv: hex(keys.commonIv) }, { senderKey: v.senderKey, recipientKey: v.recipientKey, commonIv: v.commonIv });
  }
});

test('updateCtx is symmetric in its inputs: both peers derive the same CTX_NEW (§4.2 lexicographic order)', () => {
  const a = updateCtx(X1N1, X2N2, OLD);
  const b = updateCtx(X2N2, X1N1, OLD);
  assert.deepEqual(a, b);
  // The server's view: IDs swapped, same secrets, mirrored keys.
  const server = updateCtx(X2N2, X1N1, { ...OLD, senderId: OLD.recipientId, recipientId: OLD.senderId });
  assert.deepEqual(deriveKeys(server).senderKey, deriveKeys(a).recipientKey);
});

test('ExpandLabel layout: uint16 length, "oscore key update", X_N, each behind its length (§4.2 Figure 2)', () => {
  const info = kudosExpandLabelInfo(h('40 41 00'), 32);
  assert.equal(hex(info), `0020 11 ${Buffer.from('oscore key update').toString('hex')} 03 404100`.replace(/ /g, ''));
  assert.throws(() => kudosExpandLabelInfo(new Uint8Array(256), 16), /context<0..255>/);
  assert.equal(hex(xN(h('ff'), h('00'))), '410041ff');
});

test('the Master Salt of CTX_NEW splits back into the two (X, nonce) pairs (§4.3.4 step 1)', () => {
  const halves = splitMasterSalt(h(VECTORS.next.masterSalt));
  assert.ok(halves);
  assert.deepEqual(halves.map((p) => [p.x, hex(p.nonce)]), [[7, '0001020304050607'], [7, 'a0a1a2a3a4a5a6a7']]);
  assert.equal(splitMasterSalt(h('9e7ca92223786340')), undefined);
  assert.equal(splitMasterSalt(h(VECTORS.temp.masterSalt)), undefined, 'a CTX_TEMP salt has an empty half');
});

test('a 32-byte Master Secret with HKDF SHA-512 keeps its length', () => {
  const out = updateCtx(X1N1, X2N2, { ...OLD, masterSecret: new Uint8Array(32).fill(7), hkdf: -11 });
  assert.equal(out.masterSecret.length, 32);
  assert.throws(() => updateCtx(X1N1, X2N2, { ...OLD, hkdf: 5 }), /only for HKDF/);
});
