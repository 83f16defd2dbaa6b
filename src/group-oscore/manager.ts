/**
 * The Group Manager's tasks, offline (draft-ietf-core-oscore-groupcomm §12, which lets "some tool
 * performing the tasks of the Group Manager" configure members): create a group, add members with
 * unique Sender IDs, key pairs and CCS credentials, issue each member's file, remove members and
 * rekey. The whole state is one JSON document, so that an online Group Manager (ACE,
 * draft-ietf-ace-key-groupcomm-oscore) can take it over.
 *
 * Identifier rules kept here: a Sender ID is never assigned twice under one Gid, nor one that a
 * member held when that Gid was installed (§12.2.1.2); every rekey installs a Gid never used by
 * the group before (§12.2.1.1, first approach: no Gid is reassigned) and increments the Key
 * Generation Number (§12.2 step 1); the removed members' Sender IDs are reported as stale.
 */
import { randomBytes } from 'node:crypto';
import { fromHex, toHex } from '../cose/cbor.js';
import { encodeCcs } from '../cose/cwt.js';
import { CoseCurve, CoseKty, rawKeyParts, type CoseKey, generateKeyPairOn } from '../cose/key.js';
import { CoseSignAlg } from '../cose/sign.js';
import { OscoreConfigError } from '../oscore/errors.js';
import { coseHash } from '../cose/algorithms.js';
import { deriveCommonContext, type GroupAlgorithms } from './common.js';
import { GroupSecurityContext } from './context.js';
import { credentialFitsSignature, parseAuthCredential } from './credential.js';

/** COSE SHA-256, the hash of the draft's examples (App. F.1). */
const SHA_256 = -16;

export const DEFAULT_GROUP_ALGORITHMS: GroupAlgorithms = { aead: 10, hkdf: 5, groupEncryption: 10, signature: CoseSignAlg.EdDSA, pairwiseKeyAgreement: -27 };

interface MemberRecord {
  name: string;
  senderId: string;
  credential: string;
  /** Present when the Group Manager generated the key pair (it goes into the member's file). */
  privateKey?: string;
}

/** The Group Manager's state: hex strings throughout, JSON as is. Contains secrets: store it like a key file. */
export interface GroupManagerState {
  version: 1;
  name: string;
  gid: string;
  keyGeneration: number;
  masterSecret: string;
  masterSalt: string;
  algorithms: GroupAlgorithms;
  gidLength: number;
  gm: { credential: string; privateKey: string };
  members: MemberRecord[];
  /** Sender IDs not to assign again under the current Gid. */
  usedSenderIds: string[];
  /** Every Gid the group has had. */
  usedGids: string[];
  /** The CoAP group's IP multicast address and port ("224.0.1.187:5683", "[ff05::fd]:5683"), if the group has one (groupcomm-bis §2.2.1.1). */
  address?: string;
  /** The Deterministic Client (cacheable-oscore §3.4.1): its Sender ID (hex) and COSE hash algorithm. */
  deterministicClient?: DeterministicClientRecord;
}

/** cacheable-oscore §4 'det_senderId' and 'det_hash_alg', as the member file carries them. */
export interface DeterministicClientRecord {
  senderId: string;
  /** COSE algorithm id of the hash, -16 for SHA-256. */
  hash: number;
}

/** What a member needs to join (§12.1): its own Sender Context, the GM's credential, the other members. */
export interface GroupMemberFile {
  version: 1;
  group: string;
  gid: string;
  keyGeneration: number;
  masterSecret: string;
  masterSalt: string;
  algorithms: GroupAlgorithms;
  senderId: string;
  credential: string;
  privateKey?: string;
  gmCredential: string;
  members: { senderId: string; credential: string }[];
  /** The group's IP multicast address and port, when the Group Manager set one. */
  address?: string;
  /** The group's Deterministic Client, when the Group Manager named one (cacheable-oscore §3.4.1). */
  deterministicClient?: DeterministicClientRecord;
}

/** §12.2 step 3: what every remaining member receives when the group is rekeyed. */
export interface GroupRekey {
  group: string;
  gid: string;
  keyGeneration: number;
  masterSecret: string;
  masterSalt: string;
  staleSenderIds: string[];
}

