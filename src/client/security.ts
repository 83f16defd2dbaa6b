/**
 * How the client secures one exchange end to end. Plain CoAP passes messages through; OSCORE
 * protects each request with a fresh Partial IV and verifies every response against that request
 * (RFC 8613 §7.1 message binding). Block-wise and Observe run on top, on the inner messages, so
 * block-wise is inner (§4.1.3.4.1) and notifications are verified one by one (§8.4.2).
 */
import { codeToString } from '../coap/codes.js';
import { getOption, setOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { EndpointContext } from '../exchange/context.js';
import type { CoapEndpoint, ReceivedResponse, RequestOptions } from '../exchange/endpoint.js';
import { encodeBlock } from '../coap/block.js';
import { CoapRequestError } from '../exchange/errors.js';
import { echoChallengeRetry, isRederivationChallenge } from '../oscore/requester.js';
import type { PeerAddress } from '../transport/transport.js';
import { continueBlock2, type SendRequest } from './blockwise.js';

export interface ProtectedRequest {
  /** What goes on the wire. */
  message: CoapMessage;
  /**
   * Verifies a response (or, with `notification`, one of several notifications) to this request and
   * returns the inner response, or an Error saying why it must be discarded.
   */
  verify(response: CoapMessage, notification: boolean): CoapMessage | Error;
  /** What the endpoint context of a verified response should say about its protection. */
  describe(context: EndpointContext): EndpointContext;
  /**
   * True when verify() itself refuses out-of-order notifications (OSCORE's Notification Number,
   * RFC 8613 §7.4.1), so the Observe-number rule of RFC 7641 §3.4 is not applied on top.
   */
  readonly ordersNotifications: boolean;
}

export interface MessageSecurity {
  protect(request: CoapMessage): ProtectedRequest;
  /**
   * For security that is set up with the peer first (EDHOC, src/edhoc-coap/): wraps each exchange
   * of securedSender, so it can run a handshake before protecting and repeat the exchange once
   * after setting up again (a lost context).
   */
  around?(exchange: SendRequest): SendRequest;
  /** Resolves when a request may go out (a KUDOS update holds them, src/kudos/gate.ts), with the function that ends its exchange. */
  admit?(): Promise<() => void>;
  /**
   * True when `admit()` would let a request out at once with nothing to end afterwards (no update
   * holds requests): the client then sends it without awaiting `admit()` (one promise per request
   * fewer). A security with `admit` and without this method is always awaited.
   */
  admitsNow?(): boolean;
}

const plainVerify = (response: CoapMessage): CoapMessage | Error =>
  getOption(response, OptionNumber.Oscore) === undefined ? response : new Error('the response is protected with OSCORE, but no security context is configured for this URI');

/** No end-to-end protection. A response carrying OSCORE cannot be read here and is refused. */
export const PLAIN: MessageSecurity = {
  protect: (message) => ({
    message,
    verify: plainVerify,
    describe: (context) => context,
    ordersNotifications: false,
  }),
};

/** Thrown when a response fails end-to-end verification; the response is discarded. */
export class VerificationError extends CoapRequestError {}

function discarded(reason: Error, received: ReceivedResponse): VerificationError {
  return new VerificationError(`response discarded: ${reason.message} (${codeToString(received.message.code)} from ${received.context.peerKey})`);
}

/** securedSender's check of a plain exchange's response (PLAIN's verify). */
export function refuseProtected(received: ReceivedResponse): ReceivedResponse {
  const verified = plainVerify(received.message);
  if (verified instanceof Error) throw discarded(verified, received);
  return received;
}

/**
 * The response to `protectedRequest` as securedSender returns it: verified (§8.4) and carrying the
 * outer message's token, Message ID and type. Throws a VerificationError when it must be discarded.
 */
export function verifiedResponse(protectedRequest: ProtectedRequest, received: ReceivedResponse): ReceivedResponse {
  const verified = protectedRequest.verify(received.message, false);
  if (verified instanceof Error) throw discarded(verified, received);
  const outer = received.message;
  // OSCORE's inner response already carries the outer token, Message ID and type (a new object): no copy then.
  const same = verified !== outer && verified.token === outer.token && verified.messageId === outer.messageId && verified.type === outer.type;
  return {
    message: same ? verified : { ...verified, token: outer.token, messageId: outer.messageId, type: outer.type },
    context: protectedRequest.describe(received.context),
    // Undefined rather than a conditional spread (V8's slow path, see exchange/context.ts).
    wire: verified !== received.message ? received.message : undefined,
  };
}

/** Whether a protected response came in outer Block2 blocks, to be reassembled before it is verified (§8.4.1). */
export function isOuterBlockwise(response: CoapMessage): boolean {
  return getOption(response, OptionNumber.Oscore) !== undefined && getOption(response, OptionNumber.Block2) !== undefined;
}

/** The largest protected message reassembled from outer blocks (RFC 8613 §4.1.3.4.2 MAX_UNFRAGMENTED_SIZE). */
export const MAX_UNFRAGMENTED_SIZE = 64 * 1024;

/**
 * One exchange through the security layer: protect, send, verify (RFC 8613 §8.1, §8.4). A
 * protected response that arrives in outer Block2 blocks is reassembled before it is verified
 * (§8.4.1); `outerSzx` asks for such blocks (early negotiation on the outer message).
 */
export function securedSender(endpoint: CoapEndpoint, peer: PeerAddress, security: MessageSecurity, options: RequestOptions = {}, outerSzx?: number): SendRequest {
  // Plain CoAP: nothing to protect and the response is its own inner message; only a protected
  // one is refused, as PLAIN.verify does. No protect object, closures or message copy per request.
  if (security === PLAIN && outerSzx === undefined) return (m) => endpoint.request(m, peer, options).then(refuseProtected);
  const send = (m: CoapMessage): Promise<ReceivedResponse> => endpoint.request(m, peer, options);
  const exchange: SendRequest = async (inner) => {
    const release = security.admit ? await security.admit() : undefined;
    let received: ReceivedResponse;
    let protectedRequest: ProtectedRequest;
    try {
      protectedRequest = security.protect(inner);
      if (outerSzx !== undefined) setOption(protectedRequest.message, OptionNumber.Block2, encodeBlock({ num: 0, more: false, szx: outerSzx }));
      received = await send(protectedRequest.message);
      if (isOuterBlockwise(received.message)) received = await reassembleOuter(send, protectedRequest.message, received);
      // Verified before the exchange ends (release), as the update that admitted it expects.
      return verifiedResponse(protectedRequest, received);
    } finally {
      release?.();
    }
  };
  return security.around ? security.around(exchange) : exchange;
}

/** §8.4.1: the whole protected response, from outer Block2 blocks (no restarts: the protected request is never repeated). */
export function reassembleOuter(send: SendRequest, outerRequest: CoapMessage, first: ReceivedResponse): Promise<ReceivedResponse> {
  return continueBlock2(send, outerRequest, first, { maxBodySize: MAX_UNFRAGMENTED_SIZE, maxRestarts: 0 });
}

/**
 * The retries the security layer owns, for every kind of request sent through `send` (a request,
 * each block of a block-wise transfer, a notification's remaining blocks): a 4.01 with Echo (RFC
 * 9175 §2.3–§2.4; after a server restart, RFC 8613 Appendix B.1.2) and Appendix B.2 response #1
 * are each answered by sending the request once more (the rules: oscore/requester.ts). An
 * observation answers the same challenges to its registration with the same rules (observe.ts).
 */
export function withEchoRetry(send: SendRequest): SendRequest {
  return withRederivationRetry(withEchoOnlyRetry(send));
}

/**
 * RFC 8613 Appendix B.2 step 3: a verified, OSCORE-protected 4.01 whose OSCORE option carries a
 * 'kid context' (R2) is response #1; the requester has then derived the third context, and the
 * same request goes out again, once. The application sees the response to request #2.
 */
export function withRederivationRetry(send: SendRequest): SendRequest {
  return (message) => send(message).then((first) => rederivationFollowUp(send, message, first));
}

/** withRederivationRetry's step after the first response: `first` itself, or request #2's response. */
export function rederivationFollowUp(send: SendRequest, message: CoapMessage, first: ReceivedResponse): ReceivedResponse | Promise<ReceivedResponse> {
  return isRederivationChallenge(first.message, first.wire) ? send(message) : first;
}

/**
 * withEchoRetry without the Appendix B.2 retry: for plain CoAP, whose responses are never OSCORE
 * responses (a 4.01 with Echo, RFC 9175 §2.4, is still answered once).
 */
export function withEchoOnlyRetry(send: SendRequest): SendRequest {
  return (message) => send(message).then((first) => echoFollowUp(send, message, first));
}

/** withEchoOnlyRetry's step after the first response: `first` itself, or the response to the request repeated with Echo. */
export function echoFollowUp(send: SendRequest, message: CoapMessage, first: ReceivedResponse): ReceivedResponse | Promise<ReceivedResponse> {
  const again = echoChallengeRetry(message, first.message);
  return again === undefined ? first : send(again);
}
