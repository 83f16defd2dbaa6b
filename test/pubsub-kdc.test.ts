/**
 * Topic keys from the online Group Manager acting as the pub-sub profile's KDC
 * (draft-ietf-ace-coap-pubsub-profile §3, §4, §6), in one process over real sockets: an AS, the
 * KDC (an ACE resource server with AIF-PUBSUB-GROUPCOMM scopes), a broker, one publisher and two
 * subscribers that all get their keys from the KDC; a publication verified at both; a subscriber
 * removed → rekey → the next publication unreadable for it and read by the other; the 4.03s of a
 * token for another topic and of a subscriber asking to publish.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { decodeStrict, encodeCbor, fromHex, toHex } from '../src/cose/cbor.js';
import { MemoryAsState } from '../src/ace/as-state.js';
import { bindAuthorizationServer } from '../src/ace/as-resources.js';
import { AuthorizationServer } from '../src/ace/authorization-server.js';
import { AceClientSecurity } from '../src/ace/client.js';
import { SCOPE_FORMATS } from '../src/ace/scope-format.js';
import { PubSubBroker } from '../src/broker/broker.js';
import { decodeTopicProperties, encodeTopicProperties, PUBSUB_CONTENT_FORMAT } from '../src/broker/topic-properties.js';
import { attachTopicKdc, GroupJoinError, GroupManagerConfigError, openTopicKdc, GroupParam, PubSubKeyParam, TopicKdc, TopicMembership, type TopicRole } from '../src/group-manager/index.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { PublicationVerifier } from '../src/pubsub-protection/publication.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { peerKey } from '../src/transport/transport.js';

const KDC_KEY = { kid: fromHex('9b'), key: fromHex('b0b1b2b3b4b5b6b7b8b9babbbcbdbebf') };
const PUBSUB = SCOPE_FORMATS['aif-pubsub']!;
const NAMES = ['sensor', 'display', 'logger', 'mallory'] as const;
type Name = (typeof NAMES)[number];

function asContexts(name: string, i: number): { client: OscoreSecurityContext; server: OscoreSecurityContext } {
  const masterSecret = Uint8Array.from({ length: 16 }, (_, k) => 0x40 + i * 16 + k);
  const id = Uint8Array.of(i + 1);
  return {
    client: new OscoreSecurityContext({ masterSecret, senderId: id, recipientIds: [fromHex('aa')], name: 'as' }, new VolatileSequence()),
    server: new OscoreSecurityContext({ masterSecret, senderId: fromHex('aa'), recipientIds: [id], name }, new VolatileSequence()),
  };
}
const toAs = Object.fromEntries(NAMES.map((n, i) => [n, asContexts(n, i)])) as Record<Name, ReturnType<typeof asContexts>>;

let asServer: CoapServer;
let kdcServer: CoapServer;
let brokerServer: CoapServer;
let kdc: TopicKdc;
let asUri: string;
let kdcOrigin: string;
let topicData: string;
let stateDirectory: string;
const closers: Array<() => Promise<void> | void> = [];

before(async () => {
  stateDirectory = mkdtempSync(join(tmpdir(), 'coapsec-pubsub-kdc-'));
  asServer = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new OscoreServerSecurity(NAMES.map((n) => toAs[n].server)) });
  const as = new AuthorizationServer({
    issuer: 'as',
    audiences: [{ name: 'kdc', key: KDC_KEY, scopes: ['kitchen:publish', 'kitchen:read', 'garage:publish', 'garage:read'], profile: 'coap_oscore', scopeFormat: PUBSUB }],
    clients: [
      { name: 'sensor', grants: new Map([['kdc', ['kitchen:publish']]]) },
      { name: 'display', grants: new Map([['kdc', ['kitchen:read']]]) },
      { name: 'logger', grants: new Map([['kdc', ['kitchen:read']]]) },
      { name: 'mallory', grants: new Map([['kdc', ['garage:read']]]) },
    ],
    state: new MemoryAsState(),
  });
  bindAuthorizationServer(asServer, as);
  asUri = `coap://${peerKey(asServer.address())}/token`;

  kdc = TopicKdc.create(['kitchen', 'garage']);
  kdcServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  attachTopicKdc(kdcServer, kdc, { audiences: ['kdc'], tokenKeys: [KDC_KEY], asUri, issuer: 'as' });
  kdcOrigin = `coap://${peerKey(kdcServer.address())}`;

  brokerServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  new PubSubBroker(brokerServer);
  const admin = coapClient();
  const brokerOrigin = `coap://${peerKey(brokerServer.address())}`;
  const created = await admin.post(`${brokerOrigin}/ps`, encodeTopicProperties({ topicName: 'kitchen', resourceType: 'core.ps.data', topicContentFormat: ContentFormat.TextPlain }), { contentFormat: PUBSUB_CONTENT_FORMAT });
  assert.equal(created.code, ResponseCode.Created);
  topicData = `${brokerOrigin}${decodeTopicProperties(created.payload).topicData!}`;
});

after(async () => {
  for (const close of closers.reverse()) await close();
  await Promise.all([asServer.close(), kdcServer.close(), brokerServer.close()]);
  rmSync(stateDirectory, { recursive: true, force: true });
});

function coapClient(): CoapClient {
  const client = new CoapClient();
  closers.push(() => client.close());
  return client;
}

async function joinTopic(name: Name, roles: TopicRole[], topic = 'kitchen'): Promise<TopicMembership> {
  const membership = await TopicMembership.join({ client: coapClient(), kdcOrigin, asUri, asSecurity: new OscoreClientSecurity(toAs[name].client), topic, roles, name, stateDirectory });
  closers.push(() => membership.close());
  return membership;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([promise, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)))]).finally(() => clearTimeout(timer));
}

/** A subscriber's observation of the topic-data: each notification verified with its KDC material. */
async function subscribe(member: TopicMembership): Promise<{ next(): Promise<string> }> {
  const observation = await coapClient().observe(topicData);
  closers.push(() => observation.cancel());
  const iterator = observation[Symbol.asyncIterator]();
  const binding = (contentFormat: number | undefined) => ({ topicDataPath: new URL(topicData).pathname, contentFormat });
  return {
    async next() {
      const { value, done } = await withTimeout(iterator.next(), 5000, 'a publication');
      assert.ok(!done && value.code === ResponseCode.Content, 'a notification');
      const verdict = await member.verify(value.payload, binding(value.contentFormat));
      return verdict.ok ? Buffer.from(verdict.plaintext).toString() : `refused: ${verdict.reason}`;
    },
  };
}

