/**
 * Issue 26 item 1 for the trust anchor: its per-RS sequence counters reserved in blocks, durable
 * before a credential leaves (counters.ts). One contract for the three places reservations live —
 * the TA's state file (the default), the file context store and Redis — and the farm case: two TA
 * nodes sharing Redis never issue one number twice, not across a TA restart and not across a Redis
 * SIGKILL and restart (the append-only file, fsync'd on every write, holds every reservation);
 * and `coapsec trust-anchor` with `"store"` in ta.json, two processes on one Redis.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoapClient } from '../src/client/client.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { FileContextStore } from '../src/store/file-store.js';
import { RedisContextStore } from '../src/store/redis-store.js';
import { parseTrustAnchorConfig, type TrustAnchorConfig } from '../src/trust-anchor/config.js';
import { CounterBlocks, SequenceExhaustedError, StateFileCounters, StoreCounters, keyId, type CounterReservations } from '../src/trust-anchor/counters.js';
import { TrustAnchorError, TrustAnchorService } from '../src/trust-anchor/service.js';
import { TestRedis } from './store-redis-server.js';
import { killChildren, startDaemon, type Daemon } from './support/cli-harness.js';

const directory = mkdtempSync(join(tmpdir(), 'coapsec-ta-store-'));
process.env['COAPSEC_STATE_DIR'] = join(directory, 'state');
const redisReady = TestRedis.start();
after(async () => {
  await (await redisReady).stop();
  rmSync(directory, { recursive: true, force: true });
});

const KEY = Buffer.alloc(16, 7);
const OTHER_KEY = Buffer.alloc(16, 8);
let made = 0;
let redisDb = 0;

/** Each call: a fresh place for counters, and how to open it again (a restarted TA). */
const places: Record<string, () => () => Promise<CounterReservations>> = {
  'state file': () => {
    const file = join(directory, `counters-${++made}.json`);
    return async () => new StateFileCounters(file);
  },
  'file store': () => {
    const folder = join(directory, `store-${++made}`);
    return async () => new StoreCounters(new FileContextStore(folder), 'ta1');
  },
  redis: () => {
    const db = ++redisDb;
    return async () => new StoreCounters(await RedisContextStore.open(`${(await redisReady).url}/${db}`), 'ta1');
  },
};

for (const [kind, makePlace] of Object.entries(places)) {
  describe(`trust-anchor counter contract: ${kind}`, () => {
    test('blocks start at 1, follow one another without overlap, per RS and per key', async (t) => {
      const open = makePlace();
      const counters = await open();
      t.after(() => counters.close());
      assert.deepEqual(await counters.reserve('rs1', keyId(KEY), 16), { start: 1, end: 17 });
      assert.deepEqual(await counters.reserve('rs1', keyId(KEY), 4), { start: 17, end: 21 });
      assert.deepEqual(await counters.reserve('rs2', keyId(KEY), 4), { start: 1, end: 5 }, 'another RS has its own counter');
      assert.deepEqual(await counters.reserve('rs1', keyId(OTHER_KEY), 2), { start: 1, end: 3 }, 'a new K_RS-TA starts again at 1 (§2.4)');
    });

    test('concurrent reservations never overlap', async (t) => {
      const counters = await makePlace()();
      t.after(() => counters.close());
      const blocks = await Promise.all(Array.from({ length: 40 }, (_, i) => counters.reserve('rs1', keyId(KEY), 1 + (i % 4))));
      const numbers = blocks.flatMap((b) => Array.from({ length: b.end - b.start }, (_, i) => b.start + i));
      assert.equal(new Set(numbers).size, numbers.length);
      assert.equal(Math.min(...numbers), 1);
    });

    test('a reservation outlives the process: reopened, the counter continues above it', async () => {
      const open = makePlace();
      const first = await open();
      await first.reserve('rs1', keyId(KEY), 100);
      await first.close();
      const reopened = await open();
      try {
        assert.deepEqual(await reopened.reserve('rs1', keyId(KEY), 1), { start: 101, end: 102 });
      } finally {
        await reopened.close();
      }
    });

    test('nothing past 2^32 - 1 is reserved: the counter is exhausted, it does not wrap', async (t) => {
      const counters = await makePlace()();
      t.after(() => counters.close());
      assert.deepEqual(await counters.reserve('rs1', keyId(KEY), 2 ** 32 - 3), { start: 1, end: 2 ** 32 - 2 });
      assert.deepEqual(await counters.reserve('rs1', keyId(KEY), 16), { start: 2 ** 32 - 2, end: 2 ** 32 }, 'the last block is cut at 2^32 - 1');
      await assert.rejects(counters.reserve('rs1', keyId(KEY), 1), SequenceExhaustedError);
    });

    test('issuing from blocks: a credential waits only for the first block, numbers stay unique', async (t) => {
      const reservations = await makePlace()();
      let calls = 0;
      const counted: CounterReservations = { description: reservations.description, reserve: (...a) => (calls++, reservations.reserve(...a)), close: () => reservations.close() };
      const blocks = new CounterBlocks(counted, 8);
      t.after(() => blocks.close());
      const numbers = await Promise.all(Array.from({ length: 20 }, () => blocks.next('rs1', KEY)));
      assert.deepEqual(numbers, Array.from({ length: 20 }, (_, i) => i + 1));
      assert.ok(calls <= 4, `${calls} reservations for 20 numbers in blocks of 8`);
    });
  });
}

