/**
 * The online Group Manager in one process with real sockets: an AS (clients authenticated by
 * OSCORE), the Group Manager as an ACE resource server (tokens with the AIF group scope posted to
 * /authz-info), three members that join through it and then talk Group OSCORE, a member removed
 * by the Group Manager (rekey observed by the others, its old material useless), and the RFC 9594
 * refusals of a token for another group or a role not granted.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { MessageType } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { decodeStrict, encodeCbor, fromHex, toHex } from '../src/cose/cbor.js';
import { MemoryAsState } from '../src/ace/as-state.js';
import { bindAuthorizationServer } from '../src/ace/as-resources.js';
import { AuthorizationServer } from '../src/ace/authorization-server.js';
import { AceClientSecurity } from '../src/ace/client.js';
import { aifScopeFormat, GROUP_OSCORE_ROLES } from '../src/ace/scope-format.js';
import { GroupClient } from '../src/group/group-client.js';
import { GroupContextStore, type GroupSecurityContext } from '../src/group-oscore/context.js';
import { GroupManager, contextFromMemberFile, type GroupMemberFile } from '../src/group-oscore/manager.js';
import { protectGroupRequest, unprotectGroupRequest } from '../src/group-oscore/protect.js';
import { GroupJoinError, GroupMembership, OnlineGroupManager, attachGroupManager, GroupParam, GroupPolicy, groupNamesOf } from '../src/group-manager/index.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { UdpTransport } from '../src/transport/udp.js';
import { peerKey } from '../src/transport/transport.js';

const GM_KEY = { kid: fromHex('9a'), key: fromHex('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf') };
const AIF = aifScopeFormat(GROUP_OSCORE_ROLES);
const NAMES = ['alice', 'bob', 'carol', 'dave', 'eve'] as const;

function asContexts(name: string, i: number): { client: OscoreSecurityContext; server: OscoreSecurityContext } {
  const masterSecret = Uint8Array.from({ length: 16 }, (_, k) => i * 16 + k);
  const id = Uint8Array.of(i + 1);
  return {
    client: new OscoreSecurityContext({ masterSecret, senderId: id, recipientIds: [fromHex('aa')], name: 'as' }, new VolatileSequence()),
    server: new OscoreSecurityContext({ masterSecret, senderId: fromHex('aa'), recipientIds: [id], name }, new VolatileSequence()),
  };
}
const toAs = Object.fromEntries(NAMES.map((n, i) => [n, asContexts(n, i)])) as Record<(typeof NAMES)[number], ReturnType<typeof asContexts>>;

let asServer: CoapServer;
let gmServer: CoapServer;
let manager: OnlineGroupManager;
let asUri: string;
let gmOrigin: string;
let lampFile: GroupMemberFile;
const persisted: unknown[] = [];
const closers: Array<() => Promise<void> | void> = [];

before(async () => {
  asServer = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new OscoreServerSecurity(NAMES.map((n) => toAs[n].server)) });
  const lights = ['lights:requester', 'lights:responder'];
  const as = new AuthorizationServer({
    issuer: 'as',
    audiences: [{ name: 'gm', key: GM_KEY, scopes: [...lights, 'doors:requester', 'doors:responder'], profile: 'coap_oscore', scopeFormat: AIF }],
    clients: [
      ...(['alice', 'bob', 'carol'] as const).map((name) => ({ name, grants: new Map([['gm', lights]]) })),
      { name: 'dave', grants: new Map([['gm', ['lights:responder']]]) },
      { name: 'eve', grants: new Map([['gm', ['doors:requester', 'doors:responder']]]) },
    ],
    state: new MemoryAsState(),
  });
  bindAuthorizationServer(asServer, as);
  asUri = `coap://${peerKey(asServer.address())}/token`;

  // The offline tool's groups, one with a member it added itself: the online Group Manager takes them over.
  const offlineLights = GroupManager.create({ name: 'lights' });
  lampFile = offlineLights.addMember('lamp');
  manager = OnlineGroupManager.fromOfflineStates([offlineLights.toJSON(), GroupManager.create({ name: 'doors' }).toJSON()], { onChange: (s) => persisted.push(s) });
  gmServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  attachGroupManager(gmServer, manager, { audiences: ['gm'], tokenKeys: [GM_KEY], asUri, issuer: 'as' });
  gmOrigin = `coap://${peerKey(gmServer.address())}`;
});

after(async () => {
  for (const close of closers.reverse()) await close();
  await asServer.close();
  await gmServer.close();
});

function coapClient(): CoapClient {
  const client = new CoapClient();
  closers.push(() => client.close());
  return client;
}

function join(name: (typeof NAMES)[number], group = 'lights', roles?: string[]): Promise<GroupMembership> {
  return GroupMembership.join({ client: coapClient(), gmOrigin, asUri, asSecurity: new OscoreClientSecurity(toAs[name].client), group, name, ...(roles ? { roles } : {}) });
}

/** A member serving /light with its Group OSCORE context, as `serve --group` does. */
async function memberServer(name: string, file: GroupMemberFile): Promise<{ store: GroupContextStore; origin: string }> {
  const store = new GroupContextStore();
  store.install('lights', contextFromMemberFile(file));
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, group: { contexts: store } });
  server.resource('/light', { GET: () => ({ code: ResponseCode.Content, payload: `${name}: on` }) });
  closers.push(() => server.close());
  return { store, origin: `coap://${peerKey(server.address())}` };
}

