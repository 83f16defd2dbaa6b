/**
 * The two ends of a Deterministic Request exchange (draft-ietf-core-cacheable-oscore §3.4), on top
 * of the request transform in deterministic.ts: the server's recognition of the request (§3.4.3
 * step 2) and its cacheable response (§3.4.4, group mode, Request-Hash as Class I, outer 2.05 and
 * Max-Age), and the client's `DeterministicRequester`, which protects requests as the group's
 * Deterministic Client and verifies every response — the server's kid, the Request-Hash binding,
 * the countersignature, and the two freshness statements §6 leaves a client (a response is newer
 * than one from the same server with a smaller Partial IV; and it is what that server said no
 * longer ago than its inner Max-Age, counted from when this client first received it).
 *
 * Sans-IO: the clock is injected; nothing here sends a message.
 */
import { Method, ResponseCode } from '../coap/codes.js';
import { getOption, getUintOption, sortOptions, type CoapMessage } from '../coap/message.js';
import { defaultClassOf } from '../oscore/protect.js';
import { OptionNumber } from '../coap/options.js';
import { toHex } from '../cose/cbor.js';
import { OscoreConfigError } from '../oscore/errors.js';
import type { GroupSecurityContext } from './context.js';
import { type DeterministicClient, REQUEST_HASH_OPTION, protectDeterministicRequest } from './deterministic.js';
import type { GroupOscoreOptionValue } from './option.js';
import { type GroupRequestBinding, protectGroupResponse, unprotectGroupResponse } from './protect.js';

/** RFC 7252 §5.10.5: the Max-Age of a response without one. */
const DEFAULT_MAX_AGE = 60;
/** Freshness records a requester keeps (one per request and server); the oldest goes first. */
const DEFAULT_MAX_TRACKED = 1024;

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/**
 * §3.4.3 step 2: the group context and Deterministic Client a request is for, when its 'kid' is
 * the Deterministic Client's Sender ID of the group its 'kid context' names and it carries a
 * Request-Hash; otherwise undefined (the request is processed as any other, §8.4 of Group OSCORE).
 */
export function deterministicClientFor(
  request: CoapMessage,
  option: GroupOscoreOptionValue,
  findByGid: (gid: Uint8Array) => GroupSecurityContext | undefined,
): { context: GroupSecurityContext; client: DeterministicClient } | undefined {
  if (option.group || option.kid === undefined || option.kidContext === undefined) return undefined;
  if (getOption(request, REQUEST_HASH_OPTION) === undefined) return undefined;
  const context = findByGid(option.kidContext);
  const client = context?.input.deterministicClient;
  if (context === undefined || client === undefined || !sameBytes(client.senderId, option.kid)) return undefined;
  return { context, client };
}

/**
 * §3.4.4 steps 1–9: the response to a Deterministic Request, protected so that any proxy may cache
 * it and every client of the group may verify it: group mode (the pairwise key of the
 * Deterministic Client is everyone's, only a signature authenticates the server), a fresh Partial
 * IV (the request had no replay check), the Request-Hash as a Class I option elided from the wire,
 * outer code 2.05 and outer Max-Age equal to the inner one (default 60).
 */
