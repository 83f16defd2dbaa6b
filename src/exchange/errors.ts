/** Why a request produced no usable response. */

export class CoapRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** No ACK after MAX_RETRANSMIT retransmissions, or no response within the response timeout. */
export class TimeoutError extends CoapRequestError {}
/** The peer answered the request with RST (§4.2). */
export class ResetError extends CoapRequestError {}
/** The response broke a protocol rule (e.g. an unrecognized critical option, §5.4.1). */
export class BadResponseError extends CoapRequestError {}
/** The network reported the peer unreachable (ICMP port or host unreachable): nobody will answer. */
export class UnreachableError extends CoapRequestError {}
/** The secure session (DTLS) with the peer failed, e.g. its handshake ended with an alert. */
export class SessionError extends CoapRequestError {}
/** The request was cancelled by its AbortSignal or because the endpoint closed. */
export class CancelledError extends CoapRequestError {}
