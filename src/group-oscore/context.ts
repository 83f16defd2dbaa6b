/**
 * A Group OSCORE Security Context at run time (draft-ietf-core-oscore-groupcomm §2): the Common
 * Context, one Sender Context (own Sender ID, key, credential, sequence numbers) and Recipient
 * Contexts created on the fly for members whose credentials are known, each with its own replay
 * window — at most `maxRecipients` of them (§2.2, §2.6.1.2), since a peer can make us create one.
 *
 * A context is one key generation of one group. Rekeying (§2.6.3.2, §12.2) makes a new context
 * with `rekeyed()`: same Sender ID and credentials minus the stale ones, new keys, sequence number
 * 0, fresh windows; the holder replaces the old context and drops it (see GroupContextStore).
 */
import { toHex } from '../cose/cbor.js';
import { OscoreConfigError } from '../oscore/errors.js';
import { MAX_SEQUENCE_NUMBER } from '../oscore/option.js';
import { ReplayWindow } from '../oscore/replay.js';
import { SequenceNumberExhausted } from '../oscore/errors.js';
import { deriveCommonContext, deriveEndpointKey, derivePairwiseKey, pairwiseIkm, type GroupCommonContext, type GroupCommonInput } from './common.js';
import { credentialFitsSignature, ownCredential, parseAuthCredential, staticSharedSecret, type AuthCredential, type OwnCredential } from './credential.js';
import type { DeterministicClient } from './deterministic.js';

export interface GroupMemberInfo {
  readonly senderId: Uint8Array;
  /** The member's authentication credential (CCS bytes) as the Group Manager distributes it. */
  readonly credential: Uint8Array;
}

export interface GroupContextInput extends GroupCommonInput {
  /** Absent for a silent server (§1.1), which never sends. */
  readonly senderId?: Uint8Array;
  readonly ownCredential?: { readonly credential: Uint8Array; readonly privateKey: Uint8Array };
  /** Credentials of the other members, by Sender ID: Recipient Contexts are created from them on demand. */
  readonly members?: readonly GroupMemberInfo[];
  /** The Key Generation Number of this keying material (§12). */
  readonly keyGeneration?: number;
  /** Default 32. */
  readonly replayWindow?: number;
  /** Default 64. */
  readonly maxRecipients?: number;
  /** First Sender Sequence Number (default 0); persistent numbering is the holder's business. */
  readonly sequenceStart?: number;
  /**
   * Where Sender Sequence Numbers come from when they must outlive the process (a durable store,
   * RFC 8613 Appendix B.1.1): a member restarted with the same keys must never reuse a nonce.
   * Default: a counter in memory from `sequenceStart`.
   */
  readonly sequenceSource?: { next(): number };
  /**
   * This member ran before and did not keep its replay windows (a restart): every Recipient
   * Context starts with an invalid window, so a member's first request is challenged with Echo
   * instead of trusted (§2.6.1.2, §9; RFC 8613 Appendix B.1.2).
   */
  readonly replayWindowsLost?: boolean;
  /**
   * The group's Deterministic Client (draft-ietf-core-cacheable-oscore §3.4.1), when the Group
   * Manager named one: its Sender ID is immutable across rekeying, so `rekeyed()` keeps it.
   */
  readonly deterministicClient?: DeterministicClient;
}

export interface GroupRecipientContext {
  readonly recipientId: Uint8Array;
  readonly recipientKey: Uint8Array;
  readonly credential: AuthCredential;
  readonly replay: ReplayWindow;
  /** Whether a message verified with this context yet (unverified new contexts may be dropped, §7.2). */
  verified: boolean;
  /** §9: the Echo value this member was challenged with while its window was invalid. */
  echoChallenge: Uint8Array | undefined;
  /** Lazily derived pairwise keys (§2.5.4). */
  pairwise?: { readonly senderKey: Uint8Array; readonly recipientKey: Uint8Array };
}

export class GroupSecurityContext {
  readonly common: GroupCommonContext;
  readonly senderId: Uint8Array | undefined;
  readonly senderKey: Uint8Array | undefined;
  readonly own: OwnCredential | undefined;
  readonly keyGeneration: number;
  readonly input: GroupContextInput;
  readonly #credentials = new Map<string, AuthCredential>();
  /** Insertion order is recency order (a Map re-inserted on use): the first entry is evicted first. */
  readonly #recipients = new Map<string, GroupRecipientContext>();
  #nextSequence: number;
  /** §2.6.1.2: once a verified Recipient Context was deleted, new ones start with an invalid window. */
  #deletedVerified = false;

