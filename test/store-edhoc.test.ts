/**
 * Issue 26 item 4 for EDHOC clients: a context that EDHOC established on node A is written to the
 * shared store (StoredEdhocContexts), numbered from the store's reservations, so that when A dies
 * its client carries on at node B after one Echo round trip (RFC 8613 Appendix B.1.2) instead of a
 * new EDHOC run; and no (key, nonce) pair is used twice across the two nodes.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { EdhocClient, EdhocServer, StoredEdhocContexts } from '../src/edhoc-coap/index.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { RedisContextStore } from '../src/store/redis-store.js';
import { StoreContexts } from '../src/store/server-contexts.js';
import { edhocPeers } from './support/edhoc-peers.js';
import { TestRedis } from './store-redis-server.js';
import { auditNonces, recordingRelay } from './store-relay.js';

const redisReady = TestRedis.start();
after(async () => (await redisReady).stop());

const peers = edhocPeers(3, 2);

async function edhocNode(url: string) {
  const store = await RedisContextStore.open(url, { commandTimeoutMs: 1000 });
  const errors: Error[] = [];
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new OscoreServerSecurity([], { contextSource: new StoreContexts(store, { onError: (e) => errors.push(e) }) }) });
  const handled: string[] = [];
  server.resource('/hello', { GET: (request) => (handled.push('hello'), { code: ResponseCode.Content, payload: `hello ${request.context.oscore?.[0]?.peer ?? 'stranger'}` }) }, { requireOscore: true });
  const stored = new StoredEdhocContexts(store, { onError: (e) => errors.push(e) });
  const edhoc = EdhocServer.attach(server, { responder: peers.responder, sharedContexts: stored });
  return {
    server,
    edhoc,
    stored,
    handled,
    errors,
    port: server.address().port,
    close: async () => {
      await server.close();
      await stored.settled();
      await store.close();
    },
  };
}

test('an EDHOC client whose node dies carries on at another node after one Echo round trip, without a new EDHOC run', async (t) => {
  const redis = await redisReady;
  const url = `${redis.url}/4`;
  const a = await edhocNode(url);
  const b = await edhocNode(url);
  const relay = await recordingRelay(a.port);
  const client: CoapClient = new CoapClient({ bindIpv4: '127.0.0.1', security: (uri) => edhoc.securityFor(uri), parameters: { ackTimeout: 500, maxRetransmit: 2 } });
  const edhoc = new EdhocClient(client, { initiator: peers.initiator });
  t.after(async () => {
    await client.close();
    relay.close();
    await a.close();
    await b.close();
  });
  const uri = `coap://127.0.0.1:${relay.port}/hello`;

  for (let i = 0; i < 3; i++) assert.equal((await client.get(uri)).text(), 'hello client');
  const security = edhoc.securityFor(uri)!;
  assert.equal(security.handshakes, 1);
  assert.equal(a.edhoc.contexts.length, 1);
  await a.stored.settled();
  assert.deepEqual(a.errors, [], 'the context reached the store');

  // Node A dies; the relay (a balancer after its failover) sends the client to B.
  await a.close();
  relay.retarget(b.port);
  const before = relay.log.length;
  for (let i = 0; i < 3; i++) assert.equal((await client.get(uri)).text(), 'hello client', 'B knows the peer by the name stored with the context');
  assert.equal(security.handshakes, 1, 'no new EDHOC run: B took the context from the store');
  assert.equal(b.handled.length, 3, 'each request ran once at B');
  assert.equal(b.edhoc.contexts.length, 0, 'B ran no EDHOC itself');
  const atB = relay.log.slice(before);
  const challenges = auditNonces(atB.filter((e) => !e.fromClient || e.datagram.length >= 4), new Map());
  assert.equal(challenges, 1, 'one Echo challenge (a response with a Partial IV of its own) at B');
  // Every nonce of the context, at A and at B, protects one message only: A's and B's Partial IVs come from disjoint reservations.
  auditNonces(relay.log);
  assert.deepEqual(b.errors, []);
});
