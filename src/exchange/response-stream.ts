/**
 * A request's responses as a stream: the one result type of the exchange layer. A plain request
 * is a stream that ends after its first response (`first()`, what CoapEndpoint.request returns);
 * an observation is a stream of notifications (RFC 7641) that ends on deregistration, an error or
 * a closed connection (RFC 8323 §7.4); a group request is a stream of answers from many members,
 * accepted by a matcher other than token + peer (exchange/matcher.ts).
 *
 * Every stream is bounded: at most `maxResponses` responses, for at most `lifetime` ms, with at
 * most `maxQueued` responses held for a slow consumer. Stopping the iteration (break, return())
 * drops its state at once: the token listener, a request still waiting, the queue, the timer.
 */
import type { CoapMessage } from '../coap/message.js';
import type { PeerAddress } from '../transport/transport.js';
import type { Scheduler, Timer } from '../util/scheduler.js';
import type { EndpointContext } from './context.js';
import type { ReceivedResponse, RequestOptions, ResponseHandler } from './endpoint.js';
import { CancelledError, TimeoutError } from './errors.js';
import { tokenAndPeer, type PeerRef, type ResponseMatcher } from './matcher.js';

export interface StreamOptions {
  /** Which responses belong to the stream once the token matched. Default: token and peer (RFC 7252 §5.3.2). */
  matcher?: ResponseMatcher;
  /** The stream ends after this many responses. Default 1 (a plain request); Infinity for an observation. */
  maxResponses?: number;
  /**
   * The stream ends this many ms after it opened; if no response came by then, it fails with a
   * TimeoutError. Default: no limit beyond the requests' own timeouts.
   */
  lifetime?: number;
  /** Responses held while the consumer is busy; the oldest are dropped beyond it. Default 64. */
  maxQueued?: number;
}

/** One response of a stream. */
export interface StreamResponse extends ReceivedResponse {
  /**
   * The request this response answered (the one waiting under the token when it arrived), or
   * undefined for a later response under the same token: a notification, another member's answer.
   */
  readonly answers: CoapMessage | undefined;
}

/** What a stream needs of its endpoint (CoapEndpoint implements it privately). */
export interface StreamHost {
  readonly scheduler: Scheduler;
  /** Sends under `token` with `matcher`, whatever `options` say of either. */
  send(message: CoapMessage, peer: PeerAddress, options: RequestOptions, handler: ResponseHandler, token: Uint8Array, matcher: ResponseMatcher): void;
  /** Registers `stream` for every response under its token; returns the function that unregisters it. */
  listen(stream: ResponseStream): () => void;
  /** Drops the request waiting under `token`, if any, without reporting to its handler. */
  abandon(token: Uint8Array): void;
}

/**
 * A consumer that takes each response within the callback of the datagram (or frame) that brought
 * it, instead of pulling with next(): for a consumer whose rules depend on arrival (RFC 7641 §3.4
 * judges freshness by arrival time) or that must answer before the next message is read. The push
 * form of the stream, as CoapEndpoint.send is the push form of request().
 */
export interface StreamConsumer {
  onResponse(response: StreamResponse): void;
  /** The stream ended: `error` says why, undefined for an orderly end (its limit, lifetime with responses, close). */
  onEnd(error: Error | undefined): void;
}

interface Waiter {
  resolve(result: IteratorResult<StreamResponse>): void;
  reject(error: Error): void;
}

export class ResponseStream implements AsyncIterableIterator<StreamResponse>, ResponseHandler, PeerRef {
  readonly matcher: ResponseMatcher;
  readonly peerKey: string;
  private readonly maxResponses: number;
  private readonly maxQueued: number;
  private readonly queue: StreamResponse[] = [];
  private waiter: Waiter | undefined;
  private received = 0;
  private endedFlag = false;
  private failure: Error | undefined;
  private unlisten: (() => void) | undefined;
  private lifetimeTimer: Timer | undefined;
  /** Requests sent on this stream whose response (or error) is still to come. */
  private sending = 0;
  private consumer: StreamConsumer | undefined;

  constructor(
    private readonly host: StreamHost,
    readonly token: Uint8Array,
    readonly peer: PeerAddress,
    peerKey: string,
    options: StreamOptions = {},
  ) {
    this.peerKey = peerKey;
    this.matcher = options.matcher ?? tokenAndPeer;
    this.maxResponses = options.maxResponses ?? 1;
    this.maxQueued = options.maxQueued ?? 64;
    if (!(this.maxResponses >= 1)) throw new RangeError('maxResponses must be at least 1');
    // One response is the request's own answer, which its handler hears: no listener needed.
    if (this.maxResponses > 1) this.unlisten = host.listen(this);
    if (options.lifetime !== undefined) {
      const lifetime = options.lifetime;
      this.lifetimeTimer = host.scheduler.schedule(lifetime, () => {
        if (this.received === 0) this.fail(new TimeoutError(`no response from ${this.peerKey} within ${Math.round(lifetime)} ms`));
        else this.finish();
      });
    }
  }

