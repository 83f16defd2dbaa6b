/**
 * Client side of Observe (RFC 7641 §3) as an async iterator of notifications:
 * - the registration GET/FETCH carries Observe 0; its token stays registered for notifications;
 * - notifications older than the freshest so far are dropped by the §3.4 rule;
 * - a notification carrying only block 0 is completed with ordinary Block2 requests (RFC 7959 §2.6);
 * - when Max-Age runs out with no newer notification, the client re-registers with the same token
 *   (§3.3.1, after the recommended random 5–15 s);
 * - stopping the iteration cancels actively: a GET with Observe 1 and the same token (§3.6); any
 *   notification after that is rejected with RST.
 * A 2.xx response without Observe (the server declined) or any non-2.xx response ends it.
 *
 * The registration and its notifications are one response stream of the exchange layer
 * (exchange/response-stream.ts): this class iterates it, verifies and orders what it yields, and
 * ends it (dropping the token) when the observation ends. Over a reliable transport (RFC 8323 §7)
 * notifications are neither CON nor NON, arrive in order (the Observe value is ignored, §7.1), the
 * connection's keep-alive Ping replaces re-registration (§7.3), and a connection that closes ends
 * the observation with a SessionError (§7.4) — or, with `reregisterOnClose`, registers again on a
 * new connection, a bounded number of times.
 *
 * With end-to-end security (OSCORE), the response to a registration that fails verification — an
 * unprotected error such as 4.01 "Security context not found", a 4.02 from a server without
 * OSCORE, a proxy's 5.04 — ends the observation with that error, as a plain request would fail
 * (securedSender); a later notification that fails verification is only dropped (RFC 8613 §8.4.2).
 * A 4.01 with Echo (RFC 9175 §2.4; after a server restart, RFC 8613 Appendix B.1.2) or an
 * Appendix B.2 response #1 is answered, once per registration, by registering again.
 */
