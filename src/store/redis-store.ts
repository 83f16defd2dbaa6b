/**
 * The context store in Redis, for several nodes serving the same devices (docs/scale-out.md).
 *
 * Client: node-redis (the `redis` package), Redis's own official Node client — maintained by Redis
 * alongside the server, promise-based, typed. ioredis works as well but is the older community
 * client that Redis now points new projects away from. It is loaded on first use, so a server on
 * the file store never loads it.
 *
 * Keys (prefix `coapsec:`): `ctx:SLOT` a context as the JSON of a credentials-file entry (EX for
 * EDHOC-derived ones), `ssn:SENDER` a sender's reservation counter, `state:NAME` a blob.
 *
 * Reservations are INCRBY: atomic across every node, so two nodes never get overlapping blocks.
 * They are durable only if Redis fsyncs its append-only file before answering, which it does with
 * `appendonly yes` and `appendfsync always` (a write is fsync'd before the reply is sent); `open`
 * checks both and refuses a Redis configured otherwise: after a crash of a Redis that lost the
 * last INCRBY, a node would be handed numbers it had already used — AEAD nonce reuse.
 *
 * Failures: commands are not queued while disconnected (disableOfflineQueue) and each has a time
 * limit, so a Redis that is down makes a call fail at once with a StoreError saying so — the
 * server answers 5.03 — and the client reconnects in the background.
 */
import { MAX_SENDER_SEQUENCE_NUMBER, SequenceExhaustedError } from '../credentials/sequence-store.js';
import { contextSlot, decodeStoredContext, encodeStoredContext, storedKid } from './records.js';
import { StoreError, checkStateName, type ContextStore, type PutContextOptions, type ReservedBlock, type StoredContext } from './types.js';

/** The commands this store uses, as node-redis offers them. */
interface RedisCommands {
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
  readonly isReady: boolean;
  configGet(pattern: string): Promise<Record<string, string>>;
  get(key: string): Promise<string | null>;
  set(key: string, value: string | Buffer, options?: { EX?: number; NX?: boolean }): Promise<string | null>;
  del(key: string): Promise<number>;
  mGet(keys: string[]): Promise<Array<string | null>>;
  incrBy(key: string, increment: number): Promise<number>;
  scanIterator(options: { MATCH: string; COUNT: number }): AsyncIterable<string[]>;
  withTypeMapping(mapping: Record<number, unknown>): { get(key: string): Promise<Buffer | null> };
}

export interface RedisStoreOptions {
  /** How long one command may take before it fails (ms). Default 2000. */
  commandTimeoutMs?: number;
  /**
   * Skip the `appendonly yes` / `appendfsync always` check (for a Redis whose CONFIG command is
   * renamed away and that is known to be configured so). Never for one that is not.
   */
  assumeDurable?: boolean;
}

const PREFIX = 'coapsec:';
const DEFAULT_COMMAND_TIMEOUT_MS = 2000;

export class RedisContextStore implements ContextStore {
  #closed = false;
  /** The last connection error, for diagnostics. */
  #lastError: string | undefined;

  private constructor(
    readonly description: string,
    private readonly client: RedisCommands,
    private readonly commandTimeoutMs: number,
  ) {
    client.on('error', (error) => {
      this.#lastError = error.message || (error as NodeJS.ErrnoException).code || String(error);
    });
  }

