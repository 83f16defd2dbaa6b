/**
 * Which responses answer a request, once its token matched: the seam between "one request, one
 * peer" (RFC 7252 §5.3.2) and "one request, many responders" (a multicast or Group OSCORE request,
 * RFC 7252 §8.2, RFC 7390), so the exchange layer needs no copy of itself for groups.
 *
 * A matcher is consulted for every response whose token names a waiting request or an open
 * response stream (CoapEndpoint.request/stream/openStream, option `matcher`); returning false
 * leaves the response unmatched (over UDP a CON is then answered with RST). A matcher must be
 * cheap and pure: it runs within the datagram's callback.
 */
import type { PeerAddress } from '../transport/transport.js';

/** One side of an exchange: the address and the key the endpoint files it under ("10.0.0.1:5683", "[::1]:5683"). */
export interface PeerRef {
  readonly peer: PeerAddress;
  readonly peerKey: string;
}

export interface ResponseMatcher {
  /** For diagnostics. */
  readonly name: string;
  /**
   * Whether a response that came from `source` may answer the request sent to `destination`
   * (the token already matched). `destination` is a group address for a multicast request.
   */
  matches(destination: PeerRef, source: PeerRef): boolean;
  /**
   * Whether the stream ends when the connection to `peerKey` closes (RFC 8323 §7.4: an observation
   * lives on its connection). True for matchers bound to one peer.
   */
  endsWithPeer(destination: PeerRef, closedPeerKey: string): boolean;
}

/** The default, RFC 7252 §5.3.2: the token and the endpoint the request went to must both match. */
export const tokenAndPeer: ResponseMatcher = {
  name: 'token and peer',
  matches: (destination, source) => destination.peerKey === source.peerKey,
  endsWithPeer: (destination, closedPeerKey) => destination.peerKey === closedPeerKey,
};

/**
 * The token alone, from any source address: what a request to a multicast group needs, since each
 * member answers from its own unicast address (RFC 7252 §8.2). Without an end-to-end check
 * (Group OSCORE) anyone on the path can answer, so use it only for group requests.
 */
export const tokenFromAnyPeer: ResponseMatcher = {
  name: 'token from any peer',
  matches: () => true,
  endsWithPeer: () => false,
};
