/**
 * The rest of the Group Manager's interface on the sans-IO core: FETCH /creds with 'get_creds'
 * (RFC 9594 §4.4.1, key-groupcomm-oscore §9.3) and the same filter in a Join Request (§4.3.1),
 * /policies (§4.6), /active (key-groupcomm-oscore §8.2, §9.9) and what an inactive group refuses,
 * the Key Renewal Request (RFC 9594 §4.8.2, key-groupcomm-oscore §9.2), the credential upload
 * (RFC 9594 §4.9, key-groupcomm-oscore §9.4), and FETCH /ace-group (RFC 9594 §4.2, §9.10).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { decodeStrict, encodeCbor, fromHex, toHex } from '../src/cose/cbor.js';
import { encodeCcs } from '../src/cose/cwt.js';
import { signBytes } from '../src/cose/sign.js';
import { SCOPE_FORMATS } from '../src/ace/scope-format.js';
import { ownCredential } from '../src/group-oscore/credential.js';
import { GroupManager, keyPairFor } from '../src/group-oscore/manager.js';
import { MAX_RENEWALS_PER_VERSION } from '../src/group-manager/group-state.js';
import { clientPopInput, GroupError, GroupInput, GroupParam, GroupPolicy, OnlineGroupManager, type GroupClient } from '../src/group-manager/index.js';
import type { CoapResponse } from '../src/server/resource.js';

const AIF = SCOPE_FORMATS['aif-oscore-group']!;
const ROLES = { requester: 1 << 1, responder: 1 << 2 };
const CLIENT = (id: string, roles = ['requester', 'responder'], group = 'lights'): GroupClient => ({ id, scope: roles.map((r) => `${group}:${r}`) });
const VERIFIER: GroupClient = { id: 'verifier', scope: ['lights:verifier'] };

const body = (r: CoapResponse): Map<number, unknown> => decodeStrict(r.payload as Uint8Array) as Map<number, unknown>;
const errorId = (r: CoapResponse): unknown => (body(r).get(0) as Map<number, number> | undefined)?.get(0);
const isEmptyByteString = (r: CoapResponse): boolean => r.code === ResponseCode.Content && toHex(r.payload as Uint8Array) === '40';

interface Joined {
  readonly node: string;
  readonly senderId: string;
  readonly scope: Uint8Array;
  readonly credential: Uint8Array;
}

function proof(scope: Uint8Array, nS: Uint8Array, nC: Uint8Array): { credential: Uint8Array; evidence: Uint8Array } {
  const pair = keyPairFor(-8);
  const credential = encodeCcs({ sub: 'member', coseKey: pair.coseKey });
  return { credential, evidence: signBytes(-8, ownCredential(credential, pair.privateKey).privateKey, clientPopInput(scope, nS, nC)) };
}

/** Joins `client` with the roles of its token and a valid PoP; `extra` goes into the Join Request too. */
function join(gm: OnlineGroupManager, client: GroupClient, extra: Array<[number, unknown]> = []): { joined: Joined; response: CoapResponse } {
  const scope = AIF.encode(client.scope!) as Uint8Array;
  const challenge = body(gm.join(client, 'lights', new Uint8Array(0))).get(GroupParam.kdcchallenge) as Uint8Array;
  const nC = fromHex('0101010101010101');
  const { credential, evidence } = proof(scope, challenge, nC);
  const response = gm.join(client, 'lights', encodeCbor(new Map<number, unknown>([[GroupParam.scope, scope], [GroupParam.cnonce, nC], [GroupParam.client_cred, credential], [GroupParam.client_cred_verify, evidence], ...extra])));
  assert.equal(response.code, ResponseCode.Created, `join of ${client.id}`);
  const node = Buffer.from(response.options!.at(-1)!.value).toString();
  return { joined: { node, senderId: senderIdOf(gm, client, node), scope, credential }, response };
}

function senderIdOf(gm: OnlineGroupManager, client: GroupClient, node: string): string {
  return toHex((body(gm.nodeMaterial(client, 'lights', node)).get(GroupParam.key) as Map<number, Uint8Array>).get(GroupInput.group_SenderId)!);
}

/** Three members: a requester, a responder, one with both roles. */
function threeMembers(): { gm: OnlineGroupManager; req: Joined; resp: Joined; both: Joined } {
  const gm = OnlineGroupManager.fromOfflineStates([GroupManager.create({ name: 'lights' }).toJSON()]);
  const req = join(gm, CLIENT('req', ['requester'])).joined;
  const resp = join(gm, CLIENT('resp', ['responder'])).joined;
  const both = join(gm, CLIENT('both')).joined;
  return { gm, req, resp, both };
}

