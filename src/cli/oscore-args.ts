/**
 * OSCORE flags shared by the request, observe and serve commands:
 *   --credentials FILE          coapsec's JSON credentials (docs/credentials.md)
 *   --oscore-conf FILE[,SEQ]    libcoap's coap-oscore-conf(5) file, optionally with a sequence file
 * Sender Sequence Numbers are always persisted (RFC 8613 Appendix B.1.1): in the credentials'
 * state directory, in SEQ, or in $COAPSEC_STATE_DIR / $XDG_STATE_HOME/coapsec / ~/.local/state/coapsec.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { OscoreClientSecurity } from '../client/oscore.js';
import type { MessageSecurity } from '../client/security.js';
import { loadCredentials, matchClientContext, type Credentials } from '../credentials/credentials-file.js';
import { CredentialsError } from '../credentials/errors.js';
import { loadLibcoapConf, parseOscoreConfArgument } from '../credentials/libcoap-conf.js';
import { openSecurityContext, openServerContexts, type OpenedContext, type SequencePersistence } from '../credentials/runtime.js';
import { OscoreConfigError } from '../oscore/errors.js';
import { OscoreServerSecurity } from '../server/oscore.js';
import { UsageError } from './errors.js';

export const OSCORE_FLAGS = {
  credentials: { type: 'string' },
  'oscore-conf': { type: 'string' },
} as const;

export const OSCORE_USAGE = `  OSCORE (RFC 8613):
  --credentials FILE      coapsec JSON credentials (contexts by URI; server recipients)
  --oscore-conf FILE[,SEQFILE]  libcoap coap-oscore-conf(5) file, optional sequence-number file`;

export interface OscoreFlagValues {
  credentials?: string | undefined;
  'oscore-conf'?: string | undefined;
}

export function defaultStateDirectory(): string {
  const env = process.env;
  if (env['COAPSEC_STATE_DIR']) return env['COAPSEC_STATE_DIR'];
  return join(env['XDG_STATE_HOME'] || join(homedir(), '.local', 'state'), 'coapsec');
}

/** Configuration problems become usage errors: one line naming the file and the problem. */
function asUsageError<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof CredentialsError || error instanceof OscoreConfigError) throw new UsageError(error.message);
    throw error;
  }
}

function confPersistence(argument: string): { confPath: string; persistence: SequencePersistence } {
  const { confPath, sequenceFile } = parseOscoreConfArgument(argument);
  return { confPath, persistence: sequenceFile !== undefined ? { sequenceFile } : { stateDirectory: defaultStateDirectory() } };
}

export interface ClientOscore {
  security: ((uri: string) => MessageSecurity | undefined) | undefined;
  close(): void;
}

export function clientOscore(values: OscoreFlagValues): ClientOscore {
  if (values.credentials !== undefined && values['oscore-conf'] !== undefined) throw new UsageError('use either --credentials or --oscore-conf, not both');
  const opened: OpenedContext[] = [];
  const close = (): void => opened.forEach((o) => o.close());
  return asUsageError(() => {
    if (values['oscore-conf'] !== undefined) {
      const { confPath, persistence } = confPersistence(values['oscore-conf']);
      const context = openSecurityContext(loadLibcoapConf(confPath), persistence);
      opened.push(context);
      const security = new OscoreClientSecurity(context.context);
      return { security: () => security, close };
    }
    if (values.credentials !== undefined) {
      const credentials: Credentials = loadCredentials(values.credentials);
      const byEntry = new Map<object, MessageSecurity>();
      const security = (uri: string): MessageSecurity | undefined => {
        const entry = matchClientContext(credentials, uri);
        if (!entry) return undefined;
        let found = byEntry.get(entry);
        if (!found) {
          const context = asUsageError(() => openSecurityContext(entry.context, { stateDirectory: credentials.stateDirectory }));
          opened.push(context);
          found = new OscoreClientSecurity(context.context);
          byEntry.set(entry, found);
        }
        return found;
      };
      return { security, close };
    }
    return { security: undefined, close };
  });
}

export interface ServerOscore {
  security: OscoreServerSecurity | undefined;
  close(): void;
}

export function serverOscore(values: OscoreFlagValues): ServerOscore {
  if (values.credentials !== undefined && values['oscore-conf'] !== undefined) throw new UsageError('use either --credentials or --oscore-conf, not both');
  return asUsageError(() => {
    let opened: OpenedContext[] = [];
    if (values['oscore-conf'] !== undefined) {
      const { confPath, persistence } = confPersistence(values['oscore-conf']);
      opened = [openSecurityContext(loadLibcoapConf(confPath), persistence)];
    } else if (values.credentials !== undefined) {
      const credentials = loadCredentials(values.credentials);
      if (credentials.recipients.length === 0) throw new UsageError(`${values.credentials}: no "recipients" for a server`);
      opened = openServerContexts(credentials.recipients, { stateDirectory: credentials.stateDirectory });
    }
    return {
      security: opened.length > 0 ? new OscoreServerSecurity(opened.map((o) => o.context)) : undefined,
      close: () => opened.forEach((o) => o.close()),
    };
  });
}
