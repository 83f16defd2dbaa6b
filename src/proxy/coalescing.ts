/**
 * Request coalescing for a caching proxy: concurrent cache misses for one cache key wait for one
 * upstream request instead of each sending their own (one origin request per freshness period,
 * however many clients ask at once).
 *
 * Only a response that is fresh on arrival may answer the requests that waited for it (RFC 7252
 * §5.6.1: a response with Max-Age 0 cannot be reused; as RFC 9111 §4 has it for collapsed HTTP
 * requests). A resource whose responses are never fresh (Max-Age 0, OSCORE-protected other than
 * to Deterministic Requests, an uncacheable code) gains nothing from coalescing: every waiter goes upstream on its own afterwards.
 * So, as HTTP caches do with "hit-for-pass", once such a response came back for a key, later misses
 * on that key go straight upstream for a while, without the bookkeeping of the shared request (a
 * promise, a Map entry and its removal per miss). Passing never serves anything: each passing miss
 * gets its own upstream response. It ends as soon as a fresh response arrives for the key (the
 * cache stores it, and the next misses coalesce again), or `passFor` milliseconds (default PASS_FOR)
 * after the last response that could not be shared.
 */
import { getOption, maxAgeOf, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { isCacheableResponseCode } from './cache.js';
import { isDeterministicRequest } from './protected-cache.js';

/** How long misses on a key pass after the last response for it that could not be shared (ms), by default. */
export const PASS_FOR = 5_000;
/** Keys remembered as passing at most; beyond, the memory starts over (coalescing resumes, never wrong). */
const MAX_PASSING = 4096;

/** The lead request's end: the upstream response, or undefined when there is none to share (an error of the proxy's own). */
export type SettleMiss = (response: CoapMessage | undefined) => void;

export class MissCoalescer {
  /** Upstream requests in flight per cache key; each resolves with a response waiters may share, or undefined. */
  private readonly inflight = new Map<string, Promise<CoapMessage | undefined>>();
  /** Keys whose misses pass, with the time until when. */
  private readonly passing = new Map<string, number>();

  /** `passFor`: ms a key passes after its last unshareable response; 0 never passes (every miss coalesces). */
  constructor(
    private readonly now: () => number,
    private readonly passFor = PASS_FOR,
  ) {
    if (!(passFor >= 0)) throw new RangeError('passFor must be a non-negative number of milliseconds');
  }

  /** Whether a miss on `key` goes straight upstream (hit-for-pass), without joining or leading a shared request. */
  passes(key: string): boolean {
    const until = this.passing.get(key);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.passing.delete(key);
    return false;
  }

  /** The shared upstream request a miss on `key` may wait for (its response, if shareable), or undefined. */
  waitingFor(key: string): Promise<CoapMessage | undefined> | undefined {
    return this.inflight.get(key);
  }

  /**
   * Makes this miss the one whose upstream request others wait for. The returned function must be
   * called once with the upstream response, or with undefined when the request failed.
   */
  lead(key: string, request?: CoapMessage): SettleMiss {
    let resolve!: (response: CoapMessage | undefined) => void;
    const shared = new Promise<CoapMessage | undefined>((r) => (resolve = r));
    this.inflight.set(key, shared);
    return (response) => {
      if (this.inflight.get(key) === shared) this.inflight.delete(key);
      resolve(response !== undefined && this.learn(key, response, request) ? response : undefined);
    };
  }

  /**
   * Learns from an upstream response for `key` whether the next misses should coalesce; returns
   * whether it may answer other requests. A passing miss reports its response here too, which is
   * how a resource that starts sending fresh responses ends its passing. `request`: the miss's
   * request, which says whether a protected response may be shared (a Deterministic Request's).
   */
  learn(key: string, response: CoapMessage, request?: CoapMessage): boolean {
    if (isShareable(response, request !== undefined && isDeterministicRequest(request))) {
      if (this.passing.size > 0) this.passing.delete(key);
      return true;
    }
    if (this.passFor === 0) return false;
    if (this.passing.size >= MAX_PASSING) this.passing.clear();
    this.passing.set(key, this.now() + this.passFor);
    return false;
  }
}

/**
 * Whether a response may answer another client's identical request (the cache would store it
 * too). A response with OSCORE may only when the misses were Deterministic Requests (`protectedShareable`,
 * protected-cache.ts): their protected response is the same for every member of the group.
 */
function isShareable(response: CoapMessage, protectedShareable: boolean): boolean {
  return isCacheableResponseCode(response.code) && maxAgeOf(response) > 0 && (protectedShareable || getOption(response, OptionNumber.Oscore) === undefined);
}
