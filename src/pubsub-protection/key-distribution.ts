/**
 * The offline key distribution role for one topic (the KDC of draft-ietf-ace-coap-pubsub-profile,
 * RFC 9594, acting as a trusted dealer): its state is one JSON object that `coapsec pubsub-keys`
 * keeps in a file; `issueKeyMaterial` gives one member what a Join Response would (§4.1.2).
 *
 * Rekeying (RFC 9594 §6, profile §5) makes a new generation: new key, new Base IV, new Gid, version
 * + 1, the old Gid listed as retired. It happens when a member is removed (so a departed member
 * cannot read what follows, R5.7) and whenever the operator runs it (on a schedule: a generation
 * can also carry an expiry, `exp`, after which publishers and subscribers refuse it). With key
 * epochs (`epoch_lifetime`, key-epochs.ts) the members also step to a new key by themselves every
 * epoch, with nothing redistributed; a key file is issued with the current epoch's key.
 *
 * The state holds the publishers' private signing keys, since this tool creates them: it is as
 * secret as every key file it issues (written owner-only). An online Group Manager would instead
 * take each publisher's own credential at join time; the state's fields are the ones it needs.
 */
import { randomBytes } from 'node:crypto';
import { coseAead, findCoseAead } from '../cose/algorithms.js';
import { bytesView, decodeStrict, encodeCbor, fromHex, toHex } from '../cose/cbor.js';
import { coseKeyFromKeyObject, coseKeyToPrivateKey, encodeCoseKey, parseCoseKey, generateKeyPairOn, CoseCurve } from '../cose/key.js';
import { CoseSignAlg } from '../cose/sign.js';
import { EpochKeyHolder, epochIndex, type KeyEpochs } from './key-epochs.js';
import { DEFAULT_AEAD, DEFAULT_SIGN_ALG, decodeGroupKey, encodeGroupKey, parsePublisherCredential, PubSubKeyError, type GroupKey, type TopicKeyMaterial } from './key-material.js';

export const PUBSUB_KDC_FORMAT = 'coapsec-pubsub-kdc/1';
const GID_LENGTH = 6;

export type MemberRole = 'publisher' | 'subscriber';

interface KdcMember {
  roles: MemberRole[];
  /** Publishers: Sender ID (hex), public credential and private key (hex COSE_Key). */
  sender_id?: string;
  cred?: string;
  signing_key?: string;
}

export interface KdcState {
  format: string;
  topic: string;
  sign_alg: number;
  num: number;
  group_key: string;
  exp?: number;
  /** Seconds each generation lives, when set at creation; a rekeying sets the next `exp` from it. */
  lifetime?: number;
  /** Scheduled rekeying by key epochs: seconds per epoch, and when the current generation's epoch 0 began. */
  epoch_lifetime?: number;
  epoch_start?: number;
  retired_gids: string[];
  /** Sender IDs are never handed out twice (§4.1.2 asks only: not since the last rekeying). */
  next_sender_id: number;
  members: Record<string, KdcMember>;
}

function newGroupKey(alg: number, num: number, lifetime: number | undefined, now: number): GroupKey {
  const aead = coseAead(alg);
  const exp = lifetime === undefined ? undefined : Math.floor(now / 1000) + lifetime;
  return { alg, gid: bytesView(randomBytes(GID_LENGTH)), key: bytesView(randomBytes(aead.keyLength)), baseIv: bytesView(randomBytes(aead.nonceLength)), num, ...(exp !== undefined ? { exp } : {}) };
}

/**
 * A new topic group. `initialVersion` is the first key's 'num': 1 for the offline tool's files (as
 * before), 0 for the online KDC (profile §4.1.2, REQ16: "MUST be set to 0 upon creating the group").
 */
export function createTopicGroup(topic: string, options: { aead?: number; signAlg?: number; lifetimeSeconds?: number; epochSeconds?: number; now?: number; initialVersion?: number } = {}): KdcState {
  const aead = options.aead ?? DEFAULT_AEAD;
  const a = findCoseAead(aead);
  if (a === undefined || a.nonceLength < 7) throw new PubSubKeyError(`AEAD ${aead} cannot be used: the profile's nonce needs at least 7 bytes (§6.2)`);
  const signAlg = options.signAlg ?? DEFAULT_SIGN_ALG;
  if (signAlg !== CoseSignAlg.EdDSA && signAlg !== CoseSignAlg.ES256) throw new PubSubKeyError('the signature algorithm must be EdDSA (Ed25519) or ES256');
  if (options.lifetimeSeconds !== undefined && !(Number.isInteger(options.lifetimeSeconds) && options.lifetimeSeconds > 0)) throw new PubSubKeyError('the lifetime must be a positive number of seconds');
  if (options.epochSeconds !== undefined && !(Number.isInteger(options.epochSeconds) && options.epochSeconds > 0)) throw new PubSubKeyError('the epoch lifetime must be a positive number of seconds');
  const now = options.now ?? Date.now();
  const groupKey = newGroupKey(aead, options.initialVersion ?? 1, options.lifetimeSeconds, now);
  return {
    format: PUBSUB_KDC_FORMAT,
    topic,
    sign_alg: signAlg,
    num: groupKey.num,
    group_key: toHex(encodeGroupKey(groupKey)),
    ...(groupKey.exp !== undefined ? { exp: groupKey.exp } : {}),
    ...(options.lifetimeSeconds !== undefined ? { lifetime: options.lifetimeSeconds } : {}),
    ...(options.epochSeconds !== undefined ? { epoch_lifetime: options.epochSeconds, epoch_start: Math.floor(now / 1000) } : {}),
    retired_gids: [],
    next_sender_id: 0,
    members: {},
  };
}

