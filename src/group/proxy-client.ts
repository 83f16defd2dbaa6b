/**
 * Group requests through a proxy (draft-ietf-core-groupcomm-proxy §5.1, §5.5; §6.2 for a reverse
 * proxy): one unicast request to the proxy naming the group, with Multicast-Timeout T'; every
 * server's response comes back on that request's token, each with Reply-From naming its server,
 * and is yielded with that origin — as GroupClient yields the answers it hears itself.
 *
 * Security, nested (seed §2.1; oscore-capable-proxies §2.3): Group OSCORE end to end with the
 * servers (the proxy is no group member, REQ3), then this client's OSCORE layer for the proxy, which
 * authenticates the client (REQ2) and encrypts what the proxy consumes — Proxy-Scheme, Uri-Host,
 * Uri-Port and Multicast-Timeout (Class E in that layer by §2.2; Class U end to end, §2). Each
 * response: the proxy's layer removed (§5.5.1 step 1) — at most one response without a Partial IV,
 * the others each once (capable-proxies §2.6.1) — then Reply-From read (step 3), then Group OSCORE
 * verifies the server's response (step 2) and names the member that sent it.
 */
import { Method, type Code } from '../coap/codes.js';
import { createMessage, encodeUint, getOption, MessageType, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { parseCoapUri, uriToOptions } from '../coap/uri.js';
import { resolvePeer } from '../client/client.js';
import { RouteSecurity, type RouteHop } from '../client/route.js';
import type { MessageSecurity, ProtectedRequest } from '../client/security.js';
import type { CoapEndpoint } from '../exchange/endpoint.js';
import type { StreamResponse } from '../exchange/response-stream.js';
import { GroupResponseTracker } from '../group-oscore/responses.js';
import { decodeOscoreOption, decodePartialIv } from '../oscore/option.js';
import type { PeerAddress } from '../transport/transport.js';
import { GroupResponseStream, type GroupRequest } from './group-client.js';
import { type ProtectedGroupExchange, protectForGroup } from './group-security.js';
import { decodeReplyFrom, ReplyFromError, type ReplyFrom } from './reply-from.js';

export interface GroupProxyClientOptions {
  /** Talks to the proxy (unicast, any carrier; a CoapClient's endpoint will do). */
  endpoint: CoapEndpoint;
  /**
   * The proxy: its URI (a reverse proxy's with the path prefix that stands for the group, `kind:
   * 'reverse'`) and the OSCORE context this client shares with it (REQ2; without one the proxy
   * can only refuse, 4.01, unless it allows unauthenticated clients).
   */
  proxy: RouteHop;
}

export interface ProxiedGroupRequest extends GroupRequest {
  /**
   * T' of §5.1.1 step 3, in seconds: how long the proxy relays responses. Default: the whole
   * seconds of `timeout` less half a second for the client–proxy round trip (T' < T), at least 1.
   */
  multicastTimeout?: number;
}

/** Responses relayed to one request at most (a bound of this client, not of the protocol). */
const MAX_RESPONSES = 1024;

export class GroupProxyClient {
  readonly #endpoint: CoapEndpoint;
  readonly #proxy: RouteHop;

  constructor(options: GroupProxyClientOptions) {
    this.#endpoint = options.endpoint;
    this.#proxy = options.proxy;
  }

  /** §5.1.1: the responses of every server, as the proxy relays them, until `timeout` (T). */
  request(request: ProxiedGroupRequest): GroupResponseStream {
    const timeout = request.timeout ?? 5000;
    const seconds = request.multicastTimeout ?? Math.max(1, Math.floor((timeout - 500) / 1000));
    return this.#start(request, seconds, Math.max(timeout, seconds * 1000 + 500), false);
  }

  /**
   * §5.1.2: Observe of the group through the proxy: every server's notifications, relayed with
   * Reply-From, until cancel() (the next relayed notification is then refused with RST, which ends
   * the proxy's relay, §5.2.3, and with it the servers' observations).
   */
  observe(request: Omit<ProxiedGroupRequest, 'timeout'>): GroupResponseStream {
    return this.#start({ ...request, options: [...(request.options ?? []), { number: OptionNumber.Observe, value: encodeUint(0) }] }, request.multicastTimeout ?? 5, undefined, true);
  }

  #start(request: ProxiedGroupRequest, seconds: number, lifetime: number | undefined, observe: boolean): GroupResponseStream {
    const stream = new GroupResponseStream();
    const target = parseCoapUri(request.uri);
    const method: Code = request.method ?? Method.GET;
    const payload = typeof request.payload === 'string' ? new TextEncoder().encode(request.payload) : (request.payload ?? new Uint8Array(0));
    // The path and query are the servers'; RouteSecurity adds the proxy's addressing options.
    const options: CoapOption[] = [
      ...uriToOptions(target, target.host, target.port),
      ...(request.options ?? []),
      { number: OptionNumber.MulticastTimeout, value: encodeUint(seconds) },
    ];
    const plain = createMessage({ type: MessageType.CON, code: method, options, payload });
    let exchange: ProtectedGroupExchange | undefined;
    const endToEnd: MessageSecurity = {
      protect: (message) => {
        if (request.security !== undefined) exchange = protectForGroup(request.security.context, message, request.security.target ?? { mode: 'group' });
        // Verified below, after Reply-From is read (§5.5.1 steps 2–3).
        return { message: exchange?.message ?? message, verify: (response) => response, describe: (context) => context, ordersNotifications: false };
      },
    };
    let sent: ProtectedRequest;
    try {
      sent = new RouteSecurity(target, [this.#proxy], endToEnd).protect(plain);
    } catch (error) {
      stream.refuse({ origin: { address: target.host, port: target.port }, reason: (error as Error).message });
      stream.cancel();
      return stream;
    }
    void this.#send(stream, sent, exchange, lifetime, observe, request.signal);
    return stream;
  }

  async #send(stream: GroupResponseStream, sent: ProtectedRequest, exchange: ProtectedGroupExchange | undefined, lifetime: number | undefined, observe: boolean, signal: AbortSignal | undefined): Promise<void> {
    const proxyUri = parseCoapUri(this.#proxy.uri);
    let proxy: PeerAddress;
    try {
      proxy = await resolvePeer(proxyUri);
    } catch (error) {
      stream.refuse({ origin: { address: proxyUri.host, port: proxyUri.port }, reason: (error as Error).message });
      return stream.cancel();
    }
    if (stream.ended) return;
    const relayed = this.#endpoint.stream(sent.message, proxy, {
      maxResponses: observe ? Infinity : MAX_RESPONSES,
      ...(lifetime !== undefined ? { lifetime } : {}),
    });
    const tracker = new GroupResponseTracker(1);
    relayed.consume({
      onResponse: (response) => this.#receive(stream, response, sent, exchange, tracker, proxy, observe),
      onEnd: () => stream.cancel(),
    });
    stream.onEnd(() => relayed.close());
    if (signal !== undefined) {
      if (signal.aborted) stream.cancel();
      const abort = (): void => stream.cancel();
      signal.addEventListener('abort', abort, { once: true });
      stream.onEnd(() => signal.removeEventListener('abort', abort));
    }
  }

  #receive(stream: GroupResponseStream, response: StreamResponse, sent: ProtectedRequest, exchange: ProtectedGroupExchange | undefined, tracker: GroupResponseTracker, proxy: PeerAddress, observe: boolean): void {
    const received = response.message;
    const piv = partialIvOf(received);
    const opened = sent.verify(received, observe);
    if (opened instanceof Error) return stream.refuse({ origin: proxy, reason: `from the proxy: ${opened.message}` });
    // capable-proxies §2.6.1: each relayed response once; one without Partial IV at most.
    if (this.#proxy.context !== undefined && !tracker.accept(PROXY_KID, piv === null ? undefined : piv)) {
      return stream.refuse({ origin: proxy, reason: 'a relayed response replayed' });
    }
    const replyFromValue = getOption(opened, OptionNumber.ReplyFrom);
    if (replyFromValue === undefined) {
      // No server's: the proxy's own answer (4.01 not allowed, 4.00 no Multicast-Timeout, 5.03 busy). It ends the request.
      stream.push({ origin: proxy, message: opened, code: opened.code, payload: opened.payload, member: undefined });
      return stream.cancel();
    }
    let from: ReplyFrom;
    try {
      from = decodeReplyFrom(replyFromValue);
    } catch (error) {
      return stream.refuse({ origin: proxy, reason: error instanceof ReplyFromError ? error.message : String(error) });
    }
    const origin: PeerAddress = { address: from.host, port: from.port };
    if (exchange === undefined) {
      stream.push({ origin, message: opened, code: opened.code, payload: opened.payload, member: undefined });
      return;
    }
    const verified = exchange.verify(opened);
    if (!verified.ok) return stream.refuse({ origin, reason: verified.reason });
    stream.push({ origin, message: verified.message, code: verified.message.code, payload: verified.message.payload, member: verified.member });
  }
}

/** The proxy's layer has one sender: its responses share one window. */
const PROXY_KID = new Uint8Array(0);

/** The Partial IV of a response's OSCORE option (null when it has none, or no OSCORE at all). */
function partialIvOf(message: CoapMessage): number | null {
  const option = getOption(message, OptionNumber.Oscore);
  if (option === undefined) return null;
  try {
    const piv = decodeOscoreOption(option).piv;
    return piv === undefined ? null : decodePartialIv(piv);
  } catch {
    return null;
  }
}
