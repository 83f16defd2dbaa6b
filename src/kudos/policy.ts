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
 * The limits (q, encryptions per key) are those of draft-ietf-core-oscore-key-limits §2.1.1, which
 * the KUDOS draft names as the hard limits (§1, §2, §4.3). That draft is not among the
 * specifications we hold; we read §2.1.1 in the editor's copy in the CoRE WG's repository
 * (core-wg/oscore-key-limits). It targets an integrity and confidentiality advantage of at most 2^-64 and
 * recommends (q, v, l) = (2^20, 2^20, 2^10 blocks) for AES-CCM with a 128-bit tag (30–33),
 * AES-GCM (1, 2, 3) and ChaCha20/Poly1305 (24), and (2^20, 2^14, 2^8 blocks) for AES-CCM with a
 * 64-bit tag (10–13; 10 is OSCORE's mandatory algorithm). So q is 2^20 for every algorithm, and
 * for any other too. The COSE algorithms specification allows far more for some (2^32 encryptions
 * under AES-GCM, draft-ietf-cose-rfc8152bis-algs-11 §4.1.1) but for a weaker target; the OSCORE
 * document is the one KUDOS points to, and it is the stricter.
 * An update starts at 90 % of q, so it completes before the limit; a configured `maxMessages`
 * lower than that wins.
 */

export interface KudosPolicySettings {
  /** Start an update after this many messages protected with the current context (its Sender Sequence Number). */
  maxMessages?: number;
  /** Start an update when the current context is this old (ms since it was established or loaded). */
  maxAgeMs?: number;
}

/** q per AEAD algorithm (see above): the same 2^20 for each, kept per algorithm as key-limits' table is. */
const Q_LIMITS = new Map<number, number>([1, 2, 3, 10, 11, 12, 13, 24, 30, 31, 32, 33].map((alg) => [alg, 2 ** 20]));
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
 * longer used (integrity.ts), from draft-ietf-core-oscore-key-limits §2.1.1 as q above: 2^14 for
 * AES-CCM with a 64-bit tag (10–13), 2^20 for every other algorithm. An unknown algorithm gets the
 * smaller, 2^14. Unlike q, v is not reached by our own traffic, so it applies as it is, not at 90 %.
 */
const INTEGRITY_LIMITS = new Map<number, number>([
  [1, 2 ** 20],
  [2, 2 ** 20],
  [3, 2 ** 20],
  [10, 2 ** 14],
  [11, 2 ** 14],
  [12, 2 ** 14],
  [13, 2 ** 14],
  [24, 2 ** 20],
  [30, 2 ** 20],
  [31, 2 ** 20],
  [32, 2 ** 20],
  [33, 2 ** 20],
]);
const SMALLEST_INTEGRITY_LIMIT = 2 ** 14;

export function aeadIntegrityLimit(aead: number): number {
  return INTEGRITY_LIMITS.get(aead) ?? SMALLEST_INTEGRITY_LIMIT;
}
