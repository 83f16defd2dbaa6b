/**
 * The wire vocabulary of the Group Manager, every code point in one place with the table it comes
 * from (pinned against those tables by test/group-manager-codepoints.test.ts):
 *
 *  - ACE Groupcomm parameters: RFC 9594 §8 Figure 42 (registry §11.7), and key-groupcomm-oscore
 *    §12 Table 3 (group_senderId, ecdh_info, kdc_dh_creds, sign_enc_key, stale_node_ids: §17.3
 *    "suggested" values, used as they are);
 *  - error identifiers: RFC 9594 §9 Figure 43 (registry §11.12), key-groupcomm-oscore §13 Table 4
 *    (7–9, §17.11 suggested);
 *  - Group_OSCORE_Input_Material labels: RFC 9203 §3.2.1 Table 1, key-groupcomm-oscore §17.6
 *    (7–13 suggested);
 *  - group policies: RFC 9594 §4.3.1 Figure 13. No 'rekeying_scheme' is sent: key-groupcomm-oscore
 *    OPT9 makes Point-to-Point (RFC 9594 Figure 14, value 0) the default, and it is ours (§6.1);
 *  - the concise problem details of RFC 9594 §4.1.2: 'detail' is RFC 9290's standard key -2.
 *
 * Values the drafts leave "TBD", and what stands in for them:
 *  - Content-Format application/ace-groupcomm+cbor (RFC 9594 §11.2 "ID: TBD"): 261, the number
 *    key-groupcomm-oscore's own examples print ("Content-Format: 261 (application/ace-groupcomm+cbor)");
 *  - the Custom Problem Detail key 'ace-groupcomm-error' (RFC 9594 §11.6 "Key Value: TBD", Figure 6
 *    prints "TBD"): 0, the first value of that registry;
 *  - key type Group_OSCORE_Input_Material object (key-groupcomm-oscore §17.4 GROUPCOMM_KEY_TBD)
 *    and profile coap_group_oscore_app (§17.5 PROFILE_TBD): their suggested value 1.
 * The group roles (key-groupcomm-oscore §3 Table 1) are GROUP_OSCORE_ROLES in src/ace/scope-format.ts.
 */
import { ResponseCode } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import { encodeCbor } from '../cose/cbor.js';
import type { CoapResponse } from '../server/resource.js';

/** RFC 9594 §8 Figure 42, with key-groupcomm-oscore §12 Table 3. */
export const GroupParam = {
  gid: 0,
  gname: 1,
  guri: 2,
  scope: 3,
  get_creds: 4,
  client_cred: 5,
  cnonce: 6,
  client_cred_verify: 24,
  creds_repo: 25,
  control_uri: 26,
  gkty: 7,
  key: 8,
  num: 9,
  ace_groupcomm_profile: 10,
  exp: 11,
  exi: 12,
  creds: 13,
  peer_roles: 14,
  peer_identifiers: 15,
  group_policies: 16,
  kdc_cred: 17,
  kdc_nonce: 18,
  kdc_cred_verify: 19,
  rekeying_scheme: 20,
  mgt_key_material: 27,
  control_group_uri: 28,
  sign_info: 29,
  kdcchallenge: 30,
  group_senderId: 21,
  ecdh_info: 31,
  kdc_dh_creds: 32,
  sign_enc_key: 33,
  stale_node_ids: 34,
} as const;

/**
 * The same two parameters in the Token Transfer Request and Response (ace+cbor maps, RFC 9594
 * §3.3): labels of the "OAuth Parameters CBOR Mappings" registry, "TBD" in RFC 9594 §11.4; 45 and
 * 46 stand in (the values that registry gives them, next to key-groupcomm-oscore's suggested 47
 * for ecdh_info).
 */
export const TokenTransferParam = { sign_info: 45, kdcchallenge: 46 } as const;

/** RFC 9203 Table 1 and key-groupcomm-oscore §17.6 (suggested labels). */
export const GroupInput = {
  ms: 2,
  hkdf: 3,
  alg: 4,
  salt: 5,
  contextId: 6,
  group_SenderId: 7,
  cred_fmt: 8,
  gp_enc_alg: 9,
  sign_alg: 10,
  sign_params: 11,
  ecdh_alg: 12,
  ecdh_params: 13,
} as const;

/** key-groupcomm-oscore §17.4, §17.5 (suggested values). */
export const GROUP_OSCORE_KEY_TYPE = 1;
export const COAP_GROUP_OSCORE_APP = 1;
/** COSE header parameter kccs (RFC 9528 §10.6): the credential format CWT Claims Set. */
export const CRED_FMT_KCCS = 14;
/** RFC 9594 §4.3.1 Figure 13. */
export const GroupPolicy = { sequenceNumberSynchronization: 0, keyUpdateCheckInterval: 1, expirationDelta: 2 } as const;

export const ACE_GROUPCOMM_CBOR = 261;
/** RFC 9290 §2 'detail' (-2), and RFC 9594 §4.1.2's Custom Problem Detail 'ace-groupcomm-error' (TBD; 0 stands in). */
export const ProblemDetailKey = { detail: -2, aceGroupcommError: 0 } as const;
/** RFC 9594 §4.1.2: the 'error-id' field inside 'ace-groupcomm-error'. */
const ERROR_ID = 0;

/** RFC 9594 §9 Figure 43 and key-groupcomm-oscore §13 Table 4. */
export const GroupError = {
  onlyMembers: 0,
  inconsistentRoles: 1,
  incompatibleCredential: 2,
  invalidPop: 3,
  noNodeIdentifiers: 4,
  membershipTerminated: 5,
  groupDeleted: 6,
  signaturesNotUsed: 7,
  onlyVerifiers: 8,
  groupNotActive: 9,
} as const;

/** RFC 9594 §4.1.2: application/concise-problem-details+cbor with 'ace-groupcomm-error' {error-id} and 'detail'. */
export function problem(code: number, errorId: number, detail: string): CoapResponse {
  return {
    code,
    contentFormat: ContentFormat.ConciseProblemDetailsCbor,
    payload: encodeCbor(new Map<number, unknown>([[ProblemDetailKey.detail, detail], [ProblemDetailKey.aceGroupcommError, new Map([[ERROR_ID, errorId]])]])),
    maxAge: 0,
  };
}

/** A 4.00 with an application/ace-groupcomm+cbor map (RFC 9594 §4.3.1, key-groupcomm-oscore §6.2 OPT4). */
export function badRequestMap(entries: Iterable<readonly [number, unknown]>): CoapResponse {
  return { code: ResponseCode.BadRequest, contentFormat: ACE_GROUPCOMM_CBOR, payload: encodeCbor(new Map(entries)), maxAge: 0 };
}

/** The error-id and detail of a problem-details payload, for a client's messages. */
export function describeProblem(payload: Uint8Array, decode: (bytes: Uint8Array) => unknown): string | undefined {
  try {
    const map = decode(payload);
    if (!(map instanceof Map)) return undefined;
    const entry = map.get(ProblemDetailKey.aceGroupcommError) as unknown;
    const id = entry instanceof Map ? entry.get(ERROR_ID) : undefined;
    const detail = map.get(ProblemDetailKey.detail);
    return `${id !== undefined ? `error ${String(id)}` : 'no error id'}${typeof detail === 'string' ? ` (${detail})` : ''}`;
  } catch {
    return undefined;
  }
}
