/**
 * The seam below the exchange layer: what a CoapEndpoint needs from whatever carries its messages.
 * Two carriers implement it. MessageLayer (this folder) carries CoAP over UDP and DTLS with
 * RFC 7252 §4 messaging: message types, Message IDs, CON retransmission, ACK/RST, deduplication.
 * StreamCarrier (src/stream/) carries CoAP over TCP, TLS and WebSockets (RFC 8323), where the
 * connection is reliable and ordered and none of that exists: a message is sent once, "acknowledged"
 * as soon as it is handed to the connection, and a peer that is gone shows as a closed connection.
 *
 * Message type and Message ID are the carrier's business: the layers above fill in code, token,
 * options and payload, and a carrier sets or ignores the rest.
 */
import type { CoapMessage, MessageType } from '../coap/message.js';
import type { PeerAddress, TransportSecurity } from '../transport/transport.js';
import type { TransmissionParameters } from './parameters.js';

/** A received request or response, as the carrier that received it describes it. */
export interface Inbound {
  readonly message: CoapMessage;
  readonly peer: PeerAddress;
  readonly peerKey: string;
  readonly security: TransportSecurity | undefined;
  /** A response (piggybacked or empty ACK) went out, or the carrier needs none (reliable carriers). */
  readonly acknowledged: boolean;
  /** A response to it went out (the server's last-resort 5.00 must not answer twice). */
  readonly responded: boolean;
}

export interface ConfirmableListener {
  /** An ACK arrived: empty, or with a piggybacked response; `security` as the transport reported it. A reliable carrier reports an empty ACK once the message is handed to the connection. */
  onAck(ack: CoapMessage, security?: TransportSecurity): void;
  /** The peer rejected the message with RST (§4.2), or (reliable carriers) there is no connection to send it on. */
  onReset(): void;
  /** MAX_RETRANSMIT retransmissions went unacknowledged (§4.2). */
  onTimeout(): void;
  /** The CON is about to be retransmitted (§4.2): this exchange is taking long. */
  onRetransmit?(): void;
  /** The carrier could not send the message at all (a reliable carrier: connect failed, too large for the peer). */
  onError?(error: Error): void;
}

export interface OutgoingHandle {
  readonly messageId: number;
  /** Stops retransmitting; a later ACK or RST is ignored. */
  cancel(): void;
}

export interface CarrierEvents {
  /** A request that is not a duplicate. Answer with respond(); acknowledge() for slow handlers. */
  onRequest(request: CoapMessage, inbound: Inbound): void;
  /**
   * A response that did not come piggybacked (a separate response or a notification; over a
   * reliable carrier, every response). Return true to accept it, false to reject it (RST, §4.2, §5.3.2).
   */
  onSeparateResponse(response: CoapMessage, inbound: Inbound): boolean;
  /** A reliable carrier's connection to `peer` ended (RFC 8323 §3.4: its signalling and observation state go with it). */
  onPeerClosed?(peer: PeerAddress, peerKey: string, error: Error | undefined): void;
  /** Whether anything above still waits on `peerKey` (requests, observations): a busy connection is kept alive, an idle one released. */
  peerBusy?(peerKey: string): boolean;
}

export interface CarrierStats {
  peers: number;
  outstandingConfirmables: number;
  trackedMessages: number;
  retransmissions: number;
  duplicates: number;
  formatErrors: number;
}

export interface Carrier {
  /** Reliable and ordered (RFC 8323): no types, no Message IDs, no retransmission, no NON. */
  readonly reliable: boolean;
  readonly parameters: TransmissionParameters;
  /** Sends reliably: a CON over UDP; over a stream, the message as is. */
  sendConfirmable(message: CoapMessage, peer: PeerAddress, listener: ConfirmableListener): OutgoingHandle;
  /** Sends without acknowledgement: a NON over UDP; over a stream (where nothing is unreliable), the message as is. */
  sendNonConfirmable(message: CoapMessage, peer: PeerAddress, onReset?: () => void): unknown;
  /** Answers a received request (piggybacked or separate over UDP; on the request's connection over a stream). */
  respond(inbound: Inbound, response: CoapMessage, separate?: { type?: MessageType; listener?: ConfirmableListener }): void;
  /** The empty ACK for a slow answer (UDP); nothing to send over a stream. */
  acknowledge(inbound: Inbound): void;
  /** Refuses a request nobody here serves: RST over UDP, 5.01 over a stream (RFC 8323 §3.3). */
  reject(inbound: Inbound): void;
  /** UDP: send empty ACKs for requests still unanswered after this long (§5.2.2). */
  acknowledgeUnansweredAfter(delayMs: number | undefined): void;
  /** CoAP ping: empty CON over UDP (§4.3), Ping/Pong over a stream (RFC 8323 §5.4); resolves with the round trip in ms. */
  ping(peer: PeerAddress): Promise<number>;
  getStats(): CarrierStats;
  close(): void;
}
