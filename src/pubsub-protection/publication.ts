/**
 * Protected publications (draft-ietf-ace-coap-pubsub-profile §6): a COSE_Encrypt0 under the topic's
 * group key, countersigned (RFC 9338, 'Countersignature version 2', label 11) by the publisher.
 * Sans-IO: bytes in, bytes or a verdict out; the sequence number comes from the caller's counter.
 *
 * coapsec extension (R5.2, R5.3): the profile supplies no external_aad, so nothing in the object
 * names the topic or the Content-Format. Given a TopicBinding, we supply
 * external_aad = CBOR ["coapsec pubsub binding", topic-data path, content-format / null] to both the
 * Enc_structure and the Countersign_structure. It is not sent: each subscriber supplies the path it
 * subscribed to and the Content-Format the notification carries. It goes into the signature too,
 * because a group-key holder could otherwise search for another external_aad that the same GCM tag
 * verifies under (GHASH is linear in a known key). Without a binding the object is exactly the
 * profile's.
 */
import type { KeyObject } from 'node:crypto';
import { coseAead } from '../cose/algorithms.js';
import { decodeStrict, encodeCbor, isBytes, isMap, toHex, type CborValue } from '../cose/cbor.js';
import { decrypt0, encrypt0, decodeEncrypt0, encodeEncrypt0 } from '../cose/encrypt.js';
import { signBytes, verifyBytes } from '../cose/sign.js';
import { nonce as oscoreNonce, equalBytes } from '../oscore/context.js';
import { decodePartialIv, encodePartialIv, MAX_SEQUENCE_NUMBER } from '../oscore/option.js';
import { ReplayWindow } from '../oscore/replay.js';
import { EpochKeyHolder } from './key-epochs.js';
import { PubSubKeyError, type GroupKey, type PublisherCredential, type TopicKeyMaterial } from './key-material.js';

/** COSE header labels (RFC 9052 §3.1, RFC 9338 §5). */
const Header = { alg: 1, kid: 4, partialIv: 6, countersignatureV2: 11 } as const;

/** What a publication is for, bound into it by the coapsec extension (see the module comment). */
export interface TopicBinding {
  /** The path of the topic-data resource, e.g. "/ps/data/1bd0d6d2" (host and port left out: proxies change them). */
  readonly topicDataPath: string;
  /** The Content-Format the publication is sent with; undefined when it has none. */
  readonly contentFormat: number | undefined;
}

export const bindingAad = (binding: TopicBinding | undefined): Uint8Array =>
  binding === undefined ? new Uint8Array(0) : encodeCbor(['coapsec pubsub binding', binding.topicDataPath, binding.contentFormat ?? null]);

/** RFC 9338 §3.3 with other_fields absent: ["CounterSignature", body_protected, sign_protected, external_aad, payload]. */
const countersignStructure = (bodyProtected: Uint8Array, signProtected: Uint8Array, externalAad: Uint8Array, ciphertext: Uint8Array): Uint8Array =>
  encodeCbor(['CounterSignature', bodyProtected, signProtected, externalAad, ciphertext]);

/** §6.2: OSCORE's nonce construction with the publisher's Sender ID and the group key's Base IV. */
const publicationNonce = (groupKey: GroupKey, senderId: Uint8Array, piv: Uint8Array): Uint8Array => oscoreNonce(groupKey.baseIv, senderId, piv);

export interface Publisher {
  readonly groupKey: GroupKey;
  readonly senderId: Uint8Array;
  readonly signingKey: KeyObject;
  readonly signAlg: number;
}

export class PublicationError extends Error {
  override readonly name = 'PublicationError';
}

/**
 * The protected publication for `plaintext`. `sequenceNumber` must never repeat under this group
 * key (§6.1: the caller's durable counter, reset to 0 with each new group key).
 */
export function protectPublication(publisher: Publisher, sequenceNumber: number, plaintext: Uint8Array, binding: TopicBinding | undefined, now = Date.now()): Uint8Array {
  const { groupKey } = publisher;
  if (groupKey.exp !== undefined && now >= groupKey.exp * 1000) {
    throw new PublicationError(`group key ${groupKey.num} expired at ${new Date(groupKey.exp * 1000).toISOString()}: get the new key material (rekeying)`);
  }
  if (sequenceNumber > MAX_SEQUENCE_NUMBER) throw new PublicationError('Sender Sequence Numbers exhausted under this group key (§6.1): rekey');
  const piv = encodePartialIv(sequenceNumber);
  const bodyProtected = encodeCbor(new Map([[Header.alg, groupKey.alg]]));
  const signProtected = encodeCbor(new Map([[Header.alg, publisher.signAlg]]));
  const aad = bindingAad(binding);
  const ciphertext = encrypt0(groupKey.alg, groupKey.key, publicationNonce(groupKey, publisher.senderId, piv), plaintext, bodyProtected, aad);
  const signature = signBytes(publisher.signAlg, publisher.signingKey, countersignStructure(bodyProtected, signProtected, aad, ciphertext));
  const countersignature: CborValue[] = [signProtected, new Map<CborValue, CborValue>([[Header.kid, publisher.senderId]]), signature];
  const unprotected = new Map<CborValue, CborValue>([
    [Header.kid, groupKey.gid],
    [Header.partialIv, piv],
    [Header.countersignatureV2, countersignature],
  ]);
  return encodeEncrypt0({ protectedHeader: bodyProtected, unprotectedHeader: unprotected, ciphertext });
}

