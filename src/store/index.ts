/** Context stores (issue 26): a server's OSCORE contexts and sequence number reservations in files or Redis. See docs/scale-out.md. */
export { StoreError, type ContextStore, type StoredContext, type ReservedBlock, type PutContextOptions } from './types.js';
export { FileContextStore } from './file-store.js';
export { RedisContextStore, type RedisStoreOptions } from './redis-store.js';
export { openContextStore } from './open.js';
export { BlockSequence } from './block-sequence.js';
export { StoreContexts, type ContextSource, type StoreContextsOptions } from './server-contexts.js';
export { encodeStoredContext, decodeStoredContext } from './records.js';
export { openStateBlob, type StateBlob } from './state-blob.js';
