/**
 * The Group Manager's /kdc-cred (RFC 9594 §4.5, key-groupcomm-oscore §8.1, §9.5), /stale-sids
 * (key-groupcomm-oscore §7.1, §8.4, §11.3.1) and /verif-data (§8.3, §9.6) on the sans-IO core: who may ask, what the answer
 * proves, and the 4.00/4.03 of the specs; and that attachGroupManager serves them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { decodeStrict, encodeCbor, fromHex, toHex, type CborValue } from '../src/cose/cbor.js';
import { deriveCommonContext } from '../src/group-oscore/common.js';
import { encodeCcs } from '../src/cose/cwt.js';
import { signBytes, verifyBytes } from '../src/cose/sign.js';
import { ownCredential, parseAuthCredential } from '../src/group-oscore/credential.js';
import { SCOPE_FORMATS } from '../src/ace/scope-format.js';
import { GroupManager, keyPairFor } from '../src/group-oscore/manager.js';
import { attachGroupManager, clientPopInput, decodeKeyMaterial, GroupError, GroupInput, GroupParam, kdcPopInput, OnlineGroupManager, type GroupClient } from '../src/group-manager/index.js';
import type { CoapResponse } from '../src/server/resource.js';
import { CoapServer } from '../src/server/server.js';

const AIF = SCOPE_FORMATS['aif-oscore-group']!;
const MEMBER = (id: string): GroupClient => ({ id, scope: ['lights:requester', 'lights:responder'] });
const VERIFIER: GroupClient = { id: 'ace v', scope: ['lights:verifier'] };

/** Joins `client` with a valid proof of possession and its N_C; returns the node name. */
function join(gm: OnlineGroupManager, client: GroupClient, nC: Uint8Array): string {
  const scope = AIF.encode(['lights:requester']) as Uint8Array;
  const challenge = decodeStrict(gm.join(client, 'lights', new Uint8Array(0)).payload as Uint8Array) as Map<number, unknown>;
  const pair = keyPairFor(-8);
  const credential = encodeCcs({ sub: client.id, coseKey: pair.coseKey });
  const evidence = signBytes(-8, ownCredential(credential, pair.privateKey).privateKey, clientPopInput(scope, challenge.get(GroupParam.kdcchallenge) as Uint8Array, nC));
  const answer = gm.join(client, 'lights', encodeCbor(new Map<number, unknown>([[GroupParam.scope, scope], [GroupParam.cnonce, nC], [GroupParam.client_cred, credential], [GroupParam.client_cred_verify, evidence]])));
  assert.equal(answer.code, ResponseCode.Created);
  return Buffer.from(answer.options!.at(-1)!.value).toString();
}

const body = (r: CoapResponse): Map<number, unknown> => decodeStrict(r.payload as Uint8Array) as Map<number, unknown>;
const errorId = (r: CoapResponse): unknown => (body(r).get(0) as Map<number, number> | undefined)?.get(0);

/** The Group Manager's public key from kdc_cred, and whether kdc_cred_verify signs N_C | N_KDC with it. */
function provesPossession(answer: CoapResponse, nC: Uint8Array, gmCredential: string): boolean {
  const map = body(answer);
  const kdcCred = map.get(GroupParam.kdc_cred) as Uint8Array;
  assert.equal(toHex(kdcCred), gmCredential, 'the Group Manager\'s own credential');
  return verifyBytes(-8, parseAuthCredential(kdcCred).publicKey, kdcPopInput(nC, map.get(GroupParam.kdc_nonce) as Uint8Array), map.get(GroupParam.kdc_cred_verify) as Uint8Array);
}

test('GET /kdc-cred: a member gets the credential with PoP over its join N_C and a new N_KDC; others 4.03 error 0', () => {
  const offline = GroupManager.create({ name: 'lights' });
  const gm = OnlineGroupManager.fromOfflineStates([offline.toJSON()]);
  const nC = fromHex('25a8991cd700ac01');
  join(gm, MEMBER('ace 01'), nC);
  const answer = gm.kdcCredential(MEMBER('ace 01'), 'lights');
  assert.equal(answer.code, ResponseCode.Content);
  assert.equal(answer.contentFormat, 261);
  assert.deepEqual([...body(answer).keys()].sort(), [GroupParam.kdc_cred, GroupParam.kdc_nonce, GroupParam.kdc_cred_verify].sort());
  assert.ok(provesPossession(answer, nC, offline.toJSON().gm.credential), 'RFC 9594 §4.5.1: PoP over the N_C of the latest Join Request');
  assert.ok(!provesPossession(answer, fromHex('0000000000000000'), offline.toJSON().gm.credential));
  assert.notDeepEqual(body(gm.kdcCredential(MEMBER('ace 01'), 'lights')).get(GroupParam.kdc_nonce), body(answer).get(GroupParam.kdc_nonce), 'a new N_KDC each time');
  // The N_C survives a restart of the Group Manager (it is in the state).
  assert.ok(provesPossession(new OnlineGroupManager(gm.toJSON()).kdcCredential(MEMBER('ace 01'), 'lights'), nC, offline.toJSON().gm.credential));
  const stranger = gm.kdcCredential(MEMBER('ace 02'), 'lights');
  assert.equal(stranger.code, ResponseCode.Forbidden);
  assert.equal(errorId(stranger), GroupError.onlyMembers);
  assert.equal(gm.kdcCredential({ id: 'x', scope: undefined }, 'lights').code, ResponseCode.Unauthorized);
});

