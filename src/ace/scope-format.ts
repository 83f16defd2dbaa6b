/**
 * How an audience writes its scopes on the wire. The AS, the RS and the handlers work on scope
 * tokens (strings); a ScopeFormat turns a token's scope into those tokens and back.
 *
 *  - text (the default): space-separated tokens (RFC 6749 §3.3), as RFC 9203's examples use;
 *  - AIF (RFC 9237): a byte string wrapping the CBOR array [* [Toid, Tperm]], Toid a text string
 *    and Tperm a bit set of named permissions. The ACE Group Manager's scope (RFC 9594 §3.1 with
 *    draft-ietf-ace-key-groupcomm-oscore §3, AIF-OSCORE-GROUPCOMM: Toid the group name, Tperm the
 *    roles, bit X set for role X) is one. Its scope tokens are "NAME:ROLE", one per role. The
 *    pub-sub profile's scope (draft-ietf-ace-coap-pubsub-profile §3.4.1, AIF-PUBSUB-GROUPCOMM:
 *    Toid a topic or its security group, Tperm the operations) is another: "TOPIC:publish".
 */
import { CborError, decodeStrict, encodeCbor, isBytes, isInt } from '../cose/cbor.js';
import { AceFormatError, scopeTokens, type Scope } from './ace-cbor.js';
import { bytesToHex } from '../util/bytes.js';

export interface ScopeFormat {
  /** The scope tokens of a scope (AceFormatError when it is malformed). */
  tokens(scope: Scope): string[];
  /** The wire scope granting exactly these tokens. */
  encode(tokens: readonly string[]): Scope;
}

export const TEXT_SCOPES: ScopeFormat = {
  tokens: scopeTokens,
  encode: (tokens) => tokens.join(' '),
};

/** draft-ietf-ace-key-groupcomm-oscore §3, Table 1: the Group OSCORE roles and their bit numbers (0 is reserved). */
export const GROUP_OSCORE_ROLES: Readonly<Record<string, number>> = { requester: 1, responder: 2, monitor: 3, verifier: 4 };

/**
 * draft-ietf-ace-coap-pubsub-profile §3.4.1, Figure 6: the pub-sub permissions and their bit
 * numbers. Admin (0) is left unnamed: "the scope entries MUST have the least significant bit of
 * Tperm set to 0", so a scope with it becomes the token "NAME:bit0", which nothing grants.
 */
export const PUBSUB_PERMISSIONS: Readonly<Record<string, number>> = { appgroup: 1, publish: 2, read: 3, delete: 4 };

/** "NAME:ROLE" — a group name is a URI path segment and may hold ':', a role name never does. */
export function splitScopeToken(token: string): { name: string; role: string } | undefined {
  const colon = token.lastIndexOf(':');
  return colon <= 0 || colon === token.length - 1 ? undefined : { name: token.slice(0, colon), role: token.slice(colon + 1) };
}

/**
 * AIF scopes whose permission bits are the named `roles` (bit number per role). A permission bit
 * with no name becomes the token "NAME:bitN", which no RS configuration grants, so it is refused
 * as an unknown scope rather than dropped.
 */
export function aifScopeFormat(roles: Readonly<Record<string, number>>): ScopeFormat {
  const names = new Map(Object.entries(roles).map(([name, bit]) => [bit, name]));
  return {
    tokens(scope) {
      if (typeof scope === 'string') return scopeTokens(scope);
      let entries: unknown;
      try {
        entries = decodeStrict(scope);
      } catch (e) {
        throw new AceFormatError(`the AIF scope is not CBOR: ${e instanceof CborError ? e.message : 'invalid'}`);
      }
      if (!Array.isArray(entries)) throw new AceFormatError('the AIF scope must be a CBOR array of [name, permissions]');
      const tokens: string[] = [];
      for (const entry of entries) {
        if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || !isInt(entry[1]) || entry[1] < 0) throw new AceFormatError('each AIF scope entry must be [text name, unsigned permissions]');
        const [name, permissions] = entry as [string, number];
        for (let bit = 0; bit < 53 && 2 ** bit <= permissions; bit += 1) {
          if (Math.floor(permissions / 2 ** bit) % 2 === 1) tokens.push(`${name}:${names.get(bit) ?? `bit${bit}`}`);
        }
      }
      return tokens;
    },
    encode(tokens) {
      const byName = new Map<string, number>();
      for (const token of tokens) {
        const parts = splitScopeToken(token);
        const bit = parts && roles[parts.role];
        if (parts === undefined || bit === undefined) throw new AceFormatError(`"${token}" is not NAME:ROLE with a role of ${Object.keys(roles).join(', ')}`);
        byName.set(parts.name, (byName.get(parts.name) ?? 0) | (1 << bit));
      }
      return encodeCbor([...byName].map(([name, permissions]) => [name, permissions]));
    },
  };
}

/** The formats a configuration file may name. */
export const SCOPE_FORMATS: Readonly<Record<string, ScopeFormat>> = {
  text: TEXT_SCOPES,
  'aif-oscore-group': aifScopeFormat(GROUP_OSCORE_ROLES),
  'aif-pubsub': aifScopeFormat(PUBSUB_PERMISSIONS),
};

/** A scope for a log line: text as is, a byte scope as hex. */
export const describeScope = (scope: Scope): string => (isBytes(scope) ? `h'${bytesToHex(scope)}'` : scope);
