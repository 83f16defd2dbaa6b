/**
 * A service's state as one blob in a context store (`readState`/`writeState`): read once when the
 * service starts, written after its changes. For a service that keeps its whole state in memory
 * and saves it as a unit — the broker's topics — so that a service started on another node (after
 * this one died) starts from where this one was. One writer at a time: writes are queued, and a
 * write that finds a newer one waiting is skipped (the newest state wins; none is written out of
 * order). It is not a database several live nodes can share.
 */
import type { ContextStore } from './types.js';

export interface StateBlob {
  /** Names the blob in diagnostics (`redis://…: state broker`). */
  readonly description: string;
  /** The state when the blob was opened; undefined when none was stored. */
  readonly initial: Uint8Array | undefined;
  /** Saves `data` in the background; failures go to `onError`. */
  write(data: Uint8Array): void;
  /** Resolves once every write asked for so far has finished (before closing the store). */
  settled(): Promise<void>;
}

export async function openStateBlob(store: ContextStore, name: string, options: { onError?: (error: Error) => void } = {}): Promise<StateBlob> {
  const initial = await store.readState(name);
  const onError = options.onError ?? (() => undefined);
  let pending: Uint8Array | undefined;
  let writing: Promise<void> = Promise.resolve();
  return {
    description: `${store.description}: state ${name}`,
    initial,
    write(data) {
      const first = pending === undefined;
      pending = data;
      if (!first) return; // the write already queued will take the newer data
      writing = writing.then(async () => {
        const latest = pending!;
        pending = undefined;
        await store.writeState(name, latest).catch(onError);
      });
    },
    settled: () => writing,
  };
}
