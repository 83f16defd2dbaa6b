/**
 * The JSON configurations of the `as` command and of `serve --ace` (docs/ace.md):
 *
 * AS:  {"issuer": "as", "audiences": {"NAME": {"kid": HEX, "key": HEX, "scopes": [..],
 *       "lifetime": S, "profile": "coap_oscore" | "coap_edhoc_oscore", "edhocCredential": HEX | FILE,
 *       "scopeFormat": "text" | "aif-oscore-group"}},
 *       "clients": {"NAME": {"grants": {"AUDIENCE": [SCOPE, ..]}, "edhocCredential": HEX | FILE}}}
 *      edhocCredential: an EDHOC CCS, hex or a file of its bytes (the RS's is sent as rs_cnf).
 *      Client names are the names the AS's OSCORE credentials give the clients' contexts.
 * RS:  {"audience": "NAME", "as": "coap://…/token", "tokenKey": {"kid": HEX, "key": HEX},
 *       "resources": {"/path": {"GET": SCOPE, "PUT": SCOPE}}, "maxTokens": N, "issuer": "as",
 *       "introspect": {"uri": "coap://…/introspect", "credentials": FILE}}
 *      introspect: tokens the RS cannot open are sent to the AS (RFC 9200 §5.9), protected with the
 *      OSCORE context for that URI in the client credentials FILE (relative to this file); with it,
 *      tokenKey may be left out (then every token is introspected).
 *
 * Keys are hex strings ("0x" optional), as everywhere in coapsec's files (util/key-text.ts).
 * Every problem is an AceConfigError naming the file and the field, never the key's text.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Method, type MethodName } from '../coap/codes.js';
import { parseCcs } from '../cose/index.js';
import { parseHexDigits } from '../util/key-text.js';
import type { AceProfileName, AudienceEntry, ClientEntry } from './authorization-server.js';
import { SCOPE_FORMATS } from './scope-format.js';
import type { ScopeRequirements } from './scope-guard.js';
import type { TokenKey } from './token.js';

export class AceConfigError extends Error {
  override readonly name = 'AceConfigError';
}

export interface AsConfig {
  readonly issuer: string;
  readonly audiences: AudienceEntry[];
  readonly clients: ClientEntry[];
}

export interface RsConfig {
  readonly audience: string;
  readonly asUri?: string;
  readonly issuer?: string;
  /** The key the AS seals this RS's tokens with; absent only with `introspection`. */
  readonly tokenKey?: TokenKey;
  /** RFC 9200 §5.9: the AS's introspection endpoint, and the credentials file whose context protects requests to it. */
  readonly introspection?: { readonly uri: string; readonly credentials: string };
  readonly resources: ReadonlyMap<string, ScopeRequirements>;
  readonly maxTokens?: number;
}

type Json = Record<string, unknown>;

function readJson(file: string): Json {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new AceConfigError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (!isObject(value)) throw new Error('not a JSON object');
    return value;
  } catch (e) {
    throw new AceConfigError(`${file}: ${(e as Error).message}`);
  }
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