/** A key pair for the group's Signature Algorithm: the COSE_Key and the private bytes (exported for the online Group Manager's joining members). */
export function keyPairFor(signature: number | undefined): { coseKey: CoseKey; privateKey: Uint8Array } {
  if (signature === CoseSignAlg.ES256) {
    const { privateKey } = generateKeyPairOn(CoseCurve.P256);
    const jwk = privateKey.export({ format: 'jwk' }) as { x: string; y: string; d: string };
    const b = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64url'));
    return { coseKey: { kty: CoseKty.EC2, crv: CoseCurve.P256, x: b(jwk.x), y: b(jwk.y) }, privateKey: b(jwk.d) };
  }
  if (signature !== undefined && signature !== CoseSignAlg.EdDSA) throw new OscoreConfigError(`the Group Manager cannot make keys for Signature Algorithm ${signature}`);
  const { privateKey } = generateKeyPairOn(CoseCurve.Ed25519);
  const { x, d } = rawKeyParts(privateKey);
  return { coseKey: { kty: CoseKty.OKP, crv: CoseCurve.Ed25519, x }, privateKey: d! };
}

export class GroupManager {
  #state: GroupManagerState;

  private constructor(state: GroupManagerState) {
    this.#state = state;
  }

  /** A new group: random Gid (`gidLength` bytes, default 4), 16-byte Master Secret, 8-byte Master Salt, and the GM's own key pair and CCS. */
  static create(options: { name: string; algorithms?: GroupAlgorithms; gidLength?: number; address?: string }): GroupManager {
    const algorithms = options.algorithms ?? DEFAULT_GROUP_ALGORITHMS;
    const gm = keyPairFor(algorithms.signature);
    const gidLength = options.gidLength ?? 4;
    const gid = toHex(randomBytes(gidLength));
    const state: GroupManagerState = {
      version: 1,
      name: options.name,
      gid,
      keyGeneration: 0,
      masterSecret: toHex(randomBytes(16)),
      masterSalt: toHex(randomBytes(8)),
      algorithms,
      gidLength,
      gm: { credential: toHex(encodeCcs({ sub: `group-manager ${options.name}`, coseKey: gm.coseKey })), privateKey: toHex(gm.privateKey) },
      members: [],
      usedSenderIds: [],
      usedGids: [gid],
      ...(options.address !== undefined ? { address: options.address } : {}),
    };
    // Fail now, not at the first member, on algorithms the core cannot use.
    deriveCommonContext({ masterSecret: fromHex(state.masterSecret), gid: fromHex(gid), algorithms, gmCredential: fromHex(state.gm.credential) });
    return new GroupManager(state);
  }

  static fromJSON(state: GroupManagerState): GroupManager {
    if (state.version !== 1) throw new OscoreConfigError(`unsupported Group Manager state version ${String(state.version)}`);
    return new GroupManager(structuredClone(state));
  }

