/**
 * The Group Manager's read-only handlers (RFC 9594 §4, key-groupcomm-oscore §8, §9): what a member
 * or a signature verifier may ask of a group — keying material, credentials, version, the Group
 * Manager's credential, verification data, stale Sender IDs, policies, status, group names — each a
 * CoAP response from the group's state (group-state.ts) and the requesting client. Changes of
 * membership and keys are online-manager.ts's.
 */
import { ResponseCode } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import { decodeStrict, encodeCbor, fromHex, isBytes, isInt, toHex, type CborValue } from '../cose/cbor.js';
import { deriveCommonContext } from '../group-oscore/common.js';
import type { CoapResponse } from '../server/resource.js';
import { credentialFilterOf } from './credential-filter.js';
import { verifierKeyMaterial } from './key-material.js';
import { ACE_GROUPCOMM_CBOR, COAP_GROUP_OSCORE_APP, GROUP_OSCORE_KEY_TYPE, GroupParam } from './parameters.js';
import { decodeMap, grantedRoles, type GroupClient } from './roles.js';
import { staleSince } from './stale-sender-ids.js';
import { answer, credentialEntries, emptyAnswer, GROUP_POLICIES, kdcProof, keyMaterialOf, memberOf, ownNodeOf, verifierOf, type Group, type GroupAt } from './group-state.js';

/** Where the groups' resources live (resources.ts binds them there). */
export const ACE_GROUP_PATH = '/ace-group';

/** GET /ace-group/GROUPNAME (RFC 9594 §4.3.2): the current keying material; observable. */
export function getKeyMaterial(at: GroupAt): CoapResponse {
  const found = memberOf(at);
  if ('code' in found) return found;
  const { group } = found;
  return answer(ResponseCode.Content, [
    [GroupParam.gkty, GROUP_OSCORE_KEY_TYPE],
    [GroupParam.key, keyMaterialOf(group, undefined)],
    [GroupParam.num, group.manager.keyGeneration],
    [GroupParam.ace_groupcomm_profile, COAP_GROUP_OSCORE_APP],
    [GroupParam.exi, at.keyLifetime],
  ]);
}

/**
 * GET /ace-group/GROUPNAME/creds (RFC 9594 §4.4.2): every member's credential, role and Sender
 * ID; for members, and for signature verifiers (key-groupcomm-oscore §8.5 Table 2, §9.3).
 */
export function getCredentials(at: GroupAt): CoapResponse {
  const member = memberOf(at);
  const found = 'code' in member ? verifierOf(at) : member;
  if ('code' in found) return member as CoapResponse;
  return answer(ResponseCode.Content, [...credentialEntries(found.group, undefined), [GroupParam.num, found.group.manager.keyGeneration]]);
}

/** GET /ace-group/GROUPNAME/num (RFC 9594 §4.7): the version of the keying material. */
export function getVersion(at: GroupAt): CoapResponse {
  const found = memberOf(at);
  if ('code' in found) return found;
  return { code: ResponseCode.Content, contentFormat: ACE_GROUPCOMM_CBOR, payload: encodeCbor(found.group.manager.keyGeneration), maxAge: 0 };
}

/** GET /ace-group/GROUPNAME/nodes/NODENAME (RFC 9594 §4.8.1): the keying material with this node's Sender ID. */
export function getNodeMaterial(at: GroupAt, node: string): CoapResponse {
  const found = ownNodeOf(at, node);
  if ('code' in found) return found;
  const senderId = found.group.manager.memberFile(node).senderId;
  return answer(ResponseCode.Content, [
    [GroupParam.gkty, GROUP_OSCORE_KEY_TYPE],
    [GroupParam.key, keyMaterialOf(found.group, senderId)],
    [GroupParam.num, found.group.manager.keyGeneration],
    [GroupParam.exi, at.keyLifetime],
  ]);
}

/**
 * GET /ace-group/GROUPNAME/kdc-cred (RFC 9594 §4.5.1, key-groupcomm-oscore §9.5.1): the Group
 * Manager's credential, a new N_KDC and its signature over N_C | N_KDC, N_C the member's
 * 'cnonce' of its latest Join Request. Members only (error 0).
 */
export function getKdcCredential(at: GroupAt): CoapResponse {
  const found = memberOf(at);
  if ('code' in found) return found;
  const nC = found.group.nodes.get(found.node)?.clientChallenge;
  if (nC === undefined) return { code: ResponseCode.BadRequest, payload: 'no Join Request N_C is stored for this member: join again', maxAge: 0 };
  return answer(ResponseCode.Content, kdcProof(found.group, fromHex(nC), at.random));
}

/**
 * FETCH /ace-group/GROUPNAME/kdc-cred (key-groupcomm-oscore §8.1.1, §9.5.2): the same for a
 * signature verifier, over the fresh N_C in its request's 'cnonce'. A member, or a client whose
 * token does not make it a verifier of the group, gets 4.03 error 8.
 */
export function fetchKdcCredential(at: GroupAt, payload: Uint8Array): CoapResponse {
  const found = verifierOf(at);
  if ('code' in found) return found;
  const nC = decodeMap(payload)?.get(GroupParam.cnonce);
  if (!isBytes(nC) || nC.length === 0) return { code: ResponseCode.BadRequest, payload: 'the request needs a cnonce', maxAge: 0 };
  return answer(ResponseCode.Content, kdcProof(found.group, nC, at.random));
}

/**
 * GET /ace-group/GROUPNAME/verif-data (key-groupcomm-oscore §8.3.1, §9.6): what an external
 * signature verifier needs besides the credentials — the algorithms, the Gid, the version and the
 * Signature Encryption Key (Group OSCORE §2.1.9), never the Master Secret. Verifiers only
 * (error 8), groups with signatures only (error 7).
 */