async function publish(member: TopicMembership, text: string): Promise<void> {
  const body = member.protect(new TextEncoder().encode(text), { topicDataPath: new URL(topicData).pathname, contentFormat: ContentFormat.TextPlain });
  const response = await coapClient().put(topicData, body, { contentFormat: ContentFormat.TextPlain });
  assert.ok(response.ok, `published: ${response.status}`);
}

test('the pub-sub scope format (profile §3.4.1): topic and permission bits, Admin never granted', () => {
  assert.deepEqual(decodeStrict(PUBSUB.encode(['kitchen:publish', 'kitchen:read']) as Uint8Array), [['kitchen', 0b1100]]);
  assert.deepEqual(PUBSUB.tokens(encodeCbor([['kitchen', 0b0110]])), ['kitchen:appgroup', 'kitchen:publish']);
  assert.deepEqual(PUBSUB.tokens(encodeCbor([['kitchen', 0b1]])), ['kitchen:bit0'], 'Admin (bit 0) is a token nothing grants');
});

const members: Partial<Record<Name, TopicMembership>> = {};

test('a publisher and two subscribers join through the KDC; a publication verifies at both subscribers', async () => {
  members.sensor = await joinTopic('sensor', ['publisher']);
  members.display = await joinTopic('display', ['subscriber']);
  members.logger = await joinTopic('logger', ['subscriber']);
  const { sensor, display, logger } = members as Required<typeof members>;
  assert.equal(sensor.material.groupKey.num, 0, 'the first version is 0 (§4.1.2, REQ16)');
  assert.ok(sensor.material.senderId !== undefined, 'the publisher has a Sender ID');
  assert.equal(display.material.senderId, undefined, 'a subscriber has none');
  for (const s of [display, logger]) {
    assert.deepEqual(s.material.groupKey.gid, sensor.material.groupKey.gid, 'one Gid');
    assert.deepEqual(s.material.groupKey.key, sensor.material.groupKey.key, 'one group key');
    assert.deepEqual(s.material.publishers.map((p) => toHex(p.senderId)), [toHex(sensor.material.senderId!)], "the subscribers got the publisher's credential (get_creds)");
  }
  // Only publishers are registered with a credential (§4.1.1.1).
  const state = kdc.toJSON().topics.find((t) => t.group.topic === 'kitchen')!.group;
  assert.deepEqual(Object.values(state.members).map((m) => [m.roles.join(), m.cred !== undefined]).sort(), [['publisher', true], ['subscriber', false], ['subscriber', false]]);

  // A topic-data resource is observable once it has a publication (core-coap-pubsub §3.2.2).
  await publish(sensor, '21.0 C');
  const subs = [await subscribe(display), await subscribe(logger)];
  assert.deepEqual(await Promise.all(subs.map((s) => s.next())), ['21.0 C', '21.0 C'], 'the latest publication, at registration');
  await publish(sensor, '21.5 C');
  assert.deepEqual(await Promise.all(subs.map((s) => s.next())), ['21.5 C', '21.5 C']);
  subscriptions.push(...subs);
});

