/** The pub-sub broker's resources against draft-ietf-core-coap-pubsub, over loopback UDP. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { encode } from 'cbor2';
import { PubSubBroker, type BrokerOptions } from '../src/broker/broker.js';
import { decodeTopicProperties, encodeTopicProperties, PUBSUB_CONTENT_FORMAT, type PartialTopicProperties } from '../src/broker/topic-properties.js';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { parseLinkFormat } from '../src/coap/link-format.js';
import { decodeString, getStringOptions, getUintOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapServer } from '../src/server/server.js';

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

export async function startBroker(options: BrokerOptions = {}): Promise<{ server: CoapServer; broker: PubSubBroker; base: string; client: CoapClient }> {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  const broker = new PubSubBroker(server, options);
  const client = new CoapClient();
  closers.push(() => server.close(), () => client.close());
  return { server, broker, base: `coap://127.0.0.1:${server.address().port}`, client };
}

async function create(client: CoapClient, base: string, properties: PartialTopicProperties) {
  const r = await client.post(`${base}/ps`, encodeTopicProperties(properties), { contentFormat: PUBSUB_CONTENT_FORMAT });
  return { response: r, properties: r.code === ResponseCode.Created ? decodeTopicProperties(r.payload) : undefined, location: '/' + getStringOptions(r.message, OptionNumber.LocationPath).join('/') };
}

test('create (§2.4.3): 2.01 with Location-Path and the full configuration; GET and FETCH read it (§2.5.1, §2.5.2)', async () => {
  const { base, client } = await startBroker();
  const { response, properties, location } = await create(client, base, { topicName: 'living-room', resourceType: 'core.ps.data', topicContentFormat: 60 });
  assert.equal(response.code, ResponseCode.Created);
  assert.equal(response.contentFormat, PUBSUB_CONTENT_FORMAT);
  assert.match(location, /^\/ps\/[0-9a-f]{8}$/);
  assert.equal(properties!.topicName, 'living-room');
  assert.equal(properties!.resourceType, 'core.ps.data');
  assert.match(properties!.topicData!, /^\/ps\/data\/[0-9a-f]{8}$/);
  assert.equal(properties!.observerCheck, 86400, 'the default observer-check is stored and shown');

  const read = await client.get(`${base}${location}`);
  assert.equal(read.code, ResponseCode.Content);
  assert.equal(read.contentFormat, PUBSUB_CONTENT_FORMAT);
  assert.deepEqual(decodeTopicProperties(read.payload), properties);

  const part = await client.fetch(`${base}${location}`, encode([1, 3]), { contentFormat: 60 });
  assert.equal(part.code, ResponseCode.Content);
  assert.deepEqual(decodeTopicProperties(part.payload), { topicData: properties!.topicData, topicContentFormat: 60 });

  const duplicate = await create(client, base, { topicName: 'living-room', resourceType: 'core.ps.data' });
  assert.equal(duplicate.response.code, ResponseCode.BadRequest, 'topic-name in use');
  const missing = await create(client, base, { topicName: 'no-rt' });
  assert.equal(missing.response.code, ResponseCode.BadRequest, 'resource-type is required');
  const unknownKey = await client.post(`${base}/ps`, encode(new Map<number, unknown>([[0, 'x'], [2, 'core.ps.data'], [99, 1]])), { contentFormat: PUBSUB_CONTENT_FORMAT });
  assert.equal(unknownKey.code, ResponseCode.BadRequest);
  assert.match(unknownKey.text(), /unrecognized topic property 99/);
  const wrongFormat = await client.post(`${base}/ps`, encodeTopicProperties({ topicName: 'y', resourceType: 'core.ps.data' }), { contentFormat: 60 });
  assert.equal(wrongFormat.code, ResponseCode.UnsupportedContentFormat);
  assert.equal((await client.post(`${base}/ps`, Buffer.from([0xff, 0x00]), { contentFormat: PUBSUB_CONTENT_FORMAT })).code, ResponseCode.BadRequest, 'malformed CBOR');
  assert.equal((await client.get(`${base}/ps/ffffffff`)).code, ResponseCode.NotFound);
});

test('update (§2.5.3 POST replaces, §2.5.4 iPATCH merges); immutable properties refused; DELETE (§2.5.5)', async () => {
  const { base, client } = await startBroker();
  const { location, properties } = await create(client, base, { topicName: 't', resourceType: 'core.ps.data', topicType: 'temperature', maxSubscribers: 5 });
  const patched = await client.ipatch(`${base}${location}`, encodeTopicProperties({ expirationDate: 4102444800, maxSubscribers: 3 }), { contentFormat: PUBSUB_CONTENT_FORMAT });
  assert.equal(patched.code, ResponseCode.Changed);
  const afterPatch = decodeTopicProperties(patched.payload);
  assert.equal(afterPatch.topicType, 'temperature', 'iPATCH leaves the others');
  assert.equal(afterPatch.expirationDate, 4102444800);
  assert.equal(afterPatch.maxSubscribers, 3);

  const replaced = await client.post(`${base}${location}`, encodeTopicProperties({ topicName: 't', topicContentFormat: 0 }), { contentFormat: PUBSUB_CONTENT_FORMAT });
  assert.equal(replaced.code, ResponseCode.Changed);
  const afterPost = decodeTopicProperties(replaced.payload);
  assert.equal(afterPost.topicType, undefined, 'POST resets what it leaves out');
  assert.equal(afterPost.expirationDate, undefined);
  assert.equal(afterPost.maxSubscribers, 1000, 'back to the broker default');
  assert.equal(afterPost.topicContentFormat, 0);
  assert.equal(afterPost.topicData, properties!.topicData, 'topic-data kept');

  for (const change of [{ topicName: 'other' }, { topicData: '/ps/data/elsewhere' }, { resourceType: 'x.y' }]) {
    const r = await client.ipatch(`${base}${location}`, encodeTopicProperties(change), { contentFormat: PUBSUB_CONTENT_FORMAT });
    assert.equal(r.code, ResponseCode.BadRequest, JSON.stringify(change));
    assert.match(r.text(), /cannot be changed/);
  }
  assert.equal((await client.ipatch(`${base}/ps`, encodeTopicProperties({ topicType: 'x' }), { contentFormat: PUBSUB_CONTENT_FORMAT })).code, ResponseCode.MethodNotAllowed);
  assert.equal((await client.put(`${base}${location}`, encodeTopicProperties({ topicType: 'x' }), { contentFormat: PUBSUB_CONTENT_FORMAT })).code, ResponseCode.MethodNotAllowed, 'the draft updates with POST, not PUT');

  assert.equal((await client.delete(`${base}${location}`)).code, ResponseCode.Deleted);
  assert.equal((await client.get(`${base}${location}`)).code, ResponseCode.NotFound);
  assert.equal((await client.delete(`${base}${location}`)).code, ResponseCode.NotFound, 'a repeated DELETE gets 4.04');
  assert.equal((await client.put(`${base}${properties!.topicData}`, 'x')).code, ResponseCode.NotFound, 'its topic-data is gone too');
});

test('lifecycle (§3.1): half created → 4.04 to GET and Observe; first PUT 2.01, then 2.04; GET reads the latest; DELETE of topic-data → half created', async () => {
  const { base, client } = await startBroker();
  const { properties } = await create(client, base, { topicName: 'life', resourceType: 'core.ps.data' });
  const data = `${base}${properties!.topicData}`;
  assert.equal((await client.get(data)).code, ResponseCode.NotFound, 'half created: no data to read');
  const early = await client.observe(data);
  const first = await early.next();
  assert.equal(first.value!.code, ResponseCode.NotFound, 'half created: no subscription');
  assert.equal(early.registered, false);
  await early.cancel();

  assert.equal((await client.put(data, 'one', { contentFormat: 0 })).code, ResponseCode.Created);
  assert.equal((await client.put(data, 'two', { contentFormat: 0 })).code, ResponseCode.Changed);
  const latest = await client.get(data);
  assert.equal(latest.code, ResponseCode.Content);
  assert.equal(latest.text(), 'two');
  assert.equal(latest.contentFormat, 0);

  const sub = await client.observe(data);
  assert.equal((await sub.next()).value!.text(), 'two');
  assert.equal((await client.delete(data)).code, ResponseCode.Deleted);
  const final = await sub.next();
  assert.equal(final.value!.code, ResponseCode.NotFound, 'subscribers get a final 4.04 (§3.2.4)');
  assert.equal((await client.get(data)).code, ResponseCode.NotFound, 'half created again');
  assert.equal((await client.delete(data)).code, ResponseCode.NotFound, 'a repeated DELETE gets 4.04');
  assert.equal((await client.get(`${base}/ps/${'x'}`)).code, ResponseCode.NotFound);
  assert.equal((await client.put(data, 'three')).code, ResponseCode.Created, 'the next publication creates it again');
  await sub.cancel();
});

test('initialize (§2.2.1): the topic is fully created at once; initialize needs topic-content-format', async () => {
  const { base, client } = await startBroker();
  const { properties } = await create(client, base, { topicName: 'init', resourceType: 'core.ps.data', topicContentFormat: 60, initialize: Uint8Array.of(0x80) });
  const data = `${base}${properties!.topicData}`;
  const read = await client.get(data);
  assert.equal(read.code, ResponseCode.Content);
  assert.deepEqual([...read.payload], [0x80]);
  assert.equal(read.contentFormat, 60);
  assert.equal((await client.put(data, Uint8Array.of(0x81, 0x01), { contentFormat: 60 })).code, ResponseCode.Changed, 'initialize counts as the first publication');
  assert.equal((await client.put(data, 'text', { contentFormat: 0 })).code, ResponseCode.UnsupportedContentFormat, '§3.2.1: not the topic-content-format');
  assert.equal((await create(client, base, { topicName: 'bad-init', resourceType: 'core.ps.data', initialize: Uint8Array.of(0x80) })).response.code, ResponseCode.BadRequest);
});

test('subscribe (§3.2.2): three subscribers receive every publication, in order, as opaque bytes', async () => {
  const { base, client } = await startBroker();
  const { properties } = await create(client, base, { topicName: 'fan-out', resourceType: 'core.ps.data' });
  const data = `${base}${properties!.topicData}`;
  assert.equal((await client.put(data, Uint8Array.of(0), { contentFormat: 42 })).code, ResponseCode.Created);
  const subscribers = [new CoapClient(), new CoapClient(), new CoapClient()];
  closers.push(...subscribers.map((s) => () => s.close()));
  const observations = await Promise.all(subscribers.map((s) => s.observe(data)));
  for (const o of observations) {
    const initial = (await o.next()).value!;
    assert.equal(initial.code, ResponseCode.Content);
    assert.notEqual(getUintOption(initial.message, OptionNumber.Observe), undefined, 'registered: the response carries Observe');
  }
  const count = 30;
  const publications = Array.from({ length: count }, (_, i) => Uint8Array.from([i + 1, 0xff, 0x00, i]));
  for (const p of publications) assert.equal((await client.put(data, p, { contentFormat: 42 })).code, ResponseCode.Changed);
  for (const o of observations) {
    const seen: number[][] = [];
    for (let i = 0; i < count; i++) {
      const n = (await o.next()).value!;
      assert.equal(n.contentFormat, 42);
      seen.push([...n.payload]);
    }
    assert.deepEqual(seen, publications.map((p) => [...p]));
    await o.cancel();
  }
});

test('discovery (§2.3): /.well-known/core lists core.ps.coll, core.ps.conf and (fully created) core.ps.data; the collection lists and filters topics', async () => {
  const { base, client } = await startBroker();
  const a = await create(client, base, { topicName: 'a', resourceType: 'core.ps.data', topicType: 'temperature' });
  const b = await create(client, base, { topicName: 'b', resourceType: 'core.ps.data', topicType: 'humidity' });
  await client.put(`${base}${a.properties!.topicData}`, '21');
  const hrefs = async (uri: string) => parseLinkFormat((await client.get(uri)).text()).map((l) => l.href).sort();
  assert.deepEqual(await hrefs(`${base}/.well-known/core?rt=core.ps.coll`), ['/ps']);
  assert.deepEqual(await hrefs(`${base}/.well-known/core?rt=core.ps`), ['/ps']);
  assert.deepEqual(await hrefs(`${base}/.well-known/core?rt=core.ps.conf`), [a.location, b.location].sort());
  assert.deepEqual(await hrefs(`${base}/.well-known/core?rt=core.ps.data`), [a.properties!.topicData], 'half-created topic-data does not exist yet');
  const collection = await client.get(`${base}/ps`);
  assert.equal(collection.contentFormat, 40);
  assert.deepEqual(parseLinkFormat(collection.text()).map((l) => l.href).sort(), [a.location, b.location].sort());
  assert.deepEqual(await hrefs(`${base}/ps?rt=core.ps.data`), [a.properties!.topicData], '§2.3.4: the collection MUST support rt=core.ps.data');
  const filtered = await client.fetch(`${base}/ps`, encodeTopicProperties({ topicType: 'humidity', resourceType: 'core.ps.data' }), { contentFormat: PUBSUB_CONTENT_FORMAT });
  assert.equal(filtered.code, ResponseCode.Content);
  assert.deepEqual(parseLinkFormat(filtered.text()).map((l) => l.href), [b.location], '§2.4.2 FETCH by properties');
  assert.equal(decodeString((await client.fetch(`${base}/ps`, encodeTopicProperties({ topicType: 'pressure' }), { contentFormat: PUBSUB_CONTENT_FORMAT })).payload), '');
});

test('expiration-date (§2.2.1): an expired topic and its topic-data are deleted', async () => {
  let now = Date.UTC(2030, 0, 1);
  const { base, client } = await startBroker({ now: () => now });
  const { properties, location } = await create(client, base, { topicName: 'short', resourceType: 'core.ps.data', expirationDate: now / 1000 + 60 });
  const data = `${base}${properties!.topicData}`;
  await client.put(data, 'x');
  assert.equal((await create(client, base, { topicName: 'past', resourceType: 'core.ps.data', expirationDate: now / 1000 - 1 })).response.code, ResponseCode.BadRequest);
  now += 61_000;
  assert.equal((await client.get(`${base}${location}`)).code, ResponseCode.NotFound);
  assert.equal((await client.get(data)).code, ResponseCode.NotFound);
});
