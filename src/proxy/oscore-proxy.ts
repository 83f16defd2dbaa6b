/**
 * OSCORE-capable proxies (draft-ietf-core-oscore-capable-proxies): a proxy that is itself an
 * OSCORE endpoint towards its clients, other proxies and servers.
 *
 * The pieces, and where the §2.4 incoming loop (Appendix D) runs:
 * - The server stage server/stages/oscore-layers.ts removes OSCORE layers for as long as the request carries
 *   no proxy-related options (step 1/2), is not claimed by a reverse proxy (step 3, server/stages/proxy-claim.ts) and still
 *   carries OSCORE (steps 5–6), up to `maxOscoreLayers` (§2.1: 4.01 beyond). Errors, and every
 *   response, are protected with the layers removed, in reverse order (§2.5).
 * - Step 4, "is it acceptable to forward": ForwardProxyOptions.authorize / OscoreReverseProxy's
 *   `authorize`, keyed on the contexts that authenticated the client (EndpointContext.oscore);
 *   `allowList` below is the usual policy. 4.01 otherwise.
 * - Forwarding with one more layer for the next hop (§2.3) and removing exactly that layer from the
 *   response (§2.6): `upstreamLayer`, used by ForwardProxy and OscoreReverseProxy.
 * - Step 5 "no OSCORE and no application": the server's router answers 4.04.
 */
import { ResponseCode } from '../coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeUint, getOption, getStringOptions, sortOptions, type CoapMessage } from '../coap/message.js';
import { OptionNumber, optionDefinition } from '../coap/options.js';
import { parseCoapUri, uriToOptions, type CoapUri } from '../coap/uri.js';
import { resolvePeer, type CoapClient } from '../client/client.js';
import { OscoreLayer } from '../client/route.js';
import type { EndpointContext } from '../exchange/context.js';
import { TimeoutError } from '../exchange/errors.js';
import { escalatingClassOf, pathConsumers } from '../oscore/escalation.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import type { CoapServer, ProxiedRequest, ReverseProxyHandler } from '../server/server.js';

/** §2.4 step 4 as a predicate over the authenticated source and the request. */
export type ForwardPolicy = (context: EndpointContext, message: CoapMessage) => boolean;

/**
 * Forward only for clients whose OSCORE layer removed by this proxy was authenticated as one of
 * `peers` (context names / recipient names from the credentials). Use cases of Appendix A: allow-
 * listed clients, an LwM2M server acting as a proxy, access control to a proxy. The layer checked is
 * the last one removed here — the one that revealed the proxy-related options.
 */
export function allowList(peers: Iterable<string>): ForwardPolicy {
  const allowed = new Set(peers);
  return (context) => {
    const layers = context.oscore ?? [];
    const last = layers[layers.length - 1];
    return last !== undefined && allowed.has(last.peer);
  };
}

/** One layer for the next hop, with the §2.2 classes as this proxy knows them. */
export interface UpstreamLayer {
  security: OscoreLayer;
}

/**
 * The layer a proxy adds towards its next hop X (position 1). `nextIsProxy`: X forwards further
 * (Proxy-Scheme/Uri-Host stay in the message, consumed by X: Class E, Appendix B.6). `added`: the
 * option numbers this proxy put into the message itself (step 1). Unrecognised options throw
 * (the callers check first and answer 4.02).
 */
export function upstreamLayer(context: OscoreSecurityContext, nextIsProxy: boolean, added: ReadonlySet<number>): UpstreamLayer {
  const classOf = escalatingClassOf({
    x: 1,
    consumers: pathConsumers(nextIsProxy ? ['forward-proxy', 'origin'] : ['origin']),
    added: (n) => added.has(n),
    strict: true,
  });
  return { security: new OscoreLayer(context, classOf) };
}

export interface OscoreReverseMapping {
  /** Claim requests whose first Uri-Path segments are this prefix ("/dev1"), B.8. */
  prefix?: string;
  /** Claim requests whose Uri-Host is this name ("dev.example"), B.7. */
  host?: string;
  /** The origin's base URI. */
  target: string;
  /** The OSCORE context shared with the origin (the P–S layer). */
  context?: OscoreSecurityContext;
}

export interface OscoreReverseProxyOptions {
  upstream: Pick<CoapClient, 'endpoint'>;
  mappings: readonly OscoreReverseMapping[];
  /** §2.4 step 4. Default: every request is acceptable. */
  authorize?: ForwardPolicy;
  timeout?: number;
}

const ADDRESSING = new Set<number>([OptionNumber.UriHost, OptionNumber.UriPort, OptionNumber.UriPath, OptionNumber.UriQuery]);

/**
 * A reverse proxy that is an OSCORE endpoint (Appendix B.7, B.8). It claims requests by Uri-Host
 * or Uri-Path prefix *before* any layer meant for the origin is removed (§2.4 step 3), consumes the
 * claiming options, and forwards the rest — an end-to-end OSCORE option and its ciphertext
 * untouched — to the origin, with its own layer when it shares a context with the origin.
 */
