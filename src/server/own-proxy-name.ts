/**
 * `serve --proxy-name NAME` (ServerOptions.proxyNames): a proxied request that names this server
 * itself is served as if sent directly, so a chain of proxies can end at it (libcoap's -P ',name').
 */
import { decodeString, encodeString, getOption, getUintOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { parseCoapUri, type CoapUri } from '../coap/uri.js';

/** What a proxy consumes of a request it serves itself (RFC 7252 §5.7.2). */
const PROXY_ADDRESSING = new Set<number>([OptionNumber.ProxyUri, OptionNumber.ProxyScheme, OptionNumber.UriHost, OptionNumber.UriPort]);

/**
 * A proxied request that names this server (ServerOptions.proxyNames) with its proxy options
 * consumed as a proxy would (§5.7.2, §6.5): Proxy-Uri becomes Uri-Path and Uri-Query; Proxy-Scheme
 * goes with Uri-Host and Uri-Port. Undefined when it names another endpoint or does not parse.
 */
export function consumeOwnProxyOptions(message: CoapMessage, names: ReadonlySet<string>): CoapMessage | undefined {
  const proxyUri = getOption(message, OptionNumber.ProxyUri);
  const isOwnName = (host: string, port: number, explicitPort: boolean): boolean => {
    const bracketed = host.includes(':') ? `[${host}]` : host;
    return names.has(bracketed.toLowerCase()) || (explicitPort && names.has(`${bracketed}:${port}`.toLowerCase()));
  };
  const kept = message.options.filter((o) => !PROXY_ADDRESSING.has(o.number));
  if (proxyUri) {
    let uri: CoapUri;
    try {
      uri = parseCoapUri(decodeString(proxyUri));
    } catch {
      return undefined;
    }
    if (!isOwnName(uri.host, uri.port, uri.explicitPort)) return undefined;
    const rest = kept.filter((o) => o.number !== OptionNumber.UriPath && o.number !== OptionNumber.UriQuery);
    const fromUri = [
      ...uri.path.map((segment) => ({ number: OptionNumber.UriPath, value: encodeString(segment) })),
      ...uri.query.map((arg) => ({ number: OptionNumber.UriQuery, value: encodeString(arg) })),
    ];
    return { ...message, options: [...rest, ...fromUri].sort((a, b) => a.number - b.number) };
  }
  const host = getOption(message, OptionNumber.UriHost);
  // Without Uri-Host the request is for the address it was sent to: this server (§5.10.1).
  if (host && !isOwnName(decodeString(host).replace(/^\[|\]$/g, ''), getUintOption(message, OptionNumber.UriPort) ?? 0, getOption(message, OptionNumber.UriPort) !== undefined)) return undefined;
  return { ...message, options: kept };
}
