/**
 * The one table of CoAP URI schemes and the transports that carry them (RFC 7252 §6, RFC 8323 §8).
 * Clients and servers ask it for a transport by scheme instead of importing each transport.
 */
import { DtlsClientTransport, DtlsServerTransport, type DtlsClientTransportOptions, type DtlsServerTransportOptions } from './dtls.js';
import { TcpTransport } from './tcp.js';
import { TlsTransport, type TlsTransportOptions } from './tls.js';
import type { AnyTransport, StreamScheme, TransportScheme } from './transport.js';
import { UdpTransport, type UdpTransportOptions } from './udp.js';
import { WsTransport, type WsTransportOptions } from './ws.js';
import type { Scheduler } from '../util/scheduler.js';

export interface SchemeInfo {
  readonly scheme: TransportScheme;
  /** datagram: MessageLayer (RFC 7252 §4); stream: StreamCarrier (RFC 8323). */
  readonly carrier: 'datagram' | 'stream';
  readonly secure: boolean;
  readonly defaultPort: number;
}

export const SCHEMES: ReadonlyMap<TransportScheme, SchemeInfo> = new Map<TransportScheme, SchemeInfo>(
  (
    [
      ['coap', 'datagram', false, 5683],
      ['coaps', 'datagram', true, 5684],
      ['coap+tcp', 'stream', false, 5683],
      ['coaps+tcp', 'stream', true, 5684],
      ['coap+ws', 'stream', false, 80],
      ['coaps+ws', 'stream', true, 443],
    ] as const
  ).map(([scheme, carrier, secure, defaultPort]) => [scheme, { scheme, carrier, secure, defaultPort }]),
);

export const isTransportScheme = (scheme: string): scheme is TransportScheme => SCHEMES.has(scheme as TransportScheme);
export const isStreamScheme = (scheme: string): scheme is StreamScheme => SCHEMES.get(scheme as TransportScheme)?.carrier === 'stream';

/** Everything any transport may need; each scheme reads its own part. */
export interface TransportOptions {
  /** Where to listen (servers) or bind (UDP clients). */
  host?: string;
  /** Listen port (0: any); absent for a client-only stream transport. */
  port?: number;
  scheduler?: Scheduler;
  udp?: Omit<UdpTransportOptions, 'host' | 'port'>;
  dtlsClient?: Omit<DtlsClientTransportOptions, 'host' | 'port' | 'scheduler'>;
  dtlsServer?: Omit<DtlsServerTransportOptions, 'host' | 'port' | 'scheduler'>;
  /** coaps+tcp: certificates, trust anchors, PSK (transport/tls.ts). */
  tls?: Omit<TlsTransportOptions, 'host' | 'port'>;
  /** coap+ws, coaps+ws (transport/ws.ts); coaps+ws takes its certificates from here too. */
  ws?: Omit<WsTransportOptions, 'host' | 'port' | 'secure'>;
}

/** A transport for `scheme`, listening when `role` is server. */
export async function openTransport(scheme: TransportScheme, role: 'client' | 'server', options: TransportOptions): Promise<AnyTransport> {
  const host = options.host;
  switch (scheme) {
    case 'coap':
      return UdpTransport.bind({ ...options.udp, ...(host !== undefined ? { host } : {}), port: options.port ?? 0 });
    case 'coaps': {
      if (role === 'server') {
        if (!options.dtlsServer) throw new TypeError('coaps needs DTLS server credentials');
        return DtlsServerTransport.bind({ ...options.dtlsServer, ...(host !== undefined ? { host } : {}), port: options.port ?? 0, ...(options.scheduler ? { scheduler: options.scheduler } : {}) });
      }
      if (!options.dtlsClient) throw new TypeError('coaps needs DTLS client credentials');
      return DtlsClientTransport.bind({ ...options.dtlsClient, ...(host !== undefined ? { host } : {}), port: 0, ...(options.scheduler ? { scheduler: options.scheduler } : {}) });
    }
    case 'coap+tcp':
      return TcpTransport.bind(role === 'server' ? { host, port: options.port ?? 0 } : {});
    case 'coaps+tcp':
      return TlsTransport.bind(role === 'server' ? { ...options.tls, host, port: options.port ?? 0 } : { ...options.tls });
    case 'coap+ws':
    case 'coaps+ws': {
      const secure = scheme === 'coaps+ws';
      const tls = secure ? { cert: options.tls?.cert, key: options.tls?.key, ca: options.tls?.ca, insecure: options.tls?.insecure } : {};
      const base = { ...tls, ...options.ws, secure };
      return WsTransport.bind(role === 'server' ? { ...base, host, port: options.port ?? 0 } : base);
    }
  }
}
