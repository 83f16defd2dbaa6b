/**
 * A topic's key material as one member holds it (draft-ietf-ace-coap-pubsub-profile §4.1.2, the
 * Join Response of RFC 9594 §4.3.1): the group key as a symmetric COSE_Key (kty 4, alg, kid = Gid,
 * k, Base IV), the key's version `num` and expiry `exp`, the publishers' authentication
 * credentials (`creds` with their `peer_identifiers`, the Sender IDs), and for a publisher its
 * `group_SenderId` and its own signing key.
 *
 * The member key file is JSON whose fields carry the RFC 9594 parameter names, with the COSE
 * structures as hex CBOR, so an online Group Manager can hand out the same content later.
 */
import type { KeyObject } from 'node:crypto';
import { findCoseAead, CoseAead } from '../cose/algorithms.js';
import { decodeStrict, encodeCbor, fromHex, isBytes, isInt, isMap, toHex, type CborValue } from '../cose/cbor.js';
import { coseKeyToPrivateKey, coseKeyToPublicKey, parseCoseKey } from '../cose/key.js';
import { CoseSignAlg, keyFitsSignAlg } from '../cose/sign.js';
import { CwtClaim, parseCcsValue } from '../cose/cwt.js';
import type { KeyEpochs } from './key-epochs.js';

export const PUBSUB_KEYS_FORMAT = 'coapsec-pubsub-keys/1';

/** COSE_Key labels of a symmetric key (RFC 9052 §7.1, RFC 9053 §6.1). */
const SymmetricKeyLabel = { kty: 1, kid: 2, alg: 3, baseIv: 5, k: -1 } as const;
const KTY_SYMMETRIC = 4;

export class PubSubKeyError extends Error {
  override readonly name = 'PubSubKeyError';
}

/** One generation of the topic's group key. */
export interface GroupKey {
  /** The AEAD (COSE algorithm id). */
  readonly alg: number;
  /** The key identifier, which is the security group's Gid while this key is current. */
  readonly gid: Uint8Array;
  readonly key: Uint8Array;
  readonly baseIv: Uint8Array;
  /** The version number (RFC 9594 'num'), 1 for the first key, +1 on each rekeying. */
  readonly num: number;
  /** Expiry in seconds since the epoch (RFC 9594 'exp'); undefined: until the next rekeying. */
  readonly exp?: number;
}

/** A publisher a subscriber trusts for this generation (R5.1): its Sender ID and public key. */
export interface PublisherCredential {
  readonly senderId: Uint8Array;
  readonly publicKey: KeyObject;
  /** The credential as given out (a COSE_Key map), kept to write it out again unchanged. */
  readonly encoded: Uint8Array;
}

/** What one member holds for one topic. */
export interface TopicKeyMaterial {
  readonly topic: string;
  readonly member: string;
  readonly roles: readonly ('publisher' | 'subscriber')[];
  /** The countersignature algorithm of the group (COSE id). */
  readonly signAlg: number;
  readonly groupKey: GroupKey;
  readonly publishers: readonly PublisherCredential[];
  /** Gids of retired generations: an object under one of them is refused as retired, not as unknown. */
  readonly retiredGids: readonly Uint8Array[];
  /** Scheduled rekeying (key-epochs.ts): `groupKey` is the key of the epoch that began at `start`. */
  readonly epochs?: KeyEpochs;
  /** Publisher only: its Sender ID (RFC 9594 'group_SenderId') and signing key. */
  readonly senderId?: Uint8Array;
  readonly signingKey?: KeyObject;
  /** Publisher only: the signing key as a COSE_Key (private), kept to write it out again. */
  readonly signingKeyEncoded?: Uint8Array;
}

export function encodeGroupKey(g: GroupKey): Uint8Array {
  return encodeCbor(
    new Map<number, CborValue>([
      [SymmetricKeyLabel.kty, KTY_SYMMETRIC],
      [SymmetricKeyLabel.kid, g.gid],
      [SymmetricKeyLabel.alg, g.alg],
      [SymmetricKeyLabel.baseIv, g.baseIv],
      [SymmetricKeyLabel.k, g.key],
    ]),
  );
}

