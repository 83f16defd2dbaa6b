/**
 * The reverse proxy (RFC 7252 §5.7.3): path prefixes (or Uri-Host names) of this server stand for
 * origin servers behind it, as an LwM2M gateway exposes its devices — `/dev1/temp` →
 * `coap://device1:5683/temp`. The client sees ordinary resources; the remaining Uri-Path segments
 * and the query go to the origin. One implementation for the CLI and the library, with:
 *
 * - block-wise (RFC 7959) on both legs, each with its own block size: see `ReverseProxy.forward`;
 * - Observe (RFC 7641 §5) through the relay the forward proxy uses (observe-relay.ts): one upstream
 *   observation per resource, every notification fanned out, cancelled with the last client;
 * - end-to-end OSCORE passing through: a request to a mount is claimed before any OSCORE layer
 *   meant for the origin is removed (draft-ietf-core-oscore-capable-proxies §2.4 step 3), so its
 *   OSCORE option and ciphertext go upstream untouched; the proxy's block-wise is then outer block-
 *   wise (RFC 8613 §4.1.3.4.2), which a proxy may do;
 * - the proxy as an OSCORE endpoint itself (Appendix B.7, B.8 of the draft): a layer between client
 *   and proxy is removed by the server's §2.4 loop before the claim, and a layer towards the origin
 *   (`ReverseMapping.context`) is added upstream and removed from the response (§2.3, §2.6);
 * - /.well-known/core of a mount with the mount prefix on its links (RFC 6690), and the mounts
 *   listed in the proxy's own /.well-known/core.
 */
import { readBlockOption, type BlockValue } from '../coap/block.js';
import { Method, ResponseCode, codeClass } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import { parseLinkFormat, serializeLinks, type Link } from '../coap/link-format.js';
import { EMPTY_BYTES, MessageType, encodeString, getOption, getStringOptions, getUintOption, setOption, sortOptions, type CoapMessage } from '../coap/message.js';
import { OptionNumber, optionDefinition } from '../coap/options.js';
import { formatCoapUri, parseCoapUri, uriToOptions, type CoapUri } from '../coap/uri.js';
import { resolvePeer, type CoapClient } from '../client/client.js';
import { blockwiseRequest, type SendRequest } from '../client/blockwise.js';
import { securedSender } from '../client/security.js';
import type { CoapEndpoint, RequestOptions } from '../exchange/endpoint.js';
import { TimeoutError } from '../exchange/errors.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { operationKey } from '../server/blockwise.js';
import { ProxiedRequestThrough, toMessage, type CoapServer, type ProxiedRequest, type ReverseProxyHandler } from '../server/server.js';
import type { PeerAddress } from '../transport/transport.js';
import { defaultRandom } from '../util/random.js';
import { ObserveRelay, errorMessage, forwardable } from './observe-relay.js';
import { upstreamLayer, type ForwardPolicy, type UpstreamLayer } from './oscore-proxy.js';
import { unrecognizedUnsafe } from './request-target.js';
import { upstreamEndpoint } from './upstream-route.js';

export interface ReverseMapping {
  /** Claim requests whose first Uri-Path segments are this prefix ("/dev1"; Appendix B.8). */
  prefix?: string;
  /** Claim requests whose Uri-Host is this name ("dev.example"; Appendix B.7). */
  host?: string;
  /** The origin's base URI: "coap://192.0.2.7:5683/". */
  target: string;
  /** The OSCORE context this proxy shares with the origin (the P–S layer of Appendix B.7/B.8). */
  context?: OscoreSecurityContext;
}

export interface ReverseProxyOptions {
  /** Upstream legs (a CoapClient, with its DTLS and TLS credentials): an origin's scheme picks its transport (coap+tcp, coap+ws, ...). */
  upstream: Pick<CoapClient, 'endpoint'>;
  mappings: readonly ReverseMapping[];
  /** draft-ietf-core-oscore-capable-proxies §2.4 step 4 (see oscore-proxy.ts allowList). Default: every request. */
  authorize?: ForwardPolicy;
  /** Milliseconds one upstream exchange (one block) may take before the client gets 5.04. Default 10 s. */
  timeout?: number;
}

/** Options that address this hop; the origin gets its own. Block options are per leg (RFC 7959). */
const PER_HOP = new Set<number>([
  OptionNumber.UriHost,
  OptionNumber.UriPort,
  OptionNumber.UriPath,
  OptionNumber.UriQuery,
  OptionNumber.Block1,
  OptionNumber.Block2,
  OptionNumber.Size1,
  OptionNumber.Size2,
]);

interface Mount extends ReverseMapping {
  base: CoapUri;
  segments: string[];
}

