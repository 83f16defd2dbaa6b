/**
 * One group as the online Group Manager keeps it — the offline Group Manager state (Sender IDs,
 * Gids, keys: src/group-oscore/manager.ts), the nodes that joined, the stale Sender IDs, whether it
 * is active — and the checks and answer pieces every handler shares: who the requesting client is
 * in the group (member, own node, signature verifier, with RFC 9594 §4.1.2's refusals), the
 * keying material, the credentials, the Group Manager's proof of possession.
 */
import { ResponseCode } from '../coap/codes.js';
import { encodeCbor, fromHex, type CborValue } from '../cose/cbor.js';
import { signBytes, verifyBytes } from '../cose/sign.js';
import { credentialFitsSignature, ownCredential, parseAuthCredential } from '../group-oscore/credential.js';
import type { GroupManager } from '../group-oscore/manager.js';
import type { CoapResponse } from '../server/resource.js';
import { selects, type CredentialFilter } from './credential-filter.js';
import { encodeKeyMaterial, kdcPopInput } from './key-material.js';
import { ACE_GROUPCOMM_CBOR, GroupError, GroupParam, GroupPolicy, problem } from './parameters.js';
import { bit, forbidden, grantedRoles, ROLE, type GroupClient } from './roles.js';
import type { StaleSet } from './stale-sender-ids.js';

export interface NodeRecord {
  /** The client identity that joined as this node; absent for members the offline tool added. */
  client?: string;
  /** The roles as key-groupcomm-oscore §3's Tperm bit set. */
  roles: number;
  /** N_C of its latest Join Request, hex: RFC 9594 §4.5.1's 'clientchallenge' for /kdc-cred. */
  clientChallenge?: string;
  /** The scope entry of its latest Join Request, hex: part of the PoP input of a credential upload (RFC 9594 §4.9.1). */
  scope?: string;
  /** Key Renewals under keying material version `num` (bounded: MAX_RENEWALS_PER_VERSION). */
  renewals?: { num: number; count: number };
}

/**
 * Key Renewals a node may make per version of the keying material. Each takes a Sender ID that may
 * not be used again under the Gid and lands in the stale set: unbounded, one member could use up
 * the group's Sender IDs and grow the state. A member that exhausts 2^40 sequence numbers this
 * often is not a real one; the next rekey allows more.
 */
export const MAX_RENEWALS_PER_VERSION = 8;

export interface Group {
  readonly manager: GroupManager;
  readonly nodes: Map<string, NodeRecord>;
  readonly stale: StaleSet[];
  /** key-groupcomm-oscore §9.9: members may join and communicate. */
  active: boolean;
}

/** A request to one group: the group (undefined: there is none by that name), who asks, and the settings answers need. */
export interface GroupAt {
  readonly group: Group | undefined;
  readonly groupName: string;
  readonly client: GroupClient;
  /** The 'exi' of the keying material, seconds. */
  readonly keyLifetime: number;
  readonly random: (n: number) => Uint8Array;
}

/** RFC 9594 §4.3.1 Figure 13, key-groupcomm-oscore §14: the group's policies, in the Join Response and at /policies. */
export const GROUP_POLICIES: ReadonlyArray<readonly [number, number]> = [
  [GroupPolicy.keyUpdateCheckInterval, 3600],
  [GroupPolicy.expirationDelta, 0],
];

/** The client as a current member: its node; otherwise the refusal (4.04, 4.01, 4.03; RFC 9594 §4.3.2: a non-member 4.03 error 0). */
export function memberOf(at: GroupAt): { group: Group; node: string } | CoapResponse {
  const { group, groupName, client } = at;
  if (group === undefined) return { code: ResponseCode.NotFound, payload: `no group ${groupName}` };
  const granted = grantedRoles(client, groupName);
  if (granted === undefined) return { code: ResponseCode.Unauthorized, payload: 'no access token' };
  if (granted === 0) return forbidden(`the access token grants no role in ${groupName}`);
  const node = [...group.nodes].find(([, r]) => r.client === client.id)?.[0];
  if (node === undefined) return problem(ResponseCode.Forbidden, GroupError.onlyMembers, `not a member of ${groupName}`);
  return { group, node };
}

/** key-groupcomm-oscore §8.1.1, §8.3.1: a signature verifier of the group — not a member (error 8) — of a group that signs (error 7). */
export function verifierOf(at: GroupAt): { group: Group } | CoapResponse {
  const { group, groupName, client } = at;
  if (group === undefined) return { code: ResponseCode.NotFound, payload: `no group ${groupName}` };
  const granted = grantedRoles(client, groupName);
  if (granted === undefined) return { code: ResponseCode.Unauthorized, payload: 'no access token' };
  const member = [...group.nodes.values()].some((r) => r.client === client.id);
  if (member || (granted & bit(ROLE.verifier)) === 0) return problem(ResponseCode.Forbidden, GroupError.onlyVerifiers, `operation permitted only to signature verifiers of ${groupName}`);
  if (group.manager.toJSON().algorithms.signature === undefined) return problem(ResponseCode.BadRequest, GroupError.signaturesNotUsed, `${groupName} uses no signatures`);
  return { group };
}

