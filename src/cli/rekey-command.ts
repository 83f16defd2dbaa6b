/**
 * coapsec rekey URI: one KUDOS key update (draft-ietf-core-oscore-key-update §4.3, the forward
 * flow of Appendix A.1) with the server of URI, by hand, for a context whose credentials entry has
 * `kudos`. The divergent request goes to the server's /.well-known/kudos (§4.7.3); the new context
 * is in the credentials' state directory when this returns.
 *
 * A URI whose context the file's "edhoc" section makes: EDHOC runs first, offering KUDOS in its EAD
 * (§4.8), and the update runs on the context it derived if the server signalled support. That
 * context lives in this process only, so the key is confirmed (§4.3.3.5: a non KUDOS request under
 * CTX_NEW) before the command returns, and the server does not wait in PENDING for it.
 */
import { ClientCredentials } from '../client/credentials-security.js';
import { CoapClient } from '../client/client.js';
import { CoapRequestError } from '../exchange/errors.js';
import { describeKudosContext, describeKudosEvent } from '../kudos/describe.js';
import { KUDOS_RESOURCE_PATH } from '../kudos/well-known.js';
import { OscoreClientSecurity } from '../client/oscore.js';
import { loadCredentials, matchClientContext } from '../credentials/credentials-file.js';
import type { EdhocCredentials } from '../credentials/edhoc-entries.js';
import { defaultStateDirectory } from '../credentials/state-directory.js';
import { kudosSessionForEdhoc } from '../edhoc-coap/kudos-session.js';
import { KudosClientPeer } from '../kudos/client.js';
import { KudosFileStorage } from '../kudos/persistence.js';
import type { KudosEvent } from '../kudos/session-types.js';
import { join } from 'node:path';
import { checkUri, parse } from './args.js';
import { ClientEdhoc, originOf } from './edhoc-client.js';
import { ExitCode, UsageError } from './errors.js';

export const REKEY_USAGE = `usage: coapsec rekey URI --credentials FILE [-v]
  runs one KUDOS key update (draft-ietf-core-oscore-key-update) with the server of URI, using the
  OSCORE context of FILE that matches URI (its entry needs "kudos"), or the context EDHOC makes
  with it when FILE's "edhoc" section covers URI (EDHOC then offers KUDOS in its EAD, §4.8, and
  the server must support it); the request goes to the server's ${KUDOS_RESOURCE_PATH}. Prints the
  context's IDs and the new context's tag (never keys).
  exit 0 when the update completed, 3 when the server did not answer, 6 when it refused
  --credentials FILE      coapsec JSON credentials (docs/credentials.md)
  -v, --verbose           show the KUDOS state transitions`;

export async function rekeyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { credentials: { type: 'string' }, verbose: { type: 'boolean', short: 'v' } }, { min: 1, max: 1, names: 'URI' });
  const uri = checkUri(positionals[0]!);
  if (values.credentials === undefined) throw new UsageError('coapsec rekey needs --credentials FILE');
  const verbose = values.verbose === true;
  const onEvent = verbose ? (event: KudosEvent) => void process.stderr.write(`${describeKudosEvent(uri, event)}\n`) : undefined;
  const file = (() => {
    try {
      return loadCredentials(values.credentials!);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  })();
  if (file.edhoc !== undefined && matchClientContext(file, uri) === undefined && new ClientEdhoc(file.edhoc, { combined: false }).covers(uri)) {
    return rekeyOverEdhoc(uri, file.edhoc, verbose, onEvent);
  }
  // The credentials send their KUDOS requests through this client; the client protects with them.
  let credentials: ClientCredentials | undefined;
  const client = new CoapClient({ security: (u) => credentials?.securityFor(u) });
  try {
    credentials = new ClientCredentials(values.credentials, {
      kudos: {
        send: (origin) => (security) => client.request({ method: 'POST', uri: `${origin}${KUDOS_RESOURCE_PATH}`, security }),
        ...(onEvent ? { onEvent } : {}),
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

async function rekeyOverEdhoc(uri: string, edhocCredentials: EdhocCredentials, verbose: boolean, onEvent: ((event: KudosEvent) => void) | undefined): Promise<number> {
  const client = new CoapClient();
  const log = verbose ? (line: string) => void process.stderr.write(`${line}\n`) : undefined;
  const edhoc = new ClientEdhoc(edhocCredentials, { combined: false, kudos: 'full', ...(log ? { log } : {}) });
  edhoc.attach(client);
  const origin = originOf(uri);
  let record: KudosFileStorage | undefined;
  try {
    await edhoc.establish(uri);
    const made = edhoc.established(uri)!;
    const session = kudosSessionForEdhoc(made.session, made.peerKudos ?? 'none', {
      storage: (identity) => (record = new KudosFileStorage(join(defaultStateDirectory(), 'kudos-edhoc'), identity)),
      peerKeepsQuiet: true,
    });
    if (session === undefined) {
      process.stderr.write(`coapsec: ${uri} did not signal KUDOS support in EDHOC (§4.8): no update, the EDHOC context stays as it is\n`);
      return ExitCode.Security;
    }
    const security = new OscoreClientSecurity(made.context);
    const kudosUri = `${origin}${KUDOS_RESOURCE_PATH}`;
    const peer = new KudosClientPeer(session, security.requester, { send: (s) => client.request({ method: 'POST', uri: kudosUri, security: s }), ...(onEvent ? { onEvent } : {}) });
    await peer.rekey();
    await client.request({ method: 'POST', uri: kudosUri, security }); // key confirmation under CTX_NEW
    process.stdout.write(`key updated with ${uri} (EDHOC context): ${describeKudosContext(session)}\n`);
    return ExitCode.Ok;
  } catch (error) {
    process.stderr.write(`coapsec: KUDOS update with ${uri} failed: ${(error as Error).message}\n`);
    return error instanceof CoapRequestError && /timeout|no response|unreachable/i.test((error as Error).message) ? ExitCode.NoResponse : ExitCode.Security;
  } finally {
    record?.remove(); // the EDHOC-derived context ends with this process, and its record with it
    await client.close();
  }
}
