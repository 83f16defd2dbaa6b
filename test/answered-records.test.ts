/** The struct-of-arrays store of answered messages' deduplication records (RFC 7252 §4.5). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AnsweredRecords, type RecordOwner } from '../src/messaging/answered-records.js';
import { SeededRandom } from '../src/util/random.js';

const owner = (): RecordOwner => ({ answered: new Map<number, number>() });
const token = (...bytes: number[]): Uint8Array => Uint8Array.from(bytes);
const CON = 0;
const NON = 1;
const GET = 1;

test('a record matches only the same Message ID, token, code and type, and replays its reply byte for byte', () => {
  const records = new AnsweredRecords<RecordOwner>(10);
  const peer = owner();
  const reply = Buffer.from('6045123401ff6869', 'hex');
  records.add(peer, 0x1234, GET, CON, token(1), reply, 1000);
  const slot = records.find(peer, 0x1234, GET, CON, token(1));
  assert.ok(slot >= 0);
  assert.deepEqual(records.reply(slot), reply);
  records.reply(slot)!.fill(0);
  assert.deepEqual(records.reply(slot), reply, 'each replay is a copy: a datagram may wait in a queue while the ring moves on');
  assert.equal(records.find(peer, 0x1234, GET, CON, token(2)), -1, 'other token');
  assert.equal(records.find(peer, 0x1234, GET, CON, token(1, 0)), -1, 'other token length');
  assert.equal(records.find(peer, 0x1234, 2, CON, token(1)), -1, 'other code');
  assert.equal(records.find(peer, 0x1234, GET, NON, token(1)), -1, 'other type');
  assert.equal(records.find(peer, 0x1235, GET, CON, token(1)), -1, 'other Message ID');
  assert.equal(records.find(owner(), 0x1234, GET, CON, token(1)), -1, 'other peer');
});

test('a record without a reply (a NON) matches and replays nothing; long replies are kept whole', () => {
  const records = new AnsweredRecords<RecordOwner>(10);
  const peer = owner();
  records.add(peer, 1, GET, NON, token(), undefined, 1000);
  assert.equal(records.reply(records.find(peer, 1, GET, NON, token())), undefined);
  const long = Buffer.alloc(1100, 7);
  records.add(peer, 2, GET, CON, token(9, 9, 9, 9, 9, 9, 9, 9), long, 1000);
  assert.deepEqual(records.reply(records.find(peer, 2, GET, CON, token(9, 9, 9, 9, 9, 9, 9, 9))), long);
});

test('a reused Message ID replaces the record; the replaced one is no longer live and its expiry leaves the new one', () => {
  const records = new AnsweredRecords<RecordOwner>(10);
  const peer = owner();
  records.add(peer, 5, GET, CON, token(1), Buffer.from([1]), 100);
  records.add(peer, 5, GET, CON, token(2), Buffer.from([2]), 200);
  assert.equal(records.size, 2);
  assert.equal(records.live, 1);
  assert.equal(records.find(peer, 5, GET, CON, token(1)), -1);
  const forgotten: RecordOwner[] = [];
  records.expire(150, (o) => forgotten.push(o));
  assert.equal(records.size, 1);
  assert.deepEqual(records.reply(records.find(peer, 5, GET, CON, token(2))), Buffer.from([2]), 'the newer record survives the older one’s expiry');
  records.expire(200, (o) => forgotten.push(o));
  assert.equal(records.size, 0);
  assert.equal(records.live, 0);
  assert.equal(peer.answered.size, 0);
  assert.equal(forgotten.length, 2);
});

test('records expire oldest first and never before their time; at capacity the oldest goes first', () => {
  const records = new AnsweredRecords<RecordOwner>(3);
  const peer = owner();
  for (let id = 0; id < 3; id++) assert.equal(records.add(peer, id, GET, CON, token(id), Buffer.from([id]), 100 + id), undefined);
  records.expire(99.9, () => assert.fail('nothing has expired yet'));
  assert.equal(records.size, 3);
  assert.equal(records.add(peer, 3, GET, CON, token(3), Buffer.from([3]), 103), peer, 'the evicted record’s owner');
  assert.equal(records.find(peer, 0, GET, CON, token(0)), -1);
  for (let id = 1; id <= 3; id++) assert.ok(records.find(peer, id, GET, CON, token(id)) >= 0);
  records.expire(101.5, () => {});
  assert.equal(records.find(peer, 1, GET, CON, token(1)), -1);
  assert.ok(records.find(peer, 2, GET, CON, token(2)) >= 0, 'not before its time');
});

test('growing past the first allocation while the ring has wrapped keeps every record findable with its own reply', () => {
  const records = new AnsweredRecords<RecordOwner>(5000);
  const peers = [owner(), owner(), owner()];
  const forgotten: RecordOwner[] = [];
  let expiry = 0;
  const add = (id: number): void => {
    const peer = peers[id % 3]!;
    records.add(peer, id & 0xffff, GET, CON, token(id & 0xff, id >> 8), Buffer.from(`reply ${id}`.padEnd(id % 2 ? 10 : 100, '.')), ++expiry);
  };
  // Fill 200, expire 150 (the head moves), then add 3000: several doublings with a wrapped ring.
  for (let id = 0; id < 200; id++) add(id);
  records.expire(150, (o) => forgotten.push(o));
  for (let id = 200; id < 3200; id++) add(id);
  assert.equal(records.size, 3050);
  for (let id = 150; id < 3200; id++) {
    const slot = records.find(peers[id % 3]!, id, GET, CON, token(id & 0xff, id >> 8));
    assert.ok(slot >= 0, `record ${id}`);
    assert.equal(records.reply(slot)!.toString().replace(/\.+$/, ''), `reply ${id}`);
  }
  for (let id = 0; id < 150; id++) assert.equal(records.find(peers[id % 3]!, id, GET, CON, token(id & 0xff, id >> 8)), -1);
  records.clear();
  assert.equal(records.size, 0);
  assert.ok(peers.every((p) => p.answered.size === 0));
});

test('against a plain model: random adds, Message ID reuse, expiry, capacity and growth agree on every record (seeded)', () => {
  interface ModelRecord { owner: number; messageId: number; code: number; type: number; token: Uint8Array; reply: Uint8Array | undefined; expiresAt: number }
  for (const seed of [1, 2, 3, 4, 5]) {
    const random = new SeededRandom(seed * 7919);
    const int = (n: number): number => Math.floor(random.float() * n);
    const capacity = 300 + int(400);
    const records = new AnsweredRecords<RecordOwner>(capacity);
    const owners = [owner(), owner(), owner()];
    const model: ModelRecord[] = [];
    let now = 0;
    const liveOf = (): Map<string, ModelRecord> => {
      const live = new Map<string, ModelRecord>();
      for (const r of model) live.set(`${r.owner}|${r.messageId}`, r); // the latest per key
      return live;
    };
    for (let step = 0; step < 3000; step++) {
      if (int(10) === 0) {
        now += int(8);
        records.expire(now, () => {});
        while (model.length > 0 && model[0]!.expiresAt <= now) model.shift();
      } else {
        const r: ModelRecord = {
          owner: int(3),
          messageId: int(200), // few IDs: reuse is frequent
          code: 1 + int(4),
          type: int(2),
          token: random.bytes(int(9)),
          reply: int(5) === 0 ? undefined : random.bytes(1 + int(int(6) === 0 ? 150 : 60)),
          expiresAt: now + 50 + int(200),
        };
        if (model.length === capacity) model.shift();
        model.push(r);
        records.add(owners[r.owner]!, r.messageId, r.code, r.type, r.token, r.reply, r.expiresAt);
      }
      if (step % 50 !== 0) continue;
      const live = liveOf();
      assert.equal(records.size, model.length, `seed ${seed} step ${step}: size`);
      assert.equal(records.live, live.size, `seed ${seed} step ${step}: live`);
      for (let o = 0; o < 3; o++) assert.equal(owners[o]!.answered.size, [...live.values()].filter((r) => r.owner === o).length);
      for (const r of live.values()) {
        const slot = records.find(owners[r.owner]!, r.messageId, r.code, r.type, r.token);
        assert.ok(slot >= 0, `seed ${seed} step ${step}: record ${r.owner}|${r.messageId} found`);
        assert.deepEqual(records.reply(slot), r.reply === undefined ? undefined : Buffer.from(r.reply));
        const other = Uint8Array.from([...r.token, 0]);
        assert.equal(records.find(owners[r.owner]!, r.messageId, r.code, r.type, other), -1);
      }
    }
  }
});
