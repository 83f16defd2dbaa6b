/**
 * The client's fast path (issue 21): a simple request — plain CoAP (no OSCORE, no DTLS) over UDP to
 * a URI routed before, with the default request settings (`confirmable` aside), a body that fits
 * one block and no block size chosen — goes from `client.get(uri)` straight to the endpoint's
 * sendSimple: the datagram is written from the target's options encoded once (SimpleTarget), and
 * the request's one handler object settles its one promise from the response's datagram callback.
 * No request message, no settings objects, no layer walk on the way out.
 *
 * What happens on the wire is the layered path's, for every request it takes: the same NSTART gate
 * (RFC 7252 §4.7), Message ID (§4.4), random token (RFC 9175 §4.2, drawn from the same source in
 * the same order), retransmission (§4.2), empty ACK and separate response (§5.2.2), RST and timeout
 * handling — all in CoapEndpoint and MessageLayer, shared by both paths. A whole piggybacked or
 * separate response with no Block2 and no OSCORE option settles the request at once; anything else
 * (a Block2 transfer, RFC 7959; an Echo challenge, RFC 9175 §2.4; a protected response to a plain
 * request) continues from that first response through the same layers as the layered path
 * (one-exchange.ts continueExchange), from a request message built then.
 * test/client-fast-path.test.ts compares every datagram and every outcome with and without it.
 */
import { ResponseCode, type Code } from '../coap/codes.js';
import { encodeMessage } from '../coap/codec.js';
import { EMPTY_BYTES, MessageType, type CoapMessage, type CoapOption } from '../coap/message.js';
import type { CoapEndpoint, ReceivedResponse, RequestOptions, ResponseHandler } from '../exchange/endpoint.js';
import type { PeerAddress } from '../transport/transport.js';
import { wholeResponse, type BlockwiseOptions } from './blockwise.js';
import { continueExchange } from './one-exchange.js';
import type { OscoreTargetState } from './oscore-fast-request.js';
import { PLAIN, refuseProtected } from './security.js';

/** Builds the request message the layered path would have sent (for a response that needs the layers). */
export type TemplateOf = (code: Code, payload: Uint8Array, confirmable: boolean) => CoapMessage;

/** A URI's route for simple requests: its endpoint and peer, and its options as they go on the wire. */
export class SimpleTarget {
  /** The route's options, sorted, encoded once (what encodeMessage writes after the token). */
  readonly optionBytes: Uint8Array;

  constructor(
    readonly endpoint: CoapEndpoint,
    readonly peer: PeerAddress,
    options: readonly CoapOption[],
    readonly templateOf: TemplateOf,
    /** The URI's end-to-end security when it is OSCORE (client/oscore-fast-request.ts); undefined for plain CoAP. */
    readonly oscore: OscoreTargetState | undefined = undefined,
  ) {
    this.optionBytes = encodeMessage({ type: MessageType.CON, code: 0, messageId: 0, token: EMPTY_BYTES, options: options as CoapOption[], payload: EMPTY_BYTES }).subarray(4);
  }
}

/**
 * Sends a simple request to `target` and resolves with `finish` of its response, as exchangeOnce
 * (one-exchange.ts) would for the request the layered path builds. `options` sets nothing but
 * `confirmable`.
 */
export function requestSimple<T>(
  target: SimpleTarget,
  code: Code,
  payload: Uint8Array,
  options: RequestOptions,
  blockwise: BlockwiseOptions,
  finish: (received: ReceivedResponse) => T,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    target.endpoint.sendSimple(code, target.optionBytes, payload, target.peer, options, new SimpleExchange(target, code, payload, options, blockwise, finish, resolve, reject));
  });
}

/** One simple request's outcome: the endpoint's response handler, settling its promise. */
class SimpleExchange<T> implements ResponseHandler {
  constructor(
    private readonly target: SimpleTarget,
    private readonly code: Code,
    private readonly payload: Uint8Array,
    private readonly options: RequestOptions,
    private readonly blockwise: BlockwiseOptions,
    private readonly finish: (received: ReceivedResponse) => T,
    private readonly resolve: (value: T | Promise<T>) => void,
    private readonly reject: (error: unknown) => void,
  ) {}

  onResponse(received: ReceivedResponse): void {
    try {
      // A plain request's response must not be protected (refuseProtected throws then).
      const first = refuseProtected(received);
      if (first.message.code !== ResponseCode.Unauthorized) {
        const whole = wholeResponse(first);
        if (whole !== undefined) {
          this.resolve(this.finish(whole));
          return;
        }
      }
      const t = this.target;
      const template = t.templateOf(this.code, this.payload, this.options.confirmable !== false);
      const response = continueExchange(t.endpoint, t.peer, PLAIN, this.options, template, template, this.blockwise, first);
      this.resolve(response instanceof Promise ? response.then(this.finish) : this.finish(response));
    } catch (error) {
      this.reject(error);
    }
  }

  onError(error: Error): void {
    this.reject(error);
  }
}