export function getVerificationData(at: GroupAt): CoapResponse {
  const found = verifierOf(at);
  if ('code' in found) return found;
  const s = found.group.manager.toJSON();
  const common = deriveCommonContext({ masterSecret: fromHex(s.masterSecret), masterSalt: fromHex(s.masterSalt), gid: fromHex(s.gid), algorithms: s.algorithms, gmCredential: fromHex(s.gm.credential) });
  return answer(ResponseCode.Content, [
    [GroupParam.gkty, GROUP_OSCORE_KEY_TYPE],
    [GroupParam.key, verifierKeyMaterial({ gid: s.gid, masterSecret: s.masterSecret, masterSalt: s.masterSalt, algorithms: s.algorithms })],
    [GroupParam.num, s.keyGeneration],
    [GroupParam.ace_groupcomm_profile, COAP_GROUP_OSCORE_APP],
    [GroupParam.exi, at.keyLifetime],
    [GroupParam.sign_enc_key, common.signatureEncryptionKey!],
  ]);
}

/**
 * FETCH /ace-group/GROUPNAME/stale-sids (key-groupcomm-oscore §8.4.1, §11.3.1): the Sender IDs
 * that went stale since the member's version V of the keying material (payload: V as a CBOR
 * unsigned integer); no payload when the Group Manager no longer keeps that many sets.
 */
export function fetchStaleSenderIds(at: GroupAt, payload: Uint8Array): CoapResponse {
  const found = memberOf(at);
  if ('code' in found) return found;
  let v: CborValue;
  try {
    v = decodeStrict(payload);
  } catch {
    return { code: ResponseCode.BadRequest, payload: 'the payload must be the version as a CBOR unsigned integer', maxAge: 0 };
  }
  const current = found.group.manager.keyGeneration;
  if (!isInt(v) || v < 0) return { code: ResponseCode.BadRequest, payload: 'the payload must be the version as a CBOR unsigned integer', maxAge: 0 };
  if (v >= current) return { code: ResponseCode.BadRequest, payload: `version ${v} is not older than the current ${current}`, maxAge: 0 };
  const ids = staleSince(found.group.stale, v, current);
  if (ids === undefined) return { code: ResponseCode.Content, maxAge: 0 };
  return { code: ResponseCode.Content, contentFormat: ContentFormat.Cbor, payload: encodeCbor(ids.map(fromHex)), maxAge: 0 };
}

/**
 * FETCH /ace-group (RFC 9594 §4.2.1, key-groupcomm-oscore §9.10): the names and URIs of the
 * groups whose current Gid is in the request's 'gid'. Only groups the client's access token names
 * are answered for: a token for one group learns nothing of the others. None found: a zero-length
 * byte string.
 */
export function fetchGroupNames(groups: Iterable<Group>, client: GroupClient, payload: Uint8Array): CoapResponse {
  if (client.scope === undefined) return { code: ResponseCode.Unauthorized, payload: 'no access token' };
  const gids = decodeMap(payload)?.get(GroupParam.gid);
  if (!Array.isArray(gids) || gids.length === 0 || !gids.every(isBytes)) return { code: ResponseCode.BadRequest, payload: "the request needs 'gid': an array of one or more Gids (byte strings)", maxAge: 0 };
  const wanted = new Set(gids.map((gid) => toHex(gid)));
  const found = [...groups].filter((g) => wanted.has(g.manager.gid) && (grantedRoles(client, g.manager.name) ?? 0) !== 0);
  if (found.length === 0) return emptyAnswer();
  return answer(ResponseCode.Content, [
    [GroupParam.gid, found.map((g) => fromHex(g.manager.gid))],
    [GroupParam.gname, found.map((g) => g.manager.name)],
    [GroupParam.guri, found.map((g) => `${ACE_GROUP_PATH}/${g.manager.name}`)],
  ]);
}

/**
 * FETCH /ace-group/GROUPNAME/creds (RFC 9594 §4.4.1, key-groupcomm-oscore §9.3): the credentials
 * of the members the 'get_creds' filter selects (credential-filter.ts); members and signature
 * verifiers. None selected: a zero-length byte string.
 */
export function fetchCredentials(at: GroupAt, payload: Uint8Array): CoapResponse {
  const member = memberOf(at);
  const found = 'code' in member ? verifierOf(at) : member;
  if ('code' in found) return member as CoapResponse;
  const filter = credentialFilterOf(decodeMap(payload)?.get(GroupParam.get_creds), false);
  if (typeof filter === 'string' || filter === null) return { code: ResponseCode.BadRequest, payload: filter ?? "the request needs 'get_creds'", maxAge: 0 };
  const entries = credentialEntries(found.group, undefined, filter);
  if ((entries[0]![1] as unknown[]).length === 0) return emptyAnswer();
  return answer(ResponseCode.Content, [...entries, [GroupParam.num, found.group.manager.keyGeneration]]);
}

/** GET /ace-group/GROUPNAME/policies (RFC 9594 §4.6.1): the group's policies; members only (error 0). */
export function getPolicies(at: GroupAt): CoapResponse {
  const found = memberOf(at);
  if ('code' in found) return found;
  return answer(ResponseCode.Content, [[GroupParam.group_policies, new Map(GROUP_POLICIES)]]);
}

/** GET /ace-group/GROUPNAME/active (key-groupcomm-oscore §8.2.1, §9.9): CBOR true or false; members only (error 0); observable. */
export function getStatus(at: GroupAt): CoapResponse {
  const found = memberOf(at);
  if ('code' in found) return found;
  return { code: ResponseCode.Content, contentFormat: ContentFormat.Cbor, payload: encodeCbor(found.group.active), maxAge: 0 };
}

