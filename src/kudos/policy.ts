/**
 * When a peer starts KUDOS on its own (draft-ietf-core-oscore-key-update §4.3: "approaching the
 * limits for the corresponding key usage", the application's policies): after N messages on one
 * context, after T time, and always before the AEAD's confidentiality limit.
 *
 * What is counted: the encryptions under the current Sender Key, which is the context's Sender
 * Sequence Number — every message this stack protects under KUDOS carries its own Partial IV —
 * and survives restarts (the session resumes above its reservation, RFC 8613 B.1.1). A count kept
 * in memory would start over at every restart and never reach the limit on a server restarted
 * more often than that.
 *
 * The limits (q, encryptions per key). The KUDOS draft names the limits of
 * draft-ietf-core-oscore-key-limits as "hard limits" (§4.3) but that draft is not among the
 * specifications we hold; the values here come from the COSE algorithms specification we hold
 * (draft-ietf-cose-rfc8152bis-algs-11):
 * - AES-GCM (1, 2, 3): 2^32 (§4.1.1, "MUST NOT exceed 2^32");
 * - AES-CCM with a 128-bit tag (30–33): 2^23 (§4.2.1, after the QUIC analysis);
 * - AES-CCM with a 64-bit tag (10–13, 10 being OSCORE's mandatory algorithm): §4.2.1 says the
 *   limits "are significantly smaller" than 2^23 for it without giving one; we take 2^20, the q of
 *   draft-ietf-core-oscore-key-limits for these algorithms (cited by the KUDOS draft, §1, §4.3);
 * - ChaCha20/Poly1305 (24): 2^24.5 (§4.3.1, after the QUIC analysis);
 * - any other algorithm: the smallest of these, 2^20.
 * An update starts at 90 % of q, so it completes before the limit; a configured `maxMessages`
 * lower than that wins.
 */

export interface KudosPolicySettings {
  /** Start an update after this many messages protected with the current context (its Sender Sequence Number). */
  maxMessages?: number;
  /** Start an update when the current context is this old (ms since it was established or loaded). */
  maxAgeMs?: number;
}

const Q_LIMITS = new Map<number, number>([
  [1, 2 ** 32],
  [2, 2 ** 32],
  [3, 2 ** 32],
  [10, 2 ** 20],
  [11, 2 ** 20],
  [12, 2 ** 20],
  [13, 2 ** 20],
  [30, 2 ** 23],
  [31, 2 ** 23],
  [32, 2 ** 23],
  [33, 2 ** 23],
  [24, 2 ** 24.5],
]);
const SMALLEST_LIMIT = 2 ** 20;

/** The encryptions under one Sender Key after which an update starts: 90 % of the AEAD's q (see above). */
export function aeadMessageLimit(aead: number): number {
  return Math.floor((Q_LIMITS.get(aead) ?? SMALLEST_LIMIT) * 0.9);
}

export class KudosPolicy {
  readonly #maxMessages: number;
  readonly #maxAgeMs: number | undefined;
  readonly #aeadLimit: number;
  readonly #now: () => number;
  /** Where the `maxMessages` period started (0: at the context's first message). */
  #base = 0;
  #since: number;

  constructor(settings: KudosPolicySettings, aead: number, now: () => number = Date.now) {
    for (const [name, value] of Object.entries(settings)) {
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) throw new RangeError(`KUDOS policy ${name} must be a positive integer, not ${String(value)}`);
    }
    this.#maxMessages = settings.maxMessages ?? Infinity;
    this.#aeadLimit = aeadMessageLimit(aead);
    this.#maxAgeMs = settings.maxAgeMs;
    this.#now = now;
    this.#since = now();
  }

  /** `encryptions`: the messages protected under the current Sender Key so far (KudosSession.sentWithCurrent). */
  due(encryptions: number): boolean {
    if (encryptions >= this.#aeadLimit) return true; // a hard limit (§4.3): no postponing it
    return encryptions - this.#base >= this.#maxMessages || (this.#maxAgeMs !== undefined && this.#now() - this.#since >= this.#maxAgeMs);
  }

  /** An update completed: a new Sender Key, counted from its first message. */
  reset(): void {
    this.#base = 0;
    this.#since = this.#now();
  }

  /** An update failed (a peer without KUDOS, a lost answer): try again after another period. */
  postpone(encryptions: number): void {
    this.#base = encryptions;
    this.#since = this.#now();
  }
}

/**
 * The integrity limit v: failed decryptions under one Recipient Key after which the key is no
 * longer used (integrity.ts). From the COSE algorithms specification (draft-ietf-cose-rfc8152bis-algs-11):
 * - AES-GCM (1, 2, 3): 2^36 (§4.1.1, "the number of failed message decryptions should be limited to 2^36");
 * - AES-CCM with a 128-bit tag (30–33): 2^23 (§4.2.1, "If the number of failed decryptions exceeds
 *   2^23 then a rekeying operation should occur");
 * - AES-CCM with a 64-bit tag (10–13): §4.2.1 gives none ("significantly smaller"); we take 2^14,
 *   the v of draft-ietf-core-oscore-key-limits for these algorithms (as for q above);
 * - ChaCha20/Poly1305 (24): 2^36 (§4.3.1, the same text as AES-GCM's);
 * - any other algorithm: the smallest of these, 2^14.
 * Unlike q, v is not reached by our own traffic, so it applies as it is, not at 90 %.
 */
const V_LIMITS = new Map<number, number>([
  [1, 2 ** 36],
  [2, 2 ** 36],
  [3, 2 ** 36],
  [10, 2 ** 14],
  [11, 2 ** 14],
  [12, 2 ** 14],
  [13, 2 ** 14],
  [30, 2 ** 23],
  [31, 2 ** 23],
  [32, 2 ** 23],
  [33, 2 ** 23],
  [24, 2 ** 36],
]);
const SMALLEST_INTEGRITY_LIMIT = 2 ** 14;

export function aeadIntegrityLimit(aead: number): number {
  return V_LIMITS.get(aead) ?? SMALLEST_INTEGRITY_LIMIT;
}
