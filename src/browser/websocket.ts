/**
 * CoAP over WebSockets (RFC 8323 §4) on the browser's own `WebSocket`: the client side of what
 * src/transport/ws.ts does with the `ws` package in Node. The URI path is /.well-known/coap (§8.3),
 * the subprotocol "coap" (§4.1), each CoAP message one binary WebSocket message (§4.2); framing,
 * CSM, Ping/Pong and Release stay with src/stream/, as for every stream carrier.
 */
import type { PeerAddress, StreamLink, StreamTransport } from '../transport/transport.js';

/** RFC 8323 §8.3 and §4.1 (the values of src/transport/ws.ts, which imports Node's http). */
const COAP_WS_PATH = '/.well-known/coap';
const COAP_WS_PROTOCOL = 'coap';

/** The part of the browser's WebSocket used here (this project compiles without the DOM library). */
export interface BrowserWebSocket {
  binaryType: string;
  readonly readyState: number;
  readonly protocol: string;
  onopen: (() => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: (() => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols: string | string[]) => BrowserWebSocket;

const OPEN = 1;
const CONNECTING = 0;

export interface BrowserWsOptions {
  /** coaps+ws (wss://) rather than coap+ws (ws://). */
  secure?: boolean;
  /** ms until an unopened connection fails. Default 10 s. */
  connectTimeout?: number;
  /** The WebSocket class; default the global one. */
  WebSocket?: WebSocketConstructor;
}

type Handlers = { data(data: Uint8Array): void; closed(error: Error | undefined): void };

class BrowserWsLink implements StreamLink {
  readonly framing = 'websocket' as const;
  readonly security = undefined;
  /** Messages before setHandlers (the link is handed over a promise later), bounded. */
  #early: Uint8Array[] | undefined = [];
  #handlers: Handlers | undefined;
  #closedWith: { error: Error | undefined } | undefined;

  constructor(
    private readonly socket: BrowserWebSocket,
    readonly peer: PeerAddress,
  ) {
    socket.onmessage = (event) => {
      if (!(event.data instanceof ArrayBuffer)) {
        // §4.2: CoAP travels in binary messages only.
        socket.close(1003, 'CoAP over WebSockets uses binary messages');
        return;
      }
      const bytes = new Uint8Array(event.data);
      if (this.#handlers) this.#handlers.data(bytes);
      else if (this.#early && this.#early.length < 64) this.#early.push(bytes);
    };
    socket.onclose = (event) => {
      const error = event.code === 1000 || event.code === 1005 ? undefined : new Error(`WebSocket closed with code ${event.code}${event.reason ? `: ${event.reason}` : ''}`);
      if (this.#handlers) this.#handlers.closed(error);
      else this.#closedWith = { error };
    };
  }

  write(data: Uint8Array): void {
    if (this.socket.readyState === OPEN) this.socket.send(data);
  }

  end(): void {
    if (this.socket.readyState === OPEN || this.socket.readyState === CONNECTING) this.socket.close(1000);
  }

  setHandlers(handlers: Handlers): void {
    this.#handlers = handlers;
    const early = this.#early ?? [];
    this.#early = undefined;
    for (const bytes of early) handlers.data(bytes);
    if (this.#closedWith) handlers.closed(this.#closedWith.error);
  }
}

/** A client-only StreamTransport over the browser's WebSocket. */
export class BrowserWsTransport implements StreamTransport {
  readonly scheme: 'coap+ws' | 'coaps+ws';
  readonly #WebSocket: WebSocketConstructor;
  readonly #connectTimeout: number;
  readonly #open = new Set<BrowserWebSocket>();

  constructor(options: BrowserWsOptions = {}) {
    this.scheme = options.secure ? 'coaps+ws' : 'coap+ws';
    const found = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (found === undefined) throw new Error('no WebSocket class here: pass one as options.WebSocket');
    this.#WebSocket = found;
    this.#connectTimeout = options.connectTimeout ?? 10_000;
  }

  connect(peer: PeerAddress, serverName?: string): Promise<StreamLink> {
    const host = serverName ?? peer.address;
    const authority = host.includes(':') ? `[${host}]:${peer.port}` : `${host}:${peer.port}`;
    const url = `${this.scheme === 'coaps+ws' ? 'wss' : 'ws'}://${authority}${COAP_WS_PATH}`;
    const socket = new this.#WebSocket(url, COAP_WS_PROTOCOL);
    socket.binaryType = 'arraybuffer';
    this.#open.add(socket);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.close();
        reject(new Error(`WebSocket connection to ${url} timed out after ${this.#connectTimeout} ms`));
      }, this.#connectTimeout);
      socket.onerror = () => undefined; // reported through onclose
      socket.onopen = () => {
        clearTimeout(timer);
        // §4.1: a server that did not agree to "coap" is not a CoAP endpoint.
        if (socket.protocol !== COAP_WS_PROTOCOL) {
          socket.close(1002, 'the subprotocol "coap" was not accepted');
          reject(new Error(`${url} did not accept the WebSocket subprotocol "coap"`));
          return;
        }
        const link = new BrowserWsLink(socket, peer);
        const closed = socket.onclose;
        socket.onclose = (event) => {
          this.#open.delete(socket);
          closed?.(event);
        };
        resolve(link);
      };
      socket.onclose = (event) => {
        clearTimeout(timer);
        this.#open.delete(socket);
        reject(new Error(`WebSocket connection to ${url} failed (code ${event.code})`));
      };
    });
  }

  setAcceptHandler(): void {
    // A browser page cannot listen: nothing is ever accepted.
  }

  localAddress(): PeerAddress {
    return { address: '0.0.0.0', port: 0 };
  }

  async close(): Promise<void> {
    for (const socket of this.#open) socket.close(1000);
    this.#open.clear();
  }
}
