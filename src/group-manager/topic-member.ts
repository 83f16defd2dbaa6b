/**
 * A publisher's or subscriber's side of the pub-sub profile's KDC (draft-ietf-ace-coap-pubsub-profile
 * §3, §4): an access token for the topic's security group from the AS (AIF-PUBSUB-GROUPCOMM scope,
 * posted to the KDC by the ACE OSCORE profile, src/ace/client.ts), the Join Request (a publisher
 * learns N_S and the signature algorithm from the Token Transfer Response, §3.6 — from the 4.00 an
 * empty Join Request brings, §4.1.3, only when an older KDC left them out — and proves possession of a key pair made here), and the topic's key material as the
 * pubsub-protection layer uses it (TopicKeyMaterial). Afterwards: observe the keying material
 * and follow each rekey (RFC 9594 §6), verify publications with the current material, protect
 * publications with a Sender Sequence Number counter per group key, leave.
 *
 * A subscriber removed from the group learns it from a 4.03 (error 0) and keeps the old material:
 * what is published under the new key is refused as under an unknown key.
 */
import type { KeyObject } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { ResponseCode } from '../coap/codes.js';
import { encodeCbor, isBytes, toHex, type CborValue } from '../cose/cbor.js';
import { signBytes } from '../cose/sign.js';
import { AceClientSecurity } from '../ace/client.js';
import { aifScopeFormat, PUBSUB_PERMISSIONS } from '../ace/scope-format.js';
import type { Observation } from '../client/observe.js';
import { ownCredential } from '../group-oscore/credential.js';
import { parsePublisherCredential, PubSubKeyError, type PublisherCredential, type TopicKeyMaterial } from '../pubsub-protection/key-material.js';
import { PublicationVerifier, type TopicBinding, type Verdict } from '../pubsub-protection/publication.js';
import { PublisherSession } from '../pubsub-protection/publisher-session.js';
import { clientPopInput } from './key-material.js';
import { asMap, describeGroupResponse, GroupJoinError, locationNode, newCredential, numOf, postProvenJoin, SIGN_INFO_REQUEST, type JoinChallenge, type JoinGroupOptions } from './member-client.js';
import { ACE_GROUPCOMM_CBOR, GroupParam } from './parameters.js';
import { decodeTopicKey } from './pubsub-parameters.js';
import { ACE_GROUP_PATH } from './resources.js';

export type TopicRole = 'publisher' | 'subscriber';

export interface JoinTopicOptions extends Pick<JoinGroupOptions, 'client' | 'asUri' | 'asSecurity' | 'audience' | 'ownCredential' | 'name' | 'log'> {
  /** The KDC, scheme://host:port. */
  readonly kdcOrigin: string;
  /** The topic's security group (its name at the KDC). */
  readonly topic: string;
  readonly roles: readonly TopicRole[];
  /** A publisher's Sender Sequence Numbers are kept here (one counter per group key). */
  readonly stateDirectory?: string;
  /** A refusal that new key material could cure triggers at most one refresh per this many ms. Default 1000. */
  readonly refreshIntervalMs?: number;
}

const PUBSUB_SCOPES = aifScopeFormat(PUBSUB_PERMISSIONS);
const PERMISSION: Record<TopicRole, string> = { publisher: 'publish', subscriber: 'read' };
/** Gids of earlier generations remembered, to name a publication under one as retired. */
const REMEMBERED_GIDS = 16;

export class TopicMembership {
  #material: TopicKeyMaterial;
  #verifier: PublicationVerifier | undefined;
  #publisher: PublisherSession | undefined;
  /** When a refusal last made us ask the KDC (watch notifications do not count: the KDC sends those). */
  #lastCuringRefresh = -Infinity;
  #refreshing: Promise<TopicKeyMaterial> | undefined;
  #ended: string | undefined;

  private constructor(
    readonly options: JoinTopicOptions,
    readonly security: AceClientSecurity,
    /** NODENAME, from the Join Response's Location-Path. */
    readonly node: string,
    material: TopicKeyMaterial,
    readonly signingKey: KeyObject | undefined,
  ) {
    this.#material = material;
  }

  /** The topic's key material as of the latest join, refresh or notification. */
  get material(): TopicKeyMaterial {
    return this.#material;
  }

  /** Why this membership ended (removed by the KDC, left), or undefined while it lasts. */
  get ended(): string | undefined {
    return this.#ended;
  }

