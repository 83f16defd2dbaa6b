/**
 * Issue 26 items 1 and 2 on real sockets: server nodes whose OSCORE contexts live in one Redis.
 * Each node is a CoapServer with its own store connection (what a separate process has).
 * - a device provisioned after the nodes started is served (looked up on a miss); an unknown kid
 *   costs one store lookup per negative-cache interval, not one per request;
 * - a request captured on node A and replayed to node B is refused with an Echo challenge (RFC
 *   8613 Appendix B.1.2) and B's handler does not run;
 * - Redis down: requests get 5.03 with a diagnostic, the node keeps running, and serves again once
 *   Redis is back.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { decodeMessage } from '../src/coap/codec.js';
import { ResponseCode } from '../src/coap/codes.js';
import { getOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { OSCORE_DEFAULTS } from '../src/credentials/oscore-params.js';
import { decodeOscoreOption } from '../src/oscore/option.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { RedisContextStore } from '../src/store/redis-store.js';
import { StoreContexts } from '../src/store/server-contexts.js';
import type { ContextStore, StoredContext } from '../src/store/types.js';
import { TestRedis } from './store-redis-server.js';
import { recordingRelay } from './store-relay.js';

const redisReady = TestRedis.start();
after(async () => (await redisReady).stop());

const SERVER_ID = new Uint8Array([0x53]);
const secretOf = (kid: number): Uint8Array => new Uint8Array(16).fill(kid);

function device(kid: number): StoredContext {
  return { name: `device-${kid}`, context: { ...OSCORE_DEFAULTS, masterSecret: secretOf(kid), senderId: SERVER_ID, recipientIds: [new Uint8Array([kid])], sequenceSaveInterval: 4 } };
}

function clientSecurity(kid: number, from = 0): OscoreClientSecurity {
  return new OscoreClientSecurity(new OscoreSecurityContext({ masterSecret: secretOf(kid), senderId: new Uint8Array([kid]), recipientIds: [SERVER_ID] }, new VolatileSequence(from)));
}

/** A store that counts the lookups it answers. */
function counted(store: ContextStore): { store: ContextStore; lookups: () => number } {
  let lookups = 0;
  const proxy = new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'findContext') return (...args: Parameters<ContextStore['findContext']>) => (lookups++, target.findContext(...args));
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: proxy, lookups: () => lookups };
}

interface Node {
  server: CoapServer;
  uri: string;
  handled: string[];
  lookups: () => number;
  errors: Error[];
  close(): Promise<void>;
}

async function node(url: string): Promise<Node> {
  const { store, lookups } = counted(await RedisContextStore.open(url, { commandTimeoutMs: 500 }));
  const errors: Error[] = [];
  const security = new OscoreServerSecurity([], { contextSource: new StoreContexts(store, { onError: (e) => errors.push(e) }) });
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, security });
  const handled: string[] = [];
  server.resource('/act', {
    POST: (request) => {
      handled.push(request.payload.toString());
      return { code: ResponseCode.Changed, payload: 'done' };
    },
  });
  return {
    server,
    uri: `coap://127.0.0.1:${server.address().port}`,
    handled,
    lookups,
    errors,
    close: async () => {
      await server.close();
      await store.close();
    },
  };
}

const client = (security: OscoreClientSecurity) => new CoapClient({ security: () => security, parameters: { ackTimeout: 500, maxRetransmit: 2 } });

test('a device provisioned while the node runs is served; an unknown kid is looked up once per interval', async (t) => {
  const redis = await redisReady;
  const url = `${redis.url}/1`;
  const a = await node(url);
  const provisioner = await RedisContextStore.open(url);
  t.after(async () => {
    await a.close();
    await provisioner.close();
  });
  const unknown = client(clientSecurity(9));
  t.after(() => unknown.close());
  for (let i = 0; i < 5; i++) {
    await assert.rejects(unknown.post(`${a.uri}/act`, 'x'), /4\.01 Unauthorized: "Security context not found"/);
  }
  assert.equal(a.lookups(), 1, 'the negative cache answers the repeats');

  await provisioner.putContext(device(1));
  const known = client(clientSecurity(1));
  t.after(() => known.close());
  const response = await known.post(`${a.uri}/act`, 'hello');
  assert.equal(response.status, '2.04 Changed');
  assert.deepEqual(a.handled, ['hello'], 'run once: the Echo round trip came first, the handler after it');
});

