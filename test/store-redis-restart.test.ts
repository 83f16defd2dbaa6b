/**
 * Issue 26: Redis killed with SIGKILL mid-run and restarted on the same append-only file loses no
 * reservation. Two nodes (store connections) take Sender Sequence Numbers of one sender from
 * BlockSequence as fast as they can while Redis dies and comes back; every number handed out is
 * recorded. No number is handed out twice, and after the restart the counter is above every
 * block any node was told it had (a reservation acknowledged is in the AOF: appendfsync always).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { sequenceFileName } from '../src/credentials/sequence-store.js';
import { BlockSequence } from '../src/store/block-sequence.js';
import { RedisContextStore } from '../src/store/redis-store.js';
import { StoreError, type ContextStore, type ReservedBlock } from '../src/store/types.js';
import { TestRedis } from './store-redis-server.js';

const redisReady = TestRedis.start();
after(async () => (await redisReady).stop());

const SENDER = sequenceFileName({ masterSecret: new Uint8Array(16).fill(3), senderId: new Uint8Array([0x53]) });

/** The store, remembering the highest block end it was told. */
function acknowledged(store: ContextStore): { store: ContextStore; highestEnd: () => number } {
  let highest = 0;
  const wrapped: ContextStore = Object.assign(Object.create(store) as ContextStore, {
    reserve: async (sender: string, count: number): Promise<ReservedBlock> => {
      const block = await store.reserve(sender, count);
      highest = Math.max(highest, block.end);
      return block;
    },
  });
  return { store: wrapped, highestEnd: () => highest };
}

test('SIGKILL and restart of Redis mid-run: no Sender Sequence Number is used twice, no acknowledged reservation is lost', async (t) => {
  const redis = await redisReady;
  const opened = await Promise.all([0, 1].map(() => RedisContextStore.open(redis.url, { commandTimeoutMs: 300 })));
  t.after(() => Promise.all(opened.map((s) => s.close())));
  const nodes = opened.map((s) => acknowledged(s));
  const sequences = nodes.map((n, i) => new BlockSequence(n.store, SENDER, i === 0 ? 16 : 5));

  const used = new Set<number>();
  let refusals = 0;
  let killed = false;
  let highestBeforeKill = 0;
  const started = Date.now();
  let restarted: Promise<void> | undefined;
  for (let round = 0; round < 100_000 && Date.now() - started < 4000; round++) {
    for (const sequence of sequences) {
      for (let i = 0; i < 3; i++) {
        try {
          const n = sequence.next();
          assert.ok(!used.has(n), `number ${n} handed out twice`);
          used.add(n);
        } catch (error) {
          assert.ok(error instanceof StoreError, `only StoreError, got ${(error as Error).message}`);
          refusals++;
        }
      }
    }
    if (!killed && Date.now() - started > 1000) {
      killed = true;
      highestBeforeKill = Math.max(...nodes.map((n) => n.highestEnd()));
      await redis.kill();
      restarted = new Promise((r) => setTimeout(r, 500)).then(() => redis.start());
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await restarted;
  assert.ok(killed, 'Redis was killed mid-run');
  assert.ok(refusals > 0, 'numbers were refused while Redis was down (never guessed)');
  const afterKill = Math.max(...nodes.map((n) => n.highestEnd()));
  assert.ok(afterKill > highestBeforeKill, 'the nodes reserved again after the restart');

  const check = await RedisContextStore.open(redis.url);
  t.after(() => check.close());
  const next = await check.reserve(SENDER, 1);
  const highestUsed = Math.max(...used);
  assert.ok(next.start >= afterKill, `the counter (${next.start}) is above every acknowledged block (${afterKill})`);
  assert.ok(next.start > highestUsed, 'and above every number used');
  assert.ok(used.size > 200, `the run used ${used.size} numbers`);
});
