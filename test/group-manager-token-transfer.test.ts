/**
 * RFC 9594 §3.3: the Token Transfer Response (the 2.01 to POST /authz-info) of the Group Manager
 * and of the pub-sub KDC carries 'kdcchallenge' when the token grants a role that joins with a
 * credential (requester/responder, key-groupcomm-oscore §6.1; publisher, pubsub profile §3.6), and
 * 'sign_info' when the Token Transfer Request asked for it; a member then joins with one Join
 * Request, no empty-join probe.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoapClient, type ClientRequest, type ClientResponse } from '../src/client/client.js';
import { decodeAceMap, encodeAceMap } from '../src/ace/ace-cbor.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { isBytes, fromHex } from '../src/cose/cbor.js';
import { MemoryAsState } from '../src/ace/as-state.js';
import { bindAuthorizationServer } from '../src/ace/as-resources.js';
import { AuthorizationServer } from '../src/ace/authorization-server.js';
import { AceClientSecurity } from '../src/ace/client.js';
import { aifScopeFormat, GROUP_OSCORE_ROLES, SCOPE_FORMATS } from '../src/ace/scope-format.js';
import { GroupManager } from '../src/group-oscore/manager.js';
import { attachGroupManager, attachTopicKdc, GroupMembership, OnlineGroupManager, SIGN_INFO_REQUEST, signatureFromSignInfo, TokenTransferParam, TopicKdc, TopicMembership } from '../src/group-manager/index.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { peerKey } from '../src/transport/transport.js';

const GM_KEY = { kid: fromHex('9c'), key: fromHex('c0c1c2c3c4c5c6c7c8c9cacbcccdcecf') };
const KDC_KEY = { kid: fromHex('9d'), key: fromHex('d0d1d2d3d4d5d6d7d8d9dadbdcdddedf') };
const AIF = aifScopeFormat(GROUP_OSCORE_ROLES);
const PUBSUB = SCOPE_FORMATS['aif-pubsub']!;
const NAMES = ['alice', 'bob', 'mona', 'sensor', 'display'] as const;
type Name = (typeof NAMES)[number];

function asContexts(name: string, i: number): { client: OscoreSecurityContext; server: OscoreSecurityContext } {
  const masterSecret = Uint8Array.from({ length: 16 }, (_, k) => 0x80 + i * 16 + k);
  const id = Uint8Array.of(i + 1);
  return {
    client: new OscoreSecurityContext({ masterSecret, senderId: id, recipientIds: [fromHex('aa')], name: 'as' }, new VolatileSequence()),
    server: new OscoreSecurityContext({ masterSecret, senderId: fromHex('aa'), recipientIds: [id], name }, new VolatileSequence()),
  };
}
const toAs = Object.fromEntries(NAMES.map((n, i) => [n, asContexts(n, i)])) as Record<Name, ReturnType<typeof asContexts>>;

let asServer: CoapServer;
let gmServer: CoapServer;
let kdcServer: CoapServer;
let asUri: string;
let gmOrigin: string;
let kdcOrigin: string;
let gm: OnlineGroupManager;
const closers: Array<() => Promise<void> | void> = [];

before(async () => {
  asServer = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new OscoreServerSecurity(NAMES.map((n) => toAs[n].server)) });
  const as = new AuthorizationServer({
    issuer: 'as',
    audiences: [
      { name: 'gm', key: GM_KEY, scopes: ['lights:requester', 'lights:responder', 'lights:monitor'], profile: 'coap_oscore', scopeFormat: AIF },
      { name: 'kdc', key: KDC_KEY, scopes: ['kitchen:publish', 'kitchen:read'], profile: 'coap_oscore', scopeFormat: PUBSUB },
    ],
    clients: [
      { name: 'alice', grants: new Map([['gm', ['lights:requester', 'lights:responder']]]) },
      { name: 'bob', grants: new Map([['gm', ['lights:requester', 'lights:responder']]]) },
      { name: 'mona', grants: new Map([['gm', ['lights:monitor']]]) },
      { name: 'sensor', grants: new Map([['kdc', ['kitchen:publish']]]) },
      { name: 'display', grants: new Map([['kdc', ['kitchen:read']]]) },
    ],
    state: new MemoryAsState(),
  });
  bindAuthorizationServer(asServer, as);
  asUri = `coap://${peerKey(asServer.address())}/token`;
  const ace = { tokenKeys: [GM_KEY, KDC_KEY], asUri, issuer: 'as' };

  gmServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  gm = OnlineGroupManager.fromOfflineStates([GroupManager.create({ name: 'lights' }).toJSON()]);
  attachGroupManager(gmServer, gm, { ...ace, audiences: ['gm'] });
  gmOrigin = `coap://${peerKey(gmServer.address())}`;
  kdcServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  attachTopicKdc(kdcServer, TopicKdc.create(['kitchen']), { ...ace, audiences: ['kdc'] });
  kdcOrigin = `coap://${peerKey(kdcServer.address())}`;
});

after(async () => {
  for (const close of closers.reverse()) await close();
  await Promise.all([asServer.close(), gmServer.close(), kdcServer.close()]);
});

/**
 * A CoapClient that records "METHOD /path" of every request it carries; with `olderKdc`, it takes
 * kdcchallenge and sign_info out of Token Transfer Responses, as from a KDC that sends neither.
 */
