/**
 * coapsec rekey URI: one KUDOS key update (draft-ietf-core-oscore-key-update §4.3, the forward
 * flow of Appendix A.1) with the server of URI, by hand, for a context whose credentials entry has
 * `kudos`. The divergent request goes to the server's /.well-known/kudos (§4.7.3); the new context
 * is in the credentials' state directory when this returns.
 */
import { ClientCredentials } from '../client/credentials-security.js';
import { CoapClient } from '../client/client.js';
import { CoapRequestError } from '../exchange/errors.js';
import { describeKudosContext, describeKudosEvent } from '../kudos/describe.js';
import { KUDOS_RESOURCE_PATH } from '../kudos/well-known.js';
import { checkUri, parse } from './args.js';
import { ExitCode, UsageError } from './errors.js';

export const REKEY_USAGE = `usage: coapsec rekey URI --credentials FILE [-v]
  runs one KUDOS key update (draft-ietf-core-oscore-key-update) with the server of URI, using the
  OSCORE context of FILE that matches URI (its entry needs "kudos"); the request goes to the
  server's ${KUDOS_RESOURCE_PATH}. Prints the context's IDs and the new context's tag (never keys).
  exit 0 when the update completed, 3 when the server did not answer, 6 when it refused
  --credentials FILE      coapsec JSON credentials (docs/credentials.md)
  -v, --verbose           show the KUDOS state transitions`;

export async function rekeyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { credentials: { type: 'string' }, verbose: { type: 'boolean', short: 'v' } }, { min: 1, max: 1, names: 'URI' });
  const uri = checkUri(positionals[0]!);
  if (values.credentials === undefined) throw new UsageError('coapsec rekey needs --credentials FILE');
  const verbose = values.verbose === true;
  // The credentials send their KUDOS requests through this client; the client protects with them.
  let credentials: ClientCredentials | undefined;
  const client = new CoapClient({ security: (u) => credentials?.securityFor(u) });
  try {
    credentials = new ClientCredentials(values.credentials, {
      kudos: {
        send: (origin) => (security) => client.request({ method: 'POST', uri: `${origin}${KUDOS_RESOURCE_PATH}`, security }),
        ...(verbose ? { onEvent: (event) => process.stderr.write(`${describeKudosEvent(uri, event)}\n`) } : {}),
      },
    });
  } catch (error) {
    await client.close();
    throw new UsageError((error as Error).message);
  }
  try {
    const peer = credentials.kudosPeerFor(uri);
    if (peer === undefined) {
      const matched = credentials.securityFor(uri) !== undefined;
      throw new UsageError(matched ? `the context in ${values.credentials} for ${uri} has no "kudos" entry` : credentials.refusal(uri).message);
    }
    await peer.rekey();
    process.stdout.write(`key updated with ${uri}: ${describeKudosContext(peer.session)}\n`);
    return ExitCode.Ok;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    process.stderr.write(`coapsec: KUDOS update with ${uri} failed, old context kept: ${(error as Error).message}\n`);
    return error instanceof CoapRequestError && /timeout|no response|unreachable/i.test((error as Error).message) ? ExitCode.NoResponse : ExitCode.Security;
  } finally {
    credentials.close();
    await client.close();
  }
}