class Fields {
  constructor(private readonly file_: string) {}
  fail(where: string, what: string): never {
    throw new AceConfigError(`${this.file_}: ${where} ${what}`);
  }
  object(v: unknown, where: string): Json {
    return isObject(v) ? v : this.fail(where, 'must be an object');
  }
  text(v: unknown, where: string): string {
    return typeof v === 'string' && v.length > 0 ? v : this.fail(where, 'must be a non-empty string');
  }
  hex(v: unknown, where: string): Uint8Array {
    if (typeof v !== 'string') this.fail(where, 'must be a hex string');
    try {
      return parseHexDigits(v);
    } catch (e) {
      return this.fail(where, `: ${(e as Error).message}`);
    }
  }
  /**
   * An EDHOC credential: a CWT Claims Set with a COSE_Key (RFC 9528 §3.5.2), as hex or as the name
   * of a file holding its CBOR bytes (`coapsec keygen`'s NAME.ccs), relative to the config's folder.
   */
  ccs(v: unknown, where: string): Uint8Array {
    const bytes = typeof v === 'string' && !/^(0x)?[0-9a-fA-F]+$/.test(v) ? this.file(v, where) : this.hex(v, where);
    try {
      return parseCcs(bytes).encoded;
    } catch (e) {
      return this.fail(where, `is no CCS with a COSE_Key: ${(e as Error).message}`);
    }
  }
  file(name: string, where: string): Uint8Array {
    try {
      return Uint8Array.from(readFileSync(resolve(dirname(this.file_), name)));
    } catch (e) {
      return this.fail(where, `: cannot read ${name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  count(v: unknown, where: string): number {
    return Number.isSafeInteger(v) && (v as number) > 0 ? (v as number) : this.fail(where, 'must be a positive whole number');
  }
  scopes(v: unknown, where: string): string[] {
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s === '' || s.includes(' '))) this.fail(where, 'must be a list of scope tokens (no spaces)');
    return v as string[];
  }
  key(v: unknown, where: string): TokenKey {
    const o = this.object(v, where);
    const key = this.hex(o['key'], `${where}.key`);
    if (key.length !== 16) this.fail(`${where}.key`, 'must be 16 bytes (AES-CCM-16-64-128)');
    return { kid: this.hex(o['kid'], `${where}.kid`), key };
  }
}

const PROFILES: readonly AceProfileName[] = ['coap_oscore', 'coap_edhoc_oscore'];

export function loadAsConfig(file: string): AsConfig {
  const json = readJson(file);
  const f = new Fields(file);
  const issuer = json['issuer'] === undefined ? 'as' : f.text(json['issuer'], '"issuer"');
  const audiences = Object.entries(f.object(json['audiences'], '"audiences"')).map(([name, value]): AudienceEntry => {
    const where = `audiences.${name}`;
    const o = f.object(value, where);
    const profile = o['profile'] ?? 'coap_oscore';
    if (!PROFILES.includes(profile as AceProfileName)) f.fail(`${where}.profile`, `must be one of ${PROFILES.join(', ')}`);
    const formatName = o['scopeFormat'] ?? 'text';
    const scopeFormat = SCOPE_FORMATS[formatName as string] ?? f.fail(`${where}.scopeFormat`, `must be one of ${Object.keys(SCOPE_FORMATS).join(', ')}`);
    const scopes = f.scopes(o['scopes'], `${where}.scopes`);
    try {
      scopeFormat.encode(scopes);
    } catch (e) {
      f.fail(`${where}.scopes`, `do not fit scopeFormat ${String(formatName)}: ${(e as Error).message}`);
    }
    return {
      name,
      key: f.key(o, where),
      scopes,
      profile: profile as AceProfileName,
      ...(formatName !== 'text' ? { scopeFormat } : {}),
      ...(o['lifetime'] !== undefined ? { lifetimeSeconds: f.count(o['lifetime'], `${where}.lifetime`) } : {}),
      ...(o['edhocCredential'] !== undefined ? { edhocCredential: f.ccs(o['edhocCredential'], `${where}.edhocCredential`) } : {}),
    };
  });
  if (audiences.length === 0) f.fail('"audiences"', 'names no resource server');
  const clients = Object.entries(f.object(json['clients'], '"clients"')).map(([name, value]): ClientEntry => {
    const where = `clients.${name}`;
    const o = f.object(value, where);
    const grants = new Map<string, string[]>();
    for (const [audience, scopes] of Object.entries(f.object(o['grants'], `${where}.grants`))) {
      const known = audiences.find((a) => a.name === audience) ?? f.fail(`${where}.grants.${audience}`, 'names no audience of this AS');
      const list = f.scopes(scopes, `${where}.grants.${audience}`);
      const unknown = list.filter((s) => !known.scopes.includes(s));
      if (unknown.length > 0) f.fail(`${where}.grants.${audience}`, `has scopes ${audience} does not have: ${unknown.join(' ')}`);
      grants.set(audience, list);
    }
    return { name, grants, ...(o['edhocCredential'] !== undefined ? { edhocCredential: f.ccs(o['edhocCredential'], `${where}.edhocCredential`) } : {}) };
  });
  return { issuer, audiences, clients };
}

export function loadRsConfig(file: string): RsConfig {
  const json = readJson(file);
  const f = new Fields(file);
  const resources = new Map<string, ScopeRequirements>();
  for (const [path, value] of Object.entries(f.object(json['resources'], '"resources"'))) {
    if (!path.startsWith('/')) f.fail(`resources."${path}"`, 'must be a path starting with /');
    const required: ScopeRequirements = {};
    for (const [method, scope] of Object.entries(f.object(value, `resources."${path}"`))) {
      if (!(method in Method)) f.fail(`resources."${path}".${method}`, 'is no CoAP method');
      required[method as MethodName] = f.scopes([scope], `resources."${path}".${method}`)[0]!;
    }
    resources.set(path, required);
  }
  let introspection: RsConfig['introspection'];
  if (json['introspect'] !== undefined) {
    const o = f.object(json['introspect'], '"introspect"');
    introspection = { uri: f.text(o['uri'], 'introspect.uri'), credentials: resolve(dirname(file), f.text(o['credentials'], 'introspect.credentials')) };
  }
  return {
    audience: f.text(json['audience'], '"audience"'),
    ...(json['tokenKey'] !== undefined || introspection === undefined ? { tokenKey: f.key(json['tokenKey'], '"tokenKey"') } : {}),
    ...(introspection !== undefined ? { introspection } : {}),
    resources,
    ...(json['as'] !== undefined ? { asUri: f.text(json['as'], '"as"') } : {}),
    ...(json['issuer'] !== undefined ? { issuer: f.text(json['issuer'], '"issuer"') } : {}),
    ...(json['maxTokens'] !== undefined ? { maxTokens: f.count(json['maxTokens'], '"maxTokens"') } : {}),
  };
}

/** Every scope token the RS's resources name: the scopes it recognizes in tokens. */
export const knownScopes = (config: RsConfig): string[] => [...new Set([...config.resources.values()].flatMap((r) => Object.values(r)))];
