/**
 * The two configuration files of the trust-anchor modes (docs/trust-anchor-modes.md):
 *
 *  - the resource server's ACL (draft §4): PSK identities, raw public keys, certificate roots and
 *    trust anchors in one file, read by `coapsec serve --acl FILE`;
 *  - the trust anchor's configuration, read by `coapsec trust-anchor --config FILE`.
 *
 * Validation is strict: unknown fields are errors; errors name the file and the JSON path, never a
 * key. Relative paths are resolved against the folder of the file.
 */
import { createPrivateKey, createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseCertificates } from '../dtls/x509.js';
import { isValidId } from './derive.js';
import { MAX_MAC_LENGTH, MIN_MAC_LENGTH } from './maccert.js';
import type { TrustAnchorEntry } from './resource-server.js';
import { DEFAULT_WINDOW, MIN_WINDOW } from './window.js';
import { parseFileKeyString, parseFlagKey } from '../util/key-text.js';

export class TrustAnchorConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrustAnchorConfigError';
  }
}

type Json = Record<string, unknown>;

/** Sequence numbers a TA reserves at a time: one durable write (fsync, or a Redis round trip) per 16 credentials. */
const DEFAULT_RESERVATION_BLOCK = 16;

class Checker {
  readonly dir: string;
  constructor(readonly file: string) {
    this.dir = dirname(resolve(file));
  }
  fail(path: string, problem: string): never {
    throw new TrustAnchorConfigError(`${this.file}: ${path}: ${problem}`);
  }
  object(v: unknown, path: string, fields: readonly string[]): Json {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, 'must be an object');
    for (const k of Object.keys(v)) if (k !== '$comment' && !fields.includes(k)) this.fail(`${path}.${k}`, 'unknown field');
    return v as Json;
  }
  string(v: unknown, path: string): string {
    if (typeof v !== 'string' || v.length === 0) this.fail(path, 'must be a non-empty string');
    return v;
  }
  id(v: unknown, path: string): string {
    const s = this.string(v, path);
    if (!isValidId(s)) this.fail(path, 'must be 1-32 characters of A-Z a-z 0-9 _ : @ -');
    return s;
  }
  /** A string (hex, "0x" optional), {"hex": …} or {"ascii": …}: the rule of every key file (util/key-text.ts). */
  key(v: unknown, path: string, min = 16): Buffer {
    let b: Buffer;
    const hex = typeof v === 'string' ? v : typeof v === 'object' && v !== null && typeof (v as Json)['hex'] === 'string' ? ((v as Json)['hex'] as string) : undefined;
    if (hex !== undefined) {
      try {
        b = Buffer.from(parseFileKeyString(hex));
      } catch (error) {
        return this.fail(path, (error as Error).message);
      }
    } else if (typeof v === 'object' && v !== null && typeof (v as Json)['ascii'] === 'string') b = Buffer.from((v as Json)['ascii'] as string, 'utf8');
    else this.fail(path, 'must be hex ("0x" optional), {"hex": "…"} or {"ascii": "…"}');
    if (b.length < min) this.fail(path, `must be at least ${min} bytes`);
    return b;
  }
  int(v: unknown, path: string, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(path, `must be an integer in [${min}, ${max}]`);
    return v;
  }
  bool(v: unknown, path: string): boolean {
    if (typeof v !== 'boolean') this.fail(path, 'must be true or false');
    return v;
  }
  path(v: unknown, path: string): string {
    return resolve(this.dir, this.string(v, path));
  }
  read(v: unknown, path: string): Buffer {
    const p = this.path(v, path);
    try {
      return readFileSync(p);
    } catch (e) {
      this.fail(path, `cannot read "${p}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  privateKey(v: unknown, path: string): KeyObject {
    const data = this.read(v, path);
    let k: KeyObject;
    try {
      k = createPrivateKey(data);
    } catch {
      this.fail(path, 'holds no PEM private key');
    }
    if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1') this.fail(path, 'must be an EC P-256 key');
    return k;
  }
  publicKey(v: unknown, path: string): KeyObject {
    const data = this.read(v, path);
    let k: KeyObject;
    try {
      k = createPublicKey(data);
    } catch {
      this.fail(path, 'holds no PEM public key');
    }
    if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1') this.fail(path, 'must be an EC P-256 key');
    return k;
  }
  certificates(v: unknown, path: string): X509Certificate[] {
    try {
      return parseCertificates(this.read(v, path));
    } catch (e) {
      this.fail(path, (e as Error).message);
    }
  }
  array(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, 'must be an array');
    return v;
  }
}

function parseJson(file: string, text?: string): unknown {
  let raw: string;
  try {
    raw = text ?? readFileSync(file, 'utf8');
  } catch (e) {
    throw new TrustAnchorConfigError(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw new TrustAnchorConfigError(`${file}: not JSON: ${(e as Error).message}`);
  }
}

/** A trust-anchor entry of an ACL, also the form of `--trust-anchor ID=KEY[,window=N][,keylen=32]`. */
function anchorEntry(c: Checker, v: unknown, path: string): TrustAnchorEntry {
  const o = c.object(v, path, ['id', 'key', 'window', 'keyLength']);
  const e: TrustAnchorEntry = { id: c.id(o['id'], `${path}.id`), key: c.key(o['key'], `${path}.key`) };
  if (o['window'] !== undefined) e.window = c.int(o['window'], `${path}.window`, MIN_WINDOW, 4096);
  if (o['keyLength'] !== undefined) {
    const l = c.int(o['keyLength'], `${path}.keyLength`, 16, 32);
    if (l !== 16 && l !== 32) c.fail(`${path}.keyLength`, 'must be 16 or 32');
    e.keyLength = l as 16 | 32;
  }
  return e;
}

// ---------------------------------------------------------------------------------------------
// Resource server ACL (§4)

export interface ResourceServerAcl {
  psk: Array<{ identity: string; key: Buffer }>;
  /** Our key: raw public key mode, and the key of the AuthorizedPublicKey mode. */
  privateKey?: KeyObject;
  trustedPublicKeys: KeyObject[];
  x509?: { certificates: X509Certificate[]; privateKey: KeyObject; roots: X509Certificate[] };
  trustAnchors: TrustAnchorEntry[];
  /** Where the sequence-number windows are persisted (survive restarts). */
  windowFile?: string;
}

export function parseResourceServerAcl(file: string, text?: string): ResourceServerAcl {
  const c = new Checker(file);
  const o = c.object(parseJson(file, text), '$', ['psk', 'rpk', 'x509', 'trustAnchors', 'windowFile']);
  const acl: ResourceServerAcl = { psk: [], trustedPublicKeys: [], trustAnchors: [] };
  if (o['psk'] !== undefined) {
    c.array(o['psk'], '$.psk').forEach((v, i) => {
      const e = c.object(v, `$.psk[${i}]`, ['identity', 'key']);
      const identity = c.string(e['identity'], `$.psk[${i}].identity`);
      if (identity.startsWith('DK.')) c.fail(`$.psk[${i}].identity`, 'the "DK." prefix is reserved for the DerivedKey mode');
      acl.psk.push({ identity, key: c.key(e['key'], `$.psk[${i}].key`, 1) });
    });
  }
  if (o['rpk'] !== undefined) {
    const r = c.object(o['rpk'], '$.rpk', ['privateKey', 'trusted']);
    acl.privateKey = c.privateKey(r['privateKey'], '$.rpk.privateKey');
    if (r['trusted'] !== undefined) acl.trustedPublicKeys = c.array(r['trusted'], '$.rpk.trusted').map((v, i) => c.publicKey(v, `$.rpk.trusted[${i}]`));
  }
  if (o['x509'] !== undefined) {
    const x = c.object(o['x509'], '$.x509', ['certificate', 'key', 'roots']);
    acl.x509 = {
      certificates: c.certificates(x['certificate'], '$.x509.certificate'),
      privateKey: c.privateKey(x['key'], '$.x509.key'),
      roots: x['roots'] === undefined ? [] : c.array(x['roots'], '$.x509.roots').flatMap((v, i) => c.certificates(v, `$.x509.roots[${i}]`)),
    };
  }
  if (o['trustAnchors'] !== undefined) {
    const seen = new Set<string>();
    c.array(o['trustAnchors'], '$.trustAnchors').forEach((v, i) => {
      const e = anchorEntry(c, v, `$.trustAnchors[${i}]`);
      if (seen.has(e.id)) c.fail(`$.trustAnchors[${i}].id`, `"${e.id}" is listed twice`);
      seen.add(e.id);
      acl.trustAnchors.push(e);
    });
  }
  if (o['windowFile'] !== undefined) acl.windowFile = c.path(o['windowFile'], '$.windowFile');
  if (acl.psk.length === 0 && !acl.privateKey && !acl.x509 && acl.trustAnchors.length === 0) c.fail('$', 'configures no credentials');
  return acl;
}

/** `ID=KEY[,window=N][,keylen=16|32]` from the command line (KEY: 0x-hex, else text, as every key flag). */
export function parseTrustAnchorArgument(text: string): TrustAnchorEntry {
  const c = new Checker('--trust-anchor');
  const [head, ...opts] = text.split(',');
  const eq = head!.indexOf('=');
  if (eq <= 0) c.fail(text.replace(/=.*/, '=…'), 'expected ID=KEY');
  let key: Uint8Array;
  try {
    key = parseFlagKey(head!.slice(eq + 1));
  } catch (error) {
    return c.fail(head!.slice(0, eq), (error as Error).message);
  }
  const o: Json = { id: head!.slice(0, eq), key: { hex: Buffer.from(key).toString('hex') } };
  for (const opt of opts) {
    const m = /^(window|keylen)=(\d+)$/.exec(opt);
    if (!m) return c.fail(opt, 'expected window=N or keylen=16|32');
    o[m[1] === 'keylen' ? 'keyLength' : 'window'] = Number(m[2]);
  }
  return anchorEntry(c, o, String(o['id']));
}

// ---------------------------------------------------------------------------------------------
// Trust anchor service

export interface ResourceServerEntry {
  name: string;
  key: Buffer;
  /** The RS's public key, handed to clients in the AuthorizedPublicKey mode. */
  publicKey?: KeyObject;
  /** Where revocations are POSTed (coap:// or coaps://…/ta/revoke). */
  revocationUri?: string;
  /** K_RS-C length the RS expects (16 or 32). */
  keyLength: 16 | 32;
}

export interface TrustAnchorConfig {
  id: string;
  bind: string;
  /** OSCORE credentials file (recipients = the TA's clients; their names are the C_ids). */
  credentials: string;
  /** Persisted sequence counters (one TA process); absent when `store` holds them. */
  stateFile?: string;
  /** A context store for the counters (redis://… shared by several TA nodes, or a folder): instead of stateFile. */
  store?: string;
  /** Sequence numbers reserved at a time (counters.ts). Default 16. */
  reservationBlock: number;
  /** Add a random part to DK nonces (§5). Default true. */
  randomNonce: boolean;
  /**
   * Redraw the random part until K_RS-C has no zero byte, so that the key can be given to
   * command-line tools that read keys as C strings (libcoap's `-k`). Default true.
   */
  keysWithoutZeroBytes: boolean;
  macLength: number;
  resourceServers: Map<string, ResourceServerEntry>;
  /** client name → RS names it may reach ("*": all). */
  policy: Map<string, Set<string>>;
  /** Clients allowed to ask for revocations. */
  administrators: Set<string>;
}

export function parseTrustAnchorConfig(file: string, text?: string): TrustAnchorConfig {
  const c = new Checker(file);
  const o = c.object(parseJson(file, text), '$', [
    'id',
    'bind',
    'credentials',
    'stateFile',
    'store',
    'reservationBlock',
    'randomNonce',
    'keysWithoutZeroBytes',
    'macLength',
    'resourceServers',
    'policy',
    'administrators',
  ]);
  const cfg: TrustAnchorConfig = {
    id: c.id(o['id'], '$.id'),
    bind: o['bind'] === undefined ? '127.0.0.1:5690' : c.string(o['bind'], '$.bind'),
    credentials: c.path(o['credentials'], '$.credentials'),
    reservationBlock: o['reservationBlock'] === undefined ? DEFAULT_RESERVATION_BLOCK : c.int(o['reservationBlock'], '$.reservationBlock', 1, 65_536),
    randomNonce: o['randomNonce'] === undefined ? true : c.bool(o['randomNonce'], '$.randomNonce'),
    keysWithoutZeroBytes: o['keysWithoutZeroBytes'] === undefined ? true : c.bool(o['keysWithoutZeroBytes'], '$.keysWithoutZeroBytes'),
    macLength: o['macLength'] === undefined ? MAX_MAC_LENGTH : c.int(o['macLength'], '$.macLength', MIN_MAC_LENGTH, MAX_MAC_LENGTH),
    resourceServers: new Map(),
    policy: new Map(),
    administrators: new Set(),
  };
  if (o['store'] !== undefined) {
    const store = c.string(o['store'], '$.store');
    // A folder is relative to this file, like every other path in it; a redis:// URL is not a path.
    cfg.store = /^rediss?:\/\//i.test(store) ? store : c.path(store, '$.store');
    if (o['stateFile'] !== undefined) c.fail('$.stateFile', 'goes without "store" (the counters are in the store)');
  } else {
    cfg.stateFile = c.path(o['stateFile'], '$.stateFile');
  }
  if (cfg.keysWithoutZeroBytes && !cfg.randomNonce) c.fail('$.keysWithoutZeroBytes', 'needs randomNonce (the random part is what gets redrawn)');
  const rss = c.object(o['resourceServers'], '$.resourceServers', Object.keys((o['resourceServers'] as Json) ?? {}));
  for (const [name, v] of Object.entries(rss)) {
    if (name === '$comment') continue;
    const path = `$.resourceServers.${name}`;
    if (!isValidId(name)) c.fail(path, 'RS names must be 1-32 characters of A-Z a-z 0-9 _ : @ -');
    const e = c.object(v, path, ['key', 'publicKey', 'revocationUri', 'keyLength']);
    const entry: ResourceServerEntry = { name, key: c.key(e['key'], `${path}.key`), keyLength: 16 };
    if (e['publicKey'] !== undefined) entry.publicKey = c.publicKey(e['publicKey'], `${path}.publicKey`);
    if (e['revocationUri'] !== undefined) {
      const u = c.string(e['revocationUri'], `${path}.revocationUri`);
      if (!/^coaps?:\/\//.test(u)) c.fail(`${path}.revocationUri`, 'must be a coap:// or coaps:// URI');
      entry.revocationUri = u;
    }
    if (e['keyLength'] !== undefined) {
      const l = c.int(e['keyLength'], `${path}.keyLength`, 16, 32);
      if (l !== 16 && l !== 32) c.fail(`${path}.keyLength`, 'must be 16 or 32');
      entry.keyLength = l as 16 | 32;
    }
    cfg.resourceServers.set(name, entry);
  }
  if (cfg.resourceServers.size === 0) c.fail('$.resourceServers', 'lists no resource server');
  const policy = c.object(o['policy'], '$.policy', Object.keys((o['policy'] as Json) ?? {}));
  for (const [client, v] of Object.entries(policy)) {
    if (client === '$comment') continue;
    const list = c.array(v, `$.policy.${client}`).map((x, i) => c.string(x, `$.policy.${client}[${i}]`));
    for (const [i, rs] of list.entries()) if (rs !== '*' && !cfg.resourceServers.has(rs)) c.fail(`$.policy.${client}[${i}]`, `unknown resource server "${rs}"`);
    cfg.policy.set(client, new Set(list));
  }
  if (o['administrators'] !== undefined) for (const [i, a] of c.array(o['administrators'], '$.administrators').entries()) cfg.administrators.add(c.string(a, `$.administrators[${i}]`));
  return cfg;
}

export { DEFAULT_WINDOW };
