/**
 * Durable Sender Sequence Numbers, RFC 8613 Appendix B.1.1: "To prevent reuse of Sender Sequence
 * Number, an endpoint may perform the following procedure during normal operations: Before using a
 * Sender Sequence Number that is evenly divisible by K ... store the Sender Sequence Number".
 *
 * We store a reservation rather than the number in use: the file holds R, and every number handed
 * out is below R. Before the first number of each block of K is handed out, R+K is on disk
 * (fsync'd). After any crash, the counter resumes at the stored R, which is above everything ever
 * used — B.1.1's SSN2 = SSN1 + K + F with F = 0, safe because we persist *before* use and wait for
 * the fsync. The unused rest of the last block is skipped; that is the price of writing only every
 * K messages.
 *
 * The file is one decimal number and a newline, the format libcoap's coap-client keeps in its
 * `-E conf,seqfile` sequence file, so the two can share one.
 *
 * One sender context, one counter: a context configured in two places (a credentials file with its
 * own state directory, and a libcoap conf with a sequence file) would otherwise get two counters,
 * and the second would start below numbers the server has already accepted — every request then
 * fails "Replay detected" until the server's replay window is reset. So a store may name `mirrors`:
 * the same counter registered by the context's identity (sequenceFileName) in the common state
 * directory. It is locked with the store, the counter starts above every copy, and every
 * reservation is written to each.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { createHash, hash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { CredentialsError } from './errors.js';
import { writeFileDurably } from './durable-file.js';
import { PidLock } from './pid-lock.js';

/** RFC 8613 §7.2.1: the Sender Sequence Number "SHALL be less than 2^40". */
export const MAX_SENDER_SEQUENCE_NUMBER = 2 ** 40 - 1;

/** What makes a Sender Context's (key, nonce) space distinct (RFC 8613 §3.3). */
export interface SenderContextIdentity {
  masterSecret: Uint8Array;
  masterSalt?: Uint8Array;
  idContext?: Uint8Array;
  senderId: Uint8Array;
}

export interface SequenceStoreOptions {
  /** B.1.1's K: numbers reserved per durable write. */
  reserve: number;
  /** Further files holding the same counter (see the module comment); each is locked as `FILE.lock`. */
  mirrors?: readonly string[];
}

export class SequenceExhaustedError extends CredentialsError {}

/**
 * The file name for a Sender Context's counter: a hash over the inputs that determine the Sender
 * Key (§3.3's quartet), so different contexts never share a counter and the same context always
 * finds its own. The master secret enters only through its own SHA-256, and the name keeps 128
 * bits of the result; nothing in the name reveals the secret.
 */
export function sequenceFileName(identity: SenderContextIdentity): string {
  // One buffer hashed at once: a server loads a context per device (issue 21), and two incremental
  // Hash objects per context cost more than the hashing.
  const fields = [sha256(identity.masterSecret), identity.masterSalt ?? new Uint8Array(0), identity.idContext, identity.senderId];
  const input = Buffer.allocUnsafe(NAME_PREFIX.length + fields.reduce((n, f) => n + 5 + (f?.length ?? 0), 0));
  let at = NAME_PREFIX.copy(input, 0);
  for (const bytes of fields) {
    // Length-prefixed, with absent distinct from empty (an absent ID Context is not an empty one).
    at = input.writeUInt8(bytes === undefined ? 0 : 1, at);
    at = input.writeUInt32BE(bytes?.length ?? 0, at);
    if (bytes) {
      input.set(bytes, at);
      at += bytes.length;
    }
  }
  return `sender-${sha256(input).toString('hex').slice(0, 32)}.ssn`;
}

const NAME_PREFIX = Buffer.from('coapsec sender sequence number v1\0');

/** crypto.hash (one call, no Hash object) where Node has it (20.12+), else createHash. */
function sha256(data: Uint8Array): Buffer {
  return typeof hash === 'function' ? hash('sha256', data, 'buffer') : createHash('sha256').update(data).digest();
}

export class SequenceNumberStore {
  /** The next number next() returns. */
  private nextNumber: number;
  /** Everything below this is reserved on disk; nextNumber never reaches it without a write. */
  private reservedUpTo: number;
  private closed = false;

  private constructor(
    /** The counter file. */
    readonly path: string,
    private readonly locks: readonly PidLock[],
    private readonly reserve: number,
    start: number,
    /** Copies of the counter (the context registry); written with `path`. */
    readonly mirrors: readonly string[],
  ) {
    this.nextNumber = start;
    this.reservedUpTo = start;
  }

  /** Opens (creating as needed) the counter of one Sender Context inside `directory`. */
  static open(directory: string, identity: SenderContextIdentity, options: SequenceStoreOptions): SequenceNumberStore {
    ensureStateDirectory(directory);
    return SequenceNumberStore.openFile(join(directory, sequenceFileName(identity)), options);
  }

  /**
   * Opens the counter of one sender context kept at `path` (a state directory's file or an explicit
   * sequence file), registered in `registryDirectory` under the context's identity: a second store
   * for the same context anywhere on this machine then shares that registry entry.
   */
  static openRegistered(path: string, identity: SenderContextIdentity, registryDirectory: string, options: SequenceStoreOptions): SequenceNumberStore {
    ensureStateDirectory(registryDirectory);
    return SequenceNumberStore.openFile(path, { ...options, mirrors: [...(options.mirrors ?? []), join(registryDirectory, sequenceFileName(identity))] });
  }