/** Why a publication was refused, one per requirement it failed. */
export type RefusalReason =
  | 'malformed'
  | 'unknown-group-key'
  | 'retired-group-key'
  | 'expired-group-key'
  | 'unauthorized-publisher'
  | 'replayed-or-older'
  | 'bad-signature'
  | 'decryption-failed';

export type Verdict =
  | { readonly ok: true; readonly plaintext: Uint8Array; readonly publisher: Uint8Array; readonly sequenceNumber: number; readonly keyNum: number }
  | { readonly ok: false; readonly reason: RefusalReason; readonly detail: string };

/**
 * §6.3's replay check per publisher. 'never-older' (the default) is R5.4 strictly: only a sequence
 * number above every one accepted from that publisher. 'window' is the profile's Replay Window,
 * which also takes a late one that was never seen.
 */
export type FreshnessPolicy = 'never-older' | 'window';

/** A subscriber's verification state for one topic: its key material and a window per publisher. */
export class PublicationVerifier {
  #material: TopicKeyMaterial;
  readonly #policy: FreshnessPolicy;
  readonly #windowSize: number;
  #keys: EpochKeyHolder;
  /** The key the windows are for: a new epoch's key restarts every publisher's numbers at 0 (§6.1). */
  #windowsKey: GroupKey | undefined;
  /** One per publisher of the key material: bounded by its credential list, not by what arrives. */
  readonly #windows = new Map<string, ReplayWindow>();

  constructor(material: TopicKeyMaterial, options: { policy?: FreshnessPolicy; windowSize?: number } = {}) {
    this.#material = material;
    this.#policy = options.policy ?? 'never-older';
    this.#windowSize = options.windowSize ?? 32;
    this.#keys = new EpochKeyHolder(material.groupKey, material.epochs);
  }