const fetchCreds = (gm: OnlineGroupManager, client: GroupClient, getCreds: unknown): CoapResponse => gm.selectedCredentials(client, 'lights', encodeCbor(new Map([[GroupParam.get_creds, getCreds]])));
const selectedIds = (r: CoapResponse): string[] => (isEmptyByteString(r) ? [] : (body(r).get(GroupParam.peer_identifiers) as Uint8Array[]).map(toHex).sort());

test('FETCH /creds: role and Sender ID filters with inclusion true ("and/or") and false ("and not"); unknown IDs ignored', () => {
  const { gm, req, resp, both } = threeMembers();
  const asker = CLIENT('both');
  const ids = (...members: Joined[]): string[] => members.map((m) => m.senderId).sort();
  const cases: Array<[unknown, string[], string]> = [
    [[true, [], [fromHex(req.senderId)]], ids(req), 'by Sender ID'],
    [[true, [ROLES.requester], []], ids(req, both), 'every member with the requester role'],
    [[true, [ROLES.requester | ROLES.responder], []], ids(both), 'a combination selects members with all its roles'],
    [[true, [ROLES.requester, ROLES.responder], []], ids(req, resp, both), 'either of two role entries'],
    [[true, [ROLES.responder], [fromHex(req.senderId)]], ids(req, resp, both), 'role and/or Sender ID'],
    [[false, [], [fromHex(req.senderId)]], ids(resp, both), 'everyone but the Sender ID'],
    [[false, [ROLES.requester], [fromHex(req.senderId)]], ids(both), 'requesters except the Sender ID'],
    [[true, [], [fromHex('ee'), fromHex(resp.senderId)]], ids(resp), 'a Sender ID of no member is ignored (§9.3, REQ26)'],
  ];
  for (const [getCreds, expected, why] of cases) {
    const answer = fetchCreds(gm, asker, getCreds);
    assert.equal(answer.code, ResponseCode.Content, why);
    assert.deepEqual(selectedIds(answer), expected, why);
    const map = body(answer);
    assert.equal(map.get(GroupParam.num), 0, why);
    // creds, peer_roles and peer_identifiers line up member by member.
    const roles = map.get(GroupParam.peer_roles) as number[];
    (map.get(GroupParam.peer_identifiers) as Uint8Array[]).forEach((id, i) => {
      const member = [req, resp, both].find((m) => m.senderId === toHex(id))!;
      assert.equal(toHex((map.get(GroupParam.creds) as Uint8Array[])[i]!), toHex(member.credential), why);
      assert.equal(roles[i], member === req ? ROLES.requester : member === resp ? ROLES.responder : ROLES.requester | ROLES.responder, why);
    });
  }
  // RFC 9594 §4.4.1: nothing selected is a zero-length byte string.
  assert.ok(isEmptyByteString(fetchCreds(gm, asker, [true, [], [fromHex('ee')]])));
  // Signature verifiers may FETCH too (key-groupcomm-oscore §8.5 Table 2); strangers may not.
  assert.deepEqual(selectedIds(fetchCreds(gm, VERIFIER, [true, [ROLES.responder], []])), ids(resp, both));
  assert.equal(errorId(fetchCreds(gm, CLIENT('stranger'), [true, [ROLES.responder], []])), GroupError.onlyMembers);
});

test('FETCH /creds: malformed get_creds is 4.00, [bool, [], []] included (RFC 9594 §4.4.1)', () => {
  const { gm, req } = threeMembers();
  const asker = CLIENT('req', ['requester']);
  for (const bad of [[true, [], []], [false, [], []], null, [true, [0], []], [true, ['requester'], []], [true, [], ['01']], ['yes', [], [fromHex(req.senderId)]], [true, []]]) {
    assert.equal(fetchCreds(gm, asker, bad).code, ResponseCode.BadRequest, JSON.stringify(bad));
  }
  assert.equal(gm.selectedCredentials(asker, 'lights', new Uint8Array(0)).code, ResponseCode.BadRequest);
  assert.equal(gm.selectedCredentials(asker, 'lights', fromHex('ff')).code, ResponseCode.BadRequest);
});