function configWith(fields: Record<string, unknown>): TrustAnchorConfig {
  const file = join(directory, `ta-${++made}.json`);
  writeFileSync(file, JSON.stringify({ id: 'ta1', credentials: 'creds.json', resourceServers: { rs1: { key: `0x${KEY.toString('hex')}` } }, policy: { alice: ['rs1'] }, ...fields }));
  return parseTrustAnchorConfig(file);
}

test('ta.json: "store" instead of "stateFile", a reservation block size', () => {
  const config = configWith({ store: 'redis://127.0.0.1:6379', reservationBlock: 64 });
  assert.equal(config.store, 'redis://127.0.0.1:6379');
  assert.equal(config.stateFile, undefined);
  assert.equal(config.reservationBlock, 64);
  assert.equal(configWith({ store: 'ta-store' }).store, join(directory, 'ta-store'), 'a folder is relative to the config file');
  assert.equal(configWith({ stateFile: 'c.json' }).reservationBlock, 16);
  assert.throws(() => configWith({ store: 'ta-store', stateFile: 'c.json' }), /\$\.stateFile: goes without "store"/);
  assert.throws(() => configWith({}), /\$\.stateFile: must be a non-empty string/);
  assert.throws(() => configWith({ stateFile: 'c.json', reservationBlock: 0 }), /\$\.reservationBlock/);
});

