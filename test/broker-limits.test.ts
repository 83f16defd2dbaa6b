/** The broker's limits (topics, per client, publication size, subscribers, rate), authorization hook and persistence. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PubSubBroker, type BrokerOptions } from '../src/broker/broker.js';
import { decodeTopicProperties, encodeTopicProperties, PUBSUB_CONTENT_FORMAT, type PartialTopicProperties } from '../src/broker/topic-properties.js';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { getStringOptions, getUintOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapServer } from '../src/server/server.js';

const closers: Array<() => Promise<void>> = [];
const folder = mkdtempSync(join(tmpdir(), 'coapsec-broker-'));
after(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  rmSync(folder, { recursive: true, force: true });
});

async function startBroker(options: BrokerOptions = {}) {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  const broker = new PubSubBroker(server, options);
  const client = new CoapClient();
  closers.push(() => server.close(), () => client.close());
  return { server, broker, base: `coap://127.0.0.1:${server.address().port}`, client };
}

async function create(client: CoapClient, base: string, properties: PartialTopicProperties) {
  const r = await client.post(`${base}/ps`, encodeTopicProperties(properties), { contentFormat: PUBSUB_CONTENT_FORMAT });
  return { response: r, properties: r.code === ResponseCode.Created ? decodeTopicProperties(r.payload) : undefined };
}

test('topics per client and per broker: 4.03 with a clear reason; a deleted topic frees its slot', async () => {
  const { base, client } = await startBroker({ limits: { maxTopicsPerClient: 2, maxTopics: 3 } });
  const a = await create(client, base, { topicName: 'a', resourceType: 'core.ps.data' });
  assert.equal(a.response.code, ResponseCode.Created);
  assert.equal((await create(client, base, { topicName: 'b', resourceType: 'core.ps.data' })).response.code, ResponseCode.Created);
  const third = await create(client, base, { topicName: 'c', resourceType: 'core.ps.data' });
  assert.equal(third.response.code, ResponseCode.Forbidden);
  assert.match(third.response.text(), /maximum of 2 topics/);
  const other = new CoapClient({ bindIpv4: '127.0.0.2' });
  closers.push(() => other.close());
  assert.equal((await create(other, base, { topicName: 'c', resourceType: 'core.ps.data' })).response.code, ResponseCode.Created, 'another client (address) has its own quota');
  const full = await create(other, base, { topicName: 'd', resourceType: 'core.ps.data' });
  assert.equal(full.response.code, ResponseCode.Forbidden);
  assert.match(full.response.text(), /broker holds its maximum of 3 topics/);
  const ofA = '/' + getStringOptions(a.response.message, OptionNumber.LocationPath).join('/');
  assert.equal((await client.delete(`${base}${ofA}`)).code, ResponseCode.Deleted);
  assert.equal((await create(client, base, { topicName: 'e', resourceType: 'core.ps.data' })).response.code, ResponseCode.Created, 'the freed slot can be used again');
});

test('publication size: 4.13 with Size1; max-subscribers: registrations past it are served without Observe (§3.2.2)', async () => {
  const { base, client } = await startBroker({ limits: { maxPublicationSize: 16, maxSubscribersPerTopic: 5 } });
  const { properties } = await create(client, base, { topicName: 's', resourceType: 'core.ps.data', maxSubscribers: 2 });
  assert.equal(properties!.maxSubscribers, 2);
  assert.equal((await create(client, base, { topicName: 'capped', resourceType: 'core.ps.data', maxSubscribers: 50 })).properties!.maxSubscribers, 5, 'the hint is capped by the broker');
  const data = `${base}${properties!.topicData}`;
  const tooLarge = await client.put(data, Buffer.alloc(17));
  assert.equal(tooLarge.code, ResponseCode.RequestEntityTooLarge);
  assert.equal(getUintOption(tooLarge.message, OptionNumber.Size1), 16);
  assert.equal((await client.put(data, Buffer.alloc(16))).code, ResponseCode.Created);

  const subscribers = [new CoapClient(), new CoapClient(), new CoapClient()];
  closers.push(...subscribers.map((s) => () => s.close()));
  const observations = [];
  for (const s of subscribers) {
    const o = await s.observe(data);
    const first = (await o.next()).value!;
    assert.equal(first.code, ResponseCode.Content);
    observations.push({ o, observed: getUintOption(first.message, OptionNumber.Observe) !== undefined });
  }
  assert.deepEqual(observations.map((x) => x.observed), [true, true, false]);

  // §2.5.4: lowering max-subscribers unsubscribes the excess with a final 4.04.
  const lowered = await client.ipatch(`${base}/ps/${(await client.get(`${base}/ps`)).text().match(/<\/ps\/([0-9a-f]{8})>/)![1]}`, encodeTopicProperties({ maxSubscribers: 1 }), { contentFormat: PUBSUB_CONTENT_FORMAT });
  assert.equal(lowered.code, ResponseCode.Changed);
  const shed = (await observations[1]!.o.next()).value!;
  assert.equal(shed.code, ResponseCode.NotFound, 'the newest subscriber is unsubscribed');
  assert.equal((await client.put(data, 'next')).code, ResponseCode.Changed);
  assert.equal((await observations[0]!.o.next()).value!.text(), 'next', 'the oldest stays subscribed');
  for (const { o } of observations) await o.cancel();
});

test('rate limiting (§3.4): 4.29 with Max-Age when a client publishes too fast', async () => {
  const { base, client } = await startBroker({ limits: { publicationsPerSecond: 0.5, publicationBurst: 2 } });
  const { properties } = await create(client, base, { topicName: 'r', resourceType: 'core.ps.data' });
  const data = `${base}${properties!.topicData}`;
  assert.equal((await client.put(data, '1')).code, ResponseCode.Created);
  assert.equal((await client.put(data, '2')).code, ResponseCode.Changed);
  const limited = await client.put(data, '3');
  assert.equal(limited.code, ResponseCode.TooManyRequests);
  assert.equal(getUintOption(limited.message, OptionNumber.MaxAge), 2);
  assert.equal((await client.get(data)).text(), '2', 'the refused publication was not stored');
});

test('authorization hook: the broker asks with the operation, topic and identity; false is 4.01 for a client no OSCORE or DTLS authenticated', async () => {
  const asked: string[] = [];
  const { base, client } = await startBroker({
    authorize: ({ operation, topic, identity }) => {
      asked.push(`${operation} ${topic?.properties.topicName ?? '-'} ${identity}`);
      return !(operation === 'subscribe' || (operation === 'publish' && topic?.properties.topicName === 'read-only'));
    },
  });
  const { properties } = await create(client, base, { topicName: 'read-only', resourceType: 'core.ps.data', topicContentFormat: 0, initialize: Buffer.from('init') });
  const data = `${base}${properties!.topicData}`;
  const put = await client.put(data, 'x', { contentFormat: 0 });
  assert.equal(put.code, ResponseCode.Unauthorized);
  assert.match(put.text(), /address:127\.0\.0\.1 may not publish on topic "read-only": authenticate \(OSCORE or DTLS\) first/);
  assert.equal((await client.get(data)).text(), 'init');
  const o = await client.observe(data);
  assert.equal((await o.next()).value!.code, ResponseCode.Unauthorized);
  await o.cancel();
  assert.deepEqual(asked, ['create - address:127.0.0.1', 'publish read-only address:127.0.0.1', 'read-data read-only address:127.0.0.1', 'subscribe read-only address:127.0.0.1']);
});

test('persistence: topics, configuration and the latest publication survive a restart; a malformed state file is refused clearly', async () => {
  const stateFile = join(folder, 'broker.json');
  const first = await startBroker({ stateFile });
  const { properties } = await create(first.client, first.base, { topicName: 'kept', resourceType: 'core.ps.data', topicType: 'temperature' });
  await create(first.client, first.base, { topicName: 'half', resourceType: 'core.ps.data' });
  await first.client.put(`${first.base}${properties!.topicData}`, Uint8Array.of(1, 2, 3), { contentFormat: 42 });
  await first.server.close();
  const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as { topics: unknown[] };
  assert.equal(saved.topics.length, 2);

  const second = await startBroker({ stateFile });
  const topics = (await second.client.get(`${second.base}/ps`)).text();
  assert.equal(topics.match(/<\/ps\/[0-9a-f]{8}>/g)?.length, 2);
  const latest = await second.client.get(`${second.base}${properties!.topicData}`);
  assert.equal(latest.code, ResponseCode.Content);
  assert.deepEqual([...latest.payload], [1, 2, 3]);
  assert.equal(latest.contentFormat, 42);
  assert.equal((await second.client.put(`${second.base}${properties!.topicData}`, 'again')).code, ResponseCode.Changed, 'still fully created');
  assert.equal((await create(second.client, second.base, { topicName: 'kept', resourceType: 'core.ps.data' })).response.code, ResponseCode.BadRequest, 'names still taken');
  await second.server.close();
  const corrupt = join(folder, 'corrupt.json');
  writeFileSync(corrupt, '{"version":1,"topics":[{"id":"../x"}]}');
  const third = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  closers.push(() => third.close());
  assert.throws(() => new PubSubBroker(third, { stateFile: corrupt }), (error: Error) => error.name === 'BrokerStateError' && /corrupt\.json: topic 0 has a bad id/.test(error.message));
});