async function groupGet(context: GroupSecurityContext, origin: string): Promise<string[]> {
  const client = new GroupClient({ transport: await UdpTransport.bind({ host: '127.0.0.1', port: 0 }) });
  try {
    const responses = await client.request({ uri: `${origin}/light`, security: { context }, timeout: 500 }).collect();
    return responses.map((r) => `${r.code === ResponseCode.Content ? Buffer.from(r.payload).toString() : `code ${r.code}`} [${r.member?.name ?? 'unverified'}]`);
  } finally {
    client.close();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([promise, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)))]).finally(() => clearTimeout(timer));
}

const members: Record<string, GroupMembership> = {};
const servers: Record<string, { store: GroupContextStore; origin: string }> = {};

test('three members join through the Group Manager and talk Group OSCORE; the offline member is in their files', async () => {
  for (const name of ['alice', 'bob', 'carol'] as const) members[name] = await join(name);
  // Everyone refreshes the members' credentials (RFC 9594 §4.4): the ones who joined first know the later ones.
  const files = Object.fromEntries(await Promise.all(Object.entries(members).map(async ([n, m]) => [n, await m.refresh()] as const)));
  const ids = new Set(Object.values(files).map((f) => f.senderId));
  assert.equal(ids.size, 3, 'distinct Sender IDs');
  for (const file of Object.values(files)) {
    assert.equal(file.gid, lampFile.gid, 'the Gid of the taken-over offline group');
    assert.equal(file.masterSecret, lampFile.masterSecret);
    assert.equal(file.gmCredential, lampFile.gmCredential);
    assert.equal(file.members.length, 3, 'the two others and the offline member lamp');
    assert.ok(file.members.some((m) => m.credential === lampFile.credential));
  }
  servers['bob'] = await memberServer('bob', files['bob']!);
  servers['carol'] = await memberServer('carol', files['carol']!);
  const alice = contextFromMemberFile(files['alice']!);
  assert.deepEqual(await groupGet(alice, servers['bob'].origin), ['bob: on [bob]']);
  assert.deepEqual(await groupGet(alice, servers['carol'].origin), ['carol: on [carol]']);
  assert.deepEqual(manager.nodes('lights').sort(), ['lamp', members['alice']!.node, members['bob']!.node, members['carol']!.node].sort());
});

test('a member the Group Manager removes: the others observe the rekey, its old material cannot read the next message', async () => {
  const carolOld = contextFromMemberFile(members['carol']!.file);
  const updates = (name: string) =>
    new Promise<GroupMemberFile>((resolve, reject) => {
      void members[name]!.watch(resolve, (why) => reject(new Error(why))).then((o) => closers.push(() => o.cancel()));
    });
  const aliceUpdate = updates('alice');
  const bobUpdate = updates('bob');
  const carolEnd = new Promise<string>((resolve) => void members['carol']!.watch(() => resolve('updated'), resolve).then((o) => closers.push(() => o.cancel())));
  await new Promise((r) => setTimeout(r, 100)); // the registrations reach the Group Manager
  manager.removeNode('lights', members['carol']!.node);

  const [aliceFile, bobFile] = await withTimeout(Promise.all([aliceUpdate, bobUpdate]), 5000, 'the rekey notifications');
  assert.equal(aliceFile.keyGeneration, 1);
  assert.notEqual(aliceFile.gid, toHex(carolOld.gid), 'a new Gid');
  assert.equal(aliceFile.members.length, 2, 'bob and lamp; carol is gone');
  assert.match(await withTimeout(carolEnd, 5000, "carol's end of observation"), /4\.03.*error 0/, 'the removed member is told it is no member');

  const alice = contextFromMemberFile(aliceFile);
  servers['bob']!.store.install('lights', contextFromMemberFile(bobFile));
  assert.deepEqual(await groupGet(alice, servers['bob']!.origin), ['bob: on [bob]'], 'the remaining members talk with the new keys');

  // The next message of the group: carol's old context finds no key for it, and her own requests are refused.
  const next = protectGroupRequest({ type: MessageType.NON, code: Method.GET, messageId: 1, token: Uint8Array.of(1), options: [{ number: OptionNumber.UriPath, value: new TextEncoder().encode('light') }], payload: new Uint8Array(0) }, alice, { mode: 'group' });
  assert.equal(unprotectGroupRequest(decodeMessage(encodeMessage(next.message)), (gid) => (Buffer.from(gid).equals(Buffer.from(carolOld.gid)) ? carolOld : undefined)).ok, false);
  await assert.rejects(members['carol']!.refresh(), (e: unknown) => e instanceof GroupJoinError && /4\.03/.test(e.message));
});

