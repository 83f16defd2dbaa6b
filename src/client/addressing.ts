/**
 * The addressing options of a request, built in one place for the client, a route's hops and a
 * forward proxy's upstream leg:
 *
 * - to the target itself (RFC 7252 §6.4): Uri-Host only where the host differs from the
 *   destination address, Uri-Port only where the port differs from the destination port;
 * - to a forward proxy, in the Proxy-Scheme form (§5.10.2; it keeps Uri-Path and Uri-Query apart,
 *   so OSCORE can encrypt them, RFC 8613 §4.1.3.3): Proxy-Scheme, and Uri-Host always, since
 *   without it §6.5 step 2 composes the proxy's own address.
 *
 * One Uri-Port rule for the Proxy-Scheme form. §5.10.2 composes the target URI "as defined in
 * Section 6.5", whose step 4 takes the request's destination port — the proxy's — when Uri-Port is
 * absent; many proxies (coapsec's own, proxy/request-target.ts) take the Proxy-Scheme's default
 * port instead. Uri-Port is therefore left out only where both readings give the target's port:
 * the target is on its scheme's default port and the proxy listens on that same port.
 */
import { encodeString, encodeUint, type CoapOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { defaultPort, uriToOptions, type CoapUri } from '../coap/uri.js';
import type { PeerAddress } from '../transport/transport.js';

/** §6.4: the options naming `target` (host, port, path, query) in a request sent to `destination`. */
export function directAddressing(target: CoapUri | string, destination: PeerAddress): CoapOption[] {
  return uriToOptions(target, destination.address, destination.port);
}

/**
 * §5.10.2: the options naming `target` in a request to a forward proxy listening on `proxyPort`:
 * Proxy-Scheme, Uri-Host, Uri-Port (see the module comment), and with `withResource` the Uri-Path
 * and Uri-Query too. In option order.
 */
export function proxySchemeAddressing(target: CoapUri, proxyPort: number, withResource: boolean): CoapOption[] {
  const options: CoapOption[] = [{ number: OptionNumber.UriHost, value: encodeString(target.host.includes(':') ? `[${target.host}]` : target.host) }];
  if (target.port !== defaultPort(target.scheme) || target.port !== proxyPort) options.push({ number: OptionNumber.UriPort, value: encodeUint(target.port) });
  if (withResource) {
    for (const segment of target.path) options.push({ number: OptionNumber.UriPath, value: encodeString(segment) });
    for (const arg of target.query) options.push({ number: OptionNumber.UriQuery, value: encodeString(arg) });
  }
  options.push({ number: OptionNumber.ProxyScheme, value: encodeString(target.scheme) });
  return options;
}
