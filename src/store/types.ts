/**
 * The context store (issue 26): where a server's OSCORE state lives when more than one process
 * serves the same devices. Every method is async, since the store may be across a network (Redis),
 * and every failure is a StoreError naming the store and the reason, so a server can answer 5.03
 * with a diagnostic instead of crashing.
 *
 * What a store holds:
 * - security contexts with their peer names, keyed by the kid a request carries (the client's
 *   Sender ID = our Recipient ID) and the ID Context: provisioning a device is one write;
 * - Sender Sequence Number reservations (RFC 8613 Appendix B.1.1): `reserve(sender, n)` hands out
 *   the block [start, start + n) of one sender's counter, atomically across every process using
 *   the store, and durably before it returns — a number is never used unless it was reserved;
 * - named state blobs for services that keep one (the trust anchor's counters, the broker's topics).
 */
import type { OscoreContextConfig } from '../credentials/oscore-params.js';

/** One server-side security context as stored: the context (one recipient, the kid) and its peer name. */
export interface StoredContext {
  /** The authenticated peer's name, for authorization decisions. */
  name: string;
  /** The context, with exactly one Recipient ID: the kid of the peer's requests. */
  context: OscoreContextConfig;
}

/** [start, end): the numbers a reservation handed out. */
export interface ReservedBlock {
  start: number;
  end: number;
}

export interface PutContextOptions {
  /**
   * Forget the context after this many seconds (an EDHOC-derived context lives as long as its
   * session). Default: kept until deleted.
   */
  expiresInSeconds?: number;
  /** Write only if the slot is empty (two nodes choosing one kid by chance). Default false. */
  onlyIfAbsent?: boolean;
}

export interface ContextStore {
  /** Names the store in diagnostics (`redis://127.0.0.1:6379/0`, `file store DIR`); never a password. */
  readonly description: string;

  /** Adds or replaces the context for (its Recipient ID, its ID Context); false when `onlyIfAbsent` found one there. */
  putContext(record: StoredContext, options?: PutContextOptions): Promise<boolean>;
  /**
   * The context whose Recipient ID is `kid` and whose ID Context is `idContext` (absent: the one
   * stored without an ID Context); undefined when there is none.
   */
  findContext(kid: Uint8Array, idContext?: Uint8Array): Promise<StoredContext | undefined>;
  /** Removes it; true when there was one. */
  deleteContext(kid: Uint8Array, idContext?: Uint8Array): Promise<boolean>;
  /** Every stored context, in no particular order (a node preloading them all). */
  contexts(): AsyncIterable<StoredContext>;

  /**
   * Reserves the next `count` Sender Sequence Numbers of the sender named `sender`
   * (sequenceFileName of its identity): durable before this resolves, and disjoint from every
   * block any process got for that sender before. Fails with SequenceExhaustedError past 2^40.
   */
  reserve(sender: string, count: number): Promise<ReservedBlock>;

  /** A named state blob (trust anchor, broker), or undefined. Names: [a-z0-9._-]+. */
  readState(name: string): Promise<Uint8Array | undefined>;
  /** Replaces it durably. */
  writeState(name: string, data: Uint8Array): Promise<void>;

  close(): Promise<void>;
}

/** What went wrong with which store: the message starts with the store's description. */
export class StoreError extends Error {
  constructor(
    readonly store: string,
    reason: string,
  ) {
    super(`${store}: ${reason}`);
    this.name = 'StoreError';
  }
}

const STATE_NAME = /^[a-z0-9._-]{1,100}$/;

/** Refuses a state name that could escape the store's name space (a path, a Redis pattern). */
export function checkStateName(store: string, name: string): void {
  if (!STATE_NAME.test(name) || name.startsWith('.')) throw new StoreError(store, `"${name}" is not a state name (letters, digits, ".", "_", "-")`);
}
