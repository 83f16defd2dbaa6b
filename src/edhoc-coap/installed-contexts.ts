/**
 * The OSCORE contexts EDHOC made on a server (issue 21: one per device, up to 100,000 and more),
 * held as a server's configured contexts are (src/oscore/context-table.ts): as bytes, a device's
 * context materialised on use into a bounded LRU of objects, and one OscoreServerSecurity for all
 * of them. What must survive a context being put away and brought back is the table's to keep:
 * the Sender Sequence Number (one source per context for its whole life, so no number is handed
 * out twice, RFC 8613 §7.2.1 and Appendix B.1), the replay window with its lower limit and the
 * Echo state (§7.4, Appendix B.1.2) — a request accepted before is still a replay after.
 *
 * Bounded, since every peer that completes EDHOC makes one: at most `max` contexts; when full, the
 * one installed first is dropped (first in, first out: its client gets 4.01 "Security context not
 * found" and runs EDHOC again). The installation order is a ring of table entry numbers, and the
 * authenticated peer of each context a slot of an array by entry: no object per context beyond
 * the table's.
 */
import type { PeerCredential } from '../edhoc/credentials.js';
import { equalBytes } from '../oscore/context.js';
import { ContextTable } from '../oscore/context-table.js';
import { OscoreSecurityContext, VolatileSequence, type SecurityContextInput, type SequenceSource } from '../oscore/security-context.js';
import { OscoreServerSecurity } from '../server/oscore.js';

export interface InstalledContextsOptions {
  /** Contexts held at most. */
  readonly max: number;
  /** Contexts kept materialised at once (the table's LRU). Default the table's (1,024). */
  readonly active?: number;
  /** Milliseconds of the server's clock, for the age of Echo values. */
  readonly now: () => number;
  /** Told the Recipient ID of each context dropped (the bound, `drop`, or a context installed under its kid). */
  readonly onDropped?: (recipientId: Uint8Array) => void;
}

export class InstalledContexts {
  readonly #table: ContextTable;
  /** Unprotects every request whose kid names one of these contexts. */
  readonly security: OscoreServerSecurity;
  readonly #max: number;
  readonly #onDropped: ((recipientId: Uint8Array) => void) | undefined;
  /** Table entries in installation order, oldest at #head: a ring, grown up to #max slots. */
  #order = new Int32Array(16);
  #head = 0;
  #count = 0;
  /** The authenticated peer by table entry (entries are reused once dropped). */
  readonly #peers: (PeerCredential | undefined)[] = [];
  /** The sequence source of the context being installed, for the table to take (see install). */
  #installing: SequenceSource | undefined;

  constructor(options: InstalledContextsOptions) {
    if (!Number.isInteger(options.max) || options.max < 1) throw new RangeError(`maxContexts is a whole number of at least 1, not ${options.max}`);
    this.#max = options.max;
    this.#onDropped = options.onDropped;
    this.#table = new ContextTable({
      ...(options.active !== undefined ? { active: options.active } : {}),
      // EDHOC contexts live in memory only (their keys are never written), so none resumes (B.1.2).
      sequences: { source: () => this.#installing ?? new VolatileSequence(0), resumes: () => false },
    });
    this.security = new OscoreServerSecurity([], { now: options.now, table: this.#table });
  }

  get size(): number {
    return this.#count;
  }

  /** Whether a context here has this Recipient ID (nothing is materialised). */
  has(kid: Uint8Array): boolean {
    return this.#table.has(kid);
  }

  /** The peer EDHOC authenticated for the context with this Recipient ID. */
  peerFor(kid: Uint8Array): PeerCredential | undefined {
    const entry = this.#table.entryOf(kid);
    return entry < 0 ? undefined : this.#peers[entry];
  }

  /**
   * Installs a context (its one recipient being C_R), dropping the oldest when full, and returns
   * it materialised: the object that serves its first requests. `sequence`: its Sender Sequence
   * Numbers (default from 0 in memory), taken by the table as the context's source for its life.
   */
  install(input: SecurityContextInput, sequence: SequenceSource | undefined, peer: PeerCredential): OscoreSecurityContext {
    const kid = input.recipientIds[0]!;
    const existing = this.#table.entryOf(kid);
    if (existing >= 0) this.#dropAt(this.#positionOf(existing));
    while (this.#count >= this.#max) this.#dropAt(0);
    const entry = this.#table.add(input);
    let context: OscoreSecurityContext;
    this.#installing = sequence;
    try {
      context = this.#table.find(kid, undefined)!.context;
    } finally {
      this.#installing = undefined;
    }
    this.#peers[entry] = peer;
    this.#append(entry);
    return context;
  }

  /** Drops `context` if it is still installed (the same keys, not only the same kid); false if not. */
  drop(context: OscoreSecurityContext): boolean {
    const kid = context.primaryRecipient.recipientId;
    const entry = this.#table.entryOf(kid);
    if (entry < 0) return false;
    const installed = this.#table.find(kid, undefined)!.context;
    if (installed !== context && !equalBytes(installed.senderIdentity().masterSecret, context.senderIdentity().masterSecret)) return false;
    this.#dropAt(this.#positionOf(entry));
    return true;
  }

  /** Every context, oldest first, each materialised (for inspection: a large server asks `size` and `has`). */
  all(): OscoreSecurityContext[] {
    const contexts: OscoreSecurityContext[] = [];
    for (let i = 0; i < this.#count; i++) contexts.push(this.#table.find(this.#table.kidOf(this.#at(i)), undefined)!.context);
    return contexts;
  }

  #at(position: number): number {
    return this.#order[(this.#head + position) % this.#order.length]!;
  }

  #positionOf(entry: number): number {
    for (let i = 0; i < this.#count; i++) if (this.#at(i) === entry) return i;
    throw new RangeError(`entry ${entry} is not in the installation order`);
  }

  #append(entry: number): void {
    if (this.#count === this.#order.length) {
      const larger = new Int32Array(Math.min(this.#max, this.#order.length * 2));
      for (let i = 0; i < this.#count; i++) larger[i] = this.#at(i);
      this.#order = larger;
      this.#head = 0;
    }
    this.#order[(this.#head + this.#count) % this.#order.length] = entry;
    this.#count++;
  }

  /** Drops the context at `position` of the installation order (0: the oldest); later ones move up (a drop other than the oldest is rare: ACE's). */
  #dropAt(position: number): void {
    const entry = this.#at(position);
    const order = this.#order;
    for (let i = position; i > 0; i--) order[(this.#head + i) % order.length] = order[(this.#head + i - 1) % order.length]!;
    this.#head = (this.#head + 1) % order.length;
    this.#count--;
    const kid = this.#table.kidOf(entry);
    this.#table.remove(entry);
    this.#peers[entry] = undefined;
    this.#onDropped?.(kid);
  }
}
