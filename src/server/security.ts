/**
 * How the server removes and applies end-to-end protection (OSCORE) around its pipeline. The
 * messaging layer has already deduplicated the message, so a retransmitted CON never reaches this
 * (architecture rule 2: deduplication before the replay check).
 */
import type { CoapMessage } from '../coap/message.js';
import type { EndpointContext } from '../exchange/context.js';

/** Protects a response to the request it was unprotected from; notifications get a fresh Partial IV. */
export type ResponseProtector = (response: CoapMessage, kind: 'response' | 'notification') => CoapMessage;

export type UnprotectOutcome =
  | { ok: true; inner: CoapMessage; context: EndpointContext; protect: ResponseProtector }
  /** The answer to send as is: an unprotected OSCORE error (§8.2) or a protected Echo challenge (B.1.2). */
  | { ok: false; response: CoapMessage };

/** RFC 9668 §3.3.1: the request rebuilt for OSCORE (steps 1–7), or the answer to send as is. */
export type EdhocCompletion = { ok: true; request: CoapMessage } | { ok: false; response: CoapMessage };

export interface ServerSecurity {
  /** Undefined when the request carries no protection this layer handles. */
  unprotect(request: CoapMessage, context: EndpointContext): UnprotectOutcome | undefined;
  /**
   * Asked before `unprotect`: undefined when unprotect can run now; else what it must wait for —
   * a context fetched from a shared store, a Sender Sequence Number block being reserved (issue
   * 26, src/store/). The promise never rejects: it settles undefined (go on, unprotect then runs)
   * or with the answer to send as is (5.03 when the store is unavailable).
   */
  prepare?(request: CoapMessage, context: EndpointContext): Promise<CoapMessage | undefined> | undefined;
  /**
   * A request with the EDHOC option (RFC 9668 §3.3.1, stages/edhoc-combined.ts): finish the EDHOC
   * session whose message_3 leads the payload, install its OSCORE context, and return the OSCORE
   * request that remains. Absent on a security without EDHOC (src/edhoc-coap/ implements it).
   */
  completeEdhoc?(request: CoapMessage, context: EndpointContext): EdhocCompletion;
}
