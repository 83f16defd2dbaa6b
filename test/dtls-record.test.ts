import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ContentType, createRecordProtection, decodeRecords, encodeRecord, MAX_SEQUENCE, ReplayWindow } from '../src/dtls/index.js';

test('record encode/decode round trip, several records per datagram', () => {
  const a = encodeRecord({ type: ContentType.Handshake, version: 0xfefd, epoch: 0, seq: 5, fragment: Buffer.from('abc') });
  const b = encodeRecord({ type: ContentType.ApplicationData, version: 0xfefd, epoch: 1, seq: MAX_SEQUENCE, fragment: Buffer.from('defg') });
  assert.equal(a.length, 13 + 3);
  assert.deepEqual([...a.subarray(0, 13)], [22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 5, 0, 3]);
  const recs = decodeRecords(Buffer.concat([a, b]));
  assert.equal(recs.length, 2);
  assert.deepEqual(
    recs.map((r) => [r.type, r.epoch, r.seq, r.fragment.toString()]),
    [
      [22, 0, 5, 'abc'],
      [23, 1, MAX_SEQUENCE, 'defg'],
    ],
  );
});

test('record decoding stops at malformed records and never throws', () => {
  const a = encodeRecord({ type: ContentType.Alert, version: 0xfefd, epoch: 0, seq: 1, fragment: Buffer.from([1, 0]) });
  assert.equal(decodeRecords(Buffer.concat([a, a.subarray(0, 10)])).length, 1, 'truncated trailing header');
  const long = Buffer.from(a);
  long.writeUInt16BE(100, 11);
  assert.equal(decodeRecords(long).length, 0, 'length beyond datagram');
  const badType = Buffer.from(a);
  badType[0] = 99;
  assert.equal(decodeRecords(Buffer.concat([badType, a])).length, 0, 'unknown content type');
  const tls = Buffer.from(a);
  tls.writeUInt16BE(0x0303, 1);
  assert.equal(decodeRecords(tls).length, 0, 'TLS (not DTLS) version');
  for (let i = 0; i < 300; i++) decodeRecords(Buffer.from(Array.from({ length: i % 40 }, (_, j) => (i * 31 + j * 7) & 0xff)));
  assert.throws(() => encodeRecord({ type: 23, version: 0xfefd, epoch: 1, seq: MAX_SEQUENCE + 1, fragment: Buffer.alloc(0) }), RangeError);
});

test('replay window: duplicates, too old, out of order, large jumps', () => {
  const w = new ReplayWindow();
  assert.equal(w.isReplay(0), false);
  w.accept(0);
  assert.equal(w.isReplay(0), true, 'duplicate');
  w.accept(5);
  assert.equal(w.isReplay(3), false, 'gap inside window still acceptable');
  w.accept(3);
  assert.equal(w.isReplay(3), true);
  assert.equal(w.isReplay(4), false);
  // window is 64 wide: with max = 100, 37 is the oldest acceptable, 36 too old
  w.accept(100);
  assert.equal(w.isReplay(37), false);
  assert.equal(w.isReplay(36), true, 'left of the window');
  assert.equal(w.isReplay(5), true, 'seen long ago and now too old');
  assert.equal(w.isReplay(99), false);
  w.accept(99);
  assert.equal(w.isReplay(99), true);
  // jump by exactly 64: previous max slides out of the window
  w.accept(164);
  assert.equal(w.isReplay(100), true, 'offset 64 is outside');
  assert.equal(w.isReplay(101), false);
  // huge jump clears everything
  w.accept(2 ** 40);
  assert.equal(w.highest, 2 ** 40);
  assert.equal(w.isReplay(2 ** 40), true);
  assert.equal(w.isReplay(2 ** 40 - 1), false);
  assert.equal(w.isReplay(2 ** 40 - 63), false);
  assert.equal(w.isReplay(2 ** 40 - 64), true);
  assert.equal(w.isReplay(164), true);
  assert.equal(w.isReplay(2 ** 40 + 1), false, 'ahead of the window');
});

