/**
 * The common request with one promise: a body that fits one message, sent once, answered by a
 * whole response that poses no challenge. blockwiseRequest(withEchoRetry(securedSender(…))) takes
 * five awaited promises for it, one per layer; here the endpoint's response handler verifies the
 * response within the datagram's callback and settles the request's only promise. Anything else —
 * an Echo (RFC 9175 §2.4) or Appendix B.2 challenge (RFC 8613), a Block2 transfer (RFC 7959), a
 * protected response in outer blocks (RFC 8613 §8.4.1) — continues from that first response
 * through those same layers (security.ts, blockwise.ts), so their rules stay written once.
 */
import { ResponseCode } from '../coap/codes.js';
import type { CoapMessage } from '../coap/message.js';
import type { CoapEndpoint, ReceivedResponse, RequestOptions, ResponseHandler } from '../exchange/endpoint.js';
import type { PeerAddress } from '../transport/transport.js';
import { afterFirstBlock, firstRequest, wholeResponse, type BlockwiseOptions } from './blockwise.js';
import {
  PLAIN,
  echoFollowUp,
  isOuterBlockwise,
  reassembleOuter,
  rederivationFollowUp,
  refuseProtected,
  securedSender,
  verifiedResponse,
  withEchoOnlyRetry,
  withRederivationRetry,
  type MessageSecurity,
  type ProtectedRequest,
} from './security.js';

/** Whether a request under `security` can go out at once: no set-up around the exchange (EDHOC, a route's layers), no admission to await (KUDOS). */
export function sendsAtOnce(security: MessageSecurity): boolean {
  return security.around === undefined && (security.admit === undefined || security.admitsNow?.() === true);
}

/**
 * Sends `template` (a body that fits one block) under `security` (sendsAtOnce) and resolves with
 * `finish` of its response, as blockwiseRequest with the client's retry layers would.
 */
export function exchangeOnce<T>(
  endpoint: CoapEndpoint,
  peer: PeerAddress,
  security: MessageSecurity,
  options: RequestOptions,
  template: CoapMessage,
  blockwise: BlockwiseOptions,
  finish: (received: ReceivedResponse) => T,
): Promise<T> {
  // A throw here (protect: an exhausted sequence number) rejects the promise, as in the layers.
  return new Promise<T>((resolve, reject) => new OneExchange(endpoint, peer, security, options, template, blockwise, finish, resolve, reject));
}

const then = <T, U>(value: T | Promise<T>, next: (value: T) => U | Promise<U>): U | Promise<U> => (value instanceof Promise ? value.then(next) : next(value));

/** One request and its outcome: the endpoint's response handler, so no closures per request. */
class OneExchange<T> implements ResponseHandler {
  /**
   * What the layers send (blockwise.ts's first request), or the template itself when that would be
   * an unchanged copy: the template is this request's own (client.ts builds one per request) and
   * what follows only copies it (Echo, Block2), so the token and Message ID sending gives it do not matter.
   */
  private readonly request: CoapMessage;
  private readonly protectedRequest: ProtectedRequest | undefined;

  constructor(
    private readonly endpoint: CoapEndpoint,
    private readonly peer: PeerAddress,
    private readonly security: MessageSecurity,
    private readonly options: RequestOptions,
    private readonly template: CoapMessage,
    private readonly blockwise: BlockwiseOptions,
    private readonly finish: (received: ReceivedResponse) => T,
    private readonly resolve: (value: T | Promise<T>) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    this.request = blockwise.szx === undefined ? template : firstRequest(template, blockwise);
    // Plain CoAP: the request is its own wire message (securedSender's plain path).
    this.protectedRequest = security === PLAIN ? undefined : security.protect(this.request);
    endpoint.send(this.protectedRequest?.message ?? this.request, peer, options, this);
  }

  onResponse(received: ReceivedResponse): void {
    try {
      const protectedRequest = this.protectedRequest;
      if (protectedRequest === undefined) this.settle(this.continueFrom(refuseProtected(received)));
      else this.settle(protectedResponse(this.endpoint, this.peer, this.security, this.options, this.request, this.template, this.blockwise, protectedRequest, received));
    } catch (error) {
      this.reject(error);
    }
  }

  onError(error: Error): void {
    this.reject(error);
  }

  private settle(response: ReceivedResponse | Promise<ReceivedResponse>): void {
    this.resolve(then(response, this.finish));
  }

  private continueFrom(first: ReceivedResponse): ReceivedResponse | Promise<ReceivedResponse> {
    return continueExchange(this.endpoint, this.peer, this.security, this.options, this.request, this.template, this.blockwise, first);
  }
}

/**
 * A protected request's response from its first `received` (unverified): verified (§8.4; after
 * reassembling outer Block2 blocks, §8.4.1), then continueExchange. Shared with the OSCORE fast
 * path (oscore-fast-request.ts), which hands over every response it does not open itself.
 */
export function protectedResponse(
  endpoint: CoapEndpoint,
  peer: PeerAddress,
  security: MessageSecurity,
  options: RequestOptions,
  request: CoapMessage,
  template: CoapMessage,
  blockwise: BlockwiseOptions,
  protectedRequest: ProtectedRequest,
  received: ReceivedResponse,
): ReceivedResponse | Promise<ReceivedResponse> {
  if (!isOuterBlockwise(received.message)) return continueExchange(endpoint, peer, security, options, request, template, blockwise, verifiedResponse(protectedRequest, received));
  const outer = (m: CoapMessage): Promise<ReceivedResponse> => endpoint.request(m, peer, options);
  return reassembleOuter(outer, protectedRequest.message, received).then((whole) =>
    continueExchange(endpoint, peer, security, options, request, template, blockwise, verifiedResponse(protectedRequest, whole)),
  );
}

/**
 * A request's response, once `first` (verified) is in: itself, or what the layers make of it
 * (`request` is what was sent before protection, `template` the request as the client built it).
 */
export function continueExchange(
  endpoint: CoapEndpoint,
  peer: PeerAddress,
  security: MessageSecurity,
  options: RequestOptions,
  request: CoapMessage,
  template: CoapMessage,
  blockwise: BlockwiseOptions,
  first: ReceivedResponse,
): ReceivedResponse | Promise<ReceivedResponse> {
  // Both challenges are 4.01 (echoChallengeRetry, isRederivationChallenge).
  if (first.message.code !== ResponseCode.Unauthorized) {
    const whole = wholeResponse(first);
    if (whole !== undefined) return whole;
  }
  // As the client composes them: plain CoAP has no Appendix B.2 to retry (client.ts).
  const secured = securedSender(endpoint, peer, security, options);
  const echoing = withEchoOnlyRetry(secured);
  const plain = security === PLAIN;
  const answered = echoFollowUp(secured, request, first);
  const response = plain ? answered : then(answered, (r) => rederivationFollowUp(echoing, request, r));
  const send = plain ? echoing : withRederivationRetry(echoing);
  return then(response, (r) => afterFirstBlock(send, template, r, blockwise));
}
