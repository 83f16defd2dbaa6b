/**
 * Stateless HelloVerifyRequest cookies (RFC 6347 §4.2.1):
 *
 *   Cookie = HMAC-SHA256(Secret, Client-IP || Client-Parameters)
 *
 * where Client-Parameters are the ClientHello fields the client MUST repeat unchanged (version,
 * random, session_id, cipher_suites, compression_methods). The secret rotates every `rotationMs`;
 * cookies made with the current or the previous secret verify, so a cookie lives between one and
 * two rotation periods. No per-client state is kept.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { u16, vec } from './bytes.js';
import type { ClientHello } from './handshake-messages.js';

export const COOKIE_LENGTH = 32;

export interface CookieOptions {
  now: () => number;
  rotationMs?: number;
  random?: (n: number) => Buffer;
}

export class CookieJar {
  private current: Buffer;
  private previous: Buffer;
  private rotatedAt: number;
  private readonly rotationMs: number;
  private readonly random: (n: number) => Buffer;
  private readonly now: () => number;

  constructor(opts: CookieOptions) {
    this.now = opts.now;
    this.rotationMs = opts.rotationMs ?? 60_000;
    this.random = opts.random ?? randomBytes;
    this.current = this.random(32);
    this.previous = this.random(32);
    this.rotatedAt = this.now();
  }

  private rotate(): void {
    const t = this.now();
    const elapsed = t - this.rotatedAt;
    if (elapsed < this.rotationMs) return;
    // After two or more periods both secrets are stale.
    this.previous = elapsed >= 2 * this.rotationMs ? this.random(32) : this.current;
    this.current = this.random(32);
    this.rotatedAt = t;
  }

  private mac(secret: Buffer, peer: string, ch: ClientHello): Buffer {
    return createHmac('sha256', secret)
      .update(vec(2, Buffer.from(peer, 'utf8')))
      .update(u16(ch.version))
      .update(ch.random)
      .update(vec(1, ch.sessionId))
      .update(vec(2, Buffer.concat(ch.cipherSuites.map((s) => u16(s)))))
      .update(vec(1, Buffer.from(ch.compressionMethods)))
      .digest();
  }

  generate(peer: string, ch: ClientHello): Buffer {
    this.rotate();
    return this.mac(this.current, peer, ch);
  }

  verify(peer: string, ch: ClientHello): boolean {
    this.rotate();
    if (ch.cookie.length !== COOKIE_LENGTH) return false;
    const a = timingSafeEqual(this.mac(this.current, peer, ch), ch.cookie);
    const b = timingSafeEqual(this.mac(this.previous, peer, ch), ch.cookie);
    return a || b;
  }
}
