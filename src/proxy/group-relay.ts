/**
 * A proxy that relays group requests (draft-ietf-core-groupcomm-proxy §5.2, §5.4): a unicast
 * request aimed at a CoAP group, with the client's Multicast-Timeout, is sent to the group once
 * and every server's response comes back to the client as a response of its own on the client's
 * token, with Reply-From naming the server (§3), until the timeout — or, for Observe (§5.2.2,
 * §5.4.2), every server's notifications while the observation lasts.
 *
 * Order of the checks (§5.2.1): the client's layer is removed by the server's §2.4 loop before
 * this runs (step 1); the client must be allowed for this group (step 2, REQ1/REQ2: the OSCORE
 * context that authenticated it at this proxy, `authorize`) or gets 4.01; a request without
 * Multicast-Timeout gets 4.00 with Multicast-Timeout 0 (step 3). Everything else of the request —
 * a Group OSCORE option and ciphertext meant for the servers included — is forwarded unread.
 *
 * Each relayed response is protected again for the client in the layer this proxy removed, with a
 * Partial IV of its own (ProxiedRequest.protectAgain; oscore-capable-proxies §2.5.1), Reply-From
 * inside that layer (server/oscore.ts, §10.3 of the draft). What a client can make this proxy keep
 * is bounded: relays in progress (`maxRelays`, then 5.03), responses per relay (`maxResponses`),
 * the timeout (`maxTimeout`) and how long a group observation is relayed (`maxObservation`).
 */
import { Method, ResponseCode, codeClass } from '../coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, decodeUint, encodeString, getOption, getOptions, setOption, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { parseAbsoluteUri } from '../coap/uri.js';
import type { EndpointContext } from '../exchange/context.js';
import type { GroupClient, GroupResponse, GroupResponseStream } from '../group/group-client.js';
import { encodeReplyFrom } from '../group/reply-from.js';
import type { CoapServer, ProxiedRequest } from '../server/server.js';
import { peerKey } from '../transport/transport.js';
import type { Scheduler } from '../util/scheduler.js';
import type { CompleteSet, GroupResponseCache } from './group-cache.js';
import { errorMessage, forwardable } from './observe-relay.js';
import { bracket, type Target } from './request-target.js';

/** §5.2.1 step 2: may the client, as this proxy authenticated it, have requests relayed to `group` (coap://ADDR:PORT)? */
export type GroupPolicy = (context: EndpointContext, group: string) => boolean;

export interface GroupRelayOptions {
  /** Sends to groups and hears every member (a GroupClient over a MulticastClientTransport, or one per IP version). */
  groups: (target: Target) => GroupClient | undefined;
  /** REQ1/REQ2 (§4): the allow-list. See `groupAllowList`. */
  authorize: GroupPolicy;
  /** Seconds: the longest Multicast-Timeout honoured; a client's larger one is cut to it. Default 60. */
  maxTimeout?: number;
  /** Responses relayed to one request at most (a server may answer more than once, §5.4.1). Default 64. */
  maxResponses?: number;
  /** Relays in progress at most; a request beyond gets 5.03. Default 64. */
  maxRelays?: number;
  /** Seconds a group observation is relayed at most (§5.4.2; the client registers again after). Default 3600. */
  maxObservation?: number;
  /**
   * Relay each response to the client as CON instead of NON, so a client that lost interest is
   * noticed (§5.2.3: its RST ends the relay; §5.4.2: "regularly verify that the client is still
   * interested"). Default: CON for notifications, NON otherwise.
   */
  confirmable?: boolean;
  /** §7: responses cached per server; a complete set answers alone, with Group-ETag (group-cache.ts). */
  cache?: GroupResponseCache;
}

/** One relay in progress, found again by the client's endpoint and token (Early Stop Request, §5.1.3). */
interface Relay {
  readonly stream: GroupResponseStream;
}

/**
 * REQ1/REQ2: clients authenticated by one of `peers` (the OSCORE context — recipient name — whose
 * layer this proxy removed last) may have requests relayed; an entry "NAME=ADDR:PORT" limits NAME
 * to that group (§5.2.1 step 2: "allowed-listed to have its requests proxied to the group URI").
 */
export function groupAllowList(entries: Iterable<string>): GroupPolicy {
  const anyGroup = new Set<string>();
  const perGroup = new Map<string, Set<string>>();
  for (const entry of entries) {
    const at = entry.indexOf('=');
    if (at < 0) {
      anyGroup.add(entry);
      continue;
    }
    const name = entry.slice(0, at);
    const group = normaliseGroup(entry.slice(at + 1));
    let groups = perGroup.get(name);
    if (groups === undefined) perGroup.set(name, (groups = new Set()));
    groups.add(group);
  }
  return (context, group) => {
    const layers = context.oscore ?? [];
    const peer = layers[layers.length - 1]?.peer;
    if (peer === undefined) return false;
    return anyGroup.has(peer) || perGroup.get(peer)?.has(normaliseGroup(group)) === true;
  };
}