test('FETCH /kdc-cred: a signature verifier sends its N_C; members and non-verifiers 4.03 error 8; no cnonce 4.00', () => {
  const offline = GroupManager.create({ name: 'lights' });
  const gm = OnlineGroupManager.fromOfflineStates([offline.toJSON()]);
  join(gm, MEMBER('ace 01'), fromHex('0101010101010101'));
  const nC = fromHex('6c5a8891bbcf4199');
  const answer = gm.kdcCredentialForVerifier(VERIFIER, 'lights', encodeCbor(new Map([[GroupParam.cnonce, nC]])));
  assert.equal(answer.code, ResponseCode.Content);
  assert.ok(provesPossession(answer, nC, offline.toJSON().gm.credential), 'key-groupcomm-oscore §9.5.2: a signature over N_C | N_KDC');
  const member = gm.kdcCredentialForVerifier(MEMBER('ace 01'), 'lights', encodeCbor(new Map([[GroupParam.cnonce, nC]])));
  assert.equal(member.code, ResponseCode.Forbidden);
  assert.equal(errorId(member), GroupError.onlyVerifiers);
  assert.equal(errorId(gm.kdcCredentialForVerifier(MEMBER('ace 09'), 'lights', encodeCbor(new Map([[GroupParam.cnonce, nC]])))), GroupError.onlyVerifiers, 'not authorized as verifier');
  assert.equal(gm.kdcCredentialForVerifier(VERIFIER, 'lights', encodeCbor(new Map([[GroupParam.scope, nC]]))).code, ResponseCode.BadRequest);
  assert.equal(gm.kdcCredentialForVerifier(VERIFIER, 'lights', fromHex('ff')).code, ResponseCode.BadRequest);
  assert.equal(gm.kdcCredential(VERIFIER, 'lights').code, ResponseCode.Forbidden, 'GET is for members (Table 2)');
});

test('FETCH /stale-sids: the Sender IDs that went stale since version V; V >= current or not a uint 4.00; members only', () => {
  const gm = OnlineGroupManager.fromOfflineStates([GroupManager.create({ name: 'lights' }).toJSON()]);
  const nodes = ['ace 01', 'ace 02', 'ace 03'].map((id) => join(gm, MEMBER(id), fromHex('0101010101010101')));
  const sid = (i: number): string => toHex((body(gm.nodeMaterial(MEMBER(`ace 0${i}`), 'lights', nodes[i - 1]!)).get(GroupParam.key) as Map<number, Uint8Array>).get(GroupInput.group_SenderId)!);
  const [sid2, sid3] = [sid(2), sid(3)];
  gm.removeNode('lights', nodes[1]!); // version 0 → 1, sid2 stale under 0
  gm.rekey('lights'); // 1 → 2, nothing stale
  gm.removeNode('lights', nodes[2]!); // 2 → 3, sid3 stale under 2
  const ask = (v: unknown, client = MEMBER('ace 01')): CoapResponse => gm.staleSenderIds(client, 'lights', encodeCbor(v));
  const ids = (r: CoapResponse): string[] => (decodeStrict(r.payload as Uint8Array) as Uint8Array[]).map(toHex).sort();
  const fromV2 = ask(2);
  assert.equal(fromV2.code, ResponseCode.Content);
  assert.equal(fromV2.contentFormat, ContentFormat.Cbor);
  assert.deepEqual(ids(fromV2), [sid3]);
  assert.deepEqual(ids(ask(1)), [sid3]);
  assert.deepEqual(ids(ask(0)), [sid2, sid3].sort(), 'SKEW = 4 sets: versions 3, 2, 1 and 0');
  assert.equal(ask(3).code, ResponseCode.BadRequest, 'V >= V\'');
  assert.equal(ask('0').code, ResponseCode.BadRequest);
  assert.equal(ask(-1).code, ResponseCode.BadRequest);
  assert.equal(errorId(ask(0, MEMBER('ace 02'))), GroupError.onlyMembers, 'a removed member is no member');
  // The sets survive a restart; with more rekeys than sets kept, an old V gets 2.05 without payload (SKEW > ITEMS).
  const restarted = new OnlineGroupManager(gm.toJSON());
  assert.deepEqual(ids(restarted.staleSenderIds(MEMBER('ace 01'), 'lights', encodeCbor(0))), [sid2, sid3].sort());
  for (let i = 0; i < 20; i++) restarted.rekey('lights');
  const tooOld = restarted.staleSenderIds(MEMBER('ace 01'), 'lights', encodeCbor(0));
  assert.equal(tooOld.code, ResponseCode.Content);
  assert.equal(tooOld.payload, undefined);
});