test('two TA nodes sharing Redis never issue one number twice, across a TA restart and a Redis SIGKILL', { timeout: 60_000 }, async () => {
  const redis = await redisReady;
  const url = `${redis.url}/15`;
  const config = configWith({ store: url, reservationBlock: 4 });
  const node = async (): Promise<TrustAnchorService> => new TrustAnchorService(config, { counters: new StoreCounters(await RedisContextStore.open(url, { commandTimeoutMs: 500 }), config.id) });
  const issued: number[] = [];
  const unavailable: string[] = [];
  /** One credential; while Redis is down the TA answers 5.03 ("store-unavailable"), never a number it has not reserved. */
  const issue = async (ta: TrustAnchorService): Promise<void> => {
    try {
      issued.push((await ta.derivedKey('alice', 'rs1')).sequence);
    } catch (error) {
      assert.ok(error instanceof TrustAnchorError && error.kind === 'store-unavailable', String(error));
      unavailable.push(error.message);
    }
  };
  const a = await node();
  let b = await node();
  for (let i = 0; i < 30; i++) await Promise.all([issue(a), issue(b), issue(a)]);
  // B restarts: its unused reservation is skipped, never reissued.
  await b.close();
  b = await node();
  for (let i = 0; i < 10; i++) await Promise.all([issue(a), issue(b)]);
  const beforeCrash = Math.max(...issued);

  // Redis dies without a shutdown and comes back on its AOF.
  await redis.kill();
  for (let i = 0; i < 10; i++) await Promise.all([issue(a), issue(b)]);
  await redis.start();
  const atRestart = issued.length;
  const deadline = Date.now() + 20_000;
  while (issued.length < atRestart + 40 && Date.now() < deadline) {
    const before = issued.length;
    await Promise.all([issue(a), issue(b)]);
    if (issued.length === before) await new Promise((r) => setTimeout(r, 100)); // the clients reconnect in the background
  }
  assert.ok(issued.length >= atRestart + 40, 'both nodes issue again once Redis is back');
  assert.ok(unavailable.length > 0, 'while Redis was down, some requests were refused rather than answered with unreserved numbers');
  await a.close();
  await b.close();

  assert.equal(new Set(issued).size, issued.length, `every number issued once (${issued.length} credentials)`);
  assert.ok(issued.slice(atRestart).every((n) => n > beforeCrash), 'after the Redis restart, numbers continue above every one issued before it');
  // The AOF held every reservation: after the restart Redis continues above every block it granted.
  const fresh = new StoreCounters(await RedisContextStore.open(url), config.id);
  try {
    assert.ok((await fresh.reserve('rs1', keyId(KEY), 1)).start > Math.max(...issued), 'no reservation was lost with the crash');
  } finally {
    await fresh.close();
  }
});

test('coapsec trust-anchor with "store" in ta.json: two processes share the counters in Redis', { timeout: 30_000 }, async (t) => {
  const redis = await redisReady;
  const folder = mkdtempSync(join(directory, 'cli-'));
  const write = (name: string, value: unknown): string => {
    writeFileSync(join(folder, name), JSON.stringify(value), { mode: 0o600 });
    return join(folder, name);
  };
  // Each node its own OSCORE context with the client: two processes must not share a Sender Key.
  const secrets = [randomBytes(16).toString('hex'), randomBytes(16).toString('hex')];
  const nodes: Daemon[] = [];
  t.after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    killChildren();
  });
  await Promise.all(
    secrets.map(async (secret, i) => {
      write(`ta-credentials-${i}.json`, { stateDirectory: `ta-state-${i}`, recipients: { '01': { name: 'alice', context: { masterSecret: secret, senderId: 'ff' } } } });
      const config = write(`ta-${i}.json`, { id: 'ta1', bind: '127.0.0.1:0', credentials: `ta-credentials-${i}.json`, store: `${redis.url}/14`, resourceServers: { rs1: { key: KEY.toString('hex') } }, policy: { alice: ['rs1'] } });
      nodes[i] = await startDaemon(['trust-anchor', '--config', config], /trust anchor ta1 serving on coap:\/\/127\.0\.0\.1:(\d+)/);
    }),
  );
  const alice = write('alice.json', {
    stateDirectory: 'alice-state',
    oscore: nodes.map((node, i) => ({ match: `coap://127.0.0.1:${node.port}/*`, context: { masterSecret: secrets[i], senderId: '01', recipientId: 'ff' } })),
  });
  const client = new CoapClient({ credentials: alice });
  t.after(() => client.close());
  const issue = async (node: Daemon): Promise<number> => {
    const response = await client.post(`coap://127.0.0.1:${node.port}/ta/dk`, JSON.stringify({ rs: 'rs1' }), { contentFormat: ContentFormat.Json });
    assert.equal(response.status, '2.05 Content', response.text());
    return (JSON.parse(response.text()) as { sequence: number }).sequence;
  };
  const issued = [];
  for (let i = 0; i < 3; i++) issued.push(...(await Promise.all(nodes.map(issue))));
  assert.equal(new Set(issued).size, issued.length, `numbers ${issued} all different`);
  assert.deepEqual([...issued].sort((x, y) => x - y).slice(0, 3), [1, 2, 3], 'the first node to reserve numbers from 1');
  assert.ok(Math.max(...issued) >= 17, 'the other node from its own block (reservationBlock 16)');
});