/** "coap://ADDR:PORT", "ADDR:PORT" or "[V6]:PORT" as "coap://ADDR:PORT" with the address canonical. */
export function normaliseGroup(text: string): string {
  const uri = parseAbsoluteUri(text.includes('://') ? text : `coap://${text}`);
  return `coap://${bracket(uri.host.toLowerCase())}:${uri.port ?? 5683}`;
}

/** What the proxy consumes, and what is not the servers' to see (§5.2.1 step 4). */
const NOT_FORWARDED: ReadonlySet<number> = new Set([
  OptionNumber.ProxyUri,
  OptionNumber.ProxyScheme,
  OptionNumber.UriHost,
  OptionNumber.UriPort,
  OptionNumber.MulticastTimeout,
  OptionNumber.GroupETag,
  OptionNumber.HopLimit,
  OptionNumber.Observe,
]);

export class GroupRelay {
  readonly #server: CoapServer;
  readonly #options: GroupRelayOptions;
  readonly #scheduler: Scheduler;
  readonly #relays = new Map<string, Relay>();
  /** Requests relayed, responses relayed, refusals (4.01, 4.00, 5.03) and requests answered from the cache, for tests and logs. */
  readonly stats = { relayed: 0, responses: 0, unauthorized: 0, noTimeout: 0, busy: 0, fromCache: 0 };

  constructor(server: CoapServer, options: GroupRelayOptions) {
    this.#server = server;
    this.#options = options;
    this.#scheduler = server.endpoint.scheduler;
  }

  get active(): number {
    return this.#relays.size;
  }

  /** The group URI of a target (scheme, group address and port; the path is the request's). */
  static groupOf(target: Target): string {
    return `${target.scheme}://${bracket(target.host.toLowerCase())}:${target.port}`;
  }

  /** §5.2.1 for a request whose target names a group. */
  relay(request: ProxiedRequest, target: Target): void {
    const message = request.message;
    const group = GroupRelay.groupOf(target);
    if (!this.#options.authorize(request.context, group)) {
      this.stats.unauthorized++;
      return request.respond(errorMessage(ResponseCode.Unauthorized, `not allowed to have requests relayed to ${group}`));
    }
    const timeoutOption = getOption(message, OptionNumber.MulticastTimeout);
    if (timeoutOption === undefined) {
      this.stats.noTimeout++;
      // §5.2.1 step 3 (§6.1 for a reverse proxy): 4.00 with Multicast-Timeout 0 (empty) and a diagnostic.
      const refusal = errorMessage(ResponseCode.BadRequest, 'a request to a group needs Multicast-Timeout');
      setOption(refusal, OptionNumber.MulticastTimeout, new Uint8Array(0));
      return request.respond(refusal);
    }
    const relayId = relayKey(request.peer, message.token);
    if (this.#relays.size >= (this.#options.maxRelays ?? 64) || this.#relays.has(relayId)) {
      this.stats.busy++;
      return request.respond(errorMessage(ResponseCode.ServiceUnavailable, 'too many group requests in progress'));
    }
    const client = target.scheme === 'coap' ? this.#options.groups(target) : undefined;
    if (client === undefined) return request.respond(errorMessage(ResponseCode.ProxyingNotSupported, `${group}: no group transport for it here`));

    const seconds = Math.min(decodeUint(timeoutOption), this.#options.maxTimeout ?? 60);
    const fetching = message.code === Method.GET || message.code === Method.FETCH;
    const observeValue = getOption(message, OptionNumber.Observe);
    const observe = fetching && observeValue !== undefined && decodeUint(observeValue) === 0;
    const upstream = {
      uri: `${group}/`,
      method: message.code,
      options: upstreamOptions(message),
      payload: message.payload,
    };
    const cache = this.#options.cache;
    const cacheKey = cache !== undefined && fetching && !observe && seconds > 0 ? cache.key(group, message.code, upstream.options, message.payload) : undefined;
    if (cacheKey !== undefined && this.#fromCache(request, cache!.complete(cacheKey, group))) return;
    this.stats.relayed++;
    // §5.2.1 step 5–6: sent once; with T' = 0 every response is ignored.
    const stream = observe ? client.observe(upstream) : client.request({ ...upstream, timeout: seconds * 1000 });
    if (seconds === 0) return stream.cancel();
    this.#relays.set(relayId, { stream });
    stream.onEnd(() => this.#relays.delete(relayId));
    void this.#forward(request, stream, seconds, observe, cacheKey);
  }

  /**
   * §7.1/§7.3: a complete set J answers the request without the group: one 2.03 with J's
   * Group-ETag when the client named it, else every cached response with it. False: go to the group.
   */
  #fromCache(request: ProxiedRequest, set: CompleteSet | undefined): boolean {
    if (set === undefined) return false;
    this.stats.fromCache++;
    const named = getOptions(request.message, OptionNumber.GroupETag);
    if (named.some((etag) => Buffer.compare(etag, set.etag) === 0)) {
      request.respond({ type: MessageType.ACK, code: ResponseCode.Valid, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.GroupETag, value: set.etag }], payload: EMPTY_BYTES });
      return true;
    }
    set.responses.forEach((response, i) => {
      // "MUST NOT include more than one Group-ETag Option".
      setOption(response, OptionNumber.GroupETag, set.etag);
      this.#respond(request, response, i === 0, false, () => {});
    });
    return true;
  }