const subscriptions: Array<{ next(): Promise<string> }> = [];

test('a subscriber removed by the KDC: the others follow the rekey, the next publication is unreadable for it', async () => {
  const { sensor, display, logger } = members as Required<typeof members>;
  const rekeyed = (m: TopicMembership) => new Promise<number>((resolve, reject) => void m.watch((material) => resolve(material.groupKey.num), (why) => reject(new Error(why))).then((o) => closers.push(() => o.cancel())));
  const sensorRekey = rekeyed(sensor);
  const displayRekey = rekeyed(display);
  const loggerEnd = new Promise<string>((resolve) => void logger.watch(() => resolve('updated'), resolve).then((o) => closers.push(() => o.cancel())));
  await new Promise((r) => setTimeout(r, 100)); // the registrations reach the KDC
  const oldGid = logger.material.groupKey.gid;
  kdc.removeNode('kitchen', logger.node);
  assert.deepEqual(await withTimeout(Promise.all([sensorRekey, displayRekey]), 5000, 'the rekey notifications'), [1, 1]);
  assert.match(await withTimeout(loggerEnd, 5000, "the removed subscriber's end"), /4\.03.*error 0/);
  assert.notDeepEqual(sensor.material.groupKey.gid, oldGid, 'a new Gid');

  await publish(sensor, '22.0 C');
  const [displayRead, loggerRead] = await Promise.all(subscriptions.map((s) => s.next()));
  assert.equal(displayRead, '22.0 C', 'the remaining subscriber reads it');
  assert.equal(loggerRead, 'refused: unknown-group-key', 'the removed one cannot: its key is the old one and the KDC gives it no other');
  assert.equal(logger.material.groupKey.num, 0);
  // Its old material alone, away from the KDC, cannot read it either.
  const last = await coapClient().get(topicData);
  const verdict = new PublicationVerifier(logger.material).verify(last.payload, { topicDataPath: new URL(topicData).pathname, contentFormat: last.contentFormat });
  assert.equal(verdict.ok, false);
});

test('a publisher that joins later: the subscriber following the KDC knows it at its first publication', async () => {
  const second = await joinTopic('sensor', ['publisher']);
  assert.notDeepEqual(second.material.senderId, members.sensor!.material.senderId, 'a Sender ID of its own');
  // Published at once: the subscriber's refresh on the KDC's notification may still be under way.
  await publish(second, 'from the second sensor');
  const [displayRead] = await Promise.all(subscriptions.map((s) => s.next()));
  assert.equal(displayRead, 'from the second sensor');
  assert.equal(members.display!.material.publishers.length, 2);
});

test('a token for another topic gets 4.03; a subscriber asking to join as publisher gets 4.03 (RFC 9594 §4.3.1)', async () => {
  // mallory's token is for garage: joining kitchen is forbidden, and so is reading its keys.
  const client = coapClient();
  const mallory = new AceClientSecurity({ client, asUri, asSecurity: new OscoreClientSecurity(toAs.mallory.client), rsOrigin: kdcOrigin, scope: PUBSUB.encode(['garage:read']) });
  const joinKitchen = await client.request({ method: 'POST', uri: `${kdcOrigin}/ace-group/kitchen`, payload: encodeCbor(new Map<number, unknown>([[GroupParam.scope, PUBSUB.encode(['kitchen:read'])], [GroupParam.get_creds, null]])), contentFormat: 261, security: mallory });
  assert.equal(joinKitchen.code, ResponseCode.Forbidden);
  assert.equal((await client.request({ method: 'GET', uri: `${kdcOrigin}/ace-group/kitchen`, security: mallory })).code, ResponseCode.Forbidden);
  // display may read kitchen only: the AS narrows its token to read, and the Join Request asking
  // to publish as well is forbidden at the KDC, before any proof of possession is looked at.
  await assert.rejects(joinTopic('display', ['publisher', 'subscriber']), (e: unknown) => e instanceof GroupJoinError && /4\.03 Forbidden.*publish/.test(e.message));
  // Without a token: 4.01 with the AS Request Creation Hints.
  const plain = await coapClient().request({ method: 'GET', uri: `${kdcOrigin}/ace-group/kitchen` });
  assert.equal(plain.code, ResponseCode.Unauthorized);
});

