/**
 * A server's OSCORE protection from a credentials file (docs/credentials.md): its `recipients`,
 * keyed by the clients' Sender IDs, with Sender Sequence Numbers persisted in the file's state
 * directory and registered in the common state directory (RFC 8613 Appendix B.1.1). A context that
 * resumes from earlier state starts with uninitialised replay windows and challenges its first
 * request with Echo (Appendix B.1.2).
 */
import { loadCredentials, type Credentials } from '../credentials/credentials-file.js';
import { CredentialsError } from '../credentials/errors.js';
import { openServerContexts, openServerTable, type OpenedContext } from '../credentials/runtime.js';
import { kudosServerPeer } from '../kudos/credentials.js';
import { KudosServerSecurity } from '../kudos/server.js';
import type { KudosEvent } from '../kudos/session-types.js';
import type { ServerSecurity } from './security.js';
import { defaultStateDirectory } from '../credentials/state-directory.js';
import { OscoreServerSecurity, type OscoreServerOptions } from './oscore.js';

export interface ServerCredentials {
  security: OscoreServerSecurity;
  /**
   * What the server unprotects with: `security`, or — when recipients have a `kudos` entry — a
   * KudosServerSecurity that serves those and hands the others to `security`.
   */
  protection: ServerSecurity;
  /** The KUDOS peers, when any recipient has a `kudos` entry. */
  kudos: KudosServerSecurity | undefined;
  /** Writes the exact next sequence numbers back and releases the contexts' locks. */
  close(): void;
}

export interface ServerCredentialsOptions extends OscoreServerOptions {
  /** Where every context is also registered. Default: the common state directory. */
  registryDirectory?: string;
  /** The KUDOS events of recipients with a `kudos` entry (never keys). */
  onKudosEvent?: (peer: string, event: KudosEvent) => void;
  /**
   * Every context an object from the start, listed by `security.contexts` (what --oscore-export
   * writes out at start-up), instead of idle contexts kept as bytes in a ContextTable.
   */
  contextsAsObjects?: boolean;
  /**
   * How many of the idle contexts are kept materialised at once (the ContextTable's LRU; default
   * 1024). A device beyond them is made again from bytes at its next request (no key derivation:
   * its keys stay in the table), so this trades a few KiB of heap per active device against a few
   * µs per request from a device that was put away.
   */
  activeContexts?: number;
}

/** Throws CredentialsError when the file does not load, has no recipients, or a context is in use elsewhere. */
export function serverCredentials(source: string | Credentials, options: ServerCredentialsOptions = {}): ServerCredentials {
  const credentials = typeof source === 'string' ? loadCredentials(source) : source;
  if (credentials.recipients.length === 0) throw new CredentialsError(`${credentials.file}: no "recipients" for a server`, credentials.file);
  const persistence = { stateDirectory: credentials.stateDirectory, registryDirectory: options.registryDirectory ?? defaultStateDirectory() };
  // A context per device (issue 21): idle contexts as bytes, unless one needs to be an object
  // (KUDOS updates it in place; Appendix B.2 replaces it per client).
  if (!options.contextsAsObjects && credentials.recipients.every((r) => r.context.kudos === undefined && !r.context.rederivation)) {
    const { table, close } = openServerTable(credentials.recipients, persistence, options.activeContexts !== undefined ? { active: options.activeContexts } : {});
    const security = new OscoreServerSecurity([], { ...options, table });
    return { security, protection: security, kudos: undefined, close };
  }
  const opened = openServerContexts(credentials.recipients, persistence);
  const security = new OscoreServerSecurity(
    opened.map((o) => o.context),
    options,
  );
  let kudos: KudosServerSecurity | undefined;
  try {
    kudos = kudosRecipients(credentials, opened, security, options);
  } catch (error) {
    opened.forEach((o) => o.close());
    throw error;
  }
  return { security, protection: kudos ?? security, kudos, close: () => opened.forEach((o) => o.close()) };
}

/** The recipients with a `kudos` entry, each alone on its context (a shared sender key would be updated twice). */
function kudosRecipients(credentials: Credentials, opened: readonly OpenedContext[], fallback: OscoreServerSecurity, options: ServerCredentialsOptions): KudosServerSecurity | undefined {
  const peers = [];
  for (const recipient of credentials.recipients) {
    if (recipient.context.kudos === undefined) continue;
    const context = opened.find((o) => o.context.recipient(recipient.recipientId) !== undefined)!.context;
    if (context.recipientIds.length > 1) {
      throw new CredentialsError(`${credentials.file}: recipient ${recipient.name} has "kudos" but shares its sender context with other recipients; KUDOS needs a context of its own`, credentials.file);
    }
    peers.push(kudosServerPeer(recipient.context, recipient.recipientId, recipient.name, credentials.stateDirectory, context));
  }
  if (peers.length === 0) return undefined;
  return new KudosServerSecurity(peers, { fallback, ...(options.onKudosEvent ? { onEvent: options.onKudosEvent } : {}) });
}
