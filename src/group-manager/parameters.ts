/**
 * The wire vocabulary of the Group Manager: the ACE Groupcomm parameters (RFC 9594 §8 and
 * draft-ietf-ace-key-groupcomm-oscore §12), the Group_OSCORE_Input_Material labels (RFC 9203 §3.2.1
 * extended by key-groupcomm-oscore §17.6), error identifiers (RFC 9594 §9, key-groupcomm-oscore
 * §13) and the concise problem details of RFC 9594 §4.1.2 / RFC 9290.
 *
 * Values the drafts leave "TBD": Content-Format application/ace-groupcomm+cbor is 261 and the
 * Custom Problem Detail key 'ace-groupcomm-error' is 0 (the values RFC 9594 registered); the key
 * type Group_OSCORE_Input_Material object and the profile coap_group_oscore_app use their
 * suggested value 1.
 */
import { ResponseCode } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import { encodeCbor } from '../cose/cbor.js';
import type { CoapResponse } from '../server/resource.js';

/** RFC 9594 §8 Table 3, with ecdh_info/kdc_dh_creds/stale_node_ids of key-groupcomm-oscore §12. */
export const GroupParam = {
  gid: 0,
  gname: 1,
  scope: 3,
  get_creds: 4,
  client_cred: 5,
  cnonce: 6,
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
  client_cred_verify: 24,
  sign_info: 29,
  kdcchallenge: 30,
  ecdh_info: 31,
  stale_node_ids: 34,
} as const;

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
/** RFC 9594 §11.10: group policies "Key Update Check Interval" and "Expiration Delta". */
export const GroupPolicy = { keyUpdateCheckInterval: 1, expirationDelta: 2 } as const;

export const ACE_GROUPCOMM_CBOR = 261;
const ACE_GROUPCOMM_ERROR = 0;
const PROBLEM_DETAIL = -2;

/** RFC 9594 §9 and key-groupcomm-oscore §13. */
export const GroupError = {
  onlyMembers: 0,
  inconsistentRoles: 1,
  incompatibleCredential: 2,
  invalidPop: 3,
  noNodeIdentifiers: 4,
  membershipTerminated: 5,
  groupDeleted: 6,
} as const;

/** RFC 9594 §4.1.2: application/concise-problem-details+cbor with 'ace-groupcomm-error' {error-id} and 'detail'. */
export function problem(code: number, errorId: number, detail: string): CoapResponse {
  return {
    code,
    contentFormat: ContentFormat.ConciseProblemDetailsCbor,
    payload: encodeCbor(new Map<number, unknown>([[PROBLEM_DETAIL, detail], [ACE_GROUPCOMM_ERROR, new Map([[0, errorId]])]])),
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
    const entry = map.get(ACE_GROUPCOMM_ERROR) as unknown;
    const id = entry instanceof Map ? entry.get(0) : undefined;
    const detail = map.get(PROBLEM_DETAIL);
    return `${id !== undefined ? `error ${String(id)}` : 'no error id'}${typeof detail === 'string' ? ` (${detail})` : ''}`;
  } catch {
    return undefined;
  }
}
