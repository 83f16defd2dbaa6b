/** The Replay Window (RFC 8613 §7.4, §3.2.2; Appendix B.1.2). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_SEQUENCE_NUMBER, ReplayWindow } from '../src/oscore/index.js';

test('fresh window accepts each sequence number once, in any order within the window', () => {
  const w = new ReplayWindow();
  assert.equal(w.size, 32);
  assert.ok(w.initialised);
  assert.equal(w.highest, undefined);
  assert.ok(w.check(0));
  assert.ok(w.accept(0));
  assert.equal(w.check(0), false);
  assert.equal(w.accept(0), false);
  assert.equal(w.verdict(0), 'replayed');
  assert.ok(w.accept(5));
  assert.ok(w.accept(3), 'older but inside the window and unseen');
  assert.equal(w.accept(3), false);
  assert.ok(w.accept(1));
  assert.equal(w.highest, 5);
});

test('sequence numbers that fell out of the window are too old', () => {
  const w = new ReplayWindow(32);
  assert.ok(w.accept(100));
  assert.equal(w.verdict(68), 'too-old'); // 100 - 68 = 32 ≥ size
  assert.equal(w.verdict(69), 'fresh');
  assert.ok(w.accept(69));
  assert.ok(w.accept(200));
  assert.equal(w.verdict(100), 'too-old');
  assert.equal(w.verdict(199), 'fresh');
});

test('configurable size', () => {
  const w = new ReplayWindow(4);
  w.accept(10);
  assert.equal(w.verdict(6), 'too-old');
  assert.equal(w.verdict(7), 'fresh');
  assert.throws(() => new ReplayWindow(0), RangeError);
});

test('invalid sequence numbers are never accepted', () => {
  const w = new ReplayWindow();
  assert.equal(w.verdict(-1), 'invalid');
  assert.equal(w.verdict(MAX_SEQUENCE_NUMBER + 1), 'invalid');
  assert.equal(w.verdict(1.5), 'invalid');
  assert.ok(w.accept(MAX_SEQUENCE_NUMBER));
});

test('Appendix B.1.2: after a restart nothing is accepted until initialiseAt', () => {
  const w = new ReplayWindow(32, { initialised: false });
  assert.equal(w.initialised, false);
  assert.equal(w.verdict(7), 'uninitialised');
  assert.equal(w.accept(7), false);
  // The Echo round trip proved request 40 fresh: it is the lower limit.
  w.initialiseAt(40);
  assert.ok(w.initialised);
  assert.equal(w.verdict(40), 'replayed');
  assert.equal(w.verdict(39), 'too-old', 'below the lower limit: maybe a request from before the restart');
  assert.equal(w.verdict(5), 'too-old');
  assert.ok(w.accept(41));
  // A request proven fresh by its own Echo (made after the restart) may be below the limit, once.
  assert.equal(w.accept(39), false);
  assert.ok(w.accept(39, true));
  assert.equal(w.verdict(39, true), 'replayed');
  assert.equal(w.verdict(5, true), 'too-old', 'the window still applies');
  w.reset();
  assert.equal(w.initialised, false);
  assert.equal(w.accept(42), false);
});

test('matches a model (property): accepted iff never accepted before and within size of the maximum', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 64 }), fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 200 }), (size, seqs) => {
      const w = new ReplayWindow(size);
      const seen = new Set<number>();
      let max = -1;
      for (const s of seqs) {
        const expected = !seen.has(s) && (s > max || max - s < size);
        assert.equal(w.accept(s), expected, `seq ${s}`);
        if (expected) {
          seen.add(s);
          max = Math.max(max, s);
        }
      }
    }),
  );
});
