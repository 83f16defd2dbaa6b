/**
 * The online Group Manager (RFC 9594 with draft-ietf-ace-key-groupcomm-oscore) as a sans-IO core:
 * a client's identity and scope tokens and a request payload in, a CoAP response out. Who the
 * client is and what its access token grants come from the ACE resource server in front of it
 * (the OSCORE context that verified the request: its peer name and `context.scope`, tokens
 * "GROUP:ROLE" from the AIF scope of key-groupcomm-oscore §3). resources.ts puts it on CoAP.
 *
 * Each group is one offline Group Manager state (src/group-oscore/manager.ts): Sender IDs, Gids,
 * key generations and credentials keep the rules of Group OSCORE §12 there. This core adds the
 * nodes (joined clients: node name, roles, the client they belong to), the join with proof of
 * possession, and rekeying when a node leaves or is removed (RFC 9594 §5, §6: the new material
 * goes to the members through Observe on /ace-group/GROUPNAME; `onRekey` tells the binding).
 *
 * Bounded state a client can make us allocate: one pending 'kdcchallenge' per client identity, at
 * most 256 (kdc-challenges.ts: the oldest forgotten first); nodes only for clients a token admits, one per
 * token and at most `maxNodes` per group.
 */
import { randomBytes } from 'node:crypto';
import { ResponseCode } from '../coap/codes.js';
import { OptionNumber } from '../coap/options.js';
import { ContentFormat } from '../coap/content-format.js';
import { decodeStrict, encodeCbor, fromHex, isBytes, isInt, toHex, type CborValue } from '../cose/cbor.js';
import { signBytes, verifyBytes } from '../cose/sign.js';
import { aifScopeFormat, GROUP_OSCORE_ROLES, splitScopeToken } from '../ace/scope-format.js';
import { credentialFitsSignature, ownCredential, parseAuthCredential } from '../group-oscore/credential.js';
import { GroupManager, type GroupManagerState } from '../group-oscore/manager.js';
import { OscoreConfigError } from '../oscore/errors.js';
import type { CoapResponse } from '../server/resource.js';
import { deriveCommonContext } from '../group-oscore/common.js';
import { clientPopInput, encodeKeyMaterial, kdcPopInput, signInfo, verifierKeyMaterial } from './key-material.js';
import { KdcChallenges, tokenTransferEntries } from './kdc-challenges.js';
import { recordRekey, staleSince, type StaleSet } from './stale-sender-ids.js';
import { ACE_GROUPCOMM_CBOR, badRequestMap, COAP_GROUP_OSCORE_APP, GROUP_OSCORE_KEY_TYPE, GroupError, GroupParam, GroupPolicy, problem } from './parameters.js';

/** The requesting client as the ACE resource server authenticated it. */
export interface GroupClient {
  /** A stable name of its access token's security association (the OSCORE context's peer name). */
  readonly id: string;
  /** The scope tokens of its access token; undefined without one. */
  readonly scope: readonly string[] | undefined;
}

interface NodeRecord {
  /** The client identity that joined as this node; absent for members the offline tool added. */
  client?: string;
  /** The roles as key-groupcomm-oscore §3's Tperm bit set. */
  roles: number;
  /** N_C of its latest Join Request, hex: RFC 9594 §4.5.1's 'clientchallenge' for /kdc-cred. */
  clientChallenge?: string;
}

/** The whole persisted state: the groups (offline Group Manager states), their nodes and stale Sender IDs. */
export interface OnlineGroupManagerState {
  version: 1;
  nextNode: number;
  groups: Array<{ manager: GroupManagerState; nodes: Record<string, NodeRecord>; stale?: StaleSet[] }>;
}

export interface OnlineGroupManagerOptions {
  /** Seconds since the epoch; default the system clock. */
  readonly now?: () => number;
  readonly random?: (n: number) => Uint8Array;
  /** The 'exi' of the keying material: seconds the members may use it before checking again. Default 86400. */
  readonly keyLifetime?: number;
  /** Members per group at most (each token a client gets can join once); past it a join gets 5.03. Default 1024. */
  readonly maxNodes?: number;
  /** Called after every change of the state (to persist it). */
  readonly onChange?: (state: OnlineGroupManagerState) => void;
  /** One line per join, leave, removal and rekey (never a key). */
  readonly log?: (line: string) => void;
}