test('a request captured on node A and replayed to node B is refused with an Echo challenge; B never runs it', async (t) => {
  const redis = await redisReady;
  const url = `${redis.url}/2`;
  const provisioner = await RedisContextStore.open(url);
  await provisioner.putContext(device(2));
  await provisioner.close();
  const a = await node(url);
  const b = await node(url);
  const relay = await recordingRelay(a.server.address().port);
  const c = client(clientSecurity(2));
  t.after(async () => {
    await c.close();
    relay.close();
    await a.close();
    await b.close();
  });

  const response = await c.post(`coap://127.0.0.1:${relay.port}/act`, 'open the door');
  assert.equal(response.status, '2.04 Changed');
  assert.deepEqual(a.handled, ['open the door']);
  const captured = relay.log.filter((e) => e.fromClient).at(-1)!.datagram; // the request that echoed A's challenge and was run

  const onB = await sendRaw(b.server.address().port, captured);
  assert.equal(b.handled.length, 0, 'B did not run the replayed request');
  const oscore = getOption(onB, OptionNumber.Oscore);
  assert.ok(oscore, 'B answered with a protected message: the Echo challenge of B.1.2');
  assert.ok(decodeOscoreOption(oscore).piv, 'with a Partial IV of its own, never the request nonce (B.1.2)');

  const onA = await sendRaw(a.server.address().port, captured);
  assert.equal(onA.code, ResponseCode.Unauthorized, 'A itself knows it: Replay detected');
  assert.equal(a.handled.length, 1);
});

test('Redis down: 5.03 with a diagnostic and the node lives; Redis back: served again', async (t) => {
  const redis = await redisReady;
  const url = `${redis.url}/3`;
  const provisioner = await RedisContextStore.open(url);
  await provisioner.putContext(device(3));
  await provisioner.putContext(device(4));
  await provisioner.close();
  const a = await node(url);
  const first = client(clientSecurity(3));
  const second = client(clientSecurity(4));
  t.after(async () => {
    await first.close();
    await second.close();
    await a.close();
  });
  assert.equal((await first.post(`${a.uri}/act`, 'before')).status, '2.04 Changed');

  await redis.kill();
  try {
    await assert.rejects(second.post(`${a.uri}/act`, 'while down'), /5\.03 Service Unavailable: "OSCORE context store unavailable"/);
    assert.ok(a.errors.some((e) => e.message.startsWith(url) || e.message.includes(`127.0.0.1:${redis.port}`)), `the node was told which store failed: ${a.errors.map((e) => e.message).join('; ')}`);
    // A context already held keeps working while its reserved block lasts (no new number is needed for a plain response).
    assert.equal((await first.post(`${a.uri}/act`, 'held')).status, '2.04 Changed');
  } finally {
    await redis.start();
  }
  const deadline = Date.now() + 5000;
  let status = '';
  while (Date.now() < deadline && status !== '2.04 Changed') {
    status = await second.post(`${a.uri}/act`, 'after').then((r) => r.status, (e: Error) => e.message);
    if (status !== '2.04 Changed') await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(status, '2.04 Changed', 'served again once the store reconnected');
  assert.deepEqual(a.handled, ['before', 'held', 'after']);
});


/** Sends `datagram` from a fresh socket (an attacker's) and returns the answer. */
async function sendRaw(port: number, datagram: Buffer): Promise<ReturnType<typeof decodeMessage>> {
  const socket: Socket = createSocket('udp4');
  try {
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    const answer = new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer within 3 s')), 3000);
      socket.once('message', (data) => {
        clearTimeout(timer);
        resolve(data);
      });
    });
    socket.send(datagram, port, '127.0.0.1');
    return decodeMessage(await answer);
  } finally {
    socket.close();
  }
}
