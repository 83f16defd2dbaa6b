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
import { bufferView } from './bytes.js';

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
/** The AEAD suites' nonce_explicit, sent before the ciphertext: seq_num (RFC 5288 §3, RFC 6655 §3). */
export const EXPLICIT_NONCE_LENGTH = 8;
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
  if (epoch < 0 || epoch > 0xffff || version < 0 || version > 0xffff) throw new RangeError('record epoch or version out of range');
  if (length < 0 || length > MAX_CIPHERTEXT) throw new RangeError('record fragment too long');
  record[0] = type;
  record[1] = version >>> 8;
  record[2] = version & 0xff;
  writeSeqNum(record, 3, epoch, seq);
  record[11] = length >>> 8;
  record[12] = length & 0xff;
  return record;
}

/**
 * Writes seq_num = epoch (2) || sequence_number (6) at `offset`, as the record header, the AEAD
 * nonce and additional_data carry it. Byte by byte: `writeUIntBE(…, 6)` checks its arguments and
 * splits the number on every call, and this runs several times per record. The caller keeps
 * `epoch` < 2^16 and `seq` ≤ MAX_SEQUENCE (2^48 − 1).
 */
export function writeSeqNum(out: Uint8Array, offset: number, epoch: number, seq: number): void {
  const high = Math.floor(seq / 0x1_0000_0000); // the top 16 bits
  const low = seq >>> 0; // ToUint32: seq mod 2^32, exact for every integer below 2^53
  out[offset] = epoch >>> 8;
  out[offset + 1] = epoch & 0xff;
  out[offset + 2] = high >>> 8;
  out[offset + 3] = high & 0xff;
  out[offset + 4] = low >>> 24;
  out[offset + 5] = (low >>> 16) & 0xff;
  out[offset + 6] = (low >>> 8) & 0xff;
  out[offset + 7] = low & 0xff;
}

/** The 48-bit sequence_number at `offset` (the 6 bytes after the epoch). */
export function readSequence(buf: Uint8Array, offset: number): number {
  return ((buf[offset]! << 8) | buf[offset + 1]!) * 0x1_0000_0000 + ((buf[offset + 2]! << 24) >>> 0) + ((buf[offset + 3]! << 16) | (buf[offset + 4]! << 8) | buf[offset + 5]!);
}

/**
 * Splits a datagram into records (§4.1.1: several records may share one datagram). Never throws:
 * a malformed record (unknown type, non-DTLS version, length beyond the datagram) ends parsing and
 * the remainder of the datagram is discarded, as §4.1.2.7 permits for invalid records.
 */
export function decodeRecords(datagram: Uint8Array): DtlsRecord[] {
  const buf = bufferView(datagram);
  const out: DtlsRecord[] = [];
  let pos = 0;
  while (buf.length - pos >= RECORD_HEADER_LENGTH) {
    const type = buf[pos]!;
    const version = (buf[pos + 1]! << 8) | buf[pos + 2]!;
    const epoch = (buf[pos + 3]! << 8) | buf[pos + 4]!;
    const seq = readSequence(buf, pos + 5);
    const length = (buf[pos + 11]! << 8) | buf[pos + 12]!;
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

/**
 * Writes the AEAD additional_data (RFC 5246 §6.2.3.3, with DTLS's seq_num, RFC 6347 §4.1.2.1) into
 * `ad` (13 bytes) and returns it: seq_num (8) || type (1) || version (2) || length (2, of the plaintext).
 */
export function writeAdditionalData<T extends Uint8Array>(ad: T, epoch: number, seq: number, type: number, version: number, length: number): T {
  writeSeqNum(ad, 0, epoch, seq);
  ad[8] = type;
  ad[9] = version >>> 8;
  ad[10] = version & 0xff;
  ad[11] = length >>> 8;
  ad[12] = length & 0xff;
  return ad;
}

/** 8-byte seq_num used in the AEAD additional data / nonce: epoch (2) || sequence_number (6). */
export function epochSeq(epoch: number, seq: number): Buffer {
  const out = Buffer.allocUnsafe(8);
  writeSeqNum(out, 0, epoch, seq);
  return out;
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
