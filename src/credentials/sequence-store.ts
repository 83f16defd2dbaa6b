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
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
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
}

export class SequenceExhaustedError extends CredentialsError {}

/**
 * The file name for a Sender Context's counter: a hash over the inputs that determine the Sender
 * Key (§3.3's quartet), so different contexts never share a counter and the same context always
 * finds its own. The master secret enters only through its own SHA-256, and the name keeps 128
 * bits of the result; nothing in the name reveals the secret.
 */
export function sequenceFileName(identity: SenderContextIdentity): string {
  const hash = createHash('sha256');
  const field = (bytes: Uint8Array | undefined): void => {
    // Length-prefixed, with absent distinct from empty (an absent ID Context is not an empty one).
    const header = Buffer.alloc(5);
    header.writeUInt8(bytes === undefined ? 0 : 1, 0);
    header.writeUInt32BE(bytes?.length ?? 0, 1);
    hash.update(header);
    if (bytes) hash.update(bytes);
  };
  hash.update('coapsec sender sequence number v1\0');
  field(createHash('sha256').update(identity.masterSecret).digest());
  field(identity.masterSalt ?? new Uint8Array(0));
  field(identity.idContext);
  field(identity.senderId);
  return `sender-${hash.digest('hex').slice(0, 32)}.ssn`;
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
    private readonly lock: PidLock,
    private readonly reserve: number,
    start: number,
  ) {
    this.nextNumber = start;
    this.reservedUpTo = start;
  }

  /** Opens (creating as needed) the counter of one Sender Context inside `directory`. */
  static open(directory: string, identity: SenderContextIdentity, options: SequenceStoreOptions): SequenceNumberStore {
    try {
      mkdirSync(directory, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new CredentialsError(`${directory}: cannot create the state directory: ${(error as Error).message}`, directory);
    }
    return SequenceNumberStore.openFile(join(directory, sequenceFileName(identity)), options);
  }

  /** Opens a counter kept in an explicit file (`--oscore-conf FILE,SEQFILE`); its lock is FILE.lock. */
  static openFile(path: string, options: SequenceStoreOptions): SequenceNumberStore {
    const reserve = options.reserve;
    if (!Number.isSafeInteger(reserve) || reserve < 1) {
      throw new CredentialsError(`${path}: the reservation size must be a positive integer, got ${reserve}`, path);
    }
    const absolute = resolve(path);
    const lock = PidLock.acquire(`${absolute}.lock`);
    try {
      const store = new SequenceNumberStore(absolute, lock, reserve, readPersisted(absolute));
      // B.1.1: nothing is handed out before its reservation is durable.
      store.extendReservation();
      return store;
    } catch (error) {
      lock.release();
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
      if (this.nextNumber < this.reservedUpTo) writeFileDurably(this.path, `${this.nextNumber}\n`);
    } finally {
      this.lock.release();
    }
  }

  private extendReservation(): void {
    const target = Math.min(this.nextNumber + this.reserve, MAX_SENDER_SEQUENCE_NUMBER + 1);
    if (target <= this.reservedUpTo) return; // exhausted: next() reports it
    try {
      writeFileDurably(this.path, `${target}\n`);
    } catch (error) {
      throw new CredentialsError(`${this.path}: cannot persist the sequence number reservation: ${(error as Error).message}`, this.path);
    }
    this.reservedUpTo = target;
  }
}

/** The stored reservation, or 0 for a context never used (RFC 8613 §3.2.2: it starts at 0). */
function readPersisted(path: string): number {
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