export function protectDeterministicResponse(
  response: CoapMessage,
  context: GroupSecurityContext,
  binding: GroupRequestBinding,
  requestHash: Uint8Array,
  options: { innerObserveOnly?: boolean } = {},
): CoapMessage {
  const innerMaxAge = getUintOption(response, OptionNumber.MaxAge);
  // Step 1: an inner Max-Age 0 is not allowed. A resource that says "do not reuse" keeps that
  // meaning on the outer Max-Age (0: no cache stores it), and the inner one is dropped.
  const kept = response.options.filter((o) => o.number !== REQUEST_HASH_OPTION && !(innerMaxAge === 0 && o.number === OptionNumber.MaxAge));
  kept.push({ number: REQUEST_HASH_OPTION, value: requestHash }); // step 2
  // Steps 3 and 8: to a request with an Inner Observe and no Outer one, an observable resource's
  // response carries an Inner Observe (empty, as a notification's, RFC 8613 §4.1.3.5.2) and no Outer one.
  const innerObserveOnly = options.innerObserveOnly === true && !kept.some((o) => o.number === OptionNumber.Observe);
  if (innerObserveOnly) kept.push({ number: OptionNumber.Observe, value: new Uint8Array(0) });
  return protectGroupResponse({ ...response, options: kept }, context, binding, {
    mode: 'group', // step 4
    freshPartialIv: true, // step 5
    classIOptions: [REQUEST_HASH_OPTION], // steps 4 and 7: Class I, then elided
    outerCode: ResponseCode.Content, // step 6
    outerMaxAge: innerMaxAge ?? DEFAULT_MAX_AGE, // step 9
    ...(innerObserveOnly ? { classOf: (n: number, m: CoapMessage) => (n === OptionNumber.Observe ? 'E' : defaultClassOf(n, m)) } : {}),
  });
}

export interface DeterministicRequesterOptions {
  /** Milliseconds, any monotonic clock; default Date.now. */
  now?: () => number;
  /** Freshness records kept at most (default 1024). */
  maxTracked?: number;
  /**
   * §3.1: every request carries an Inner Observe 0, so that observers and plain readers of a
   * resource send one Deterministic Request (one cache entry at a proxy). Default false (as the
   * requests of Appendix F); an observation's requests carry it anyway.
   */
  innerObserve?: boolean;
  /** Appendix A: pad every request's plaintext to exactly this many bytes (a length the group agreed on). */
  padTo?: number;
}

export type VerifiedDeterministicResponse =
  | { ok: true; message: CoapMessage; kid: Uint8Array; sequenceNumber: number }
  | { ok: false; reason: string };

/** What this client last accepted from one server for one request (§6's freshness statements). */
interface Freshness {
  sequenceNumber: number;
  /** When this client first accepted that response, ms. */
  firstSeen: number;
  /** Its inner Max-Age, ms. */
  lifetime: number;
}

/** One Deterministic Request and what its responses are checked against. */
export class DeterministicExchange {
  constructor(
    private readonly requester: DeterministicRequester,
    readonly message: CoapMessage,
    readonly binding: GroupRequestBinding,
    readonly requestHash: Uint8Array,
  ) {}

  /** §3.4.4, client side. */
  verify(response: CoapMessage): VerifiedDeterministicResponse {
    if (getOption(response, OptionNumber.Oscore) === undefined) return { ok: false, reason: 'unprotected response to a Deterministic Request' };
    // Step 2: a Request-Hash in the response must be the request's; the Class I value is the request's anyway.
    const carried = getOption(response, REQUEST_HASH_OPTION);
    if (carried !== undefined && !sameBytes(carried, this.requestHash)) return { ok: false, reason: 'Request-Hash of the response is not the request\'s' };
    const outer = carried === undefined ? response : { ...response, options: response.options.filter((o) => o.number !== REQUEST_HASH_OPTION) };
    // Steps 1 and 3: the server's kid (the one it was sent to, when known), then group-mode verification.
    const result = unprotectGroupResponse(outer, this.requester.context, this.binding, { classIOptions: [{ number: REQUEST_HASH_OPTION, value: this.requestHash }], ignoreInnerObserve: true });
    if (!result.ok) return result;
    if (result.mode !== 'group' || result.sequenceNumber === undefined) return { ok: false, reason: 'response to a Deterministic Request not in the group mode with a Partial IV (§3.4.4 steps 4–5)' };
    const stale = this.requester.judgeFreshness(this.requestHash, result.kid, result.sequenceNumber, getUintOption(result.message, OptionNumber.MaxAge) ?? DEFAULT_MAX_AGE);
    if (stale !== undefined) return { ok: false, reason: stale };
    // Step 4: the Inner Observe is ignored (it is 0 in every request, §3.1). What observes is the
    // Outer Observe: a notification carries the sequence of whoever sent it (the server, or a
    // proxy's own per client, RFC 7641 §5); its order end to end is the Partial IV's, checked above.
    const outerObserve = getOption(this.message, OptionNumber.Observe) !== undefined ? getOption(response, OptionNumber.Observe) : undefined;
    const options = result.message.options.filter((o) => o.number !== REQUEST_HASH_OPTION && o.number !== OptionNumber.Observe);
    if (outerObserve !== undefined) options.push({ number: OptionNumber.Observe, value: outerObserve });
    const message = { ...result.message, options: sortOptions(options) };
    return { ok: true, message, kid: result.kid, sequenceNumber: result.sequenceNumber };
  }
}

