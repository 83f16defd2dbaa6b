/**
 * src/dtls/ccm8.ts: CCM_8 record protection with batched CTR keystreams, against Node's own
 * AES-128-CCM with the RFC 6655 §3 nonce and the RFC 5246 §6.2.3.3 additional_data, across batch
 * boundaries and message sizes; and the receiver's rule that only authenticated records batch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { AesCcm } from '../src/crypto/aes-ccm.js';
import { createRecordProtection } from '../src/dtls/cipher.js';
import { MAX_SEQUENCE, epochSeq } from '../src/dtls/record.js';

const KEY = Buffer.alloc(16, 0x21);
const IV = Buffer.from([9, 8, 7, 6]);
const TYPE = 23;
const VERSION = 0xfefd;

/** A record fragment as RFC 6655 §3 defines it: nonce_explicit || ciphertext || 8-byte tag, by Node's CCM. */
function reference(epoch: number, seq: number, plaintext: Buffer, explicit = epochSeq(epoch, seq)): Buffer {
  const ad = Buffer.concat([epochSeq(epoch, seq), Buffer.from([TYPE, VERSION >> 8, VERSION & 0xff, plaintext.length >> 8, plaintext.length & 0xff])]);
  const c = createCipheriv('aes-128-ccm', KEY, Buffer.concat([IV, explicit]), { authTagLength: 8 });
  c.setAAD(ad, { plaintextLength: plaintext.length });
  return Buffer.concat([explicit, c.update(plaintext), c.final(), c.getAuthTag()]);
}

/** Sizes around the batch's keystream lengths (48 bytes at least, up to 256) and beyond. */
const LENGTHS = [25, 33, 0, 48, 49, 60, 1, 300, 47, 256, 257, 16];

function countKeystreamCalls(): { readonly calls: number; restore(): void } {
  const original = AesCcm.prototype.keystreams;
  const counter = { calls: 0, restore: () => void (AesCcm.prototype.keystreams = original) };
  AesCcm.prototype.keystreams = function (this: AesCcm, nonces: Uint8Array, blocks: number) {
    counter.calls++;
    return original.call(this, nonces, blocks);
  };
  return counter;
}

test('CCM_8 encrypt matches Node\'s AES-CCM for every sequence number across batches and sizes', () => {
  const p = createRecordProtection('CCM_8', KEY, IV);
  for (let seq = 0; seq < 70; seq++) {
    const plaintext = Buffer.alloc(LENGTHS[seq % LENGTHS.length]!, seq);
    const out = p.encrypt(TYPE, VERSION, 1, seq, plaintext, 13);
    assert.deepEqual(out.subarray(13), reference(1, seq, plaintext), `seq ${seq}, ${plaintext.length} bytes`);
  }
  // A gap (the sequence jumps past the batch), a new epoch, the end of the sequence space.
  for (const [epoch, seq] of [[1, 1000], [1, 1001], [2, 1002], [2, 0], [3, MAX_SEQUENCE - 2], [3, MAX_SEQUENCE - 1], [3, MAX_SEQUENCE]] as const) {
    const plaintext = Buffer.alloc(30, seq & 0xff);
    assert.deepEqual(p.encrypt(TYPE, VERSION, epoch, seq, plaintext), reference(epoch, seq, plaintext), `epoch ${epoch} seq ${seq}`);
  }
});

test('CCM_8 sender: one keystream call serves a batch of consecutive sequence numbers', () => {
  const counter = countKeystreamCalls();
  try {
    const p = createRecordProtection('CCM_8', KEY, IV);
    const plaintext = Buffer.alloc(30, 7);
    for (let seq = 0; seq < 16; seq++) assert.deepEqual(p.encrypt(TYPE, VERSION, 1, seq, plaintext), reference(1, seq, plaintext));
    assert.equal(counter.calls, 1, 'records 0..15 from one batch');
    assert.deepEqual(p.encrypt(TYPE, VERSION, 1, 16, plaintext), reference(1, 16, plaintext));
    assert.equal(counter.calls, 2, 'record 16 starts the next batch');
  } finally {
    counter.restore();
  }
});

