/**
 * Request freshness with the Echo option (RFC 9175 §2.3, Appendix A item 3; the "Delaying" threat
 * of draft-ietf-core-attacks-on-coap / the seed's §2.1.1.2, which a security solution is REQUIRED
 * to mitigate). The server keeps no state per challenge: the Echo value is
 *
 *   timestamp (8 bytes, big-endian ms of the server endpoint's monotonic scheduler clock)
 *   || HMAC-SHA-256(key, timestamp || requester identity) truncated to 8 bytes
 *
 * with a random key per server instance, so a value issued to one requester does not verify for
 * another and values from before a restart are all rejected (§2.4 "MUST reject all Echo values that
 * were created before the reset"). Echo is class E: under OSCORE the value travels encrypted.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { EndpointContext } from '../exchange/context.js';

const TIMESTAMP_BYTES = 8;
const MAC_BYTES = 8;
export const ECHO_FRESHNESS_SIZE = TIMESTAMP_BYTES + MAC_BYTES;

/**
 * Whom an Echo value is bound to: the end-to-end OSCORE peer (the innermost layer) when the request
 * was OSCORE-protected, else the DTLS identity, else the network address.
 */
export function requesterIdentity(context: EndpointContext): string {
  const layers = context.oscore;
  if (layers && layers.length > 0) return `oscore\0${layers[layers.length - 1]!.peer}`;
  if (context.security) return `dtls\0${context.security.mode}\0${context.security.identity}`;
  return `addr\0${context.peerKey}`;
}

export type FreshnessVerdict = 'fresh' | 'missing' | 'invalid' | 'stale';

export class EchoFreshness {
  private readonly key: Buffer;

  /** `now`: milliseconds of a monotonic clock (the endpoint's scheduler, so tests can drive it). */
  constructor(
    private readonly now: () => number,
    key: Uint8Array = randomBytes(32),
  ) {
    this.key = Buffer.from(key);
  }

  /** A new Echo value for this requester, time-stamped now. */
  issue(context: EndpointContext): Uint8Array {
    return this.issueFor(requesterIdentity(context));
  }

  /** Whether `echo` was issued by this server to this requester no more than maxAgeMs ago. */
  verify(echo: Uint8Array | undefined, context: EndpointContext, maxAgeMs: number): FreshnessVerdict {
    return this.verifyFor(echo, requesterIdentity(context), maxAgeMs);
  }

  /** issue() for a requester named by the caller (e.g. an OSCORE recipient, server/oscore.ts). */
  issueFor(identity: string): Uint8Array {
    const timestamp = Buffer.alloc(TIMESTAMP_BYTES);
    timestamp.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(this.now()))));
    return Buffer.concat([timestamp, this.mac(timestamp, identity)]);
  }

  /** verify() for a requester named by the caller. */
  verifyFor(echo: Uint8Array | undefined, identity: string, maxAgeMs: number): FreshnessVerdict {
    if (echo === undefined) return 'missing';
    if (echo.length !== ECHO_FRESHNESS_SIZE) return 'invalid';
    const value = Buffer.from(echo);
    const timestamp = value.subarray(0, TIMESTAMP_BYTES);
    if (!timingSafeEqual(value.subarray(TIMESTAMP_BYTES), this.mac(timestamp, identity))) return 'invalid';
    const age = Math.floor(this.now()) - Number(timestamp.readBigUInt64BE());
    return age >= 0 && age <= maxAgeMs ? 'fresh' : 'stale';
  }

  private mac(timestamp: Buffer, identity: string): Buffer {
    return createHmac('sha256', this.key).update(timestamp).update(identity, 'utf8').digest().subarray(0, MAC_BYTES);
  }
}
