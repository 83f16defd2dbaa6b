/**
 * The browser side of `coapsec proxy --ws`: which web pages may connect, how many connections at
 * once, and how fast each may send. A WebSocket is open to any page on the web a user visits
 * (RFC 6455 §10.2: the server must check Origin itself, the browser does not), so the proxy, which
 * forwards into a device network, admits only the pages it was told about.
 *
 * - Origin (RFC 6455 §4.2.1 item 8, §10.2): a browser always sends it. Admitted: the origins of
 *   `allowedOrigins`, and the proxy's own ones added with `allowOrigin` once it listens (a page
 *   served by `--web`: http://127.0.0.1:PORT, http://localhost:PORT). Never "whatever the Host
 *   header says": under DNS rebinding an attacker's name points at the proxy and Host matches.
 *   A request without Origin comes from a program, not a page a user was lured to: admitted (its
 *   peer is limited like any other). Refused: HTTP 403 at the handshake.
 * - Connections: at most `maxConnections` open; the next handshake gets HTTP 503, and one that
 *   slips in between handshake and open is closed with 1013 "Try Again Later" (IANA registry of
 *   RFC 6455 §11.7).
 * - Messages: a token bucket per connection, `messagesPerSecond` refilled up to `burst`; a message
 *   finding the bucket empty closes the connection with 1008 (policy violation, RFC 6455 §7.4.1)
 *   and a reason naming the limit. Closing rather than answering 4.29 per message: a page over
 *   the limit is a runaway loop or an attacker, and every answer would cost the proxy more.
 */
import type { IncomingMessage } from 'node:http';
import type { WsConnectionGate, WsConnectionGuard, WsRefusal } from '../transport/ws.js';

export interface WsGuardOptions {
  /** Web origins (scheme://host[:port]) whose pages may connect besides the proxy's own. */
  allowedOrigins: readonly string[];
  maxConnections: number;
  messagesPerSecond: number;
  /** Messages a connection may send at once before the rate applies (default: one second's worth). */
  burst?: number;
  /** Milliseconds, monotonic (tests drive it). */
  now?: () => number;
}

export const WS_CLOSE_POLICY = 1008;
export const WS_CLOSE_TRY_AGAIN_LATER = 1013;

export class WsGuard implements WsConnectionGuard {
  private open_ = 0;
  private readonly allowed: Set<string>;
  private readonly now: () => number;
  private readonly burst: number;

  constructor(private readonly options: WsGuardOptions) {
    if (!(options.maxConnections >= 1)) throw new RangeError('maxConnections must be at least 1');
    if (!(options.messagesPerSecond > 0)) throw new RangeError('messagesPerSecond must be above 0');
    this.allowed = new Set(options.allowedOrigins.map(normalizeOrigin));
    this.now = options.now ?? (() => performance.now());
    this.burst = Math.max(1, options.burst ?? Math.ceil(options.messagesPerSecond));
  }

  get openConnections(): number {
    return this.open_;
  }

  admit(request: IncomingMessage): WsRefusal | undefined {
    const origin = request.headers.origin;
    if (origin !== undefined && !this.originAllowed(origin)) return { code: 403, reason: `origin ${origin} is not allowed (--ws-origin)` };
    if (this.open_ >= this.options.maxConnections) return { code: 503, reason: `connection limit ${this.options.maxConnections} reached` };
    return undefined;
  }

  open(): WsConnectionGate | WsRefusal {
    if (this.open_ >= this.options.maxConnections) return { code: WS_CLOSE_TRY_AGAIN_LATER, reason: `connection limit ${this.options.maxConnections} reached` };
    this.open_++;
    let tokens = this.burst;
    let last = this.now();
    let closed = false;
    const rate = this.options.messagesPerSecond;
    return {
      message: () => {
        const now = this.now();
        tokens = Math.min(this.burst, tokens + ((now - last) / 1000) * rate);
        last = now;
        if (tokens < 1) return { code: WS_CLOSE_POLICY, reason: `rate limit: more than ${rate} CoAP messages per second` };
        tokens -= 1;
        return undefined;
      },
      closed: () => {
        if (closed) return;
        closed = true;
        this.open_--;
      },
    };
  }

  private originAllowed(origin: string): boolean {
    return this.allowed.has(normalizeOrigin(origin));
  }

  /** Admit one more origin (the proxy's own, known once it listens). */
  allowOrigin(origin: string): void {
    this.allowed.add(normalizeOrigin(origin));
  }
}

/** scheme://host[:port] with default ports dropped and case folded; "null" (opaque origins) never matches. */
function normalizeOrigin(origin: string): string {
  if (origin === 'null') return '\0null';
  try {
    return new URL(origin).origin;
  } catch {
    return `\0${origin}`;
  }
}
