/**
 * From credentials to run-time Security Contexts: every context gets a persistent sequence-number
 * store (Appendix B.1.1), and one that resumes from earlier state counts as restarted, so its replay
 * windows start uninitialised and the first request is challenged with Echo (Appendix B.1.2).
 * Recipients that share a sender (same master secret, salt, ID Context and Sender ID) share one
 * context and one sequence number: two counters for one key would repeat nonces.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { OscoreSecurityContext } from '../oscore/security-context.js';
import type { OscoreContextConfig } from './oscore-params.js';
import { SequenceNumberStore, ensureStateDirectory, sequenceFileName } from './sequence-store.js';
import type { ServerRecipient } from './credentials-file.js';

/**
 * Where a context's Sender Sequence Number is kept: a state directory (a file per context named by
 * its identity) or an explicit file. With `registryDirectory` (normally the common state
 * directory, defaultStateDirectory()), the context is also registered there, so the same context
 * configured elsewhere continues the same counter (sequence-store.ts).
 */
export type SequencePersistence = ({ stateDirectory: string } | { sequenceFile: string }) & { registryDirectory?: string };

export interface OpenedContext {
  context: OscoreSecurityContext;
  /** Writes the exact next sequence number back and releases the lock. */
  close(): void;
}

export function openSecurityContext(config: OscoreContextConfig, persistence: SequencePersistence, recipientNames?: readonly (string | undefined)[]): OpenedContext {
  const path = 'sequenceFile' in persistence ? persistence.sequenceFile : join(persistence.stateDirectory, sequenceFileName(config));
  const registry = persistence.registryDirectory;
  const registered = registry !== undefined ? join(registry, sequenceFileName(config)) : undefined;
  const restarted = existsSync(path) || (registered !== undefined && existsSync(registered));
  const reserve = { reserve: config.sequenceSaveInterval };
  if ('stateDirectory' in persistence) ensureStateDirectory(persistence.stateDirectory);
  const store =
    registry !== undefined
      ? SequenceNumberStore.openRegistered(path, config, registry, reserve)
      : 'sequenceFile' in persistence
        ? SequenceNumberStore.openFile(path, reserve)
        : SequenceNumberStore.open(persistence.stateDirectory, config, reserve);
  try {
    const context = new OscoreSecurityContext({ ...config, ...(recipientNames ? { recipientNames } : {}) }, store, restarted);
    return { context, close: () => store.close() };
  } catch (error) {
    store.close();
    throw error;
  }
}

/** The server's contexts: recipients grouped by the sender they share. */
export function openServerContexts(recipients: readonly ServerRecipient[], persistence: SequencePersistence): OpenedContext[] {
  const groups = new Map<string, ServerRecipient[]>();
  for (const recipient of recipients) {
    const key = sequenceFileName(recipient.context);
    groups.set(key, [...(groups.get(key) ?? []), recipient]);
  }
  const opened: OpenedContext[] = [];
  try {
    for (const group of groups.values()) {
      const config: OscoreContextConfig = { ...group[0]!.context, recipientIds: group.map((r) => r.recipientId) };
      opened.push(openSecurityContext(config, persistence, group.map((r) => r.name)));
    }
  } catch (error) {
    for (const o of opened) o.close();
    throw error;
  }
  return opened;
}
