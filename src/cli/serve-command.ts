/** coapsec serve [--bind HOST:PORT] [--dir DIR] [--plugtest] [DTLS flags [--dtls-bind HOST:PORT]] [OSCORE flags] */
import { existsSync, statSync } from 'node:fs';
import { addPlugtestResources } from '../demo/plugtest.js';
import { addDemoResources } from '../demo/resources.js';
import { CoapServer } from '../server/server.js';
import { peerKey } from '../transport/transport.js';
import { parse, parseBind, parseSeconds } from './args.js';
import { addRevocationResource } from '../trust-anchor/resource-server-setup.js';
import { DTLS_FLAGS, DTLS_USAGE, serverDtlsSetup } from './dtls-args.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport } from './keylog-args.js';
import { addWhoamiResource } from './dtls-serve.js';
import { UsageError } from './errors.js';
import { OSCORE_FLAGS, OSCORE_USAGE, serverOscore } from './oscore-args.js';

export const SERVE_USAGE = `usage: coapsec serve [--bind HOST:PORT] [--dir DIR] [DTLS options]
  --bind HOST:PORT   address to listen on (default 127.0.0.1:5683; [::]:5683 for all IPv6);
                     with DTLS credentials it serves coaps:// there (default port 5684)
  --dtls-bind HOST:PORT  serve coaps:// here and plain coap:// on --bind
  --dtls-max-sessions N  DTLS sessions held at once (default 256); a client beyond them is turned
                     away unless a session has been idle for --dtls-stale-after
  --dtls-stale-after S   seconds idle after which a session may be displaced by a new client when
                     the table is full (default 60; the displaced client gets close_notify)
  --dir DIR          also serve the files below DIR, read-only
  --plugtest         also serve the OSCORE test specification's resources (/oscore/...)
${DTLS_USAGE}
${OSCORE_USAGE}
${KEY_EXPORT_USAGE}
  (serve: --trusted-rpk or --ca make client authentication mandatory; /whoami shows the identity)`;

export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      bind: { type: 'string' },
      dir: { type: 'string' },
      'dtls-bind': { type: 'string' },
      'dtls-max-sessions': { type: 'string' },
      'dtls-stale-after': { type: 'string' },
      plugtest: { type: 'boolean' },
      ...DTLS_FLAGS,
      ...OSCORE_FLAGS,
      ...KEY_EXPORT_FLAGS,
    },
    { min: 0, max: 0, names: '' },
  );
  const { dtls, verifier: trustAnchors } = serverDtlsSetup(values);
  if (values['dtls-bind'] !== undefined && !dtls) throw new UsageError('--dtls-bind needs DTLS credentials (--psk-identity/--psk, --rpk or --cert/--key)');
  const limits = dtlsLimits(values['dtls-max-sessions'], values['dtls-stale-after']);
  if (Object.keys(limits).length > 0 && !dtls) throw new UsageError('--dtls-max-sessions and --dtls-stale-after need DTLS credentials');
  const plainOnBind = !dtls || values['dtls-bind'] !== undefined;
  const defaultPort = plainOnBind ? 5683 : 5684;
  const bind = parseBind(values.bind ?? `127.0.0.1:${defaultPort}`, { host: '127.0.0.1', port: defaultPort });
  const dtlsBind = values['dtls-bind'] !== undefined ? parseBind(values['dtls-bind'], { host: '127.0.0.1', port: 5684 }) : undefined;
  if (values.dir !== undefined && (!existsSync(values.dir) || !statSync(values.dir).isDirectory())) {
    throw new UsageError(`--dir: "${values.dir}" is not a directory`);
  }
  const oscore = serverOscore(values);
  const keys = keyExport(values);
  for (const context of oscore.security?.contexts ?? []) keys.context(context, 'server');
  const listeners: Array<{ host: string; port: number; secure: boolean }> = [{ ...bind, secure: !plainOnBind }];
  if (dtlsBind) listeners.push({ ...dtlsBind, secure: true });
  const servers: CoapServer[] = [];
  for (const l of listeners) {
    let server: CoapServer;
    try {
      server = await CoapServer.listen({ host: l.host, port: l.port, ...(l.secure && dtls ? { dtls: { ...dtls, ...limits, ...keys.dtls } } : {}), ...(oscore.security ? { security: oscore.security } : {}) });
    } catch (error) {
      await Promise.all(servers.map((s) => s.close()));
      oscore.close();
      throw new UsageError(`cannot listen on ${l.host}:${l.port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    servers.push(server);
    addDemoResources(server, values.dir !== undefined ? { dir: values.dir } : {});
    addWhoamiResource(server);
    if (trustAnchors) addRevocationResource(server, trustAnchors);
    if (values.plugtest) addPlugtestResources(server);
    process.stderr.write(`coapsec serving on ${l.secure ? 'coaps' : 'coap'}://${peerKey(server.address())}\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await Promise.all(servers.map((s) => s.close()));
  // Writes the exact next Sender Sequence Numbers back, so a clean stop skips none.
  oscore.close();
  return 0;
}

/** --dtls-max-sessions and --dtls-stale-after as DtlsServerTransport options (only those given). */
function dtlsLimits(maxSessions: string | undefined, staleAfter: string | undefined): { maxSessions?: number; staleSessionMs?: number } {
  const limits: { maxSessions?: number; staleSessionMs?: number } = {};
  if (maxSessions !== undefined) {
    const n = Number(maxSessions);
    if (!(Number.isInteger(n) && n > 0)) throw new UsageError(`--dtls-max-sessions needs a positive whole number, got "${maxSessions}"`);
    limits.maxSessions = n;
  }
  const seconds = parseSeconds(staleAfter, '--dtls-stale-after');
  if (seconds !== undefined) limits.staleSessionMs = seconds * 1000;
  return limits;
}
