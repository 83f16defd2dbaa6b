/**
 * Issue 26: 100,000 OSCORE contexts resident in one node with the Redis store in at most 64 MB.
 * The contexts are provisioned into a private Redis, then a child (`bench/store.ts --memory`,
 * --expose-gc) preloads every one into an OscoreServerSecurity and reports heap (+ external)
 * after gc, minus before (heap and memory outside it, such as Buffers, both count).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { OSCORE_DEFAULTS } from '../src/credentials/oscore-params.js';
import { RedisContextStore } from '../src/store/redis-store.js';
import { TestRedis } from './store-redis-server.js';

const redisReady = TestRedis.start();
after(async () => (await redisReady).stop());

const COUNT = 100_000;

test('100,000 contexts from Redis resident in one node: at most 64 MB', async (t) => {
  const redis = await redisReady;
  // Provisioning 100,000 contexts on a shared machine: a generous time limit per command.
  const store = await RedisContextStore.open(redis.url, { commandTimeoutMs: 30_000 });
  t.after(() => store.close());
  const secret = new Uint8Array(16);
  for (let batch = 0; batch < COUNT; batch += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, COUNT - batch) }, (_, j) => {
        const i = batch + j;
        const kid = Uint8Array.of(i >>> 24, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff);
        new DataView(secret.buffer).setUint32(0, i);
        return store.putContext({ name: `device-${i}`, context: { ...OSCORE_DEFAULTS, masterSecret: Uint8Array.from(secret), senderId: new Uint8Array(0), recipientIds: [kid] } });
      }),
    );
  }
  const script = fileURLToPath(new URL('../bench/store.js', import.meta.url));
  const output = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--expose-gc', script, '--memory', redis.url, String(COUNT)], { timeout: 180_000 }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout))),
  );
  const result = JSON.parse(output) as { contexts: number; heapMB: number; externalMB: number; rssMB: number; loadMs: number; held: number };
  assert.equal(result.held, COUNT, 'every context is held by the node');
  const held = result.heapMB + Math.max(0, result.externalMB);
  assert.ok(held <= 64, `100,000 contexts hold ${result.heapMB.toFixed(1)} MB of heap and ${result.externalMB.toFixed(1)} MB outside it`);
  t.diagnostic(`100,000 contexts: ${result.heapMB.toFixed(1)} MB heap, ${result.externalMB.toFixed(1)} MB external, RSS +${result.rssMB.toFixed(1)} MB, preloaded in ${result.loadMs.toFixed(0)} ms`);
});
