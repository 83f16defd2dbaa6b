/**
 * Where a forward proxy sends a request upstream, and the addressing the upstream request carries
 * (RFC 7252 §5.7.2, §6.4): the next hop or the target's address, the client endpoint of the
 * upstream leg, and the options that replace the received Proxy-Uri / Proxy-Scheme / Uri-*.
 *
 * `UpstreamRoutes` remembers the routes of targets whose hosts (or next hop) are IP literals:
 * resolving them parses the URI again, formats it and awaits the endpoint, for the same answer
 * every time. Host names are resolved for every request, as the client does (their address may change).
 */
import { isIP } from 'node:net';
import { EMPTY_BYTES, encodeUint, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { defaultPort, parseAbsoluteUri } from '../coap/uri.js';
import { directAddressing } from '../client/addressing.js';
import { resolvePeer, type CoapClient } from '../client/client.js';
import type { CoapEndpoint } from '../exchange/endpoint.js';
import { isStreamScheme, isTransportScheme } from '../transport/schemes.js';
import type { PeerAddress, TransportScheme } from '../transport/transport.js';
import { bracket, type Target } from './request-target.js';
import { DestinationPolicy, DestinationRefusedError } from './destination-policy.js';

export interface UpstreamRoute {
  readonly peer: PeerAddress;
  readonly endpoint: CoapEndpoint;
  /** The next hop is a proxy: Proxy-Uri / Proxy-Scheme and the Uri-* options travel on unchanged (PR1.1/PR1.2). */
  readonly viaProxy: boolean;
  /** Received options the upstream request does not carry (Hop-Limit is always replaced, RFC 8768 §3). */
  readonly dropped: ReadonlySet<number>;
  /** Options the upstream request carries instead, in option order (Uri-Host/Uri-Port as §6.4 gives them for the peer). */
  readonly addressing: readonly CoapOption[];
}

/** Options a forwarding proxy rewrites itself towards an origin: never forwarded as received. */
export const ADDRESSING: ReadonlySet<number> = new Set([OptionNumber.ProxyUri, OptionNumber.ProxyScheme, OptionNumber.UriHost, OptionNumber.UriPort]);
const TO_ORIGIN: ReadonlySet<number> = new Set([...ADDRESSING, OptionNumber.HopLimit]);
/** A Proxy-Uri carries the path and query too: received Uri-Path/Uri-Query do not count (§5.10.2). */
const TO_ORIGIN_BY_PROXY_URI: ReadonlySet<number> = new Set([...TO_ORIGIN, OptionNumber.UriPath, OptionNumber.UriQuery]);
const TO_PROXY: ReadonlySet<number> = new Set([OptionNumber.HopLimit]);

/** Routes of recently forwarded targets; at `capacity` the memo starts over (never wrong, at worst useless). */
export class UpstreamRoutes {
  private readonly memo = new Map<string, UpstreamRoute>();
  /**
   * The same routes by Target object: `TargetMemo` hands out one object per naming of a target
   * (its Proxy-Uri, or Proxy-Scheme and Uri-*), so a request for a known target finds its route
   * without formatting the key string again.
   */
  private readonly byTarget = new WeakMap<Target, UpstreamRoute>();

  constructor(
    private readonly upstream: Pick<CoapClient, 'endpoint'>,
    private readonly nextHop: string | undefined,
    private readonly destinations: DestinationPolicy = new DestinationPolicy(),
    private readonly capacity = 256,
  ) {}

  /**
   * The route of a target with a CoAP scheme of any carrier (or any target, with a next hop): the
   * upstream leg takes the transport the target's scheme names in the one scheme table, whatever
   * carried the request here (RFC 8323 §8; a proxy that changes transport). `byProxyUri`: the request
   * named its target with Proxy-Uri. Synchronous when remembered; rejects (or throws) with the
   * reason a route cannot be had (an unresolvable host, a URI that gives no options).
   */
  route(target: Target, byProxyUri: boolean): UpstreamRoute | Promise<UpstreamRoute> {
    const known = this.byTarget.get(target);
    if (known !== undefined) return known;
    // The next hop is the same for every target; otherwise the target URI names the route, and a
    // Proxy-Uri's route carries the path too.
    const key = this.nextHop !== undefined ? '' : byProxyUri ? target.uri : `${target.scheme}://${bracket(target.host)}:${target.port}`;
    const route = this.memo.get(key);
    if (route === undefined) return this.resolve(key, target, byProxyUri);
    this.byTarget.set(target, route);
    return route;
  }

  private async resolve(key: string, target: Target, byProxyUri: boolean): Promise<UpstreamRoute> {
    let route: UpstreamRoute;
    let host: string;
    if (this.nextHop !== undefined) {
      const next = parseAbsoluteUri(this.nextHop);
      const scheme = isTransportScheme(next.scheme) ? next.scheme : 'coap';
      host = next.host;
      const peer = await resolvePeer({ host, port: next.port ?? defaultPort(scheme)! });
      route = { peer, endpoint: await this.endpointFor(peer, scheme, host), viaProxy: true, dropped: TO_PROXY, addressing: [] };
    } else {
      const scheme = target.scheme as TransportScheme;
      host = target.host;
      const peer = await resolvePeer({ host, port: target.port });
      // Judged by the address the request will go to, not the name (a name can resolve anywhere);
      // only permitted routes are remembered.
      if (!this.destinations.permits('coap', host, peer.address)) throw new DestinationRefusedError();
      // §6.4: Uri-Host and Uri-Port only where they differ from the destination (and, by Proxy-Uri, the path and query).
      const addressing = directAddressing(key, peer);
      route = { peer, endpoint: await this.endpointFor(peer, scheme, host), viaProxy: false, dropped: byProxyUri ? TO_ORIGIN_BY_PROXY_URI : TO_ORIGIN, addressing };
    }
    if (isIP(host)) {
      if (this.memo.size >= this.capacity) this.memo.clear();
      this.memo.set(key, route);
    }
    return route;
  }

  private endpointFor(peer: PeerAddress, scheme: TransportScheme, host: string): Promise<CoapEndpoint> {
    return upstreamEndpoint(this.upstream, peer, scheme, host);
  }
}

/**
 * A proxy's endpoint towards `peer` for `scheme` (forward and reverse proxies alike): over UDP one
 * per address family, over a stream one carrier holding a connection per peer, opened by the first
 * request and reused by every later one, closed with the client. A stream connection learns the
 * URI's host: TLS checks the certificate against it, and it is the WebSocket Host header.
 */
export async function upstreamEndpoint(upstream: Pick<CoapClient, 'endpoint'>, peer: PeerAddress, scheme: TransportScheme, host: string): Promise<CoapEndpoint> {
  const endpoint = await upstream.endpoint(peer.address.includes(':') ? 6 : 4, scheme);
  if (isStreamScheme(scheme)) endpoint.setServerName(peer, host);
  return endpoint;
}

/**
 * The Hop-Limit options 0–255 (RFC 8768 §3: one byte), made once: option objects and values are
 * never written to once in a message (the route's addressing options are shared the same way).
 */
const HOP_LIMIT_OPTIONS: readonly CoapOption[] = Array.from({ length: 256 }, (_, n) => ({ number: OptionNumber.HopLimit, value: encodeUint(n) }));

/**
 * The upstream copy of a received request: its options less the route's dropped ones, with the
 * route's addressing and Hop-Limit `hopLimit` merged in, in option order; token and Message ID
 * are the upstream leg's own (assigned when sent).
 */
export function upstreamRequest(message: CoapMessage, route: UpstreamRoute, hopLimit: number): CoapMessage {
  // Merged in: the addressing options (all Uri-*, numbered below Hop-Limit), then Hop-Limit; an
  // added option goes after received ones of the same number.
  const added = route.addressing;
  const dropped = route.dropped;
  const hop = HOP_LIMIT_OPTIONS[hopLimit] ?? { number: OptionNumber.HopLimit, value: encodeUint(hopLimit) };
  const received = message.options;
  // Counted first so the array is made at its final length: one that grows by push starts with
  // room for 16 options, more than most requests carry, and this runs for every forwarded request.
  let count = added.length + 1;
  for (let i = 0; i < received.length; i++) if (!dropped.has(received[i]!.number)) count++;
  const options = new Array<CoapOption>(count);
  let j = 0;
  let k = 0; // the next of added[0..], then hop at k === added.length
  for (let i = 0; i < received.length; i++) {
    const o = received[i]!;
    for (; k <= added.length && addedAt(added, hop, k).number < o.number; k++) options[j++] = addedAt(added, hop, k);
    if (!dropped.has(o.number)) options[j++] = o;
  }
  for (; k <= added.length; k++) options[j++] = addedAt(added, hop, k);
  return { type: message.type, code: message.code, messageId: 0, token: EMPTY_BYTES, options, payload: message.payload };
}

/** The k-th option upstreamRequest merges in: the route's addressing, then Hop-Limit. */
function addedAt(addressing: readonly CoapOption[], hop: CoapOption, k: number): CoapOption {
  return k < addressing.length ? addressing[k]! : hop;
}
