/** A context store by its name: `redis://HOST:PORT[/DB]` (or rediss:// for TLS) or a directory for the file store. */
import { FileContextStore } from './file-store.js';
import { RedisContextStore, type RedisStoreOptions } from './redis-store.js';
import type { ContextStore } from './types.js';

export async function openContextStore(location: string, options: RedisStoreOptions = {}): Promise<ContextStore> {
  if (/^rediss?:\/\//i.test(location)) return RedisContextStore.open(location, options);
  return new FileContextStore(location.replace(/^file:\/\//i, ''));
}