test('a Join Request with a get_creds filter gets only the selected credentials; with null, every other member', () => {
  const { gm, req, resp } = threeMembers();
  const filtered = join(gm, CLIENT('fourth'), [[GroupParam.get_creds, [true, [ROLES.responder], []]]]).response;
  assert.deepEqual((body(filtered).get(GroupParam.peer_identifiers) as Uint8Array[]).map(toHex).sort(), [resp.senderId, senderIdOf(gm, CLIENT('both'), gm.nodes('lights').find((n) => n !== req.node && n !== resp.node)!)].sort());
  const all = join(gm, CLIENT('fifth'), [[GroupParam.get_creds, null]]).response;
  assert.equal((body(all).get(GroupParam.creds) as unknown[]).length, 4, 'everyone but the joining node');
  const noCreds = join(gm, CLIENT('sixth')).response;
  assert.equal(body(noCreds).has(GroupParam.creds), false, 'no get_creds: no creds');
  // A malformed filter refuses the join with 4.00 and a new kdcchallenge.
  const refused = gm.join(CLIENT('seventh'), 'lights', encodeCbor(new Map<number, unknown>([[GroupParam.scope, AIF.encode(['lights:requester'])], [GroupParam.get_creds, [true, [], []]]])));
  assert.equal(refused.code, ResponseCode.BadRequest);
  assert.ok(body(refused).has(GroupParam.kdcchallenge));
});

test('GET /policies: the policies of the Join Response; members only (error 0)', () => {
  const gm = OnlineGroupManager.fromOfflineStates([GroupManager.create({ name: 'lights' }).toJSON()]);
  const { response } = join(gm, CLIENT('a'));
  const answer = gm.policies(CLIENT('a'), 'lights');
  assert.equal(answer.code, ResponseCode.Content);
  assert.equal(answer.contentFormat, 261);
  assert.deepEqual([...body(answer).keys()], [GroupParam.group_policies], 'only group_policies (RFC 9594 §4.6.1)');
  assert.deepEqual(body(answer).get(GroupParam.group_policies), body(response).get(GroupParam.group_policies));
  assert.equal((body(answer).get(GroupParam.group_policies) as Map<number, number>).get(GroupPolicy.keyUpdateCheckInterval), 3600);
  assert.equal(errorId(gm.policies(CLIENT('b'), 'lights')), GroupError.onlyMembers);
  assert.equal(errorId(gm.policies(VERIFIER, 'lights')), GroupError.onlyMembers, 'Table 2: not for signature verifiers');
});

test('/active: true or false as application/cbor; an inactive group refuses joins, renewals and uploads with 5.03 error 9; persisted', () => {
  const gm = OnlineGroupManager.fromOfflineStates([GroupManager.create({ name: 'lights' }).toJSON()]);
  const changes: string[] = [];
  gm.onStatusChange = (group) => changes.push(group);
  const a = join(gm, CLIENT('a')).joined;
  const status = (): unknown => decodeStrict(gm.status(CLIENT('a'), 'lights').payload as Uint8Array);
  assert.equal(gm.status(CLIENT('a'), 'lights').contentFormat, ContentFormat.Cbor);
  assert.equal(status(), true);
  gm.setActive('lights', false);
  gm.setActive('lights', false);
  assert.deepEqual(changes, ['lights'], 'observers are told once per change');
  assert.equal(status(), false);
  for (const refused of [
    gm.join(CLIENT('b'), 'lights', new Uint8Array(0)),
    gm.renewSenderId(CLIENT('a'), 'lights', a.node, new Uint8Array(0)),
    gm.uploadCredential(CLIENT('a'), 'lights', a.node, new Uint8Array(0)),
  ]) {
    assert.equal(refused.code, ResponseCode.ServiceUnavailable);
    assert.equal(errorId(refused), GroupError.groupNotActive);
  }
  // Members keep reading the keying material meanwhile (§9.9: "can still interact with the Group Manager").
  assert.equal(gm.keyMaterial(CLIENT('a'), 'lights').code, ResponseCode.Content);
  const restarted = new OnlineGroupManager(gm.toJSON());
  assert.equal(restarted.isActive('lights'), false, 'the status survives a restart');
  restarted.setActive('lights', true);
  assert.equal(decodeStrict(restarted.status(CLIENT('a'), 'lights').payload as Uint8Array), true);
  assert.equal(join(restarted, CLIENT('b')).response.code, ResponseCode.Created);
  assert.equal(errorId(gm.status(CLIENT('stranger'), 'lights')), GroupError.onlyMembers);
  assert.throws(() => gm.setActive('nope', true), /no group nope/);
});

