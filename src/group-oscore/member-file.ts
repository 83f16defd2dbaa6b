/**
 * Checks a group member file (manager.ts's GroupMemberFile) read from JSON: every field present
 * and of its type, identifiers and keys as hex. Errors name the field, never a value (the file
 * holds the Master Secret and the member's private key).
 */
import type { GroupAlgorithms } from './common.js';
import type { GroupMemberFile } from './manager.js';

export type FieldFailure = (path: string, message: string) => never;

const FIELDS = ['$comment', 'version', 'group', 'gid', 'keyGeneration', 'masterSecret', 'masterSalt', 'algorithms', 'senderId', 'credential', 'privateKey', 'gmCredential', 'members', 'address', 'deterministicClient'];
const ALGORITHM_FIELDS = ['aead', 'hkdf', 'groupEncryption', 'signature', 'pairwiseKeyAgreement'];
const HEX = /^(?:[0-9a-fA-F]{2})*$/;

export function checkMemberFile(json: unknown, path: string, fail: FieldFailure): GroupMemberFile {
  const o = object(json, path, FIELDS, fail);
  const at = (field: string): string => `${path}.${field}`;
  if (o.version !== 1) fail(at('version'), 'must be 1');
  const text = (field: string): string => {
    if (typeof o[field] !== 'string' || o[field] === '') fail(at(field), 'must be a non-empty string');
    return o[field] as string;
  };
  const hex = (value: unknown, where: string, allowEmpty: boolean): string => {
    if (typeof value !== 'string' || !HEX.test(value) || (!allowEmpty && value === '')) fail(where, 'must be a string of hex digits (two per byte)');
    return (value as string).toLowerCase();
  };
  const keyGeneration = o.keyGeneration;
  if (typeof keyGeneration !== 'number' || !Number.isInteger(keyGeneration) || keyGeneration < 0) fail(at('keyGeneration'), 'must be a whole number ≥ 0');
  const a = object(o.algorithms, at('algorithms'), ALGORITHM_FIELDS, fail);
  const algorithms: Record<string, number> = {};
  for (const field of ALGORITHM_FIELDS) {
    if (a[field] === undefined) continue;
    if (typeof a[field] !== 'number' || !Number.isInteger(a[field])) fail(`${at('algorithms')}.${field}`, 'must be a COSE algorithm number');
    algorithms[field] = a[field] as number;
  }
  if (!Array.isArray(o.members)) fail(at('members'), 'must be an array');
  const members = (o.members as unknown[]).map((m, i) => {
    const where = `${at('members')}[${i}]`;
    const member = object(m, where, ['senderId', 'credential'], fail);
    return { senderId: hex(member.senderId, `${where}.senderId`, true), credential: hex(member.credential, `${where}.credential`, false) };
  });
  const address = o.address === undefined ? undefined : text('address');
  let deterministicClient: GroupMemberFile['deterministicClient'];
  if (o.deterministicClient !== undefined) {
    const where = at('deterministicClient');
    const d = object(o.deterministicClient, where, ['senderId', 'hash'], fail);
    if (typeof d.hash !== 'number' || !Number.isInteger(d.hash)) fail(`${where}.hash`, 'must be a COSE algorithm number');
    deterministicClient = { senderId: hex(d.senderId, `${where}.senderId`, true), hash: d.hash as number };
  }
  return {
    version: 1,
    group: text('group'),
    gid: hex(o.gid, at('gid'), true),
    keyGeneration: keyGeneration as number,
    masterSecret: hex(o.masterSecret, at('masterSecret'), false),
    masterSalt: hex(o.masterSalt ?? '', at('masterSalt'), true),
    algorithms: algorithms as unknown as GroupAlgorithms,
    senderId: hex(o.senderId, at('senderId'), true),
    credential: hex(o.credential, at('credential'), false),
    ...(o.privateKey !== undefined ? { privateKey: hex(o.privateKey, at('privateKey'), false) } : {}),
    gmCredential: hex(o.gmCredential, at('gmCredential'), false),
    members,
    ...(address !== undefined ? { address } : {}),
    ...(deterministicClient !== undefined ? { deterministicClient } : {}),
  };
}

function object(json: unknown, path: string, allowed: readonly string[], fail: FieldFailure): Record<string, unknown> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(path, 'must be an object');
  for (const key of Object.keys(json as object)) {
    if (!allowed.includes(key)) fail(`${path}.${key}`, `unknown field; expected one of ${allowed.filter((f) => f !== '$comment').join(', ')}`);
  }
  return json as Record<string, unknown>;
}
