/**
 * OSCORE on the client (RFC 8613 §8.1, §8.4): every request gets a fresh Partial IV; its
 * responses are verified against it. For an observation, notifications must carry increasing
 * Partial IVs — the Notification Number of §7.4.1 — and at most one may reuse the request's nonce.
 * An unprotected answer (an OSCORE error from the server, or a forgery) is never accepted as the
 * resource's response; its code and diagnostic become the error message.
 *
 * With `rederivation` set on the context, the client runs Appendix B.2 (oscore/rederivation.ts):
 * `rederive()` starts it (step 1), and a protected 4.01 carrying a 'kid context' R2 (step 3) makes
 * the next request go out under ID3 = R2 || R3; the context switches when a response to it
 * verifies (step 5). `withEchoRetry` (security.ts) repeats the request once, automatically.
 */
import { ResponseCode, codeToString } from '../coap/codes.js';
import { getOption, printablePayload, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { protectRequest, unprotectResponse } from '../oscore/protect.js';
import { newB2Nonce, responseKidContext, secondIdContext, thirdIdContext, unwrapB2KidContext, wrapB2KidContext } from '../oscore/rederivation.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { withOscoreLayer, type OscoreLayerInfo } from '../exchange/context.js';
import type { MessageSecurity, ProtectedRequest } from './security.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** What a verified response's endpoint context says about a context's layer: the same for every response, so made once. */
const layers = new WeakMap<OscoreSecurityContext, OscoreLayerInfo>();
export function layerOf(security: OscoreSecurityContext): OscoreLayerInfo {
  let layer = layers.get(security);
  if (layer === undefined) {
    layer = { peer: security.name, kid: security.primaryRecipient.kidHex, ...(security.idContext ? { kidContext: hex(security.idContext) } : {}) };
    layers.set(security, layer);
  }
  return layer;
}

/**
 * §7.4: "Replay detected" means the server has accepted this Partial IV from this sender before —
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

export interface OscoreClientOptions {
  /**
   * Appendix B.2 step 1 before the first request: "If the client does not have a valid security
   * context with the server, e.g., because of reboot or because this is the first time it contacts
   * the server". Needs `rederivation` on the context. Default false: a context with persistent
   * sequence numbers (Appendix B.1.1) stays valid across restarts.
   */
  rederiveOnStart?: boolean;
}

export class OscoreClientSecurity implements MessageSecurity {
  #current: OscoreSecurityContext;
  /**
   * B.2: the context requests go out with while the protocol runs — the first (ID1 = R1, step 1)
   * or the third (ID3 = R2 || R3, step 3). It becomes current when a response to a request it
   * protected verifies (step 5); until then #current is kept.
   */
  #pending: OscoreSecurityContext | undefined;

  constructor(context: OscoreSecurityContext, options: OscoreClientOptions = {}) {
    this.#current = context;
    if (options.rederiveOnStart) this.rederive();
  }

  /** The security context in use with the server (it changes when B.2 completes). */
  get context(): OscoreSecurityContext {
    return this.#current;
  }

  /** The ID Context the next request is protected with. */
  get nextIdContext(): Uint8Array | undefined {
    return (this.#pending ?? this.#current).idContext;
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

  protect(request: CoapMessage): ProtectedRequest {
    const security = this.#pending ?? this.#current;
    // Requests #1 and #2 carry ID1 = R1 and ID3 = R2 || R3 "wrapped in a CBOR bstr as 'kid
    // context'" (B.2 steps 1 and 3); an ordinary request carries its ID Context as it is (§5.1).
    const kidContext = security === this.#pending && security.idContext ? wrapB2KidContext(security.idContext) : security.idContext ? ('include' as const) : undefined;
    const { message, binding } = protectRequest(request, security.sender, security.nextSequenceNumber(), kidContext !== undefined ? { kidContext } : {});
    let notificationNumber: number | undefined;
    let requestNonceUsed = false;
    const verify = (response: CoapMessage, notification: boolean): CoapMessage | Error => {
      if (getOption(response, OptionNumber.Oscore) === undefined) {
        const diagnostic = response.payload.length > 0 ? `: ${printablePayload(response.payload)}` : '';
        return new Error(`unprotected ${codeToString(response.code)}${diagnostic}${replayHint(response)}`);
      }
      const kidContextField = security.rederivation ? responseKidContext(response) : undefined;
      if (kidContextField !== undefined) {
        const r2 = unwrapB2KidContext(kidContextField);
        if (r2 === undefined) return new Error("the 'kid context' of Appendix B.2 response #1 is not R2 wrapped in a CBOR bstr");
        return this.#responseOne(security, response, binding, r2, notification);
      }
      const result = unprotectResponse(response, security.primaryRecipient.params, binding);
      if (!result.ok) return new Error(`OSCORE verification failed: ${result.reason}`);
      if (notification && binding.observe) {
        // §7.4.1 and §8.4.2: Partial IVs only grow; the request nonce may serve one response only.
        if (result.sequenceNumber === undefined) {
          if (requestNonceUsed) return new Error('a second response without Partial IV');
          // §4.1.3.5.2: "the notification without Partial IV is considered the oldest" — once a
          // notification with a Partial IV was accepted, it can only be a delayed first response.
          if (notificationNumber !== undefined) return new Error('a response without Partial IV after newer notifications (the oldest, RFC 8613 §4.1.3.5.2)');
          requestNonceUsed = true;
        } else {
          if (notificationNumber !== undefined && result.sequenceNumber <= notificationNumber) {
            return new Error(`notification replayed or reordered (Partial IV ${result.sequenceNumber})`);
          }
          notificationNumber = result.sequenceNumber;
        }
      }
      // B.2 step 5: "If the client receives a response to the request with the third security
      // context and the response verifies ..., then the client marks the third security context to
      // be used with this server. This security context replaces the previous security context
      // with the server, and the first and second security contexts are deleted."
      if (security === this.#pending) {
        this.#current = security;
        this.#pending = undefined;
      }
      return result.message;
    };
    return {
      message,
      verify,
      ordersNotifications: true,
      describe: (context) => withOscoreLayer(context, layerOf(security)),
    };
  }

  /**
   * B.2 step 3: "The client receives a response with 'kid context' containing a CBOR bstr wrapping
   * R2 to an OSCORE request it made with ID Context = ID1. The client derives a second security
   * context using ID Context = ID2 = R2 || ID1. If the client can verify the response ... using
   * the second security context, then the client makes a request protected with a third security
   * context derived from ID Context = ID3 = R2 || R3, where R3 is a random byte string generated by
   * the client." The third context becomes #pending; the caller (withEchoRetry) sends the request
   * again, which then carries R2 || R3 as 'kid context'.
   */
  #responseOne(security: OscoreSecurityContext, response: CoapMessage, binding: Parameters<typeof unprotectResponse>[2], r2: Uint8Array, notification: boolean): CoapMessage | Error {
    if (notification) return new Error("a notification with 'kid context' (Appendix B.2 response #1 is a single response)");
    const second = security.derive(secondIdContext(r2, security.idContext));
    const result = unprotectResponse(response, second.primaryRecipient.params, binding);
    // "If verification fails in any step, the endpoint stops processing that message."
    if (!result.ok) return new Error(`OSCORE verification of the Appendix B.2 response #1 failed: ${result.reason}`);
    if (result.message.code !== ResponseCode.Unauthorized) {
      return new Error(`Appendix B.2 response #1 is ${codeToString(result.message.code)}, not 4.01`);
    }
    this.#pending = security.derive(thirdIdContext(r2, newB2Nonce()));
    return result.message;
  }
}
