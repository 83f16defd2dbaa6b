/** coapsec serve [--bind HOST:PORT] [--tcp PORT] [--tls PORT] [--ws PORT] [--dir DIR] [--plugtest] [DTLS flags [--dtls-bind HOST:PORT]] [OSCORE flags] */
import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { defaultStateDirectory } from '../credentials/state-directory.js';
import { addPlugtestResources } from '../demo/plugtest.js';
import { addDemoResources } from '../demo/resources.js';
import { CoapServer, type ServerOptions } from '../server/server.js';
import { peerKey, type StreamScheme } from '../transport/transport.js';
import { tlsServerOptions } from './tls-args.js';
import { STREAM_LISTEN_FLAGS, STREAM_LISTEN_USAGE, streamListeners } from './listen-args.js';
import { parse, parseBind, parseCount, parseSeconds } from './args.js';
import { addRevocationResource } from '../trust-anchor/resource-server-setup.js';
import { DTLS_FLAGS, DTLS_SERVE_USAGE, serverDtlsSetup } from './dtls-args.js';
import { LOG_FLAGS, LOG_USAGE, serverLog } from './server-log.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport } from './keylog-args.js';
import { addWhoamiResource } from './dtls-serve.js';
import { attachEdhocResponder } from './edhoc-serve.js';
import { ACE_SERVE_USAGE, attachAceResourceServer, loadAceServeConfig } from './ace-serve.js';
import { UsageError } from './errors.js';
import { describeKudosEvent } from '../kudos/describe.js';
import type { KudosEvent } from '../kudos/session-types.js';
import { kudosResource } from '../kudos/well-known.js';
import { OSCORE_FLAGS, OSCORE_USAGE } from './oscore-args.js';
import { STORE_FLAGS, STORE_FLAG_USAGE, serverOscoreOrStore } from './store-command.js';
import { SOCKET_FLAGS, SOCKET_USAGE, socketBuffers } from './socket-args.js';
import { METRICS_FLAGS, METRICS_FLAG_USAGE, metricsFromFlag, type MetricsPort } from './metrics-flag.js';
import { GROUP_SERVE_FLAGS, GROUP_SERVE_USAGE, checkDeterministicPaths, listenGroup, markDeterministic, wantsGroup } from './group-serve.js';

export const SERVE_USAGE = `usage: coapsec serve [--bind HOST:PORT] [--dir DIR] [-v|-vv] [DTLS options] [OSCORE options]
  --bind HOST:PORT   address to listen on (default 127.0.0.1:5683; [::]:5683 for all IPv6);
                     with DTLS credentials it serves coaps:// there (default port 5684)
  --dtls-bind HOST:PORT  serve coaps:// here and plain coap:// on --bind
  --dtls-max-sessions N  DTLS sessions held at once (default 256); a client beyond them is turned
                     away unless a session has been idle for --dtls-stale-after
  --dtls-max-sessions-per-identity N  DTLS sessions one client identity (PSK identity or key) may
                     hold (default a quarter of --dtls-max-sessions); beyond it, that identity's
                     least recently active session is closed
  --dtls-stale-after S   seconds idle after which a session may be displaced by a new client when
                     the table is full (default 60; the displaced client gets close_notify)
  --max-observers N  Observe registrations kept at once (default 10000); --max-observers-per-peer N
                     per client endpoint (default 256); past them requests are answered unobserved
  --max-uploads-per-peer N  concurrent block-wise uploads per client endpoint (default 8)
${STREAM_LISTEN_USAGE}
  --dir DIR          also serve the files below DIR, read-only
  --plugtest         also serve the OSCORE test specification's resources (/oscore/...)
${STORE_FLAG_USAGE}
${SOCKET_USAGE}
${METRICS_FLAG_USAGE}
  --proxy-name NAME  answer proxied requests whose Proxy-Uri (or Uri-Host with Proxy-Scheme) names
                     NAME as if sent directly, so a proxy chain can end here (libcoap's -P ',NAME');
                     repeatable. Other proxied requests get 5.05.
${LOG_USAGE}
${DTLS_SERVE_USAGE}
${OSCORE_USAGE}
  --active-contexts N  with --credentials: how many of its recipients' contexts are kept ready at
                     once (default 1024); a device beyond them is made again from its bytes at its
                     next request, its keys kept (a context per device: docs/credentials.md)
${KEY_EXPORT_USAGE}
${GROUP_SERVE_USAGE}
${ACE_SERVE_USAGE}
  (serve: --trusted-rpk or --ca make client authentication mandatory; /whoami shows the identity)
  (serve: a credentials file with an "edhoc" section answers EDHOC on /.well-known/edhoc; a client
   may use only the resources its edhoc.peers entry grants (4.03 otherwise); -v logs each context)
  --kudos-ead             with an "edhoc" section: offer KUDOS key update in EDHOC's EAD
                          (draft-ietf-core-oscore-key-update §4.8); contexts made with a peer that
                          supports it run KUDOS (/.well-known/kudos, state in the state directory)`;

