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
import { encodeCbor, fromHex, isBytes, toHex } from '../cose/cbor.js';
import { GROUP_OSCORE_ROLES, splitScopeToken } from '../ace/scope-format.js';
import { GroupManager, type GroupManagerState } from '../group-oscore/manager.js';
import { OscoreConfigError } from '../oscore/errors.js';
import type { CoapResponse } from '../server/resource.js';
import { clientPopInput, signInfo } from './key-material.js';
import { KdcChallenges, tokenTransferEntries } from './kdc-challenges.js';
import { recordRekey, recordStale, type StaleSet } from './stale-sender-ids.js';
import { credentialFilterOf } from './credential-filter.js';
import { answer, credentialEntries, credentialRefusal, GROUP_POLICIES, MAX_RENEWALS_PER_VERSION, inactive, kdcProof, keyMaterialOf, ownNodeOf, type Group, type GroupAt, type NodeRecord } from './group-state.js';
import * as queries from './group-queries.js';
import { bit, decodeMap, forbidden, grantedRoles, requestedRoles, ROLE, roleNames, SENDING_ROLES, type GroupClient } from './roles.js';
import { ACE_GROUPCOMM_CBOR, badRequestMap, COAP_GROUP_OSCORE_APP, GROUP_OSCORE_KEY_TYPE, GroupError, GroupParam, problem } from './parameters.js';

export { decodeMap, forbidden, type GroupClient } from './roles.js';

/** The whole persisted state: the groups (offline Group Manager states), their nodes and stale Sender IDs. */
export interface OnlineGroupManagerState {
  version: 1;
  nextNode: number;
  /** `active` absent: the group is active (key-groupcomm-oscore §8.2). */
  groups: Array<{ manager: GroupManagerState; nodes: Record<string, NodeRecord>; stale?: StaleSet[]; active?: boolean }>;
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


export class OnlineGroupManager {
  readonly #groups = new Map<string, Group>();
  readonly #challenges: KdcChallenges;
  readonly #options: OnlineGroupManagerOptions;
  readonly #random: (n: number) => Uint8Array;
  #nextNode: number;
  /** Called with a group's name after its keying material changed (a rekey). */
  onRekey: ((group: string) => void) | undefined;
  /** Called with a group's name after it became active or inactive (key-groupcomm-oscore §8.2: /active is observable). */
  onStatusChange: ((group: string) => void) | undefined;

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
      for (const member of manager.memberNames) if (!nodes.has(member)) nodes.set(member, { roles: SENDING_ROLES });
      const stale = g.stale?.map((set) => ({ num: set.num, senderIds: [...set.senderIds] })) ?? [{ num: manager.keyGeneration, senderIds: [] }];
      this.#groups.set(manager.name, { manager, nodes, stale, active: g.active ?? true });
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
        ...(g.active ? {} : { active: false }),
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
    if (!group.active) return inactive(groupName);
    const request = decodeMap(payload);
    const scope = request?.get(GroupParam.scope);
    if (request === undefined || !isBytes(scope)) return this.#challengeAnswer(client, group, 'the Join Request needs a scope');
    const wanted = requestedRoles(scope, groupName);
    if (typeof wanted === 'string') return this.#challengeAnswer(client, group, wanted);
    // RFC 9594 §4.3.1: "If this is not the case, the KDC MUST reply with a 4.03 (Forbidden)".
    if ((wanted & ~granted) !== 0) return forbidden(`the access token does not grant ${roleNames(wanted & ~granted)} in ${groupName}`);
    if ((wanted & bit(ROLE.monitor)) !== 0 && (wanted & SENDING_ROLES) !== 0) return this.#challengeAnswer(client, group, 'monitor cannot be combined with requester or responder (key-groupcomm-oscore §6.1)');
    if ((wanted & SENDING_ROLES) === 0) return this.#challengeAnswer(client, group, 'this Group Manager admits requesters and responders only');
    const nC = request.get(GroupParam.cnonce);
    if (!isBytes(nC)) return this.#challengeAnswer(client, group, 'the Join Request needs a cnonce');
    const credential = request.get(GroupParam.client_cred);
    const evidence = request.get(GroupParam.client_cred_verify);
    if (!isBytes(credential) || !isBytes(evidence) || credential.length === 0 || evidence.length === 0) return this.#challengeAnswer(client, group, 'the Join Request needs client_cred and client_cred_verify');
    const credentialFilter = request.has(GroupParam.get_creds) ? credentialFilterOf(request.get(GroupParam.get_creds), true) : undefined;
    if (typeof credentialFilter === 'string') return this.#challengeAnswer(client, group, credentialFilter);
    const nS = this.#challenges.get(client.id);
    if (nS === undefined) return this.#challengeAnswer(client, group, 'no kdcchallenge for this client: use the one in this response');
    const refusal = credentialRefusal(group, credential, clientPopInput(scope, nS, nC), evidence);
    if (refusal !== undefined) return refusal;
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
    group.nodes.set(node, { client: client.id, roles: wanted, clientChallenge: toHex(nC), scope: toHex(scope) });
    this.#options.log?.(`${client.id} joined ${groupName} as ${node} (${roleNames(wanted)}), Sender ID ${senderId || '(empty)'}`);
    this.#changed();

    const creds = credentialFilter !== undefined ? credentialEntries(group, node, credentialFilter ?? undefined) : undefined;
    const body = new Map<number, unknown>([
      [GroupParam.gkty, GROUP_OSCORE_KEY_TYPE],
      [GroupParam.key, keyMaterialOf(group, senderId)],
      [GroupParam.num, group.manager.keyGeneration],
      [GroupParam.ace_groupcomm_profile, COAP_GROUP_OSCORE_APP],
      [GroupParam.exi, this.#keyLifetime()],
      ...(creds !== undefined ? creds : []),
      [GroupParam.group_policies, new Map(GROUP_POLICIES)],
      ...kdcProof(group, nC, this.#random),
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
    return queries.getKeyMaterial(this.#at(client, groupName));
  }

  /** GET /ace-group/GROUPNAME/creds (RFC 9594 §4.4.2): every member's credential, role and Sender ID; members and signature verifiers. */
  credentials(client: GroupClient, groupName: string): CoapResponse {
    return queries.getCredentials(this.#at(client, groupName));
  }

  /** FETCH /ace-group/GROUPNAME/creds (RFC 9594 §4.4.1): the credentials of the members a 'get_creds' filter selects. */
  selectedCredentials(client: GroupClient, groupName: string, payload: Uint8Array): CoapResponse {
    return queries.fetchCredentials(this.#at(client, groupName), payload);
  }

  /** GET /ace-group/GROUPNAME/num (RFC 9594 §4.7): the version of the keying material. */
  version(client: GroupClient, groupName: string): CoapResponse {
    return queries.getVersion(this.#at(client, groupName));
  }

  /** GET /ace-group/GROUPNAME/nodes/NODENAME (RFC 9594 §4.8.1): the keying material with this node's Sender ID. */
  nodeMaterial(client: GroupClient, groupName: string, node: string): CoapResponse {
    return queries.getNodeMaterial(this.#at(client, groupName), node);
  }

  /** GET /ace-group/GROUPNAME/kdc-cred (RFC 9594 §4.5.1): the Group Manager's credential with PoP over the member's join N_C. */
  kdcCredential(client: GroupClient, groupName: string): CoapResponse {
    return queries.getKdcCredential(this.#at(client, groupName));
  }

  /** FETCH /ace-group/GROUPNAME/kdc-cred (key-groupcomm-oscore §8.1.1): the same for a signature verifier's fresh N_C. */
  kdcCredentialForVerifier(client: GroupClient, groupName: string, payload: Uint8Array): CoapResponse {
    return queries.fetchKdcCredential(this.#at(client, groupName), payload);
  }

  /** GET /ace-group/GROUPNAME/verif-data (key-groupcomm-oscore §8.3.1): what a signature verifier needs. */
  verificationData(client: GroupClient, groupName: string): CoapResponse {
    return queries.getVerificationData(this.#at(client, groupName));
  }

  /** FETCH /ace-group/GROUPNAME/stale-sids (key-groupcomm-oscore §8.4.1): the Sender IDs gone stale since a version. */
  staleSenderIds(client: GroupClient, groupName: string, payload: Uint8Array): CoapResponse {
    return queries.fetchStaleSenderIds(this.#at(client, groupName), payload);
  }

  /** GET /ace-group/GROUPNAME/policies (RFC 9594 §4.6.1). */
  policies(client: GroupClient, groupName: string): CoapResponse {
    return queries.getPolicies(this.#at(client, groupName));
  }

  /** GET /ace-group/GROUPNAME/active (key-groupcomm-oscore §8.2.1): whether the group is active; observable. */
  status(client: GroupClient, groupName: string): CoapResponse {
    return queries.getStatus(this.#at(client, groupName));
  }

  /** FETCH /ace-group (RFC 9594 §4.2.1): group names and URIs by current Gid, for the groups the client's token names. */
  groupNamesOf(client: GroupClient, payload: Uint8Array): CoapResponse {
    return queries.fetchGroupNames(this.#groups.values(), client, payload);
  }

  #at(client: GroupClient, groupName: string): GroupAt {
    return { group: this.#groups.get(groupName), groupName, client, keyLifetime: this.#keyLifetime(), random: this.#random };
  }

  /**
   * PUT (RFC 9594 §4.8.2) or POST (key-groupcomm-oscore §9.2, §8.5 Table 2) to
   * /ace-group/GROUPNAME/nodes/NODENAME, empty: the Key Renewal Request of a member that, e.g., ran
   * out of Sender Sequence Numbers. It gets a new Sender ID, not used under the current Gid, in
   * 'group_SenderId'; the old one joins the current set of stale Sender IDs (§7.1). No rekey.
   */
  renewSenderId(client: GroupClient, groupName: string, node: string, payload: Uint8Array): CoapResponse {
    const found = ownNodeOf(this.#at(client, groupName), node);
    if ('code' in found) return found;
    const { group } = found;
    if (!group.active) return inactive(groupName);
    if (((group.nodes.get(node)?.roles ?? 0) & SENDING_ROLES) === 0) return problem(ResponseCode.BadRequest, GroupError.inconsistentRoles, 'a monitor has no Sender ID to renew');
    if (payload.length > 0) return { code: ResponseCode.BadRequest, payload: 'a Key Renewal Request has no payload', maxAge: 0 };
    const record = group.nodes.get(node)!;
    const version = group.manager.keyGeneration;
    const renewals = record.renewals?.num === version ? record.renewals.count : 0;
    if (renewals >= MAX_RENEWALS_PER_VERSION) {
      return problem(ResponseCode.ServiceUnavailable, GroupError.noNodeIdentifiers, `${node} renewed its Sender ID ${renewals} times under this keying material; the next rekey allows more`);
    }
    let renewed: { previous: string; senderId: string };
    try {
      renewed = group.manager.renewSenderId(node);
    } catch (e) {
      if (e instanceof OscoreConfigError) return problem(ResponseCode.ServiceUnavailable, GroupError.noNodeIdentifiers, e.message);
      throw e;
    }
    record.renewals = { num: version, count: renewals + 1 };
    recordStale(group.stale, version, renewed.previous);
    this.#options.log?.(`${groupName}: ${node} renewed its Sender ID ${renewed.previous || '(empty)'} → ${renewed.senderId || '(empty)'}`);
    this.#changed();
    return answer(ResponseCode.Content, [[GroupParam.group_senderId, fromHex(renewed.senderId)]]);
  }

  /**
   * POST /ace-group/GROUPNAME/nodes/NODENAME/cred (RFC 9594 §4.9.1, key-groupcomm-oscore §9.4): a
   * member's new authentication credential, with PoP over the scope of its latest Join Request,
   * N_S and a new N_C. Without a stored N_S: 4.00 with a new 'kdcchallenge' to use.
   */
  uploadCredential(client: GroupClient, groupName: string, node: string, payload: Uint8Array): CoapResponse {
    const found = ownNodeOf(this.#at(client, groupName), node);
    if ('code' in found) return found;
    const { group } = found;
    if (!group.active) return inactive(groupName);
    const record = group.nodes.get(node)!;
    if ((record.roles & SENDING_ROLES) === 0) return problem(ResponseCode.BadRequest, GroupError.inconsistentRoles, 'a monitor has no authentication credential in the group');
    const request = decodeMap(payload);
    const credential = request?.get(GroupParam.client_cred);
    const nC = request?.get(GroupParam.cnonce);
    const evidence = request?.get(GroupParam.client_cred_verify);
    if (!isBytes(credential) || !isBytes(nC) || !isBytes(evidence) || credential.length === 0 || nC.length === 0 || evidence.length === 0) {
      return { code: ResponseCode.BadRequest, payload: 'the request needs client_cred, cnonce and client_cred_verify, none empty', maxAge: 0 };
    }
    if (record.scope === undefined) return { code: ResponseCode.BadRequest, payload: 'no Join Request scope is stored for this member: join again', maxAge: 0 };
    const nS = this.#challenges.get(client.id);
    if (nS === undefined) return badRequestMap([[GroupParam.kdcchallenge, this.#challenges.issue(client.id)]]);
    const refusal = credentialRefusal(group, credential, clientPopInput(fromHex(record.scope), nS, nC), evidence);
    if (refusal !== undefined) return refusal;
    this.#challenges.forget(client.id);
    group.manager.replaceCredential(node, credential);
    this.#options.log?.(`${groupName}: ${node} uploaded a new authentication credential`);
    this.#changed();
    return { code: ResponseCode.Changed, maxAge: 0 };
  }

  /** DELETE /ace-group/GROUPNAME/nodes/NODENAME (RFC 9594 §4.8.3): leave the group; the group is rekeyed. */
  leave(client: GroupClient, groupName: string, node: string): CoapResponse {
    const found = ownNodeOf(this.#at(client, groupName), node);
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

  /**
   * Makes a group active or inactive (key-groupcomm-oscore §8.2 leaves how to the administrator
   * interface; here `coapsec group-manager status`). While inactive, joins, Key Renewal and
   * credential uploads get 5.03 error 9, and members observing /active learn of it.
   */
  setActive(groupName: string, active: boolean): void {
    const group = this.#groups.get(groupName);
    if (group === undefined) throw new OscoreConfigError(`no group ${groupName}`);
    if (group.active === active) return;
    group.active = active;
    this.#options.log?.(`${groupName} is now ${active ? 'active' : 'inactive'}`);
    this.#changed();
    this.onStatusChange?.(groupName);
  }

  isActive(groupName: string): boolean | undefined {
    return this.#groups.get(groupName)?.active;
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
    return tokenTransferEntries({
      groups,
      wantsSignInfo,
      signInfoOf: (g) => signInfo(g.manager.name, g.manager.toJSON().algorithms.signature!),
      joinsWithCredential: (g) => ((grantedRoles({ id: clientId, scope }, g.manager.name) ?? 0) & SENDING_ROLES) !== 0,
      issueChallenge: () => this.#challenges.issue(clientId),
    });
  }

  #challengeAnswer(client: GroupClient, group: Group, why: string): CoapResponse {
    const challenge = this.#challenges.issue(client.id);
    const signature = group.manager.toJSON().algorithms.signature!;
    this.#options.log?.(`join of ${group.manager.name} by ${client.id} refused with a new kdcchallenge: ${why}`);
    return badRequestMap([[GroupParam.sign_info, signInfo(group.manager.name, signature)], [GroupParam.kdcchallenge, challenge]]);
  }

  #keyLifetime(): number {
    return this.#options.keyLifetime ?? 86400;
  }

  #changed(): void {
    this.#options.onChange?.(this.toJSON());
  }
}