interface Group {
  readonly manager: GroupManager;
  readonly nodes: Map<string, NodeRecord>;
  readonly stale: StaleSet[];
}

const GROUP_SCOPES = aifScopeFormat(GROUP_OSCORE_ROLES);
const ROLE = GROUP_OSCORE_ROLES as { requester: number; responder: number; monitor: number; verifier: number };
const bit = (role: number): number => 1 << role;

export class OnlineGroupManager {
  readonly #groups = new Map<string, Group>();
  readonly #challenges: KdcChallenges;
  readonly #options: OnlineGroupManagerOptions;
  readonly #random: (n: number) => Uint8Array;
  #nextNode: number;
  /** Called with a group's name after its keying material changed (a rekey). */
  onRekey: ((group: string) => void) | undefined;

  constructor(state: OnlineGroupManagerState, options: OnlineGroupManagerOptions = {}) {
    if (state.version !== 1) throw new OscoreConfigError(`unsupported online Group Manager state version ${String(state.version)}`);
    this.#options = options;
    this.#random = options.random ?? randomBytes;
    this.#challenges = new KdcChallenges(this.#random);
    this.#nextNode = state.nextNode;
    for (const g of state.groups) {
      const manager = GroupManager.fromJSON(g.manager);
      const nodes = new Map(Object.entries(g.nodes).map(([name, record]) => [name, { ...record }]));
      // Members the offline tool added are nodes too (no client: only an administrator removes them).
      for (const member of manager.memberNames) if (!nodes.has(member)) nodes.set(member, { roles: bit(ROLE.requester) | bit(ROLE.responder) });
      const stale = g.stale?.map((set) => ({ num: set.num, senderIds: [...set.senderIds] })) ?? [{ num: manager.keyGeneration, senderIds: [] }];
      this.#groups.set(manager.name, { manager, nodes, stale });
    }
  }

  /** Takes over offline Group Manager states (`coapsec group create/add`): the same groups, members, keys and Gids. */
  static fromOfflineStates(states: readonly GroupManagerState[], options?: OnlineGroupManagerOptions): OnlineGroupManager {
    const names = new Set<string>();
    for (const s of states) {
      if (names.has(s.name)) throw new OscoreConfigError(`two groups are named ${s.name}`);
      names.add(s.name);
    }
    return new OnlineGroupManager({ version: 1, nextNode: 1, groups: states.map((manager) => ({ manager, nodes: {} })) }, options);
  }

