/** What CoapServer tells its request logger (ServerOptions.onRequestLog) about each response. */
import { decodeString, getOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { EndpointContext } from '../exchange/context.js';
import type { TransportScheme } from '../transport/transport.js';

/** What a server log line says about one request and the response it got. */
export interface RequestLogEntry {
  /** "127.0.0.1:5683" / "[::1]:5683" */
  readonly peer: string;
  readonly scheme: TransportScheme;
  /** DTLS identity and the peer names of the OSCORE layers removed, outermost first. */
  readonly identity: string | undefined;
  /** "none", "dtls", "oscore", "dtls+oscore"; "oscore+oscore" for two layers (nested, through a proxy). */
  readonly protection: string;
  /** The request as processed (inside the OSCORE layers removed) and the response before protection. */
  readonly request: CoapMessage;
  readonly response: CoapMessage;
  /** Why the OSCORE layer refused the request (RFC 8613 §8.2), when it did. */
  readonly oscoreFailure?: string;
}

export type RequestLogger = (entry: RequestLogEntry) => void;

export function requestLogEntry(request: CoapMessage, context: EndpointContext, response: CoapMessage, oscoreFailure: string | undefined): RequestLogEntry {
  if (context.security === undefined && !context.oscore?.length && oscoreFailure === undefined) {
    // Most entries (`coapsec serve` logs every response, its default level drops them): no
    // identity and no layers, so no arrays to build (issue 21: five allocations per response).
    return { peer: context.peerKey, scheme: context.scheme, identity: undefined, protection: transportProtection(context.scheme) ?? 'none', request, response };
  }
  const layers = context.oscore;
  if (context.security === undefined && layers?.length === 1 && oscoreFailure === undefined) {
    // An OSCORE request with one layer removed (issue 21: the arrays below cost every one of them).
    const transport = transportProtection(context.scheme);
    return { peer: context.peerKey, scheme: context.scheme, identity: layers[0]!.peer, protection: transport !== undefined ? `${transport}+oscore` : 'oscore', request, response };
  }
  const names = [...(context.security ? [context.security.identity] : []), ...(context.oscore ?? []).map((layer) => layer.peer)];
  const transport = transportProtection(context.scheme);
  const kinds = [...(transport !== undefined ? [transport] : []), ...(context.oscore ?? []).map(() => 'oscore')];
  return {
    peer: context.peerKey,
    scheme: context.scheme,
    identity: names.length > 0 ? names.join(' ') : undefined,
    protection: kinds.length > 0 ? kinds.join('+') : 'none',
    request,
    response,
    ...(oscoreFailure !== undefined ? { oscoreFailure } : {}),
  };
}

/** The protection the transport gives by its scheme: DTLS, TLS, or none (undefined). */
function transportProtection(scheme: TransportScheme): 'dtls' | 'tls' | undefined {
  return scheme === 'coaps' ? 'dtls' : scheme === 'coaps+tcp' || scheme === 'coaps+ws' ? 'tls' : undefined;
}

/** The reason an OSCORE refusal gives: its diagnostic payload (§8.2), or the B.1.2 Echo challenge. */
export function oscoreRefusal(response: CoapMessage): string {
  if (getOption(response, OptionNumber.Oscore)) return 'Echo challenge after a restart (RFC 8613 Appendix B.1.2)';
  return response.payload.length > 0 ? decodeString(response.payload) : 'refused';
}

/**
 * The server's request logger (ServerOptions.onRequestLog), settable after listen(). A logger
 * that throws costs a warning, never the response.
 */
export class RequestLog {
  logger: RequestLogger | undefined;

  constructor(logger?: RequestLogger) {
    this.logger = logger;
  }

  record(request: CoapMessage, context: EndpointContext, response: CoapMessage, oscoreFailure?: string): void {
    const logger = this.logger;
    if (!logger) return;
    try {
      logger(requestLogEntry(request, context, response, oscoreFailure));
    } catch (error) {
      process.emitWarning(`coapsec: request logger failed: ${(error as Error).message}`);
    }
  }
}
