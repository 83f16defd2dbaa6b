/**
 * The group keying material on the wire (draft-ietf-ace-key-groupcomm-oscore §6.3): the
 * Group_OSCORE_Input_Material object in 'key', the algorithms' capabilities in 'sign_params' and
 * 'ecdh_params', 'sign_info' (RFC 9594 §3.3.1), and the proof-of-possession inputs (RFC 9594
 * §4.3.1: bstr(scope) | bstr(N_S) | bstr(N_C) for the joining node, bstr(N_C) | bstr(N_KDC) for the
 * Group Manager). Both the Group Manager and the joining member use these; pure functions.
 */
import { concatBytes, encodeCbor, fromHex, isBytes, isInt, toHex, type CborValue } from '../cose/cbor.js';
import { CoseCurve, CoseKty } from '../cose/key.js';
import { CoseSignAlg } from '../cose/sign.js';
import type { GroupAlgorithms } from '../group-oscore/common.js';
import { CRED_FMT_KCCS, GroupInput } from './parameters.js';

/** What 'key' carries, as the member file writes it (hex strings). */
export interface GroupKeyMaterial {
  readonly gid: string;
  readonly masterSecret: string;
  readonly masterSalt: string;
  readonly algorithms: GroupAlgorithms;
  /** Absent for a monitor and in the group's keying material resource (RFC 9594 §4.3.2). */
  readonly senderId?: string;
}

export class KeyMaterialError extends Error {
  override readonly name = 'KeyMaterialError';
}

/** [alg capabilities, key type capabilities] of a signature algorithm (the COSE registries' "Capabilities"). */
export function signParams(signature: number): [number[], number[]] {
  if (signature === CoseSignAlg.ES256) return [[CoseKty.EC2], [CoseKty.EC2, CoseCurve.P256]];
  return [[CoseKty.OKP], [CoseKty.OKP, CoseCurve.Ed25519]];
}

/** The pairwise mode's ECDH keys follow the signature keys (Ed25519 → X25519, §2.5.2.1 of Group OSCORE). */
function ecdhParams(signature: number): [number[], number[]] {
  if (signature === CoseSignAlg.ES256) return [[CoseKty.EC2], [CoseKty.EC2, CoseCurve.P256]];
  return [[CoseKty.OKP], [CoseKty.OKP, CoseCurve.X25519]];
}

export function encodeKeyMaterial(m: GroupKeyMaterial): Map<number, CborValue> {
  const a = m.algorithms;
  const map = new Map<number, CborValue>([[GroupInput.ms, fromHex(m.masterSecret)]]);
  // §6.3: 'hkdf' may be omitted for HKDF SHA-256, 'salt' for the empty salt; we always send both.
  map.set(GroupInput.hkdf, a.hkdf);
  if (a.aead !== undefined) map.set(GroupInput.alg, a.aead);
  map.set(GroupInput.salt, fromHex(m.masterSalt));
  map.set(GroupInput.contextId, fromHex(m.gid));
  if (m.senderId !== undefined) map.set(GroupInput.group_SenderId, fromHex(m.senderId));
  map.set(GroupInput.cred_fmt, CRED_FMT_KCCS);
  if (a.signature !== undefined) {
    if (a.groupEncryption !== undefined) map.set(GroupInput.gp_enc_alg, a.groupEncryption);
    map.set(GroupInput.sign_alg, a.signature);
    map.set(GroupInput.sign_params, signParams(a.signature));
  }
  if (a.pairwiseKeyAgreement !== undefined) {
    map.set(GroupInput.ecdh_alg, a.pairwiseKeyAgreement);
    map.set(GroupInput.ecdh_params, ecdhParams(a.signature ?? CoseSignAlg.EdDSA));
  }
  return map;
}

/**
 * key-groupcomm-oscore §9.6: the 'key' of a Signature Verification Data Response — hkdf,
 * contextId, cred_fmt, gp_enc_alg, sign_alg, sign_params, and alg and ecdh_alg unless the group is
 * signature-only. Never the Master Secret or Salt: a verifier verifies, it does not decrypt.
 */