  /** §5.1.3 / §5.2.3 Early Stop Request: ends the relay of this client's request under `token`. */
  stop(context: EndpointContext, token: Uint8Array): boolean {
    const relay = this.#relays.get(relayKey(context.peer, token));
    relay?.stream.cancel();
    return relay !== undefined;
  }

  /** Whether `message` is an Early Stop Request for a relay in progress (§5.1.3: GET, Multicast-Timeout 0, same token, no proxy-related options). */
  isEarlyStop(message: CoapMessage, context: EndpointContext): boolean {
    const value = getOption(message, OptionNumber.MulticastTimeout);
    return message.code === Method.GET && value !== undefined && value.length === 0 && this.#relays.has(relayKey(context.peer, message.token));
  }

  async close(): Promise<void> {
    for (const relay of [...this.#relays.values()]) relay.stream.cancel();
  }

  /** §5.4.1: every response, as it comes, with Reply-From; the timeout ends it (§5.4.2: not an observation that started). */
  async #forward(request: ProxiedRequest, stream: GroupResponseStream, seconds: number, observe: boolean, key: string | undefined): Promise<void> {
    let relayed = 0;
    let observing = false;
    const maxResponses = this.#options.maxResponses ?? 64;
    const deadline = this.#scheduler.schedule(seconds * 1000, () => {
      if (!observing) stream.cancel();
    });
    const limit = observe ? this.#scheduler.schedule((this.#options.maxObservation ?? 3600) * 1000, () => stream.cancel()) : undefined;
    stream.onEnd(() => {
      deadline.cancel();
      limit?.cancel();
    });
    for await (const response of stream) {
      if (observe && codeClass(response.code) === 2 && getOption(response.message, OptionNumber.Observe) !== undefined) observing = true;
      const relayedResponse = withReplyFrom(response);
      // §5.4.1 step 1: stored with Reply-From, so a response served from the cache still names its server.
      if (key !== undefined) this.#options.cache!.store(key, response.origin, relayedResponse);
      this.#respond(request, relayedResponse, relayed === 0, observe, () => stream.cancel());
      this.stats.responses++;
      relayed++;
      if (!observe && relayed >= maxResponses) stream.cancel();
    }
  }

  /** The first response answers the request; each later one goes as a response of its own on the same token. */
  #respond(request: ProxiedRequest, response: CoapMessage, first: boolean, observe: boolean, lostInterest: () => void): void {
    if (first) return request.respond(response);
    const message = request.protectAgain(response);
    const carrier = this.#server.endpoint.carrier;
    if (this.#options.confirmable ?? observe) {
      carrier.sendConfirmable(message, request.peer, { onAck: () => {}, onReset: lostInterest, onTimeout: lostInterest });
    } else {
      carrier.sendNonConfirmable(message, request.peer, lostInterest);
    }
  }
}

const relayKey = (peer: { address: string; port: number }, token: Uint8Array): string => `${peerKey(peer)}#${Buffer.from(token).toString('hex')}`;

/** The request as the group gets it: the proxy's options gone; a Proxy-Uri's path and query as Uri-Path/Uri-Query. */
function upstreamOptions(message: CoapMessage): CoapOption[] {
  const options = message.options.filter((o) => !NOT_FORWARDED.has(o.number));
  const proxyUri = getOption(message, OptionNumber.ProxyUri);
  if (proxyUri !== undefined) {
    const uri = parseAbsoluteUri(decodeString(proxyUri)); // parsed already by the target
    for (const segment of uri.path) options.push({ number: OptionNumber.UriPath, value: encodeString(segment) });
    for (const arg of uri.query) options.push({ number: OptionNumber.UriQuery, value: encodeString(arg) });
  }
  return options;
}

/** §5.4.1 step 1: Reply-From with the CRI of the server's address, replacing one a proxy further on set. */
function withReplyFrom(response: GroupResponse): CoapMessage {
  const message = forwardable(response.message);
  setOption(message, OptionNumber.ReplyFrom, encodeReplyFrom({ scheme: 'coap', host: response.origin.address, port: response.origin.port }));
  return message;
}