  /** Opens a counter kept in an explicit file (`--oscore-conf FILE,SEQFILE`); its lock is FILE.lock. */
  static openFile(path: string, options: SequenceStoreOptions): SequenceNumberStore {
    const reserve = options.reserve;
    if (!Number.isSafeInteger(reserve) || reserve < 1) {
      throw new CredentialsError(`${path}: the reservation size must be a positive integer, got ${reserve}`, path);
    }
    const absolute = resolve(path);
    const mirrors = [...new Set((options.mirrors ?? []).map((m) => resolve(m)))].filter((m) => m !== absolute);
    const locks = [PidLock.acquire(`${absolute}.lock`)];
    try {
      for (const mirror of mirrors) locks.push(acquireContextLock(mirror, absolute));
      const start = Math.max(readPersisted(absolute), ...mirrors.map(readPersisted));
      const store = new SequenceNumberStore(absolute, locks, reserve, start, mirrors);
      // B.1.1: nothing is handed out before its reservation is durable.
      store.extendReservation();
      return store;
    } catch (error) {
      for (const lock of locks) lock.release();
      throw error;
    }
  }

  /**
   * The next Sender Sequence Number. When the reservation is used up this writes and fsyncs the
   * next one before returning, so a number is never used unless a restart would skip past it.
   */
  next(): number {
    if (this.closed) throw new CredentialsError(`${this.path}: the sequence number store is closed`, this.path);
    if (this.nextNumber > MAX_SENDER_SEQUENCE_NUMBER) {
      throw new SequenceExhaustedError(
        `${this.path}: all Sender Sequence Numbers up to 2^40-1 are used; this security context must be ` +
          'replaced (RFC 8613 §7.2.1)',
        this.path,
      );
    }
    if (this.nextNumber >= this.reservedUpTo) this.extendReservation();
    return this.nextNumber++;
  }

  /** The number next() would return; for diagnostics. */
  peek(): number {
    return this.nextNumber;
  }

  /** The persisted reservation: every number handed out so far is below it. */
  get persistedReservation(): number {
    return this.reservedUpTo;
  }

  /**
   * Gives the unused rest of the reservation back (a clean shutdown loses no numbers) and releases
   * the lock. Safe because nothing at or above nextNumber has been handed out.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.nextNumber < this.reservedUpTo) for (const file of [this.path, ...this.mirrors]) writeFileDurably(file, `${this.nextNumber}\n`);
    } finally {
      for (const lock of this.locks) lock.release();
    }
  }

  private extendReservation(): void {
    const target = Math.min(this.nextNumber + this.reserve, MAX_SENDER_SEQUENCE_NUMBER + 1);
    if (target <= this.reservedUpTo) return; // exhausted: next() reports it
    for (const file of [this.path, ...this.mirrors]) {
      try {
        writeFileDurably(file, `${target}\n`);
      } catch (error) {
        throw new CredentialsError(`${file}: cannot persist the sequence number reservation: ${(error as Error).message}`, file);
      }
    }
    this.reservedUpTo = target;
  }
}

/** Creates a state directory (owner-only) if it does not exist. */
export function ensureStateDirectory(directory: string): void {
  try {
    mkdirSync(directory, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new CredentialsError(`${directory}: cannot create the state directory: ${(error as Error).message}`, directory);
  }
}

/**
 * Locks a registry entry: the sender context itself. Held by another store (another process, or
 * this one through another configuration file), it is refused with what happened and what to do.
 */
function acquireContextLock(registryEntry: string, storePath: string): PidLock {
  try {
    return PidLock.acquire(`${registryEntry}.lock`);
  } catch (error) {
    if (!(error instanceof CredentialsError)) throw error;
    const reason = error.message.slice(error.message.indexOf(': ') + 2).replace(/\.$/, '');
    throw new CredentialsError(
      `${storePath}: this OSCORE sender context is already in use with another sequence number store ` +
        `(registered as ${registryEntry}: ${reason}). Two counters for one sender would reuse nonces and make ` +
        'the server refuse requests as replays; use one configuration of this context at a time',
      storePath,
    );
  }
}

/** The stored reservation, or 0 for a context never used (RFC 8613 §3.2.2: it starts at 0). */
export function readPersisted(path: string): number {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw new CredentialsError(`${path}: cannot read the sequence number file: ${(error as Error).message}`, path);
  }
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) {
    // Refusing is the only safe choice: guessing low could reuse nonces.
    throw new CredentialsError(`${path}:1: the sequence number file must hold one decimal number; it is corrupt`, path, 1);
  }
  const value = Number(trimmed);
  if (!Number.isSafeInteger(value) || value > MAX_SENDER_SEQUENCE_NUMBER + 1) {
    throw new CredentialsError(`${path}:1: the stored sequence number ${trimmed} is beyond 2^40 (RFC 8613 §7.2.1)`, path, 1);
  }
  return value;
}