/** The client as the member named `node` (RFC 9594 §4.8: only the node itself; another member's node is 4.03, error 0 is for non-members). */
export function ownNodeOf(at: GroupAt, node: string): { group: Group } | CoapResponse {
  const found = memberOf(at);
  if ('code' in found) return found;
  if (found.node !== node) return found.group.nodes.has(node) ? forbidden(`${node} is another member`) : { code: ResponseCode.NotFound, payload: `no node ${node}` };
  return { group: found.group };
}

export function keyMaterialOf(group: Group, senderId: string | undefined): Map<number, CborValue> {
  const s = group.manager.toJSON();
  return encodeKeyMaterial({ gid: s.gid, masterSecret: s.masterSecret, masterSalt: s.masterSalt, algorithms: s.algorithms, ...(senderId !== undefined ? { senderId } : {}) });
}

/** creds, peer_roles, peer_identifiers (RFC 9594 §4.3.1, §4.4): every member but `except` that `filter` selects. */
export function credentialEntries(group: Group, except: string | undefined, filter?: CredentialFilter): Array<readonly [number, unknown]> {
  const roles = (name: string): number => group.nodes.get(name)?.roles ?? 0;
  const members = group.manager.toJSON().members.filter((m) => m.name !== except && (filter === undefined || selects(filter, roles(m.name), m.senderId)));
  return [
    [GroupParam.creds, members.map((m) => fromHex(m.credential))],
    [GroupParam.peer_roles, members.map((m) => roles(m.name))],
    [GroupParam.peer_identifiers, members.map((m) => fromHex(m.senderId))],
  ];
}

/** 'kdc_cred', a new 'kdc_nonce' N_KDC, and 'kdc_cred_verify': the signature over N_C | N_KDC (RFC 9594 §4.3.1, key-groupcomm-oscore §6.3). */
export function kdcProof(group: Group, nC: Uint8Array, random: (n: number) => Uint8Array): Array<readonly [number, unknown]> {
  const state = group.manager.toJSON();
  const nKdc = Uint8Array.from(random(8));
  const own = ownCredential(fromHex(state.gm.credential), fromHex(state.gm.privateKey));
  return [
    [GroupParam.kdc_cred, fromHex(state.gm.credential)],
    [GroupParam.kdc_nonce, nKdc],
    [GroupParam.kdc_cred_verify, signBytes(state.algorithms.signature!, own.privateKey, kdcPopInput(nC, nKdc))],
  ];
}

/**
 * A member's authentication credential with its PoP evidence (RFC 9594 §4.3.1 join, §4.9.1
 * upload): undefined when it is for the group's Signature Algorithm (else 4.00 error 2) and the
 * evidence over `popInput` verifies with it (else 4.00 error 3).
 */
export function credentialRefusal(group: Group, credential: Uint8Array, popInput: Uint8Array, evidence: Uint8Array): CoapResponse | undefined {
  const signature = group.manager.toJSON().algorithms.signature!;
  let publicKey;
  try {
    const parsed = parseAuthCredential(credential);
    if (!credentialFitsSignature(parsed, signature)) throw new Error('wrong key type');
    publicKey = parsed.publicKey;
  } catch {
    return problem(ResponseCode.BadRequest, GroupError.incompatibleCredential, `client_cred is not a CCS with a key for Signature Algorithm ${signature}`);
  }
  if (!verifyBytes(signature, publicKey, popInput, evidence)) return problem(ResponseCode.BadRequest, GroupError.invalidPop, 'client_cred_verify does not verify');
  return undefined;
}

export function answer(code: number, entries: Array<readonly [number, unknown]>): CoapResponse {
  return { code, contentFormat: ACE_GROUPCOMM_CBOR, payload: encodeCbor(new Map(entries)), maxAge: 0 };
}

/** RFC 9594 §4.2.1, §4.4.1: nothing found is "a CBOR byte string of zero length". */
export const emptyAnswer = (): CoapResponse => ({ code: ResponseCode.Content, contentFormat: ACE_GROUPCOMM_CBOR, payload: encodeCbor(new Uint8Array(0)), maxAge: 0 });

/** key-groupcomm-oscore §6.2, §9.2, §9.4: 5.03 error 9 while the group is inactive. */
export const inactive = (groupName: string): CoapResponse => problem(ResponseCode.ServiceUnavailable, GroupError.groupNotActive, `${groupName} is currently not active`);
