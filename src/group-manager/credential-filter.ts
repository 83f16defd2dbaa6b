/**
 * The 'get_creds' filter (RFC 9594 §4.3.1, §4.4.1; key-groupcomm-oscore §6.1, §9.3): which group
 * members' authentication credentials a Join Request or a FETCH to /creds asks for.
 *
 *   get_creds = null / [ inclusion_flag: bool, role_filter: [* Tperm], id_filter: [* bstr Sender ID] ]
 *
 * A role_filter entry is a role or a combination of roles as key-groupcomm-oscore §3's Tperm bit
 * set; a member matches it when it has every role in it. With inclusion_flag true a member is
 * selected when it matches role_filter and/or id_filter; with false, when it matches role_filter
 * (or role_filter is empty) and is not in id_filter. Sender IDs of no current member are ignored
 * (§9.3, REQ26). Pure functions.
 */
import { isBytes, isInt, toHex, type CborValue } from '../cose/cbor.js';

export interface CredentialFilter {
  readonly inclusion: boolean;
  /** Tperm bit sets, each > 0. */
  readonly roles: readonly number[];
  /** Sender IDs, hex. */
  readonly senderIds: ReadonlySet<string>;
}

/** The filter of a 'get_creds' array; null for the CBOR null of a Join Request (every member); a string says why it is malformed. */
export function credentialFilterOf(value: CborValue | undefined, allowNull: boolean): CredentialFilter | null | string {
  if (value === null && allowNull) return null;
  if (!Array.isArray(value) || value.length !== 3) return "'get_creds' must be [inclusion_flag, role_filter, id_filter]";
  const [inclusion, roles, ids] = value;
  if (typeof inclusion !== 'boolean') return "the inclusion_flag of 'get_creds' must be true or false";
  if (!Array.isArray(roles) || !roles.every((r) => isInt(r) && r > 0)) return "the role_filter of 'get_creds' must be an array of role sets (Tperm, unsigned integers > 0)";
  if (!Array.isArray(ids) || !ids.every((id) => isBytes(id))) return "the id_filter of 'get_creds' must be an array of Sender IDs (byte strings)";
  // RFC 9594 §4.4.1: [bool, [], []] "MUST be considered malformed".
  if (roles.length === 0 && ids.length === 0) return "'get_creds' must name roles or Sender IDs (GET /creds returns every member)";
  return { inclusion, roles: roles as number[], senderIds: new Set((ids as Uint8Array[]).map(toHex)) };
}

/** Whether a member with roles `roles` (Tperm bit set) and Sender ID `senderId` (hex) is selected. */
export function selects(filter: CredentialFilter, roles: number, senderId: string): boolean {
  const roleMatch = filter.roles.some((wanted) => (roles & wanted) === wanted);
  const idMatch = filter.senderIds.has(senderId);
  if (filter.inclusion) return roleMatch || idMatch;
  return (filter.roles.length === 0 || roleMatch) && !idMatch;
}
