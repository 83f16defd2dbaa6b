/**
 * The OSCORE option value (RFC 8613 §6.1, Figure 10) — the compressed COSE header:
 *
 *    0 1 2 3 4 5 6 7 <------------- n bytes -------------->
 *   +-+-+-+-+-+-+-+-+--------------------------------------
 *   |0 0 0|h|k|  n  |       Partial IV (if any) ...
 *   +-+-+-+-+-+-+-+-+--------------------------------------
 *   | s (if any) | kid context (if any) | kid (if any) ... |
 */
import { MalformedOscoreOption, SequenceNumberExhausted } from './errors.js';

export interface OscoreOptionValue {
  /** 'Partial IV', 1–5 bytes. */
  piv?: Uint8Array;
  /** 'kid' (may be empty: the empty Sender ID is legitimate, §3.3). */
  kid?: Uint8Array;
  /** 'kid context' (0–255 bytes). */
  kidContext?: Uint8Array;
}

/** §7.2.1: the Sender Sequence Number "SHALL be less than 2^40". */
export const MAX_SEQUENCE_NUMBER = 2 ** 40 - 1;

const FLAG_H = 0x10;
const FLAG_K = 0x08;
const PIV_MASK = 0x07;
const RESERVED = 0xe0;

export function encodeOscoreOption(value: OscoreOptionValue): Uint8Array {
  const piv = value.piv;
  if (piv !== undefined && (piv.length < 1 || piv.length > 5)) {
    throw new RangeError(`Partial IV must be 1-5 bytes, not ${piv.length} (RFC 8613 §6.1: n = 6, 7 are reserved)`);
  }
  const ctx = value.kidContext;
  if (ctx !== undefined && ctx.length > 255) throw new RangeError(`kid context longer than 255 bytes (${ctx.length})`);
  const flags = (piv?.length ?? 0) | (value.kid !== undefined ? FLAG_K : 0) | (ctx !== undefined ? FLAG_H : 0);
  // §2: "If the OSCORE flag bits are all zero (0x00), the option value SHALL be empty."
  if (flags === 0) return new Uint8Array(0);
  const length = 1 + (piv?.length ?? 0) + (ctx !== undefined ? 1 + ctx.length : 0) + (value.kid?.length ?? 0);
  const out = new Uint8Array(length);
  let pos = 0;
  out[pos++] = flags;
  if (piv !== undefined) {
    out.set(piv, pos);
    pos += piv.length;
  }
  if (ctx !== undefined) {
    out[pos++] = ctx.length;
    out.set(ctx, pos);
    pos += ctx.length;
  }
  if (value.kid !== undefined) out.set(value.kid, pos);
  return out;
}

/** Throws MalformedOscoreOption; never anything else. The returned fields are views into `bytes`. */
export function decodeOscoreOption(bytes: Uint8Array): OscoreOptionValue {
  if (bytes.length === 0) return {};
  const flags = bytes[0]!;
  // §6.1: reserved bits set → "the message is considered to be malformed and decompression fails".
  if ((flags & RESERVED) !== 0) throw new MalformedOscoreOption(`reserved OSCORE flag bits set (0x${flags.toString(16).padStart(2, '0')})`);
  if (flags === 0) throw new MalformedOscoreOption('OSCORE flag byte 0x00 must be sent as an empty option value (RFC 8613 §2)');
  const n = flags & PIV_MASK;
  if (n > 5) throw new MalformedOscoreOption(`reserved Partial IV length ${n} (RFC 8613 §6.1)`);
  let pos = 1;
  const out: OscoreOptionValue = {};
  if (n > 0) {
    if (pos + n > bytes.length) throw new MalformedOscoreOption(`truncated Partial IV (${n} bytes announced)`);
    const piv = bytes.subarray(pos, pos + n);
    // §5: "All leading bytes of value zero SHALL be removed when encoding the Partial IV, except
    // in the case of Partial IV value 0". A non-minimal encoding would name the same nonce as the
    // minimal one; it can only come from a non-conforming sender, so it is refused.
    if (n > 1 && piv[0] === 0) throw new MalformedOscoreOption('Partial IV has a leading zero byte (RFC 8613 §5)');
    out.piv = piv;
    pos += n;
  }
  if ((flags & FLAG_H) !== 0) {
    if (pos >= bytes.length) throw new MalformedOscoreOption('kid context flag set but no kid context length');
    const s = bytes[pos++]!;
    if (pos + s > bytes.length) throw new MalformedOscoreOption(`truncated kid context (${s} bytes announced)`);
    out.kidContext = bytes.subarray(pos, pos + s);
    pos += s;
  }
  if ((flags & FLAG_K) !== 0) {
    // §6.1: "The remaining bytes encode the value of the 'kid'".
    out.kid = bytes.subarray(pos);
  } else if (pos !== bytes.length) {
    throw new MalformedOscoreOption(`${bytes.length - pos} trailing bytes in the OSCORE option without the kid flag`);
  }
  return out;
}

/** §5 / §6.1: the sequence number in the fewest bytes, 0 as the single byte 0x00. */
export function encodePartialIv(sequenceNumber: number): Uint8Array {
  if (!Number.isSafeInteger(sequenceNumber) || sequenceNumber < 0) {
    throw new RangeError(`sequence number must be a non-negative integer, not ${sequenceNumber}`);
  }
  if (sequenceNumber > MAX_SEQUENCE_NUMBER) throw new SequenceNumberExhausted(sequenceNumber);
  let length = 1;
  for (let v = sequenceNumber; v >= 256; v = Math.floor(v / 256)) length++;
  const out = new Uint8Array(length);
  let v = sequenceNumber;
  for (let i = length - 1; i >= 0; i--) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}

export function decodePartialIv(piv: Uint8Array): number {
  let v = 0;
  for (const b of piv) v = v * 256 + b;
  return v;
}
