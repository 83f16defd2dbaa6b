/**
 * CoAP over WebSockets (RFC 8323 §4, schemes coap+ws and coaps+ws), on the `ws` package: the
 * endpoint is /.well-known/coap (§8.3), the subprotocol "coap" (§4.1), and each CoAP message is
 * one binary WebSocket message (§4.2). RFC 6455 Ping/Pong frames are not used (§4.4): liveness
 * is CoAP's own Ping. Framing and signalling live in src/stream/.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { IncomingMessage, RequestListener } from 'node:http';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { socketPeer } from './stream-socket.js';
import { listen, serverAddress } from './stream-socket.js';
import type { PeerAddress, StreamLink, StreamTransport, TransportSecurity } from './transport.js';

/** RFC 8323 §8.3: the well-known path of the CoAP WebSocket endpoint. */
export const COAP_WS_PATH = '/.well-known/coap';
/** RFC 8323 §4.1, §11.8: the WebSocket subprotocol. */
export const COAP_WS_PROTOCOL = 'coap';

export interface WsTransportOptions {
  host?: string;
  /** Listen on this port (0: any free port). Without it the transport only connects out. */
  port?: number;
  /** coaps+ws: TLS (wss) with this PEM certificate and key (server) or these trust anchors (client). */
  secure?: boolean;
  cert?: string | Buffer;
  key?: string | Buffer;
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client: accept a server certificate that does not verify (testing only). */
  insecure?: boolean;
  /** Largest WebSocket message accepted; larger ones close the connection. Default 1 MiB. */
  maxPayload?: number;
  connectTimeout?: number;
  /** Server: who may open a connection and how much each may send (the proxy's browser side, src/proxy/ws-guard.ts). */
  guard?: WsConnectionGuard;
  /** Server: plain HTTP requests on the same port (default: 426 naming the CoAP endpoint). */
  httpRequests?: RequestListener;
}

/** A refusal: an HTTP status at the handshake, or a WebSocket close code (RFC 6455 §7.4) afterwards. */
export interface WsRefusal {
  code: number;
  reason: string;
}

export interface WsConnectionGuard {
  /** At the upgrade request, before any WebSocket exists: undefined admits. */
  admit(request: IncomingMessage): WsRefusal | undefined;
  /** Once open: a per-connection gate, or a close refusal (e.g. the limit filled up meanwhile). */
  open(): WsConnectionGate | WsRefusal;
}

export interface WsConnectionGate {
  /** Each incoming message: undefined lets it through, a refusal closes the connection with it. */
  message(): WsRefusal | undefined;
  closed(): void;
}

class WsLink implements StreamLink {
  readonly framing = 'websocket' as const;
  /** Messages that arrive before setHandlers (a client's link is handed over a promise later): `ws` would drop them. */
  private early: Uint8Array[] | undefined = [];
  private handlers: { data(data: Uint8Array): void; closed(error: Error | undefined): void } | undefined;
  private closedWith: { error: Error | undefined } | undefined;

  constructor(
    private readonly socket: WebSocket,
    readonly peer: PeerAddress,
    readonly security: TransportSecurity | undefined,
    gate?: WsConnectionGate,
  ) {
    socket.on('error', () => {
      /* reported through 'close' */
    });
    socket.on('message', (data: RawData, isBinary: boolean) => {
      if (!isBinary) {
        // §4.2: CoAP travels in binary frames only.
        socket.close(1003, 'CoAP over WebSockets uses binary messages');
        return;
      }
      const refusal = gate?.message();
      if (refusal) {
        socket.close(refusal.code, refusal.reason);
        return;
      }
      const bytes = toBytes(data);
      if (this.handlers) this.handlers.data(bytes);
      else if (this.early && this.early.length < 64) this.early.push(bytes);
    });
    socket.on('close', (code: number) => {
      const error = code === 1000 || code === 1005 ? undefined : new Error(`WebSocket closed with code ${code}`);
      if (this.handlers) this.handlers.closed(error);
      else this.closedWith = { error };
    });
  }

  write(data: Uint8Array): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(data, { binary: true });
  }

  end(): void {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close(1000);
    setTimeout(() => this.socket.terminate(), 2_000).unref();
  }

  setHandlers(handlers: { data(data: Uint8Array): void; closed(error: Error | undefined): void }): void {
    this.handlers = handlers;
    const early = this.early ?? [];
    this.early = undefined;
    for (const bytes of early) handlers.data(bytes);
    if (this.closedWith) handlers.closed(this.closedWith.error);
  }
}

function toBytes(data: RawData): Uint8Array {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return new Uint8Array(data);
}

export class WsTransport implements StreamTransport {
  readonly scheme: 'coap+ws' | 'coaps+ws';
  private acceptHandler: ((link: StreamLink) => void) | undefined;
  private readonly clients = new Set<WebSocket>();

  private constructor(
    private readonly http: HttpServer | undefined,
    private readonly wss: WebSocketServer | undefined,
    private readonly options: WsTransportOptions,
  ) {
    this.scheme = options.secure ? 'coaps+ws' : 'coap+ws';
    wss?.on('connection', (socket: WebSocket, request: IncomingMessage) => this.onConnection(socket, request));
  }

