/** coapsec broker [--bind HOST:PORT] [--dtls-bind HOST:PORT] [--state FILE] [limits]: a pub-sub broker (draft-ietf-core-coap-pubsub). */
import { PubSubBroker } from '../broker/broker.js';
import { DEFAULT_BROKER_LIMITS, type BrokerLimits } from '../broker/limits.js';
import { loadTopicAcl, topicAclAuthorizer } from '../broker/topic-acl.js';
import { CoapServer } from '../server/server.js';
import { peerKey } from '../transport/transport.js';
import { parse, parseBind, parseCount } from './args.js';
import { DTLS_FLAGS, DTLS_SERVE_USAGE, serverDtlsSetup } from './dtls-args.js';
import { UsageError } from './errors.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport } from './keylog-args.js';
import { OSCORE_FLAGS, OSCORE_USAGE, serverOscore } from './oscore-args.js';

const D = DEFAULT_BROKER_LIMITS;
export const BROKER_USAGE = `usage: coapsec broker [--bind HOST:PORT] [--state FILE] [limits] [DTLS options] [OSCORE options]   (pub-sub broker, docs/pubsub.md)
  --bind HOST:PORT        address to listen on (default 127.0.0.1:5683, or :5684 for coaps:// with DTLS
                          credentials); topics at /ps
  --dtls-bind HOST:PORT   with DTLS credentials: serve coaps:// here and coap:// (plain or OSCORE) on
                          --bind, the same topics on both
  --state FILE            keep topics (configuration and latest publication) in FILE across restarts
  --topic-acl FILE        who may create, list, publish, subscribe and manage which topic, by DTLS/OSCORE
                          identity (JSON, default deny; docs/pubsub.md); without it everyone may everything
  --max-topics N          topics held at once (default ${D.maxTopics})
  --max-topics-per-client N  topics one client may create (default ${D.maxTopicsPerClient})
  --max-publication-size N   bytes of one publication (default ${D.maxPublicationSize})
  --max-subscribers N     subscribers of one topic at most (default ${D.maxSubscribersPerTopic})
  --publish-rate N        publications per second per client (default ${D.publicationsPerSecond}); --publish-burst N (default ${D.publicationBurst})
${DTLS_SERVE_USAGE}
${OSCORE_USAGE}
${KEY_EXPORT_USAGE}`;

const LIMIT_FLAGS: ReadonlyArray<[string, keyof BrokerLimits]> = [
  ['max-topics', 'maxTopics'],
  ['max-topics-per-client', 'maxTopicsPerClient'],
  ['max-publication-size', 'maxPublicationSize'],
  ['max-subscribers', 'maxSubscribersPerTopic'],
  ['publish-rate', 'publicationsPerSecond'],
  ['publish-burst', 'publicationBurst'],
];

export async function brokerCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      bind: { type: 'string' },
      'dtls-bind': { type: 'string' },
      state: { type: 'string' },
      'topic-acl': { type: 'string' },
      ...Object.fromEntries(LIMIT_FLAGS.map(([flag]) => [flag, { type: 'string' as const }])),
      ...DTLS_FLAGS,
      ...OSCORE_FLAGS,
      ...KEY_EXPORT_FLAGS,
    },
    { min: 0, max: 0, names: '' },
  );
  // Hop-by-hop protection between clients and the broker (issue 23 item 4); the publications stay opaque.
  const { dtls } = serverDtlsSetup(values);
  if (values['dtls-bind'] !== undefined && !dtls) throw new UsageError('--dtls-bind needs DTLS credentials (--psk-identity/--psk, --rpk or --cert/--key)');
  const dtlsBind = values['dtls-bind'] !== undefined ? parseBind(values['dtls-bind'], { host: '127.0.0.1', port: 5684 }) : undefined;
  const dtlsOnBind = dtls !== undefined && dtlsBind === undefined;
  const defaultPort = dtlsOnBind ? 5684 : 5683;
  const bind = parseBind(values.bind ?? `127.0.0.1:${defaultPort}`, { host: '127.0.0.1', port: defaultPort });
  const limits: Partial<BrokerLimits> = {};
  for (const [flag, name] of LIMIT_FLAGS) {
    const n = parseCount((values as Record<string, string | undefined>)[flag], `--${flag}`);
    if (n !== undefined) limits[name] = n;
  }
  let authorize;
  try {
    authorize = values['topic-acl'] !== undefined ? topicAclAuthorizer(loadTopicAcl(values['topic-acl'])) : undefined;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const keys = keyExport(values);
  const oscore = serverOscore(values);
  for (const context of oscore.security?.contexts ?? []) keys.context(context, 'server');
  const listeners = [{ ...bind, secure: dtlsOnBind }, ...(dtlsBind ? [{ ...dtlsBind, secure: true }] : [])];
  const servers: CoapServer[] = [];
  for (const l of listeners) {
    try {
      servers.push(await CoapServer.listen({ host: l.host, port: l.port, ...(l.secure && dtls ? { dtls: { ...dtls, ...keys.dtls } } : {}), ...(oscore.security ? { security: oscore.security } : {}) }));
    } catch (error) {
      await Promise.all(servers.map((s) => s.close()));
      oscore.close();
      throw new UsageError(`cannot listen on ${l.host}:${l.port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
  const [server, ...others] = servers as [CoapServer, ...CoapServer[]];
  let broker: PubSubBroker;
  try {
    broker = new PubSubBroker(server, { limits, ...(values.state !== undefined ? { stateFile: values.state } : {}), ...(authorize ? { authorize } : {}) });
  } catch (error) {
    await Promise.all(servers.map((s) => s.close()));
    oscore.close();
    throw new UsageError((error as Error).message);
  }
  for (const other of others) broker.serveOn(other);
  listeners.forEach((l, i) => process.stderr.write(`coapsec broker on ${l.secure ? 'coaps' : 'coap'}://${peerKey(servers[i]!.address())}/ps (${broker.store.size} topics)\n`));
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  // Closing the first server closes the broker, which writes its pending state.
  await Promise.all(others.map((s) => s.close()));
  await server.close();
  // Writes the exact next Sender Sequence Numbers back, so a clean stop skips none.
  oscore.close();
  return 0;
}
