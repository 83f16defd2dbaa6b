/**
 * Where group relaying (group-relay.ts) plugs into a CoapServer:
 *
 * - `GroupForwardProxy` (draft-ietf-core-groupcomm-proxy §5): a request whose Proxy-Uri or
 *   Proxy-Scheme + Uri-Host names an IP multicast address is relayed to that group; any other
 *   proxied request goes to the forward proxy it was installed in front of (`fallback`).
 * - `GroupReverseProxy` (§6): a path prefix or Uri-Host stands for a configured group; the
 *   prefix is consumed, the rest of the request goes to the group. Requests it does not claim go to
 *   the reverse proxy it was installed in front of. Reply-From names each server itself: the proxy
 *   stands in for the group, not for each member (§6.1, second case).
 *
 * Both also claim the Early Stop Request of §5.1.3 (a GET with Multicast-Timeout 0 and the token
 * of a relay in progress, without proxy-related options) and end that relay (§5.2.3); it gets no
 * response of its own (the client freed the token), a CON only its ACK.
 */
import { ResponseCode } from '../coap/codes.js';
import { getOptions, getOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { parseCoapUri } from '../coap/uri.js';
import type { EndpointContext } from '../exchange/context.js';
import type { CoapServer, ForwardingHandler, ProxiedRequest, ReverseProxyHandler } from '../server/server.js';
import { isMulticastAddress } from '../transport/multicast.js';
import { GroupRelay } from './group-relay.js';
import { errorMessage } from './observe-relay.js';
import { TargetMemo, checkProxyRequest, type Target } from './request-target.js';

export class GroupForwardProxy implements ForwardingHandler {
  readonly #targets = new TargetMemo();

  /** Installs itself as `server`'s forwarding handler; `fallback` (a ForwardProxy) gets every request not to a group. */
  constructor(
    server: CoapServer,
    readonly relay: GroupRelay,
    private readonly fallback?: ForwardingHandler,
  ) {
    server.setForwardingHandler(this);
  }

  forward(request: ProxiedRequest): void | Promise<void> {
    const message = request.message;
    const checked = checkProxyRequest(message);
    const target = 'error' in checked ? checked : this.#targets.resolve(message);
    if ('error' in target || 'error' in checked || !isMulticastAddress(target.host)) {
      // Not to a group (or not a request this proxy can read): the unicast forward proxy's, with its own checks.
      if (this.fallback !== undefined) return this.fallback.forward(request);
      if ('error' in target) return request.respond(errorMessage(target.code, target.error));
      return request.respond(errorMessage(ResponseCode.ProxyingNotSupported, 'this proxy relays requests to IP multicast groups only'));
    }
    message.options = checked.options;
    return this.relay.relay(request, target);
  }
}

/** A reverse mount: requests under `prefix` (path segments) or to `host` (Uri-Host) go to `group` (coap://ADDR:PORT). */
export interface GroupMount {
  readonly prefix?: readonly string[];
  readonly host?: string;
  readonly group: string;
}

/** "PREFIX=coap://ADDR:PORT" (PREFIX a path such as /lights, or a host name such as lights.example). */
export function parseGroupMount(text: string): GroupMount {
  const at = text.indexOf('=');
  if (at <= 0) throw new RangeError(`a group mount is PREFIX=coap://GROUP:PORT, got "${text}"`);
  const where = text.slice(0, at);
  const uri = parseCoapUri(text.slice(at + 1));
  if (uri.scheme !== 'coap' || !isMulticastAddress(uri.host)) throw new RangeError(`${text.slice(at + 1)} is not a coap:// URI of an IP multicast group`);
  const group = `coap://${uri.host.includes(':') ? `[${uri.host}]` : uri.host}:${uri.port}`;
  if (where.startsWith('/')) {
    const prefix = where.split('/').filter((s) => s !== '');
    if (prefix.length === 0) throw new RangeError('a group mount needs a non-empty path prefix');
    return { prefix, group };
  }
  return { host: where.toLowerCase(), group };
}

export class GroupReverseProxy implements ReverseProxyHandler {
  readonly #mounts: readonly GroupMount[];

  /** Installs itself as `server`'s reverse proxy; `fallback` gets the requests no mount claims. */
  constructor(
    server: CoapServer,
    readonly relay: GroupRelay,
    mounts: readonly GroupMount[],
    private readonly fallback?: ReverseProxyHandler,
  ) {
    this.#mounts = mounts;
    server.setReverseProxyHandler(this);
  }

  claims(message: CoapMessage, context: EndpointContext): boolean {
    if (this.relay.isEarlyStop(message, context)) return true;
    if (this.#mountOf(message) !== undefined) return true;
    return this.fallback?.claims(message, context) === true;
  }

  forward(request: ProxiedRequest): void | Promise<void> {
    const message = request.message;
    if (this.relay.isEarlyStop(message, request.context)) {
      this.relay.stop(request.context, message.token);
      return;
    }
    const mount = this.#mountOf(message);
    if (mount === undefined) return this.fallback?.forward(request);
    // The mount's own path is this proxy's; the rest names the resource at each member.
    const path = getOptions(message, OptionNumber.UriPath).slice(mount.prefix?.length ?? 0);
    message.options = [...message.options.filter((o) => o.number !== OptionNumber.UriPath && o.number !== OptionNumber.UriHost && o.number !== OptionNumber.UriPort), ...path.map((value) => ({ number: OptionNumber.UriPath, value }))];
    const uri = parseCoapUri(mount.group);
    const target: Target = { uri: mount.group, scheme: 'coap', host: uri.host, port: uri.port };
    return this.relay.relay(request, target);
  }

  #mountOf(message: CoapMessage): GroupMount | undefined {
    const host = getOption(message, OptionNumber.UriHost);
    const hostText = host !== undefined ? Buffer.from(host).toString('utf8').toLowerCase() : undefined;
    const path = getOptions(message, OptionNumber.UriPath).map((v) => Buffer.from(v).toString('utf8'));
    return this.#mounts.find((m) =>
      m.host !== undefined ? m.host === hostText : m.prefix!.every((segment, i) => path[i] === segment),
    );
  }
}

