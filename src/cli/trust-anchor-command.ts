/** coapsec trust-anchor --config FILE [-v]: the trust-anchor service (docs/trust-anchor-modes.md). */
import { CoapClient } from '../client/client.js';
import { ContentFormat } from '../coap/content-format.js';
import { loadCredentials } from '../credentials/credentials-file.js';
import { CredentialsError } from '../credentials/errors.js';
import { PidLock } from '../credentials/pid-lock.js';
import { openServerContexts, type OpenedContext } from '../credentials/runtime.js';
import { peerKey } from '../transport/transport.js';
import { parseTrustAnchorConfig, TrustAnchorConfigError } from '../trust-anchor/config.js';
import { StoreCounters } from '../trust-anchor/counters.js';
import { addTrustAnchorResources, TrustAnchorService, type RevocationSender } from '../trust-anchor/service.js';
import { openContextStore } from '../store/open.js';
import { StoreError } from '../store/types.js';
import { parse, parseBind } from './args.js';
import { UsageError } from './errors.js';
import { listenOscoreOnly } from './oscore-listen.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport } from './keylog-args.js';
import { LOG_FLAGS, LOG_USAGE, serverLog } from './server-log.js';

export const TRUST_ANCHOR_USAGE = `usage: coapsec trust-anchor --config FILE [-v|-vv] [--log-format text|json]
  serves DerivedKey and AuthorizedPublicKey credentials (POST /ta/dk, /ta/apk) and revocations
  (POST /ta/revoke) over OSCORE to the clients of the config's credentials file, by its policy
${LOG_USAGE}
                          (-v also logs every trust-anchor decision)
${KEY_EXPORT_USAGE}`;

export async function trustAnchorCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string' }, ...LOG_FLAGS, ...KEY_EXPORT_FLAGS }, { min: 0, max: 0, names: '' });
  if (values.config === undefined) throw new UsageError('trust-anchor needs --config FILE');
  const log = serverLog(values);
  const keys = keyExport(values);
  let opened: OpenedContext[];
  let config;
  let lock: PidLock | undefined;
  try {
    config = parseTrustAnchorConfig(values.config);
    const credentials = loadCredentials(config.credentials);
    if (credentials.recipients.length === 0) throw new UsageError(`${config.credentials}: no "recipients" (the trust anchor's clients)`);
    // One process per counter file: two would issue the same sequence numbers. A store is shared.
    if (config.stateFile !== undefined) lock = PidLock.acquire(`${config.stateFile}.lock`);
    try {
      opened = openServerContexts(credentials.recipients, { stateDirectory: credentials.stateDirectory });
    } catch (error) {
      lock?.release();
      throw error;
    }
  } catch (error) {
    if (error instanceof TrustAnchorConfigError || error instanceof CredentialsError) throw new UsageError(error.message);
    throw error;
  }
  for (const o of opened) keys.context(o.context, 'server');
  let counters: StoreCounters | undefined;
  if (config.store !== undefined) {
    try {
      counters = new StoreCounters(await openContextStore(config.store), config.id);
    } catch (error) {
      opened.forEach((o) => o.close());
      if (error instanceof StoreError) throw new UsageError(`${values.config}: store: ${error.message}`);
      throw error;
    }
  }
  const service = new TrustAnchorService(config, counters ? { counters } : {});
  if (log.level > 0) service.onLog = (line) => log.event('trust-anchor', `ta: ${line}`);
  const sendRevocation: RevocationSender = async (uri, payload, rs) => {
    // coaps:// revocation URIs are reached with a DerivedKey credential the TA issues itself.
    const own = uri.startsWith('coaps:') ? await service.ownDerivedKey(rs.name) : undefined;
    const client = new CoapClient(own ? { dtls: { psk: { identity: own.identity, key: own.key }, ...keys.dtls } } : {});
    try {
      const response = await client.request({ method: 'POST', uri, payload, contentFormat: ContentFormat.OctetStream, timeout: 10_000 });
      if (!response.ok) throw new Error(`${response.status}: ${response.text()}`);
      return response.text();
    } finally {
      await client.close();
    }
  };
  const bind = parseBind(config.bind, { host: '127.0.0.1', port: 5690 });
  const server = await listenOscoreOnly(bind, opened, lock);
  log.attach(server);
  addTrustAnchorResources(server, service, sendRevocation);
  process.stderr.write(`coapsec trust anchor ${config.id} serving on coap://${peerKey(server.address())}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  opened.forEach((o) => o.close());
  await service.close();
  lock?.release();
  return 0;
}
