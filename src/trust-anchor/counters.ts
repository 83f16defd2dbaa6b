/**
 * The trust anchor's per-RS 32-bit sequence counters (draft §2.4), persisted so that a number is
 * never issued twice: the new value is written durably (src/credentials/durable-file.ts) before
 * the credential that uses it leaves the TA. A crash can skip numbers, never repeat one.
 *
 * File: {"rs1": {"last": 17, "keyId": "<first 8 bytes of SHA-256(K_RS-TA), hex>"}}. A changed
 * K_RS-TA (different keyId) is a new association and starts again at 0 (§2.4: "a new shared key
 * K_RS-TA must be provisioned ... and the sequence number counters must be reset").
 * At 2^32 − 1 the counter is exhausted: issuing fails, it does not wrap.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileDurably } from '../credentials/durable-file.js';
import { MAX_SEQUENCE_NUMBER } from './window.js';

export class SequenceExhaustedError extends Error {
  constructor(readonly rs: string) {
    super(`sequence numbers for resource server "${rs}" are exhausted (2^32-1 issued); provision a new K_RS-TA`);
    this.name = 'SequenceExhaustedError';
  }
}

export function keyId(key: Uint8Array): string {
  return createHash('sha256').update(key).digest().subarray(0, 8).toString('hex');
}

interface Entry {
  last: number;
  keyId: string;
}

export class SequenceCounters {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly file: string) {
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

  /** The last number issued for `rs` under `key` (0: none yet). */
  last(rs: string, key: Uint8Array): number {
    const e = this.entries.get(rs);
    return e && e.keyId === keyId(key) ? e.last : 0;
  }

  /** Reserves and durably records the next sequence number for `rs`. */
  next(rs: string, key: Uint8Array): number {
    const last = this.last(rs, key);
    if (last >= MAX_SEQUENCE_NUMBER) throw new SequenceExhaustedError(rs);
    const seq = last + 1;
    const previous = this.entries.get(rs);
    this.entries.set(rs, { last: seq, keyId: keyId(key) });
    try {
      writeFileDurably(this.file, JSON.stringify(Object.fromEntries(this.entries), null, 2) + '\n');
    } catch (e) {
      if (previous) this.entries.set(rs, previous);
      else this.entries.delete(rs);
      throw e;
    }
    return seq;
  }
}