export function decodeGroupKey(bytes: Uint8Array, num: number, exp: number | undefined): GroupKey {
  const m = decodeStrict(bytes);
  if (!isMap(m) || m.get(SymmetricKeyLabel.kty) !== KTY_SYMMETRIC) throw new PubSubKeyError('group_key must be a symmetric COSE_Key (kty 4)');
  const alg = m.get(SymmetricKeyLabel.alg);
  const gid = m.get(SymmetricKeyLabel.kid);
  const key = m.get(SymmetricKeyLabel.k);
  const baseIv = m.get(SymmetricKeyLabel.baseIv);
  if (!isInt(alg) || !isBytes(gid) || !isBytes(key) || !isBytes(baseIv)) throw new PubSubKeyError('group_key needs alg, kid, k and Base IV');
  const aead = findCoseAead(alg);
  if (aead === undefined) throw new PubSubKeyError(`group_key: unsupported AEAD ${alg}`);
  // §6.2: the nonce construction needs at least 7 bytes of nonce; the Base IV is one nonce long.
  if (key.length !== aead.keyLength || baseIv.length !== aead.nonceLength || aead.nonceLength < 7) {
    throw new PubSubKeyError(`group_key: ${aead.name} needs a ${aead.keyLength}-byte key and a ${aead.nonceLength}-byte Base IV`);
  }
  return { alg, gid, key, baseIv, num, ...(exp !== undefined ? { exp } : {}) };
}

/**
 * A publisher's credential: a COSE_Key (the offline tool's key files) or a CWT Claims Set carrying
 * one in cnf (RFC 8392, cred_fmt kccs: what the online KDC distributes, profile §4.1.2).
 */
export function parsePublisherCredential(senderId: Uint8Array, encoded: Uint8Array, signAlg: number): PublisherCredential {
  let publicKey: KeyObject;
  try {
    const value = decodeStrict(encoded);
    publicKey = coseKeyToPublicKey(isMap(value) && value.has(CwtClaim.cnf) ? parseCcsValue(value).coseKey : parseCoseKey(value));
  } catch (error) {
    throw new PubSubKeyError(`credential of publisher ${toHex(senderId)}: ${(error as Error).message}`);
  }
  if (!keyFitsSignAlg(signAlg, publicKey)) throw new PubSubKeyError(`credential of publisher ${toHex(senderId)} does not fit signature algorithm ${signAlg}`);
  return { senderId, publicKey, encoded };
}

/** The member key file's JSON. */
interface MemberKeyFile {
  format: string;
  topic: string;
  member: string;
  roles: string[];
  sign_alg: number;
  num: number;
  exp?: number;
  group_key: string;
  creds: { peer_identifier: string; cred: string }[];
  retired_gids: string[];
  /** coapsec extension (key-epochs.ts): when group_key's epoch began, and the epochs' lifetime, in seconds. */
  epoch_start?: number;
  epoch_lifetime?: number;
  group_SenderId?: string;
  signing_key?: string;
}

export function serializeKeyMaterial(m: TopicKeyMaterial): string {
  const file: MemberKeyFile = {
    format: PUBSUB_KEYS_FORMAT,
    topic: m.topic,
    member: m.member,
    roles: [...m.roles],
    sign_alg: m.signAlg,
    num: m.groupKey.num,
    ...(m.groupKey.exp !== undefined ? { exp: m.groupKey.exp } : {}),
    group_key: toHex(encodeGroupKey(m.groupKey)),
    creds: m.publishers.map((p) => ({ peer_identifier: toHex(p.senderId), cred: toHex(p.encoded) })),
    retired_gids: m.retiredGids.map(toHex),
    ...(m.epochs !== undefined ? { epoch_start: m.epochs.start, epoch_lifetime: m.epochs.lifetime } : {}),
    ...(m.senderId !== undefined ? { group_SenderId: toHex(m.senderId) } : {}),
    ...(m.signingKeyEncoded !== undefined ? { signing_key: toHex(m.signingKeyEncoded) } : {}),
  };
  return JSON.stringify(file, null, 2) + '\n';
}

const HEX = /^(?:[0-9a-f]{2})*$/;

function hexField(value: unknown, name: string): Uint8Array {
  if (typeof value !== 'string' || !HEX.test(value)) throw new PubSubKeyError(`${name} must be lowercase hex`);
  return fromHex(value);
}

