/**
 * The wire vocabulary of the pub-sub profile's KDC (draft-ietf-ace-coap-pubsub-profile §4.1.2, §9),
 * on top of RFC 9594's parameters (parameters.ts).
 *
 * Stand-ins, in this one place, for the values the draft leaves "TBD":
 *  - the key type Group_PubSub_Keying_Material ('gkty') is 2, the suggested value (§9.1);
 *  - the profile coap_group_pubsub_app ('ace_groupcomm_profile') is 2, the suggested value (§9.2);
 *  - the resource type of a topic's group-membership resource is "core.ps.gm" (§9.3, not TBD).
 * The labels inside 'key' (group_key 0, group_SenderId 1, cred_fmt 2, sign_alg 3, sign_params 4)
 * are the draft's own, not stand-ins.
 */
import { decodeStrict, encodeCbor, isBytes, isInt, isMap, type CborValue } from '../cose/cbor.js';
import { decodeGroupKey, encodeGroupKey, PubSubKeyError, type GroupKey } from '../pubsub-protection/key-material.js';
import { signParams } from './key-material.js';
import { CRED_FMT_KCCS } from './parameters.js';

export const GROUP_PUBSUB_KEY_TYPE = 2;
export const COAP_GROUP_PUBSUB_APP = 2;
export const PUBSUB_GM_RESOURCE_TYPE = 'core.ps.gm';

/** §4.1.2: the map in 'key' of the Join Response (and, without group_SenderId, of the keying material). */
export const PubSubKeyParam = { group_key: 0, group_SenderId: 1, cred_fmt: 2, sign_alg: 3, sign_params: 4 } as const;

/** What 'key' carries: the group key, the publisher's Sender ID (publishers only), the signature algorithm. */
export interface TopicKeyEntry {
  readonly groupKey: GroupKey;
  readonly senderId?: Uint8Array;
  readonly signAlg: number;
}

/** §4.1.2: 'key' as the KDC sends it; the group key a COSE_Key map (kty 4, alg, kid = Gid, k, Base IV). */
export function encodeTopicKey(entry: TopicKeyEntry): Map<number, CborValue> {
  const map = new Map<number, CborValue>([[PubSubKeyParam.group_key, decodeStrict(encodeGroupKey(entry.groupKey))]]);
  if (entry.senderId !== undefined) map.set(PubSubKeyParam.group_SenderId, entry.senderId);
  map.set(PubSubKeyParam.cred_fmt, CRED_FMT_KCCS);
  map.set(PubSubKeyParam.sign_alg, entry.signAlg);
  map.set(PubSubKeyParam.sign_params, signParams(entry.signAlg));
  return map;
}

/** 'key' of a Join Response or keying material, with the response's 'num' (and 'exp' if any). */
export function decodeTopicKey(value: CborValue | undefined, num: number, exp: number | undefined): TopicKeyEntry {
  if (!isMap(value)) throw new PubSubKeyError("'key' is not a Group_PubSub_Keying_Material map");
  const groupKey = value.get(PubSubKeyParam.group_key);
  const senderId = value.get(PubSubKeyParam.group_SenderId);
  const credFmt = value.get(PubSubKeyParam.cred_fmt);
  const signAlg = value.get(PubSubKeyParam.sign_alg);
  if (!isMap(groupKey)) throw new PubSubKeyError("'key' has no group_key COSE_Key");
  if (credFmt !== CRED_FMT_KCCS) throw new PubSubKeyError(`the group's credential format ${String(credFmt)} is not CCS (kccs, 14)`);
  if (!isInt(signAlg)) throw new PubSubKeyError("'key' has no sign_alg");
  if (senderId !== undefined && !isBytes(senderId)) throw new PubSubKeyError('group_SenderId must be a byte string');
  return { groupKey: decodeGroupKey(encodeCbor(groupKey), num, exp), signAlg, ...(senderId !== undefined ? { senderId } : {}) };
}
