/**
 * The joining node's side (RFC 9594 §4.3.1.1, draft-ietf-ace-key-groupcomm-oscore §6.1, §6.4): get
 * an access token for the group's scope from the AS and post it to the Group Manager (the ACE
 * OSCORE profile, src/ace/client.ts), learn N_S and the group's signature algorithm from the Token
 * Transfer Response (RFC 9594 §3.3; from the 4.00 an empty Join Request brings, §6.2, only when
 * an older Group Manager left them out), prove possession of the member's private key, and turn the
 * Join Response into the member file the Group OSCORE tools use (src/group-oscore/manager.ts).
 * Afterwards: fetch the current keying material and credentials, observe the keying material to
 * learn of rekeys, and leave.
 */
import { randomBytes } from 'node:crypto';
import { ResponseCode } from '../coap/codes.js';
import { OptionNumber } from '../coap/options.js';
import { decodeStrict, encodeCbor, fromHex, isBytes, isInt, toHex, type CborValue } from '../cose/cbor.js';
import { encodeCcs } from '../cose/cwt.js';
import { signBytes, verifyBytes } from '../cose/sign.js';
import { AceClientSecurity } from '../ace/client.js';
import { aifScopeFormat, GROUP_OSCORE_ROLES } from '../ace/scope-format.js';
import type { ClientRequest, ClientResponse, ObserveRequest } from '../client/client.js';
import type { Observation } from '../client/observe.js';
import { VerificationError, type MessageSecurity } from '../client/security.js';
import { ownCredential, parseAuthCredential } from '../group-oscore/credential.js';
import { keyPairFor, type GroupMemberFile } from '../group-oscore/manager.js';
import { clientPopInput, decodeKeyMaterial, kdcPopInput, signatureFromSignInfo, type GroupKeyMaterial } from './key-material.js';
import { ACE_GROUPCOMM_CBOR, describeProblem, GroupParam, TokenTransferParam } from './parameters.js';
import { ContentFormat } from '../coap/content-format.js';
import { ACE_GROUP_PATH } from './resources.js';

/** A join, a refresh or a leave that failed; the message says where and why (never a key). */
export class GroupJoinError extends VerificationError {}

export interface JoinGroupOptions {
  /** Carries every request (a CoapClient). */
  readonly client: { request(request: ClientRequest): Promise<ClientResponse>; observe(uri: string, request?: ObserveRequest): Promise<Observation> };
  /** The Group Manager, scheme://host:port. */
  readonly gmOrigin: string;
  /** The AS's token endpoint. */
  readonly asUri: string;
  /** Protection towards the AS; default the client's own for asUri. */
  readonly asSecurity?: MessageSecurity;
  /** The Group Manager's audience at the AS; default the one its AS Request Creation Hints name. */
  readonly audience?: string;
  readonly group: string;
  /** Default requester and responder. */
  readonly roles?: readonly string[];
  /** The member's CCS and private key; default a new key pair for the group's Signature Algorithm. */
  readonly ownCredential?: { readonly credential: Uint8Array; readonly privateKey: Uint8Array };
  /** The 'sub' of a CCS made here. */
  readonly name?: string;
  readonly log?: (line: string) => void;
}

const GROUP_SCOPES = aifScopeFormat(GROUP_OSCORE_ROLES);

export class GroupMembership {
  #file: GroupMemberFile;
  /** The scope of the Join Request and the latest N_S: a credential upload's PoP input (RFC 9594 §4.9.1). */
  readonly #scope: Uint8Array;
  #nS: Uint8Array;

  private constructor(
    readonly options: JoinGroupOptions,
    readonly security: AceClientSecurity,
    /** NODENAME, from the Join Response's Location-Path. */
    readonly node: string,
    file: GroupMemberFile,
    scope: Uint8Array,
    nS: Uint8Array,
  ) {
    this.#file = file;
    this.#scope = scope;
    this.#nS = nS;
  }