export function parseKeyMaterial(text: string): TopicKeyMaterial {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new PubSubKeyError(`not JSON: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null) throw new PubSubKeyError('a key file is a JSON object');
  const f = json as Partial<Record<keyof MemberKeyFile, unknown>>;
  if (f.format !== PUBSUB_KEYS_FORMAT) throw new PubSubKeyError(`format must be "${PUBSUB_KEYS_FORMAT}"`);
  if (typeof f.topic !== 'string' || typeof f.member !== 'string') throw new PubSubKeyError('topic and member must be strings');
  const roles = f.roles;
  if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => r === 'publisher' || r === 'subscriber')) {
    throw new PubSubKeyError('roles must list "publisher" and/or "subscriber"');
  }
  if (!isInt(f.sign_alg) || !Object.values(CoseSignAlg).includes(f.sign_alg as never)) throw new PubSubKeyError('sign_alg must be a COSE signature algorithm');
  if (!isInt(f.num) || f.num < 1) throw new PubSubKeyError('num must be a positive integer');
  if (f.exp !== undefined && !isInt(f.exp)) throw new PubSubKeyError('exp must be an integer (seconds since the epoch)');
  let groupKey: GroupKey;
  try {
    groupKey = decodeGroupKey(hexField(f.group_key, 'group_key'), f.num, f.exp as number | undefined);
  } catch (error) {
    throw error instanceof PubSubKeyError ? error : new PubSubKeyError((error as Error).message);
  }
  if (!Array.isArray(f.creds)) throw new PubSubKeyError('creds must be an array');
  const publishers = f.creds.map((c: unknown, i) => {
    const entry = (c ?? {}) as { peer_identifier?: unknown; cred?: unknown };
    return parsePublisherCredential(hexField(entry.peer_identifier, `creds[${i}].peer_identifier`), hexField(entry.cred, `creds[${i}].cred`), f.sign_alg as number);
  });
  const maxIdLength = findCoseAead(groupKey.alg)!.nonceLength - 6;
  for (const p of publishers) if (p.senderId.length > maxIdLength) throw new PubSubKeyError(`Sender ID ${toHex(p.senderId)} is longer than the nonce allows (§4.1.2)`);
  if (!Array.isArray(f.retired_gids)) throw new PubSubKeyError('retired_gids must be an array');
  const retiredGids = f.retired_gids.map((g, i) => hexField(g, `retired_gids[${i}]`));
  const isPublisher = roles.includes('publisher');
  if (isPublisher !== (f.group_SenderId !== undefined) || isPublisher !== (f.signing_key !== undefined)) {
    throw new PubSubKeyError('a publisher key file has group_SenderId and signing_key; a subscriber key file has neither');
  }
  if ((f.epoch_start === undefined) !== (f.epoch_lifetime === undefined)) throw new PubSubKeyError('epoch_start and epoch_lifetime go together');
  if (f.epoch_start !== undefined && (!isInt(f.epoch_start) || !isInt(f.epoch_lifetime) || (f.epoch_lifetime as number) < 1)) {
    throw new PubSubKeyError('epoch_start and epoch_lifetime must be whole seconds (epoch_lifetime at least 1)');
  }
  const epochs = f.epoch_start !== undefined ? { epochs: { start: f.epoch_start as number, lifetime: f.epoch_lifetime as number } } : {};
  const base = { topic: f.topic, member: f.member, roles: roles as ('publisher' | 'subscriber')[], signAlg: f.sign_alg as number, groupKey, publishers, retiredGids, ...epochs };
  if (!isPublisher) return base;
  const senderId = hexField(f.group_SenderId, 'group_SenderId');
  const signingKeyEncoded = hexField(f.signing_key, 'signing_key');
  let signingKey: KeyObject;
  try {
    signingKey = coseKeyToPrivateKey(parseCoseKey(decodeStrict(signingKeyEncoded)));
  } catch (error) {
    throw new PubSubKeyError(`signing_key: ${(error as Error).message}`);
  }
  if (!keyFitsSignAlg(f.sign_alg as number, signingKey)) throw new PubSubKeyError('signing_key does not fit sign_alg');
  if (senderId.length > maxIdLength) throw new PubSubKeyError('group_SenderId is longer than the nonce allows (§4.1.2)');
  return { ...base, senderId, signingKey, signingKeyEncoded };
}

export const DEFAULT_AEAD = CoseAead.AES_CCM_16_64_128;
export const DEFAULT_SIGN_ALG = CoseSignAlg.EdDSA;