test('CCM_8 decrypt: in order, reordered, across batches, any nonce_explicit; forgeries refused', () => {
  const p = createRecordProtection('CCM_8', KEY, IV);
  const order = [...Array.from({ length: 40 }, (_, i) => i), 45, 41, 44, 42, 43, 90, 60, 91];
  for (const seq of order) {
    const plaintext = Buffer.alloc(LENGTHS[seq % LENGTHS.length]!, seq);
    const fragment = reference(1, seq, plaintext);
    const forged = Buffer.from(fragment);
    forged[forged.length - 1]! ^= 0x80;
    assert.equal(p.decrypt(TYPE, VERSION, 1, seq, forged), null, `forged tag, seq ${seq}`);
    assert.deepEqual(p.decrypt(TYPE, VERSION, 1, seq, fragment), plaintext, `seq ${seq}`);
    assert.equal(p.decrypt(TYPE, VERSION, 1, seq + 1, fragment), null, 'the header seq_num is bound by additional_data');
  }
  // RFC 6655 §3 has seq_num as nonce_explicit, but the nonce is taken as sent: another value works.
  const odd = Buffer.from('another nonce');
  assert.deepEqual(p.decrypt(TYPE, VERSION, 1, 92, reference(1, 92, odd, epochSeq(7, 12345))), odd);
  // A record naming a batched nonce that is not its own header's still opens with its own nonce.
  assert.deepEqual(p.decrypt(TYPE, VERSION, 1, 200, reference(1, 200, odd, epochSeq(1, 93))), odd);
  assert.equal(p.decrypt(TYPE, VERSION, 1, 0, Buffer.alloc(15)), null, 'shorter than nonce_explicit and tag');
});

test('CCM_8 receiver: only an authenticated record makes it batch the next nonces', () => {
  const counter = countKeystreamCalls();
  try {
    const p = createRecordProtection('CCM_8', KEY, IV);
    const plaintext = Buffer.alloc(25, 1);
    for (let seq = 0; seq < 40; seq++) {
      const forged = reference(1, seq, plaintext);
      forged[10]! ^= 1;
      assert.equal(p.decrypt(TYPE, VERSION, 1, seq, forged), null);
    }
    assert.equal(counter.calls, 0, 'forged records batch nothing');
    assert.deepEqual(p.decrypt(TYPE, VERSION, 1, 0, reference(1, 0, plaintext)), plaintext);
    assert.equal(counter.calls, 1, 'the authenticated record batched its successors');
    for (let seq = 1; seq < 16; seq++) assert.deepEqual(p.decrypt(TYPE, VERSION, 1, seq, reference(1, seq, plaintext)), plaintext);
    assert.equal(counter.calls, 1, 'records 1..15 used the batch');
    const forged = reference(1, 16, plaintext);
    forged[9]! ^= 4;
    assert.equal(p.decrypt(TYPE, VERSION, 1, 16, forged), null);
    assert.equal(counter.calls, 1, 'a forgery at a batched nonce changes nothing');
    assert.deepEqual(p.decrypt(TYPE, VERSION, 1, 16, reference(1, 16, plaintext)), plaintext);
    assert.equal(counter.calls, 2, 'the last batched record batched the next ones');
    // A peer whose nonce_explicit is not its seq_num gets no batches (they would go unused).
    const other = createRecordProtection('CCM_8', KEY, IV);
    const before = counter.calls;
    for (let seq = 0; seq < 20; seq++) assert.deepEqual(other.decrypt(TYPE, VERSION, 1, seq, reference(1, seq, plaintext, epochSeq(1, 5000 + 7 * seq))), plaintext);
    assert.equal(counter.calls, before);
  } finally {
    counter.restore();
  }
});
