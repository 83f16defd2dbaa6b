/**
 * Every code point the Group Manager puts on the wire, pinned against the spec's own table. The
 * tables below are copied from the specs (RFC 9594 = draft-ietf-ace-key-groupcomm, and
 * draft-ietf-ace-key-groupcomm-oscore), each with its figure or table number, so a wrong or
 * missing value in src/group-manager/parameters.ts fails here, and a value the drafts leave TBD
 * is named as a stand-in rather than passing silently.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { decodeStrict } from '../src/cose/cbor.js';
import { GROUP_OSCORE_ROLES } from '../src/ace/scope-format.js';
import {
  ACE_GROUPCOMM_CBOR,
  COAP_GROUP_OSCORE_APP,
  CRED_FMT_KCCS,
  GROUP_OSCORE_KEY_TYPE,
  GroupError,
  GroupInput,
  GroupParam,
  GroupPolicy,
  ProblemDetailKey,
  problem,
} from '../src/group-manager/parameters.js';

/** RFC 9594 §8, Figure 42 "ACE Groupcomm Parameters" (the registry's initial content, §11.7). */
const RFC9594_PARAMETERS = {
  gid: 0, gname: 1, guri: 2, scope: 3, get_creds: 4, client_cred: 5, cnonce: 6, client_cred_verify: 24,
  creds_repo: 25, control_uri: 26, gkty: 7, key: 8, num: 9, ace_groupcomm_profile: 10, exp: 11, exi: 12,
  creds: 13, peer_roles: 14, peer_identifiers: 15, group_policies: 16, kdc_cred: 17, kdc_nonce: 18,
  kdc_cred_verify: 19, rekeying_scheme: 20, mgt_key_material: 27, control_group_uri: 28, sign_info: 29,
  kdcchallenge: 30,
};

/** key-groupcomm-oscore §12, Table 3 (§17.3: "suggested" values). */
const OSCORE_PROFILE_PARAMETERS = { group_senderId: 21, ecdh_info: 31, kdc_dh_creds: 32, sign_enc_key: 33, stale_node_ids: 34 };

/** RFC 9594 §9, Figure 43 "ACE Groupcomm Error Identifiers", and key-groupcomm-oscore §13, Table 4 (§17.11: suggested). */
const ERRORS = {
  onlyMembers: 0, inconsistentRoles: 1, incompatibleCredential: 2, invalidPop: 3, noNodeIdentifiers: 4,
  membershipTerminated: 5, groupDeleted: 6, signaturesNotUsed: 7, onlyVerifiers: 8, groupNotActive: 9,
};

/** RFC 9203 §3.2.1 Table 1 (OSCORE Security Context Parameters) with key-groupcomm-oscore §17.6 (suggested labels 7–13). */
const INPUT_MATERIAL = { ms: 2, hkdf: 3, alg: 4, salt: 5, contextId: 6, group_SenderId: 7, cred_fmt: 8, gp_enc_alg: 9, sign_alg: 10, sign_params: 11, ecdh_alg: 12, ecdh_params: 13 };

/** RFC 9594 §4.3.1, Figure 13 "ACE Groupcomm Policies". */
const POLICIES = { sequenceNumberSynchronization: 0, keyUpdateCheckInterval: 1, expirationDelta: 2 };

/** key-groupcomm-oscore §3, Table 1 "Group OSCORE Roles" (bit numbers of the AIF Tperm). */
const ROLES = { requester: 1, responder: 2, monitor: 3, verifier: 4 };

test('RFC 9594 Figure 42 and key-groupcomm-oscore Table 3: every ACE Groupcomm parameter and its CBOR key', () => {
  assert.deepEqual({ ...GroupParam }, { ...RFC9594_PARAMETERS, ...OSCORE_PROFILE_PARAMETERS });
  const keys = Object.values(GroupParam);
  assert.equal(new Set(keys).size, keys.length, 'CBOR keys are unique (§11.7)');
});

test('RFC 9594 Figure 43 and key-groupcomm-oscore Table 4: the error identifiers', () => {
  assert.deepEqual({ ...GroupError }, ERRORS);
});

test('the Group_OSCORE_Input_Material labels, group policies and roles', () => {
  assert.deepEqual({ ...GroupInput }, INPUT_MATERIAL);
  assert.deepEqual({ ...GroupPolicy }, POLICIES);
  assert.deepEqual({ ...GROUP_OSCORE_ROLES }, ROLES);
});

test('registry values: key type, profile, credential format, Content-Format', () => {
  // key-groupcomm-oscore §17.4 / §17.5: GROUPCOMM_KEY_TBD and PROFILE_TBD, "suggested value: 1"; 0 is reserved (RFC 9594 Figures 11, 12).
  assert.equal(GROUP_OSCORE_KEY_TYPE, 1);
  assert.equal(COAP_GROUP_OSCORE_APP, 1);
  // 'cred_fmt' takes a COSE header parameter label (§17.6); kccs is 14 (RFC 9528 §10.6).
  assert.equal(CRED_FMT_KCCS, 14);
  // RFC 9594 §11.2 leaves the ID "TBD"; key-groupcomm-oscore's examples (§9) show "Content-Format: 261 (application/ace-groupcomm+cbor)".
  assert.equal(ACE_GROUPCOMM_CBOR, 261);
  assert.equal(ContentFormat.ConciseProblemDetailsCbor, 257, 'RFC 9290 §6.3');
});

test('RFC 9594 §4.1.2: problem details carry detail (-2) and ace-groupcomm-error {error-id (0): id}', () => {
  // RFC 9290 §2: 'detail' is the standard problem detail key -2. RFC 9594 §11.6 leaves the
  // Custom Problem Detail key of 'ace-groupcomm-error' TBD (Figure 6 prints "TBD"); 0 stands in.
  assert.equal(ProblemDetailKey.detail, -2);
  assert.equal(ProblemDetailKey.aceGroupcommError, 0);
  const response = problem(ResponseCode.ServiceUnavailable, GroupError.noNodeIdentifiers, 'try later');
  assert.equal(response.contentFormat, ContentFormat.ConciseProblemDetailsCbor);
  const map = decodeStrict(response.payload as Uint8Array) as Map<number, unknown>;
  assert.equal(map.size, 2);
  assert.equal(map.get(-2), 'try later');
  assert.deepEqual(map.get(0), new Map([[0, 4]]));
});