  /** The member file as of the latest join, refresh or notification. */
  get file(): GroupMemberFile {
    return structuredClone(this.#file);
  }

  static async join(options: JoinGroupOptions): Promise<GroupMembership> {
    const roles = options.roles ?? ['requester', 'responder'];
    const scope = GROUP_SCOPES.encode(roles.map((role) => `${options.group}:${role}`)) as Uint8Array;
    const security = new AceClientSecurity({
      client: options.client,
      asUri: options.asUri,
      rsOrigin: options.gmOrigin,
      scope,
      tokenTransferRequest: SIGN_INFO_REQUEST,
      ...(options.asSecurity !== undefined ? { asSecurity: options.asSecurity } : {}),
      ...(options.audience !== undefined ? { audience: options.audience } : {}),
      ...(options.log !== undefined ? { log: options.log } : {}),
    });
    const uri = `${options.gmOrigin}${ACE_GROUP_PATH}/${options.group}`;
    const nC = Uint8Array.from(randomBytes(8));
    let signature = 0;
    let nS: Uint8Array = new Uint8Array(0);
    let own: { readonly credential: Uint8Array; readonly privateKey: Uint8Array } | undefined;
    const response = await postProvenJoin(options.client, uri, security, options.group, 'the Group Manager', (challenge) => {
      signature = challenge.signature;
      nS = challenge.nS;
      own ??= options.ownCredential ?? newCredential(signature, options.name ?? `member of ${options.group}`);
      const mine = ownCredential(own.credential, own.privateKey);
      return new Map<number, unknown>([
        [GroupParam.scope, scope],
        [GroupParam.get_creds, null],
        [GroupParam.client_cred, own.credential],
        [GroupParam.cnonce, nC],
        [GroupParam.client_cred_verify, signBytes(signature, mine.privateKey, clientPopInput(scope, challenge.nS, nC))],
      ]);
    });
    if (own === undefined) throw new GroupJoinError('no Join Request was sent');
    if (response.code !== ResponseCode.Created && response.code !== ResponseCode.Changed) throw new GroupJoinError(`the Join Request to ${options.group} was refused: ${describe(response)}`);
    const body = asMap(response.payload, 'the Join Response');
    const gmCredential = body.get(GroupParam.kdc_cred);
    const nKdc = body.get(GroupParam.kdc_nonce);
    const evidence = body.get(GroupParam.kdc_cred_verify);
    if (!isBytes(gmCredential) || !isBytes(nKdc) || !isBytes(evidence)) throw new GroupJoinError('the Join Response lacks kdc_cred, kdc_nonce or kdc_cred_verify');
    // RFC 9594 §4.3.1: "considers the group joining unsuccessful in case of failed verification".
    if (!verifyBytes(signature, parseAuthCredential(gmCredential).publicKey, kdcPopInput(nC, nKdc), evidence)) throw new GroupJoinError("the Group Manager's proof of possession (kdc_cred_verify) does not verify");
    const material = keyMaterialOf(body);
    if (material.senderId === undefined) throw new GroupJoinError('the Join Response assigns no Sender ID');
    const node = locationNode(response);
    const file: GroupMemberFile = {
      version: 1,
      group: options.group,
      gid: material.gid,
      keyGeneration: numOf(body),
      masterSecret: material.masterSecret,
      masterSalt: material.masterSalt,
      algorithms: material.algorithms,
      senderId: material.senderId,
      credential: toHex(own.credential),
      privateKey: toHex(own.privateKey),
      gmCredential: toHex(gmCredential),
      members: membersOf(body),
    };
    options.log?.(`joined ${options.group} as ${node}: Sender ID ${material.senderId || '(empty)'}, Gid ${material.gid}, key generation ${file.keyGeneration}`);
    return new GroupMembership(options, security, node, file, scope, nS);
  }

  /** GET the keying material (RFC 9594 §4.3.2) and the members' credentials (§4.4.2): the member file now. */
  async refresh(): Promise<GroupMemberFile> {
    await this.#apply(await this.#get(''));
    return this.file;
  }

  /**
   * Observes the group's keying material (RFC 9594 §6): each notification with a new version
   * refreshes the credentials and calls `onUpdate` with the new member file; an error notification
   * (this member was removed: 4.03) calls `onEnd` with it. Returns the observation to cancel.
   */
  async watch(onUpdate: (file: GroupMemberFile) => void, onEnd?: (why: string) => void): Promise<Observation> {
    const observation = await this.options.client.observe(this.#uri(''), { security: this.security });
    void (async () => {
      try {
        for await (const notification of observation) {
          if (notification.code !== ResponseCode.Content) {
            onEnd?.(describe(notification));
            return;
          }
          const num = numOf(asMap(notification.payload, 'a notification'));
          if (num === this.#file.keyGeneration) continue;
          await this.#apply(notification);
          onUpdate(this.file);
        }
        onEnd?.('the observation ended');
      } catch (error) {
        onEnd?.((error as Error).message);
      }
    })();
    return observation;
  }

  /** DELETE /ace-group/GROUPNAME/nodes/NODENAME (RFC 9594 §4.8.3). */
  async leave(): Promise<void> {
    const response = await this.options.client.request({ method: 'DELETE', uri: this.#uri(`/nodes/${this.node}`), security: this.security });
    if (response.code !== ResponseCode.Deleted) throw new GroupJoinError(`leaving ${this.options.group} was refused: ${describe(response)}`);
  }

  /** GET /ace-group/GROUPNAME/active (key-groupcomm-oscore §9.9): whether the group is active. */
  async isActive(): Promise<boolean> {
    const response = await this.#get('/active');
    let value: CborValue;
    try {
      value = decodeStrict(response.payload);
    } catch {
      throw new GroupJoinError('the group status is not CBOR');
    }
    if (typeof value !== 'boolean') throw new GroupJoinError('the group status is neither true nor false');
    return value;
  }

  /** GET /ace-group/GROUPNAME/policies (RFC 9594 §4.6.1): the group policies by their labels (GroupPolicy). */
  async policies(): Promise<Map<CborValue, CborValue>> {
    const policies = asMap((await this.#get('/policies')).payload, 'the policies').get(GroupParam.group_policies);
    if (!(policies instanceof Map)) throw new GroupJoinError("the policies response has no 'group_policies' map");
    return policies;
  }

  /**
   * FETCH /ace-group/GROUPNAME/creds (RFC 9594 §4.4.1, key-groupcomm-oscore §9.3): the credentials
   * of the members with these Sender IDs (hex) and/or with every role of one of `roles`; with
   * `exclude`, of the members that have such roles and not these Sender IDs.
   */
  async credentialsOf(filter: { readonly senderIds?: readonly string[]; readonly roles?: ReadonlyArray<readonly string[]>; readonly exclude?: boolean }): Promise<GroupMemberFile['members']> {
    const roleSets = (filter.roles ?? []).map((set) => tpermOf(set));
    const getCreds = [filter.exclude !== true, roleSets, (filter.senderIds ?? []).map((id) => fromHex(id))];
    const response = await this.options.client.request({
      method: 'FETCH',
      uri: this.#uri('/creds'),
      payload: encodeCbor(new Map([[GroupParam.get_creds, getCreds]])),
      contentFormat: ACE_GROUPCOMM_CBOR,
      security: this.security,
    });
    if (response.code !== ResponseCode.Content) throw new GroupJoinError(`FETCH ${ACE_GROUP_PATH}/${this.options.group}/creds was refused: ${describe(response)}`);
    // RFC 9594 §4.4.1: nobody selected is a zero-length byte string.
    if (isEmptyByteString(response.payload)) return [];
    return membersOf(asMap(response.payload, 'the credentials'));
  }

  /**
   * The Key Renewal Request (RFC 9594 §4.8.2, key-groupcomm-oscore §9.2): a new Sender ID, e.g. when
   * the Sender Sequence Numbers run out. The member file takes it; a Sender Context made from the
   * file starts its sequence numbers afresh under the new ID. Returns the new Sender ID (hex).
   */
  async renewSenderId(): Promise<string> {
    const response = await this.options.client.request({ method: 'PUT', uri: this.#uri(`/nodes/${this.node}`), security: this.security });
    if (response.code !== ResponseCode.Content) throw new GroupJoinError(`the Key Renewal Request in ${this.options.group} was refused: ${describe(response)}`);
    const id = asMap(response.payload, 'the Key Renewal Response').get(GroupParam.group_senderId);
    if (!isBytes(id)) throw new GroupJoinError("the Key Renewal Response has no 'group_SenderId'");
    const previous = this.#file.senderId;
    this.#file = { ...this.#file, senderId: toHex(id) };
    this.options.log?.(`${this.options.group}: Sender ID ${previous || '(empty)'} renewed to ${this.#file.senderId || '(empty)'}`);
    return this.#file.senderId;
  }

  /**
   * POST /ace-group/GROUPNAME/nodes/NODENAME/cred (RFC 9594 §4.9.1, key-groupcomm-oscore §9.4): a
   * new authentication credential (default a new key pair) with PoP over the join's scope, N_S and
   * a new N_C. A 4.00 with a new kdcchallenge (the Group Manager keeps N_S only until the join) is
   * answered once with it. The member file takes the new credential and private key.
   */
  async uploadCredential(own?: { readonly credential: Uint8Array; readonly privateKey: Uint8Array }): Promise<void> {
    const signature = this.#file.algorithms.signature;
    if (signature === undefined) throw new GroupJoinError(`${this.options.group} uses no signatures: there is no credential to upload`);
    const next = own ?? newCredential(signature, this.options.name ?? `member of ${this.options.group}`);
    const mine = ownCredential(next.credential, next.privateKey);
    const post = (nS: Uint8Array): Promise<ClientResponse> => {
      const nC = Uint8Array.from(randomBytes(8));
      const body = new Map<number, unknown>([
        [GroupParam.client_cred, next.credential],
        [GroupParam.cnonce, nC],
        [GroupParam.client_cred_verify, signBytes(signature, mine.privateKey, clientPopInput(this.#scope, nS, nC))],
      ]);
      return this.options.client.request({ method: 'POST', uri: this.#uri(`/nodes/${this.node}/cred`), payload: encodeCbor(body), contentFormat: ACE_GROUPCOMM_CBOR, security: this.security });
    };
    let response = await post(this.#nS);
    if (response.code === ResponseCode.BadRequest && response.contentFormat === ACE_GROUPCOMM_CBOR) {
      const fresh = asMap(response.payload, 'the 4.00 to the credential upload').get(GroupParam.kdcchallenge);
      if (isBytes(fresh)) {
        this.#nS = fresh;
        response = await post(fresh);
      }
    }
    if (response.code !== ResponseCode.Changed) throw new GroupJoinError(`the credential upload in ${this.options.group} was refused: ${describe(response)}`);
    this.#file = { ...this.#file, credential: toHex(next.credential), privateKey: toHex(next.privateKey) };
    this.options.log?.(`${this.options.group}: new authentication credential uploaded`);
  }

  async #apply(keyResponse: ClientResponse): Promise<void> {
    const body = asMap(keyResponse.payload, 'the keying material');
    const material = keyMaterialOf(body);
    const creds = asMap((await this.#get('/creds')).payload, 'the credentials');
    const mine = this.#file.senderId;
    this.#file = {
      ...this.#file,
      gid: material.gid,
      keyGeneration: numOf(body),
      masterSecret: material.masterSecret,
      masterSalt: material.masterSalt,
      algorithms: material.algorithms,
      members: membersOf(creds).filter((m) => m.senderId !== mine),
    };
    this.options.log?.(`${this.options.group}: keying material version ${this.#file.keyGeneration}, Gid ${material.gid}, ${this.#file.members.length} other members`);
  }

  async #get(suffix: string): Promise<ClientResponse> {
    const response = await this.options.client.request({ method: 'GET', uri: this.#uri(suffix), security: this.security });
    if (response.code !== ResponseCode.Content) throw new GroupJoinError(`GET ${ACE_GROUP_PATH}/${this.options.group}${suffix} was refused: ${describe(response)}`);
    return response;
  }

  #uri(suffix: string): string {
    return `${this.options.gmOrigin}${ACE_GROUP_PATH}/${this.options.group}${suffix}`;
  }
}

/**
 * FETCH /ace-group (RFC 9594 §4.2.1, key-groupcomm-oscore §9.10): the group names and
 * group-membership URIs for Gids (hex), e.g. the kid context of a message from a group whose name
 * is not known. `security` carries the access token (an AceClientSecurity for the Group Manager).
 */
export async function groupNamesOf(
  client: JoinGroupOptions['client'],
  gmOrigin: string,
  security: MessageSecurity,
  gids: readonly string[],
): Promise<Array<{ readonly gid: string; readonly name: string; readonly uri: string }>> {
  const payload = encodeCbor(new Map([[GroupParam.gid, gids.map((gid) => fromHex(gid))]]));
  const response = await client.request({ method: 'FETCH', uri: `${gmOrigin}${ACE_GROUP_PATH}`, payload, contentFormat: ACE_GROUPCOMM_CBOR, security });
  if (response.code !== ResponseCode.Content) throw new GroupJoinError(`FETCH ${ACE_GROUP_PATH} was refused: ${describe(response)}`);
  if (isEmptyByteString(response.payload)) return [];
  const body = asMap(response.payload, 'the group names');
  const [found, names, uris] = [body.get(GroupParam.gid), body.get(GroupParam.gname), body.get(GroupParam.guri)];
  if (!Array.isArray(found) || !Array.isArray(names) || !Array.isArray(uris) || found.length !== names.length || found.length !== uris.length || !found.every(isBytes) || ![...names, ...uris].every((v) => typeof v === 'string')) {
    throw new GroupJoinError("the group names response's gid, gname and guri do not match");
  }
  return found.map((gid, i) => ({ gid: toHex(gid as Uint8Array), name: names[i] as string, uri: uris[i] as string }));
}

/** A set of role names as key-groupcomm-oscore §3's Tperm bit set. */
function tpermOf(roles: readonly string[]): number {
  let tperm = 0;
  for (const role of roles) {
    const bitIndex = GROUP_OSCORE_ROLES[role];
    if (bitIndex === undefined) throw new GroupJoinError(`unknown role ${role} (known: ${Object.keys(GROUP_OSCORE_ROLES).join(', ')})`);
    tperm |= 1 << bitIndex;
  }
  if (tperm === 0) throw new GroupJoinError('a role filter entry names no role');
  return tperm;
}

const isEmptyByteString = (payload: Uint8Array): boolean => payload.length === 1 && payload[0] === 0x40;

/** Asks the KDC for 'sign_info' in the Token Transfer Response (RFC 9594 §3.3: the value is null). */
export const SIGN_INFO_REQUEST: ReadonlyArray<readonly [number, unknown]> = [[TokenTransferParam.sign_info, null]];

/** N_S and the group's Signature Algorithm: what a Join Request's proof of possession needs. */
export interface JoinChallenge {
  readonly nS: Uint8Array;
  readonly signature: number;
}

function challengeIn(map: Map<CborValue, CborValue>, nsLabel: number, signInfoLabel: number, group: string): JoinChallenge | undefined {
  const nS = map.get(nsLabel);
  const signature = signatureFromSignInfo(map.get(signInfoLabel), group);
  return isBytes(nS) && signature !== undefined ? { nS, signature } : undefined;
}

/**
 * Posts a Join Request with proof of possession over N_S (RFC 9594 §4.3.1). N_S and sign_info
 * come from the Token Transfer Response (§3.3); when it lacked them (an older KDC), from the 4.00
 * an empty Join Request brings; and a join refused with a 4.00 that carries a new kdcchallenge
 * (§4.3.1.1: the KDC no longer held ours) is sent once more with it.
 */
export async function postProvenJoin(
  client: JoinGroupOptions['client'],
  uri: string,
  security: AceClientSecurity,
  group: string,
  kdc: string,
  build: (challenge: JoinChallenge) => Map<number, unknown>,
): Promise<ClientResponse> {
  const transfer = await security.establish(uri);
  let challenge = challengeIn(transfer, TokenTransferParam.kdcchallenge, TokenTransferParam.sign_info, group);
  if (challenge === undefined) {
    const probe = await client.request({ method: 'POST', uri, security });
    if (probe.code !== ResponseCode.BadRequest) throw new GroupJoinError(`${kdc} refused to join ${group}: ${describe(probe)}`);
    challenge = challengeIn(asMap(probe.payload, 'the 4.00 to the empty Join Request'), GroupParam.kdcchallenge, GroupParam.sign_info, group);
    if (challenge === undefined) throw new GroupJoinError(`${kdc} sent no kdcchallenge or sign_info`);
  }
  const post = (c: JoinChallenge): Promise<ClientResponse> => client.request({ method: 'POST', uri, payload: encodeCbor(build(c)), contentFormat: ACE_GROUPCOMM_CBOR, security });
  const response = await post(challenge);
  if (response.code !== ResponseCode.BadRequest || response.contentFormat !== ACE_GROUPCOMM_CBOR) return response;
  let fresh: JoinChallenge | undefined;
  try {
    fresh = challengeIn(asMap(response.payload, 'the 4.00 to the Join Request'), GroupParam.kdcchallenge, GroupParam.sign_info, group);
  } catch {
    return response;
  }
  return fresh === undefined ? response : post(fresh);
}

export function newCredential(signature: number, name: string): { credential: Uint8Array; privateKey: Uint8Array } {
  const pair = keyPairFor(signature);
  return { credential: encodeCcs({ sub: name, coseKey: pair.coseKey }), privateKey: pair.privateKey };
}

export function asMap(payload: Uint8Array, what: string): Map<CborValue, CborValue> {
  let value: CborValue;
  try {
    value = decodeStrict(payload);
  } catch {
    throw new GroupJoinError(`${what} is not CBOR`);
  }
  if (!(value instanceof Map)) throw new GroupJoinError(`${what} is not a CBOR map`);
  return value;
}

function keyMaterialOf(body: Map<CborValue, CborValue>): GroupKeyMaterial {
  try {
    return decodeKeyMaterial(body.get(GroupParam.key));
  } catch (e) {
    throw new GroupJoinError((e as Error).message);
  }
}

export function numOf(body: Map<CborValue, CborValue>): number {
  const num = body.get(GroupParam.num);
  if (!isInt(num) || num < 0) throw new GroupJoinError("the response's 'num' is not a version number");
  return num;
}

/** creds with peer_identifiers (RFC 9594 §4.3.1): the other members' Sender IDs and credentials. */
function membersOf(body: Map<CborValue, CborValue>): GroupMemberFile['members'] {
  const creds = body.get(GroupParam.creds) ?? [];
  const ids = body.get(GroupParam.peer_identifiers) ?? [];
  if (!Array.isArray(creds) || !Array.isArray(ids) || creds.length !== ids.length || ![...creds, ...ids].every(isBytes)) throw new GroupJoinError('creds and peer_identifiers do not match');
  return creds.map((credential, i) => ({ senderId: toHex(ids[i] as Uint8Array), credential: toHex(credential as Uint8Array) }));
}

export function locationNode(response: ClientResponse): string {
  const path = response.options.filter((o) => o.number === OptionNumber.LocationPath).map((o) => new TextDecoder().decode(o.value));
  if (path.length !== 4 || path[0] !== 'ace-group' || path[2] !== 'nodes') throw new GroupJoinError(`the Join Response's Location-Path is /${path.join('/')}, not /ace-group/GROUPNAME/nodes/NODENAME`);
  return path[3]!;
}

function describe(response: ClientResponse): string {
  if (response.contentFormat === ContentFormat.ConciseProblemDetailsCbor) return `${response.status}: ${describeProblem(response.payload, decodeStrict) ?? 'problem details'}`;
  const text = response.payload.length > 0 && response.contentFormat === undefined ? `: ${response.text()}` : '';
  return `${response.status}${text}`;
}

/** A refusal's code and reason for an error message (the topic KDC's member uses it too). */
export const describeGroupResponse = describe;