export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      bind: { type: 'string' },
      dir: { type: 'string' },
      'dtls-bind': { type: 'string' },
      'dtls-max-sessions': { type: 'string' },
      'dtls-stale-after': { type: 'string' },
      'dtls-max-sessions-per-identity': { type: 'string' },
      plugtest: { type: 'boolean' },
      ...METRICS_FLAGS,
      ...STORE_FLAGS,
      ...SOCKET_FLAGS,
      'proxy-name': { type: 'string', multiple: true },
      ...LOG_FLAGS,
      'max-observers': { type: 'string' },
      'max-observers-per-peer': { type: 'string' },
      'max-uploads-per-peer': { type: 'string' },
      ...STREAM_LISTEN_FLAGS,
      ...DTLS_FLAGS,
      ...OSCORE_FLAGS,
      'active-contexts': { type: 'string' },
      ...KEY_EXPORT_FLAGS,
      ...GROUP_SERVE_FLAGS,
      ace: { type: 'string' },
      'kudos-ead': { type: 'boolean' },
    },
    { min: 0, max: 0, names: '' },
  );
  const { dtls, verifier: trustAnchors } = serverDtlsSetup(values);
  if (values['dtls-bind'] !== undefined && !dtls) throw new UsageError('--dtls-bind needs DTLS credentials (--psk-identity/--psk, --rpk or --cert/--key)');
  const limits = dtlsLimits(values['dtls-max-sessions'], values['dtls-stale-after'], values['dtls-max-sessions-per-identity']);
  if (Object.keys(limits).length > 0 && !dtls) throw new UsageError('--dtls-max-sessions, --dtls-max-sessions-per-identity and --dtls-stale-after need DTLS credentials');
  const plainOnBind = !dtls || values['dtls-bind'] !== undefined;
  const defaultPort = plainOnBind ? 5683 : 5684;
  const bind = parseBind(values.bind ?? `127.0.0.1:${defaultPort}`, { host: '127.0.0.1', port: defaultPort });
  const dtlsBind = values['dtls-bind'] !== undefined ? parseBind(values['dtls-bind'], { host: '127.0.0.1', port: 5684 }) : undefined;
  if (values.dir !== undefined && (!existsSync(values.dir) || !statSync(values.dir).isDirectory())) {
    throw new UsageError(`--dir: "${values.dir}" is not a directory`);
  }
  const buffers = socketBuffers(values);
  const log = serverLog(values);
  const proxyNames = (values['proxy-name'] ?? []).map((name) => {
    if (name === '' || /[\s/]/.test(name)) throw new UsageError(`--proxy-name needs a host name or address, got "${name}"`);
    return name;
  });
  const stateLimits = serverStateLimits(values);
  const deterministic = checkDeterministicPaths(values);
  const metricsFlag = metricsFromFlag(values.metrics);
  const oscore = await serverOscoreOrStore(values, (values.verbose?.length ?? 0) > 0 ? (peer, event) => process.stderr.write(`${describeKudosEvent(peer, event)}
`) : undefined, metricsFlag?.metrics);
  const edhocLog = values.verbose?.length ? (line: string) => void process.stderr.write(`${line}\n`) : undefined;
  if (values['kudos-ead'] && (!oscore.edhoc || oscore.edhocStore)) {
    oscore.close();
    throw new UsageError(oscore.edhocStore ? '--kudos-ead is not combined with --store yet (KUDOS state is per node)' : '--kudos-ead goes with --credentials whose file has an "edhoc" section');
  }
  // EDHOC-made contexts do not outlive the process: neither do the KUDOS records of the last run.
  const edhocKudosDirectory = join(defaultStateDirectory(), 'kudos-edhoc');
  if (values['kudos-ead']) rmSync(edhocKudosDirectory, { recursive: true, force: true });
  const edhocKudos = values['kudos-ead'] ? { stateDirectory: edhocKudosDirectory, ...(values.verbose?.length ? { onEvent: (peer: string, event: KudosEvent) => void process.stderr.write(`${describeKudosEvent(peer, event)}\n`) } : {}) } : undefined;
  const keys = keyExport(values);
  const ace = loadAceServeConfig(values.ace);
  if (ace && values['kudos-ead']) throw new UsageError('--kudos-ead is not supported with --ace: the ACE EDHOC profile runs its own responder');
  for (const context of oscore.security?.contexts ?? []) keys.context(context, 'server');
  const listeners: Array<{ host: string; port: number; secure: boolean; scheme?: StreamScheme }> = [{ ...bind, secure: !plainOnBind }];
  if (dtlsBind) listeners.push({ ...dtlsBind, secure: true });
  for (const l of streamListeners(values, bind)) listeners.push({ ...l, secure: l.scheme === 'coaps+tcp' });
  const cliPsk = dtls?.psk !== undefined && typeof dtls.psk !== 'function' && !Array.isArray(dtls.psk) ? dtls.psk : undefined;
  const tls = values.tls !== undefined ? tlsServerOptions(values, cliPsk) : undefined;
  const servers: CoapServer[] = [];
  let metrics: MetricsPort | undefined;
  if (metricsFlag) {
    try {
      metrics = await metricsFlag.listen();
    } catch (error) {
      oscore.close();
      throw error;
    }
    metrics.attachContexts(() => oscore.security?.contextCount ?? 0);
  }
  for (const l of listeners) {
    let server: CoapServer;
    try {
      const common = {
        ...buffers,
        ...stateLimits,
        ...(oscore.protection ? { security: oscore.protection } : {}),
        ...(proxyNames.length > 0 ? { proxyNames } : {}),
      };
      server = l.scheme
        ? await CoapServer.listen({ scheme: l.scheme, host: l.host, port: l.port, ...(tls ? { tls } : {}), ...common })
        : !l.secure && wantsGroup(values)
          ? await listenGroup(values, l, common)
        : await CoapServer.listen({ host: l.host, port: l.port, ...(l.secure && dtls ? { dtls: { ...dtls, ...limits, ...keys.dtls } } : {}), ...common });
    } catch (error) {
      await Promise.all(servers.map((s) => s.close()));
      await metrics?.close();
      oscore.close();
      if (error instanceof UsageError) throw error;
      throw new UsageError(`cannot listen on ${l.host}:${l.port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    servers.push(server);
    log.attach(server);
    metrics?.attach(server);
    addDemoResources(server, values.dir !== undefined ? { dir: values.dir } : {});
    addWhoamiResource(server);
    try {
      markDeterministic(server, deterministic);
    } catch (error) {
      await Promise.all(servers.map((s) => s.close()));
      await metrics?.close();
      oscore.close();
      throw error;
    }
    if (oscore.kudos) server.add(kudosResource());
    // With --ace the EDHOC identity serves the ACE EDHOC profile (attachAceResourceServer below).
    if (oscore.edhoc && !ace) attachEdhocResponder(server, oscore.edhoc, edhocLog, edhocKudos, oscore.edhocStore);
    if (trustAnchors) addRevocationResource(server, trustAnchors);
    if (values.plugtest) addPlugtestResources(server);
    if (ace) {
      try {
        attachAceResourceServer(server, ace, edhocLog, oscore.edhoc);
      } catch (error) {
        await Promise.all(servers.map((s) => s.close()));
        oscore.close();
        throw error;
      }
    }
    process.stderr.write(`coapsec serving on ${l.scheme ?? (l.secure ? 'coaps' : 'coap')}://${peerKey(server.address())}\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await Promise.all(servers.map((s) => s.close()));
  await metrics?.close();
  // Writes the exact next Sender Sequence Numbers back, so a clean stop skips none.
  oscore.close();
  return 0;
}

/** --dtls-max-sessions and --dtls-stale-after as DtlsServerTransport options (only those given). */
function dtlsLimits(maxSessions: string | undefined, staleAfter: string | undefined, perIdentity: string | undefined): { maxSessions?: number; staleSessionMs?: number; maxSessionsPerIdentity?: number } {
  const limits: { maxSessions?: number; staleSessionMs?: number; maxSessionsPerIdentity?: number } = {};
  const max = parseCount(maxSessions, '--dtls-max-sessions');
  if (max !== undefined) limits.maxSessions = max;
  const perPeer = parseCount(perIdentity, '--dtls-max-sessions-per-identity');
  if (perPeer !== undefined) limits.maxSessionsPerIdentity = perPeer;
  const seconds = parseSeconds(staleAfter, '--dtls-stale-after');
  if (seconds !== undefined) limits.staleSessionMs = seconds * 1000;
  return limits;
}

/** --max-observers, --max-observers-per-peer and --max-uploads-per-peer as server options (docs/security.md "## Limits"). */
function serverStateLimits(values: Record<string, unknown>): Pick<ServerOptions, 'observe' | 'blockwise'> {
  const count = (flag: string): number | undefined => parseCount(values[flag] as string | undefined, `--${flag}`);
  const maxObservers = count('max-observers');
  const maxObserversPerPeer = count('max-observers-per-peer');
  const maxOperationsPerPeer = count('max-uploads-per-peer');
  return {
    observe: { ...(maxObservers !== undefined ? { maxObservers } : {}), ...(maxObserversPerPeer !== undefined ? { maxObserversPerPeer } : {}) },
    blockwise: maxOperationsPerPeer !== undefined ? { maxOperationsPerPeer } : {},
  };
}