export class ReverseProxy implements ReverseProxyHandler {
  private readonly mounts: Mount[];
  private readonly relay: ObserveRelay;
  private readonly timeout: number;
  /** Block1 operations in progress per upstream resource, to pick distinct Request-Tags. */
  private readonly block1InFlight = new Map<string, number>();

  constructor(
    private readonly server: CoapServer,
    private readonly options: ReverseProxyOptions,
  ) {
    this.timeout = options.timeout ?? 10_000;
    this.mounts = options.mappings.map((m) => ({ ...m, base: parseCoapUri(m.target), segments: (m.prefix ?? '').split('/').filter((s) => s !== '') }));
    // A notification larger than the observer's block size carries block 0 only, cut from a stored
    // copy its follow-up GETs are served from (RFC 7959 §2.6); a protected one is passed whole,
    // as the client's outer block-wise cannot complete a notification.
    this.relay = new ObserveRelay(server, 'reverse', this.timeout, undefined, (notification, observer) => {
      if (getOption(notification, OptionNumber.Oscore) !== undefined) return notification;
      let block2: BlockValue | undefined;
      try {
        block2 = readBlockOption(observer.request, OptionNumber.Block2);
      } catch {
        block2 = undefined; // refused with 4.00 at registration; never here
      }
      const key = operationKey(observer.peerKey, observer.request, observer.request.code === Method.FETCH);
      return server.blockwise.sliceBlock2(observer.peerKey, key, notification, block2 ? { num: 0, more: false, szx: block2.szx } : undefined);
    });
    server.setReverseProxyHandler(this);
    // The proxy's own /.well-known/core names each mount, not the origin behind it (whose address
    // is this deployment's business); the mount's own listing is at PREFIX/.well-known/core.
    for (const mount of this.mounts) {
      if (mount.segments.length > 0) server.add({ path: '/' + mount.segments.join('/'), title: 'reverse-proxied origin', handlers: {} });
    }
  }

  private find(message: CoapMessage): Mount | undefined {
    const host = getOption(message, OptionNumber.UriHost);
    const hostText = host ? Buffer.from(host).toString().toLowerCase() : undefined;
    const path = getStringOptions(message, OptionNumber.UriPath);
    // §2.4 step 3: "a combination of Uri-Host, Uri-Port, and ... one or more Uri-Path Options". A
    // request whose path is still hidden in a layer for this proxy is not claimed: the layer is
    // removed first (Appendix B.7), and the loop comes back here.
    if (path.length === 0) return undefined;
    return this.mounts.find((m) => {
      if (m.host !== undefined && m.host.toLowerCase() !== hostText) return false;
      if (m.segments.length === 0) return m.host !== undefined;
      return m.segments.every((s, i) => path[i] === s);
    });
  }

  claims(message: CoapMessage): boolean {
    return this.find(message) !== undefined;
  }