test('a token for another group, or without the role asked for, gets 4.03 (RFC 9594 §4.3.1)', async () => {
  // eve's token grants doors only: her Join Request to lights is forbidden.
  const client = coapClient();
  const eve = new AceClientSecurity({ client, asUri, asSecurity: new OscoreClientSecurity(toAs.eve.client), rsOrigin: gmOrigin, scope: AIF.encode(['doors:requester']) });
  const join = await client.request({ method: 'POST', uri: `${gmOrigin}/ace-group/lights`, payload: encodeCbor(new Map([[GroupParam.scope, AIF.encode(['lights:requester'])]])), contentFormat: 261, security: eve });
  assert.equal(join.code, ResponseCode.Forbidden);
  assert.equal((await client.request({ method: 'GET', uri: `${gmOrigin}/ace-group/lights`, security: eve })).code, ResponseCode.Forbidden);
  // dave may be a responder only: asking to join as requester too is forbidden, as a responder he is admitted.
  await assert.rejects(join_('dave', ['requester', 'responder']), (e: unknown) => e instanceof GroupJoinError && /4\.03 Forbidden.*requester/.test(e.message));
  const dave = await join_('dave', ['responder']);
  assert.ok(manager.nodes('lights').includes(dave.node));
  // Without a token at all: 4.01 with the AS Request Creation Hints.
  const plain = await coapClient().request({ method: 'GET', uri: `${gmOrigin}/ace-group/lights` });
  assert.equal(plain.code, ResponseCode.Unauthorized);
  assert.equal(plain.contentFormat, ContentFormat.AceCbor);
});

function join_(name: (typeof NAMES)[number], roles: string[]): Promise<GroupMembership> {
  return join(name, 'lights', roles);
}

test('the state is persisted on every change and a Group Manager made from it carries on', () => {
  const last = persisted.at(-1) as ReturnType<OnlineGroupManager['toJSON']>;
  assert.ok(last !== undefined);
  const again = new OnlineGroupManager(structuredClone(last));
  assert.deepEqual(again.nodes('lights').sort(), manager.nodes('lights').sort());
  assert.equal(again.keyGeneration('lights'), manager.keyGeneration('lights'));
});

test('a member uses the rest of the interface over CoAP: /active observed, /policies, FETCH /creds and /ace-group, a new Sender ID, a new credential', async () => {
  const alice = members['alice']!;
  const bob = members['bob']!;
  const bobFile = await bob.refresh();
  assert.equal(await alice.isActive(), true);
  assert.equal((await alice.policies()).get(GroupPolicy.keyUpdateCheckInterval), 3600);
  assert.deepEqual(await alice.credentialsOf({ senderIds: [bobFile.senderId] }), [{ senderId: bobFile.senderId, credential: bobFile.credential }]);
  assert.deepEqual(await alice.credentialsOf({ senderIds: ['eeee'] }), [], 'nobody selected');
  assert.deepEqual(await groupNamesOf(alice.options.client, gmOrigin, alice.security, [manager.gid('lights')!]), [{ gid: manager.gid('lights')!, name: 'lights', uri: '/ace-group/lights' }]);

  // /active is observable (key-groupcomm-oscore §8.2.1): the member learns the group went inactive.
  const observation = await alice.options.client.observe(`${gmOrigin}/ace-group/lights/active`, { security: alice.security });
  closers.push(() => observation.cancel());
  const statuses = (async () => {
    const seen: unknown[] = [];
    for await (const notification of observation) {
      seen.push(decodeStrict(notification.payload));
      if (seen.length === 3) return seen;
    }
    return seen;
  })();
  await new Promise((r) => setTimeout(r, 100));
  manager.setActive('lights', false);
  await assert.rejects(alice.renewSenderId(), (e: unknown) => e instanceof GroupJoinError && /5\.03.*error 9/.test(e.message));
  manager.setActive('lights', true);
  assert.deepEqual(await withTimeout(statuses, 5000, 'the /active notifications'), [true, false, true]);

  const oldId = alice.file.senderId;
  const newId = await alice.renewSenderId();
  assert.notEqual(newId, oldId);
  assert.equal(alice.file.senderId, newId);
  const oldCredential = alice.file.credential;
  await alice.uploadCredential();
  assert.notEqual(alice.file.credential, oldCredential);
  // Bob sees Alice under her new Sender ID with her new credential.
  assert.deepEqual(await bob.credentialsOf({ senderIds: [newId, oldId] }), [{ senderId: newId, credential: alice.file.credential }]);
});