test("a publisher's Join Response: key with group_SenderId, sign_alg and kccs; a subscriber's without a Sender ID", () => {
  const kitchen = kdc.toJSON().topics.find((t) => t.group.topic === 'kitchen')!;
  const client = { id: 'test-client', scope: ['kitchen:read'] };
  const joined = kdc.join(client, 'kitchen', encodeCbor(new Map<number, unknown>([[GroupParam.scope, PUBSUB.encode(['kitchen:read'])], [GroupParam.get_creds, null], [GroupParam.cnonce, fromHex('0102030405060708')]])));
  assert.equal(joined.code, ResponseCode.Created);
  const body = decodeStrict(joined.payload as Uint8Array) as Map<number, unknown>;
  assert.equal(body.get(GroupParam.gkty), 2, 'Group_PubSub_Keying_Material (stand-in: the suggested 2)');
  assert.equal(body.get(GroupParam.ace_groupcomm_profile), 2, 'coap_group_pubsub_app (stand-in: the suggested 2)');
  assert.equal(body.get(GroupParam.num), kitchen.group.num);
  assert.ok(typeof body.get(GroupParam.exi) === 'number', "'exi' MUST be present");
  const key = body.get(GroupParam.key) as Map<number, unknown>;
  assert.equal(key.has(PubSubKeyParam.group_SenderId), false);
  assert.equal(key.get(PubSubKeyParam.cred_fmt), 14);
  assert.equal(key.get(PubSubKeyParam.sign_alg), -8);
  assert.deepEqual((key.get(PubSubKeyParam.group_key) as Map<number, unknown>).get(1), 4, 'a symmetric COSE_Key');
  assert.equal((body.get(GroupParam.creds) as unknown[]).length, 2, 'the two publishers, no subscriber');
  // A PoP that does not verify is 4.00 with error 3 (RFC 9594 §4.3.1).
  const pub = { id: 'forger', scope: ['kitchen:publish'] };
  const probe = kdc.join(pub, 'kitchen', new Uint8Array(0));
  assert.equal(probe.code, ResponseCode.BadRequest);
  const publisherCred = (members.sensor!.material.publishers[0]!).encoded;
  const forged = kdc.join(pub, 'kitchen', encodeCbor(new Map<number, unknown>([[GroupParam.scope, PUBSUB.encode(['kitchen:publish'])], [GroupParam.cnonce, fromHex('01')], [GroupParam.client_cred, publisherCred], [GroupParam.client_cred_verify, new Uint8Array(64)]])));
  assert.equal(forged.code, ResponseCode.BadRequest);
  assert.equal(forged.contentFormat, ContentFormat.ConciseProblemDetailsCbor);
});

test('the KDC state is persisted and a KDC made from it carries on; a damaged state file is a clear error', () => {
  const again = new TopicKdc(structuredClone(kdc.toJSON()));
  assert.deepEqual(again.nodes('kitchen').sort(), kdc.nodes('kitchen').sort());
  assert.equal(again.keyVersion('kitchen'), 1);
  const config = { audience: 'kdc', tokenKey: KDC_KEY, statePath: join(stateDirectory, 'kdc-state.json'), topics: ['kitchen'] };
  assert.deepEqual(openTopicKdc(config).topicNames, ['kitchen'], 'made on the first start');
  assert.equal(openTopicKdc(config).keyVersion('kitchen'), 0, 'read back from its state file');
  for (const damaged of ['{', JSON.stringify({ version: 1, nextNode: 1, topics: [{ group: {} }] }), JSON.stringify({ version: 1, nextNode: 1, topics: [{ group: { format: 'x' }, clients: {} }] })]) {
    writeFileSync(config.statePath, damaged);
    assert.throws(() => openTopicKdc(config), GroupManagerConfigError);
  }
});