  /**
   * Block-wise: this proxy reassembles on one leg and slices on the other rather than relaying
   * block by block. RFC 7959 §2.10 leaves both open ("could wait to obtain the complete
   * representation before it serves parts of it"); reassembling is chosen because the two legs'
   * block sizes are independent (a client at 16 bytes, the origin at 1024: relayed block numbers
   * would have to be renumbered, §2.4 late negotiation on either side), the downstream blocks then
   * all come from one stored representation with one ETag and Size2 (§2.4, §4), Block1 bodies go
   * upstream once the whole body is known (a 4.13 or an error from the origin reaches the client
   * as the answer to its last block, §2.10's "combine 2.31 and 2.01/2.04"), and an Observe
   * notification carrying block 0 is completed upstream once for all observers (§2.6). The cost
   * is memory, bounded by the server's block-wise limits (maxBodySize, reassembly budget).
   */
  async forward(proxied: ProxiedRequest): Promise<void> {
    const message = proxied.message;
    const mount = this.find(message);
    if (!mount) return answer(proxied, ResponseCode.NotFound, 'no such reverse-proxied resource');
    if (this.options.authorize && !this.options.authorize(proxied.context, message)) return answer(proxied, ResponseCode.Unauthorized, 'not authorized to use this proxy');
    const unforwardable = unrecognizedUnsafe(message);
    if (unforwardable !== undefined) return answer(proxied, ResponseCode.BadOption, `cannot forward the unrecognized unsafe option ${unforwardable}`);
    let block1: BlockValue | undefined;
    let block2: BlockValue | undefined;
    try {
      block1 = readBlockOption(message, OptionNumber.Block1);
      block2 = readBlockOption(message, OptionNumber.Block2);
    } catch (error) {
      return answer(proxied, ResponseCode.BadRequest, (error as Error).message); // RFC 7959 §2.2: SZX 7
    }

    const blockwise = this.server.blockwise;
    const peerKey = proxied.context.peerKey;
    const representation = operationKey(peerKey, message, message.code === Method.FETCH);
    if (block2 && block2.num > 0 && !block1) {
      // A later block: from the representation block 0 came from (§2.4); if that is gone, the
      // whole representation is fetched again below and the block cut from it.
      const stored = blockwise.servedFromStore(representation, block2, emptyResponse());
      if (stored) return proxied.respond(stored);
    }
    let body = message.payload;
    let block1Control: Uint8Array | undefined;
    if (block1) {
      const outcome = blockwise.receiveBlock1(peerKey, operationKey(peerKey, message, false), block1, message.payload, getUintOption(message, OptionNumber.ContentFormat), getUintOption(message, OptionNumber.Size1));
      if (outcome.kind !== 'complete') return proxied.respond(toMessage(outcome.response));
      body = outcome.body;
      block1Control = outcome.block1;
    }
    // This leg's block-wise finishing: the Block1 control of a reassembled request, Block2 slices.
    const request = new ProxiedRequestThrough(proxied, (response) => {
      if (block1Control) setOption(response, OptionNumber.Block1, block1Control);
      // Errors (the proxy's own 5.0x, the origin's 4.xx) are answers to the whole request, not blocks.
      return codeClass(response.code) === 2 ? blockwise.sliceBlock2(peerKey, representation, response, block2) : response;
    });

    const path = getStringOptions(message, OptionNumber.UriPath).slice(mount.segments.length);
    const query = getStringOptions(message, OptionNumber.UriQuery);
    const uri: CoapUri = { ...mount.base, path: [...mount.base.path.filter((s) => s !== ''), ...path], query: [...mount.base.query, ...query] };
    let peer;
    try {
      peer = await resolvePeer(uri);
    } catch (error) {
      return answer(request, ResponseCode.BadGateway, (error as Error).message);
    }
    const addressing = uriToOptions(uri, peer.address, peer.port);
    const upstream: CoapMessage = {
      type: message.type === MessageType.NON ? MessageType.NON : MessageType.CON,
      code: message.code,
      messageId: 0,
      token: EMPTY_BYTES,
      options: sortOptions([...message.options.filter((o) => !PER_HOP.has(o.number)), ...addressing]),
      payload: body,
    };
    let layer: UpstreamLayer | undefined;
    if (mount.context) {
      // §2.2: a protecting proxy must recognise every option it protects.
      const unknown = upstream.options.find((o) => optionDefinition(o.number) === undefined);
      if (unknown) return answer(request, ResponseCode.BadOption, `cannot protect the unrecognized option ${unknown.number}`);
      layer = upstreamLayer(mount.context, false, new Set(addressing.map((o) => o.number)));
    }
    let endpoint;
    try {
      endpoint = await upstreamEndpoint(this.options.upstream, peer, uri.scheme, uri.host);
    } catch (error) {
      return answer(request, ResponseCode.BadGateway, (error as Error).message);
    }
    const respond = (response: CoapMessage | Error): void => {
      if (response instanceof Error) return request.respond(errorMessage(ResponseCode.BadGateway, response.message));
      // The proxy protects what it answers on a layer it removed (§2.2): it must know every option.
      if (proxied.context.oscore?.length && response.options.some((o) => optionDefinition(o.number) === undefined)) {
        return request.respond(errorMessage(ResponseCode.BadGateway, 'cannot protect an unrecognized option in the response'));
      }
      request.respond(mount.segments.length > 0 ? mountedLinks(response, mount) : response);
    };

    const observe = message.code === Method.GET || message.code === Method.FETCH ? getUintOption(message, OptionNumber.Observe) : undefined;
    const exchange = (): Promise<void> => this.exchange(upstream, endpoint, peer, layer, respond, formatCoapUri(uri));
    if (observe === undefined) return exchange();
    return this.relay.relay(request, { upstream, endpoint, peer, target: formatCoapUri(uri), ...(layer ? { layer } : {}) }, observe, () => {
      upstream.options = upstream.options.filter((o) => o.number !== OptionNumber.Observe);
      return exchange();
    });
  }

