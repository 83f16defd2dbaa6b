/** coapsec as --config FILE --credentials FILE [--bind HOST:PORT] [-v]: an ACE Authorization Server (docs/ace.md). */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AceConfigError, loadAsConfig } from '../ace/config.js';
import { AsStateError, FileAsState } from '../ace/as-state.js';
import { bindAuthorizationServer } from '../ace/as-resources.js';
import { AuthorizationServer } from '../ace/authorization-server.js';
import { loadCredentials } from '../credentials/credentials-file.js';
import { CredentialsError } from '../credentials/errors.js';
import { PidLock } from '../credentials/pid-lock.js';
import { openServerContexts, type OpenedContext } from '../credentials/runtime.js';
import { peerKey } from '../transport/transport.js';
import { parse, parseBind } from './args.js';
import { UsageError } from './errors.js';
import { listenOscoreOnly } from './oscore-listen.js';
import { LOG_FLAGS, LOG_USAGE, serverLog } from './server-log.js';

export const AS_USAGE = `usage: coapsec as --config FILE --credentials FILE [--bind HOST:PORT] [-v|-vv]
  an ACE Authorization Server (RFC 9200): POST /token issues access tokens for the config's
  audiences (resource servers) to the clients of the credentials file, which authenticate with
  OSCORE; tokens are CWTs encrypted for each RS (the OSCORE profile, RFC 9203)
  --config FILE       audiences (key shared with the RS, scopes, lifetime) and clients' grants
  --credentials FILE  the OSCORE contexts of the clients ("recipients"; each name is a client)
  --bind HOST:PORT    address to listen on (default 127.0.0.1:5688)
  The issued-token count and each client's Input Material ids persist in the credentials'
  stateDirectory (ace-as-ISSUER.json)
${LOG_USAGE}
                          (-v also logs every token issued or refused)`;

export async function asCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string' }, credentials: { type: 'string' }, bind: { type: 'string' }, ...LOG_FLAGS }, { min: 0, max: 0, names: '' });
  if (values.config === undefined) throw new UsageError('as needs --config FILE');
  if (values.credentials === undefined) throw new UsageError('as needs --credentials FILE (the OSCORE contexts of its clients)');
  const bind = parseBind(values.bind ?? '127.0.0.1:5688', { host: '127.0.0.1', port: 5688 });
  const log = serverLog(values);
  let opened: OpenedContext[];
  let lock: PidLock;
  let as: AuthorizationServer;
  try {
    const config = loadAsConfig(values.config);
    const credentials = loadCredentials(values.credentials);
    if (credentials.recipients.length === 0) throw new UsageError(`${values.credentials}: no "recipients" (the AS's clients)`);
    const stateFile = join(credentials.stateDirectory, `ace-as-${config.issuer.replace(/[^A-Za-z0-9._-]/g, '_')}.json`);
    // One process per state file: two would hand out the same Input Material ids.
    mkdirSync(credentials.stateDirectory, { recursive: true, mode: 0o700 });
    lock = PidLock.acquire(`${stateFile}.lock`);
    try {
      as = new AuthorizationServer({ issuer: config.issuer, audiences: config.audiences, clients: config.clients, state: new FileAsState(stateFile) });
      opened = openServerContexts(credentials.recipients, { stateDirectory: credentials.stateDirectory });
    } catch (error) {
      lock.release();
      throw error;
    }
  } catch (error) {
    if (error instanceof AceConfigError || error instanceof CredentialsError || error instanceof AsStateError) throw new UsageError(error.message);
    throw error;
  }
  if (log.level > 0) as.onDecision = (line) => log.event('as', `as: ${line}`);
  const server = await listenOscoreOnly(bind, opened, lock);
  log.attach(server);
  bindAuthorizationServer(server, as);
  process.stderr.write(`coapsec authorization server serving on coap://${peerKey(server.address())}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  opened.forEach((o) => o.close());
  lock.release();
  return 0;
}