  static async join(options: JoinTopicOptions): Promise<TopicMembership> {
    if (options.roles.length === 0) throw new GroupJoinError('join a topic group as publisher, subscriber or both');
    const { topic } = options;
    const publisher = options.roles.includes('publisher');
    const scope = PUBSUB_SCOPES.encode(options.roles.map((role) => `${topic}:${PERMISSION[role]}`)) as Uint8Array;
    const security = new AceClientSecurity({
      client: options.client,
      asUri: options.asUri,
      rsOrigin: options.kdcOrigin,
      scope,
      ...(publisher ? { tokenTransferRequest: SIGN_INFO_REQUEST } : {}),
      ...(options.asSecurity !== undefined ? { asSecurity: options.asSecurity } : {}),
      ...(options.audience !== undefined ? { audience: options.audience } : {}),
      ...(options.log !== undefined ? { log: options.log } : {}),
    });
    const uri = `${options.kdcOrigin}${ACE_GROUP_PATH}/${topic}`;
    const request = new Map<number, unknown>([[GroupParam.scope, scope], [GroupParam.cnonce, Uint8Array.from(randomBytes(8))]]);
    // §4.1.1: get_creds only for a (non-publishing) subscriber; a publisher's PoP below.
    if (!publisher) request.set(GroupParam.get_creds, null);
    let signingKey: KeyObject | undefined;
    let own: { readonly credential: Uint8Array; readonly privateKey: Uint8Array } | undefined;
    // §3.6: the Token Transfer Response brings a publisher's N_S and sign_info; postProvenJoin falls back to §4.1.3's empty Join Request.
    const proven = (challenge: JoinChallenge): Map<number, unknown> => {
      own ??= options.ownCredential ?? newCredential(challenge.signature, options.name ?? `publisher of ${topic}`);
      const mine = ownCredential(own.credential, own.privateKey);
      signingKey = mine.privateKey;
      // §4.1.1.2: sign scope | N_S | N_C.
      const signed = new Map(request);
      signed.set(GroupParam.client_cred, own.credential);
      signed.set(GroupParam.client_cred_verify, signBytes(challenge.signature, mine.privateKey, clientPopInput(scope, challenge.nS, request.get(GroupParam.cnonce) as Uint8Array)));
      return signed;
    };
    const response = publisher
      ? await postProvenJoin(options.client, uri, security, topic, 'the KDC', proven)
      : await options.client.request({ method: 'POST', uri, payload: encodeCbor(request), contentFormat: ACE_GROUPCOMM_CBOR, security });
    if (response.code !== ResponseCode.Created && response.code !== ResponseCode.Changed) throw new GroupJoinError(`the Join Request to ${topic} was refused: ${describeGroupResponse(response)}`);
    const body = asMap(response.payload, 'the Join Response');
    const node = locationNode(response);
    const material = materialOf(options, node, body, publisherList(body, undefined), signingKey, []);
    if (publisher !== (material.senderId !== undefined)) throw new GroupJoinError(publisher ? 'the Join Response assigns no Sender ID' : 'the Join Response assigns a Sender ID to a subscriber');
    options.log?.(`joined topic group ${topic} as ${node}: version ${material.groupKey.num}, Gid ${toHex(material.groupKey.gid)}${material.senderId !== undefined ? `, Sender ID ${toHex(material.senderId)}` : ''}`);
    const membership = new TopicMembership(options, security, node, material, signingKey);
    // A publisher joining alone learns the other publishers only if it also reads.
    if (publisher && options.roles.includes('subscriber')) await membership.refresh();
    return membership;
  }

