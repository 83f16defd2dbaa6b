/**
 * Durable Sender Sequence Numbers in a browser, RFC 8613 Appendix B.1.1, with the guarantee of
 * sequence-store.ts (the file store of the Node build): the stored value R is above every number
 * ever handed out, and R moves up by K (a block) in a committed write *before* the first number of
 * the block is used. After a reload or a crash the counter resumes at R; the unused rest of the
 * last block is skipped.
 *
 * Reserving is one read-modify-write transaction (read R, write R + K, hand out [R, R + K)), so two
 * tabs of one origin using the same Sender Context get disjoint blocks instead of one counter
 * each. IndexedDB transactions are asked for `durability: 'strict'`: their `complete` event then
 * comes after the data is flushed to disk (Chromium's default, "relaxed", may report a commit
 * that a power loss undoes).
 */
import { MAX_SEQUENCE_NUMBER } from '../oscore/option.js';
import { bytesToHex } from '../util/bytes.js';

/** A durable counter per key: `reserve` stores start + count atomically and answers start. */
export interface ReservationStorage {
  reserve(key: string, count: number): Promise<number>;
}

/** What makes a Sender Context's (key, nonce) space distinct (RFC 8613 §3.3). */
export interface SenderIdentity {
  masterSecret: Uint8Array;
  masterSalt?: Uint8Array;
  idContext?: Uint8Array;
  senderId: Uint8Array;
}

export class SequenceReservationError extends Error {}

/**
 * The Sender Sequence Numbers of one Sender Context: handed out from the current block, the next
 * block reserved (and committed) when the current one runs out. Concurrent callers share one
 * reservation in flight.
 */
export class ReservedSequence {
  #next: number;
  #limit: number;
  #reserving: Promise<void> | undefined;

  private constructor(
    private readonly storage: ReservationStorage,
    private readonly key: string,
    private readonly blockSize: number,
    start: number,
  ) {
    this.#next = start;
    this.#limit = start + blockSize;
  }

  /** Reserves the first block before anything is used: the counter starts above every earlier run's. */
  static async open(storage: ReservationStorage, key: string, blockSize: number): Promise<ReservedSequence> {
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`the reservation block must be a positive whole number, got ${blockSize}`);
    return new ReservedSequence(storage, key, blockSize, await storage.reserve(key, blockSize));
  }

  /** The next Sender Sequence Number, never one handed out before, here or in an earlier run. */
  async next(): Promise<number> {
    while (this.#next >= this.#limit) {
      this.#reserving ??= this.#reserve().finally(() => (this.#reserving = undefined));
      await this.#reserving;
    }
    // §7.2.1: "SHALL be less than 2^40"; past it the context must be renewed.
    if (this.#next > MAX_SEQUENCE_NUMBER) throw new SequenceReservationError('the Sender Sequence Number space is exhausted: a new security context is needed (RFC 8613 §7.2.1)');
    return this.#next++;
  }

  async #reserve(): Promise<void> {
    const start = await this.storage.reserve(this.key, this.blockSize);
    this.#next = start;
    this.#limit = start + this.blockSize;
  }
}

/** The structural part of IndexedDB used here (this project compiles without the DOM library). */
interface IdbRequest<T> {
  result: T;
  error: unknown;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}
interface IdbDatabase {
  objectStoreNames: { contains(name: string): boolean };
  createObjectStore(name: string): unknown;
  transaction(store: string, mode: 'readwrite', options?: { durability: 'strict' }): IdbTransaction;
  close(): void;
}
interface IdbTransaction {
  objectStore(name: string): { get(key: string): IdbRequest<unknown>; put(value: unknown, key: string): IdbRequest<unknown> };
  oncomplete: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
  error: unknown;
}
interface IdbFactory {
  open(name: string, version: number): IdbRequest<IdbDatabase> & { onupgradeneeded: (() => void) | null };
}

const STORE = 'sender-sequence-numbers';

/** Reservations in an IndexedDB database of the page's origin (one object store, values keyed by Sender Context). */
export class IndexedDbReservations implements ReservationStorage {
  private constructor(private readonly db: IdbDatabase) {}

  static open(database = 'coapsec', factory?: IdbFactory): Promise<IndexedDbReservations> {
    const idb = factory ?? (globalThis as { indexedDB?: IdbFactory }).indexedDB;
    if (idb === undefined) return Promise.reject(new SequenceReservationError('IndexedDB is not available here: durable sequence numbers need it'));
    return new Promise((resolve, reject) => {
      const request = idb.open(database, 1);
      request.onupgradeneeded = () => {
        if (!request.result.objectStoreNames.contains(STORE)) request.result.createObjectStore(STORE);
      };
      request.onsuccess = () => resolve(new IndexedDbReservations(request.result));
      request.onerror = () => reject(new SequenceReservationError(`cannot open the IndexedDB database ${database}: ${String(request.error)}`));
    });
  }

  reserve(key: string, count: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const transaction = this.db.transaction(STORE, 'readwrite', { durability: 'strict' });
      const store = transaction.objectStore(STORE);
      let start = 0;
      const read = store.get(key);
      read.onsuccess = () => {
        const stored = read.result;
        start = typeof stored === 'number' && Number.isSafeInteger(stored) && stored >= 0 ? stored : 0;
        store.put(start + count, key);
      };
      // Resolved only once the write is committed: no number of the block is used before (B.1.1).
      transaction.oncomplete = () => resolve(start);
      const failed = (): void => reject(new SequenceReservationError(`reserving sequence numbers failed: ${String(transaction.error)}`));
      transaction.onerror = failed;
      transaction.onabort = failed;
    });
  }

  close(): void {
    this.db.close();
  }
}

const NAME_PREFIX = new TextEncoder().encode('coapsec sender sequence number v1\0');

/**
 * The storage key of a Sender Context's counter: SHA-256 over the inputs that determine its Sender
 * Key (§3.3), with the Master Secret only through its own SHA-256, so the key reveals nothing of it
 * and two contexts never share a counter (the field layout of sequence-store.ts's file names).
 */
export async function senderKeyName(identity: SenderIdentity): Promise<string> {
  const digest = async (data: Uint8Array): Promise<Uint8Array> => new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', data));
  const fields = [await digest(identity.masterSecret), identity.masterSalt ?? new Uint8Array(0), identity.idContext, identity.senderId];
  const input = new Uint8Array(NAME_PREFIX.length + fields.reduce((n, f) => n + 5 + (f?.length ?? 0), 0));
  input.set(NAME_PREFIX);
  let at = NAME_PREFIX.length;
  for (const bytes of fields) {
    // Length-prefixed, with absent distinct from empty (an absent ID Context is not an empty one).
    input[at] = bytes === undefined ? 0 : 1;
    new DataView(input.buffer).setUint32(at + 1, bytes?.length ?? 0);
    at += 5;
    if (bytes) {
      input.set(bytes, at);
      at += bytes.length;
    }
  }
  return `sender-${bytesToHex(await digest(input)).slice(0, 32)}`;
}
