/**
 * The integrity limit of a Recipient Key: failed decryptions (forgery attempts) counted per key,
 * for draft-ietf-core-oscore-key-update §4.3 ("The expiration time of an OSCORE Security Context
 * and the key usage limits are hard limits. Once reached, a peer MUST stop using the keying
 * material in the OSCORE Security Context for exchanging application data with the other peer and
 * has to perform a rekeying before resuming secure communication") and §4.6 (a CTX_OLD whose
 * Recipient Key reached its limits is not retained).
 *
 * The count survives restarts the way Sender Sequence Numbers do (RFC 8613 Appendix B.1.1): the
 * record holds an upper bound, raised by `step` at a time, so a forgery stream costs one durable
 * write per `step` failures, not one per failure, and a restart resumes at the bound — over the
 * true count by less than `step`, never under it.
 */

export class FailedDecryptions {
  readonly limit: number;
  #count: number;
  #persistedUpTo: number;

  /** `persisted`: the bound read from the record (0 for a new key). */
  constructor(limit: number, persisted: number) {
    this.limit = limit;
    this.#count = persisted;
    this.#persistedUpTo = persisted;
  }

  get count(): number {
    return this.#count;
  }

  get reached(): boolean {
    return this.#count >= this.limit;
  }

  /** The bound to write: every failure counted so far is below it. */
  get persistedUpTo(): number {
    return this.#persistedUpTo;
  }

  /**
   * Counts one failure; true when the record must be rewritten (the bound was reached). At the
   * limit counting stops: the key is refused from then on, and a forgery stream past it must not
   * cost a write each.
   */
  record(): boolean {
    if (this.reached) return false;
    const mustPersist = this.#count >= this.#persistedUpTo;
    // 64 writes at most until the limit, whatever the limit; at least one failure per write.
    if (mustPersist) this.#persistedUpTo = Math.min(this.limit, this.#count + Math.max(1, Math.floor(this.limit / 64)));
    this.#count += 1;
    return mustPersist;
  }
}
