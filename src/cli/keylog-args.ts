/**
 * Issue 28: --keylog FILE and --oscore-export FILE on every command. Both write key material for
 * Wireshark (DTLS secrets in the NSS key log format; OSCORE contexts as its "oscore_contexts"
 * UAT) and are off by default; turning either on prints a loud warning on stderr. The secrets go
 * only to the named files, never to a log or to stdout/stderr.
 */
import type { ClientOptions } from '../client/client.js';
import type { MessageSecurity } from '../client/security.js';
import type { DtlsClientCredentials } from '../transport/dtls.js';
import type { ClientOscore } from './oscore-args.js';
import { OscoreClientSecurity } from '../client/oscore.js';
import type { DtlsSessionSecret } from '../dtls/index.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { WiresharkOscoreExport } from '../oscore/wireshark-export.js';
import { KeyLogFile } from '../trace/keylog.js';
import { UsageError } from './errors.js';

export const KEY_EXPORT_FLAGS = {
  keylog: { type: 'string' },
  'oscore-export': { type: 'string' },
} as const;

export const KEY_EXPORT_USAGE = `  Debugging with Wireshark (off by default; the files hold secrets):
  --keylog FILE           write DTLS session secrets here (NSS key log: tls.keylog_file)
  --oscore-export FILE    write the OSCORE contexts in use here (Wireshark uat:oscore_contexts)`;

export interface KeyExportFlagValues {
  keylog?: string | undefined;
  'oscore-export'?: string | undefined;
}

export interface KeyExport {
  /** For DtlsClientTransport/DtlsServerTransport options: `...keys.dtls`. */
  readonly dtls: { onSecret?: (secret: DtlsSessionSecret) => void };
  /** Records a context in use (no-op without --oscore-export). */
  context(context: OscoreSecurityContext, role: 'client' | 'server'): void;
  /** Wraps a client's per-URI security so that every OSCORE context it uses is exported. */
  clientSecurity<T extends ((uri: string) => MessageSecurity | undefined) | undefined>(security: T): T;
  /**
   * A client command's DTLS and OSCORE options with the exports wired in: the key log on the DTLS
   * sessions and, with --oscore-export, a security map reporting each context it hands out (the
   * credentials stay the fallback that refuses unmatched URIs).
   */
  clientOptions(dtls: DtlsClientCredentials | undefined, oscore: ClientOscore): Pick<ClientOptions, 'dtls' | 'credentials' | 'security' | 'allowUnprotected'>;
}

export function keyExport(values: KeyExportFlagValues, stderr: (line: string) => void = (l) => process.stderr.write(l + '\n')): KeyExport {
  const open = <T>(flag: string, path: string | undefined, create: (path: string) => T): T | undefined => {
    if (path === undefined) return undefined;
    if (path === '') throw new UsageError(`${flag} needs a file name`);
    try {
      const file = create(path);
      stderr(`WARNING: ${flag} ${path}: writing secret keys to this file; anyone who reads it can decrypt the traffic. Debugging only.`);
      return file;
    } catch (error) {
      throw new UsageError(`${flag}: cannot write "${path}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  const keylog = open('--keylog', values.keylog, (p) => new KeyLogFile(p));
  const oscore = open('--oscore-export', values['oscore-export'], (p) => new WiresharkOscoreExport(p, (reason) => stderr(`--oscore-export: not exported: ${reason}`)));
  const context = (c: OscoreSecurityContext, role: 'client' | 'server'): void => oscore?.add(c, role);
  const dtls = keylog ? { onSecret: keylog.onSecret } : {};
  const clientSecurity = <T extends ((uri: string) => MessageSecurity | undefined) | undefined>(security: T): T => {
    if (!oscore || !security) return security;
    const wrapped = (uri: string): MessageSecurity | undefined => {
      const s = security(uri);
      if (s instanceof OscoreClientSecurity) context(s.context, 'client');
      return s;
    };
    return wrapped as T;
  };
  return {
    dtls,
    context,
    clientSecurity,
    clientOptions: (credentials, client) => {
      const exported = oscore ? clientSecurity(client.security) : undefined;
      return { ...(credentials ? { dtls: { ...credentials, ...dtls } } : {}), ...client.options, ...(exported ? { security: exported } : {}) };
    },
  };
}
