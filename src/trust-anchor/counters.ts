/**
 * The trust anchor's per-RS 32-bit sequence counters (draft §2.4), reserved durably in blocks so
 * that a number is never issued twice — not after a crash, not by two TA nodes sharing a store —
 * and so that issuing a credential usually does not wait for a disk or a network:
 *
 * - `CounterReservations` is where reservations are made durable: the TA's own state file
 *   (`StateFileCounters`, the default) or a context store (`StoreCounters`: the file store, or Redis
 *   shared by several TA nodes — INCRBY is atomic, so two nodes never hold overlapping blocks).
 * - `CounterBlocks` hands numbers out of the blocks it reserved, reserving the next block in the
 *   background when half of the current one is left (the OSCORE BlockSequence, src/store). A
 *   number leaves the TA only once the reservation that holds it is durable; a crash or a stop
 *   skips the rest of a block, never repeats a number.
 *
 * A counter belongs to (RS, K_RS-TA): a changed key is a new association and starts again at 1
 * (§2.4: "a new shared key K_RS-TA must be provisioned ... and the sequence number counters must be
 * reset"). At 2^32 − 1 the counter is exhausted: issuing fails, it does not wrap.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileDurably } from '../credentials/durable-file.js';
import { BlockSequence } from '../store/block-sequence.js';
import type { ContextStore, ReservedBlock } from '../store/types.js';
import { MAX_SEQUENCE_NUMBER } from './window.js';

export class SequenceExhaustedError extends Error {
  constructor(readonly rs: string) {
    super(`sequence numbers for resource server "${rs}" are exhausted (2^32-1 issued); provision a new K_RS-TA`);
    this.name = 'SequenceExhaustedError';
  }
}

/** Names K_RS-TA in counter state without revealing it: the first 8 bytes of its SHA-256, hex. */
export function keyId(key: Uint8Array): string {
  return createHash('sha256').update(key).digest().subarray(0, 8).toString('hex');
}

/** Where a trust anchor's counter reservations are made durable. */
export interface CounterReservations {
  /** Names it in diagnostics (a file, `redis://…`); never a password. */
  readonly description: string;
  /**
   * The next `count` numbers [start, end) of the counter of (rs, keyId), numbered from 1: durable
   * before this resolves and disjoint from every block reserved before, by any process sharing it.
   * Rejects with SequenceExhaustedError when no number up to 2^32 − 1 is left.
   */
  reserve(rs: string, keyId: string, count: number): Promise<ReservedBlock>;
  close(): Promise<void>;
}

interface Entry {
  last: number;
  keyId: string;
}

/**
 * The TA's state file, one process at a time (the CLI holds `<stateFile>.lock`):
 * `{"rs1": {"last": 17, "keyId": "…"}}`, `last` being the last number reserved. Each reservation
 * is written with writeFileDurably (temp file, fsync, rename, fsync of the folder) before it is used.
 */
export class StateFileCounters implements CounterReservations {
  readonly description: string;
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly file: string) {
    this.description = file;
    if (!existsSync(file)) return;
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new Error(`${file}: unreadable sequence-counter state: ${(e as Error).message}`);
    }
    if (typeof data !== 'object' || data === null) throw new Error(`${file}: sequence-counter state must be an object`);
    for (const [rs, v] of Object.entries(data as Record<string, unknown>)) {
      const e = v as Partial<Entry>;
      if (typeof e?.last !== 'number' || !Number.isInteger(e.last) || e.last < 0 || e.last > MAX_SEQUENCE_NUMBER || typeof e.keyId !== 'string')
        throw new Error(`${file}: ${rs}: bad counter entry`);
      this.entries.set(rs, { last: e.last, keyId: e.keyId });
    }
  }

  async reserve(rs: string, keyId: string, count: number): Promise<ReservedBlock> {
    const previous = this.entries.get(rs);
    const last = previous?.keyId === keyId ? previous.last : 0;
    if (last >= MAX_SEQUENCE_NUMBER) throw new SequenceExhaustedError(rs);
    const block = { start: last + 1, end: Math.min(last + 1 + count, MAX_SEQUENCE_NUMBER + 1) };
    this.entries.set(rs, { last: block.end - 1, keyId });
    try {
      writeFileDurably(this.file, JSON.stringify(Object.fromEntries(this.entries), null, 2) + '\n');
    } catch (e) {
      if (previous) this.entries.set(rs, previous);
      else this.entries.delete(rs);
      throw e;
    }
    return block;
  }

  async close(): Promise<void> {}
}

