/**
 * DTLS 1.2 record layer framing (RFC 6347 §4.1) and the anti-replay window (§4.1.2.6).
 *
 *   struct {
 *     ContentType type;            // 1 byte
 *     ProtocolVersion version;     // 2 bytes, {254, 253} for DTLS 1.2
 *     uint16 epoch;
 *     uint48 sequence_number;
 *     uint16 length;
 *     opaque fragment[DTLSPlaintext.length];
 *   } DTLSPlaintext;
 */
import { u16, u48 } from './bytes.js';

export const ContentType = {
  ChangeCipherSpec: 20,
  Alert: 21,
  Handshake: 22,
  ApplicationData: 23,
} as const;
export type ContentTypeValue = (typeof ContentType)[keyof typeof ContentType];

export const DTLS_1_2 = 0xfefd;
export const DTLS_1_0 = 0xfeff;
export const RECORD_HEADER_LENGTH = 13;
/** Largest 48-bit sequence number. §4.1: sequence numbers MUST NOT wrap; we refuse to send at this value. */
export const MAX_SEQUENCE = 2 ** 48 - 1;
/** RFC 5246 §6.2.1-§6.2.3: plaintext ≤ 2^14, protected fragment ≤ 2^14 + 2048. */
export const MAX_PLAINTEXT = 1 << 14;
export const MAX_CIPHERTEXT = (1 << 14) + 2048;

export interface DtlsRecord {
  type: number;
  version: number;
  epoch: number;
  seq: number;
  fragment: Buffer;
}

function isKnownType(t: number): boolean {
  return t >= 20 && t <= 23;
}

export function encodeRecord(r: DtlsRecord): Buffer {
  const record = Buffer.allocUnsafe(RECORD_HEADER_LENGTH + r.fragment.length);
  r.fragment.copy(record, RECORD_HEADER_LENGTH);
  return writeRecordHeader(record, r.type, r.version, r.epoch, r.seq);
}

/**
 * Writes the 13-byte header (§4.1) into the start of `record`, whose remaining bytes are the
 * fragment, and returns `record`: lets a protected record be built in a single buffer.
 */
export function writeRecordHeader(record: Buffer, type: number, version: number, epoch: number, seq: number): Buffer {
  const length = record.length - RECORD_HEADER_LENGTH;
  if (seq < 0 || seq > MAX_SEQUENCE) throw new RangeError('record sequence number out of range');
  if (length < 0 || length > MAX_CIPHERTEXT) throw new RangeError('record fragment too long');
  record[0] = type;
  record.writeUInt16BE(version, 1);
  record.writeUInt16BE(epoch, 3);
  record.writeUIntBE(seq, 5, 6);
  record.writeUInt16BE(length, 11);
  return record;
}

/**
 * Splits a datagram into records (§4.1.1: several records may share one datagram). Never throws:
 * a malformed record (unknown type, non-DTLS version, length beyond the datagram) ends parsing and
 * the remainder of the datagram is discarded, as §4.1.2.7 permits for invalid records.
 */
export function decodeRecords(datagram: Uint8Array): DtlsRecord[] {
  const buf = Buffer.isBuffer(datagram) ? datagram : Buffer.from(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const out: DtlsRecord[] = [];
  let pos = 0;
  while (buf.length - pos >= RECORD_HEADER_LENGTH) {
    const type = buf[pos]!;
    const version = buf.readUInt16BE(pos + 1);
    const epoch = buf.readUInt16BE(pos + 3);
    const seq = buf.readUIntBE(pos + 5, 6);
    const length = buf.readUInt16BE(pos + 11);
    if (!isKnownType(type)) break;
    if (version !== DTLS_1_2 && version !== DTLS_1_0) break;
    if (length > MAX_CIPHERTEXT) break;
    const start = pos + RECORD_HEADER_LENGTH;
    if (start + length > buf.length) break;
    out.push({ type, version, epoch, seq, fragment: buf.subarray(start, start + length) });
    pos = start + length;
  }
  return out;
}

/** 8-byte seq_num used in the AEAD additional data / nonce: epoch (2) || sequence_number (6). */
export function epochSeq(epoch: number, seq: number): Buffer {
  return Buffer.concat([u16(epoch), u48(seq)]);
}

const WINDOW = 64;

/**
 * 64-record sliding anti-replay window (RFC 6347 §4.1.2.6, after RFC 4303 §3.4.3). `check` must be
 * called before authentication and `accept` only after the record authenticated, so forged records
 * cannot move the window.
 */
export class ReplayWindow {
  /** Highest accepted sequence number, -1 when none. */
  private max = -1;
  /**
   * seen[s % 64] = 1 ⇔ s was received, for s in (max − 64, max]. A ring instead of a shifted
   * bitmask: advancing the window clears only the slots it passes over (no BigInt per record).
   */
  private readonly seen = new Uint8Array(WINDOW);

  /** True when `seq` is a duplicate or falls to the left of the window (too old). */
  isReplay(seq: number): boolean {
    if (seq > this.max) return false;
    if (this.max - seq >= WINDOW) return true;
    return this.seen[seq % WINDOW] === 1;
  }

  accept(seq: number): void {
    if (seq > this.max) {
      // The slots of max+1 .. seq-1 (at most all 64) now stand for numbers not received yet.
      if (seq - this.max >= WINDOW) this.seen.fill(0);
      else for (let s = this.max + 1; s < seq; s++) this.seen[s % WINDOW] = 0;
      this.seen[seq % WINDOW] = 1;
      this.max = seq;
    } else if (this.max - seq < WINDOW) {
      this.seen[seq % WINDOW] = 1;
    }
  }

  get highest(): number {
    return this.max;
  }
}
