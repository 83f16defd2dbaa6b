/**
 * Sender Sequence Numbers from a context store's block reservations (RFC 8613 Appendix B.1.1):
 * the node holds a block [n, n+K) that the store reserved durably for it, hands out numbers from
 * it synchronously (protecting a message cannot wait for a network), and reserves the next block
 * in the background when half of the current one is left (a burst of up to K/2 numbers — notifications
 * to many observers at once — then finds the next block there). It never hands out a number it has
 * not reserved: when the block is used up before the next reservation arrived (the store is slow
 * or down), next() throws a StoreError and the server answers 5.03 — never a guess.
 *
 * Every node sharing a context has blocks of its own (INCRBY in Redis is atomic), so two nodes
 * never use one number: the (key, nonce) pairs of the context's sender stay unique across the farm.
 * The rest of a node's block is lost when it stops (B.1.1's price for writing once per K).
 */
import { SequenceExhaustedError, sequenceFileName } from '../credentials/sequence-store.js';
import type { OscoreSecurityContext, SequenceSource } from '../oscore/security-context.js';
import { StoreError, type ContextStore, type ReservedBlock } from './types.js';

export class BlockSequence implements SequenceSource {
  #next = 0;
  #end = 0;
  /** The block reserved ahead, used when the current one runs out. */
  #ahead: ReservedBlock | undefined;
  #reserving: Promise<void> | undefined;
  /** Why the last reservation failed, for the error of a next() that has nothing to hand out. */
  #failure: Error | undefined;
  /**
   * sequenceFileName of the sender (the counter's name in the store), or the context to work it
   * out from on first use: two SHA-256 runs per context a node may never serve. A node may hold
   * 100,000 of these, so there is no closure and nothing precomputed per object.
   */
  #sender: string | OscoreSecurityContext | undefined;

  constructor(
    /** A context store, or anything else that reserves blocks durably (the trust anchor's counters). */
    private readonly store: Pick<ContextStore, 'description' | 'reserve'>,
    /** The sender's name; or undefined, and the context is given to `of` once made. */
    sender: string | undefined,
    /** B.1.1's K: numbers per reservation. */
    readonly blockSize: number,
  ) {
    if (!Number.isSafeInteger(blockSize) || blockSize < 1) throw new RangeError(`the reservation block size must be a positive integer, got ${blockSize}`);
    this.#sender = sender;
  }

  /** Names the counter by this context's sender identity (when the constructor was given no name). */
  of(context: OscoreSecurityContext): void {
    this.#sender ??= context;
  }

  get sender(): string {
    const s = this.#sender;
    if (s === undefined) throw new TypeError('BlockSequence: no sender name and no context');
    return typeof s === 'string' ? s : (this.#sender = sequenceFileName(s.senderIdentity()));
  }

  next(): number {
    if (this.#next >= this.#end) {
      const ahead = this.#ahead;
      if (ahead === undefined) {
        this.reserveAhead();
        const why = this.#failure ? `: ${this.#failure.message}` : ' yet (the reservation is on its way)';
        if (this.#failure instanceof SequenceExhaustedError) throw this.#failure;
        throw new StoreError(this.store.description, `no reserved Sender Sequence Number for ${this.sender}${why}`);
      }
      this.#ahead = undefined;
      this.#next = ahead.start;
      this.#end = ahead.end;
    }
    const number = this.#next++;
    if (this.#end - this.#next <= this.blockSize / 2) this.reserveAhead();
    return number;
  }

  /** Numbers that can be handed out now without waiting. */
  get available(): number {
    return this.#end - this.#next + (this.#ahead ? this.#ahead.end - this.#ahead.start : 0);
  }

  /** Whether `number` is reserved for this node and not handed out yet. */
  holds(number: number): boolean {
    const ahead = this.#ahead;
    return (number >= this.#next && number < this.#end) || (ahead !== undefined && number >= ahead.start && number < ahead.end);
  }

  /** Undefined when a number can be handed out now; else the reservation that makes one available (rejects with its failure). */
  ready(): Promise<void> | undefined {
    if (this.available > 0) return undefined;
    return this.reserveAhead();
  }

  /** Starts a reservation unless one is running or a block is already held in reserve. */
  private reserveAhead(): Promise<void> {
    if (this.#reserving) return this.#reserving;
    if (this.#ahead) return Promise.resolve();
    const reserving = this.store.reserve(this.sender, this.blockSize).then(
      (block) => {
        this.#failure = undefined;
        if (this.#next >= this.#end) {
          this.#next = block.start;
          this.#end = block.end;
        } else {
          this.#ahead = block;
        }
      },
      (error: Error) => {
        this.#failure = error;
        throw error;
      },
    );
    this.#reserving = reserving.finally(() => {
      this.#reserving = undefined;
    });
    // A background reservation's failure is reported by the next() or ready() that needs it.
    this.#reserving.catch(() => undefined);
    return this.#reserving;
  }
}
