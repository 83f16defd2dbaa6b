/**
 * A server's OSCORE contexts from a context store (issue 26): the ContextSource that
 * OscoreServerSecurity asks before unprotecting a request.
 *
 * A kid the node has not seen is looked up in the store (provisioning a device is one write every
 * node sees). Lookups of one kid are coalesced, at most `maxLookupsInFlight` run at once, and a kid
 * the store does not have is remembered as absent for `negativeCacheMs` in a cache of at most
 * `negativeCacheSize` entries (oldest out first): a flood of requests with unknown kids costs at
 * most one store round trip per kid per interval, and bounded memory.
 *
 * A context fetched from the store starts with no replay window, as after a restart (RFC 8613
 * Appendix B.1.2): its first request is answered with an Echo challenge and only a request echoing
 * it sets the window. Another node may have accepted requests with this context, so this node
 * cannot know which Partial IVs are fresh; the Echo round trip proves the client's next request
 * is new. This is what refuses a request captured on one node and replayed to another.
 * echoOnRestart is therefore always on for stored contexts, whatever the record says.
 *
 * Its Sender Sequence Numbers come from the store's block reservations (block-sequence.ts).
 */
import { OscoreSecurityContext } from '../oscore/security-context.js';
import { BlockSequence } from './block-sequence.js';
import { contextSlot } from './records.js';
import { StoreError, type ContextStore, type StoredContext } from './types.js';

/** What OscoreServerSecurity asks for contexts it does not hold (server/oscore.ts). */
export interface ContextSource {
  /**
   * A context for a kid (and kid context) not in memory: undefined when it is known to be absent
   * (no store round trip), else a promise of the context, or of undefined when the store has none.
   * Rejects with a StoreError when the store cannot answer.
   */
  lookup(kid: Uint8Array, kidContext: Uint8Array | undefined): Promise<OscoreSecurityContext | undefined> | undefined;
  /** Told each failure of a reservation a request waited for (the server logs it). */
  onError?(error: Error): void;
}

export interface StoreContextsOptions {
  /** Kids remembered as absent, at most. Default 10,000. */
  negativeCacheSize?: number;
  /** How long a kid is remembered as absent (ms). Default 5,000. */
  negativeCacheMs?: number;
  /** Store lookups running at once, at most; beyond, requests get 5.03. Default 256. */
  maxLookupsInFlight?: number;
  /** Milliseconds of a monotonic clock. Default performance.now(). */
  now?: () => number;
  /** Told each store failure (the server logs it; the client gets a 5.03 without the details). */
  onError?: (error: Error) => void;
}

export class StoreContexts implements ContextSource {
  readonly #negative = new Map<string, number>();
  readonly #loading = new Map<string, Promise<OscoreSecurityContext | undefined>>();
  readonly #negativeCacheSize: number;
  readonly #negativeCacheMs: number;
  readonly #maxLookups: number;
  readonly #now: () => number;
  readonly #onError: ((error: Error) => void) | undefined;

  constructor(
    readonly store: ContextStore,
    options: StoreContextsOptions = {},
  ) {
    this.#negativeCacheSize = options.negativeCacheSize ?? 10_000;
    this.#negativeCacheMs = options.negativeCacheMs ?? 5_000;
    this.#maxLookups = options.maxLookupsInFlight ?? 256;
    this.#now = options.now ?? (() => performance.now());
    this.#onError = options.onError;
  }

  lookup(kid: Uint8Array, kidContext: Uint8Array | undefined): Promise<OscoreSecurityContext | undefined> | undefined {
    const slot = contextSlot(kid, kidContext);
    const absentUntil = this.#negative.get(slot);
    if (absentUntil !== undefined) {
      if (absentUntil > this.#now()) return undefined;
      this.#negative.delete(slot);
    }
    const running = this.#loading.get(slot);
    if (running) return running;
    if (this.#loading.size >= this.#maxLookups) {
      const busy = new StoreError(this.store.description, `${this.#maxLookups} context lookups are already waiting for the store`);
      this.#onError?.(busy);
      return Promise.reject(busy);
    }
    const loading = this.store.findContext(kid, kidContext).then(
      (record) => {
        if (record !== undefined) return this.contextOf(record);
        this.rememberAbsent(slot);
        return undefined;
      },
      (error: Error) => this.failed(error),
    );
    this.#loading.set(slot, loading);
    void loading.then(
      () => this.#loading.delete(slot),
      () => this.#loading.delete(slot),
    );
    return loading;
  }

  onError(error: Error): void {
    this.#onError?.(error);
  }

  /** The run-time context of a stored one, numbering from the store's reservations. */
  contextOf(record: StoredContext): OscoreSecurityContext {
    const config = record.context;
    const sequence = new BlockSequence(this.store, undefined, config.sequenceSaveInterval);
    // restarted = true and echoOnRestart: B.1.2's Echo before this node trusts any Partial IV.
    const context = new OscoreSecurityContext({ ...config, name: record.name, echoOnRestart: true }, sequence, true);
    sequence.of(context);
    return context;
  }

  /** Every stored context, made and handed to `install` (a node preloading the store); how many. */
  async preload(install: (context: OscoreSecurityContext) => void): Promise<number> {
    let count = 0;
    for await (const record of this.store.contexts()) {
      install(this.contextOf(record));
      count++;
    }
    return count;
  }

  private rememberAbsent(slot: string): void {
    this.#negative.delete(slot);
    this.#negative.set(slot, this.#now() + this.#negativeCacheMs);
    while (this.#negative.size > this.#negativeCacheSize) this.#negative.delete(this.#negative.keys().next().value!);
  }

  private failed(error: Error): never {
    this.#onError?.(error);
    throw error;
  }
}
