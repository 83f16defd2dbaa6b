/** Topic ACLs on the authenticated identity: the library authorizer, and `coapsec broker --topic-acl` over DTLS. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PubSubBroker } from '../src/broker/broker.js';
import { loadTopicAcl, topicAclAuthorizer } from '../src/broker/topic-acl.js';
import { decodeTopicProperties, encodeTopicProperties, PUBSUB_CONTENT_FORMAT } from '../src/broker/topic-properties.js';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapServer } from '../src/server/server.js';
import { assertUsageError, coapsec, killChildren, startDaemon } from './support/cli-harness.js';

const folder = mkdtempSync(join(tmpdir(), 'coapsec-broker-acl-'));
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  killChildren();
  rmSync(folder, { recursive: true, force: true });
});

test('ACL: create, publish, subscribe and manage by identity; default deny (4.01 to a client known only by its address); the creator manages its topic', async () => {
  const file = join(folder, 'acl.json');
  writeFileSync(file, JSON.stringify({
    create: ['address:127.0.0.1'],
    list: ['*'],
    topics: { kitchen: { publish: ['address:127.0.0.1'], subscribe: ['address:127.0.0.2'] }, '*': { subscribe: ['*'] } },
  }));
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  new PubSubBroker(server, { authorize: topicAclAuthorizer(loadTopicAcl(file)) });
  const publisher = new CoapClient();
  const subscriber = new CoapClient({ bindIpv4: '127.0.0.2' });
  closers.push(() => server.close(), () => publisher.close(), () => subscriber.close());
  const base = `coap://127.0.0.1:${server.address().port}`;
  const body = (name: string) => encodeTopicProperties({ topicName: name, resourceType: 'core.ps.data' });
  assert.equal((await subscriber.post(`${base}/ps`, body('nope'), { contentFormat: PUBSUB_CONTENT_FORMAT })).code, ResponseCode.Unauthorized, 'not in create');
  const created = await publisher.post(`${base}/ps`, body('kitchen'), { contentFormat: PUBSUB_CONTENT_FORMAT });
  assert.equal(created.code, ResponseCode.Created);
  const data = `${base}${decodeTopicProperties(created.payload).topicData}`;
  assert.equal((await subscriber.put(data, 'forged')).code, ResponseCode.Unauthorized, 'a subscriber may not publish');
  assert.equal((await publisher.put(data, 'real')).code, ResponseCode.Created);
  assert.equal((await subscriber.get(data)).text(), 'real');
  assert.equal((await publisher.get(data)).code, ResponseCode.Unauthorized, 'the publisher is not a subscriber of kitchen');
  const config = `${base}/${(await subscriber.get(`${base}/ps`)).text().match(/<\/(ps\/[0-9a-f]{8})>/)![1]}`;
  assert.equal((await subscriber.delete(config)).code, ResponseCode.Unauthorized, 'only the creator (or manage) may delete');
  assert.equal((await subscriber.delete(data)).code, ResponseCode.Unauthorized, 'deleting topic-data needs publish');
  assert.equal((await publisher.get(config)).code, ResponseCode.Content, 'the creator manages its topic');
  assert.equal((await publisher.delete(config)).code, ResponseCode.Deleted);
});

test('ACL file mistakes are clear errors', () => {
  const bad = join(folder, 'bad.json');
  writeFileSync(bad, JSON.stringify({ topics: { t: { publsh: ['*'] } } }));
  assert.throws(() => loadTopicAcl(bad), /topics\.t: unknown permission "publsh"/);
  writeFileSync(bad, JSON.stringify({ create: 'x' }));
  assert.throws(() => loadTopicAcl(bad), /create must be a list of identities/);
});

test('coapsec broker over DTLS with --topic-acl: the PSK identity is the client; what the ACL does not grant is 4.03', async () => {
  const acl = join(folder, 'cli-acl.json');
  writeFileSync(acl, JSON.stringify({ create: ['dtls:psk:sensor'], topics: { '*': { publish: ['dtls:psk:sensor'] } } }));
  const psk = ['--psk-identity', 'sensor', '--psk', 'a-shared-secret-16'];
  const broker = await startDaemon(['broker', '--bind', '127.0.0.1:0', '--topic-acl', acl, ...psk], /coapsec broker on coaps:\/\/127\.0\.0\.1:(\d+)\/ps/);
  const base = `coaps://127.0.0.1:${broker.port}`;
  const created = await coapsec(['publish', `${base}/ps`, '--create-topic', 'door', '--payload', 'open', ...psk]);
  assert.equal(created.code, 0, created.stderr);
  assert.equal(created.stdout, '2.01 Created\n');
  const topicData = /topic-data: (\S+)/.exec(created.stderr)![1]!;
  assert.match(topicData, /^coaps:\/\//);
  const sub = await coapsec(['subscribe', topicData, ...psk]);
  assert.equal(sub.code, 4);
  assert.match(sub.stderr, /cannot subscribe: 4\.03 Forbidden \(dtls:psk:sensor may not subscribe on topic "door"\)/);
  assertUsageError(await coapsec(['broker', '--bind', '127.0.0.1:0', '--topic-acl', join(folder, 'missing.json')]), /topic ACL .*missing\.json/);
  assert.equal(await broker.stop(), 0);
});