  /** GET this node's keying material (§4.2.1, with a publisher's Sender ID) and the publishers' credentials. */
  refresh(): Promise<TopicKeyMaterial> {
    // One at a time: a notification's refresh and a refusal's share the answer.
    this.#refreshing ??= this.#refresh().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #refresh(): Promise<TopicKeyMaterial> {
    const key = await this.#get(`/nodes/${this.node}`);
    const creds = await this.#get('/creds');
    const previous = this.#material;
    const retired = previous.groupKey.num === numOf(key) ? previous.retiredGids : [...previous.retiredGids, previous.groupKey.gid].slice(-REMEMBERED_GIDS);
    this.#material = materialOf(this.options, this.node, key, publisherList(creds, previous.signAlg), this.signingKey, retired);
    this.#verifier?.updateMaterial(this.#material);
    if (this.#publisher !== undefined && this.#material.groupKey.num !== previous.groupKey.num) {
      this.#publisher.close();
      this.#publisher = undefined;
    }
    if (previous.groupKey.num !== this.#material.groupKey.num) this.options.log?.(`${this.options.topic}: key material version ${this.#material.groupKey.num}, Gid ${toHex(this.#material.groupKey.gid)}, ${this.#material.publishers.length} publishers`);
    return this.#material;
  }

  /**
   * Observes the topic's keying material (RFC 9594 §6): each notification refreshes the material
   * and calls `onUpdate`; an error notification (removed: 4.03) or a failed refresh ends it with `onEnd`.
   */
  async watch(onUpdate?: (material: TopicKeyMaterial) => void, onEnd?: (why: string) => void): Promise<Observation> {
    const observation = await this.options.client.observe(this.#uri(''), { security: this.security });
    const end = (why: string): void => {
      this.#ended ??= why;
      onEnd?.(why);
    };
    void (async () => {
      try {
        let first = true;
        for await (const notification of observation) {
          if (notification.code !== ResponseCode.Content) return end(describeGroupResponse(notification));
          const held = this.#material.groupKey.num;
          const material = await this.refresh();
          // The first answer is the registration's: an update only if the material moved on since the join.
          if (!first || material.groupKey.num !== held) onUpdate?.(material);
          first = false;
        }
        end('the observation ended');
      } catch (error) {
        end((error as Error).message);
      }
    })();
    return observation;
  }

  /**
   * Verifies and decrypts a publication with the current material. A refusal that newer material
   * could cure (an unknown group key: a rekey not yet observed; an unknown publisher: one that
   * joined since) waits for a refresh under way, then asks the KDC itself at most once per
   * `refreshIntervalMs` (so forged publications cannot make us flood the KDC), and tries again.
   */
  async verify(bytes: Uint8Array, binding: TopicBinding | undefined): Promise<Verdict> {
    if (!this.#material.roles.includes('subscriber')) throw new PubSubKeyError(`${this.node} is not a subscriber of "${this.options.topic}"`);
    this.#verifier ??= new PublicationVerifier(this.#material);
    const curable = (v: Verdict): boolean => !v.ok && (v.reason === 'unknown-group-key' || v.reason === 'unauthorized-publisher');
    let verdict = this.#verifier.verify(bytes, binding);
    if (!curable(verdict) || this.#ended !== undefined) return verdict;
    try {
      if (this.#refreshing !== undefined) {
        await this.#refreshing;
        verdict = this.#verifier.verify(bytes, binding);
        if (!curable(verdict)) return verdict;
      }
      if (Date.now() - this.#lastCuringRefresh < (this.options.refreshIntervalMs ?? 1000)) return verdict;
      this.#lastCuringRefresh = Date.now();
      await this.refresh();
    } catch (error) {
      if (!(error instanceof GroupJoinError)) throw error;
      this.#ended ??= error.message;
      return verdict;
    }
    return this.#verifier.verify(bytes, binding);
  }

  /** Protects a publication under the current group key (a new key starts a new counter, §6.1). */
  protect(plaintext: Uint8Array, binding: TopicBinding | undefined): Uint8Array {
    if (this.options.stateDirectory === undefined) throw new PubSubKeyError('a publisher needs a stateDirectory for its Sender Sequence Numbers');
    this.#publisher ??= PublisherSession.open(this.#material, this.options.stateDirectory);
    return this.#publisher.protect(plaintext, binding);
  }

  /** DELETE /ace-group/TOPIC/nodes/NODE (§4.2.4); the KDC rekeys the topic. */
  async leave(): Promise<void> {
    const response = await this.options.client.request({ method: 'DELETE', uri: this.#uri(`/nodes/${this.node}`), security: this.security });
    if (response.code !== ResponseCode.Deleted) throw new GroupJoinError(`leaving ${this.options.topic} was refused: ${describeGroupResponse(response)}`);
    this.#ended ??= 'left';
  }

  /** Closes the publisher's counter (its last reservation stays on disk, so no number is reused). */
  close(): void {
    this.#publisher?.close();
    this.#publisher = undefined;
  }

  async #get(suffix: string): Promise<Map<CborValue, CborValue>> {
    const response = await this.options.client.request({ method: 'GET', uri: this.#uri(suffix), security: this.security });
    if (response.code !== ResponseCode.Content) throw new GroupJoinError(`GET ${ACE_GROUP_PATH}/${this.options.topic}${suffix} was refused: ${describeGroupResponse(response)}`);
    return asMap(response.payload, `${ACE_GROUP_PATH}/${this.options.topic}${suffix}`);
  }

  #uri(suffix: string): string {
    return `${this.options.kdcOrigin}${ACE_GROUP_PATH}/${this.options.topic}${suffix}`;
  }
}

/** creds with peer_identifiers (§4.1.2, REQ25), parsed once the signature algorithm is known. */
function publisherList(body: Map<CborValue, CborValue>, signAlg: number | undefined): (signAlg: number) => PublisherCredential[] {
  const creds = body.get(GroupParam.creds) ?? [];
  const ids = body.get(GroupParam.peer_identifiers) ?? [];
  if (!Array.isArray(creds) || !Array.isArray(ids) || creds.length !== ids.length || ![...creds, ...ids].every(isBytes)) throw new GroupJoinError('creds and peer_identifiers do not match');
  return (alg) => {
    try {
      return creds.map((cred, i) => parsePublisherCredential(ids[i] as Uint8Array, cred as Uint8Array, signAlg ?? alg));
    } catch (error) {
      throw new GroupJoinError((error as Error).message);
    }
  };
}

function materialOf(options: JoinTopicOptions, node: string, body: Map<CborValue, CborValue>, publishers: (signAlg: number) => PublisherCredential[], signingKey: KeyObject | undefined, retiredGids: readonly Uint8Array[]): TopicKeyMaterial {
  const exp = body.get(GroupParam.exp);
  let key;
  try {
    key = decodeTopicKey(body.get(GroupParam.key), numOf(body), typeof exp === 'number' ? exp : undefined);
  } catch (error) {
    throw new GroupJoinError((error as Error).message);
  }
  return {
    topic: options.topic,
    member: node,
    roles: [...options.roles],
    signAlg: key.signAlg,
    groupKey: key.groupKey,
    publishers: publishers(key.signAlg),
    retiredGids,
    ...(key.senderId !== undefined && signingKey !== undefined ? { senderId: key.senderId, signingKey } : {}),
  };
}