/**
 * Counters in a context store (src/store): `ta-<HASH>.ctr` counters, reserved with the store's
 * `reserve` (INCRBY in Redis, a durable counter file in the file store). HASH names the TA, the RS
 * and the key, so TAs sharing a store keep apart and a new K_RS-TA starts a new counter.
 */
export class StoreCounters implements CounterReservations {
  readonly description: string;

  constructor(
    readonly store: Pick<ContextStore, 'description' | 'reserve' | 'close'>,
    private readonly taId: string,
  ) {
    this.description = store.description;
  }

  async reserve(rs: string, keyId: string, count: number): Promise<ReservedBlock> {
    const name = `ta-${createHash('sha256').update(`${this.taId}\0${rs}\0${keyId}`).digest('hex').slice(0, 32)}.ctr`;
    // The store counts from 0; the TA from 1 (0 is the RS window's initial right edge, §2.4).
    const block = await this.store.reserve(name, count);
    if (block.start + 1 > MAX_SEQUENCE_NUMBER) throw new SequenceExhaustedError(rs);
    return { start: block.start + 1, end: Math.min(block.end + 1, MAX_SEQUENCE_NUMBER + 1) };
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

interface Counter {
  readonly sequence: BlockSequence;
  /** One past the highest number this node has had reserved for it. */
  reservedEnd: number;
}

/** Numbers handed out from durable block reservations, one counter per (RS, key). */
export class CounterBlocks {
  readonly #counters = new Map<string, Counter>();

  constructor(
    readonly reservations: CounterReservations,
    /** Numbers per reservation. */
    readonly blockSize: number,
  ) {
    if (!Number.isSafeInteger(blockSize) || blockSize < 1) throw new RangeError(`the reservation block size must be a positive integer, got ${blockSize}`);
  }

  /** The next number for `rs` under `key`; waits only when no reserved number is left. */
  async next(rs: string, key: Uint8Array): Promise<number> {
    const { sequence } = this.#counter(rs, key);
    // Bounded: every wait ends in a new block (numbers available) or in the reservation's failure.
    for (;;) {
      const reserving = sequence.ready();
      if (reserving === undefined) return sequence.next();
      await reserving;
    }
  }

  /**
   * Whether `sequence` may have been issued for `rs` under `key` (revocations are refused for
   * numbers never issued): a number reserved, by this node or another sharing the reservations,
   * that this node does not still hold unissued. A number above everything this node reserved
   * costs one reservation of a single number, to learn how far the shared counter has moved.
   */
  async mayHaveIssued(rs: string, key: Uint8Array, sequence: number): Promise<boolean> {
    if (!Number.isInteger(sequence) || sequence < 1 || sequence > MAX_SEQUENCE_NUMBER) return false;
    const counter = this.#counter(rs, key);
    if (counter.sequence.holds(sequence)) return false;
    if (sequence < counter.reservedEnd) return true;
    const probe = await this.reservations.reserve(rs, keyId(key), 1).catch((e: unknown) => {
      if (e instanceof SequenceExhaustedError) return { start: MAX_SEQUENCE_NUMBER + 1, end: MAX_SEQUENCE_NUMBER + 1 };
      throw e;
    });
    return sequence < probe.start;
  }

  close(): Promise<void> {
    return this.reservations.close();
  }

  #counter(rs: string, key: Uint8Array): Counter {
    const id = keyId(key);
    const name = `${rs}/${id}`;
    let counter = this.#counters.get(name);
    if (counter === undefined) {
      const reservations = this.reservations;
      const source = {
        description: reservations.description,
        reserve: async (_name: string, count: number): Promise<ReservedBlock> => {
          const block = await reservations.reserve(rs, id, count);
          counter!.reservedEnd = Math.max(counter!.reservedEnd, block.end);
          return block;
        },
      };
      counter = { sequence: new BlockSequence(source, name, this.blockSize), reservedEnd: 0 };
      this.#counters.set(name, counter);
    }
    return counter;
  }
}
