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
import type { ClientOptions, CoapClient } from '../client/client.js';
import type { RouteHop } from '../client/route.js';
import { OscoreClientSecurity } from '../client/oscore.js';
import type { MessageSecurity } from '../client/security.js';
import { loadCredentials, matchClientContext } from '../credentials/credentials-file.js';
import type { EdhocCredentials } from '../credentials/edhoc-entries.js';
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
import { EdhocFailure, ClientEdhoc } from './edhoc-client.js';
import { parseCount } from './args.js';
import { UsageError } from './errors.js';

export const OSCORE_FLAGS = {
  credentials: { type: 'string' },
  'oscore-conf': { type: 'string' },
} as const;

/** The client commands' flags: OSCORE_FLAGS, the opt-out from refusing unprotected requests, and EDHOC's message_3 on its own. */
export const CLIENT_OSCORE_FLAGS = {
  ...OSCORE_FLAGS,
  'allow-unprotected': { type: 'boolean' },
  'no-combined': { type: 'boolean' },
  'kudos-ead': { type: 'boolean' },
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
                          With an "edhoc" section, a URI an edhoc.peers entry's resources match
                          gets its context by EDHOC (RFC 9528) first; a failed EDHOC fails the
                          request (exit 6), it is never sent unprotected
  --no-combined           send EDHOC message_3 in its own POST, not inside the first OSCORE
                          request (RFC 9668)
  --kudos-ead             offer KUDOS key update in EDHOC's EAD (draft-ietf-core-oscore-key-update
                          §4.8); -v shows the server's answer
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
  'no-combined'?: boolean | undefined;
  'kudos-ead'?: boolean | undefined;
  /** serve --active-contexts N: the LRU of materialised contexts of a credentials file's recipients. */
  'active-contexts'?: string | undefined;
  /** --oscore-export FILE: the server's contexts are written out at start-up, so they must all be objects. */
  'oscore-export'?: string | undefined;
  /** -v: the EDHOC messages and the contexts' identifiers on stderr. */
  verbose?: boolean | boolean[] | undefined;
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
  /** The client the requests go through: it also carries the EDHOC messages. Call once it exists. */
  attach(client: CoapClient): void;
  /** Runs EDHOC for `uri` now when it needs it; before an observation, whose registration cannot wait for it. */
  establish(uri: string): Promise<void>;
  close(): void;
}

export function clientOscore(values: OscoreFlagValues): ClientOscore {
  if (values.credentials !== undefined && values['oscore-conf'] !== undefined) throw new UsageError('use either --credentials or --oscore-conf, not both');
  if (values['allow-unprotected'] && values.credentials === undefined) throw new UsageError('--allow-unprotected goes with --credentials');
  if (values['no-combined'] && values.credentials === undefined) throw new UsageError('--no-combined goes with --credentials (an "edhoc" section)');
  if (values['kudos-ead'] && values.credentials === undefined) throw new UsageError('--kudos-ead goes with --credentials (an "edhoc" section)');
  const unchanged = { attach: () => {}, establish: async () => {} };
  return asUsageError(() => {
    if (values['oscore-conf'] !== undefined) {
      const { confPath, persistence } = confPersistence(values['oscore-conf']);
      const context = openSecurityContext(loadLibcoapConf(confPath), persistence);
      const security = new OscoreClientSecurity(context.context);
      return { options: { security: () => security }, security: () => security, close: () => context.close(), ...unchanged };
    }
    if (values.credentials !== undefined) {
      const credentials = loadCredentials(values.credentials);
      let own: ClientCredentials | undefined;
      const log = values.verbose ? (line: string) => void process.stderr.write(`${line}\n`) : undefined;
      const edhoc = credentials.edhoc && new ClientEdhoc(credentials.edhoc, { combined: !values['no-combined'], ...(log ? { log } : {}), ...(values['kudos-ead'] ? { kudos: 'full' as const } : {}) });
      // A context the file configures wins over EDHOC for the same URI; the client's credentials
      // option then protects with it (or refuses, when neither applies).
      const edhocFor = edhoc && ((uri: string) => (matchClientContext(credentials, uri) === undefined ? edhoc.securityFor(uri) : undefined));
      return {
        options: { credentials, ...(edhocFor ? { security: edhocFor } : {}), ...(values['allow-unprotected'] ? { allowUnprotected: true } : {}) },
        security: (uri) => asUsageError(() => (own ??= new ClientCredentials(credentials)).securityFor(uri) ?? edhocFor?.(uri)),
        attach: (client) => edhoc?.attach(client),
        establish: async (uri) => {
          if (edhocFor?.(uri) !== undefined) await edhoc!.establish(uri);
        },
        close: () => own?.close(),
      };
    }
    return { options: {}, security: undefined, close: () => {}, ...unchanged };
  });
}

/**
 * A client request that failed for its protection's configuration: a request --credentials
 * cannot protect (exit 6, nothing sent), or a context that cannot be opened (a usage error).
 * Undefined for anything else.
 */
export function oscoreRefusal(error: unknown): number | undefined {
  if (error instanceof EdhocFailure) {
    process.stderr.write(`coapsec: ${error.message}\n`);
    return EXIT_SECURITY_FAILURE;
  }
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
  /** The credentials' `edhoc` section: each listener answers EDHOC with it (attachEdhocResponder). */
  edhoc?: EdhocCredentials;
  close(): void;
}

export function serverOscore(values: OscoreFlagValues, onKudosEvent?: (peer: string, event: KudosEvent) => void): ServerOscore {
  if (values.credentials !== undefined && values['oscore-conf'] !== undefined) throw new UsageError('use either --credentials or --oscore-conf, not both');
  const activeContexts = parseCount(values['active-contexts'], '--active-contexts');
  if (activeContexts !== undefined && values.credentials === undefined) throw new UsageError('--active-contexts goes with --credentials (its "recipients")');
  return asUsageError(() => {
    let opened: OpenedContext[] = [];
    if (values['oscore-conf'] !== undefined) {
      const { confPath, persistence } = confPersistence(values['oscore-conf']);
      opened = [openSecurityContext(loadLibcoapConf(confPath), persistence)];
    } else if (values.credentials !== undefined) {
      const credentials = loadCredentials(values.credentials);
      // A file with only an "edhoc" section serves EDHOC-made contexts and no configured ones.
      if (credentials.edhoc !== undefined && credentials.recipients.length === 0) return { security: undefined, protection: undefined, kudos: undefined, edhoc: credentials.edhoc, close: () => {} };
      const options = {
        ...(onKudosEvent ? { onKudosEvent } : {}),
        ...(values['oscore-export'] !== undefined ? { contextsAsObjects: true } : {}),
        ...(activeContexts !== undefined ? { activeContexts } : {}),
      };
      return { ...serverCredentials(credentials, options), ...(credentials.edhoc !== undefined ? { edhoc: credentials.edhoc } : {}) };
    }
    const security = opened.length > 0 ? new OscoreServerSecurity(opened.map((o) => o.context)) : undefined;
    return { security, protection: security, kudos: undefined, close: () => opened.forEach((o) => o.close()) };
  });
}
