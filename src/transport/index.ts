/**
 * Transports, importable as `coapsec/transport`: the one scheme table (RFC 7252 §6, RFC 8323 §8)
 * and `openTransport`, which gives the transport for a scheme, and the transports themselves —
 * UDP, DTLS, TCP, TLS (certificates or TLS-PSK) and WebSockets — with their options. A
 * `CoapClient` or `CoapServer.listen({ scheme })` picks them by scheme; these are for code that
 * builds a `CoapEndpoint` on a transport of its own.
 */
export { SCHEMES, isStreamScheme, isTransportScheme, openTransport, type SchemeInfo, type TransportOptions } from './schemes.js';
export {
  PeerUnreachableError,
  isStreamTransport,
  peerKey,
  type AnyTransport,
  type DatagramHandler,
  type DatagramTransport,
  type PeerAddress,
  type SessionErrorHandler,
  type StreamLink,
  type StreamScheme,
  type StreamTransport,
  type TransportScheme,
  type TransportSecurity,
} from './transport.js';
export { UdpTransport, type UdpTransportOptions } from './udp.js';
export { UdpClientTransport, type UdpClientTransportOptions } from './udp-client.js';
export type { SocketOptions } from './socket.js';
export {
  DtlsClientTransport,
  DtlsServerTransport,
  DtlsSessionError,
  type DtlsClientCredentials,
  type DtlsClientTransportOptions,
  type DtlsPsk,
  type DtlsServerCredentials,
  type DtlsServerTransportOptions,
} from './dtls.js';
export { TcpTransport, type TcpTransportOptions } from './tcp.js';
export { TlsTransport, type TlsPsk, type TlsTransportOptions } from './tls.js';
export { WsTransport, COAP_WS_PATH, COAP_WS_PROTOCOL, type WsTransportOptions } from './ws.js';