  constructor(input: GroupContextInput) {
    this.input = input;
    this.common = deriveCommonContext(input);
    this.keyGeneration = input.keyGeneration ?? 0;
    this.#nextSequence = input.sequenceStart ?? 0;
    if ((input.senderId === undefined) !== (input.ownCredential === undefined)) {
      throw new OscoreConfigError('a Sender ID needs the own credential and private key, and vice versa');
    }
    this.senderId = input.senderId === undefined ? undefined : Uint8Array.from(input.senderId);
    this.senderKey = this.senderId === undefined ? undefined : deriveEndpointKey(this.common, this.senderId);
    this.own = input.ownCredential === undefined ? undefined : ownCredential(input.ownCredential.credential, input.ownCredential.privateKey);
    if (this.own !== undefined && this.common.algorithms.signature !== undefined && !credentialFitsSignature(this.own, this.common.algorithms.signature)) {
      throw new OscoreConfigError(`the own credential does not fit Signature Algorithm ${this.common.algorithms.signature}`);
    }
    for (const member of input.members ?? []) this.addMember(member);
  }

  get gid(): Uint8Array {
    return this.common.gid;
  }

  /** Makes a member's credential known (from the Group Manager). Replaces a Recipient Context built from an older credential. */
  addMember(member: GroupMemberInfo): void {
    if (member.senderId.length > this.common.maxIdLength) throw new OscoreConfigError(`Sender ID of ${member.senderId.length} bytes exceeds ${this.common.maxIdLength}`);
    const key = toHex(member.senderId);
    this.#credentials.set(key, parseAuthCredential(member.credential));
    this.#recipients.delete(key);
  }

  /** §12.2: a stale Sender ID's credential and Recipient Context are deleted. */
  removeMember(senderId: Uint8Array): void {
    const key = toHex(senderId);
    this.#credentials.delete(key);
    this.#recipients.delete(key);
  }