test('GET /verif-data: a signature verifier gets what verifies group-mode signatures, never the Master Secret; members 4.03 error 8', () => {
  const gm = OnlineGroupManager.fromOfflineStates([GroupManager.create({ name: 'lights' }).toJSON()]);
  const node = join(gm, MEMBER('ace 01'), fromHex('0101010101010101'));
  const answer = gm.verificationData(VERIFIER, 'lights');
  assert.equal(answer.code, ResponseCode.Content);
  assert.equal(answer.contentFormat, 261);
  const map = body(answer);
  assert.deepEqual([...map.keys()].sort((a, b) => a - b), [GroupParam.gkty, GroupParam.key, GroupParam.num, GroupParam.ace_groupcomm_profile, GroupParam.exi, GroupParam.sign_enc_key]);
  const key = map.get(GroupParam.key) as Map<number, unknown>;
  // §9.6: hkdf, contextId, cred_fmt, gp_enc_alg, sign_alg, sign_params, and alg, ecdh_alg (this group also has the pairwise mode).
  assert.deepEqual([...key.keys()].sort((a, b) => a - b), [GroupInput.hkdf, GroupInput.alg, GroupInput.contextId, GroupInput.cred_fmt, GroupInput.gp_enc_alg, GroupInput.sign_alg, GroupInput.sign_params, GroupInput.ecdh_alg]);
  // The Signature Encryption Key is the one a member derives from the keying material (Group OSCORE §2.1.9).
  const memberKey = body(gm.nodeMaterial(MEMBER('ace 01'), 'lights', node)).get(GroupParam.key) as Map<number, unknown>;
  assert.deepEqual(key.get(GroupInput.contextId), memberKey.get(GroupInput.contextId));
  const material = decodeKeyMaterial(memberKey as Map<number, CborValue>);
  const common = deriveCommonContext({ masterSecret: fromHex(material.masterSecret), masterSalt: fromHex(material.masterSalt), gid: fromHex(material.gid), algorithms: material.algorithms, gmCredential: new Uint8Array(0) });
  assert.deepEqual(map.get(GroupParam.sign_enc_key), common.signatureEncryptionKey);
  const member = gm.verificationData(MEMBER('ace 01'), 'lights');
  assert.equal(member.code, ResponseCode.Forbidden);
  assert.equal(errorId(member), GroupError.onlyVerifiers);
  assert.equal(gm.verificationData({ id: 'x', scope: undefined }, 'lights').code, ResponseCode.Unauthorized);
  // Table 2: a verifier also reads the members' credentials (§9.3); a client with neither role does not.
  const creds = gm.credentials(VERIFIER, 'lights');
  assert.equal(creds.code, ResponseCode.Content);
  assert.equal((body(creds).get(GroupParam.creds) as unknown[]).length, 1);
  assert.equal(errorId(gm.credentials(MEMBER('ace 09'), 'lights')), GroupError.onlyMembers);
});

test('attachGroupManager serves /kdc-cred (GET, FETCH), /verif-data (GET) and /stale-sids (FETCH) for each group', async () => {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  try {
    attachGroupManager(server, OnlineGroupManager.fromOfflineStates([GroupManager.create({ name: 'lights' }).toJSON()]), { audiences: ['gm'], tokenKeys: [] });
    const paths = server.links().map((l) => l.href);
    assert.ok(paths.includes('/ace-group/lights/kdc-cred'));
    assert.ok(paths.includes('/ace-group/lights/stale-sids'));
    assert.ok(paths.includes('/ace-group/lights/verif-data'));
  } finally {
    await server.close();
  }
});