  toJSON(): GroupManagerState {
    return structuredClone(this.#state);
  }

  get name(): string {
    return this.#state.name;
  }

  get keyGeneration(): number {
    return this.#state.keyGeneration;
  }

  get gid(): string {
    return this.#state.gid;
  }

  get memberNames(): string[] {
    return this.#state.members.map((m) => m.name);
  }

  /**
   * Adds a member with a fresh Sender ID (§12.2.1.2). With `credential` the member brings its own
   * key pair (its CCS; proof of possession is the caller's, §12.1); otherwise the GM makes one.
   */
  addMember(name: string, options: { credential?: Uint8Array } = {}): GroupMemberFile {
    const s = this.#state;
    if (s.members.some((m) => m.name === name)) throw new OscoreConfigError(`group ${s.name} already has a member ${name}`);
    const senderId = this.#freshSenderId();
    let record: MemberRecord;
    if (options.credential !== undefined) {
      record = { name, senderId, credential: toHex(options.credential) };
    } else {
      const pair = keyPairFor(s.algorithms.signature);
      record = { name, senderId, credential: toHex(encodeCcs({ sub: name, coseKey: pair.coseKey })), privateKey: toHex(pair.privateKey) };
    }
    // The credential must be usable in this group (a key the Signature Algorithm takes).
    const parsed = parseAuthCredential(fromHex(record.credential));
    if (s.algorithms.signature !== undefined && !credentialFitsSignature(parsed, s.algorithms.signature)) {
      throw new OscoreConfigError(`the credential of ${name} does not fit Signature Algorithm ${s.algorithms.signature}`);
    }
    s.members.push(record);
    s.usedSenderIds.push(senderId);
    return this.memberFile(name);
  }

  /** The member's file: its own context, the GM's credential, and the other members' Sender IDs and credentials (§12.1). */
  memberFile(name: string): GroupMemberFile {
    const s = this.#state;
    const me = s.members.find((m) => m.name === name);
    if (me === undefined) throw new OscoreConfigError(`group ${s.name} has no member ${name}`);
    return {
      version: 1,
      group: s.name,
      gid: s.gid,
      keyGeneration: s.keyGeneration,
      masterSecret: s.masterSecret,
      masterSalt: s.masterSalt,
      algorithms: s.algorithms,
      senderId: me.senderId,
      credential: me.credential,
      ...(me.privateKey !== undefined ? { privateKey: me.privateKey } : {}),
      gmCredential: s.gm.credential,
      members: s.members.filter((m) => m !== me).map((m) => ({ senderId: m.senderId, credential: m.credential })),
      ...(s.address !== undefined ? { address: s.address } : {}),
      ...(s.deterministicClient !== undefined ? { deterministicClient: { ...s.deterministicClient } } : {}),
    };
  }

  /**
   * cacheable-oscore §1.2, §3.4.1: sets up the group's Deterministic Client — a fictitious member
   * with a Sender ID of its own and no key pair — once; its Sender ID never changes, also across
   * rekeying, and is never given to a member. Member files issued after this carry it.
   */
  addDeterministicClient(hash: number = SHA_256): DeterministicClientRecord {
    const s = this.#state;
    if (s.deterministicClient !== undefined) throw new OscoreConfigError(`group ${s.name} already has a Deterministic Client (Sender ID ${s.deterministicClient.senderId || '(empty)'})`);
    coseHash(hash); // fails on a hash the core cannot compute
    const senderId = this.#freshSenderId();
    s.deterministicClient = { senderId, hash };
    s.usedSenderIds.push(senderId);
    return { ...s.deterministicClient };
  }

  /**
   * A new Sender ID for a member (key-groupcomm-oscore §9.2, e.g. its Sender Sequence Numbers are
   * exhausted): one not used under the current Gid (Group OSCORE §2.6.3.1), as for a new member.
   * The old one is relinquished; the caller records it as stale (§7.1).
   */
  renewSenderId(name: string): { previous: string; senderId: string } {
    const me = this.#memberRecord(name);
    const senderId = this.#freshSenderId();
    const previous = me.senderId;
    me.senderId = senderId;
    this.#state.usedSenderIds.push(senderId);
    return { previous, senderId };
  }

  /** Replaces a member's authentication credential (RFC 9594 §4.9.1; proof of possession is the caller's). */
  replaceCredential(name: string, credential: Uint8Array): void {
    const me = this.#memberRecord(name);
    const signature = this.#state.algorithms.signature;
    if (signature !== undefined && !credentialFitsSignature(parseAuthCredential(credential), signature)) {
      throw new OscoreConfigError(`the credential of ${name} does not fit Signature Algorithm ${signature}`);
    }
    me.credential = toHex(credential);
    // The Group Manager no longer holds the private key of a credential the member brought.
    delete me.privateKey;
  }

  #memberRecord(name: string): MemberRecord {
    const me = this.#state.members.find((m) => m.name === name);
    if (me === undefined) throw new OscoreConfigError(`group ${this.#state.name} has no member ${name}`);
    return me;
  }

  /** §12.2: "MUST rekey the group without undue delay when one or more endpoints leave". */
  removeMember(name: string): GroupRekey {
    const s = this.#state;
    const gone = s.members.find((m) => m.name === name);
    if (gone === undefined) throw new OscoreConfigError(`group ${s.name} has no member ${name}`);
    s.members = s.members.filter((m) => m !== gone);
    return this.rekey([gone.senderId]);
  }

