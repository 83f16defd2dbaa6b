/**
 * The broker's limits, who a client is, and its publication rate limiter (draft-ietf-core-coap-pubsub
 * §3.4). Every piece of state a client can make the broker allocate is bounded by one of these.
 */
import type { EndpointContext } from '../exchange/context.js';

export interface BrokerLimits {
  /** Topics the broker holds at once. Default 1000. */
  maxTopics: number;
  /** Topics one client (see clientIdentity) may have created and not deleted. Default 32. */
  maxTopicsPerClient: number;
  /** Bytes of one publication; larger ones get 4.13 with Size1 (RFC 7959 §2.9.3). Default 8192. */
  maxPublicationSize: number;
  /**
   * The most subscribers of one topic. A topic's max-subscribers is a hint (§2.2.1): the broker
   * stores the smaller of it and this, and this when the creator gave none. Default 1000.
   */
  maxSubscribersPerTopic: number;
  /** Publications per second one client may sustain, over all topics (§3.4). Default 100. */
  publicationsPerSecond: number;
  /** Publications a client may send in a burst above that rate. Default 200. */
  publicationBurst: number;
}

export const DEFAULT_BROKER_LIMITS: BrokerLimits = {
  maxTopics: 1000,
  maxTopicsPerClient: 32,
  maxPublicationSize: 8192,
  maxSubscribersPerTopic: 1000,
  publicationsPerSecond: 100,
  publicationBurst: 200,
};

/**
 * Who sent a request, for limits and authorization: the innermost OSCORE peer when OSCORE
 * authenticated it, else the DTLS identity, else the sender's IP address (not its port: a client
 * must not escape a per-client limit by changing ports).
 */
export function clientIdentity(context: EndpointContext): string {
  const oscore = context.oscore;
  if (oscore && oscore.length > 0) return `oscore:${oscore[oscore.length - 1]!.peer}`;
  if (context.security) return `dtls:${context.security.mode}:${context.security.identity}`;
  return `address:${context.peer.address}`;
}

/** True when OSCORE or DTLS authenticated the client (its identity is not just an address). */
export const isAuthenticated = (context: EndpointContext): boolean => (context.oscore !== undefined && context.oscore.length > 0) || context.security !== undefined;

/** Token buckets per client; the least recently used client is forgotten past `maxClients`. */
export class PublicationRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number,
    private readonly maxClients = 4096,
  ) {}

  /** 0 when the client may publish now (a token is taken), else the seconds until it may. */
  take(client: string): number {
    const now = this.now();
    let bucket = this.buckets.get(client);
    if (bucket) {
      this.buckets.delete(client);
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
      bucket.at = now;
    } else {
      if (this.buckets.size >= this.maxClients) this.buckets.delete(this.buckets.keys().next().value!);
      bucket = { tokens: this.burst, at: now };
    }
    this.buckets.set(client, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.perSecond));
  }
}