for (const kind of ['CCM_8', 'GCM', 'CHACHA20_POLY1305'] as const) {
  test(`AEAD record protection ${kind}: round trip, tag/nonce/AAD binding`, () => {
    const chacha = kind === 'CHACHA20_POLY1305';
    const key = Buffer.alloc(chacha ? 32 : 16, 9);
    const iv = chacha ? Buffer.alloc(12, 3) : Buffer.from([1, 2, 3, 4]);
    const p = createRecordProtection(kind, key, iv);
    assert.equal(p.overhead, { CCM_8: 16, GCM: 24, CHACHA20_POLY1305: 16 }[kind]);
    const pt = Buffer.from('attack at dawn');
    const ct = p.encrypt(23, 0xfefd, 1, 42, pt);
    assert.equal(ct.length, pt.length + p.overhead);
    if (!chacha) assert.deepEqual([...ct.subarray(0, 8)], [0, 1, 0, 0, 0, 0, 0, 42], 'explicit nonce = epoch || seq');
    assert.deepEqual(p.decrypt(23, 0xfefd, 1, 42, ct), pt);
    assert.equal(p.decrypt(23, 0xfefd, 1, 43, ct), null, 'seq bound in AAD');
    assert.equal(p.decrypt(22, 0xfefd, 1, 42, ct), null, 'type bound in AAD');
    assert.equal(p.decrypt(23, 0xfeff, 1, 42, ct), null, 'version bound in AAD');
    assert.equal(p.decrypt(23, 0xfefd, 2, 42, ct), null, 'epoch bound in AAD');
    for (const i of [0, 8, ct.length - 1]) {
      const bad = Buffer.from(ct);
      bad[i]! ^= 1;
      assert.equal(p.decrypt(23, 0xfefd, 1, 42, bad), null, `flip byte ${i}`);
    }
    assert.equal(p.decrypt(23, 0xfefd, 1, 42, ct.subarray(0, 10)), null, 'short');
    const other = createRecordProtection(kind, Buffer.alloc(chacha ? 32 : 16, 8), iv);
    assert.equal(other.decrypt(23, 0xfefd, 1, 42, ct), null, 'wrong key');
    // same plaintext, different seq → different ciphertext (distinct nonces)
    assert.notDeepEqual(p.encrypt(23, 0xfefd, 1, 43, pt).subarray(p.overhead - 8), ct.subarray(p.overhead - 8));
  });
}

test('replay window agrees with the RFC 6347 §4.1.2.6 rule on random record sequences (fast-check)', () => {
  // The rule, written plainly: a record is a replay when it is 64 or more behind the highest
  // accepted number, or was accepted before.
  // Sequence numbers wander around the window's edge (reordering, loss, duplicates), with rare
  // long jumps (a lost burst), so slots are reused many times.
  const move = fc.oneof({ weight: 20, arbitrary: fc.integer({ min: -80, max: 80 }) }, { weight: 1, arbitrary: fc.integer({ min: 64, max: 100_000 }) });
  fc.assert(
    fc.property(fc.array(fc.tuple(move, fc.boolean()), { maxLength: 300 }), (records) => {
      const w = new ReplayWindow();
      const accepted = new Set<number>();
      let max = -1;
      let last = 0;
      for (const [delta, authentic] of records) {
        const seq = Math.max(0, last + delta);
        last = seq;
        const expected = (max >= 0 && max - seq >= 64) || accepted.has(seq);
        assert.equal(w.isReplay(seq), expected, `seq ${seq} after max ${max}`);
        // Only authentic, non-replayed records move the window (accept after authentication).
        if (!expected && authentic) {
          w.accept(seq);
          accepted.add(seq);
          max = Math.max(max, seq);
        }
      }
    }),
    { numRuns: 2000 },
  );
});
