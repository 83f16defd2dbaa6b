/**
 * Issue 26 item 1, the broker's state in the context store: a broker whose topics are a state blob
 * in Redis (`openStateBlob`) fails over to a broker on another node, which starts from that blob:
 * its topics, configuration and latest publications are there. (One broker serves the topics at a
 * time: the blob is the whole state, written after each change, not a shared database.)
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { PubSubBroker } from '../src/broker/broker.js';
import { decodeTopicProperties, encodeTopicProperties, PUBSUB_CONTENT_FORMAT } from '../src/broker/topic-properties.js';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapServer } from '../src/server/server.js';
import { RedisContextStore } from '../src/store/redis-store.js';
import { openStateBlob } from '../src/store/state-blob.js';
import { TestRedis } from './store-redis-server.js';

const redisReady = TestRedis.start();
after(async () => (await redisReady).stop());

async function brokerNode(url: string) {
  const store = await RedisContextStore.open(url);
  const errors: Error[] = [];
  const state = await openStateBlob(store, 'broker', { onError: (e) => errors.push(e) });
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  new PubSubBroker(server, { state, flushDelayMs: 5 });
  let stopped = false;
  return {
    base: `coap://127.0.0.1:${server.address().port}`,
    errors,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.close();
      await state.settled();
      await store.close();
    },
  };
}

test('a broker on another node starts from the topics and publications the first one wrote to Redis', async (t) => {
  const url = `${(await redisReady).url}/5`;
  const client = new CoapClient();
  t.after(() => client.close());
  const a = await brokerNode(url);
  t.after(() => a.stop());
  const created = await client.post(`${a.base}/ps`, encodeTopicProperties({ topicName: 'kitchen', resourceType: 'core.ps.data' }), { contentFormat: PUBSUB_CONTENT_FORMAT });
  assert.equal(created.code, ResponseCode.Created);
  const { topicData } = decodeTopicProperties(created.payload);
  assert.equal((await client.put(`${a.base}${topicData}`, '21.5 C', { contentFormat: 0 })).code, ResponseCode.Created, 'the first publication fully creates the topic');
  await a.stop();
  assert.deepEqual(a.errors, []);

  const b = await brokerNode(url);
  t.after(() => b.stop());
  const latest = await client.get(`${b.base}${topicData}`);
  assert.equal(latest.code, ResponseCode.Content);
  assert.equal(latest.text(), '21.5 C');
  assert.match((await client.get(`${b.base}/ps`)).text(), /<\/ps\/[0-9a-f]{8}>/);
});
