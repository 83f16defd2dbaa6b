/**
 * CoAP over TLS (RFC 8323 §3 and §9.1, scheme coaps+tcp): TLS with certificates, or with a
 * pre-shared key where Node's TLS offers it (TLS 1.2 PSK cipher suites). ALPN "coap" (§11.7).
 * Framing and signalling live in src/stream/; this file only makes authenticated sockets.
 */
import { createServer, connect, type ConnectionOptions, type PSKCallbackNegotation, type Server, type TLSSocket, type TlsOptions } from 'node:tls';
import { SocketStreamTransport, listen } from './stream-socket.js';
import type { PeerAddress, StreamLink, StreamTransport, TransportSecurity } from './transport.js';

/** RFC 8323 §11.7: the ALPN protocol identifier of CoAP over TLS. */
const ALPN_COAP = 'coap';
/** TLS 1.2 PSK suites Node's OpenSSL offers; the CCM ones are the CoAP profiles (RFC 7925 §4.2). */
const PSK_CIPHERS = 'PSK-AES128-CCM8:PSK-AES128-CCM:PSK-AES128-GCM-SHA256:PSK-AES256-GCM-SHA384';

export interface TlsPsk {
  identity: string;
  key: Uint8Array;
}

export interface TlsTransportOptions {
  host?: string;
  /** Listen on this port (0: any free port). Without it the transport only connects out. */
  port?: number;
  /** PEM certificate chain and private key: ours (a server's, or a client's for client authentication). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** PEM trust anchors for the peer's certificate; Node's default CAs when absent. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Server: ask clients for a certificate and refuse those that fail to verify. */
  requireClientCertificate?: boolean;
  /** Client: accept a server certificate that does not verify (testing against self-signed servers only). */
  insecure?: boolean;
  /** TLS-PSK (TLS 1.2): the client's identity and key, or the server's keys by identity. */
  psk?: TlsPsk | ReadonlyMap<string, Uint8Array>;
  connectTimeout?: number;
}

export class TlsTransport extends SocketStreamTransport implements StreamTransport {
  readonly scheme = 'coaps+tcp' as const;

  private constructor(
    server: Server | undefined,
    private readonly options: TlsTransportOptions,
  ) {
    super(server, options.connectTimeout ?? 10_000);
    server?.on('secureConnection', (socket) => this.accepted(socket, securityOf(socket, undefined)));
    // A failed handshake is the client's problem, not a reason to stop serving.
    server?.on('tlsClientError', (_error, socket) => socket.destroy());
  }

  static override async bind(options: TlsTransportOptions = {}): Promise<TlsTransport> {
    if (options.port === undefined) return new TlsTransport(undefined, options);
    const server = createServer(serverOptions(options));
    await listen(server as unknown as import('node:net').Server, options.port, options.host ?? '127.0.0.1');
    return new TlsTransport(server, options);
  }

  connect(peer: PeerAddress, serverName?: string): Promise<StreamLink> {
    const socket = connect({ ...clientOptions(this.options, serverName), host: peer.address, port: peer.port });
    const identity = this.options.psk && !(this.options.psk instanceof Map) ? (this.options.psk as TlsPsk).identity : undefined;
    return this.opened(socket, peer, 'secureConnect', 'TLS', () => securityOf(socket, identity));
  }
}

function serverOptions(options: TlsTransportOptions): TlsOptions {
  const tls: TlsOptions = { ALPNProtocols: [ALPN_COAP] };
  if (options.cert !== undefined) tls.cert = options.cert;
  if (options.key !== undefined) tls.key = options.key;
  if (options.ca !== undefined) tls.ca = options.ca;
  if (options.requireClientCertificate) {
    tls.requestCert = true;
    tls.rejectUnauthorized = true;
  }
  if (options.psk instanceof Map) {
    const keys = options.psk;
    tls.pskCallback = (socket, identity) => {
      const key = keys.get(identity);
      if (key === undefined) return null;
      pskIdentities.set(socket, identity);
      return Buffer.from(key);
    };
    // PSK suites exist only up to TLS 1.2 in Node; with certificates too, both kinds are offered.
    tls.ciphers = options.cert ? `${PSK_CIPHERS}:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256` : PSK_CIPHERS;
    tls.maxVersion = 'TLSv1.2';
  }
  return tls;
}

function clientOptions(options: TlsTransportOptions, serverName: string | undefined): ConnectionOptions {
  const tls: ConnectionOptions = { ALPNProtocols: [ALPN_COAP] };
  if (serverName !== undefined && !/^[\d.]+$|:/.test(serverName)) tls.servername = serverName;
  if (options.cert !== undefined) tls.cert = options.cert;
  if (options.key !== undefined) tls.key = options.key;
  if (options.ca !== undefined) tls.ca = options.ca;
  if (options.insecure) tls.rejectUnauthorized = false;
  const psk = options.psk;
  if (psk && !(psk instanceof Map)) {
    const { identity, key } = psk as TlsPsk;
    tls.pskCallback = (): PSKCallbackNegotation => ({ identity, psk: Buffer.from(key) });
    tls.ciphers = PSK_CIPHERS;
    tls.maxVersion = 'TLSv1.2';
    // With a PSK the key itself authenticates the server; there is no certificate to check.
    tls.checkServerIdentity = () => undefined;
  }
  return tls;
}

/** The identity a server's pskCallback accepted, per socket (Node does not expose it afterwards). */
const pskIdentities = new WeakMap<TLSSocket, string>();

/** The authenticated peer as handlers see it (EndpointContext.security), like DTLS does. */
function securityOf(socket: TLSSocket, clientPskIdentity: string | undefined): TransportSecurity | undefined {
  const cipherSuite = socket.getCipher()?.standardName ?? socket.getCipher()?.name ?? 'unknown';
  const pskIdentity = clientPskIdentity ?? pskIdentities.get(socket);
  if (pskIdentity !== undefined) return { kind: 'tls', identity: pskIdentity, mode: 'psk', cipherSuite };
  // Only a certificate that verified names the peer; otherwise the connection is encrypted but anonymous.
  const certificate = socket.getPeerCertificate();
  if (!certificate || Object.keys(certificate).length === 0 || !socket.authorized) return undefined;
  const subject = certificate.subject ? Object.entries(certificate.subject).map(([k, v]) => `${k}=${String(v)}`).join(', ') : '';
  return { kind: 'tls', identity: subject, mode: 'x509', cipherSuite };
}
