/**
 * The pub-sub broker (draft-ietf-core-coap-pubsub) with an independent client: libcoap's
 * coap-client-notls creates a topic, publishes to it and subscribes to it, on loopback. There is no
 * independent pub-sub broker to run here (libcoap and aiocoap ship none as a program), so this is
 * the direction interop can be shown in.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PubSubBroker } from '../src/broker/broker.js';
import { encodeTopicProperties } from '../src/broker/topic-properties.js';
import { CoapClient } from '../src/client/client.js';
import { CoapServer } from '../src/server/server.js';
import { libcoapClient, which } from './support.js';

const tmp = mkdtempSync(join(tmpdir(), 'coapsec-broker-interop-'));
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  rmSync(tmp, { recursive: true, force: true });
});

test('libcoap client: create a topic (2.01 + Location-Path), publish (2.01 then 2.04), subscribe and receive each publication in order', async () => {
  assert.ok(which('coap-client-notls'), "coap-client-notls not on PATH: install Debian's libcoap3-bin");
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  const broker = new PubSubBroker(server);
  const ours = new CoapClient();
  closers.push(() => server.close(), () => ours.close());
  const base = `coap://127.0.0.1:${server.address().port}`;

  const body = join(tmp, 'topic.cbor');
  writeFileSync(body, encodeTopicProperties({ topicName: 'from-libcoap', resourceType: 'core.ps.data', topicContentFormat: 0 }));
  const created = await libcoapClient(['-m', 'post', '-t', '606', '-f', body, `${base}/ps`], { tmpDir: tmp });
  assert.equal(created.responseCode, '2.01', created.stdout);
  const topic = broker.store.byName('from-libcoap');
  assert.ok(topic);
  assert.match(created.response!.options, new RegExp(`Location-Path:ps, Location-Path:${topic.id}`));
  const data = `${base}${broker.dataPath(topic)}`;

  assert.equal((await libcoapClient(['-m', 'put', '-t', '0', '-e', 'hello', data], { tmpDir: tmp })).responseCode, '2.01');
  assert.equal((await libcoapClient(['-m', 'put', '-t', '0', '-e', 'again', data], { tmpDir: tmp })).responseCode, '2.04');
  assert.equal((await libcoapClient(['-m', 'put', '-t', '60', '-e', 'x', data], { tmpDir: tmp })).responseCode, '4.15');

  const subscription = libcoapClient(['-s', '4', data], { tmpDir: tmp, waitSeconds: 6, timeout: 15_000 });
  for (let i = 0; i < 100 && server.observations.count(broker.dataPath(topic)) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(server.observations.count(broker.dataPath(topic)), 1, 'libcoap registered');
  for (const text of ['one', 'two', 'three']) {
    assert.equal((await ours.put(data, text, { contentFormat: 0 })).code, 0x44);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const log = await subscription;
  const payloads = log.pdus.filter((p) => p.code === '2.05').map((p) => p.payload);
  assert.deepEqual(payloads, ["'again'", "'one'", "'two'", "'three'"], log.stdout); // libcoap quotes payloads
});
