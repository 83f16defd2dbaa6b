/**
 * One contract, two stores: every test body below runs against the file store and against Redis
 * (a private redis-server, test/store-redis-server.ts), so both keep the same promises — contexts
 * found by (kid, ID Context), durable and disjoint Sender Sequence Number blocks, state blobs,
 * expiry, errors that name the store.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OSCORE_DEFAULTS, type OscoreContextConfig } from '../src/credentials/oscore-params.js';
import { SequenceExhaustedError, sequenceFileName } from '../src/credentials/sequence-store.js';
import { FileContextStore } from '../src/store/file-store.js';
import { RedisContextStore } from '../src/store/redis-store.js';
import { StoreError, type ContextStore, type StoredContext } from '../src/store/types.js';
import { TestRedis } from './store-redis-server.js';

function record(kid: number, name: string, idContext?: Uint8Array): StoredContext {
  const context: OscoreContextConfig = {
    ...OSCORE_DEFAULTS,
    masterSecret: new Uint8Array(16).fill(kid),
    senderId: new Uint8Array([0x53]),
    recipientIds: [new Uint8Array([kid])],
    ...(idContext ? { idContext } : {}),
  };
  return { name, context };
}

const SENDER = sequenceFileName({ masterSecret: new Uint8Array(16).fill(9), senderId: new Uint8Array([1]) });
const OTHER_SENDER = sequenceFileName({ masterSecret: new Uint8Array(16).fill(9), senderId: new Uint8Array([2]) });

interface Subject {
  open(): Promise<ContextStore>;
}

const redisReady = TestRedis.start();
const fileDirectories: string[] = [];
after(async () => {
  fileDirectories.forEach((d) => rmSync(d, { recursive: true, force: true }));
  await (await redisReady).stop();
});

let redisDb = 0;
const subjects: Record<string, () => Subject> = {
  files: () => {
    const directory = mkdtempSync(join(tmpdir(), 'coapsec-store-'));
    fileDirectories.push(directory);
    return { open: async () => new FileContextStore(directory) };
  },
  redis: () => {
    // A database of its own per test: the same contract, no state shared between tests.
    const db = ++redisDb;
    return { open: async () => RedisContextStore.open(`${(await redisReady).url}/${db}`) };
  },
};

for (const [kind, makeSubject] of Object.entries(subjects)) {
  describe(`context store contract: ${kind}`, () => {
    let subject: Subject;
    let store: ContextStore;
    before(async () => {
      await redisReady;
    });
    const fresh = async (): Promise<ContextStore> => {
      subject = makeSubject();
      store = await subject.open();
      return store;
    };

    test('onlyIfAbsent writes into an empty slot only, and says whether it wrote', async (t) => {
      const s = await fresh();
      t.after(() => s.close());
      assert.equal(await s.putContext(record(5, 'first'), { onlyIfAbsent: true }), true);
      assert.equal(await s.putContext(record(5, 'second'), { onlyIfAbsent: true }), false);
      assert.equal((await s.findContext(new Uint8Array([5])))?.name, 'first');
      assert.equal(await s.putContext(record(5, 'replaced')), true);
      assert.equal((await s.findContext(new Uint8Array([5])))?.name, 'replaced');
    });

    test('a context is found by its kid and ID Context, and by nothing else', async (t) => {
      const s = await fresh();
      t.after(() => s.close());
      assert.equal(await s.findContext(new Uint8Array([1])), undefined);
      await s.putContext(record(1, 'device-1'));
      await s.putContext(record(1, 'device-1 in context aa', new Uint8Array([0xaa])));
      await s.putContext(record(2, 'device-2', new Uint8Array(0)));
      const plain = await s.findContext(new Uint8Array([1]));
      assert.equal(plain?.name, 'device-1');
      assert.deepEqual(plain?.context.masterSecret, new Uint8Array(16).fill(1));
      assert.deepEqual(plain?.context.recipientIds, [new Uint8Array([1])]);
      assert.equal(plain?.context.idContext, undefined);
      assert.equal((await s.findContext(new Uint8Array([1]), new Uint8Array([0xaa])))?.name, 'device-1 in context aa');
      // An empty ID Context is not an absent one (RFC 8613 §3.1).
      assert.equal(await s.findContext(new Uint8Array([2])), undefined);
      assert.equal((await s.findContext(new Uint8Array([2]), new Uint8Array(0)))?.name, 'device-2');
      assert.equal(await s.findContext(new Uint8Array([1]), new Uint8Array([0xbb])), undefined);
    });

    test('put replaces, delete removes, contexts() lists every one', async (t) => {
      const s = await fresh();
      t.after(() => s.close());
      for (let kid = 1; kid <= 5; kid++) await s.putContext(record(kid, `device-${kid}`));
      await s.putContext(record(3, 'device-3 renamed'));
      assert.equal(await s.deleteContext(new Uint8Array([5])), true);
      assert.equal(await s.deleteContext(new Uint8Array([5])), false);
      const names: string[] = [];
      for await (const r of s.contexts()) names.push(r.name);
      assert.deepEqual(names.sort(), ['device-1', 'device-2', 'device-3 renamed', 'device-4']);
    });

    test('another store instance on the same store sees a provisioned context at once', async (t) => {
      const s = await fresh();
      const second = await subject.open();
      t.after(async () => {
        await s.close();
        await second.close();
      });
      await s.putContext(record(7, 'device-7'));
      assert.equal((await second.findContext(new Uint8Array([7])))?.name, 'device-7');
    });

    test('reservations start at 0 and hand out consecutive, disjoint blocks per sender', async (t) => {
      const s = await fresh();
      t.after(() => s.close());
      assert.deepEqual(await s.reserve(SENDER, 16), { start: 0, end: 16 });
      assert.deepEqual(await s.reserve(SENDER, 1), { start: 16, end: 17 });
      assert.deepEqual(await s.reserve(OTHER_SENDER, 4), { start: 0, end: 4 });
      assert.deepEqual(await s.reserve(SENDER, 4096), { start: 17, end: 4113 });
    });

    test('concurrent reservations never overlap', async (t) => {
      const s = await fresh();
      t.after(() => s.close());
      const blocks = await Promise.all(Array.from({ length: 64 }, (_, i) => s.reserve(SENDER, 1 + (i % 5))));
      const numbers = blocks.flatMap((b) => Array.from({ length: b.end - b.start }, (_, i) => b.start + i));
      assert.equal(new Set(numbers).size, numbers.length);
      assert.equal(Math.max(...numbers) + 1, numbers.length, 'no gaps either: every block is start..end of one counter');
    });

    test('a reservation outlives the store instance: reopened, the counter continues above it', async (t) => {
      const s = await fresh();
      await s.reserve(SENDER, 100);
      await s.close();
      const reopened = await subject.open();
      t.after(() => reopened.close());
      assert.deepEqual(await reopened.reserve(SENDER, 1), { start: 100, end: 101 });
    });

    test('nothing beyond 2^40 - 1 is handed out (RFC 8613 §7.2.1)', async (t) => {
      const s = await fresh();
      t.after(() => s.close());
      assert.deepEqual(await s.reserve(SENDER, 2 ** 40 - 1), { start: 0, end: 2 ** 40 - 1 });
      assert.deepEqual(await s.reserve(SENDER, 1), { start: 2 ** 40 - 1, end: 2 ** 40 });
      await assert.rejects(s.reserve(SENDER, 1), SequenceExhaustedError);
    });

    test('bad reservation counts are refused with the store named', async (t) => {
      const s = await fresh();
      t.after(() => s.close());
      for (const count of [0, -1, 1.5]) {
        await assert.rejects(s.reserve(SENDER, count), (e: Error) => e instanceof StoreError && e.message.startsWith(s.description));
      }
    });

    test('state blobs: absent, written, replaced, bytes intact; names cannot escape', async (t) => {
      const s = await fresh();
      t.after(() => s.close());
      assert.equal(await s.readState('broker.topics'), undefined);
      const bytes = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
      await s.writeState('broker.topics', bytes);
      assert.deepEqual(await s.readState('broker.topics'), bytes);
      await s.writeState('broker.topics', new Uint8Array([1, 2]));
      assert.deepEqual(await s.readState('broker.topics'), new Uint8Array([1, 2]));
      for (const name of ['../x', 'a/b', '*', '', '.hidden']) {
        await assert.rejects(s.writeState(name, bytes), StoreError);
      }
    });

    test('a context put with an expiry is gone after it', async (t) => {
      const s = await fresh();
      t.after(() => s.close());
      await s.putContext(record(9, 'edhoc session'), { expiresInSeconds: 1 });
      assert.equal((await s.findContext(new Uint8Array([9])))?.name, 'edhoc session');
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(await s.findContext(new Uint8Array([9])), undefined);
    });

    test('a closed store refuses every call, naming itself', async () => {
      const s = await fresh();
      await s.close();
      await assert.rejects(s.reserve(SENDER, 1), (e: Error) => e instanceof StoreError && e.message.startsWith(s.description) && /closed/.test(e.message));
      await assert.rejects(s.findContext(new Uint8Array([1])), StoreError);
    });
  });
}