  toJSON(): OnlineGroupManagerState {
    return {
      version: 1,
      nextNode: this.#nextNode,
      groups: [...this.#groups.values()].map((g) => ({
        manager: g.manager.toJSON(),
        nodes: Object.fromEntries([...g.nodes].map(([n, r]) => [n, { ...r }])),
        stale: g.stale.map((set) => ({ num: set.num, senderIds: [...set.senderIds] })),
      })),
    };
  }

  get groupNames(): string[] {
    return [...this.#groups.keys()];
  }

  /** Every scope token a token for this Group Manager may carry: "GROUP:ROLE" for each group and role. */
  get scopeTokens(): string[] {
    return this.groupNames.flatMap((g) => Object.keys(GROUP_OSCORE_ROLES).map((role) => `${g}:${role}`));
  }

  /** The node names of a group's members. */
  nodes(group: string): string[] {
    return [...(this.#groups.get(group)?.nodes.keys() ?? [])];
  }

  keyGeneration(group: string): number | undefined {
    return this.#groups.get(group)?.manager.keyGeneration;
  }

  /** The group's current Gid (its OSCORE ID Context, hex; public: every message carries it). */
  gid(group: string): string | undefined {
    return this.#groups.get(group)?.manager.gid;
  }

  /**
   * POST /ace-group/GROUPNAME: the Join Request (RFC 9594 §4.3.1, key-groupcomm-oscore §6.2). An
   * empty or malformed request gets 4.00 with sign_info and a new kdcchallenge (§6.2, OPT4), which
   * is how a client that posted its token learns N_S and the group's signature algorithm.
   */
  join(client: GroupClient, groupName: string, payload: Uint8Array): CoapResponse {
    const group = this.#groups.get(groupName);
    if (group === undefined) return { code: ResponseCode.NotFound, payload: `no group ${groupName}` };
    const granted = grantedRoles(client, groupName);
    if (granted === undefined) return { code: ResponseCode.Unauthorized, payload: 'no access token' };
    if (granted === 0) return forbidden(`the access token grants no role in ${groupName}`);
    const request = decodeMap(payload);
    const scope = request?.get(GroupParam.scope);
    if (request === undefined || !isBytes(scope)) return this.#challengeAnswer(client, group, 'the Join Request needs a scope');
    const wanted = requestedRoles(scope, groupName);
    if (typeof wanted === 'string') return this.#challengeAnswer(client, group, wanted);
    // RFC 9594 §4.3.1: "If this is not the case, the KDC MUST reply with a 4.03 (Forbidden)".
    if ((wanted & ~granted) !== 0) return forbidden(`the access token does not grant ${roleNames(wanted & ~granted)} in ${groupName}`);
    if ((wanted & bit(ROLE.monitor)) !== 0 && (wanted & (bit(ROLE.requester) | bit(ROLE.responder))) !== 0) return this.#challengeAnswer(client, group, 'monitor cannot be combined with requester or responder (key-groupcomm-oscore §6.1)');
    if ((wanted & (bit(ROLE.requester) | bit(ROLE.responder))) === 0) return this.#challengeAnswer(client, group, 'this Group Manager admits requesters and responders only');
    const nC = request.get(GroupParam.cnonce);
    if (!isBytes(nC)) return this.#challengeAnswer(client, group, 'the Join Request needs a cnonce');
    const credential = request.get(GroupParam.client_cred);
    const evidence = request.get(GroupParam.client_cred_verify);
    if (!isBytes(credential) || !isBytes(evidence) || credential.length === 0 || evidence.length === 0) return this.#challengeAnswer(client, group, 'the Join Request needs client_cred and client_cred_verify');
    const nS = this.#challenges.get(client.id);
    if (nS === undefined) return this.#challengeAnswer(client, group, 'no kdcchallenge for this client: use the one in this response');
    const state = group.manager.toJSON();
    const signature = state.algorithms.signature!;
    let publicKey;
    try {
      const parsed = parseAuthCredential(credential);
      if (!credentialFitsSignature(parsed, signature)) throw new Error('wrong key type');
      publicKey = parsed.publicKey;
    } catch {
      return problem(ResponseCode.BadRequest, GroupError.incompatibleCredential, `client_cred is not a CCS with a key for Signature Algorithm ${signature}`);
    }
    if (!verifyBytes(signature, publicKey, clientPopInput(scope, nS, nC), evidence)) return problem(ResponseCode.BadRequest, GroupError.invalidPop, 'client_cred_verify does not verify');
    this.#challenges.forget(client.id);

    // A current member joining again gets a new Sender ID (§6.3): its old node goes, which rekeys.
    const previous = [...group.nodes].find(([, r]) => r.client === client.id)?.[0];
    if (previous !== undefined) this.#removeNode(group, previous, 're-joined');
    if (group.nodes.size >= (this.#options.maxNodes ?? 1024)) return problem(ResponseCode.ServiceUnavailable, GroupError.noNodeIdentifiers, `${groupName} has its maximum of members`);
    const node = `m${this.#nextNode}`;
    this.#nextNode += 1;
    let senderId: string;
    try {
      senderId = group.manager.addMember(node, { credential }).senderId;
    } catch (e) {
      if (e instanceof OscoreConfigError) return problem(ResponseCode.ServiceUnavailable, GroupError.noNodeIdentifiers, e.message);
      throw e;
    }
    group.nodes.set(node, { client: client.id, roles: wanted, clientChallenge: toHex(nC) });
    this.#options.log?.(`${client.id} joined ${groupName} as ${node} (${roleNames(wanted)}), Sender ID ${senderId || '(empty)'}`);
    this.#changed();

    const creds = request.has(GroupParam.get_creds) ? this.#credentialEntries(group, node) : undefined;
    const body = new Map<number, unknown>([
      [GroupParam.gkty, GROUP_OSCORE_KEY_TYPE],
      [GroupParam.key, this.#keyMaterial(group, senderId)],
      [GroupParam.num, group.manager.keyGeneration],
      [GroupParam.ace_groupcomm_profile, COAP_GROUP_OSCORE_APP],
      [GroupParam.exi, this.#keyLifetime()],
      ...(creds !== undefined ? creds : []),
      [GroupParam.group_policies, new Map([[GroupPolicy.keyUpdateCheckInterval, 3600], [GroupPolicy.expirationDelta, 0]])],
      ...this.#kdcProof(group, nC),
    ]);
    return {
      code: previous !== undefined ? ResponseCode.Changed : ResponseCode.Created,
      contentFormat: ACE_GROUPCOMM_CBOR,
      payload: encodeCbor(body),
      options: ['ace-group', groupName, 'nodes', node].map((segment) => ({ number: OptionNumber.LocationPath, value: new TextEncoder().encode(segment) })),
    };
  }

  /** GET /ace-group/GROUPNAME (RFC 9594 §4.3.2): the current keying material; observable. */
  keyMaterial(client: GroupClient, groupName: string): CoapResponse {
    const found = this.#member(client, groupName);
    if ('code' in found) return found;
    const { group } = found;
    return this.#answer(ResponseCode.Content, [
      [GroupParam.gkty, GROUP_OSCORE_KEY_TYPE],
      [GroupParam.key, this.#keyMaterial(group, undefined)],
      [GroupParam.num, group.manager.keyGeneration],
      [GroupParam.ace_groupcomm_profile, COAP_GROUP_OSCORE_APP],
      [GroupParam.exi, this.#keyLifetime()],
    ]);
  }

  /**
   * GET /ace-group/GROUPNAME/creds (RFC 9594 §4.4.2): every member's credential, role and Sender
   * ID; for members, and for signature verifiers (key-groupcomm-oscore §8.5 Table 2, §9.3).
   */
  credentials(client: GroupClient, groupName: string): CoapResponse {
    const member = this.#member(client, groupName);
    const found = 'code' in member ? this.#verifier(client, groupName) : member;
    if ('code' in found) return member as CoapResponse;
    return this.#answer(ResponseCode.Content, [...this.#credentialEntries(found.group, undefined), [GroupParam.num, found.group.manager.keyGeneration]]);
  }

  /** GET /ace-group/GROUPNAME/num (RFC 9594 §4.7): the version of the keying material. */
  version(client: GroupClient, groupName: string): CoapResponse {
    const found = this.#member(client, groupName);
    if ('code' in found) return found;
    return { code: ResponseCode.Content, contentFormat: ACE_GROUPCOMM_CBOR, payload: encodeCbor(found.group.manager.keyGeneration), maxAge: 0 };
  }

  /** GET /ace-group/GROUPNAME/nodes/NODENAME (RFC 9594 §4.8.1): the keying material with this node's Sender ID. */
  nodeMaterial(client: GroupClient, groupName: string, node: string): CoapResponse {
    const found = this.#ownNode(client, groupName, node);
    if ('code' in found) return found;
    const senderId = found.group.manager.memberFile(node).senderId;
    return this.#answer(ResponseCode.Content, [
      [GroupParam.gkty, GROUP_OSCORE_KEY_TYPE],
      [GroupParam.key, this.#keyMaterial(found.group, senderId)],
      [GroupParam.num, found.group.manager.keyGeneration],
      [GroupParam.exi, this.#keyLifetime()],
    ]);
  }

  /**
   * GET /ace-group/GROUPNAME/kdc-cred (RFC 9594 §4.5.1, key-groupcomm-oscore §9.5.1): the Group
   * Manager's credential, a new N_KDC and its signature over N_C | N_KDC, N_C the member's
   * 'cnonce' of its latest Join Request. Members only (error 0).
   */
  kdcCredential(client: GroupClient, groupName: string): CoapResponse {
    const found = this.#member(client, groupName);
    if ('code' in found) return found;
    const nC = found.group.nodes.get(found.node)?.clientChallenge;
    if (nC === undefined) return { code: ResponseCode.BadRequest, payload: 'no Join Request N_C is stored for this member: join again', maxAge: 0 };
    return this.#answer(ResponseCode.Content, this.#kdcProof(found.group, fromHex(nC)));
  }

  /**
   * FETCH /ace-group/GROUPNAME/kdc-cred (key-groupcomm-oscore §8.1.1, §9.5.2): the same for a
   * signature verifier, over the fresh N_C in its request's 'cnonce'. A member, or a client whose
   * token does not make it a verifier of the group, gets 4.03 error 8.
   */
  kdcCredentialForVerifier(client: GroupClient, groupName: string, payload: Uint8Array): CoapResponse {
    const found = this.#verifier(client, groupName);
    if ('code' in found) return found;
    const nC = decodeMap(payload)?.get(GroupParam.cnonce);
    if (!isBytes(nC) || nC.length === 0) return { code: ResponseCode.BadRequest, payload: 'the request needs a cnonce', maxAge: 0 };
    return this.#answer(ResponseCode.Content, this.#kdcProof(found.group, nC));
  }

  /**
   * GET /ace-group/GROUPNAME/verif-data (key-groupcomm-oscore §8.3.1, §9.6): what an external
   * signature verifier needs besides the credentials — the algorithms, the Gid, the version and the
   * Signature Encryption Key (Group OSCORE §2.1.9), never the Master Secret. Verifiers only
   * (error 8), groups with signatures only (error 7).
   */
  verificationData(client: GroupClient, groupName: string): CoapResponse {
    const found = this.#verifier(client, groupName);
    if ('code' in found) return found;
    const s = found.group.manager.toJSON();
    const common = deriveCommonContext({ masterSecret: fromHex(s.masterSecret), masterSalt: fromHex(s.masterSalt), gid: fromHex(s.gid), algorithms: s.algorithms, gmCredential: fromHex(s.gm.credential) });
    return this.#answer(ResponseCode.Content, [
      [GroupParam.gkty, GROUP_OSCORE_KEY_TYPE],
      [GroupParam.key, verifierKeyMaterial({ gid: s.gid, masterSecret: s.masterSecret, masterSalt: s.masterSalt, algorithms: s.algorithms })],
      [GroupParam.num, s.keyGeneration],
      [GroupParam.ace_groupcomm_profile, COAP_GROUP_OSCORE_APP],
      [GroupParam.exi, this.#keyLifetime()],
      [GroupParam.sign_enc_key, common.signatureEncryptionKey!],
    ]);
  }

  /**
   * FETCH /ace-group/GROUPNAME/stale-sids (key-groupcomm-oscore §8.4.1, §11.3.1): the Sender IDs
   * that went stale since the member's version V of the keying material (payload: V as a CBOR
   * unsigned integer); no payload when the Group Manager no longer keeps that many sets.
   */
  staleSenderIds(client: GroupClient, groupName: string, payload: Uint8Array): CoapResponse {
    const found = this.#member(client, groupName);
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

  /** DELETE /ace-group/GROUPNAME/nodes/NODENAME (RFC 9594 §4.8.3): leave the group; the group is rekeyed. */
  leave(client: GroupClient, groupName: string, node: string): CoapResponse {
    const found = this.#ownNode(client, groupName, node);
    if ('code' in found) return found;
    this.#removeNode(found.group, node, 'left');
    return { code: ResponseCode.Deleted };
  }

  /** RFC 9594 §5: the Group Manager removes a member (an administrator's decision) and rekeys the group. */
  removeNode(groupName: string, node: string): void {
    const group = this.#groups.get(groupName);
    if (group === undefined || !group.nodes.has(node)) throw new OscoreConfigError(`group ${groupName} has no node ${node}`);
    this.#removeNode(group, node, 'removed by the Group Manager');
  }

  /** A rekey without a membership change (Group OSCORE §12.2): new Gid, Master Secret and Salt, key generation + 1. */
  rekey(groupName: string): void {
    const group = this.#groups.get(groupName);
    if (group === undefined) throw new OscoreConfigError(`no group ${groupName}`);
    const from = group.manager.keyGeneration;
    group.manager.rekey();
    recordRekey(group.stale, from, [], group.manager.keyGeneration);
    this.#rekeyed(group, 'rekeyed');
  }

  #removeNode(group: Group, node: string, why: string): void {
    group.nodes.delete(node);
    // §12.2: "MUST rekey the group without undue delay when one or more endpoints leave".
    const from = group.manager.keyGeneration;
    const rekey = group.manager.removeMember(node);
    // key-groupcomm-oscore §7.1: its Sender ID goes stale under the version it was used in.
    recordRekey(group.stale, from, rekey.staleSenderIds, rekey.keyGeneration);
    this.#rekeyed(group, `${node} ${why}`);
  }

  #rekeyed(group: Group, why: string): void {
    this.#options.log?.(`${group.manager.name}: ${why}; new Gid ${group.manager.gid}, key generation ${group.manager.keyGeneration}`);
    this.#changed();
    this.onRekey?.(group.manager.name);
  }

  #keyMaterial(group: Group, senderId: string | undefined): Map<number, CborValue> {
    const s = group.manager.toJSON();
    return encodeKeyMaterial({ gid: s.gid, masterSecret: s.masterSecret, masterSalt: s.masterSalt, algorithms: s.algorithms, ...(senderId !== undefined ? { senderId } : {}) });
  }

  /** creds, peer_roles, peer_identifiers (RFC 9594 §4.3.1, §4.4.2), every member but `except`. */
  #credentialEntries(group: Group, except: string | undefined): Array<readonly [number, unknown]> {
    const members = group.manager.toJSON().members.filter((m) => m.name !== except);
    return [
      [GroupParam.creds, members.map((m) => fromHex(m.credential))],
      [GroupParam.peer_roles, members.map((m) => group.nodes.get(m.name)?.roles ?? 0)],
      [GroupParam.peer_identifiers, members.map((m) => fromHex(m.senderId))],
    ];
  }

  #member(client: GroupClient, groupName: string): { group: Group; node: string } | CoapResponse {
    const group = this.#groups.get(groupName);
    if (group === undefined) return { code: ResponseCode.NotFound, payload: `no group ${groupName}` };
    const granted = grantedRoles(client, groupName);
    if (granted === undefined) return { code: ResponseCode.Unauthorized, payload: 'no access token' };
    if (granted === 0) return forbidden(`the access token grants no role in ${groupName}`);
    const node = [...group.nodes].find(([, r]) => r.client === client.id)?.[0];
    // RFC 9594 §4.3.2: a client that is not a current member gets 4.03 with error 0.
    if (node === undefined) return problem(ResponseCode.Forbidden, GroupError.onlyMembers, `not a member of ${groupName}`);
    return { group, node };
  }

  /** key-groupcomm-oscore §8.1.1, §8.3.1: a signature verifier of the group — not a member (error 8) — of a group that signs (error 7). */
  #verifier(client: GroupClient, groupName: string): { group: Group } | CoapResponse {
    const group = this.#groups.get(groupName);
    if (group === undefined) return { code: ResponseCode.NotFound, payload: `no group ${groupName}` };
    const granted = grantedRoles(client, groupName);
    if (granted === undefined) return { code: ResponseCode.Unauthorized, payload: 'no access token' };
    const member = [...group.nodes.values()].some((r) => r.client === client.id);
    if (member || (granted & bit(ROLE.verifier)) === 0) return problem(ResponseCode.Forbidden, GroupError.onlyVerifiers, `operation permitted only to signature verifiers of ${groupName}`);
    if (group.manager.toJSON().algorithms.signature === undefined) return problem(ResponseCode.BadRequest, GroupError.signaturesNotUsed, `${groupName} uses no signatures`);
    return { group };
  }

  #ownNode(client: GroupClient, groupName: string, node: string): { group: Group } | CoapResponse {
    const found = this.#member(client, groupName);
    if ('code' in found) return found;
    // RFC 9594 §4.8.1: only the node itself; another member's node is 4.03 (error 0 is for non-members).
    if (found.node !== node) return found.group.nodes.has(node) ? forbidden(`${node} is another member`) : { code: ResponseCode.NotFound, payload: `no node ${node}` };
    return { group: found.group };
  }

  /** 'kdc_cred', a new 'kdc_nonce' N_KDC, and 'kdc_cred_verify': the signature over N_C | N_KDC (RFC 9594 §4.3.1, key-groupcomm-oscore §6.3). */
  #kdcProof(group: Group, nC: Uint8Array): Array<readonly [number, unknown]> {
    const state = group.manager.toJSON();
    const nKdc = Uint8Array.from(this.#random(8));
    const own = ownCredential(fromHex(state.gm.credential), fromHex(state.gm.privateKey));
    return [
      [GroupParam.kdc_cred, fromHex(state.gm.credential)],
      [GroupParam.kdc_nonce, nKdc],
      [GroupParam.kdc_cred_verify, signBytes(state.algorithms.signature!, own.privateKey, kdcPopInput(nC, nKdc))],
    ];
  }

  /**
   * The Token Transfer Response's additions (RFC 9594 §3.3, key-groupcomm-oscore §6.1): a new
   * 'kdcchallenge' N_S, kept for the client's Join Request, when the token grants a role that
   * joins with a credential (requester, responder; a monitor's does not), and 'sign_info' for the
   * token's groups when the client asked for it.
   */
  tokenTransfer(clientId: string, scope: readonly string[], wantsSignInfo: boolean): Array<readonly [number, unknown]> {
    const groups = [...new Set(scope.map((token) => splitScopeToken(token)?.name))].flatMap((name) => {
      const group = name === undefined ? undefined : this.#groups.get(name);
      return group === undefined ? [] : [group];
    });
    const credentialRoles = bit(ROLE.requester) | bit(ROLE.responder);
    return tokenTransferEntries({
      groups,
      wantsSignInfo,
      signInfoOf: (g) => signInfo(g.manager.name, g.manager.toJSON().algorithms.signature!),
      joinsWithCredential: (g) => ((grantedRoles({ id: clientId, scope }, g.manager.name) ?? 0) & credentialRoles) !== 0,
      issueChallenge: () => this.#challenges.issue(clientId),
    });
  }

  #challengeAnswer(client: GroupClient, group: Group, why: string): CoapResponse {
    const challenge = this.#challenges.issue(client.id);
    const signature = group.manager.toJSON().algorithms.signature!;
    this.#options.log?.(`join of ${group.manager.name} by ${client.id} refused with a new kdcchallenge: ${why}`);
    return badRequestMap([[GroupParam.sign_info, signInfo(group.manager.name, signature)], [GroupParam.kdcchallenge, challenge]]);
  }

  #answer(code: number, entries: Array<readonly [number, unknown]>): CoapResponse {
    return { code, contentFormat: ACE_GROUPCOMM_CBOR, payload: encodeCbor(new Map(entries)), maxAge: 0 };
  }

  #keyLifetime(): number {
    return this.#options.keyLifetime ?? 86400;
  }

  #changed(): void {
    this.#options.onChange?.(this.toJSON());
  }
}