/**
 * The client side of Deterministic Requests for one group member's context: it protects safe
 * requests as the group's Deterministic Client (§3.4.2) and remembers, per request and server,
 * the newest response it accepted, so a cache that serves an older or an expired one is caught.
 */
export class DeterministicRequester {
  readonly client: DeterministicClient;
  readonly #now: () => number;
  readonly #maxTracked: number;
  readonly #innerObserve: boolean;
  readonly #padTo: number | undefined;
  /** Insertion order is recency order: the first record goes when the map is full. */
  readonly #freshness = new Map<string, Freshness>();

  constructor(
    readonly context: GroupSecurityContext,
    options: DeterministicRequesterOptions = {},
  ) {
    const client = context.input.deterministicClient;
    if (client === undefined) throw new OscoreConfigError('the group has no Deterministic Client: the Group Manager names one (coapsec group deterministic)');
    this.client = client;
    this.#now = options.now ?? Date.now;
    this.#maxTracked = options.maxTracked ?? DEFAULT_MAX_TRACKED;
    this.#innerObserve = options.innerObserve ?? false;
    this.#padTo = options.padTo;
  }

  /**
   * §3.4.2 for `request` (GET or FETCH only: §3.4.3 serves nothing else). `server`: the Sender ID
   * of the one server it goes to, whose kid every response must carry (step 1); without it, any
   * group member may answer (§3.4.5).
   */
  protect(request: CoapMessage, server?: Uint8Array): DeterministicExchange {
    if (request.code !== Method.GET && request.code !== Method.FETCH) throw new OscoreConfigError('a Deterministic Request must be safe: GET or FETCH (cacheable-oscore §3.4.3)');
    const { message, binding, requestHash } = protectDeterministicRequest(request, this.context, this.client, { innerObserve: this.#innerObserve, ...(this.#padTo !== undefined ? { padTo: this.#padTo } : {}) });
    return new DeterministicExchange(this, message, server === undefined ? binding : { ...binding, pairwiseTo: Uint8Array.from(server) }, requestHash);
  }

  /** §6: undefined when the response may be accepted (and is remembered), else why it is stale. */
  judgeFreshness(requestHash: Uint8Array, kid: Uint8Array, sequenceNumber: number, maxAge: number): string | undefined {
    const key = `${toHex(requestHash)}/${toHex(kid)}`;
    const now = this.#now();
    const last = this.#freshness.get(key);
    if (last !== undefined) {
      if (sequenceNumber < last.sequenceNumber) return `stale response: older (Partial IV ${sequenceNumber}) than one already accepted from this server (Partial IV ${last.sequenceNumber})`;
      if (sequenceNumber === last.sequenceNumber) {
        if (now - last.firstSeen > last.lifetime) return `stale response: served ${Math.round((now - last.firstSeen) / 1000)} s after it was first received, past its Max-Age of ${last.lifetime / 1000} s`;
        return undefined;
      }
      this.#freshness.delete(key);
    } else if (this.#freshness.size >= this.#maxTracked) {
      this.#freshness.delete(this.#freshness.keys().next().value!);
    }
    this.#freshness.set(key, { sequenceNumber, firstSeen: now, lifetime: maxAge * 1000 });
    return undefined;
  }
}