  /** Connects to `url` (redis://[user:password@]HOST:PORT[/DB]) and checks that reservations will be durable. */
  static async open(url: string, options: RedisStoreOptions = {}): Promise<RedisContextStore> {
    const description = redactedUrl(url);
    let createClient: (options: object) => unknown;
    try {
      ({ createClient } = (await import('redis')) as unknown as { createClient: typeof createClient });
    } catch (error) {
      throw new StoreError(description, `the "redis" package (node-redis) is not installed: ${(error as Error).message}`);
    }
    const timeout = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const client = createClient({
      url,
      disableOfflineQueue: true,
      socket: { connectTimeout: timeout, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 5), 1000) },
    }) as RedisCommands;
    const store = new RedisContextStore(description, client, timeout);
    try {
      await store.run('connect', () => client.connect());
      if (!options.assumeDurable) await store.checkDurability();
    } catch (error) {
      client.destroy();
      throw error;
    }
    return store;
  }

  async putContext(record: StoredContext, options: PutContextOptions = {}): Promise<boolean> {
    const key = contextKey(storedKid(record), record.context.idContext);
    const text = encodeStoredContext(record);
    const ttl = options.expiresInSeconds;
    const set = { ...(ttl !== undefined ? { EX: Math.max(1, Math.ceil(ttl)) } : {}), ...(options.onlyIfAbsent ? { NX: true } : {}) };
    // SET … NX answers null when the key exists.
    return (await this.run('SET', () => this.client.set(key, text, set))) !== null;
  }

  async findContext(kid: Uint8Array, idContext?: Uint8Array): Promise<StoredContext | undefined> {
    const key = contextKey(kid, idContext);
    const text = await this.run('GET', () => this.client.get(key));
    return text === null ? undefined : decodeStoredContext(this.description, key, text);
  }

  async deleteContext(kid: Uint8Array, idContext?: Uint8Array): Promise<boolean> {
    return (await this.run('DEL', () => this.client.del(contextKey(kid, idContext)))) > 0;
  }

  async *contexts(): AsyncIterable<StoredContext> {
    this.checkOpen();
    const iterator = this.client.scanIterator({ MATCH: `${PREFIX}ctx:*`, COUNT: 1000 })[Symbol.asyncIterator]();
    for (;;) {
      const step = await this.run('SCAN', () => iterator.next());
      if (step.done) return;
      const keys = step.value;
      if (keys.length === 0) continue;
      const texts = await this.run('MGET', () => this.client.mGet(keys));
      for (let i = 0; i < keys.length; i++) {
        const text = texts[i];
        if (text !== null && text !== undefined) yield decodeStoredContext(this.description, keys[i]!, text);
      }
    }
  }

  async reserve(sender: string, count: number): Promise<ReservedBlock> {
    if (!Number.isSafeInteger(count) || count < 1) throw new StoreError(this.description, `a reservation needs a positive count, got ${count}`);
    const key = `${PREFIX}ssn:${sender}`;
    const end = await this.run('INCRBY', () => this.client.incrBy(key, count));
    if (end > MAX_SENDER_SEQUENCE_NUMBER + 1) {
      throw new SequenceExhaustedError(`${this.description}: ${key}: all Sender Sequence Numbers up to 2^40-1 are used; this security context must be replaced (RFC 8613 §7.2.1)`);
    }
    return { start: end - count, end };
  }

  async readState(name: string): Promise<Uint8Array | undefined> {
    checkStateName(this.description, name);
    // Strings come back as text by default; a blob must come back as its bytes.
    const value = await this.run('GET', () => this.client.withTypeMapping({ [BLOB_STRING]: Buffer }).get(`${PREFIX}state:${name}`));
    return value === null ? undefined : new Uint8Array(value);
  }

  async writeState(name: string, data: Uint8Array): Promise<void> {
    checkStateName(this.description, name);
    await this.run('SET', () => this.client.set(`${PREFIX}state:${name}`, Buffer.from(data.buffer, data.byteOffset, data.byteLength)));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.client.isReady) await this.client.close().catch(() => this.client.destroy());
    else this.client.destroy();
  }

  private async checkDurability(): Promise<void> {
    const config = { ...(await this.run('CONFIG GET', () => this.client.configGet('appendonly'))), ...(await this.run('CONFIG GET', () => this.client.configGet('appendfsync'))) };
    if (config['appendonly'] !== 'yes' || config['appendfsync'] !== 'always') {
      throw new StoreError(
        this.description,
        `Redis runs with appendonly ${config['appendonly'] ?? '?'} and appendfsync ${config['appendfsync'] ?? '?'}; sequence number reservations ` +
          'need "appendonly yes" and "appendfsync always" to survive a Redis crash (RFC 8613 Appendix B.1.1)',
      );
    }
  }

  /** One command with a time limit; any failure becomes a StoreError saying which command and why. */
  private async run<T>(command: string, call: () => Promise<T>): Promise<T> {
    this.checkOpen();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.commandTimeoutMs} ms`)), this.commandTimeoutMs);
    });
    try {
      return await Promise.race([call(), expired]);
    } catch (error) {
      if (error instanceof StoreError || error instanceof SequenceExhaustedError) throw error;
      const reason = (error as Error).message || String(error);
      const connection = this.#lastError !== undefined && !this.client.isReady ? ` (connection: ${this.#lastError})` : '';
      throw new StoreError(this.description, `${command} failed: ${reason}${connection}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private checkOpen(): void {
    if (this.#closed) throw new StoreError(this.description, 'the store is closed');
  }
}

/** RESP's blob string type (node-redis RESP_TYPES.BLOB_STRING), for a type mapping without importing the client eagerly. */
const BLOB_STRING = 36;

function contextKey(kid: Uint8Array, idContext: Uint8Array | undefined): string {
  return `${PREFIX}ctx:${contextSlot(kid, idContext)}`;
}

/** The URL without its password, for messages. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return 'redis store (unparsable URL)';
  }
}
