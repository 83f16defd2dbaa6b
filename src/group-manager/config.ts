/**
 * The `coapsec group-manager` configuration (docs/group-manager.md):
 *
 *   {"audience": "gm", "as": "coap://…/token", "issuer": "as",
 *    "tokenKey": {"kid": HEX, "key": HEX},       the key the AS seals this Group Manager's tokens with
 *    "state": "gm-state.json",                   the Group Manager's state (secrets: a key file)
 *    "import": ["lights.json", …]}               offline Group Manager states (`coapsec group create`),
 *                                                taken over when the state file does not exist yet
 *
 * Paths are relative to the configuration file. Errors name the file and the field, never a key.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { TokenKey } from '../ace/token.js';
import { writeFileDurably } from '../credentials/durable-file.js';
import type { GroupManagerState } from '../group-oscore/manager.js';
import { parseHexDigits } from '../util/key-text.js';
import { OnlineGroupManager, type OnlineGroupManagerOptions, type OnlineGroupManagerState } from './online-manager.js';

export class GroupManagerConfigError extends Error {
  override readonly name = 'GroupManagerConfigError';
}

export interface GroupManagerConfig {
  readonly audience: string;
  readonly asUri?: string;
  readonly issuer?: string;
  readonly tokenKey: TokenKey;
  readonly statePath: string;
  readonly importPaths: readonly string[];
}

function readJson(file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new GroupManagerConfigError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new GroupManagerConfigError(`${file} is not a JSON object`);
  return value as Record<string, unknown>;
}

export function loadGroupManagerConfig(file: string): GroupManagerConfig {
  const json = readJson(file);
  const fail = (field: string, what: string): never => {
    throw new GroupManagerConfigError(`${file}: "${field}" ${what}`);
  };
  const text = (field: string, required: boolean): string | undefined => {
    const v = json[field];
    if (v === undefined && !required) return undefined;
    return typeof v === 'string' && v !== '' ? v : fail(field, 'must be a non-empty string');
  };
  const key = json['tokenKey'] as Record<string, unknown> | undefined;
  if (typeof key !== 'object' || key === null) fail('tokenKey', 'must be an object with kid and key');
  const hex = (v: unknown, field: string): Uint8Array => {
    try {
      if (typeof v !== 'string') throw new Error('not a string');
      return parseHexDigits(v);
    } catch {
      return fail(field, 'must be a hex string');
    }
  };
  const tokenKey = { kid: hex(key!['kid'], 'tokenKey.kid'), key: hex(key!['key'], 'tokenKey.key') };
  if (tokenKey.key.length !== 16) fail('tokenKey.key', 'must be 16 bytes (AES-CCM-16-64-128)');
  const imports = json['import'] ?? [];
  if (!Array.isArray(imports) || imports.some((p) => typeof p !== 'string')) fail('import', 'must be a list of file names');
  const base = dirname(file);
  const asUri = text('as', false);
  const issuer = text('issuer', false);
  return {
    audience: text('audience', true)!,
    tokenKey,
    statePath: resolve(base, text('state', true)!),
    importPaths: (imports as string[]).map((p) => resolve(base, p)),
    ...(asUri !== undefined ? { asUri } : {}),
    ...(issuer !== undefined ? { issuer } : {}),
  };
}

/** The Group Manager from its state file, or from the imported offline states on the first run; every change written back. */
export function openGroupManager(config: GroupManagerConfig, options: Omit<OnlineGroupManagerOptions, 'onChange'> = {}): OnlineGroupManager {
  const save = (state: OnlineGroupManagerState): void => writeFileDurably(config.statePath, `${JSON.stringify(state, null, 2)}\n`);
  const persistent = { ...options, onChange: save };
  if (existsSync(config.statePath)) {
    const state = readJson(config.statePath) as unknown as OnlineGroupManagerState;
    if (state.version !== 1 || !Array.isArray(state.groups)) throw new GroupManagerConfigError(`${config.statePath} is not a Group Manager state file`);
    return new OnlineGroupManager(state, persistent);
  }
  if (config.importPaths.length === 0) throw new GroupManagerConfigError(`no state file ${config.statePath} and nothing to "import": create a group with coapsec group create`);
  const states = config.importPaths.map((p) => {
    const state = readJson(p) as unknown as GroupManagerState;
    if (state.version !== 1 || !Array.isArray(state.members)) throw new GroupManagerConfigError(`${p} is not an offline Group Manager state (coapsec group create)`);
    return state;
  });
  const manager = OnlineGroupManager.fromOfflineStates(states, persistent);
  save(manager.toJSON());
  return manager;
}
