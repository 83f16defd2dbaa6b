/**
 * How the client secures one exchange end to end. Plain CoAP passes messages through; OSCORE
 * protects each request with a fresh Partial IV and verifies every response against that request
 * (RFC 8613 §7.1 message binding). Block-wise and Observe run on top, on the inner messages, so
 * block-wise is inner (§4.1.3.4.1) and notifications are verified one by one (§8.4.2).
 */
import { ResponseCode, codeToString } from '../coap/codes.js';
import { getOption, setOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { EndpointContext } from '../exchange/context.js';
import type { CoapEndpoint, RequestOptions } from '../exchange/endpoint.js';
import { CoapRequestError } from '../exchange/errors.js';
import type { PeerAddress } from '../transport/transport.js';
import type { SendRequest } from './blockwise.js';

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
}

/** No end-to-end protection. A response carrying OSCORE cannot be read here and is refused. */
export const PLAIN: MessageSecurity = {
  protect: (message) => ({
    message,
    verify: (response) =>
      getOption(response, OptionNumber.Oscore) === undefined
        ? response
        : new Error('the response is protected with OSCORE, but no security context is configured for this URI'),
    describe: (context) => context,
    ordersNotifications: false,
  }),
};

/** Thrown when a response fails end-to-end verification; the response is discarded. */
export class VerificationError extends CoapRequestError {}

/** One exchange through the security layer: protect, send, verify (RFC 8613 §8.1, §8.4). */
export function securedSender(endpoint: CoapEndpoint, peer: PeerAddress, security: MessageSecurity, options: RequestOptions = {}): SendRequest {
  return async (inner) => {
    const protectedRequest = security.protect(inner);
    const received = await endpoint.request(protectedRequest.message, peer, options);
    const verified = protectedRequest.verify(received.message, false);
    if (verified instanceof Error) throw new VerificationError(`response discarded: ${verified.message} (${codeToString(received.message.code)} from ${received.context.peerKey})`);
    return {
      message: { ...verified, token: received.message.token, messageId: received.message.messageId, type: received.message.type },
      context: protectedRequest.describe(received.context),
      ...(verified !== received.message ? { wire: received.message } : {}),
    };
  };
}

/**
 * RFC 9175 §2.3–§2.4: a 4.01 carrying Echo asks for the request again with that Echo value, to
 * prove freshness (or, after a server restart, to re-initialise its replay window, RFC 8613 B.1.2).
 * The request is repeated once, automatically.
 */
export function withEchoRetry(send: SendRequest): SendRequest {
  return async (message) => {
    const first = await send(message);
    const echo = getOption(first.message, OptionNumber.Echo);
    if (first.message.code !== ResponseCode.Unauthorized || echo === undefined || getOption(message, OptionNumber.Echo) !== undefined) return first;
    const again: CoapMessage = { ...message, options: message.options.slice() };
    setOption(again, OptionNumber.Echo, echo);
    return send(again);
  };
}