export class OscoreReverseProxy implements ReverseProxyHandler {
  private readonly mappings: Array<OscoreReverseMapping & { base: CoapUri; segments: string[] }>;

  constructor(
    server: CoapServer,
    private readonly options: OscoreReverseProxyOptions,
  ) {
    this.mappings = options.mappings.map((m) => ({ ...m, base: parseCoapUri(m.target), segments: (m.prefix ?? '').split('/').filter((s) => s !== '') }));
    server.setReverseProxyHandler(this);
  }

  private find(message: CoapMessage): (typeof this.mappings)[number] | undefined {
    const host = getOption(message, OptionNumber.UriHost);
    const hostText = host ? Buffer.from(host).toString().toLowerCase() : undefined;
    const path = getStringOptions(message, OptionNumber.UriPath);
    // §2.4 step 3: "a combination of Uri-Host, Uri-Port, and ... one or more Uri-Path Options". A
    // request whose path is still hidden in a layer for this proxy is not claimed: the layer is
    // removed first (Appendix B.7), and the loop comes back here.
    if (path.length === 0) return undefined;
    return this.mappings.find((m) => {
      if (m.host !== undefined && m.host.toLowerCase() !== hostText) return false;
      if (m.segments.length === 0) return m.host !== undefined;
      return m.segments.every((s, i) => path[i] === s);
    });
  }

  claims(message: CoapMessage): boolean {
    return this.find(message) !== undefined;
  }

  async forward(request: ProxiedRequest): Promise<void> {
    const message = request.message;
    const reply = (code: number, diagnostic: string): void =>
      request.respond({ type: MessageType.ACK, code, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.MaxAge, value: encodeUint(0) }], payload: Buffer.from(diagnostic) });
    const mapping = this.find(message);
    if (!mapping) return reply(ResponseCode.NotFound, 'no such reverse-proxied resource');
    if (this.options.authorize && !this.options.authorize(request.context, message)) return reply(ResponseCode.Unauthorized, 'not authorized to use this proxy');
    const path = getStringOptions(message, OptionNumber.UriPath).slice(mapping.segments.length);
    const query = getStringOptions(message, OptionNumber.UriQuery);
    const uri: CoapUri = { ...mapping.base, path: [...mapping.base.path.filter((s) => s !== ''), ...path], query: [...mapping.base.query, ...query] };
    let peer;
    try {
      peer = await resolvePeer(uri);
    } catch (error) {
      return reply(ResponseCode.BadGateway, (error as Error).message);
    }
    const addressing = uriToOptions(uri, peer.address, peer.port);
    const upstream: CoapMessage = {
      type: message.type === MessageType.NON ? MessageType.NON : MessageType.CON,
      code: message.code,
      messageId: 0,
      token: EMPTY_BYTES,
      options: sortOptions([...message.options.filter((o) => !ADDRESSING.has(o.number)), ...addressing]),
      payload: message.payload,
    };
    let layer: UpstreamLayer | undefined;
    if (mapping.context) {
      const unknown = upstream.options.find((o) => optionDefinition(o.number) === undefined);
      if (unknown) return reply(ResponseCode.BadOption, `cannot protect the unrecognized option ${unknown.number}`);
      layer = upstreamLayer(mapping.context, false, new Set(addressing.map((o) => o.number)));
    }
    try {
      const endpoint = await this.options.upstream.endpoint(peer.address.includes(':') ? 6 : 4, uri.scheme);
      const protectedRequest = layer?.security.protect(upstream);
      const { message: response } = await endpoint.request(protectedRequest?.message ?? upstream, peer, { deadline: this.options.timeout ?? 10_000, confirmable: upstream.type === MessageType.CON });
      let verified: CoapMessage | Error = response;
      if (protectedRequest) {
        verified = protectedRequest.verify(response, false);
        if (!(verified instanceof Error) && getOption(upstream, OptionNumber.Oscore) === undefined && getOption(verified, OptionNumber.Oscore) !== undefined) {
          verified = new Error('the response carries more OSCORE layers than the request');
        }
      }
      if (verified instanceof Error) return reply(ResponseCode.BadGateway, verified.message);
      if (request.context.oscore?.length && verified.options.some((o) => optionDefinition(o.number) === undefined)) {
        return reply(ResponseCode.BadGateway, 'cannot protect an unrecognized option in the response');
      }
      request.respond({ ...verified, type: MessageType.ACK, messageId: 0, token: EMPTY_BYTES, options: verified.options.slice() });
    } catch (error) {
      const code = error instanceof TimeoutError ? ResponseCode.GatewayTimeout : ResponseCode.BadGateway;
      reply(code, `${mapping.target}: ${(error as Error).message}`);
    }
  }
}
