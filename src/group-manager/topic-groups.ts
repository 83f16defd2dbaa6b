/**
 * The KDC of the pub-sub profile (draft-ietf-ace-coap-pubsub-profile §4, on RFC 9594) as a sans-IO
 * core: one security group per topic, joined by publishers and subscribers whose access token's
 * AIF-PUBSUB-GROUPCOMM scope (§3.4.1, scope tokens "TOPIC:publish", "TOPIC:read") grants it. A
 * member gets the topic's group key (a COSE_Key whose kid is the Gid), the signature algorithm,
 * and on request the publishers' credentials; a publisher also gets its Sender ID, and only a
 * publisher is registered with a credential, after proving possession of its private key
 * (§4.1.1.1, §4.1.1.2). topic-resources.ts puts it on CoAP behind an ACE resource server.
 *
 * Each topic's state is the offline KDC state of src/pubsub-protection/key-distribution.ts
 * (generations, retired Gids, Sender IDs never reused), with a node's entry holding a publisher's
 * own CCS and no private key. Removing a member, or a member leaving, rekeys the topic (§5: new key,
 * new Gid, version + 1, Sender IDs kept), so a removed subscriber cannot read what follows (R5.7).
 *
 * Bounded state a client can make us allocate: one pending 'kdcchallenge' per client identity (at
 * most 256, kdc-challenges.ts, the oldest forgotten first); one node per client identity and topic, at most
 * `maxNodes` per topic.
 */
import { randomBytes } from 'node:crypto';
import { ResponseCode } from '../coap/codes.js';
import { OptionNumber } from '../coap/options.js';
import { encodeCbor, fromHex, isBytes, toHex, type CborValue } from '../cose/cbor.js';
import { verifyBytes } from '../cose/sign.js';
import { aifScopeFormat, PUBSUB_PERMISSIONS, splitScopeToken } from '../ace/scope-format.js';
import { credentialFitsSignature, parseAuthCredential } from '../group-oscore/credential.js';
import { OscoreConfigError } from '../oscore/errors.js';
import { assignSenderId, createTopicGroup, currentGroupKey, parseKdcState, rekey as rekeyTopic, removeMember, type KdcState, type MemberRole } from '../pubsub-protection/key-distribution.js';
import { PubSubKeyError } from '../pubsub-protection/key-material.js';
import type { CoapResponse } from '../server/resource.js';
import { clientPopInput, signInfo } from './key-material.js';
import { KdcChallenges, tokenTransferEntries } from './kdc-challenges.js';
import { decodeMap, forbidden, type GroupClient } from './online-manager.js';
import { ACE_GROUPCOMM_CBOR, badRequestMap, GroupError, GroupParam, problem } from './parameters.js';
import { COAP_GROUP_PUBSUB_APP, encodeTopicKey, GROUP_PUBSUB_KEY_TYPE } from './pubsub-parameters.js';

/** The persisted state: each topic's KDC state and which client each node is. */
export interface TopicKdcState {
  version: 1;
  nextNode: number;
  topics: Array<{ group: KdcState; clients: Record<string, string> }>;
}

export interface TopicKdcOptions {
  readonly random?: (n: number) => Uint8Array;
  /** 'exi' (seconds the members may use the material before checking again). Default 86400. */
  readonly keyLifetime?: number;
  /** Members per topic at most; past it a join gets 5.03. Default 1024. */
  readonly maxNodes?: number;
  /** Called after every change of the state (to persist it). */
  readonly onChange?: (state: TopicKdcState) => void;
  /** One line per join, leave, removal and rekey (never a key). */
  readonly log?: (line: string) => void;
}

interface Topic {
  readonly group: KdcState;
  /** NODENAME → the client identity that joined as it. */
  readonly clients: Map<string, string>;
}

const PUBSUB_SCOPES = aifScopeFormat(PUBSUB_PERMISSIONS);
const PERM = PUBSUB_PERMISSIONS as { appgroup: number; publish: number; read: number; delete: number };
const bit = (permission: number): number => 1 << permission;
const PUBLISH = bit(PERM.publish);
const READ = bit(PERM.read);

export class TopicKdc {
  readonly #topics = new Map<string, Topic>();
  readonly #challenges: KdcChallenges;
  readonly #options: TopicKdcOptions;
  readonly #random: (n: number) => Uint8Array;
  #nextNode: number;
  /** Called with a topic after its keying material changed (a rekey). */
  onRekey: ((topic: string) => void) | undefined;
  /** Called with a topic after its publishers changed without a rekey (a publisher joined). */
  onPublishersChanged: ((topic: string) => void) | undefined;

  constructor(state: TopicKdcState, options: TopicKdcOptions = {}) {
    if (state.version !== 1 || !Array.isArray(state.topics)) throw new OscoreConfigError('not a topic KDC state (version 1)');
    this.#options = options;
    this.#random = options.random ?? randomBytes;
    this.#challenges = new KdcChallenges(this.#random);
    this.#nextNode = state.nextNode;
    for (const t of state.topics) {
      if (typeof t !== 'object' || t === null || typeof t.clients !== 'object' || t.clients === null) throw new OscoreConfigError('each topic of a KDC state has a group and its clients');
      const group = parseKdcState(JSON.stringify(t.group));
      this.#topics.set(group.topic, { group, clients: new Map(Object.entries(t.clients)) });
    }
  }

  /** A KDC for new topic groups (version 0 each, §4.1.2). */
  static create(topics: readonly string[], options?: TopicKdcOptions & { aead?: number; signAlg?: number }): TopicKdc {
    if (new Set(topics).size !== topics.length) throw new OscoreConfigError('a topic is named twice');
    const groups = topics.map((topic) => {
      if (!/^[A-Za-z0-9._~-]{1,64}$/.test(topic)) throw new OscoreConfigError(`topic group "${topic}": a URI path segment of 1-64 letters, digits and . _ ~ -`);
      return { group: createTopicGroup(topic, { initialVersion: 0, ...(options?.aead !== undefined ? { aead: options.aead } : {}), ...(options?.signAlg !== undefined ? { signAlg: options.signAlg } : {}) }), clients: {} };
    });
    return new TopicKdc({ version: 1, nextNode: 1, topics: groups }, options);
  }

  toJSON(): TopicKdcState {
    return { version: 1, nextNode: this.#nextNode, topics: [...this.#topics.values()].map((t) => ({ group: structuredClone(t.group), clients: Object.fromEntries(t.clients) })) };
  }

  get topicNames(): string[] {
    return [...this.#topics.keys()];
  }

  /** Every scope token a token for this KDC may carry (delete is accepted and ignored, §3.4.1). */
  get scopeTokens(): string[] {
    return this.topicNames.flatMap((t) => ['publish', 'read', 'delete'].map((p) => `${t}:${p}`));
  }

  nodes(topic: string): string[] {
    return [...(this.#topics.get(topic)?.clients.keys() ?? [])];
  }

  keyVersion(topic: string): number | undefined {
    return this.#topics.get(topic)?.group.num;
  }

  /**
   * POST /ace-group/TOPIC: the Join Request (§4.1.1). A request without a scope gets 4.00 with
   * sign_info and a new kdcchallenge (§4.1.3), which is how a publisher learns N_S and the group's
   * signature algorithm before proving possession of its key.
   */
  join(client: GroupClient, name: string, payload: Uint8Array): CoapResponse {
    const topic = this.#topics.get(name);
    if (topic === undefined) return { code: ResponseCode.NotFound, payload: `no topic group ${name}` };
    const granted = grantedPermissions(client, name);
    if (granted === undefined) return { code: ResponseCode.Unauthorized, payload: 'no access token' };
    if (granted === 0) return forbidden(`the access token grants neither publish nor read in ${name}`);
    const request = decodeMap(payload);
    const scope = request?.get(GroupParam.scope);
    if (request === undefined || !isBytes(scope)) return this.#challengeAnswer(client, topic, 'the Join Request needs a scope');
    const wanted = requestedPermissions(scope, name);
    if (typeof wanted === 'string') return this.#challengeAnswer(client, topic, wanted);
    // RFC 9594 §4.3.1: a role the token does not grant is 4.03.
    if ((wanted & ~granted) !== 0) return forbidden(`the access token does not grant ${permissionNames(wanted & ~granted)} in ${name}`);
    const roles: MemberRole[] = [...((wanted & PUBLISH) !== 0 ? ['publisher' as const] : []), ...((wanted & READ) !== 0 ? ['subscriber' as const] : [])];
    let credential: Uint8Array | undefined;
    if (roles.includes('publisher')) {
      const proven = this.#provenCredential(client, topic, scope, request);
      if (!(proven instanceof Uint8Array)) return proven;
      credential = proven;
    }
    // §4.1.2: a client joining again keeps its NODENAME; a publisher gets a new Sender ID.
    const previous = [...topic.clients].find(([, id]) => id === client.id)?.[0];
    if (previous === undefined && topic.clients.size >= (this.#options.maxNodes ?? 1024)) return problem(ResponseCode.ServiceUnavailable, GroupError.noNodeIdentifiers, `${name} has its maximum of members`);
    let senderId: Uint8Array | undefined;
    if (credential !== undefined) {
      try {
        senderId = assignSenderId(topic.group);
      } catch (e) {
        // §4.1.3: no Sender ID left is 5.03 with error 4.
        if (e instanceof PubSubKeyError) return problem(ResponseCode.ServiceUnavailable, GroupError.noNodeIdentifiers, e.message);
        throw e;
      }
    }
    const node = previous ?? `n${this.#nextNode++}`;
    topic.group.members[node] = { roles, ...(senderId !== undefined ? { sender_id: toHex(senderId), cred: toHex(credential!) } : {}) };
    topic.clients.set(node, client.id);
    this.#options.log?.(`${client.id} joined topic group ${name} as ${node} (${roles.join('+')})${senderId !== undefined ? `, Sender ID ${toHex(senderId)}` : ''}`);
    this.#changed();
    if (senderId !== undefined) this.onPublishersChanged?.(name);
    return {
      code: previous !== undefined ? ResponseCode.Changed : ResponseCode.Created,
      contentFormat: ACE_GROUPCOMM_CBOR,
      payload: encodeCbor(new Map([...this.#keyEntries(topic, senderId), ...(request.has(GroupParam.get_creds) ? this.#publisherEntries(topic) : [])])),
      options: ['ace-group', name, 'nodes', node].map((segment) => ({ number: OptionNumber.LocationPath, value: new TextEncoder().encode(segment) })),
    };
  }

  /** GET /ace-group/TOPIC (§4.2.1): the current keying material, no Sender ID; observable. */
  keyMaterial(client: GroupClient, name: string): CoapResponse {
    const found = this.#member(client, name);
    return 'code' in found ? found : this.#answer(this.#keyEntries(found.topic, undefined));
  }

  /** GET /ace-group/TOPIC/creds (§4.2.1): the publishers' credentials and Sender IDs ('peer_roles' omitted). */
  credentials(client: GroupClient, name: string): CoapResponse {
    const found = this.#member(client, name);
    return 'code' in found ? found : this.#answer([...this.#publisherEntries(found.topic), [GroupParam.num, found.topic.group.num]]);
  }

  /** GET /ace-group/TOPIC/num. */
  version(client: GroupClient, name: string): CoapResponse {
    const found = this.#member(client, name);
    return 'code' in found ? found : { code: ResponseCode.Content, contentFormat: ACE_GROUPCOMM_CBOR, payload: encodeCbor(found.topic.group.num), maxAge: 0 };
  }

  /** GET /ace-group/TOPIC/nodes/NODE (§4.2.1): the keying material with this publisher's Sender ID. */
  nodeMaterial(client: GroupClient, name: string, node: string): CoapResponse {
    const found = this.#ownNode(client, name, node);
    if ('code' in found) return found;
    const senderId = found.topic.group.members[node]?.sender_id;
    return this.#answer(this.#keyEntries(found.topic, senderId !== undefined ? fromHex(senderId) : undefined));
  }

  /** DELETE /ace-group/TOPIC/nodes/NODE (§4.2.4): leave; the topic is rekeyed. */
  leave(client: GroupClient, name: string, node: string): CoapResponse {
    const found = this.#ownNode(client, name, node);
    if ('code' in found) return found;
    this.#removeNode(found.topic, node, 'left');
    return { code: ResponseCode.Deleted };
  }

  /** The KDC removes a member (RFC 9594 §5, an administrator's decision) and rekeys the topic. */
  removeNode(name: string, node: string): void {
    const topic = this.#topics.get(name);
    if (topic === undefined || !topic.clients.has(node)) throw new OscoreConfigError(`topic group ${name} has no node ${node}`);
    this.#removeNode(topic, node, 'removed by the KDC');
  }

  /** A rekey without a membership change (§5: on a schedule, or as the key nears its end). */
  rekey(name: string): void {
    const topic = this.#topics.get(name);
    if (topic === undefined) throw new OscoreConfigError(`no topic group ${name}`);
    rekeyTopic(topic.group);
    this.#rekeyed(topic, 'rekeyed');
  }

  #removeNode(topic: Topic, node: string, why: string): void {
    topic.clients.delete(node);
    removeMember(topic.group, node);
    this.#rekeyed(topic, `${node} ${why}`);
  }

  #rekeyed(topic: Topic, why: string): void {
    this.#options.log?.(`${topic.group.topic}: ${why}; new Gid ${toHex(currentGroupKey(topic.group).gid)}, version ${topic.group.num}`);
    this.#changed();
    this.onRekey?.(topic.group.topic);
  }

  /** §4.1.1.1, §4.1.1.2: the publisher's CCS, checked against the group's algorithm and its PoP; or the refusal. */
  #provenCredential(client: GroupClient, topic: Topic, scope: Uint8Array, request: Map<CborValue, CborValue>): Uint8Array | CoapResponse {
    const nC = request.get(GroupParam.cnonce);
    const credential = request.get(GroupParam.client_cred);
    const evidence = request.get(GroupParam.client_cred_verify);
    // §4.1.3: a publisher without client_cred (or without its PoP) gets 4.00. An empty client_cred
    // would ask us to reuse a stored one; this KDC keeps none across joins, so it is refused too.
    if (!isBytes(nC) || !isBytes(credential) || credential.length === 0 || !isBytes(evidence)) return this.#challengeAnswer(client, topic, 'a publisher\'s Join Request needs cnonce, client_cred and client_cred_verify');
    const nS = this.#challenges.get(client.id);
    if (nS === undefined) return this.#challengeAnswer(client, topic, 'no kdcchallenge for this client: use the one in this response');
    const signAlg = topic.group.sign_alg;
    let publicKey;
    try {
      const parsed = parseAuthCredential(credential);
      if (!credentialFitsSignature(parsed, signAlg)) throw new Error('wrong key type');
      publicKey = parsed.publicKey;
    } catch {
      return problem(ResponseCode.BadRequest, GroupError.incompatibleCredential, `client_cred is not a CCS with a key for signature algorithm ${signAlg}`);
    }
    if (!verifyBytes(signAlg, publicKey, clientPopInput(scope, nS, nC), evidence)) return problem(ResponseCode.BadRequest, GroupError.invalidPop, 'client_cred_verify does not verify');
    this.#challenges.forget(client.id);
    return credential;
  }

  /** gkty, key, num, exi, ace_groupcomm_profile (§4.1.2; 'exp' when the generation has one). */
  #keyEntries(topic: Topic, senderId: Uint8Array | undefined): Array<readonly [number, unknown]> {
    const g = topic.group;
    return [
      [GroupParam.gkty, GROUP_PUBSUB_KEY_TYPE],
      [GroupParam.key, encodeTopicKey({ groupKey: currentGroupKey(g), signAlg: g.sign_alg, ...(senderId !== undefined ? { senderId } : {}) })],
      [GroupParam.num, g.num],
      ...(g.exp !== undefined ? [[GroupParam.exp, g.exp] as const] : []),
      [GroupParam.exi, this.#options.keyLifetime ?? 86400],
      [GroupParam.ace_groupcomm_profile, COAP_GROUP_PUBSUB_APP],
    ];
  }

  /** creds and peer_identifiers of the publishers only (§4.1.2, REQ25). */
  #publisherEntries(topic: Topic): Array<readonly [number, unknown]> {
    const publishers = Object.values(topic.group.members).filter((m) => m.sender_id !== undefined && m.cred !== undefined);
    return [
      [GroupParam.creds, publishers.map((m) => fromHex(m.cred!))],
      [GroupParam.peer_identifiers, publishers.map((m) => fromHex(m.sender_id!))],
    ];
  }

  #member(client: GroupClient, name: string): { topic: Topic; node: string } | CoapResponse {
    const topic = this.#topics.get(name);
    if (topic === undefined) return { code: ResponseCode.NotFound, payload: `no topic group ${name}` };
    const granted = grantedPermissions(client, name);
    if (granted === undefined) return { code: ResponseCode.Unauthorized, payload: 'no access token' };
    if (granted === 0) return forbidden(`the access token grants neither publish nor read in ${name}`);
    const node = [...topic.clients].find(([, id]) => id === client.id)?.[0];
    // RFC 9594 §4.3.2: a client that is not a current member gets 4.03 with error 0.
    if (node === undefined) return problem(ResponseCode.Forbidden, GroupError.onlyMembers, `not a member of ${name}`);
    return { topic, node };
  }

  #ownNode(client: GroupClient, name: string, node: string): { topic: Topic } | CoapResponse {
    const found = this.#member(client, name);
    if ('code' in found) return found;
    if (found.node !== node) return found.topic.clients.has(node) ? forbidden(`${node} is another member`) : { code: ResponseCode.NotFound, payload: `no node ${node}` };
    return { topic: found.topic };
  }

  /**
   * The Token Transfer Response's additions (RFC 9594 §3.3, pubsub profile §3.6: "the KDC MUST
   * include the 'kdcchallenge' parameter" for a publisher): a new N_S, kept for the Join Request,
   * when the token grants publish in a topic (a subscriber joins without a credential), and
   * 'sign_info' for the token's topics when the client asked for it.
   */
  tokenTransfer(clientId: string, scope: readonly string[], wantsSignInfo: boolean): Array<readonly [number, unknown]> {
    const topics = [...new Set(scope.map((token) => splitScopeToken(token)?.name))].flatMap((name) => {
      const topic = name === undefined ? undefined : this.#topics.get(name);
      return topic === undefined ? [] : [topic];
    });
    return tokenTransferEntries({
      groups: topics,
      wantsSignInfo,
      signInfoOf: (t) => signInfo(t.group.topic, t.group.sign_alg),
      joinsWithCredential: (t) => ((grantedPermissions({ id: clientId, scope }, t.group.topic) ?? 0) & PUBLISH) !== 0,
      issueChallenge: () => this.#challenges.issue(clientId),
    });
  }

  #challengeAnswer(client: GroupClient, topic: Topic, why: string): CoapResponse {
    const challenge = this.#challenges.issue(client.id);
    this.#options.log?.(`join of topic group ${topic.group.topic} by ${client.id} refused with a new kdcchallenge: ${why}`);
    return badRequestMap([[GroupParam.sign_info, signInfo(topic.group.topic, topic.group.sign_alg)], [GroupParam.kdcchallenge, challenge]]);
  }

  #answer(entries: Array<readonly [number, unknown]>): CoapResponse {
    return { code: ResponseCode.Content, contentFormat: ACE_GROUPCOMM_CBOR, payload: encodeCbor(new Map(entries)), maxAge: 0 };
  }

  #changed(): void {
    this.#options.onChange?.(this.toJSON());
  }
}

/** The publish and read permissions the client's token grants in `topic`; undefined without a token. */
function grantedPermissions(client: GroupClient, topic: string): number | undefined {
  if (client.scope === undefined) return undefined;
  let granted = 0;
  for (const token of client.scope) {
    const parts = splitScopeToken(token);
    if (parts?.name === topic && (parts.role === 'publish' || parts.role === 'read')) granted |= bit(PERM[parts.role]);
  }
  return granted;
}

/**
 * The Join Request's scope: one entry, for this topic's security group (§4.1.1), with publish
 * and/or read. Delete is ignored (§3.4.1); Admin, AppGroup (which names a topic, not its security
 * group) and unknown bits make it malformed (§4.1.3: 4.00). A string says why.
 */
function requestedPermissions(scope: Uint8Array, topic: string): number | string {
  let tokens: string[];
  try {
    tokens = PUBSUB_SCOPES.tokens(scope);
  } catch (e) {
    return (e as Error).message;
  }
  let wanted = 0;
  for (const token of tokens) {
    const parts = splitScopeToken(token);
    if (parts?.name !== topic) return `the scope names another group than ${topic}`;
    if (parts.role === 'delete') continue;
    if (parts.role !== 'publish' && parts.role !== 'read') return `the permission ${parts.role} cannot be asked of a topic's security group`;
    wanted |= bit(PERM[parts.role]);
  }
  return wanted === 0 ? 'the scope asks for neither publish nor read' : wanted;
}

function permissionNames(permissions: number): string {
  return Object.entries(PUBSUB_PERMISSIONS).filter(([, b]) => (permissions & bit(b)) !== 0).map(([name]) => name).join('+');
}