import { codeClass, codeToString } from '../coap/codes.js';
import { encodeUint, getOption, getUintOption, maxAgeOf, setOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { EndpointContext } from '../exchange/context.js';
import type { CoapEndpoint, ReceivedResponse } from '../exchange/endpoint.js';
import { SessionError } from '../exchange/errors.js';
import type { ResponseStream, StreamResponse } from '../exchange/response-stream.js';
import { isNewerNotification } from '../exchange/observe-freshness.js';
import type { PeerAddress } from '../transport/transport.js';
import type { Timer } from '../util/scheduler.js';
import { continueBlock2, type BlockwiseOptions } from './blockwise.js';
import { PLAIN, VerificationError, securedSender, withEchoRetry, type MessageSecurity, type ProtectedRequest } from './security.js';
import { responseKidContext } from '../oscore/rederivation.js';
import { echoChallengeRetry, isRederivationChallenge } from '../oscore/requester.js';
import { toClientResponse, type ClientResponse } from './client.js';

export interface ObservationSettings {
  /** Extra wait after Max-Age before re-registering, ms. Default: uniform 5–15 s (§3.3.1). */
  reregisterDelay?: () => number;
  /** Notifications kept while the consumer is busy; the oldest are dropped beyond it. Default 64. */
  maxQueued?: number;
  timeout?: number;
  /** This token (0..8 bytes) for the registration and its notifications instead of a fresh random one. */
  token?: Uint8Array;
  /** The observation ends after this many notifications (the registration's response included). Default: no limit. */
  maxNotifications?: number;
  /** The observation ends this many ms after it began (failing with TimeoutError if nothing came). Default: no limit. */
  duration?: number;
  /**
   * Over a reliable transport (coap+tcp, coap+ws, ...): when the connection closes, register again
   * on a new connection up to this many times in a row before ending with the SessionError (RFC
   * 8323 §7.4 ends the observation with its connection). Default 0.
   */
  reregisterOnClose?: number;
}

export class Observation implements AsyncIterableIterator<ClientResponse> {
  private readonly queue: ClientResponse[] = [];
  private waiter: { resolve: (r: IteratorResult<ClientResponse>) => void; reject: (e: Error) => void } | undefined;
  private ended = false;
  private failure: Error | undefined;
  private freshest: { value: number; at: number } | undefined;
  /** Bumped per accepted notification, so a slow block-wise completion of an older one is discarded. */
  private generation = 0;
  private reregisterTimer: Timer | undefined;
  /** The registration's responses and notifications: the exchange layer's response stream under `token`. */
  private stream: ResponseStream;
  /** Re-registrations after a closed connection left (reregisterOnClose). */
  private renewalsLeft: number;
  private registeredFlag = false;
  private cancelling: Promise<void> | undefined;
  private readonly token: Uint8Array;
  /** The latest registration as sent: notifications are verified against it. */
  private current: ProtectedRequest | undefined;
  /** Whether the latest registration already answers a challenge (Echo or B.2): at most one retry. */
  private currentIsRetry = false;

  constructor(
    private readonly endpoint: CoapEndpoint,
    private readonly peer: PeerAddress,
    /** The registration request; Observe is set to 0 here. */
    private readonly template: CoapMessage,
    private readonly blockwise: BlockwiseOptions,
    private readonly settings: ObservationSettings = {},
    private readonly security: MessageSecurity = PLAIN,
  ) {
    this.token = settings.token ?? endpoint.newToken();
    this.renewalsLeft = settings.reregisterOnClose ?? 0;
    setOption(template, OptionNumber.Observe, encodeUint(0));
    this.stream = this.openStream();
    this.register();
  }

  private openStream(): ResponseStream {
    const stream = this.endpoint.openStream(this.peer, {
      token: this.token,
      maxResponses: this.settings.maxNotifications ?? Infinity,
      ...(this.settings.duration !== undefined ? { lifetime: this.settings.duration } : {}),
      maxQueued: this.settings.maxQueued ?? 64,
    });
    this.consume(stream);
    return stream;
  }

  /**
   * Takes the stream's responses as they arrive (StreamConsumer): §3.4 freshness is judged on
   * arrival, and a notification after the end is rejected within its datagram's callback. The
   * stream's end (or error) ends the observation, unless it is renewed on a new connection.
   */
  private consume(stream: ResponseStream): void {
    stream.consume({
      onResponse: (item) => {
        if (stream === this.stream) this.onNotification(item);
      },
      onEnd: (error) => {
        if (stream !== this.stream) return;
        if (error === undefined) return this.end();
        if (error instanceof SessionError && this.renewalsLeft > 0 && this.registeredFlag && !this.ended && this.endpoint.carrier.reliable) {
          // The connection closed (RFC 8323 §7.4): register again on a new one, as asked.
          this.renewalsLeft--;
          this.freshest = undefined;
          this.currentIsRetry = false;
          this.stream = this.openStream();
          this.register();
          return;
        }
        this.fail(error);
      },
    });
  }

  /** True once the server confirmed the registration with an Observe option. */
  get registered(): boolean {
    return this.registeredFlag;
  }

  /** The response reaches onNotification through the token listener, in arrival order. */
  private register(echo?: Uint8Array): void {
    const message = cloneMessage(this.template);
    if (echo !== undefined) setOption(message, OptionNumber.Echo, echo);
    // Every registration is a new request: with OSCORE a new Partial IV, to which the following
    // notifications are bound (RFC 8613 §4.1.3.5.1).
    const registration = this.security.protect(message);
    this.current = registration;
    try {
      this.stream.send(registration.message, this.settings.timeout !== undefined ? { responseTimeout: this.settings.timeout } : {});
    } catch (error) {
      this.fail(error as Error);
    }
  }

  /**
   * A challenge to the current registration, answered by registering again (once): a 4.01 with
   * Echo (RFC 9175 §2.4; RFC 8613 B.1.2), or B.2 response #1 — a verified 4.01 whose OSCORE option
   * carries a 'kid context', after which the security layer protects with the third context.
   */
  private answersChallenge(message: CoapMessage, received: CoapMessage): boolean {
    if (this.currentIsRetry) return false;
    // The same rules as every other request's (oscore/requester.ts): an Echo value, or the same
    // registration once more under the third B.2 context.
    const echoed = echoChallengeRetry(this.template, message);
    if (echoed === undefined && !isRederivationChallenge(message, received)) return false;
    this.currentIsRetry = true;
    this.register(echoed === undefined ? undefined : getOption(echoed, OptionNumber.Echo));
    return true;
  }

  /** One response of the stream: the registration's, or a notification. */
  private onNotification(item: StreamResponse): void {
    if (this.ended) return;
    const received = item.message;
    const receivedContext: EndpointContext = item.context;
    // Only Appendix B.2 response #1 carries a 'kid context' in a response: the single response to
    // a registration, never a notification.
    const verified = this.current?.verify(received, responseKidContext(received) === undefined);
    // A notification that fails verification is dropped; it does not end the observation (RFC 8613
    // §8.4.2). The current registration's own response failing it does.
    if (verified instanceof Error && this.current !== undefined && item.answers === this.current.message) {
      this.fail(new VerificationError(`response discarded: ${verified.message} (${codeToString(received.code)} from ${receivedContext.peerKey})`));
      return;
    }
    if (!this.current || verified instanceof Error || verified === undefined) return;
    const message = verified;
    const context = this.current.describe(receivedContext);
    const sequence = getUintOption(message, OptionNumber.Observe);
    if (codeClass(message.code) !== 2 || sequence === undefined) {
      if (this.answersChallenge(message, received)) return;
      // Not (or no longer) observing: deliver this final response and end (§3.2, §4.1).
      this.finishWith({ message, context });
      return;
    }
    const now = this.endpoint.scheduler.now();
    // RFC 8323 §7.1: over a reliable transport notifications arrive in order and the Observe value
    // MUST be ignored on reception; over UDP, §3.4 of RFC 7641 drops the older ones.
    const ordered = this.current.ordersNotifications || this.endpoint.carrier.reliable;
    if (!ordered && this.freshest && !isNewerNotification(this.freshest.value, this.freshest.at, sequence, now)) {
      return; // §3.4: older than what we have; acknowledged but not delivered
    }
    this.freshest = { value: sequence, at: now };
    this.registeredFlag = true;
    this.currentIsRetry = false;
    const generation = ++this.generation;
    this.armReregistration(message);
    const block2 = getOption(message, OptionNumber.Block2);
    if (block2 === undefined || (block2[block2.length - 1]! & 0x08) === 0) {
      this.push(toClientResponse(message, context, message !== received ? received : undefined));
      return;
    }
    // Only block 0 came with the notification; fetch the rest as plain GETs (RFC 7959 §2.6).
    continueBlock2(withEchoRetry(securedSender(this.endpoint, this.peer, this.security)), this.template, { message, context }, this.blockwise).then(
      (whole) => {
        if (generation === this.generation && !this.ended) this.push(toClientResponse(whole.message, whole.context));
      },
      (error: unknown) => this.fail(error as Error),
    );
  }

  private armReregistration(message: CoapMessage): void {
    this.reregisterTimer?.cancel();
    // RFC 8323 §7.3: over a reliable transport the connection's keep-alive Ping checks the
    // observation's health; a new GET per observation is not needed.
    if (this.endpoint.carrier.reliable) return;
    const extra = this.settings.reregisterDelay?.() ?? 5000 + Math.random() * 10_000;
    this.reregisterTimer = this.endpoint.scheduler.schedule(maxAgeOf(message) * 1000 + extra, () => {
      // Max-Age ran out with nothing newer: renew the registration with the same token (§3.3.1).
      if (!this.ended) this.register();
    });
  }

  private push(response: ClientResponse): void {
    if (this.waiter) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve({ value: response, done: false });
      return;
    }
    this.queue.push(response);
    const max = this.settings.maxQueued ?? 64;
    while (this.queue.length > max) this.queue.shift();
  }

  private finishWith(last: ReceivedResponse): void {
    this.push(toClientResponse(last.message, last.context));
    this.end();
  }

  private fail(error: Error): void {
    if (this.ended) return;
    this.failure = error;
    this.end();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.reregisterTimer?.cancel();
    this.stream.close();
    if (this.waiter && this.queue.length === 0) {
      const { resolve, reject } = this.waiter;
      this.waiter = undefined;
      if (this.failure) reject(this.failure);
      else resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<ClientResponse>> {
    const value = this.queue.shift();
    if (value) return Promise.resolve({ value, done: false });
    if (this.ended) return this.failure ? Promise.reject(this.failure) : Promise.resolve({ value: undefined, done: true });
    if (this.waiter) return Promise.reject(new Error('next() called again before the previous call settled'));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** Stopping the iteration (break, return) cancels the observation actively. */
  async return(): Promise<IteratorResult<ClientResponse>> {
    await this.cancel();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /**
   * Deregisters with a GET carrying Observe 1 and the registration's token (§3.6), then ends the
   * iteration. Resolves once the server answered or the attempt timed out.
   */
  cancel(): Promise<void> {
    if (this.cancelling) return this.cancelling;
    const wasRegistered = this.registeredFlag && !this.ended;
    this.end();
    this.queue.length = 0;
    if (!wasRegistered) return (this.cancelling = Promise.resolve());
    const deregister = cloneMessage(this.template);
    setOption(deregister, OptionNumber.Observe, encodeUint(1));
    this.cancelling = this.endpoint
      .request(this.security.protect(deregister).message, this.peer, { token: this.token, ...(this.settings.timeout !== undefined ? { responseTimeout: this.settings.timeout } : {}) })
      // On failure the server still forgets us: our RST answers its next notification (§3.6).
      .then(
        () => undefined,
        () => undefined,
      );
    return this.cancelling;
  }

  /**
   * Ends the observation with `deregistration` as its §3.6 cancellation (Observe 1 set here),
   * protected with this observation's security and sent with its token. For a proxy passing on a
   * client's own deregistration: with end-to-end OSCORE that is a new request (new Partial IV) the
   * proxy cannot produce itself. Resolves with the response, verified as cancel() would not.
   */
  async cancelWith(deregistration: CoapMessage): Promise<CoapMessage | Error> {
    this.end();
    this.queue.length = 0;
    const request = cloneMessage(deregistration);
    setOption(request, OptionNumber.Observe, encodeUint(1));
    const protectedRequest = this.security.protect(request);
    const sent = this.endpoint.request(protectedRequest.message, this.peer, { token: this.token, ...(this.settings.timeout !== undefined ? { responseTimeout: this.settings.timeout } : {}) });
    this.cancelling ??= sent.then(
      () => undefined,
      () => undefined,
    );
    const { message } = await sent;
    return protectedRequest.verify(message, false);
  }
}

function cloneMessage(message: CoapMessage): CoapMessage {
  return { ...message, options: message.options.slice() };
}