  /**
   * New key material for the same topic (a KDC's rekey or an updated list of publishers, RFC 9594
   * §6). Under the same group key every publisher keeps its window, so nothing it already accepted
   * is accepted again (R5.4); a new publisher gets a fresh one. A new group key restarts every
   * window (its numbers start at 0, §6.1), and the old key is gone: what it protected is refused.
   */
  updateMaterial(material: TopicKeyMaterial): void {
    if (material.topic !== this.#material.topic) throw new PubSubKeyError(`key material for "${material.topic}" cannot replace that of "${this.#material.topic}"`);
    const sameKey = equalBytes(material.groupKey.gid, this.#material.groupKey.gid) && equalBytes(material.groupKey.key, this.#material.groupKey.key);
    this.#material = material;
    if (!sameKey) {
      this.#keys = new EpochKeyHolder(material.groupKey, material.epochs);
      this.#windowsKey = undefined;
      this.#windows.clear();
      return;
    }
    const current = new Set(material.publishers.map((p) => toHex(p.senderId)));
    for (const id of [...this.#windows.keys()]) if (!current.has(id)) this.#windows.delete(id);
    if (this.#windowsKey !== undefined) for (const id of current) if (!this.#windows.has(id)) this.#windows.set(id, new ReplayWindow(this.#windowSize));
  }

  /** The publishers' windows under `key`, new ones when the epoch moved on (later epochs are newer, R5.4). */
  #windowsFor(key: GroupKey): Map<string, ReplayWindow> {
    if (this.#windowsKey !== key) {
      this.#windowsKey = key;
      for (const p of this.#material.publishers) this.#windows.set(toHex(p.senderId), new ReplayWindow(this.#windowSize));
    }
    return this.#windows;
  }

  verify(bytes: Uint8Array, binding: TopicBinding | undefined, now = Date.now()): Verdict {
    const refuse = (reason: RefusalReason, detail: string): Verdict => ({ ok: false, reason, detail });
    const parsed = parsePublication(bytes);
    if (typeof parsed === 'string') return refuse('malformed', parsed);
    const { retiredGids, publishers, signAlg } = this.#material;
    let groupKey: GroupKey | undefined;
    try {
      groupKey = this.#keys.find(parsed.gid, now);
    } catch (error) {
      if (!(error instanceof PubSubKeyError)) throw error;
      return refuse('expired-group-key', error.message);
    }
    if (groupKey === undefined) {
      const current = this.#keys.current(now).gid;
      return retiredGids.some((g) => equalBytes(g, parsed.gid)) || this.#keys.isRetired(parsed.gid)
        ? refuse('retired-group-key', `group key ${toHex(parsed.gid)} is retired (rekeyed, or its epoch is over); the current one is ${toHex(current)}`)
        : refuse('unknown-group-key', `no group key ${toHex(parsed.gid)} for topic "${this.#material.topic}"`);
    }
    if (groupKey.exp !== undefined && now >= groupKey.exp * 1000) return refuse('expired-group-key', `group key ${groupKey.num} expired; get the new key material`);
    if (parsed.bodyAlg !== groupKey.alg || parsed.signAlg !== signAlg) return refuse('malformed', 'algorithms differ from the group\'s');
    const publisher: PublisherCredential | undefined = publishers.find((p) => equalBytes(p.senderId, parsed.senderId));
    if (publisher === undefined) return refuse('unauthorized-publisher', `Sender ID ${toHex(parsed.senderId)} is not an authorized publisher of "${this.#material.topic}" (R5.1)`);
    const window = this.#windowsFor(groupKey).get(toHex(publisher.senderId))!;
    const sequenceNumber = decodePartialIv(parsed.piv);
    const fresh = (): boolean => window.check(sequenceNumber) && (this.#policy === 'window' || window.highest === undefined || sequenceNumber > window.highest);
    if (!fresh()) {
      return refuse('replayed-or-older', `sequence number ${sequenceNumber} from ${toHex(publisher.senderId)} is not newer than ${window.highest ?? 'none'} (R5.4)`);
    }
    const aad = bindingAad(binding);
    if (!verifyBytes(signAlg, publisher.publicKey, countersignStructure(parsed.bodyProtected, parsed.signProtected, aad, parsed.ciphertext), parsed.signature)) {
      return refuse('bad-signature', 'the countersignature does not verify: modified, forged, or not for this topic and Content-Format (R5.1-R5.3, R5.6)');
    }
    const plaintext = decrypt0(groupKey.alg, groupKey.key, publicationNonce(groupKey, publisher.senderId, parsed.piv), parsed.ciphertext, parsed.bodyProtected, aad);
    if (plaintext === undefined) return refuse('decryption-failed', 'the ciphertext does not decrypt under the group key (R5.5)');
    // §6.3: validating the Partial IV and updating the window are one step (no await in between).
    window.accept(sequenceNumber);
    return { ok: true, plaintext, publisher: publisher.senderId, sequenceNumber, keyNum: groupKey.num };
  }
}

interface ParsedPublication {
  bodyProtected: Uint8Array;
  bodyAlg: number;
  gid: Uint8Array;
  piv: Uint8Array;
  signProtected: Uint8Array;
  signAlg: number;
  senderId: Uint8Array;
  signature: Uint8Array;
  ciphertext: Uint8Array;
}

function algOf(serializedMap: Uint8Array): number | undefined {
  const m = decodeStrict(serializedMap);
  const alg = isMap(m) ? m.get(Header.alg) : undefined;
  return typeof alg === 'number' ? alg : undefined;
}

/** The fields §6.1 requires, or why they are not there. */
function parsePublication(bytes: Uint8Array): ParsedPublication | string {
  try {
    const e = decodeEncrypt0(bytes);
    const u = e.unprotectedHeader;
    const gid = u.get(Header.kid);
    const piv = u.get(Header.partialIv);
    const cs = u.get(Header.countersignatureV2);
    if (!isBytes(gid) || !isBytes(piv) || piv.length < 1 || piv.length > 5 || (piv.length > 1 && piv[0] === 0)) return 'kid and a Partial IV of 1-5 bytes (no leading zero) are required';
    if (!Array.isArray(cs) || cs.length !== 3) return "'Countersignature version 2' must be [protected, unprotected, signature]";
    const [signProtected, signUnprotected, signature] = cs;
    if (!isBytes(signProtected) || !isMap(signUnprotected) || !isBytes(signature)) return 'malformed countersignature';
    const senderId = signUnprotected.get(Header.kid);
    if (!isBytes(senderId)) return "the countersignature has no 'kid' (the publisher's Sender ID)";
    const bodyAlg = algOf(e.protectedHeader);
    const signAlg = algOf(signProtected);
    if (bodyAlg === undefined || signAlg === undefined) return "protected headers must name 'alg'";
    coseAead(bodyAlg);
    return { bodyProtected: e.protectedHeader, bodyAlg, gid, piv, signProtected, signAlg, senderId, signature, ciphertext: e.ciphertext };
  } catch (error) {
    return `not a COSE_Encrypt0 publication: ${(error as Error).message}`;
  }
}
