/**
 * When a peer starts KUDOS on its own (draft-ietf-core-oscore-key-update §2: "approaching key
 * usage limits" and the application's own reasons): after N messages protected, after T time on
 * one context, and always before the AEAD's usage limit.
 *
 * The limit: draft-ietf-core-oscore-key-limits (cited by the draft, §1 and §4.6; not among the
 * specs we hold) bounds q, the encryptions under one key, at 2^20 for the 64-bit-tag AES-CCM
 * algorithms (10, 12) and far higher for the others. We count our own encryptions (the sender key)
 * and start an update at 90% of that q, so the update completes before the limit; a configured
 * `maxMessages` lower than that wins.
 */

export interface KudosPolicySettings {
  /** Start an update after this many messages protected with the current context. */
  maxMessages?: number;
  /** Start an update when the current context is this old (ms since it was established or loaded). */
  maxAgeMs?: number;
}

/** AEAD algorithms with a 64-bit tag, whose q limit is 2^20 (draft-ietf-core-oscore-key-limits). */
const SHORT_TAG_AEADS = new Set([10, 12]);
const SHORT_TAG_LIMIT = 2 ** 20;
/** 2^32 for the others, a conservative bound for AES-GCM's q. */
const DEFAULT_LIMIT = 2 ** 32;

export function aeadMessageLimit(aead: number): number {
  return Math.floor((SHORT_TAG_AEADS.has(aead) ? SHORT_TAG_LIMIT : DEFAULT_LIMIT) * 0.9);
}

export class KudosPolicy {
  readonly #maxMessages: number;
  readonly #maxAgeMs: number | undefined;
  readonly #now: () => number;
  #messages = 0;
  #since: number;

  constructor(settings: KudosPolicySettings, aead: number, now: () => number = Date.now) {
    for (const [name, value] of Object.entries(settings)) {
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) throw new RangeError(`KUDOS policy ${name} must be a positive integer, not ${String(value)}`);
    }
    this.#maxMessages = Math.min(settings.maxMessages ?? Infinity, aeadMessageLimit(aead));
    this.#maxAgeMs = settings.maxAgeMs;
    this.#now = now;
    this.#since = now();
  }

  /** One more message protected with the current context. */
  count(): void {
    this.#messages++;
  }

  due(): boolean {
    return this.#messages >= this.#maxMessages || (this.#maxAgeMs !== undefined && this.#now() - this.#since >= this.#maxAgeMs);
  }

  /** An update completed: counting starts over for CTX_NEW. */
  reset(): void {
    this.#messages = 0;
    this.#since = this.#now();
  }
}
