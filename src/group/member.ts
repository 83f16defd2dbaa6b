/**
 * A group member's context from its member file, with its Sender Sequence Numbers kept on disk
 * (RFC 8613 Appendix B.1.1, as for OSCORE): a client or server restarted with the same file
 * continues above every number it used, so no AEAD nonce is ever used twice.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromHex } from '../cose/cbor.js';
import { CredentialsError } from '../credentials/errors.js';
import { SequenceNumberStore, sequenceFileName } from '../credentials/sequence-store.js';
import type { GroupSecurityContext } from '../group-oscore/context.js';
import { type GroupMemberFile, contextFromMemberFile } from '../group-oscore/manager.js';
import { checkMemberFile } from '../group-oscore/member-file.js';

/** Numbers reserved per durable write (B.1.1's K). */
const SEQUENCE_RESERVE = 64;

export interface OpenedGroupMember {
  readonly file: GroupMemberFile;
  readonly context: GroupSecurityContext;
  /** Writes the next Sender Sequence Number back and releases the counter's lock. */
  close(): void;
}

/** Reads and checks a member file (JSON). Throws CredentialsError naming the field. */
export function readMemberFile(path: string): GroupMemberFile {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new CredentialsError(`${path}: cannot read the group member file: ${(error as Error).message}`, path);
  }
  return checkMemberFile(json, '(top level)', (field, message) => {
    throw new CredentialsError(`${path}: ${field}: ${message}`, path, undefined, field);
  });
}

/**
 * The member's context; its Sender Sequence Numbers continue from the counter in `stateDirectory`.
 * A counter that already exists means this member ran before: the replay windows of that run are
 * gone, so its Recipient Contexts start invalid and challenge a first request with Echo (§9).
 */
export function openGroupMember(file: GroupMemberFile, stateDirectory: string): OpenedGroupMember {
  const identity = { masterSecret: fromHex(file.masterSecret), masterSalt: fromHex(file.masterSalt), idContext: fromHex(file.gid), senderId: fromHex(file.senderId) };
  const ranBefore = existsSync(join(stateDirectory, sequenceFileName(identity)));
  const store = SequenceNumberStore.open(stateDirectory, identity, { reserve: SEQUENCE_RESERVE });
  try {
    const context = contextFromMemberFile(file, { sequenceSource: store, replayWindowsLost: ranBefore });
    return { file, context, close: () => store.close() };
  } catch (error) {
    store.close();
    throw error;
  }
}
