/**
 * Who may do what in a group (key-groupcomm-oscore §3): the roles an access token grants, the
 * roles a Join Request asks for, as Tperm bit sets; and the small answers every handler shares.
 */
import { ResponseCode } from '../coap/codes.js';
import { decodeStrict, type CborValue } from '../cose/cbor.js';
import { aifScopeFormat, GROUP_OSCORE_ROLES, splitScopeToken } from '../ace/scope-format.js';
import type { CoapResponse } from '../server/resource.js';

/** The requesting client as the ACE resource server authenticated it. */
export interface GroupClient {
  /** A stable name of its access token's security association (the OSCORE context's peer name). */
  readonly id: string;
  /** The scope tokens of its access token; undefined without one. */
  readonly scope: readonly string[] | undefined;
}

const GROUP_SCOPES = aifScopeFormat(GROUP_OSCORE_ROLES);
export const ROLE = GROUP_OSCORE_ROLES as { requester: number; responder: number; monitor: number; verifier: number };
export const bit = (role: number): number => 1 << role;
/** The roles that send with a Sender ID and an authentication credential of their own. */
export const SENDING_ROLES = bit(ROLE.requester) | bit(ROLE.responder);

/** The roles the client's token grants in `group` as a Tperm bit set; undefined without a token. */
export function grantedRoles(client: GroupClient, group: string): number | undefined {
  if (client.scope === undefined) return undefined;
  let roles = 0;
  for (const token of client.scope) {
    const parts = splitScopeToken(token);
    const role = parts?.name === group ? GROUP_OSCORE_ROLES[parts.role] : undefined;
    if (role !== undefined) roles |= bit(role);
  }
  return roles;
}

/** The join's scope: exactly one entry, for this group (key-groupcomm-oscore §6.1). A string is why not. */
export function requestedRoles(scope: Uint8Array, group: string): number | string {
  let tokens: string[];
  try {
    tokens = GROUP_SCOPES.tokens(scope);
  } catch (e) {
    return (e as Error).message;
  }
  let roles = 0;
  for (const token of tokens) {
    const parts = splitScopeToken(token);
    if (parts?.name !== group) return `the scope names another group than ${group}`;
    const role = GROUP_OSCORE_ROLES[parts.role];
    if (role === undefined) return `unknown role ${parts.role}`;
    roles |= bit(role);
  }
  return roles === 0 ? 'the scope names no role' : roles;
}

export function roleNames(roles: number): string {
  return Object.entries(GROUP_OSCORE_ROLES).filter(([, b]) => (roles & bit(b)) !== 0).map(([name]) => name).join('+');
}

export const forbidden = (detail: string): CoapResponse => ({ code: ResponseCode.Forbidden, payload: detail, maxAge: 0 });

export function decodeMap(payload: Uint8Array): Map<CborValue, CborValue> | undefined {
  if (payload.length === 0) return undefined;
  try {
    const value = decodeStrict(payload);
    return value instanceof Map ? value : undefined;
  } catch {
    return undefined;
  }
}

