/**
 * The context store (issue 26): the cost of one Sender Sequence Number reservation round trip
 * per block size (1, 16, 256, 4096), Redis (INCRBY, AOF fsync'd on every write) against the file
 * store (an fsync'd file, rename and folder fsync), per reservation and per number; and the heap
 * of 100,000 OSCORE contexts preloaded from Redis into one node (`--memory`, in a child with
 * --expose-gc, used by test/store-memory.test.ts).
 *
 *   node dist/bench/store.js                       the reservation table (starts its own redis-server)
 *   node --expose-gc dist/bench/store.js --memory URL N   prints {"heapMB", "rssMB", "contexts", "loadMs"} as JSON
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sequenceFileName } from '../src/credentials/sequence-store.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { FileContextStore } from '../src/store/file-store.js';
import { RedisContextStore } from '../src/store/redis-store.js';
import { StoreContexts } from '../src/store/server-contexts.js';
import type { ContextStore } from '../src/store/types.js';
import { TestRedis } from '../test/store-redis-server.js';

const BLOCK_SIZES = [1, 16, 256, 4096];

async function timeReservations(store: ContextStore, blockSize: number, count: number): Promise<number> {
  const sender = sequenceFileName({ masterSecret: new Uint8Array(16).fill(blockSize & 0xff), senderId: Uint8Array.of(blockSize >> 8, blockSize & 0xff) });
  await store.reserve(sender, blockSize); // connection and file warm
  const started = performance.now();
  for (let i = 0; i < count; i++) await store.reserve(sender, blockSize);
  return ((performance.now() - started) * 1000) / count;
}

async function reservationTable(): Promise<void> {
  const redis = await TestRedis.start();
  const folder = mkdtempSync(join(tmpdir(), 'coapsec-bench-store-'));
  const stores: Array<[string, ContextStore, number]> = [
    ['Redis (appendfsync always)', await RedisContextStore.open(redis.url), 2000],
    ['file store (fsync)', new FileContextStore(folder), 300],
  ];
  try {
    console.log('| store | block size K | µs per reservation | µs per number |');
    console.log('|---|---:|---:|---:|');
    for (const [name, store, count] of stores) {
      for (const k of BLOCK_SIZES) {
        const micros = await timeReservations(store, k, count);
        console.log(`| ${name} | ${k} | ${micros.toFixed(0)} | ${(micros / k).toFixed(2)} |`);
      }
    }
  } finally {
    for (const [, store] of stores) await store.close();
    await redis.stop();
    rmSync(folder, { recursive: true, force: true });
  }
}

async function memory(url: string, expected: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  const store = await RedisContextStore.open(url, { commandTimeoutMs: 30_000 });
  const source = new StoreContexts(store);
  const security = new OscoreServerSecurity([], { contextSource: source });
  gc();
  const before = process.memoryUsage();
  const started = performance.now();
  const contexts = await source.preload((context) => security.install(context));
  const loadMs = performance.now() - started;
  gc();
  const after = process.memoryUsage();
  if (contexts !== expected) throw new Error(`preloaded ${contexts} contexts, expected ${expected}`);
  const heapMB = (after.heapUsed - before.heapUsed) / 2 ** 20;
  const externalMB = (after.external - before.external) / 2 ** 20;
  const rssMB = (after.rss - before.rss) / 2 ** 20;
  process.stdout.write(`${JSON.stringify({ contexts, heapMB, externalMB, rssMB, loadMs, held: security.contexts.length })}\n`);
  await store.close();
}

const args = process.argv.slice(2);
if (args[0] === '--memory') await memory(args[1]!, Number(args[2]));
else await reservationTable();
