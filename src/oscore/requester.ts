/**
 * The OSCORE rules a requester keeps state for, written once for every path a request can take —
 * a plain request, an observation, each block of a block-wise transfer, each hop of a route
 * through OSCORE-capable proxies and a proxy's own upstream leg (the client and proxy wrap these
 * objects, and keep no rules of their own):
 *
 * - per security context (`OscoreRequester`): the Sender Sequence Number (through the context)
 *   and the Appendix B.2 re-derivation state — which context requests go out with while B.2 runs;
 * - per request (`OscoreExchange`): the request binding (§7.1) every response is verified against
 *   (§8.4), and for an Observe registration the Notification Number of §4.1.3.5.2/§7.4.1 with the
 *   "at most one response without Partial IV" rule of §8.4.2 (draft-ietf-core-oscore-capable-
 *   proxies §2.6.1 applies the same per layer);
 * - the challenges a verified response can pose: a 4.01 with Echo (`echoChallengeRetry`, RFC 9175
 *   §2.4; after a server restart, RFC 8613 Appendix B.1.2) or B.2 response #1
 *   (`isRederivationChallenge`), each answered by sending the request once more.
 *
 * Sans-IO: messages in, messages (or an Error saying why a response is discarded) out.
 */
import { ResponseCode, codeToString } from '../coap/codes.js';
import { getOption, printablePayload, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { protectRequest, unprotectResponse, type ClassOf, type RequestBinding } from './protect.js';
import { newB2Nonce, responseKidContext, secondIdContext, thirdIdContext, unwrapB2KidContext, wrapB2KidContext } from './rederivation.js';
import type { OscoreSecurityContext } from './security-context.js';
import { NotificationOrder } from './notification-order.js';

export { echoChallengeRetry } from './echo-challenge.js';

export interface OscoreRequesterOptions {
  /**
   * Appendix B.2 step 1 before the first request: "If the client does not have a valid security
   * context with the server, e.g., because of reboot or because this is the first time it contacts
   * the server". Needs `rederivation` on the context. Default false: a context with persistent
   * sequence numbers (Appendix B.1.1) stays valid across restarts.
   */
  rederiveOnStart?: boolean;
}

/**
 * §7.4: "Replay detected" means the server has already accepted this Partial IV from this sender —
 * for a request just numbered by our own counter, a second counter for the same sender context
 * was used somewhere. Say so, and how to recover without restarting the server.
 */
function replayHint(response: CoapMessage): string {
  if (response.code !== ResponseCode.Unauthorized || Buffer.from(response.payload).toString('latin1') !== 'Replay detected') return '';
  return (
    ' — the server has already accepted this sequence number from this sender context, so its Sender Sequence ' +
    'Number was also kept elsewhere (another sequence file or state directory, or another program); raise the ' +
    "context's counter above the other one's (docs/credentials.md, \"Recovering from Replay detected\"); the server needs no restart"
  );
}

/**
 * A key update that takes over a context's requests (KUDOS, src/kudos/client.ts): it protects them
 * with its own keys and sequence numbers, and holds them while an update runs (§4.3.7 of
 * draft-ietf-core-oscore-key-update).
 */
export interface RequesterKeyUpdate {
  protect(requester: OscoreRequester, request: CoapMessage, classOf?: ClassOf): OscoreExchange;
  /** Resolves when a request may go out, with the function to call when its exchange ends. */
  admit(): Promise<() => void>;
}

const admitted: Promise<() => void> = Promise.resolve(() => undefined);

/** Requests to one OSCORE peer (a server, or a proxy for its layer) through one security context. */
export class OscoreRequester {
  keyUpdate: RequesterKeyUpdate | undefined;
  #current: OscoreSecurityContext;
  /**
   * B.2: the context requests go out with while the protocol runs — the first (ID1 = R1, step 1)
   * or the third (ID3 = R2 || R3, step 3). It becomes current when a response to a request it
   * protected verifies (step 5); until then #current is kept.
   */
  #pending: OscoreSecurityContext | undefined;

  constructor(context: OscoreSecurityContext, options: OscoreRequesterOptions = {}) {
    this.#current = context;
    if (options.rederiveOnStart) this.rederive();
  }

  /** The security context in use with the peer (it changes when B.2 completes). */
  get context(): OscoreSecurityContext {
    return this.#current;
  }

  /** The ID Context the next request is protected with. */
  get nextIdContext(): Uint8Array | undefined {
    return (this.#pending ?? this.#current).idContext;
  }

  /** Whether Appendix B.2 runs: requests go out with a context that is not yet the current one. */
  get rederiving(): boolean {
    return this.#pending !== undefined;
  }

  /**
   * B.2 step 1: "generates a random string R1 and uses this as ID Context together with the input
   * parameters shared with the server to derive a first security context". The next request is
   * protected with it and carries R1 as 'kid context'.
   */
  rederive(): void {
    if (!this.#current.rederivation) throw new Error(`Appendix B.2 is not enabled for the OSCORE context ${this.#current.name}`);
    this.#pending = this.#current.derive(newB2Nonce());
  }

  /** Resolves when a request may be protected (see RequesterKeyUpdate.admit). */
  admit(): Promise<() => void> {
    return this.keyUpdate ? this.keyUpdate.admit() : admitted;
  }

  /** §8.1 with a fresh Partial IV; `classOf` chooses the option classes of this layer (§2.2 of the proxies draft). */
  protect(request: CoapMessage, classOf?: ClassOf): OscoreExchange {
    if (this.keyUpdate) return this.keyUpdate.protect(this, request, classOf);
    const security = this.#pending ?? this.#current;
    // Requests #1 and #2 carry ID1 = R1 and ID3 = R2 || R3 "wrapped in a CBOR bstr as 'kid
    // context'" (B.2 steps 1 and 3); an ordinary request carries its ID Context as it is (§5.1).
    const kidContext = security === this.#pending && security.idContext ? wrapB2KidContext(security.idContext) : security.idContext ? ('include' as const) : undefined;
    // One options shape, unset fields undefined: conditional spreads take V8's slow path per request.
    const { message, binding } = protectRequest(request, security.sender, security.nextSequenceNumber(), { kidContext, classOf });
    return new OscoreExchange(this, security, message, binding);
  }

  /** B.2 step 5: a response to a request the pending context protected verified. */
  adoptIfPending(security: OscoreSecurityContext): void {
    // "the client marks the third security context to be used with this server. This security
    // context replaces the previous security context with the server, and the first and second
    // security contexts are deleted."
    if (security !== this.#pending) return;
    this.#current = security;
    this.#pending = undefined;
  }

  /**
   * B.2 step 3: "The client receives a response with 'kid context' containing a CBOR bstr wrapping
   * R2 to an OSCORE request it made with ID Context = ID1. The client derives a second security
   * context using ID Context = ID2 = R2 || ID1. If the client can verify the response ... using
   * the second security context, then the client makes a request protected with a third security
   * context derived from ID Context = ID3 = R2 || R3, where R3 is a random byte string generated by
   * the client." The third context becomes #pending; the caller (isRederivationChallenge) sends the request again,
   * which then carries R2 || R3 as 'kid context'.
   */
  responseOne(security: OscoreSecurityContext, response: CoapMessage, binding: RequestBinding, r2: Uint8Array): CoapMessage | Error {
    const second = security.derive(secondIdContext(r2, security.idContext));
    const result = unprotectResponse(response, second.primaryRecipient.params, binding);
    // "If verification fails in any step, the endpoint stops processing that message."
    if (!result.ok) return new Error(`OSCORE verification of the Appendix B.2 response #1 failed: ${result.reason}`);
    if (result.message.code !== ResponseCode.Unauthorized) return new Error(`Appendix B.2 response #1 is ${codeToString(result.message.code)}, not 4.01`);
    this.#pending = security.derive(thirdIdContext(r2, newB2Nonce()));
    return result.message;
  }
}

/**
 * One protected request and the state its responses are checked against: the binding (§7.1) and,
 * for an Observe registration, the Notification Number (§7.4.1).
 */
export class OscoreExchange {
  readonly #notifications = new NotificationOrder();

  constructor(
    protected readonly requester: OscoreRequester,
    /** The security context that protected the request (and verifies its responses). */
    readonly security: OscoreSecurityContext,
    /** What goes on the wire. */
    readonly message: CoapMessage,
    private readonly binding: RequestBinding,
  ) {}

  /**
   * §8.4: the inner response, or why it must be discarded. `notification`: this response may be
   * one of several to the request (an observation), so the Notification Number rules apply —
   * when the request was an Observe registration (§8.4.2 "If the request was an Observe
   * registration"; a response to any other request is bound to its single request nonce).
   */
  verify(response: CoapMessage, notification: boolean): CoapMessage | Error {
    const security = this.security;
    if (getOption(response, OptionNumber.Oscore) === undefined) {
      const diagnostic = response.payload.length > 0 ? `: ${printablePayload(response.payload)}` : '';
      return new Error(`unprotected ${codeToString(response.code)}${diagnostic}${replayHint(response)}`);
    }
    const kidContextField = security.rederivation ? responseKidContext(response) : undefined;
    if (kidContextField !== undefined) {
      if (notification) return new Error("a notification with 'kid context' (Appendix B.2 response #1 is a single response)");
      const r2 = unwrapB2KidContext(kidContextField);
      if (r2 === undefined) return new Error("the 'kid context' of Appendix B.2 response #1 is not R2 wrapped in a CBOR bstr");
      return this.requester.responseOne(security, response, this.binding, r2);
    }
    const result = unprotectResponse(response, security.primaryRecipient.params, this.binding);
    if (!result.ok) return new Error(`OSCORE verification failed: ${result.reason}`);
    if (notification && this.binding.observe) {
      const refusal = this.orderNotification(result.sequenceNumber);
      if (refusal !== undefined) return refusal;
    }
    this.requester.adoptIfPending(security);
    return result.message;
  }

  /** §7.4.1 and §8.4.2: Partial IVs only grow; the request nonce may serve one response only. */
  protected orderNotification(sequenceNumber: number | undefined): Error | undefined {
    return this.#notifications.accept(sequenceNumber);
  }
}

/**
 * Appendix B.2 step 3: whether `response` (verified from the protected `wire`) is response #1 — a
 * 4.01 whose OSCORE option carried a 'kid context'. The requester then protects with the third
 * context, and "the client makes a request protected with a third security context": the same
 * request once more (request #2 "can be an ordinary request").
 */
export function isRederivationChallenge(response: CoapMessage, wire: CoapMessage | undefined): boolean {
  return response.code === ResponseCode.Unauthorized && wire !== undefined && wire !== response && responseKidContext(wire) !== undefined;
}

/**
 * The requester of a context used as a layer without an owner of its own (a proxy hop on a
 * client's route, a proxy's upstream leg): one per context, so B.2 state outlives the request.
 */
const sharedRequesters = new WeakMap<OscoreSecurityContext, OscoreRequester>();
export function requesterFor(context: OscoreSecurityContext): OscoreRequester {
  let requester = sharedRequesters.get(context);
  if (requester === undefined) {
    requester = new OscoreRequester(context);
    sharedRequesters.set(context, requester);
  }
  return requester;
}
