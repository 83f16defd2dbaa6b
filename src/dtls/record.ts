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
  if (r.seq < 0 || r.seq > MAX_SEQUENCE) throw new RangeError('record sequence number out of range');
  if (r.fragment.length > MAX_CIPHERTEXT) throw new RangeError('record fragment too long');
  const header = Buffer.alloc(RECORD_HEADER_LENGTH);
  header[0] = r.type;
  header.writeUInt16BE(r.version, 1);
  header.writeUInt16BE(r.epoch, 3);
  header.writeUIntBE(r.seq, 5, 6);
  header.writeUInt16BE(r.fragment.length, 11);
  return Buffer.concat([header, r.fragment]);
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
const WINDOW_MASK = (1n << BigInt(WINDOW)) - 1n;

/**
 * 64-record sliding anti-replay window (RFC 6347 §4.1.2.6, after RFC 4303 §3.4.3). `check` must be
 * called before authentication and `accept` only after the record authenticated, so forged records
 * cannot move the window.
 */
export class ReplayWindow {
  /** Highest accepted sequence number, -1 when none. */
  private max = -1;
  /** Bit i set ⇔ (max - i) was received. */
  private bits = 0n;

  /** True when `seq` is a duplicate or falls to the left of the window (too old). */
  isReplay(seq: number): boolean {
    if (seq > this.max) return false;
    const offset = this.max - seq;
    if (offset >= WINDOW) return true;
    return ((this.bits >> BigInt(offset)) & 1n) === 1n;
  }

  accept(seq: number): void {
    if (seq > this.max) {
      const shift = seq - this.max;
      this.bits = shift >= WINDOW ? 1n : ((this.bits << BigInt(shift)) | 1n) & WINDOW_MASK;
      this.max = seq;
    } else {
      const offset = this.max - seq;
      if (offset < WINDOW) this.bits |= 1n << BigInt(offset);
    }
  }

  get highest(): number {
    return this.max;
  }
}