/** The shortest byte string for n (0 is one zero byte), like a Partial IV. */
function senderIdFor(n: number): Uint8Array {
  const bytes: number[] = [];
  do {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  } while (n > 0);
  return Uint8Array.from(bytes);
}

/** A Sender ID never handed out in this group (§4.1.2: at most the AEAD nonce length - 6 bytes). */
export function assignSenderId(state: KdcState): Uint8Array {
  const senderId = senderIdFor(state.next_sender_id);
  if (senderId.length > coseAead(currentGroupKey(state).alg).nonceLength - 6) throw new PubSubKeyError('no Sender IDs left for this AEAD: create a new group');
  state.next_sender_id += 1;
  return senderId;
}

/** The group key as it is now (the current generation; key epochs are not stepped here). */
export const currentGroupKey = (state: KdcState): GroupKey => decodeGroupKey(fromHex(state.group_key), state.num, state.exp);

export function addMember(state: KdcState, name: string, role: MemberRole): void {
  if (!/^[\w.@:-]{1,64}$/.test(name)) throw new PubSubKeyError(`member name "${name}": use 1-64 letters, digits and . _ - @ :`);
  const member = (state.members[name] ??= { roles: [] });
  if (member.roles.includes(role)) throw new PubSubKeyError(`"${name}" is already a ${role} of "${state.topic}"`);
  member.roles.push(role);
  if (role !== 'publisher') return;
  const senderId = assignSenderId(state);
  const pair = state.sign_alg === CoseSignAlg.ES256 ? generateKeyPairOn(CoseCurve.P256) : generateKeyPairOn(CoseCurve.Ed25519);
  member.sender_id = toHex(senderId);
  member.cred = toHex(encodeCbor(encodeCoseKey(coseKeyFromKeyObject(pair.publicKey))));
  member.signing_key = toHex(encodeCbor(encodeCoseKey(coseKeyFromKeyObject(pair.privateKey, { includePrivate: true }))));
}

/** A new generation; every earlier Gid is retired. */
export function rekey(state: KdcState, now = Date.now()): void {
  const old = currentGroupKey(state);
  const next = newGroupKey(old.alg, old.num + 1, state.lifetime, now);
  state.retired_gids.push(toHex(old.gid));
  state.num = next.num;
  state.group_key = toHex(encodeGroupKey(next));
  if (next.exp !== undefined) state.exp = next.exp;
  else delete state.exp;
  if (state.epoch_lifetime !== undefined) state.epoch_start = Math.floor(now / 1000);
}

/** Removes a member and rekeys, so what is published after cannot be read with what it held (R5.7). */
export function removeMember(state: KdcState, name: string, now = Date.now()): void {
  if (!Object.hasOwn(state.members, name)) throw new PubSubKeyError(`"${name}" is not a member of "${state.topic}"`);
  delete state.members[name];
  rekey(state, now);
}

/** One member's key material: with key epochs, the current epoch's key (not the earlier ones). */
export function issueKeyMaterial(state: KdcState, name: string, now = Date.now()): TopicKeyMaterial {
  const member = Object.hasOwn(state.members, name) ? state.members[name] : undefined;
  if (member === undefined) throw new PubSubKeyError(`"${name}" is not a member of "${state.topic}"`);
  const publishers = Object.values(state.members)
    .filter((m) => m.roles.includes('publisher'))
    .map((m) => parsePublisherCredential(fromHex(m.sender_id!), fromHex(m.cred!), state.sign_alg));
  let groupKey = currentGroupKey(state);
  let epochs: { epochs: KeyEpochs } | undefined;
  if (state.epoch_lifetime !== undefined && state.epoch_start !== undefined) {
    const generation = { start: state.epoch_start, lifetime: state.epoch_lifetime };
    const index = epochIndex(generation, now);
    const holder = new EpochKeyHolder(groupKey, generation);
    groupKey = holder.current(now);
    epochs = { epochs: { start: generation.start + index * generation.lifetime, lifetime: generation.lifetime } };
  }
  const base = {
    topic: state.topic,
    member: name,
    roles: [...member.roles],
    signAlg: state.sign_alg,
    groupKey,
    publishers,
    retiredGids: state.retired_gids.map(fromHex),
    ...epochs,
  };
  if (!member.roles.includes('publisher')) return base;
  const signingKeyEncoded = fromHex(member.signing_key!);
  return { ...base, senderId: fromHex(member.sender_id!), signingKeyEncoded, signingKey: coseKeyToPrivateKey(parseCoseKey(decodeStrict(signingKeyEncoded))) };
}

export function parseKdcState(text: string): KdcState {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new PubSubKeyError(`not JSON: ${(error as Error).message}`);
  }
  const s = json as Partial<KdcState> | null;
  if (typeof s !== 'object' || s === null || s.format !== PUBSUB_KDC_FORMAT) throw new PubSubKeyError(`format must be "${PUBSUB_KDC_FORMAT}"`);
  if (typeof s.topic !== 'string' || typeof s.num !== 'number' || typeof s.group_key !== 'string' || typeof s.sign_alg !== 'number' || typeof s.next_sender_id !== 'number' || !Array.isArray(s.retired_gids) || typeof s.members !== 'object' || s.members === null) {
    throw new PubSubKeyError('missing or mistyped fields (topic, num, group_key, sign_alg, next_sender_id, retired_gids, members)');
  }
  const state = s as KdcState;
  if ((s.epoch_lifetime === undefined) !== (s.epoch_start === undefined) || (s.epoch_lifetime !== undefined && !(Number.isInteger(s.epoch_lifetime) && s.epoch_lifetime > 0 && Number.isInteger(s.epoch_start)))) {
    throw new PubSubKeyError('epoch_lifetime (positive seconds) and epoch_start (seconds) go together');
  }
  currentGroupKey(state);
  return state;
}
