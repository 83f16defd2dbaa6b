/**
 * A context store whose Sender Sequence Number reservations are timed and counted into
 * ServerMetrics; every other call goes to the store unchanged. Reservations are what a node waits
 * for (a context's first request, a block running out), so their latency — one fsync'd Redis
 * round trip — and failures are what an operator watches.
 */
import type { ContextStore, PutContextOptions, ReservedBlock, StoredContext } from '../store/types.js';
import type { ServerMetrics } from './index.js';

export class MeteredStore implements ContextStore {
  constructor(
    readonly store: ContextStore,
    private readonly metrics: ServerMetrics,
  ) {}

  get description(): string {
    return this.store.description;
  }

  async reserve(sender: string, count: number): Promise<ReservedBlock> {
    const started = performance.now();
    try {
      const block = await this.store.reserve(sender, count);
      this.metrics.reservation((performance.now() - started) / 1000, true);
      return block;
    } catch (error) {
      this.metrics.reservation((performance.now() - started) / 1000, false);
      throw error;
    }
  }

  putContext(record: StoredContext, options?: PutContextOptions): Promise<boolean> {
    return this.store.putContext(record, options);
  }

  findContext(kid: Uint8Array, idContext?: Uint8Array): Promise<StoredContext | undefined> {
    return this.store.findContext(kid, idContext);
  }

  deleteContext(kid: Uint8Array, idContext?: Uint8Array): Promise<boolean> {
    return this.store.deleteContext(kid, idContext);
  }

  contexts(): AsyncIterable<StoredContext> {
    return this.store.contexts();
  }

  readState(name: string): Promise<Uint8Array | undefined> {
    return this.store.readState(name);
  }

  writeState(name: string, data: Uint8Array): Promise<void> {
    return this.store.writeState(name, data);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