test('Key Renewal: a new Sender ID unused under the current Gid; the old one goes stale; PUT and POST; only the node itself', () => {
  const { gm, req, both } = threeMembers();
  const client = CLIENT('req', ['requester']);
  const before = gm.keyGeneration('lights')!;
  const answer = gm.renewSenderId(client, 'lights', req.node, new Uint8Array(0));
  assert.equal(answer.code, ResponseCode.Content);
  assert.deepEqual([...body(answer).keys()], [GroupParam.group_senderId], "only 'group_SenderId' (key-groupcomm-oscore §9.2)");
  const renewed = toHex(body(answer).get(GroupParam.group_senderId) as Uint8Array);
  assert.notEqual(renewed, req.senderId);
  assert.equal(senderIdOf(gm, client, req.node), renewed, "the node's keying material carries it");
  assert.equal(gm.keyGeneration('lights'), before, 'no rekey');
  const everyId = selectedIds(gm.credentials(client, 'lights'));
  assert.ok(everyId.includes(renewed) && !everyId.includes(req.senderId), "the members' credentials list the new Sender ID");
  // A second renewal gets yet another ID: never one used under this Gid (Group OSCORE §2.6.3.1).
  const again = toHex(body(gm.renewSenderId(client, 'lights', req.node, new Uint8Array(0))).get(GroupParam.group_senderId) as Uint8Array);
  assert.ok(![req.senderId, renewed].includes(again));
  // The relinquished IDs are in the current version's stale set: a member that missed the next rekey learns of them.
  gm.rekey('lights');
  const stale = (decodeStrict(gm.staleSenderIds(CLIENT('both'), 'lights', encodeCbor(before)).payload as Uint8Array) as Uint8Array[]).map(toHex).sort();
  assert.deepEqual(stale, [req.senderId, renewed].sort());
  // key-groupcomm-oscore §9.2 asks with POST; RFC 9594 §4.8.2's PUT is the same handler (resources.ts binds both).
  assert.equal(gm.renewSenderId(client, 'lights', req.node, fromHex('a0')).code, ResponseCode.BadRequest, 'the request has no payload');
  assert.equal(gm.renewSenderId(client, 'lights', both.node, new Uint8Array(0)).code, ResponseCode.Forbidden, "another member's node");
  assert.equal(errorId(gm.renewSenderId(CLIENT('stranger'), 'lights', req.node, new Uint8Array(0))), GroupError.onlyMembers);
  // Bounded: MAX_RENEWALS_PER_VERSION per node and version: then 5.03 error 4 until the next rekey.
  for (let i = 0; i < MAX_RENEWALS_PER_VERSION; i++) assert.equal(gm.renewSenderId(client, 'lights', req.node, new Uint8Array(0)).code, ResponseCode.Content, `renewal ${i + 1}`);
  const bounded = gm.renewSenderId(client, 'lights', req.node, new Uint8Array(0));
  assert.equal(bounded.code, ResponseCode.ServiceUnavailable);
  assert.equal(errorId(bounded), GroupError.noNodeIdentifiers);
  assert.equal(new OnlineGroupManager(gm.toJSON()).renewSenderId(client, 'lights', req.node, new Uint8Array(0)).code, ResponseCode.ServiceUnavailable, 'the count survives a restart');
  gm.rekey('lights');
  assert.equal(gm.renewSenderId(client, 'lights', req.node, new Uint8Array(0)).code, ResponseCode.Content, 'a rekey allows more');
});

