/**
 * ActiveList (src/oscore/active-list.ts), a ContextTable's LRU of materialised contexts: against a
 * plain array kept in least-recently-used order, for random adds, touches, evictions of the oldest
 * and removals from anywhere, slots reused (fast-check).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ActiveList } from '../src/oscore/active-list.js';

test('ActiveList keeps least-recently-used order as an array model does, through adds, touches, evictions and removals (fast-check)', () => {
  const op = fc.record({ kind: fc.constantFrom('add', 'add', 'touch', 'touch', 'evict', 'remove'), pick: fc.nat() });
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.array(op, { maxLength: 200 }), (capacity, ops) => {
      const list = new ActiveList<string>();
      const model: { key: number; item: string }[] = [];
      const slotOf = new Map<number, number>();
      let nextKey = 0;
      for (const { kind, pick } of ops) {
        if (kind === 'add' || model.length === 0) {
          if (model.length >= capacity) {
            // As ContextTable: the oldest goes first.
            const oldest = list.oldest;
            assert.equal(list.key(oldest), model[0]!.key);
            list.remove(oldest);
            slotOf.delete(model.shift()!.key);
          }
          const key = nextKey++;
          slotOf.set(key, list.add(key, `item ${key}`));
          model.push({ key, item: `item ${key}` });
        } else {
          const i = pick % model.length;
          const { key } = model[i]!;
          const slot = slotOf.get(key)!;
          assert.equal(list.key(slot), key);
          assert.equal(list.item(slot), `item ${key}`);
          if (kind === 'touch') {
            list.touch(slot);
            model.push(model.splice(i, 1)[0]!);
          } else {
            const victim = kind === 'evict' ? list.oldest : slot;
            const j = kind === 'evict' ? 0 : i;
            assert.equal(list.key(victim), model[j]!.key);
            list.remove(victim);
            slotOf.delete(model.splice(j, 1)[0]!.key);
          }
        }
        assert.equal(list.size, model.length);
        assert.deepEqual(list.values(), model.map((m) => m.item));
        assert.equal(list.oldest === -1, model.length === 0);
      }
      // Slots are reused: never more than the most items held at once.
      assert.ok(slotOf.size <= capacity);
    }),
    { numRuns: 300 },
  );
});