  /** The whole upstream exchange, block-wise as the origin needs, through this proxy's layer if any. */
  private async exchange(upstream: CoapMessage, endpoint: CoapEndpoint, peer: PeerAddress, layer: UpstreamLayer | undefined, respond: (response: CoapMessage | Error) => void, target: string): Promise<void> {
    const options: RequestOptions = { deadline: this.timeout, confirmable: upstream.type === MessageType.CON };
    const send: SendRequest = layer ? securedSender(endpoint, peer, layer.security, options) : (m) => endpoint.request(m, peer, options);
    // RFC 9175 §3.4: concurrent Block1 operations towards one resource (several clients posting
    // through this proxy, all from its one upstream endpoint) need distinct Request-Tags, or the
    // origin assembles their blocks into one body; the first goes without, as the client does.
    const operation = upstream.payload.length > 1024 ? `${peer.address}|${peer.port}|${upstream.code}|${target}` : undefined;
    const concurrent = operation === undefined ? 0 : (this.block1InFlight.get(operation) ?? 0);
    if (operation !== undefined) this.block1InFlight.set(operation, concurrent + 1);
    try {
      const { message: response } = await blockwiseRequest(send, upstream, {
        maxBodySize: this.server.blockwise.limits.maxBodySize,
        maxRestarts: 2,
        ...(concurrent > 0 ? { requestTag: defaultRandom.bytes(4) } : {}),
      });
      if (layer && getOption(upstream, OptionNumber.Oscore) === undefined && getOption(response, OptionNumber.Oscore) !== undefined) {
        return respond(new Error('the response carries more OSCORE layers than the request'));
      }
      // The origin's Block1 control concerned the upstream leg; this leg's is added when answering.
      respond({ ...forwardable(response), options: response.options.filter((o) => o.number !== OptionNumber.Block1) });
    } catch (error) {
      const code = error instanceof TimeoutError ? ResponseCode.GatewayTimeout : ResponseCode.BadGateway;
      respond(errorMessage(code, `${target}: ${(error as Error).message}`));
    } finally {
      if (operation !== undefined) {
        const left = (this.block1InFlight.get(operation) ?? 1) - 1;
        if (left > 0) this.block1InFlight.set(operation, left);
        else this.block1InFlight.delete(operation);
      }
    }
  }

  /** Upstream observations in progress. */
  get activeUpstreamObservations(): number {
    return this.relay.active;
  }

  async close(): Promise<void> {
    await this.relay.close();
  }
}

/** A ReverseProxy for one mapping (the CLI's --reverse). */
export function addReverseProxy(server: CoapServer, mapping: ReverseMapping, upstream: Pick<CoapClient, 'endpoint'>, timeout = 10_000): ReverseProxy {
  return new ReverseProxy(server, { upstream, mappings: [mapping], timeout });
}

export function parseReverseMapping(text: string): ReverseMapping {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new Error(`--reverse needs PREFIX=URI, got "${text}"`);
  const prefix = '/' + text.slice(0, eq).replace(/^\/+|\/+$/g, '');
  if (prefix === '/') throw new Error(`--reverse needs a non-empty PREFIX, got "${text}"`);
  const target = text.slice(eq + 1);
  parseCoapUri(target);
  return { prefix, target };
}

/**
 * RFC 6690 through a mount: the origin's links name its own paths, which the client reaches under
 * the mount prefix. A path-absolute reference ("/temp") is rewritten ("/dev1/temp") when it lies
 * below the target's base path, and dropped otherwise (this mount does not reach it); anchors
 * likewise. A relative reference needs nothing: the client resolves it against the URI it asked
 * (/dev1/.well-known/core), which is the origin's own under the prefix. Absolute URIs name their
 * own authority and stay. End-to-end protected listings cannot be read and pass unchanged.
 */
function mountedLinks(response: CoapMessage, mount: Mount): CoapMessage {
  if (codeClass(response.code) !== 2 || getUintOption(response, OptionNumber.ContentFormat) !== ContentFormat.LinkFormat) return response;
  if (getOption(response, OptionNumber.Oscore) !== undefined) return response;
  let links: Link[];
  try {
    links = parseLinkFormat(Buffer.from(response.payload).toString('utf8'));
  } catch {
    return response; // not ours to repair: the client gets the origin's document
  }
  const prefix = '/' + mount.segments.join('/');
  const basePath = mount.base.path.filter((s) => s !== '');
  const mounted = (reference: string): string | undefined => {
    if (!reference.startsWith('/') || reference.startsWith('//')) return reference;
    const segments = reference.slice(1).split('/');
    if (!basePath.every((s, i) => segments[i] === s)) return undefined;
    const rest = segments.slice(basePath.length).join('/');
    return rest === '' ? prefix : `${prefix}/${rest}`;
  };
  const rewritten: Link[] = [];
  for (const link of links) {
    const href = mounted(link.href);
    if (href === undefined) continue;
    const attributes: Link['attributes'] = [];
    let reachable = true;
    for (const [name, value] of link.attributes) {
      if (name === 'anchor' && typeof value === 'string') {
        const anchor = mounted(value);
        if (anchor === undefined) reachable = false;
        else attributes.push([name, anchor]);
      } else attributes.push([name, value]);
    }
    if (reachable) rewritten.push({ href, attributes });
  }
  return { ...response, payload: encodeString(serializeLinks(rewritten)) };
}



function answer(request: ProxiedRequest, code: number, diagnostic: string): void {
  request.respond(errorMessage(code, diagnostic));
}

const emptyResponse = (): CoapMessage => ({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES });
