/**
 * OSCORE flags shared by the request, observe and serve commands:
 *   --credentials FILE          coapsec's JSON credentials (docs/credentials.md)
 *   --oscore-conf FILE[,SEQ]    libcoap's coap-oscore-conf(5) file, optionally with a sequence file
 *   --allow-unprotected         with --credentials: send a request no context matches as plain CoAP
 * Sender Sequence Numbers are always persisted (RFC 8613 Appendix B.1.1): in the credentials'
 * state directory, in SEQ, or in the common state directory — where every context is registered
 * as well, so one context has one counter however it is configured (credentials/sequence-store.ts).
 * The client side is the library's: CoapClient's `credentials` option.
 */
import { ClientCredentials, NoSecurityContextError } from '../client/credentials-security.js';
import type { ClientOptions } from '../client/client.js';
import type { RouteHop } from '../client/route.js';
import { OscoreClientSecurity } from '../client/oscore.js';
import type { MessageSecurity } from '../client/security.js';
import { loadCredentials } from '../credentials/credentials-file.js';
import { CredentialsError } from '../credentials/errors.js';
import { loadLibcoapConf, parseOscoreConfArgument } from '../credentials/libcoap-conf.js';
import { openSecurityContext, type OpenedContext, type SequencePersistence } from '../credentials/runtime.js';
import { defaultStateDirectory } from '../credentials/state-directory.js';
import type { EndpointContext } from '../exchange/context.js';
import { OscoreConfigError } from '../oscore/errors.js';
import { serverCredentials } from '../server/credentials.js';
import { OscoreServerSecurity } from '../server/oscore.js';
import type { ServerSecurity } from '../server/security.js';
import type { KudosServerSecurity } from '../kudos/server.js';
import type { KudosEvent } from '../kudos/session-types.js';
import { UsageError } from './errors.js';

export const OSCORE_FLAGS = {
  credentials: { type: 'string' },
  'oscore-conf': { type: 'string' },
} as const;

/** The client commands' flags: OSCORE_FLAGS and the opt-out from refusing unprotected requests. */
export const CLIENT_OSCORE_FLAGS = {
  ...OSCORE_FLAGS,
  'allow-unprotected': { type: 'boolean' },
} as const;

const STATE_USAGE = `  Sender Sequence Numbers persist in the credentials' stateDirectory, in SEQFILE, or in the
  state directory: $COAPSEC_STATE_DIR, else $XDG_STATE_HOME/coapsec, else ~/.local/state/coapsec,
  where every context is also registered (one counter per context however it is configured)`;

export const OSCORE_USAGE = `  OSCORE (RFC 8613):
  --credentials FILE      coapsec JSON credentials (contexts by URI; server recipients)
  --oscore-conf FILE[,SEQFILE]  libcoap coap-oscore-conf(5) file, optional sequence-number file
${STATE_USAGE}`;

export const CLIENT_OSCORE_USAGE = `  OSCORE (RFC 8613):
  --credentials FILE      coapsec JSON credentials: the context whose pattern matches the URI; a
                          request no pattern matches is refused (exit 6), nothing is sent
  --allow-unprotected     with --credentials: send requests no context matches as plain CoAP
  --oscore-conf FILE[,SEQFILE]  libcoap coap-oscore-conf(5) file, optional sequence-number file
${STATE_USAGE}`;

/**
 * Exit code 6, "security failure / refused protection" in the CLI's exit-code table: here, a
 * request that --credentials cannot protect and that was therefore not sent.
 */
export const EXIT_SECURITY_FAILURE = 6;

export interface OscoreFlagValues {
  credentials?: string | undefined;
  'oscore-conf'?: string | undefined;
  'allow-unprotected'?: boolean | undefined;
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
  const registryDirectory = defaultStateDirectory();
  return { confPath, persistence: sequenceFile !== undefined ? { sequenceFile, registryDirectory } : { stateDirectory: registryDirectory, registryDirectory } };
}

export interface ClientOscore {
  /** For CoapClient: `credentials` (the library's path) or, for a libcoap conf, `security`. */
  options: Pick<ClientOptions, 'credentials' | 'security' | 'allowUnprotected'>;
  /** The protection for a URI, for commands that check before sending (ta-request). */
  security: ((uri: string) => MessageSecurity | undefined) | undefined;
  close(): void;
}

export function clientOscore(values: OscoreFlagValues): ClientOscore {
  if (values.credentials !== undefined && values['oscore-conf'] !== undefined) throw new UsageError('use either --credentials or --oscore-conf, not both');
  if (values['allow-unprotected'] && values.credentials === undefined) throw new UsageError('--allow-unprotected goes with --credentials');
  return asUsageError(() => {
    if (values['oscore-conf'] !== undefined) {
      const { confPath, persistence } = confPersistence(values['oscore-conf']);
      const context = openSecurityContext(loadLibcoapConf(confPath), persistence);
      const security = new OscoreClientSecurity(context.context);
      return { options: { security: () => security }, security: () => security, close: () => context.close() };
    }
    if (values.credentials !== undefined) {
      const credentials = loadCredentials(values.credentials);
      let own: ClientCredentials | undefined;
      return {
        options: { credentials, ...(values['allow-unprotected'] ? { allowUnprotected: true } : {}) },
        security: (uri) => asUsageError(() => (own ??= new ClientCredentials(credentials)).securityFor(uri)),
        close: () => own?.close(),
      };
    }
    return { options: {}, security: undefined, close: () => {} };
  });
}

/**
 * A client request that failed for its protection's configuration: a request --credentials
 * cannot protect (exit 6, nothing sent), or a context that cannot be opened (a usage error).
 * Undefined for anything else.
 */
export function oscoreRefusal(error: unknown): number | undefined {
  if (error instanceof NoSecurityContextError) {
    process.stderr.write(`coapsec: ${error.message} (--allow-unprotected sends it as plain CoAP)\n`);
    return EXIT_SECURITY_FAILURE;
  }
  if (error instanceof CredentialsError || error instanceof OscoreConfigError) throw new UsageError(error.message);
  return undefined;
}

/**
 * -v: which protection each hop of a response had — each proxy of the route, then end to end —
 * from the OSCORE layers its endpoint context lists (outermost first: the proxies with a context
 * in route order, then the origin's), and DTLS on the first leg.
 */
export function describeProtection(context: EndpointContext, via: readonly RouteHop[] | undefined): string[] {
  const layers = [...(context.oscore ?? [])];
  const oscore = (layer: (typeof layers)[number] | undefined): string =>
    layer === undefined ? 'none' : `OSCORE kid=${layer.kid || '(empty)'}${layer.kidContext ? ` kid-context=${layer.kidContext}` : ''} (${layer.peer})`;
  const lines: string[] = [];
  if (context.security) lines.push(`protection of the first leg: DTLS ${context.security.mode} (${context.security.identity})`);
  for (const hop of via ?? []) lines.push(`protection to proxy ${hop.uri}: ${hop.context ? oscore(layers.shift()) : 'none'}`);
  lines.push(`protection${via?.length ? ' end to end' : ''}: ${oscore(layers.shift())}`);
  return lines;
}

export interface ServerOscore {
  security: OscoreServerSecurity | undefined;
  /** What the server unprotects with: `security`, or the KUDOS peers in front of it. */
  protection: ServerSecurity | undefined;
  kudos: KudosServerSecurity | undefined;
  close(): void;
}

export function serverOscore(values: OscoreFlagValues, onKudosEvent?: (peer: string, event: KudosEvent) => void): ServerOscore {
  if (values.credentials !== undefined && values['oscore-conf'] !== undefined) throw new UsageError('use either --credentials or --oscore-conf, not both');
  return asUsageError(() => {
    let opened: OpenedContext[] = [];
    if (values['oscore-conf'] !== undefined) {
      const { confPath, persistence } = confPersistence(values['oscore-conf']);
      opened = [openSecurityContext(loadLibcoapConf(confPath), persistence)];
    } else if (values.credentials !== undefined) {
      return serverCredentials(values.credentials, onKudosEvent ? { onKudosEvent } : {});
    }
    const security = opened.length > 0 ? new OscoreServerSecurity(opened.map((o) => o.context)) : undefined;
    return { security, protection: security, kudos: undefined, close: () => opened.forEach((o) => o.close()) };
  });
}
