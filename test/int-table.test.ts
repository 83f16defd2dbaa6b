/** IntTable (src/util/int-table.ts): the churn-proof integer-keyed table the messaging layer keeps outstanding CONs in. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { IntTable } from '../src/util/int-table.js';

type Op = { kind: 'set' | 'delete' | 'get'; key: number };

const keyFrom = (narrow: boolean) => (narrow ? fc.integer({ min: 0, max: 40 }) : fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0x7fffffff })));
const ops = (narrow: boolean) => fc.array(fc.record({ kind: fc.constantFrom<Op['kind']>('set', 'set', 'delete', 'get'), key: keyFrom(narrow) }), { maxLength: 400 });

test('IntTable answers every get, has, delete and size as a Map does, through growth, shrinkage and collisions', () => {
  fc.assert(
    fc.property(fc.boolean().chain((narrow) => ops(narrow)), (sequence) => {
      const table = new IntTable<number>();
      const model = new Map<number, number>();
      sequence.forEach((op, step) => {
        if (op.kind === 'set') {
          table.set(op.key, step);
          model.set(op.key, step);
        } else if (op.kind === 'delete') assert.equal(table.delete(op.key), model.delete(op.key));
        assert.equal(table.get(op.key), model.get(op.key));
        assert.equal(table.has(op.key), model.has(op.key));
        assert.equal(table.size, model.size);
      });
      for (const [key, value] of model) assert.equal(table.get(key), value);
      assert.deepEqual(table.valuesSnapshot().sort((a, b) => a - b), [...model.values()].sort((a, b) => a - b));
    }),
    { numRuns: 300 },
  );
});

test('IntTable keeps every entry reachable when sequential Message IDs wrap around and are removed out of order', () => {
  const table = new IntTable<number>();
  const live: number[] = [];
  let next = 0xfff0;
  for (let step = 0; step < 20_000; step++) {
    const id = next;
    next = (next + 1) & 0xffff;
    table.set(id, step);
    live.push(id);
    if (live.length > 32) {
      // Answers arrive out of order: remove one of the oldest few.
      const victim = live.splice(step % 5, 1)[0]!;
      assert.equal(table.delete(victim), true);
    }
  }
  assert.equal(table.size, live.length);
  for (const id of live) assert.equal(table.has(id), true, `Message ID ${id} lost`);
});

test('IntTable refuses keys it cannot hold, naming the key', () => {
  const table = new IntTable<string>();
  for (const bad of [-1, 2 ** 31, 1.5, Number.NaN]) assert.throws(() => table.set(bad, 'x'), new RegExp(`not ${String(bad)}`));
});

test('IntTable does not resize while its size swings between 0 and 32 with each burst, and shrinks once it stays small', () => {
  const table = new IntTable<number>();
  let next = 0;
  const burst = (): void => {
    const keys: number[] = [];
    for (let i = 0; i < 32; i++) table.set((keys[i] = next++ & 0xffff), i);
    for (const key of keys) table.delete(key);
  };
  burst();
  const capacity = table.capacity;
  assert.equal(capacity, 64);
  for (let i = 0; i < 1000; i++) {
    burst();
    assert.equal(table.capacity, capacity, `resized in burst ${i}`);
  }
  // One entry at a time from now on: after as many removals as it has slots, it halves, and so on down to 8.
  for (let i = 0; i < 64 + 32 + 16 + 8; i++) {
    table.set(next, i);
    table.delete(next++);
  }
  assert.equal(table.capacity, 8);
  assert.equal(table.size, 0);
});
