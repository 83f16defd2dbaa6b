/**
 * coapsec proxy --bind HOST:PORT [--tcp PORT] [--tls PORT] [--ws PORT] [--forward] [--reverse PREFIX=URI ...]
 *   [--next-hop URI] [--nstart N] [--cache-mb N] [--allow-destination CIDR|HOST ...] [--http-upstream]
 *   [--http HOST:PORT [--http-host NAME ...] [--http-allow-origin ORIGIN ...]]
 *   [--group NAME[=GROUP] ... [--group-mount PREFIX=GROUP ...] [--group-cache GROUP=MEMBER,... ...]]
 *   [--ws-origin ORIGIN ...] [--ws-max-connections N] [--ws-rate N] [--web DIR]
 *
 * Every listener (UDP on --bind, and the stream ones) gets its own ForwardProxy / ReverseProxy on
 * its own CoapServer; they share the upstream client (one connection per upstream peer over a
 * stream, RFC 8323) and the cache. The upstream leg's transport is the target's scheme's.
 */
import { EMPTY_BYTES, MessageType, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { parseAbsoluteUri } from '../coap/uri.js';
import { CoapClient } from '../client/client.js';
import { ResponseCache } from '../proxy/cache.js';
import { ForwardProxy } from '../proxy/forward-proxy.js';
import { coapToHttp, startHttpCrossProxy } from '../proxy/http-cross-proxy.js';
import { ReverseProxy, parseReverseMapping } from '../proxy/reverse-proxy.js';
import { checkDestinationEntries } from '../proxy/destination-policy.js';
import { isWebOrigin } from '../proxy/http-request-policy.js';
import { SOCKET_FLAGS, SOCKET_USAGE, socketBuffers } from './socket-args.js';
import { CoapServer } from '../server/server.js';
import { peerKey } from '../transport/transport.js';
import { STREAM_LISTEN_FLAGS, STREAM_LISTEN_USAGE, streamListeners } from './listen-args.js';
import { tlsClientOptions, tlsServerOptions } from './tls-args.js';
import { checkUri, parse, parseBind, parseCount } from './args.js';
import { clientDtlsCredentials, DTLS_FLAGS, DTLS_USAGE } from './dtls-args.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport } from './keylog-args.js';
import { attachEdhocResponder } from './edhoc-serve.js';
import { UsageError } from './errors.js';
import { LOG_FLAGS, LOG_USAGE, serverLog } from './server-log.js';
import { OSCORE_FLAGS, OSCORE_USAGE } from './oscore-args.js';
import { STORE_FLAGS, STORE_FLAG_USAGE, serverOscoreOrStore } from './store-command.js';
import { METRICS_FLAGS, METRICS_FLAG_USAGE, metricsFromFlag, type MetricsPort } from './metrics-flag.js';
import { allowList } from '../proxy/oscore-proxy.js';
import { proxyUpstreamContexts } from './via-args.js';
import { GroupClient } from '../group/group-client.js';
import { GroupForwardProxy, GroupReverseProxy, parseGroupMount, type GroupMount } from '../proxy/group-proxy.js';
import { GroupResponseCache } from '../proxy/group-cache.js';
import { GroupRelay, groupAllowList, normaliseGroup } from '../proxy/group-relay.js';
import { MulticastClientTransport } from '../transport/multicast.js';
import { WsGuard } from '../proxy/ws-guard.js';
import { staticFiles } from '../proxy/ws-static.js';
import type { PeerAddress } from '../transport/transport.js';

export const PROXY_USAGE = `usage: coapsec proxy [--bind HOST:PORT] [--tcp PORT] [--tls PORT] [--ws PORT] [--forward]
                     [--reverse PREFIX=URI ...] [--next-hop URI] [--nstart N] [--cache-mb N]
                     [--allow-destination CIDR|HOST ...] [--http-upstream]
                     [--http HOST:PORT [--http-host NAME ...] [--http-allow-origin ORIGIN ...]]
                     [--group NAME[=GROUP] ... [--group-mount PREFIX=GROUP ...]
                     [--group-cache GROUP=MEMBER,MEMBER... ...]]
                     [--ws-origin ORIGIN ...] [--ws-max-connections N] [--ws-rate N] [--web DIR]
  --bind HOST:PORT       CoAP side over UDP (default 127.0.0.1:5683)
${STREAM_LISTEN_USAGE}
                         Requests go upstream over the transport of the target's scheme (coap,
                         coaps, coap+tcp, coaps+tcp, coap+ws, coaps+ws), whatever they came on.
                         --ca, --cert/--key and --psk-identity/--psk also serve coaps+tcp:// and
                         coaps+ws:// targets (--cert without --ca: only the --tls listener's)
  --ws-origin ORIGIN     a web origin (e.g. https://app.example) whose pages may open --ws connections
                         (repeatable); the proxy's own (--web) is always allowed, other pages get 403.
                         Programs that send no Origin are admitted
  --ws-max-connections N at most N --ws connections at once (default 64; then HTTP 503)
  --ws-rate N            at most N CoAP messages per second per --ws connection, bursts of N
                         (default 200; more closes it with 1008)
  --web DIR              serve the files in DIR (GET only, no traversal) on the --ws port, e.g. the
                         demo page web/ with the browser bundle
  --forward              act as a forward proxy (Proxy-Uri / Proxy-Scheme, RFC 7252 §5.7.2)
  --reverse PREFIX=URI   serve PREFIX/... from the origin URI (repeatable), e.g. /dev1=coap://10.0.0.7/
                         (block-wise, Observe and end-to-end OSCORE pass through; PREFIX/.well-known/core
                         lists the origin's links under PREFIX)
  --next-hop URI         send forwarded requests to this proxy, keeping Proxy-Uri/Proxy-Scheme
  --nstart N             at most N requests outstanding to each upstream server (RFC 7252 §4.7 NSTART;
                         default 1). More is the operator's decision (§4.8.1): only towards servers
                         whose path cannot congest, e.g. on this host or its LAN
  --cache-mb N           cache responses in up to N MiB (RFC 7252 §5.6; default 0: no cache)
  --allow-destination CIDR|HOST
                         let --forward and --http reach this network, address or host name
                         (repeatable). By default they reach public addresses only: loopback,
                         private, link-local (cloud metadata 169.254.169.254), multicast and
                         reserved ones are refused (CoAP 5.05, HTTP 403)
  --http-upstream        let --forward serve Proxy-Scheme http/https (CoAP→HTTP), to the
                         --allow-destination entries only (default: off, 5.05)
  --http HOST:PORT       also serve HTTP→CoAP (RFC 8075): http://HOST:PORT/hc/coap://target/path
  --http-host NAME       a Host name the HTTP side answers to besides HOST:PORT, localhost and the
                         bound address (repeatable; others get 421: DNS rebinding)
  --http-allow-origin ORIGIN
                         a web origin (e.g. https://app.example) whose pages may send
                         state-changing requests and read answers (repeatable; other sites'
                         pages get 403 for anything but GET/HEAD)
  --allow NAME           forward (and reverse-proxy) only for clients whose OSCORE context (recipient) is NAME; repeatable
                         (draft-ietf-core-oscore-capable-proxies §2.4; 4.01 otherwise). With
                         --credentials, its client contexts add a layer towards matching next hops,
                         and its "edhoc" section makes the proxy an EDHOC responder: contexts for
                         its own layer, each client limited to its edhoc.peers resources (4.03)
  --group NAME[=GROUP]   relay requests aimed at IP multicast groups (draft-ietf-core-groupcomm-proxy)
                         for the client whose OSCORE context (recipient) is NAME — to any group, or
                         only to GROUP (ADDR:PORT) — repeatable; other clients get 4.01, a request
                         without Multicast-Timeout 4.00. Every server's response goes back with
                         Reply-From; Group OSCORE inside passes unread
  --group-mount PREFIX=GROUP
                         reverse: requests under the path PREFIX (/lights) or to the Uri-Host PREFIX
                         (lights.example) go to the group coap://ADDR:PORT (repeatable; needs --group)
  --group-cache GROUP=MEMBER,MEMBER...
                         cache each member's responses to requests for GROUP (ADDR:PORT; its members
                         ADDR:PORT as they are now); when all are fresh, a request is answered from
                         the cache with Group-ETag, or with one 2.03 when it names that Group-ETag
${SOCKET_USAGE}
${LOG_USAGE}
${DTLS_USAGE}
${OSCORE_USAGE}
${STORE_FLAG_USAGE}
${METRICS_FLAG_USAGE}
                     and this node's cache (entries, bytes, hits, misses: each proxy node has its own)
  See docs/security.md before exposing a proxy beyond loopback.
${KEY_EXPORT_USAGE}`;

export async function proxyCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      bind: { type: 'string' },
      forward: { type: 'boolean' },
      reverse: { type: 'string', multiple: true },
      'next-hop': { type: 'string' },
      nstart: { type: 'string' },
      'cache-mb': { type: 'string' },
      http: { type: 'string' },
      allow: { type: 'string', multiple: true },
      group: { type: 'string', multiple: true },
      'group-mount': { type: 'string', multiple: true },
      'group-cache': { type: 'string', multiple: true },
      'allow-destination': { type: 'string', multiple: true },
      'http-upstream': { type: 'boolean' },
      'http-host': { type: 'string', multiple: true },
      'http-allow-origin': { type: 'string', multiple: true },
      'ws-origin': { type: 'string', multiple: true },
      'ws-max-connections': { type: 'string' },
      'ws-rate': { type: 'string' },
      web: { type: 'string' },
      ...STREAM_LISTEN_FLAGS,
      ...SOCKET_FLAGS,
      ...LOG_FLAGS,
      ...DTLS_FLAGS,
      ...OSCORE_FLAGS,
      ...STORE_FLAGS,
      ...METRICS_FLAGS,
      ...KEY_EXPORT_FLAGS,
    },
    { min: 0, max: 0, names: '' },
  );
  const bind = parseBind(values.bind ?? '127.0.0.1:5683', { host: '127.0.0.1', port: 5683 });
  const reverse = (values.reverse ?? []).map((text) => {
    try {
      return parseReverseMapping(text);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  });
  const groupAllowed = values.group ?? [];
  const groupMounts = (values['group-mount'] ?? []).map((text) => {
    try {
      return parseGroupMount(text);
    } catch (error) {
      throw new UsageError(`--group-mount: ${(error as Error).message}`);
    }
  });
  const groupMembers = new Map<string, string[]>();
  for (const text of values['group-cache'] ?? []) {
    const at = text.indexOf('=');
    const members = text.slice(at + 1).split(',').filter((m) => m !== '');
    try {
      if (at <= 0 || members.length === 0) throw new Error(`needs GROUP=MEMBER,MEMBER..., got "${text}"`);
      groupMembers.set(normaliseGroup(text.slice(0, at)), members.map((m) => {
        const member = parseBind(m, { host: '', port: 5683 });
        return peerKey({ address: member.host, port: member.port });
      }));
    } catch (error) {
      throw new UsageError(`--group-cache: ${(error as Error).message}`);
    }
  }
  if ((groupMounts.length > 0 || groupMembers.size > 0) && groupAllowed.length === 0) throw new UsageError('--group-mount and --group-cache need --group NAME: the clients allowed to reach the group');
  if (!values.forward && reverse.length === 0 && values.http === undefined && groupAllowed.length === 0) throw new UsageError('give --forward, --reverse PREFIX=URI or --http HOST:PORT (or --group NAME)');
  if (values['next-hop'] !== undefined) checkUri(values['next-hop']);
  const cacheMb = values['cache-mb'] === undefined ? 0 : Number(values['cache-mb']);
  if (!(cacheMb >= 0 && cacheMb <= 65536)) throw new UsageError(`--cache-mb needs a size in MiB, got "${values['cache-mb']}"`);
  const httpBind = values.http !== undefined ? parseBind(values.http, { host: '127.0.0.1', port: 8080 }) : undefined;
  const allowDestinations = values['allow-destination'] ?? [];
  try {
    checkDestinationEntries(allowDestinations);
  } catch (error) {
    throw new UsageError(`--allow-destination: ${(error as Error).message}`);
  }
  if (values['http-upstream'] && !values.forward) throw new UsageError('--http-upstream concerns --forward');
  if (allowDestinations.length > 0 && !values.forward && httpBind === undefined) throw new UsageError('--allow-destination concerns --forward and --http');
  if (values['http-upstream'] && allowDestinations.length === 0) {
    throw new UsageError('--http-upstream needs --allow-destination: CoAP→HTTP reaches only the destinations named');
  }
  if ((values['http-host'] !== undefined || values['http-allow-origin'] !== undefined) && httpBind === undefined) throw new UsageError('--http-host and --http-allow-origin need --http HOST:PORT');
  const allowedOrigins = values['http-allow-origin'] ?? [];
  for (const origin of allowedOrigins) if (!isWebOrigin(origin)) throw new UsageError(`--http-allow-origin needs an origin such as https://app.example:8443, got "${origin}"`);
  const buffers = socketBuffers(values);
  const nstart = parseCount(values.nstart, '--nstart');
  const browserSide = wsBrowserSide(values);

  const streams = streamListeners(values, bind);

  const log = serverLog(values);
  // --cert/--key without --ca name the --tls listener's certificate only: as an upstream client
  // the proxy could not check a server with them.
  const listenerOnlyCert = values.tls !== undefined && values.cert !== undefined && !(values.ca?.length);
  const upstreamValues = listenerOnlyCert ? { ...values, cert: undefined, key: undefined } : values;
  const dtls = clientDtlsCredentials(upstreamValues);
  const tlsListener = values.tls !== undefined ? tlsServerOptions(values, dtls?.psk) : undefined;
  const tlsUpstream = tlsClientOptions(upstreamValues, dtls?.psk);
  const keys = keyExport(values);
  const upstream = new CoapClient({ ...(dtls ? { dtls: { ...dtls, ...keys.dtls } } : {}), ...(tlsUpstream ? { tls: tlsUpstream } : {}), ...buffers, ...(nstart !== undefined ? { parameters: { nstart } } : {}) });
  const metricsFlag = metricsFromFlag(values.metrics);
  const oscore = await serverOscoreOrStore(values, undefined, metricsFlag?.metrics);
  let metrics: MetricsPort | undefined;
  for (const context of oscore.security?.contexts ?? []) keys.context(context, 'server');
  const upstreamContexts = proxyUpstreamContexts(values.credentials);
  const upstreamLookup = upstreamContexts.lookup;
  const exportedUpstream = upstreamLookup && ((target: { uri: string }) => {
    const context = upstreamLookup(target);
    if (context) keys.context(context, 'client');
    return context;
  });
  const servers: CoapServer[] = [];
  const closeAll = async (): Promise<void> => {
    await metrics?.close();
    await Promise.all(servers.map((s) => s.close()));
    await upstream.close();
    oscore.close();
    upstreamContexts.close();
  };
  const security = oscore.security ? { security: oscore.security } : {};
  for (const l of [{ scheme: 'coap' as const, ...bind }, ...streams]) {
    try {
      servers.push(
        l.scheme === 'coap'
          ? await CoapServer.listen({ host: l.host, port: l.port, ...buffers, ...security })
          : await CoapServer.listen({ scheme: l.scheme, host: l.host, port: l.port, ...(tlsListener ? { tls: tlsListener } : {}), ...(l.scheme === 'coap+ws' ? { ws: browserSide.ws } : {}), ...security }),
      );
    } catch (error) {
      await closeAll();
      throw new UsageError(`cannot listen on ${l.host}:${l.port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
  // The group leg leaves from the bound address's interface (its IP version: groups of the other get 5.05).
  let groupTransport: MulticastClientTransport | undefined;
  if (groupAllowed.length > 0) {
    const host = bind.host;
    try {
      groupTransport = await MulticastClientTransport.bind({ host, port: 0 });
    } catch (error) {
      await closeAll();
      throw new UsageError(`--group: cannot open the group socket on ${host}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
  const cache = cacheMb > 0 ? new ResponseCache({ maxBytes: cacheMb * 1024 * 1024, now: () => servers[0]!.endpoint.scheduler.now() }) : undefined;
  if (metricsFlag) {
    try {
      metrics = await metricsFlag.listen();
    } catch (error) {
      await closeAll();
      throw error;
    }
    for (const server of servers) metrics.attach(server);
    metrics.attachContexts(() => oscore.security?.contextCount ?? 0);
  }
  const authorize = values.allow && values.allow.length > 0 ? { authorize: allowList(values.allow) } : {};
  const proxies: Array<{ close(): Promise<void> }> = [];
  const edhocLog = values.verbose?.length ? (line: string) => void process.stderr.write(`${line}\n`) : undefined;
  for (const server of servers) {
    log.attach(server);
    // The proxy's own OSCORE layer (the client–proxy context of a nested route) may come from EDHOC.
    if (oscore.edhoc) attachEdhocResponder(server, oscore.edhoc, edhocLog, undefined, oscore.edhocStore);
    let forward: ForwardProxy | undefined;
    if (values.forward) {
      proxies.push(
        forward = new ForwardProxy(server, {
          upstream,
          ...(values['next-hop'] !== undefined ? { nextHop: values['next-hop'] } : {}),
          ...(cache ? { cache } : {}),
          ...(allowDestinations.length > 0 ? { allowDestinations } : {}),
          ...(values['http-upstream'] ? { http: httpUpstream } : {}),
          name: `coapsec proxy ${bind.host}:${bind.port}`,
          ...authorize,
          ...(exportedUpstream ? { upstreamSecurity: exportedUpstream } : {}),
        }),
      );
    }
    const reverseProxy = reverse.length > 0 ? new ReverseProxy(server, { upstream, mappings: reverse, ...authorize }) : undefined;
    if (reverseProxy) proxies.push(reverseProxy);
    if (groupTransport !== undefined && server.endpoint.transport.scheme === 'coap') {
      proxies.push(groupRelaying(server, groupTransport, { allowed: groupAllowed, mounts: groupMounts, members: groupMembers }, forward, reverseProxy));
    }
  }
  const forwardProxies = proxies.filter((p): p is ForwardProxy => p instanceof ForwardProxy);
  metrics?.attachProxy(
    () => forwardProxies.reduce((sum, p) => ({ forwarded: sum.forwarded + p.stats.forwarded, coalesced: sum.coalesced + p.stats.coalesced }), { forwarded: 0, coalesced: 0 }),
    cache && (() => cache.stats()),
  );
  const closeProxies = async (): Promise<void> => {
    await Promise.all(proxies.map((p) => p.close()));
    await closeAll();
  };
  let cross: Awaited<ReturnType<typeof startHttpCrossProxy>> | undefined;
  if (httpBind) {
    try {
      cross = await startHttpCrossProxy({ host: httpBind.host, port: httpBind.port, client: upstream, allowDestinations, ...(values['http-host'] ? { hostNames: values['http-host'] } : {}), allowedOrigins });
    } catch (error) {
      // Not half-configured: without its HTTP side the proxy does not run at all.
      await closeProxies();
      throw new UsageError(`--http: cannot listen on ${httpBind.host}:${httpBind.port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
  const roles = `${values.forward ? ' (forward)' : ''}${groupAllowed.length > 0 ? ' (group)' : ''}${groupMounts.map((m) => ` ${m.prefix ? `/${m.prefix.join('/')}` : m.host}→${m.group}`).join('')}${reverse.map((r) => ` ${r.prefix}→${r.target}`).join('')}`;
  for (const server of servers) {
    const scheme = server.endpoint.transport.scheme;
    process.stderr.write(`coapsec proxy on ${scheme}://${peerKey(server.address())}${roles}\n`);
    if (scheme !== 'coap+ws') continue;
    const origins = ownOrigins(server.address());
    for (const origin of origins) browserSide.guard.allowOrigin(origin);
    if (values.web !== undefined) process.stderr.write(`coapsec proxy: web page on ${origins[0]}/\n`);
  }
  if (cross) process.stderr.write(`coapsec HTTP→CoAP proxy on http://${cross.address().address}:${cross.address().port}/hc/\n`);

  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await cross?.close();
  await closeProxies();
  return 0;
}

/** Proxy-Scheme http(s): RFC 8075's CoAP→HTTP direction. */
async function httpUpstream(request: CoapMessage, target: string, address: string): Promise<CoapMessage> {
  parseAbsoluteUri(target);
  const options = request.options.filter((o) => ![OptionNumber.ProxyUri, OptionNumber.ProxyScheme, OptionNumber.UriHost, OptionNumber.UriPort, OptionNumber.UriPath, OptionNumber.UriQuery, OptionNumber.HopLimit].includes(o.number as 3));
  const response = await coapToHttp({ method: request.code, uri: target, options, payload: request.payload, address });
  const message: CoapMessage = { type: MessageType.ACK, code: response.code, messageId: 0, token: EMPTY_BYTES, options: response.options.slice(), payload: response.payload };
  return message;
}

/**
 * --group: group relaying in front of the server's forward and reverse proxies (a request to a
 * multicast address, or under a --group-mount, is relayed; anything else goes on to them).
 */
function groupRelaying(
  server: CoapServer,
  transport: MulticastClientTransport,
  config: { allowed: readonly string[]; mounts: readonly GroupMount[]; members: ReadonlyMap<string, readonly string[]> },
  forward: ForwardProxy | undefined,
  reverse: ReverseProxy | undefined,
): { close(): Promise<void> } {
  const scheduler = server.endpoint.scheduler;
  const client = new GroupClient({ transport, scheduler });
  const v6 = transport.localAddress().address.includes(':');
  const cache = config.members.size > 0 ? { cache: new GroupResponseCache({ members: (group) => config.members.get(normaliseGroup(group)), now: () => scheduler.now() }) } : {};
  const relay = new GroupRelay(server, { groups: (target) => (target.host.includes(':') === v6 ? client : undefined), authorize: groupAllowList(config.allowed), ...cache });
  new GroupForwardProxy(server, relay, forward);
  new GroupReverseProxy(server, relay, config.mounts, reverse);
  return {
    close: async () => {
      await relay.close();
      await client.close();
    },
  };
}

/** --ws-origin, --ws-max-connections, --ws-rate and --web: what the coap+ws listener admits and serves. */
function wsBrowserSide(values: { ws?: string | undefined; 'ws-origin'?: string[] | undefined; 'ws-max-connections'?: string | undefined; 'ws-rate'?: string | undefined; web?: string | undefined }) {
  const given = ['ws-origin', 'ws-max-connections', 'ws-rate', 'web'].filter((name) => values[name as keyof typeof values] !== undefined);
  if (values.ws === undefined && given.length > 0) throw new UsageError(`--${given[0]} needs --ws PORT`);
  const origins = values['ws-origin'] ?? [];
  for (const origin of origins) if (!isWebOrigin(origin)) throw new UsageError(`--ws-origin needs an origin such as https://app.example:8443, got "${origin}"`);
  const maxConnections = parseCount(values['ws-max-connections'], '--ws-max-connections') ?? 64;
  const messagesPerSecond = parseCount(values['ws-rate'], '--ws-rate') ?? 200;
  const guard = new WsGuard({ allowedOrigins: origins, maxConnections, messagesPerSecond });
  let httpRequests: ReturnType<typeof staticFiles> | undefined;
  if (values.web !== undefined) {
    try {
      httpRequests = staticFiles(values.web);
    } catch (error) {
      throw new UsageError(`--web: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? `no directory ${values.web}` : (error as Error).message}`);
    }
  }
  return { guard, ws: { guard, ...(httpRequests ? { httpRequests } : {}) } };
}

/** The origins of a page served on the --ws port itself. */
function ownOrigins(address: PeerAddress): string[] {
  const host = address.address.includes(':') ? `[${address.address}]` : address.address;
  const origins = [`http://${host}:${address.port}`];
  if (address.address === '127.0.0.1' || address.address === '::1') origins.push(`http://localhost:${address.port}`);
  return origins;
}