function countingClient(olderKdc = false, afterTokenTransfer?: () => void): { client: CoapClient; requests: string[] } {
  const client = new CoapClient();
  closers.push(() => client.close());
  const requests: string[] = [];
  const request = client.request.bind(client);
  client.request = (r: ClientRequest) => {
    const path = new URL(r.uri).pathname;
    requests.push(`${r.method ?? 'GET'} ${path}`);
    if (afterTokenTransfer !== undefined && path === '/authz-info') return request(r).then((response) => (afterTokenTransfer(), response));
    if (!olderKdc || path !== '/authz-info') return request(r);
    return request(r).then((response) => {
      const map = decodeAceMap(response.payload);
      map.delete(TokenTransferParam.kdcchallenge);
      map.delete(TokenTransferParam.sign_info);
      return Object.assign(Object.create(Object.getPrototypeOf(response) as object) as ClientResponse, response, { payload: encodeAceMap(map) });
    });
  };
  return { client, requests };
}

async function tokenTransfer(name: Name, audience: string, origin: string, scope: Uint8Array, askSignInfo: boolean): Promise<Map<number, unknown>> {
  const security = new AceClientSecurity({
    client: countingClient().client,
    asUri,
    asSecurity: new OscoreClientSecurity(toAs[name].client),
    rsOrigin: origin,
    audience,
    scope,
    ...(askSignInfo ? { tokenTransferRequest: SIGN_INFO_REQUEST } : {}),
  });
  return security.establish(`${origin}/ace-group/x`);
}

test("a requester's Token Transfer Response has a kdcchallenge and, when asked, sign_info; a monitor's has no kdcchallenge", async () => {
  const requester = await tokenTransfer('alice', 'gm', gmOrigin, AIF.encode(['lights:requester', 'lights:responder']) as Uint8Array, true);
  const nS = requester.get(TokenTransferParam.kdcchallenge);
  assert.ok(isBytes(nS) && nS.length >= 8, 'kdcchallenge: N_S of at least 8 bytes');
  assert.ok(signatureFromSignInfo(requester.get(TokenTransferParam.sign_info) as never, 'lights') !== undefined, 'sign_info names the group');
  const unasked = await tokenTransfer('bob', 'gm', gmOrigin, AIF.encode(['lights:requester']) as Uint8Array, false);
  assert.ok(isBytes(unasked.get(TokenTransferParam.kdcchallenge)));
  assert.equal(unasked.has(TokenTransferParam.sign_info), false, 'no sign_info unless asked');
  const monitor = await tokenTransfer('mona', 'gm', gmOrigin, AIF.encode(['lights:monitor']) as Uint8Array, true);
  assert.equal(monitor.has(TokenTransferParam.kdcchallenge), false, 'a monitor joins without a credential');
});

test("a publisher's Token Transfer Response has a kdcchallenge (pubsub profile §3.6); a subscriber's has none", async () => {
  const publisher = await tokenTransfer('sensor', 'kdc', kdcOrigin, PUBSUB.encode(['kitchen:publish']) as Uint8Array, true);
  const nS = publisher.get(TokenTransferParam.kdcchallenge);
  assert.ok(isBytes(nS) && nS.length >= 8);
  assert.ok(signatureFromSignInfo(publisher.get(TokenTransferParam.sign_info) as never, 'kitchen') !== undefined);
  const subscriber = await tokenTransfer('display', 'kdc', kdcOrigin, PUBSUB.encode(['kitchen:read']) as Uint8Array, true);
  assert.equal(subscriber.has(TokenTransferParam.kdcchallenge), false);
});

test('a member joins the Group Manager with exactly one Join Request, using the Token Transfer Response', async () => {
  const { client, requests } = countingClient();
  const membership = await GroupMembership.join({ client, gmOrigin, asUri, asSecurity: new OscoreClientSecurity(toAs.alice.client), group: 'lights', name: 'alice' });
  assert.ok(membership.node.length > 0);
  assert.deepEqual(requests.filter((r) => r === 'POST /ace-group/lights'), ['POST /ace-group/lights']);
});

test('a publisher joins the KDC with exactly one Join Request, using the Token Transfer Response', async () => {
  const { client, requests } = countingClient();
  const membership = await TopicMembership.join({ client, kdcOrigin, asUri, asSecurity: new OscoreClientSecurity(toAs.sensor.client), topic: 'kitchen', roles: ['publisher'], name: 'sensor' });
  closers.push(() => membership.close());
  assert.ok(membership.material.senderId !== undefined);
  assert.deepEqual(requests.filter((r) => r === 'POST /ace-group/kitchen'), ['POST /ace-group/kitchen']);
});

test('from a Token Transfer Response without kdcchallenge (an older KDC), a member learns N_S from the empty-join probe and joins', async () => {
  const { client, requests } = countingClient(true);
  const membership = await GroupMembership.join({ client, gmOrigin, asUri, asSecurity: new OscoreClientSecurity(toAs.bob.client), group: 'lights', name: 'bob' });
  assert.ok(membership.node.length > 0);
  assert.deepEqual(requests.filter((r) => r === 'POST /ace-group/lights'), ['POST /ace-group/lights', 'POST /ace-group/lights'], 'the probe, then the Join Request');
});

test('a Group Manager that no longer holds the N_S of the Token Transfer Response answers the Join Request with a 4.00 and a new kdcchallenge; the member joins with that (RFC 9594 §4.3.1.1)', async () => {
  // 256 other clients' challenges push this one's out of the bounded store (kdc-challenges.ts).
  const forget = (): void => {
    for (let i = 0; i < 256; i++) gm.tokenTransfer(`filler ${i}`, ['lights:requester'], false);
  };
  const { client, requests } = countingClient(false, forget);
  const membership = await GroupMembership.join({ client, gmOrigin, asUri, asSecurity: new OscoreClientSecurity(toAs.alice.client), group: 'lights', name: 'alice' });
  assert.ok(membership.node.length > 0);
  assert.deepEqual(requests.filter((r) => r === 'POST /ace-group/lights'), ['POST /ace-group/lights', 'POST /ace-group/lights'], 'the refused Join Request, then the one with the new N_S');
});