  /** True once the stream ended (its limit, lifetime, an error, close or return()). */
  get ended(): boolean {
    return this.endedFlag;
  }

  /** Whether a request sent on this stream still waits for its response. */
  get waiting(): boolean {
    return this.sending > 0;
  }

  /**
   * Sends a request under the stream's token (the first one, or a re-registration of an
   * observation, RFC 7641 §3.3.1). Its response joins the stream; its failure ends the stream.
   */
  send(message: CoapMessage, options: RequestOptions = {}): void {
    if (this.endedFlag) throw new CancelledError('the response stream has ended');
    this.sending++;
    this.host.send(message, this.peer, options, this, this.token, this.matcher);
  }

  // --- ResponseHandler: the outcome of each request sent on the stream ------------------------

  onResponse(response: ReceivedResponse): void {
    this.sending--;
    // With a listener, the response already came through accept(), in arrival order.
    if (this.unlisten === undefined) this.push({ message: response.message, context: response.context, answers: response.message, ...(response.wire ? { wire: response.wire } : {}) });
  }

  onError(error: Error): void {
    this.sending--;
    this.fail(error);
  }

  // --- from the endpoint ------------------------------------------------------------------

  /** A response under the stream's token that the matcher let through; false once ended (over UDP: RST). */
  accept(message: CoapMessage, context: EndpointContext, answers: CoapMessage | undefined): boolean {
    if (this.endedFlag) return false;
    this.push({ message, context, answers });
    return true;
  }

  /** The connection the stream lives on closed (RFC 8323 §7.4): the stream ends with `error`. */
  peerClosed(error: Error): void {
    this.fail(error);
  }

  /** The endpoint closed: the stream ends without error. */
  endpointClosed(): void {
    this.finish();
  }

  // --- the consumer's side ----------------------------------------------------------------

  /** Hands every response to `consumer` as it arrives (see StreamConsumer), the queued ones first. */
  consume(consumer: StreamConsumer): void {
    if (this.consumer || this.waiter) throw new Error('the response stream already has a consumer');
    this.consumer = consumer;
    for (const item of this.queue.splice(0)) consumer.onResponse(item);
    if (this.endedFlag) consumer.onEnd(this.failure);
  }

  /** The first response, ending the stream (a plain request). */
  first(): Promise<StreamResponse> {
    const head = this.queue.shift();
    if (head) {
      this.close();
      return Promise.resolve(head);
    }
    if (this.endedFlag) return Promise.reject(this.failure ?? new CancelledError('the response stream ended without a response'));
    return new Promise<StreamResponse>((resolve, reject) => {
      this.waiter = {
        resolve: (result) => {
          this.close();
          if (result.done) reject(this.failure ?? new CancelledError('the response stream ended without a response'));
          else resolve(result.value);
        },
        reject,
      };
    });
  }

  next(): Promise<IteratorResult<StreamResponse>> {
    const value = this.queue.shift();
    if (value) return Promise.resolve({ value, done: false });
    if (this.endedFlag) return this.failure ? Promise.reject(this.failure) : Promise.resolve({ value: undefined, done: true });
    if (this.waiter) return Promise.reject(new Error('next() called again before the previous call settled'));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** Stopping the iteration drops the stream's state (listener, waiting request, queue, timer). */
  async return(): Promise<IteratorResult<StreamResponse>> {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Ends the stream now, dropping what it holds; a consumer waiting in next() sees its end. */
  close(): void {
    this.queue.length = 0;
    this.finish();
  }

  // --- internals --------------------------------------------------------------------------

  private push(item: StreamResponse): void {
    if (this.endedFlag) return;
    this.received++;
    const waiter = this.waiter;
    if (this.consumer) {
      this.consumer.onResponse(item);
    } else if (waiter) {
      this.waiter = undefined;
      waiter.resolve({ value: item, done: false });
    } else {
      this.queue.push(item);
      if (this.queue.length > this.maxQueued) this.queue.shift();
    }
    if (this.received >= this.maxResponses) this.finish();
  }

  private fail(error: Error): void {
    if (this.endedFlag) return;
    this.failure = error;
    this.finish();
  }

  private finish(): void {
    if (this.endedFlag) return;
    this.endedFlag = true;
    this.lifetimeTimer?.cancel();
    this.unlisten?.();
    if (this.sending > 0) this.host.abandon(this.token);
    this.consumer?.onEnd(this.failure);
    const waiter = this.waiter;
    if (waiter && this.queue.length === 0) {
      this.waiter = undefined;
      if (this.failure) waiter.reject(this.failure);
      else waiter.resolve({ value: undefined, done: true });
    }
  }
}