  static async bind(options: WsTransportOptions = {}): Promise<WsTransport> {
    if (options.port === undefined) return new WsTransport(undefined, undefined, options);
    const http = options.secure
      ? createHttpsServer({ cert: options.cert, key: options.key }, options.httpRequests)
      : createHttpServer(options.httpRequests ?? ((_request, response) => {
          response.writeHead(426, { 'Content-Type': 'text/plain' }).end('CoAP over WebSockets: connect to /.well-known/coap\n');
        }));
    const wss = new WebSocketServer({
      server: http,
      path: COAP_WS_PATH,
      maxPayload: options.maxPayload ?? 1024 * 1024,
      perMessageDeflate: false,
      // §4.1: the client MUST offer "coap"; a client that does not is refused.
      handleProtocols: (protocols: Set<string>) => (protocols.has(COAP_WS_PROTOCOL) ? COAP_WS_PROTOCOL : false),
      ...(options.guard ? { verifyClient: verifyWith(options.guard) } : {}),
    });
    await listen(http as unknown as import('node:net').Server, options.port, options.host ?? '127.0.0.1');
    return new WsTransport(http, wss, options);
  }

  private onConnection(socket: WebSocket, request: IncomingMessage): void {
    const peer = socketPeer(request.socket);
    if (!peer || !this.acceptHandler || socket.protocol !== COAP_WS_PROTOCOL) {
      socket.terminate();
      return;
    }
    const gate = this.options.guard?.open();
    if (gate && 'code' in gate) {
      socket.close(gate.code, gate.reason);
      return;
    }
    this.track(socket);
    if (gate) socket.on('close', () => gate.closed());
    this.acceptHandler(new WsLink(socket, peer, this.options.secure ? tlsSecurity(request) : undefined, gate));
  }

  private track(socket: WebSocket): void {
    this.clients.add(socket);
    socket.on('close', () => this.clients.delete(socket));
  }

  connect(peer: PeerAddress, serverName?: string): Promise<StreamLink> {
    const host = serverName ?? peer.address;
    const authority = `${host.includes(':') ? `[${host}]` : host}:${peer.port}`;
    const url = `${this.options.secure ? 'wss' : 'ws'}://${authority}${COAP_WS_PATH}`;
    return new Promise<StreamLink>((resolve, reject) => {
      const socket = new WebSocket(url, COAP_WS_PROTOCOL, {
        perMessageDeflate: false,
        maxPayload: this.options.maxPayload ?? 1024 * 1024,
        handshakeTimeout: this.options.connectTimeout ?? 10_000,
        // Connect to the resolved address, whatever the name in the URL (which gives Host and SNI).
        lookup: ((_hostname: string, _options: unknown, callback: (error: Error | null, address: string, family: number) => void) =>
          callback(null, peer.address, peer.address.includes(':') ? 6 : 4)) as never,
        ...(this.options.ca !== undefined ? { ca: this.options.ca } : {}),
        ...(this.options.insecure ? { rejectUnauthorized: false } : {}),
      });
      this.track(socket);
      const onError = (error: Error): void => reject(error);
      socket.once('error', onError);
      socket.once('open', () => {
        socket.removeListener('error', onError);
        if (socket.protocol !== COAP_WS_PROTOCOL) {
          socket.terminate();
          reject(new Error(`${url} did not accept the "coap" subprotocol (RFC 8323 §4.1)`));
          return;
        }
        // wss: the server certificate was checked for `host` by the TLS layer under `ws`, which does
        // not hand out its socket; the context carries no TransportSecurity rather than a guessed one.
        resolve(new WsLink(socket, peer, undefined));
      });
    });
  }

  setAcceptHandler(handler: (link: StreamLink) => void): void {
    this.acceptHandler = handler;
  }

  localAddress(): PeerAddress {
    return serverAddress(this.http);
  }

  async close(): Promise<void> {
    for (const socket of this.clients) socket.terminate();
    this.clients.clear();
    if (this.wss) await new Promise<void>((resolve) => this.wss!.close(() => resolve()));
    if (this.http) {
      this.http.closeAllConnections?.();
      await new Promise<void>((resolve) => this.http!.close(() => resolve()));
    }
  }
}

function verifyWith(guard: WsConnectionGuard) {
  return (info: { req: IncomingMessage }, done: (admitted: boolean, code?: number, reason?: string) => void): void => {
    const refusal = guard.admit(info.req);
    if (refusal) done(false, refusal.code, refusal.reason);
    else done(true);
  };
}

function tlsSecurity(request: IncomingMessage): TransportSecurity | undefined {
  const socket = request.socket as import('node:tls').TLSSocket;
  const cipherSuite = socket.getCipher?.()?.standardName ?? 'unknown';
  if (!socket.authorized) return undefined;
  const certificate = socket.getPeerCertificate?.();
  const subject = certificate?.subject ? Object.entries(certificate.subject).map(([k, v]) => `${k}=${String(v)}`).join(', ') : '';
  return { kind: 'tls', identity: subject, mode: 'x509', cipherSuite };
}
