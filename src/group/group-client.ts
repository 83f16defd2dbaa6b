/**
 * The group client (draft-ietf-core-groupcomm-bis §3): one NON request to an IP multicast group,
 * and the responses of every server as they arrive, each labelled with its origin (and, under
 * Group OSCORE, the member that signed it), until a timeout — or, for Observe of a group (§3.7),
 * each server's notifications until the observation is cancelled.
 *
 * It runs its own RFC 7252 messaging layer (Message IDs, deduplication, ACKs for CON responses)
 * over an unconnected socket, with responses routed by token alone (TokenMatcher).
 */
import { Method, ResponseCode, type Code } from '../coap/codes.js';
import { MessageType, addOption, createMessage, encodeUint, getOption, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { uriToOptions, parseCoapUri } from '../coap/uri.js';
import type { GroupSecurityContext } from '../group-oscore/context.js';
import type { GroupRequestTarget } from '../group-oscore/protect.js';
import { MessageLayer } from '../messaging/message-layer.js';
import { withDefaults } from '../messaging/parameters.js';
import { isMulticastAddress } from '../transport/multicast.js';
import { peerKey, type DatagramTransport, type PeerAddress } from '../transport/transport.js';
import { defaultRandom, type RandomSource } from '../util/random.js';
import { RealScheduler, type Scheduler } from '../util/scheduler.js';
import { type GroupMemberLabel, type ProtectedGroupExchange, protectForGroup } from './group-security.js';
import { TokenMatcher } from './token-matcher.js';

export interface GroupClientOptions {
  transport: DatagramTransport;
  scheduler?: Scheduler;
  random?: RandomSource;
}

export interface GroupRequest {
  /** coap://GROUP:PORT/path?query — the group (or, for a follow-up to one member, a unicast address). */
  uri: string;
  method?: Code;
  payload?: Uint8Array | string;
  options?: readonly CoapOption[];
  /** Stop collecting responses this long after sending (ms). Default 5000; ignored by observe(). */
  timeout?: number;
  /** Group OSCORE: protect with this context, in group mode (default) or pairwise toward one member. */
  security?: { context: GroupSecurityContext; target?: GroupRequestTarget };
  signal?: AbortSignal;
  /** Requests to a group are NON (RFC 7252 §8.1, groupcomm-bis §3.1.1): true is refused. */
  confirmable?: false;
}

/** One server's answer. */
export interface GroupResponse {
  /** The server's unicast address (§3.1.4): responses never come from the group address. */
  readonly origin: PeerAddress;
  /** The response, decrypted when Group OSCORE protected it. */
  readonly message: CoapMessage;
  readonly code: Code;
  readonly payload: Uint8Array;
  /** Under Group OSCORE: the member whose signature (or pairwise key) authenticated it. */
  readonly member: GroupMemberLabel | undefined;
}

/** A response that was dropped, and why (a forged or replayed one, say). */
export interface GroupRefusal {
  readonly origin: PeerAddress;
  readonly reason: string;
}

/** The responses to one group request, as an async iterable; ends at the timeout, on cancel() or on abort. */
export class GroupResponseStream implements AsyncIterable<GroupResponse> {
  readonly #queue: GroupResponse[] = [];
  #waiter: (() => void) | undefined;
  #ended = false;
  readonly refusals: GroupRefusal[] = [];
  readonly #onEnd: Array<() => void> = [];

  /** @internal */
  push(response: GroupResponse): void {
    // Unread responses are bounded: a flood under one token must not grow the queue without end.
    if (this.#ended || this.#queue.length >= MAX_QUEUED_RESPONSES) return;
    this.#queue.push(response);
    this.#wake();
  }

  /** @internal */
  refuse(refusal: GroupRefusal): void {
    if (this.refusals.length < MAX_REFUSALS_KEPT) this.refusals.push(refusal);
  }

  /** @internal */
  onEnd(hook: () => void): void {
    if (this.#ended) hook();
    else this.#onEnd.push(hook);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Stops listening: later responses and notifications are rejected (RST, RFC 7641 §3.6). */
  cancel(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const hook of this.#onEnd.splice(0)) hook();
    this.#wake();
  }

  /** Every response until the stream ends. */
  async collect(): Promise<GroupResponse[]> {
    const all: GroupResponse[] = [];
    for await (const response of this) all.push(response);
    return all;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GroupResponse> {
    for (;;) {
      const next = this.#queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}

/** Bounds what a flood of bad responses can make a stream keep. */
const MAX_REFUSALS_KEPT = 64;
const MAX_QUEUED_RESPONSES = 4096;
/** §3.1.5: a fresh token per group request; tokens are never reused. 8 bytes make a repeat improbable. */
const TOKEN_LENGTH = 8;

/** One call's stream, and the servers already asked again with an Echo value (§9). */
interface ExchangeState {
  readonly stream: GroupResponseStream;
  readonly echoed: Set<string>;
}

/** A request as sent: what to repeat it from, and its call's state. */
interface SentRequest {
  readonly plain: CoapMessage;
  readonly security: GroupRequest['security'];
  readonly state: ExchangeState;
}

export class GroupClient {
  readonly #transport: DatagramTransport;
  readonly #scheduler: Scheduler;
  readonly #random: RandomSource;
  readonly #messaging: MessageLayer;
  readonly #matcher = new TokenMatcher();
  readonly #streams = new Set<GroupResponseStream>();

  constructor(options: GroupClientOptions) {
    this.#transport = options.transport;
    this.#scheduler = options.scheduler ?? new RealScheduler();
    this.#random = options.random ?? defaultRandom;
    this.#messaging = new MessageLayer({
      parameters: withDefaults(),
      scheduler: this.#scheduler,
      random: this.#random,
      send: (data, peer) => this.#transport.send(data, peer),
      events: {
        // A client serves nothing: a request gets RST (CON) or is dropped (NON).
        onRequest: (_request, inbound) => this.#messaging.reject(inbound),
        onSeparateResponse: (response, inbound) => this.#matcher.match(response, inbound.peer),
      },
    });
    this.#transport.setHandler((data, peer) => this.#messaging.receive(data, peer));
    this.#transport.setBusy?.(false);
  }

  /** Sends one NON request and yields the responses of every server until `timeout`. */
  request(request: GroupRequest): GroupResponseStream {
    const stream = this.#start(request, false);
    const timer = this.#scheduler.schedule(request.timeout ?? 5000, () => stream.cancel());
    stream.onEnd(() => timer.cancel());
    return stream;
  }

  /**
   * Observe of a group (§3.7): a GET with Observe 0 to the group; every server's first response and
   * notifications, until cancel() (later notifications are then rejected with RST, which ends the
   * observation at each server, RFC 7641 §3.6) or the signal aborts.
   */
  observe(request: Omit<GroupRequest, 'timeout'>): GroupResponseStream {
    return this.#start({ ...request, options: [...(request.options ?? []), { number: OptionNumber.Observe, value: encodeUint(0) }] }, true);
  }

  get pendingRequests(): number {
    return this.#matcher.size;
  }

  async close(): Promise<void> {
    for (const stream of [...this.#streams]) stream.cancel();
    this.#messaging.close();
    await this.#transport.close();
  }

  #start(request: GroupRequest, observe: boolean): GroupResponseStream {
    if ((request as { confirmable?: boolean }).confirmable === true) throw new RangeError('a request to a group must be Non-confirmable (RFC 7252 §8.1)');
    const uri = parseCoapUri(request.uri);
    if (uri.scheme !== 'coap') throw new RangeError(`group requests go over coap:// (UDP), not ${uri.scheme}://`);
    const destination: PeerAddress = { address: uri.host, port: uri.port };
    const method = request.method ?? Method.GET;
    if (observe && method !== Method.GET && method !== Method.FETCH) throw new RangeError('Observe of a group needs GET or FETCH (§3.7)');
    const options: CoapOption[] = [...uriToOptions(uri, uri.host, uri.port), ...(request.options ?? [])];
    const payload = typeof request.payload === 'string' ? new TextEncoder().encode(request.payload) : (request.payload ?? new Uint8Array(0));
    const plain = createMessage({ type: MessageType.NON, code: method, options, payload });
    const stream = new GroupResponseStream();
    this.#streams.add(stream);
    stream.onEnd(() => this.#streams.delete(stream));
    this.#transport.setBusy?.(true);
    stream.onEnd(() => {
      if (this.#streams.size === 0) this.#transport.setBusy?.(false);
    });
    this.#send(plain, destination, request.security, { stream, echoed: new Set() });
    if (request.signal !== undefined) {
      if (request.signal.aborted) stream.cancel();
      const abort = (): void => stream.cancel();
      request.signal.addEventListener('abort', abort, { once: true });
      stream.onEnd(() => request.signal!.removeEventListener('abort', abort));
    }
    return stream;
  }

  /** Sends `plain` (protected when `security` says so) under a fresh token whose responses go to the exchange's stream. */
  #send(plain: CoapMessage, destination: PeerAddress, security: GroupRequest['security'], exchangeOf: ExchangeState): void {
    const { stream } = exchangeOf;
    if (stream.ended) return;
    const token = this.#freshToken();
    const message: CoapMessage = { ...plain, token, options: [...plain.options] };
    let exchange: ProtectedGroupExchange | undefined;
    if (security !== undefined) exchange = protectForGroup(security.context, message, security.target ?? { mode: 'group' });
    const stop = this.#matcher.listen(token, (response, origin) => this.#receive(response, origin, exchange, { plain, security, state: exchangeOf }));
    stream.onEnd(stop);
    // §3.1.1 (RFC 7252 §8.1): requests to a group are NON; so is every request here.
    this.#messaging.sendNonConfirmable(exchange?.message ?? message, destination);
  }

  #receive(
    response: CoapMessage,
    origin: PeerAddress,
    exchange: ProtectedGroupExchange | undefined,
    request: SentRequest,
  ): boolean {
    const { stream } = request.state;
    if (stream.ended) return false;
    if (exchange === undefined) {
      stream.push({ origin, message: response, code: response.code, payload: response.payload, member: undefined });
      return true;
    }
    const verified = exchange.verify(response);
    if (!verified.ok) {
      // Not from a member, or not for this request: drop it silently (§7.4), and keep the reason.
      stream.refuse({ origin, reason: verified.reason });
      return true;
    }
    const echo = getOption(verified.message, OptionNumber.Echo);
    if (verified.message.code === ResponseCode.Unauthorized && echo !== undefined && !request.state.echoed.has(verified.member.senderId)) {
      // §9: this server's replay window for us is not valid yet (it joined or rebooted after us);
      // repeat the request to it alone with the Echo value, and collect that answer instead.
      this.#repeatWithEcho(request, origin, echo, verified.member.senderId);
      return true;
    }
    stream.push({ origin, message: verified.message, code: verified.message.code, payload: verified.message.payload, member: verified.member });
    return true;
  }

  #repeatWithEcho(request: SentRequest, origin: PeerAddress, echo: Uint8Array, senderId: string): void {
    // Once per server: a second challenge is its answer, not a reason to loop.
    request.state.echoed.add(senderId);
    const security = request.security!;
    const context = security.context;
    const plain: CoapMessage = { ...request.plain, options: [...request.plain.options] };
    addOption(plain, OptionNumber.Echo, echo);
    // To one server, the pairwise mode is the one meant for it (§8); the group mode where the group has no pairwise mode.
    const target: GroupRequestTarget = context.common.pairwiseMode ? { mode: 'pairwise', recipientId: Uint8Array.from(Buffer.from(senderId, 'hex')) } : { mode: 'group' };
    this.#send(plain, origin, { context, target }, request.state);
  }

  #freshToken(): Uint8Array {
    for (let attempt = 0; ; attempt += 1) {
      const token = this.#random.bytes(TOKEN_LENGTH);
      if (!this.#matcher.inUse(token)) return token;
      if (attempt > 16) throw new Error('no free token');
    }
  }
}

/** The destination of a request URI is a multicast group: the group client is the one to send it. */
export function isGroupUri(uri: string): boolean {
  try {
    return isMulticastAddress(parseCoapUri(uri).host);
  } catch {
    return false;
  }
}

export const describeOrigin = (response: Pick<GroupResponse, 'origin' | 'member'>): string =>
  response.member === undefined
    ? peerKey(response.origin)
    : `${peerKey(response.origin)} (${response.member.name ?? 'member'}, Sender ID ${response.member.senderId}, ${response.member.mode} mode)`;
