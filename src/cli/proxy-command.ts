/** coapsec proxy --bind HOST:PORT [--forward] [--reverse PREFIX=URI ...] [--next-hop URI] [--cache-mb N] [--http HOST:PORT] */
import { EMPTY_BYTES, MessageType, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { parseAbsoluteUri } from '../coap/uri.js';
import { CoapClient } from '../client/client.js';
import { ResponseCache } from '../proxy/cache.js';
import { ForwardProxy } from '../proxy/forward-proxy.js';
import { coapToHttp, startHttpCrossProxy } from '../proxy/http-cross-proxy.js';
import { addReverseProxy, parseReverseMapping } from '../proxy/reverse-proxy.js';
import { CoapServer } from '../server/server.js';
import { peerKey } from '../transport/transport.js';
import { checkUri, parse, parseBind } from './args.js';
import { clientDtlsCredentials, DTLS_FLAGS, DTLS_USAGE } from './dtls-args.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport } from './keylog-args.js';
import { UsageError } from './errors.js';
import { OSCORE_FLAGS, OSCORE_USAGE, serverOscore } from './oscore-args.js';
import { allowList } from '../proxy/oscore-proxy.js';
import { proxyUpstreamContexts } from './via-args.js';

export const PROXY_USAGE = `usage: coapsec proxy [--bind HOST:PORT] [--forward] [--reverse PREFIX=URI ...] [--next-hop URI]
                     [--cache-mb N] [--http HOST:PORT]
  --bind HOST:PORT       CoAP side (default 127.0.0.1:5683)
  --forward              act as a forward proxy (Proxy-Uri / Proxy-Scheme, RFC 7252 §5.7.2)
  --reverse PREFIX=URI   serve PREFIX/... from the origin URI (repeatable), e.g. /dev1=coap://10.0.0.7/
  --next-hop URI         send forwarded requests to this proxy, keeping Proxy-Uri/Proxy-Scheme
  --cache-mb N           cache responses in up to N MiB (RFC 7252 §5.6; default 0: no cache)
  --http HOST:PORT       also serve HTTP→CoAP (RFC 8075): http://HOST:PORT/hc/coap://target/path
  --allow NAME           forward only for clients whose OSCORE context (recipient) is NAME; repeatable
                         (draft-ietf-core-oscore-capable-proxies §2.4; 4.01 otherwise). With
                         --credentials, its client contexts add a layer towards matching next hops.
${DTLS_USAGE}
${OSCORE_USAGE}
${KEY_EXPORT_USAGE}`;

export async function proxyCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      bind: { type: 'string' },
      forward: { type: 'boolean' },
      reverse: { type: 'string', multiple: true },
      'next-hop': { type: 'string' },
      'cache-mb': { type: 'string' },
      http: { type: 'string' },
      allow: { type: 'string', multiple: true },
      ...DTLS_FLAGS,
      ...OSCORE_FLAGS,
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
  if (!values.forward && reverse.length === 0 && values.http === undefined) throw new UsageError('give --forward, --reverse PREFIX=URI or --http HOST:PORT');
  if (values['next-hop'] !== undefined) checkUri(values['next-hop']);
  const cacheMb = values['cache-mb'] === undefined ? 0 : Number(values['cache-mb']);
  if (!(cacheMb >= 0 && cacheMb <= 65536)) throw new UsageError(`--cache-mb needs a size in MiB, got "${values['cache-mb']}"`);
  const httpBind = values.http !== undefined ? parseBind(values.http, { host: '127.0.0.1', port: 8080 }) : undefined;

  const dtls = clientDtlsCredentials(values);
  const keys = keyExport(values);
  const upstream = new CoapClient(dtls ? { dtls: { ...dtls, ...keys.dtls } } : {});
  const oscore = serverOscore(values);
  for (const context of oscore.security?.contexts ?? []) keys.context(context, 'server');
  const upstreamContexts = proxyUpstreamContexts(values.credentials);
  const upstreamLookup = upstreamContexts.lookup;
  const exportedUpstream = upstreamLookup && ((target: { uri: string }) => {
    const context = upstreamLookup(target);
    if (context) keys.context(context, 'client');
    return context;
  });
  let server: CoapServer;
  try {
    server = await CoapServer.listen({ host: bind.host, port: bind.port, ...(oscore.security ? { security: oscore.security } : {}) });
  } catch (error) {
    oscore.close();
    throw new UsageError(`cannot listen on ${bind.host}:${bind.port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const now = (): number => server.endpoint.scheduler.now();
  const proxy = values.forward
    ? new ForwardProxy(server, {
        upstream,
        ...(values['next-hop'] !== undefined ? { nextHop: values['next-hop'] } : {}),
        ...(cacheMb > 0 ? { cache: new ResponseCache({ maxBytes: cacheMb * 1024 * 1024, now }) } : {}),
        http: httpUpstream,
        name: `coapsec proxy ${bind.host}:${bind.port}`,
        ...(values.allow && values.allow.length > 0 ? { authorize: allowList(values.allow) } : {}),
        ...(exportedUpstream ? { upstreamSecurity: exportedUpstream } : {}),
      })
    : undefined;
  for (const mapping of reverse) addReverseProxy(server, mapping, upstream);
  process.stderr.write(`coapsec proxy on coap://${peerKey(server.address())}${values.forward ? ' (forward)' : ''}${reverse.map((r) => ` ${r.prefix}→${r.target}`).join('')}\n`);
  const cross = httpBind ? await startHttpCrossProxy({ host: httpBind.host, port: httpBind.port, client: upstream }) : undefined;
  if (cross) process.stderr.write(`coapsec HTTP→CoAP proxy on http://${cross.address().address}:${cross.address().port}/hc/\n`);

  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await cross?.close();
  await proxy?.close();
  await server.close();
  await upstream.close();
  oscore.close();
  upstreamContexts.close();
  return 0;
}

/** Proxy-Scheme http(s): RFC 8075's CoAP→HTTP direction. */
async function httpUpstream(request: CoapMessage, target: string): Promise<CoapMessage> {
  parseAbsoluteUri(target);
  const options = request.options.filter((o) => ![OptionNumber.ProxyUri, OptionNumber.ProxyScheme, OptionNumber.UriHost, OptionNumber.UriPort, OptionNumber.UriPath, OptionNumber.UriQuery, OptionNumber.HopLimit].includes(o.number as 3));
  const response = await coapToHttp({ method: request.code, uri: target, options, payload: request.payload });
  const message: CoapMessage = { type: MessageType.ACK, code: response.code, messageId: 0, token: EMPTY_BYTES, options: response.options.slice(), payload: response.payload };
  return message;
}