test('credential upload: 4.00 with a kdcchallenge first, then PoP over the join scope, N_S and a new N_C; errors 2 and 3', () => {
  const { gm, both } = threeMembers();
  const client = CLIENT('both');
  const upload = (map: Map<number, unknown>): CoapResponse => gm.uploadCredential(client, 'lights', both.node, encodeCbor(map));
  const nC = fromHex('0202020202020202');
  const first = proof(both.scope, fromHex('00'), nC);
  const request = (p: { credential: Uint8Array; evidence: Uint8Array }): Map<number, unknown> =>
    new Map<number, unknown>([[GroupParam.client_cred, p.credential], [GroupParam.cnonce, nC], [GroupParam.client_cred_verify, p.evidence]]);
  // The Group Manager keeps N_S until the join only: RFC 9594 §4.9.1's 4.00 with a new kdcchallenge.
  const challenge = upload(request(first));
  assert.equal(challenge.code, ResponseCode.BadRequest);
  assert.equal(challenge.contentFormat, 261);
  const nS = body(challenge).get(GroupParam.kdcchallenge) as Uint8Array;
  assert.ok(nS instanceof Uint8Array && nS.length > 0);
  assert.equal(errorId(upload(request({ credential: first.credential, evidence: proof(both.scope, nS, nC).evidence }))), GroupError.invalidPop, 'evidence by another key');
  const es256 = keyPairFor(-7);
  assert.equal(errorId(upload(request({ credential: encodeCcs({ sub: 'x', coseKey: es256.coseKey }), evidence: first.evidence }))), GroupError.incompatibleCredential, 'a P-256 key in an EdDSA group');
  assert.equal(upload(new Map([[GroupParam.client_cred, first.credential]])).code, ResponseCode.BadRequest);
  const wrongScope = proof(AIF.encode(['lights:requester']) as Uint8Array, nS, nC);
  assert.equal(errorId(upload(request(wrongScope))), GroupError.invalidPop, 'the PoP input has the scope of the latest Join Request');
  const good = proof(both.scope, nS, nC);
  const accepted = upload(request(good));
  assert.equal(accepted.code, ResponseCode.Changed);
  assert.equal(accepted.payload, undefined, '2.04 without payload');
  const creds = body(fetchCreds(gm, client, [true, [], [fromHex(both.senderId)]]));
  assert.equal(toHex((creds.get(GroupParam.creds) as Uint8Array[])[0]!), toHex(good.credential), 'the new credential replaces the old one');
  // N_S is used up: the same request again gets a new kdcchallenge.
  assert.ok(body(upload(request(good))).has(GroupParam.kdcchallenge));
  assert.equal(gm.uploadCredential(CLIENT('req', ['requester']), 'lights', both.node, encodeCbor(request(good))).code, ResponseCode.Forbidden, "another member's node");
});

test('FETCH /ace-group: names and URIs by current Gid, only of groups the token names; none found is a zero-length byte string', () => {
  const gm = OnlineGroupManager.fromOfflineStates([GroupManager.create({ name: 'lights' }).toJSON(), GroupManager.create({ name: 'doors' }).toJSON()]);
  const [lights, doors] = [gm.gid('lights')!, gm.gid('doors')!];
  const ask = (client: GroupClient, gids: unknown): CoapResponse => gm.groupNamesOf(client, encodeCbor(new Map([[GroupParam.gid, gids]])));
  const answer = ask(CLIENT('a'), [fromHex(lights), fromHex('ffffffff')]);
  assert.equal(answer.code, ResponseCode.Content);
  assert.deepEqual(body(answer), new Map<number, unknown>([[GroupParam.gid, [fromHex(lights)]], [GroupParam.gname, ['lights']], [GroupParam.guri, ['/ace-group/lights']]]));
  // A verifier's token names the group too (key-groupcomm-oscore §9.10).
  assert.deepEqual(body(ask(VERIFIER, [fromHex(lights)])).get(GroupParam.gname), ['lights']);
  // doors is not in this token: its Gid is not answered for.
  assert.ok(isEmptyByteString(ask(CLIENT('a'), [fromHex(doors)])));
  const both: GroupClient = { id: 'x', scope: ['lights:requester', 'doors:responder'] };
  assert.deepEqual(body(ask(both, [fromHex(doors), fromHex(lights)])).get(GroupParam.gname), ['lights', 'doors']);
  // Only the current Gid maps to the group (§9.10).
  gm.rekey('lights');
  assert.ok(isEmptyByteString(ask(CLIENT('a'), [fromHex(lights)])));
  for (const bad of [[], ['aa'], fromHex(lights), null]) assert.equal(ask(CLIENT('a'), bad).code, ResponseCode.BadRequest, JSON.stringify(bad));
  assert.equal(gm.groupNamesOf({ id: 'x', scope: undefined }, encodeCbor(new Map([[GroupParam.gid, [fromHex(lights)]]]))).code, ResponseCode.Unauthorized);
});

test('Key Renewal and credential upload by a monitor: 4.00 error 1 (key-groupcomm-oscore §9.2, §9.4)', () => {
  const gm = OnlineGroupManager.fromOfflineStates([GroupManager.create({ name: 'lights' }).toJSON()]);
  const { node } = join(gm, CLIENT('m')).joined;
  // This Group Manager admits no monitor by a join; a node recorded as one (a state from elsewhere) is refused.
  const state = gm.toJSON();
  state.groups[0]!.nodes[node]!.roles = 1 << 3;
  const restarted = new OnlineGroupManager(state);
  for (const refused of [restarted.renewSenderId(CLIENT('m'), 'lights', node, new Uint8Array(0)), restarted.uploadCredential(CLIENT('m'), 'lights', node, new Uint8Array(0))]) {
    assert.equal(refused.code, ResponseCode.BadRequest);
    assert.equal(errorId(refused), GroupError.inconsistentRoles);
  }
});
