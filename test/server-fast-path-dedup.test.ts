/**
 * A busy peer's deduplication index (RFC 7252 §4.5, src/messaging/answered-records.ts): the Message
 * ID → record index becomes a flat array past 16,384 records and a Map again below 8,192, and
 * answers every lookup as a Map would on the way up and down.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AnsweredRecords, MessageIdSlots } from '../src/messaging/answered-records.js';
import { SeededRandom } from '../src/util/random.js';

test('MessageIdSlots answers as a Map through growth past the flat array and shrinking back', () => {
  const slots = new MessageIdSlots();
  const reference = new Map<number, number>();
  const random = new SeededRandom(21);
  const check = (id: number): void => assert.equal(slots.get(id), reference.get(id), `Message ID ${id}`);
  // Up (mostly inserts) past 16,384 live IDs, then down (mostly deletes) below 8,192, twice.
  for (const [ops, insertShare] of [[40_000, 0.8], [40_000, 0.2], [40_000, 0.8], [40_000, 0.1]] as const) {
    for (let i = 0; i < ops; i++) {
      const id = Math.floor(random.float() * 0x10000);
      if (random.float() < insertShare) {
        const slot = Math.floor(random.float() * 100_000);
        slots.set(id, slot);
        reference.set(id, slot);
      } else {
        slots.delete(id);
        reference.delete(id);
      }
      assert.equal(slots.size, reference.size);
      check(id);
    }
    for (let id = 0; id < 0x10000; id += 97) check(id);
  }
});

test("a peer's records past the flat-array threshold still match, replay and expire as before", () => {
  const records = new AnsweredRecords<{ answered: MessageIdSlots }>(70_000);
  const peer = { answered: new MessageIdSlots() };
  const token = (id: number): Uint8Array => Uint8Array.of(id >> 8, id & 0xff);
  for (let id = 0; id < 30_000; id++) records.add(peer, id, 1, 0, token(id), Uint8Array.of(0x60, 0x45, id >> 8, id & 0xff), id);
  assert.equal(peer.answered.size, 30_000);
  for (const id of [0, 16_383, 16_384, 29_999]) {
    const slot = records.find(peer, id, 1, 0, token(id));
    assert.ok(slot >= 0, `record of ${id}`);
    assert.deepEqual([...records.reply(slot)!], [0x60, 0x45, id >> 8, id & 0xff]);
  }
  assert.equal(records.find(peer, 30_000, 1, 0, token(30_000)), -1);
  const forgotten: unknown[] = [];
  records.expire(25_000, (owner) => forgotten.push(owner));
  assert.equal(forgotten.length, 25_001);
  assert.equal(peer.answered.size, 4_999);
  assert.equal(records.find(peer, 100, 1, 0, token(100)), -1, 'expired');
  assert.ok(records.find(peer, 29_000, 1, 0, token(29_000)) >= 0, 'still held, now in a Map again');
});
