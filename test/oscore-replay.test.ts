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

test('matches a model at every window size up to 4096, with jumps, restarts and Sender Sequence Numbers near 2^40 (property)', () => {
  const MAX = 2 ** 40 - 1;
  const step = fc.oneof(
    fc.record({ kind: fc.constant('accept' as const), delta: fc.integer({ min: -5000, max: 5000 }) }),
    fc.record({ kind: fc.constant('fresh' as const), delta: fc.integer({ min: -5000, max: 5000 }) }),
    fc.record({ kind: fc.constant('restart' as const), delta: fc.integer({ min: -3, max: 3 }) }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4096 }), fc.boolean(), fc.array(step, { maxLength: 150 }), (size, nearTop, steps) => {
      const base = nearTop ? MAX - 20_000 : 0;
      const w = new ReplayWindow(size);
      let accepted = new Set<number>();
      let max = -1;
      let lowerLimit = -1;
      let cursor = base + 10_000;
      for (const { kind, delta } of steps) {
        const seq = Math.min(MAX, Math.max(0, cursor + delta));
        if (kind === 'restart') {
          // Appendix B.1.2: after a restart the window starts at a request proven fresh.
          w.initialiseAt(seq);
          accepted = new Set([seq]);
          max = lowerLimit = seq;
          continue;
        }
        const provenFresh = kind === 'fresh';
        const inWindow = seq > max || max - seq < size;
        const expected = !accepted.has(seq) && inWindow && (seq >= lowerLimit || provenFresh);
        assert.equal(w.accept(seq, provenFresh), expected, `size ${size}, seq ${seq}, highest ${max}`);
        if (expected) {
          accepted.add(seq);
          max = Math.max(max, seq);
          cursor = seq;
        }
      }
    }),
    { numRuns: 300 },
  );
});

test('a number one ring length above an accepted one is not taken for a replay once the window moved past it in small steps', () => {
  // The window keeps its bits in a ring of 32·ceil(size/32) bits: 0 and 32 share a bit at size 32,
  // 5 and 133 at size 100 (a ring of 128).
  const w32 = new ReplayWindow(32);
  for (const s of [0, 20, 40]) assert.ok(w32.accept(s));
  assert.equal(w32.verdict(32), 'fresh');
  assert.ok(w32.accept(32));
  const w100 = new ReplayWindow(100);
  for (const s of [5, 60, 120, 130]) assert.ok(w100.accept(s));
  assert.ok(w100.accept(133));
  assert.equal(w100.accept(133), false, 'and once accepted it is a replay');
});
