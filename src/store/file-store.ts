/**
 * The context store in a directory: the default, no server needed, one node. Contexts are one file
 * each (`contexts/SLOT.json`), reservations are today's sequence number files (`sender-….ssn`,
 * src/credentials/sequence-store.ts: one decimal number, fsync'd before use, Appendix B.1.1), and
 * state blobs are `state/NAME`. Every write goes through writeFileDurably (fsync'd file, rename,
 * fsync'd folder).
 *
 * Reservations are atomic for one process: a sender's counter is locked (its `.lock` pid file) by
 * the first process that reserves from it, until close — as a credentials-file server locks its
 * contexts today. Two processes sharing a counter is what the Redis store is for.
 */
import { mkdirSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CredentialsError } from '../credentials/errors.js';
import { writeFileDurably } from '../credentials/durable-file.js';
import { PidLock } from '../credentials/pid-lock.js';
import { MAX_SENDER_SEQUENCE_NUMBER, SequenceExhaustedError, readPersisted } from '../credentials/sequence-store.js';
import { contextSlot, decodeStoredContext, encodeStoredContext, storedKid } from './records.js';
import { StoreError, checkStateName, type ContextStore, type PutContextOptions, type ReservedBlock, type StoredContext } from './types.js';

/** An OSCORE sender's counter (sequenceFileName) or a trust anchor's (trust-anchor/counters.ts). */
const SENDER_NAME = /^(sender-[0-9a-f]{32}\.ssn|ta-[0-9a-f]{32}\.ctr)$/;

export class FileContextStore implements ContextStore {
  readonly description: string;
  readonly directory: string;
  readonly #locks = new Map<string, PidLock>();
  /** Reservations of one sender run one after another (each reads the last one's number). */
  readonly #queues = new Map<string, Promise<unknown>>();
  #closed = false;
  readonly #now: () => number;

  constructor(directory: string, options: { now?: () => number } = {}) {
    this.directory = resolve(directory);
    this.description = `file store ${this.directory}`;
    this.#now = options.now ?? Date.now;
    for (const sub of ['', 'contexts', 'state']) {
      try {
        mkdirSync(join(this.directory, sub), { recursive: true, mode: 0o700 });
      } catch (error) {
        throw new StoreError(this.description, `cannot create the store directory: ${(error as Error).message}`);
      }
    }
  }

  async putContext(record: StoredContext, options: PutContextOptions = {}): Promise<boolean> {
    this.checkOpen();
    const path = this.contextPath(storedKid(record), record.context.idContext);
    // One process per file store: nothing writes between this read and the write below.
    if (options.onlyIfAbsent && this.readContext(path) !== undefined) return false;
    const envelope: { expiresAt?: number; record: unknown } = { record: JSON.parse(encodeStoredContext(record)) };
    if (options.expiresInSeconds !== undefined) envelope.expiresAt = this.#now() + options.expiresInSeconds * 1000;
    this.write(path, JSON.stringify(envelope));
    return true;
  }

  async findContext(kid: Uint8Array, idContext?: Uint8Array): Promise<StoredContext | undefined> {
    this.checkOpen();
    return this.readContext(this.contextPath(kid, idContext));
  }

  async deleteContext(kid: Uint8Array, idContext?: Uint8Array): Promise<boolean> {
    this.checkOpen();
    return this.remove(this.contextPath(kid, idContext));
  }

  async *contexts(): AsyncIterable<StoredContext> {
    this.checkOpen();
    const folder = join(this.directory, 'contexts');
    for (const name of readdirSync(folder)) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const record = this.readContext(join(folder, name));
      if (record) yield record;
    }
  }

  reserve(sender: string, count: number): Promise<ReservedBlock> {
    if (this.#closed) return Promise.reject(new StoreError(this.description, 'the store is closed'));
    if (!SENDER_NAME.test(sender)) return Promise.reject(new StoreError(this.description, `"${sender}" is not a sender name (sequenceFileName)`));
    if (!Number.isSafeInteger(count) || count < 1) return Promise.reject(new StoreError(this.description, `a reservation needs a positive count, got ${count}`));
    const previous = this.#queues.get(sender) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.reserveNow(sender, count));
    this.#queues.set(sender, next);
    return next;
  }

  async readState(name: string): Promise<Uint8Array | undefined> {
    this.checkOpen();
    checkStateName(this.description, name);
    const path = join(this.directory, 'state', name);
    try {
      return new Uint8Array(readFileSync(path));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StoreError(this.description, `cannot read ${path}: ${(error as Error).message}`);
    }
  }

  async writeState(name: string, data: Uint8Array): Promise<void> {
    this.checkOpen();
    checkStateName(this.description, name);
    this.write(join(this.directory, 'state', name), data);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled(this.#queues.values());
    for (const lock of this.#locks.values()) lock.release();
    this.#locks.clear();
  }

  private reserveNow(sender: string, count: number): ReservedBlock {
    this.checkOpen();
    const path = join(this.directory, sender);
    try {
      if (!this.#locks.has(sender)) this.#locks.set(sender, PidLock.acquire(`${path}.lock`));
      const start = readPersisted(path);
      const end = start + count;
      if (end > MAX_SENDER_SEQUENCE_NUMBER + 1) {
        throw new SequenceExhaustedError(`${path}: all Sender Sequence Numbers up to 2^40-1 are used; this security context must be replaced (RFC 8613 §7.2.1)`, path);
      }
      writeFileDurably(path, `${end}\n`);
      return { start, end };
    } catch (error) {
      if (error instanceof SequenceExhaustedError) throw error;
      if (error instanceof CredentialsError) throw new StoreError(this.description, error.message);
      throw new StoreError(this.description, `cannot persist the reservation in ${path}: ${(error as Error).message}`);
    }
  }

  private contextPath(kid: Uint8Array, idContext: Uint8Array | undefined): string {
    return join(this.directory, 'contexts', `${contextSlot(kid, idContext)}.json`);
  }

  private readContext(path: string): StoredContext | undefined {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StoreError(this.description, `cannot read ${path}: ${(error as Error).message}`);
    }
    let envelope: { expiresAt?: unknown; record?: unknown };
    try {
      envelope = JSON.parse(text) as typeof envelope;
    } catch {
      throw new StoreError(this.description, `${path}: corrupt context record (not JSON)`);
    }
    if (typeof envelope.expiresAt === 'number' && envelope.expiresAt <= this.#now()) {
      this.remove(path);
      return undefined;
    }
    return decodeStoredContext(this.description, path, JSON.stringify(envelope.record));
  }

  private write(path: string, content: string | Uint8Array): void {
    try {
      writeFileDurably(path, content);
    } catch (error) {
      throw new StoreError(this.description, `cannot write ${path}: ${(error as Error).message}`);
    }
  }

  private remove(path: string): boolean {
    try {
      unlinkSync(path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw new StoreError(this.description, `cannot remove ${path}: ${(error as Error).message}`);
    }
  }

  private checkOpen(): void {
    if (this.#closed) throw new StoreError(this.description, 'the store is closed');
  }
}
