/**
 * A server's OSCORE protection from a credentials file (docs/credentials.md): its `recipients`,
 * keyed by the clients' Sender IDs, with Sender Sequence Numbers persisted in the file's state
 * directory and registered in the common state directory (RFC 8613 Appendix B.1.1). A context that
 * resumes from earlier state starts with uninitialised replay windows and challenges its first
 * request with Echo (Appendix B.1.2).
 */
import { loadCredentials, type Credentials } from '../credentials/credentials-file.js';
import { CredentialsError } from '../credentials/errors.js';
import { openServerContexts } from '../credentials/runtime.js';
import { defaultStateDirectory } from '../credentials/state-directory.js';
import { OscoreServerSecurity, type OscoreServerOptions } from './oscore.js';

export interface ServerCredentials {
  security: OscoreServerSecurity;
  /** Writes the exact next sequence numbers back and releases the contexts' locks. */
  close(): void;
}

export interface ServerCredentialsOptions extends OscoreServerOptions {
  /** Where every context is also registered. Default: the common state directory. */
  registryDirectory?: string;
}

/** Throws CredentialsError when the file does not load, has no recipients, or a context is in use elsewhere. */
export function serverCredentials(source: string | Credentials, options: ServerCredentialsOptions = {}): ServerCredentials {
  const credentials = typeof source === 'string' ? loadCredentials(source) : source;
  if (credentials.recipients.length === 0) throw new CredentialsError(`${credentials.file}: no "recipients" for a server`, credentials.file);
  const opened = openServerContexts(credentials.recipients, {
    stateDirectory: credentials.stateDirectory,
    registryDirectory: options.registryDirectory ?? defaultStateDirectory(),
  });
  return {
    security: new OscoreServerSecurity(
      opened.map((o) => o.context),
      options,
    ),
    close: () => opened.forEach((o) => o.close()),
  };
}
