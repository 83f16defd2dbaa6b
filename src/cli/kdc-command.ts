/**
 * coapsec kdc --config FILE: the pub-sub profile's KDC (draft-ietf-ace-coap-pubsub-profile §4) as
 * an ACE resource server, handing out the topics' keys to the publishers and subscribers that
 * `publish --kdc` and `subscribe --kdc` are (docs/pubsub.md). A thin shell over src/group-manager/.
 */
import { CredentialsError } from '../credentials/errors.js';
import { PidLock } from '../credentials/pid-lock.js';
import { GroupManagerConfigError } from '../group-manager/config.js';
import { loadTopicKdcConfig, openTopicKdc } from '../group-manager/topic-config.js';
import { attachTopicKdc } from '../group-manager/topic-resources.js';
import { CoapServer } from '../server/server.js';
import { peerKey } from '../transport/transport.js';
import { parse, parseBind } from './args.js';
import { UsageError } from './errors.js';
import { LOG_FLAGS, LOG_USAGE, serverLog } from './server-log.js';

export const KDC_USAGE = `usage: coapsec kdc --config FILE [--bind HOST:PORT] [-v|-vv]
  the pub-sub topics' key distribution center (draft-ietf-ace-coap-pubsub-profile, RFC 9594): an ACE
  resource server (tokens with the pub-sub AIF scope "TOPIC:publish"/"TOPIC:read" posted to
  /authz-info, OSCORE profile) serving /ace-group/TOPIC: join (POST), keying material (GET,
  observable: rekeys notify), /creds (the publishers'), /num, /nodes/NODENAME (GET, DELETE to
  leave; the topic is rekeyed)
  --config FILE       audience, AS, token key, state file, "topics"
  --bind HOST:PORT    address to listen on (default 127.0.0.1:5690)
${LOG_USAGE}
                          (-v also logs every join, leave and rekey)`;

export async function kdcCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string' }, bind: { type: 'string' }, ...LOG_FLAGS }, { min: 0, max: 0, names: '' });
  if (values.config === undefined) throw new UsageError('kdc needs --config FILE');
  const bind = parseBind(values.bind ?? '127.0.0.1:5690', { host: '127.0.0.1', port: 5690 });
  const log = serverLog(values);
  let config;
  let kdc;
  let lock: PidLock | undefined;
  try {
    config = loadTopicKdcConfig(values.config);
    // One process per state file: two would hand out the same Sender IDs.
    lock = PidLock.acquire(`${config.statePath}.lock`);
    kdc = openTopicKdc(config, log.level > 0 ? { log: (line) => log.event('gm', `kdc: ${line}`) } : {});
  } catch (error) {
    lock?.release();
    if (error instanceof GroupManagerConfigError || error instanceof CredentialsError) throw new UsageError(error.message);
    throw error;
  }
  let server: CoapServer;
  try {
    server = await CoapServer.listen(bind);
  } catch (error) {
    lock.release();
    throw error;
  }
  log.attach(server);
  attachTopicKdc(server, kdc, {
    audiences: [config.audience],
    tokenKeys: [config.tokenKey],
    ...(config.asUri !== undefined ? { asUri: config.asUri } : {}),
    ...(config.issuer !== undefined ? { issuer: config.issuer } : {}),
    ...(log.level > 0 ? { log: (line: string) => log.event('ace', `ace: ${line}`) } : {}),
  });
  process.stderr.write(`coapsec kdc of topics ${kdc.topicNames.join(', ')} serving on coap://${peerKey(server.address())}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  lock.release();
  return 0;
}