/** The roles the client's token grants in `group` as a Tperm bit set; undefined without a token. */
function grantedRoles(client: GroupClient, group: string): number | undefined {
  if (client.scope === undefined) return undefined;
  let roles = 0;
  for (const token of client.scope) {
    const parts = splitScopeToken(token);
    const role = parts?.name === group ? GROUP_OSCORE_ROLES[parts.role] : undefined;
    if (role !== undefined) roles |= bit(role);
  }
  return roles;
}

/** The join's scope: exactly one entry, for this group (key-groupcomm-oscore §6.1). A string is why not. */
function requestedRoles(scope: Uint8Array, group: string): number | string {
  let tokens: string[];
  try {
    tokens = GROUP_SCOPES.tokens(scope);
  } catch (e) {
    return (e as Error).message;
  }
  let roles = 0;
  for (const token of tokens) {
    const parts = splitScopeToken(token);
    if (parts?.name !== group) return `the scope names another group than ${group}`;
    const role = GROUP_OSCORE_ROLES[parts.role];
    if (role === undefined) return `unknown role ${parts.role}`;
    roles |= bit(role);
  }
  return roles === 0 ? 'the scope names no role' : roles;
}

function roleNames(roles: number): string {
  return Object.entries(GROUP_OSCORE_ROLES).filter(([, b]) => (roles & bit(b)) !== 0).map(([name]) => name).join('+');
}

export const forbidden = (detail: string): CoapResponse => ({ code: ResponseCode.Forbidden, payload: detail, maxAge: 0 });

export function decodeMap(payload: Uint8Array): Map<CborValue, CborValue> | undefined {
  if (payload.length === 0) return undefined;
  try {
    const value = decodeStrict(payload);
    return value instanceof Map ? value : undefined;
  } catch {
    return undefined;
  }
}

