/** The public API of coapsec. */
export * from './coap/codes.js';
export * from './coap/message.js';
export * from './coap/options.js';
export { encodeMessage, decodeMessage, MessageFormatError } from './coap/codec.js';
export { ContentFormat, contentFormatName, parseContentFormat } from './coap/content-format.js';
export { parseCoapUri, formatCoapUri, uriToOptions, optionsToUri, UriError, type CoapUri } from './coap/uri.js';
export { parseLinkFormat, serializeLinks, filterLinks, type Link } from './coap/link-format.js';
export { CoapClient, request, type ClientRequest, type ClientResponse, type ClientOptions } from './client/client.js';
export { CoapServer, type ServerOptions } from './server/server.js';
export type { CoapRequest, CoapResponse, Handler, Handlers, ResourceDefinition, LinkAttributes } from './server/resource.js';
export { CoapEndpoint, ServerExchange, type EndpointOptions, type RequestOptions } from './exchange/endpoint.js';
export type { EndpointContext } from './exchange/context.js';
export { TimeoutError, ResetError, BadResponseError, CancelledError, CoapRequestError, SessionError, UnreachableError } from './exchange/errors.js';
export { DEFAULT_PARAMETERS, type TransmissionParameters } from './messaging/parameters.js';
export { UdpTransport } from './transport/udp.js';
export type { DatagramTransport, PeerAddress, TransportSecurity } from './transport/transport.js';