export function verifierKeyMaterial(m: GroupKeyMaterial): Map<number, CborValue> {
  const full = encodeKeyMaterial(m);
  const kept = [GroupInput.hkdf, GroupInput.contextId, GroupInput.cred_fmt, GroupInput.gp_enc_alg, GroupInput.sign_alg, GroupInput.sign_params, GroupInput.alg, GroupInput.ecdh_alg];
  return new Map([...full].filter(([label]) => (kept as number[]).includes(label)));
}

export function decodeKeyMaterial(value: CborValue | undefined): GroupKeyMaterial {
  if (!(value instanceof Map)) throw new KeyMaterialError("'key' is not a Group_OSCORE_Input_Material map");
  const bytes = (label: number, what: string, required: boolean): string | undefined => {
    const v = value.get(label);
    if (v === undefined && !required) return undefined;
    if (!isBytes(v)) throw new KeyMaterialError(`'key' has no byte string ${what}`);
    return toHex(v);
  };
  const int = (label: number): number | undefined => {
    const v = value.get(label);
    if (v === undefined) return undefined;
    if (!isInt(v)) throw new KeyMaterialError(`'key' parameter ${label} must be an integer algorithm`);
    return v;
  };
  const credFmt = int(GroupInput.cred_fmt);
  if (credFmt !== CRED_FMT_KCCS) throw new KeyMaterialError(`the group's credential format ${String(credFmt)} is not CCS (kccs, 14)`);
  const algorithms: GroupAlgorithms = {
    hkdf: int(GroupInput.hkdf) ?? 5,
    ...optional('aead', int(GroupInput.alg)),
    ...optional('groupEncryption', int(GroupInput.gp_enc_alg)),
    ...optional('signature', int(GroupInput.sign_alg)),
    ...optional('pairwiseKeyAgreement', int(GroupInput.ecdh_alg)),
  };
  const senderId = bytes(GroupInput.group_SenderId, 'group_SenderId', false);
  return {
    gid: bytes(GroupInput.contextId, 'contextId', true)!,
    masterSecret: bytes(GroupInput.ms, 'ms', true)!,
    masterSalt: bytes(GroupInput.salt, 'salt', false) ?? '',
    algorithms,
    ...(senderId !== undefined ? { senderId } : {}),
  };
}

const optional = <K extends string>(key: K, value: number | undefined): Partial<Record<K, number>> => (value === undefined ? {} : ({ [key]: value } as Record<K, number>));

/** RFC 9594 §3.3.1 sign_info_res with one entry: [gname, sign_alg, sign_parameters, sign_key_parameters, cred_fmt]. */
export function signInfo(groupName: string, signature: number): CborValue[] {
  const [algCapabilities, keyCapabilities] = signParams(signature);
  return [[groupName, signature, algCapabilities, keyCapabilities, CRED_FMT_KCCS]];
}

/** The Signature Algorithm a sign_info names for `groupName`, if any. */
export function signatureFromSignInfo(value: CborValue | undefined, groupName: string): number | undefined {
  if (!Array.isArray(value)) return undefined;
  for (const entry of value) {
    if (!Array.isArray(entry) || !isInt(entry[1])) continue;
    const names = Array.isArray(entry[0]) ? entry[0] : [entry[0]];
    if (names.includes(groupName)) return entry[1];
  }
  return undefined;
}

/** RFC 9594 §4.3.1 (Figure 10): the joining node's PoP input. */
export const clientPopInput = (scope: Uint8Array, nS: Uint8Array, nC: Uint8Array): Uint8Array => concatBytes(encodeCbor(scope), encodeCbor(nS), encodeCbor(nC));

/** RFC 9594 §4.3.1 (Figure 15): the Group Manager's PoP input. */
export const kdcPopInput = (nC: Uint8Array, nKdc: Uint8Array): Uint8Array => concatBytes(encodeCbor(nC), encodeCbor(nKdc));
