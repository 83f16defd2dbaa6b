/**
 * The Group Manager's wire formats against the specifications: the AIF group scope
 * (key-groupcomm-oscore §3), the PoP inputs (RFC 9594 Figures 10 and 15), the
 * Group_OSCORE_Input_Material round trip, and the 4.00 that hands out a kdcchallenge (§6.2).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResponseCode } from '../src/coap/codes.js';
import { decodeStrict, encodeCbor, fromHex, toHex } from '../src/cose/cbor.js';
import { encodeCcs } from '../src/cose/cwt.js';
import { signBytes } from '../src/cose/sign.js';
import { ownCredential } from '../src/group-oscore/credential.js';
import { AceFormatError } from '../src/ace/ace-cbor.js';
import { SCOPE_FORMATS } from '../src/ace/scope-format.js';
import { DEFAULT_GROUP_ALGORITHMS, GroupManager, keyPairFor } from '../src/group-oscore/manager.js';
import { clientPopInput, decodeKeyMaterial, encodeKeyMaterial, kdcPopInput, OnlineGroupManager, GroupParam } from '../src/group-manager/index.js';

const AIF = SCOPE_FORMATS['aif-oscore-group']!;

test('AIF-OSCORE-GROUPCOMM: one entry per group, roles as bits (requester 1, responder 2, monitor 3, verifier 4)', () => {
  const scope = AIF.encode(['lights:requester', 'lights:responder', 'doors:monitor']) as Uint8Array;
  // [["lights", 2^1|2^2 = 6], ["doors", 2^3 = 8]]
  assert.equal(toHex(scope), '82' + '82' + '666c6967687473' + '06' + '82' + '65646f6f7273' + '08');
  assert.deepEqual(AIF.tokens(scope), ['lights:requester', 'lights:responder', 'doors:monitor']);
  assert.deepEqual(AIF.tokens(fromHex('818263673161' + '01')), ['g1a:bit0'], 'the reserved bit 0 becomes a token nobody grants');
  assert.throws(() => AIF.tokens(fromHex('a0')), AceFormatError);
  assert.throws(() => AIF.encode(['lights:owner']), AceFormatError);
});

test('the PoP inputs are the CBOR byte strings concatenated (RFC 9594 Figures 10 and 15)', () => {
  const scope = fromHex('826667726f7570316673656e646572');
  const nS = fromHex('018a278f7faab55a');
  const nC = fromHex('25a8991cd700ac01');
  assert.equal(toHex(clientPopInput(scope, nS, nC)), '4f826667726f7570316673656e646572' + '48018a278f7faab55a' + '4825a8991cd700ac01');
  assert.equal(toHex(kdcPopInput(nC, nS)), '4825a8991cd700ac01' + '48018a278f7faab55a');
});

test('Group_OSCORE_Input_Material: what the Group Manager encodes, the member decodes', () => {
  const material = { gid: 'a1b2c3d4', masterSecret: '00'.repeat(16), masterSalt: '11'.repeat(8), algorithms: DEFAULT_GROUP_ALGORITHMS, senderId: '07' };
  const encoded = encodeKeyMaterial(material);
  assert.equal(encoded.get(8), 14, 'cred_fmt: CCS (kccs)');
  assert.deepEqual(encoded.get(11), [[1], [1, 6]], 'sign_params of EdDSA: OKP, Ed25519');
  assert.deepEqual(decodeKeyMaterial(encoded), material);
});

test('an empty Join Request gets 4.00 ace-groupcomm+cbor with sign_info and a new kdcchallenge; without a role in the group, 4.03', () => {
  const gm = OnlineGroupManager.fromOfflineStates([GroupManager.create({ name: 'lights' }).toJSON()]);
  const answer = gm.join({ id: 'ace 01', scope: ['lights:requester'] }, 'lights', new Uint8Array(0));
  assert.equal(answer.code, ResponseCode.BadRequest);
  assert.equal(answer.contentFormat, 261);
  const map = decodeStrict(answer.payload as Uint8Array) as Map<number, unknown>;
  assert.deepEqual(map.get(GroupParam.sign_info), [['lights', -8, [1], [1, 6], 14]]);
  assert.equal((map.get(GroupParam.kdcchallenge) as Uint8Array).length, 8);
  assert.equal(gm.join({ id: 'ace 02', scope: ['doors:requester'] }, 'lights', new Uint8Array(0)).code, ResponseCode.Forbidden);
  assert.equal(gm.keyMaterial({ id: 'ace 01', scope: ['lights:requester'] }, 'lights').code, ResponseCode.Forbidden, 'not a member yet');
});

test('a join with a valid proof of possession: 2.01 with Location-Path; a wrong one error 3; past maxNodes 5.03 error 4', () => {
  const gm = OnlineGroupManager.fromOfflineStates([GroupManager.create({ name: 'lights' }).toJSON()], { maxNodes: 1 });
  const scope = AIF.encode(['lights:requester']) as Uint8Array;
  const joinAs = (id: string, forge = false) => {
    const client = { id, scope: ['lights:requester'] };
    const challenge = decodeStrict(gm.join(client, 'lights', new Uint8Array(0)).payload as Uint8Array) as Map<number, unknown>;
    const pair = keyPairFor(-8);
    const credential = encodeCcs({ sub: id, coseKey: pair.coseKey });
    const nC = fromHex('0102030405060708');
    const evidence = signBytes(-8, ownCredential(credential, pair.privateKey).privateKey, clientPopInput(scope, challenge.get(GroupParam.kdcchallenge) as Uint8Array, nC));
    if (forge) evidence[0]! ^= 1;
    const request = new Map<number, unknown>([[GroupParam.scope, scope], [GroupParam.cnonce, nC], [GroupParam.client_cred, credential], [GroupParam.client_cred_verify, evidence]]);
    return gm.join(client, 'lights', encodeCbor(request));
  };
  const forged = joinAs('ace 01', true);
  assert.equal(forged.code, ResponseCode.BadRequest);
  assert.deepEqual((decodeStrict(forged.payload as Uint8Array) as Map<number, Map<number, number>>).get(0)?.get(0), 3);
  const joined = joinAs('ace 01');
  assert.equal(joined.code, ResponseCode.Created);
  assert.deepEqual(joined.options?.map((o) => Buffer.from(o.value).toString()), ['ace-group', 'lights', 'nodes', 'm1']);
  const full = joinAs('ace 02');
  assert.equal(full.code, ResponseCode.ServiceUnavailable);
  assert.deepEqual((decodeStrict(full.payload as Uint8Array) as Map<number, Map<number, number>>).get(0)?.get(0), 4);
});