  /** §12.2 steps 1–3: new Key Generation Number, Gid, Master Secret and Salt; the stale Sender IDs. */
  rekey(staleSenderIds: readonly string[] = []): GroupRekey {
    const s = this.#state;
    s.keyGeneration += 1;
    s.gid = this.#freshGid();
    s.usedGids.push(s.gid);
    s.masterSecret = toHex(randomBytes(16));
    s.masterSalt = toHex(randomBytes(8));
    // §12.2.1.2: under the new Gid, current members keep their IDs and nothing else is used yet.
    s.usedSenderIds = s.members.map((m) => m.senderId);
    if (s.deterministicClient !== undefined) s.usedSenderIds.push(s.deterministicClient.senderId);
    return { group: s.name, gid: s.gid, keyGeneration: s.keyGeneration, masterSecret: s.masterSecret, masterSalt: s.masterSalt, staleSenderIds: [...staleSenderIds] };
  }

  #freshSenderId(): string {
    const s = this.#state;
    const taken = new Set([...s.usedSenderIds, ...s.members.map((m) => m.senderId), ...(s.deterministicClient !== undefined ? [s.deterministicClient.senderId] : [])]);
    const maxLength = deriveCommonContext({ masterSecret: fromHex(s.masterSecret), gid: fromHex(s.gid), algorithms: s.algorithms, gmCredential: fromHex(s.gm.credential) }).maxIdLength;
    // Shortest IDs first (they cost bytes in every message): 1 byte, then 2, ...
    for (let length = 1; length <= Math.min(maxLength, 3); length += 1) {
      for (let n = 0; n < 256 ** length; n += 1) {
        const id = n.toString(16).padStart(2 * length, '0');
        if (!taken.has(id)) return id;
      }
    }
    throw new OscoreConfigError(`group ${s.name}: no Sender ID left under the current Gid; rekey the group`);
  }

  #freshGid(): string {
    const s = this.#state;
    for (let attempt = 0; attempt < 64; attempt += 1) {
      const gid = toHex(randomBytes(s.gidLength));
      if (!s.usedGids.includes(gid)) return gid;
    }
    throw new OscoreConfigError(`group ${s.name}: the Gid space is used up; the group must be re-established (§12.2.1.1)`);
  }
}

/** A member's context from its file. */
export function contextFromMemberFile(
  file: GroupMemberFile,
  options: { maxRecipients?: number; replayWindow?: number; sequenceSource?: { next(): number }; replayWindowsLost?: boolean } = {},
): GroupSecurityContext {
  if (file.version !== 1) throw new OscoreConfigError(`unsupported group member file version ${String(file.version)}`);
  if (file.privateKey === undefined) throw new OscoreConfigError(`the member file of group ${file.group} has no private key: add it from the member's own key store`);
  return new GroupSecurityContext({
    masterSecret: fromHex(file.masterSecret),
    masterSalt: fromHex(file.masterSalt),
    gid: fromHex(file.gid),
    algorithms: file.algorithms,
    gmCredential: fromHex(file.gmCredential),
    keyGeneration: file.keyGeneration,
    senderId: fromHex(file.senderId),
    ownCredential: { credential: fromHex(file.credential), privateKey: fromHex(file.privateKey) },
    members: file.members.map((m) => ({ senderId: fromHex(m.senderId), credential: fromHex(m.credential) })),
    ...(file.deterministicClient !== undefined ? { deterministicClient: { senderId: fromHex(file.deterministicClient.senderId), hash: file.deterministicClient.hash } } : {}),
    ...options,
  });
}

/** §12.2: a member installs the rekeying material; the stale members' credentials and Recipient Contexts go. */
export function applyRekey(context: GroupSecurityContext, rekey: GroupRekey): GroupSecurityContext {
  return context.rekeyed({
    masterSecret: fromHex(rekey.masterSecret),
    masterSalt: fromHex(rekey.masterSalt),
    gid: fromHex(rekey.gid),
    keyGeneration: rekey.keyGeneration,
    staleSenderIds: rekey.staleSenderIds.map(fromHex),
  });
}