  get members(): GroupMemberInfo[] {
    return [...this.#credentials.entries()].map(([k, c]) => ({ senderId: Uint8Array.from(Buffer.from(k, 'hex')), credential: c.bytes }));
  }

  get recipientCount(): number {
    return this.#recipients.size;
  }

  /** The next Sender Sequence Number (§2.5.3: one space for both modes). */
  nextSequenceNumber(): number {
    if (this.senderId === undefined) throw new OscoreConfigError('a silent server has no Sender Context');
    const n = this.input.sequenceSource !== undefined ? this.input.sequenceSource.next() : this.#nextSequence;
    if (n > MAX_SEQUENCE_NUMBER) throw new SequenceNumberExhausted(n);
    this.#nextSequence = n + 1;
    return n;
  }

  /**
   * The Recipient Context for a Sender ID, created on the fly when the member's credential is known
   * (§7.2, §7.4: "MAY create a new Recipient Context"); undefined otherwise. Creating one past the
   * bound deletes the least recently used (§2.6.1.2).
   */
  recipient(kid: Uint8Array): GroupRecipientContext | undefined {
    const key = toHex(kid);
    const existing = this.#recipients.get(key);
    if (existing !== undefined) {
      this.#recipients.delete(key);
      this.#recipients.set(key, existing);
      return existing;
    }
    const credential = this.#credentials.get(key);
    if (credential === undefined) return undefined;
    if (this.senderId !== undefined && key === toHex(this.senderId)) return undefined;
    const limit = this.input.maxRecipients ?? 64;
    while (this.#recipients.size >= limit) {
      const [oldestKey, oldest] = this.#recipients.entries().next().value!;
      this.#recipients.delete(oldestKey);
      if (oldest.verified) this.#deletedVerified = true;
    }
    const created: GroupRecipientContext = {
      recipientId: Uint8Array.from(kid),
      recipientKey: deriveEndpointKey(this.common, kid),
      credential,
      replay: new ReplayWindow(this.input.replayWindow ?? 32, { initialised: !this.#deletedVerified && this.input.replayWindowsLost !== true }),
      verified: false,
      echoChallenge: undefined,
    };
    this.#recipients.set(key, created);
    return created;
  }

  /** §7.2/§7.4: a Recipient Context created for a message that did not verify is dropped, without invalidating later windows. */
  discardIfUnverified(recipient: GroupRecipientContext): void {
    const key = toHex(recipient.recipientId);
    if (!recipient.verified && this.#recipients.get(key) === recipient) this.#recipients.delete(key);
  }

  /** §2.5.1: the pairwise keys with a member, derived once per context. Throws CoseError for an unusable peer key. */
  pairwiseKeys(recipient: GroupRecipientContext): { senderKey: Uint8Array; recipientKey: Uint8Array } {
    if (recipient.pairwise !== undefined) return recipient.pairwise;
    if (!this.common.pairwiseMode) throw new OscoreConfigError('the pairwise mode is not set up in this group');
    if (this.own === undefined || this.senderKey === undefined || this.senderId === undefined) throw new OscoreConfigError('a silent server has no pairwise keys');
    const shared = staticSharedSecret(this.own, recipient.credential);
    const own = this.own.bytes;
    const peer = recipient.credential.bytes;
    recipient.pairwise = {
      senderKey: derivePairwiseKey(this.common, this.senderKey, pairwiseIkm(own, peer, shared), this.senderId),
      recipientKey: derivePairwiseKey(this.common, recipient.recipientKey, pairwiseIkm(peer, own, shared), recipient.recipientId),
    };
    return recipient.pairwise;
  }

  /**
   * §2.6.3.2 / §12.2: the context of the next key generation. Stale Sender IDs lose their
   * credentials (and so their Recipient Contexts); the Sender ID is kept unless a new one is given;
   * new members' credentials are added. The sequence number restarts at 0 and every window is new
   * and valid — new keys, so no (key, nonce) pair repeats.
   */
  rekeyed(update: {
    masterSecret: Uint8Array;
    masterSalt?: Uint8Array;
    gid: Uint8Array;
    keyGeneration: number;
    staleSenderIds?: readonly Uint8Array[];
    newMembers?: readonly GroupMemberInfo[];
    senderId?: Uint8Array;
  }): GroupSecurityContext {
    if (update.keyGeneration <= this.keyGeneration) throw new OscoreConfigError(`Key Generation Number ${update.keyGeneration} is not newer than ${this.keyGeneration}`);
    const stale = new Set((update.staleSenderIds ?? []).map(toHex));
    const members = [...this.members.filter((m) => !stale.has(toHex(m.senderId))), ...(update.newMembers ?? [])];
    const { masterSalt: _oldSalt, sequenceStart: _oldStart, ...rest } = this.input;
    return new GroupSecurityContext({
      ...rest,
      masterSecret: update.masterSecret,
      ...(update.masterSalt !== undefined ? { masterSalt: update.masterSalt } : {}),
      gid: update.gid,
      keyGeneration: update.keyGeneration,
      members,
      ...(update.senderId !== undefined ? { senderId: update.senderId } : {}),
    });
  }
}

/**
 * The contexts an endpoint holds, by Gid: at most one per group name, the latest installed
 * (§2.6.3.2: "SHOULD use only its latest installed Recipient Contexts"). Installing a new
 * generation retires the old one: its Gid no longer finds anything.
 */
export class GroupContextStore {
  readonly #byName = new Map<string, GroupSecurityContext>();

  install(groupName: string, context: GroupSecurityContext): void {
    const current = this.#byName.get(groupName);
    if (current !== undefined && context.keyGeneration <= current.keyGeneration) {
      throw new OscoreConfigError(`group ${groupName}: Key Generation Number ${context.keyGeneration} is not newer than the installed ${current.keyGeneration}`);
    }
    this.#byName.set(groupName, context);
  }

  current(groupName: string): GroupSecurityContext | undefined {
    return this.#byName.get(groupName);
  }

  /** The context whose ID Context is `gid` (the 'kid context' of a request, §3.2). */
  findByGid(gid: Uint8Array): GroupSecurityContext | undefined {
    const key = toHex(gid);
    for (const context of this.#byName.values()) if (toHex(context.gid) === key) return context;
    return undefined;
  }
}

