/**
 * coapsec credentials new --peer NAME [--out-dir DIR] [--match URI] [--force]
 * Writes a matching OSCORE client/server pair (docs/credentials.md) with a fresh random Master
 * Secret and Master Salt, plus the client context as a libcoap coap-oscore-conf(5) file.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadCredentials } from '../credentials/credentials-file.js';
import { writeFileDurably } from '../credentials/durable-file.js';
import { CredentialsError } from '../credentials/errors.js';
import { formatLibcoapConf } from '../credentials/libcoap-conf.js';
import { OSCORE_DEFAULTS, type OscoreContextConfig } from '../credentials/oscore-params.js';
import { parse } from './args.js';
import { ExitCode, UsageError } from './errors.js';
import { bytesToHex as hex } from '../util/bytes.js';

export const CREDENTIALS_USAGE = `usage: coapsec credentials new --peer NAME [--out-dir DIR] [--match URI] [--force]
  writes a matching OSCORE pair with a fresh random master secret (files mode 0600):
    DIR/client.json   for get/observe --credentials (its context matches --match)
    DIR/server.json   for serve --credentials (NAME is the client's name there, for --allow and /whoami)
    DIR/client.conf   the client context as a libcoap coap-oscore-conf(5) file (--oscore-conf)
  --peer NAME             the client's name on the server
  --out-dir DIR           where to write (default: the current folder; created if missing)
  --match URI             the server URIs the client context is for (default coap://127.0.0.1/*)
  --force                 overwrite existing files
  Sequence numbers persist in DIR/client-state and DIR/server-state (RFC 8613 Appendix B.1.1).`;


export async function credentialsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { peer: { type: 'string' }, 'out-dir': { type: 'string' }, match: { type: 'string' }, force: { type: 'boolean' } },
    { min: 1, max: 1, names: 'subcommand (new)' },
  );
  if (positionals[0] !== 'new') throw new UsageError(`unknown credentials subcommand "${positionals[0]}" (try coapsec credentials new --peer NAME)`);
  const peer = values.peer;
  if (peer === undefined || peer.trim() === '') throw new UsageError('credentials new needs --peer NAME');
  const dir = values['out-dir'] ?? '.';
  const match = values.match ?? 'coap://127.0.0.1/*';
  const files = { client: join(dir, 'client.json'), server: join(dir, 'server.json'), conf: join(dir, 'client.conf') };
  if (!values.force) {
    const existing = Object.values(files).filter((f) => existsSync(f));
    if (existing.length > 0) throw new UsageError(`${existing.join(', ')} exists already (--force overwrites)`);
  }

  // RFC 8613 §3.2: a 16-byte Master Secret for AES-CCM-16-64-128, a Master Salt of 8 bytes;
  // §3.3: the client's Sender ID random (so pairs made for several clients rarely collide on one
  // server), the server's the empty ID, which every client of it may share.
  const masterSecret = randomBytes(16);
  const masterSalt = randomBytes(8);
  const clientId = randomBytes(4);
  const serverId = new Uint8Array(0);

  const client = {
    $comment: `OSCORE client credentials made by coapsec credentials new for ${peer}; the server side is server.json`,
    stateDirectory: 'client-state',
    oscore: [{ match, context: { masterSecret: hex(masterSecret), masterSalt: hex(masterSalt), senderId: hex(clientId), recipientId: hex(serverId), name: 'server' } }],
  };
  const server = {
    $comment: `OSCORE server credentials made by coapsec credentials new; the client side is client.json`,
    stateDirectory: 'server-state',
    recipients: { [hex(clientId)]: { name: peer, context: { masterSecret: hex(masterSecret), masterSalt: hex(masterSalt), senderId: hex(serverId) } } },
  };
  const conf: OscoreContextConfig = { ...OSCORE_DEFAULTS, masterSecret, masterSalt, senderId: clientId, recipientIds: [serverId] };

  try {
    mkdirSync(dir, { recursive: true });
    writeFileDurably(files.client, JSON.stringify(client, null, 2) + '\n');
    writeFileDurably(files.server, JSON.stringify(server, null, 2) + '\n');
    writeFileDurably(files.conf, formatLibcoapConf(conf));
    // What was written must load: the same checks as --credentials and --oscore-conf apply.
    loadCredentials(files.client);
    loadCredentials(files.server);
  } catch (error) {
    if (error instanceof CredentialsError) throw new Error(`the credentials written do not load back: ${error.message}`);
    throw new UsageError(`cannot write credentials in ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  process.stdout.write(`wrote ${files.client}, ${files.server} and ${files.conf} for peer ${peer} (client matches ${match})\n`);
  return ExitCode.Ok;
}
