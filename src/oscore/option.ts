/**
 * The OSCORE option value (RFC 8613 §6.1, Figure 10) — the compressed COSE header:
 *
 *    0 1 2 3 4 5 6 7 <------------- n bytes -------------->
 *   +-+-+-+-+-+-+-+-+--------------------------------------
 *   |0 0 0|h|k|  n  |       Partial IV (if any) ...
 *   +-+-+-+-+-+-+-+-+--------------------------------------
 *   | s (if any) | kid context (if any) | kid (if any) ... |
 *
 * extended by KUDOS (draft-ietf-core-oscore-key-update §4.1, Figure 1): flag bit 0 (0x80,
 * "Extension-1") announces a second flag byte, whose least significant bit 'd' announces the fields
 * 'x' (0|z|b|p|m) and 'nonce' (m+1 bytes) between the kid context and the kid.
 */
import { MalformedOscoreOption, SequenceNumberExhausted } from './errors.js';

export interface OscoreOptionValue {
  /** 'Partial IV', 1–5 bytes. */
  piv?: Uint8Array;
  /** 'kid' (may be empty: the empty Sender ID is legitimate, §3.3). */
  kid?: Uint8Array;
  /** 'kid context' (0–255 bytes). */
  kidContext?: Uint8Array;
  /** The KUDOS fields (flag 'd' set); their presence makes the message a "KUDOS message" (§4.1). */
  kudos?: KudosOptionFields;
}

/** KUDOS §4.1: the 'x' byte and the 'nonce' it announces. */
export interface KudosOptionFields {
  /** The 'x' byte: 0|z|b|p|m; its most significant bit is reserved and must be 0. */
  x: number;
  /** 1 to 16 bytes; its length is m + 1. */
  nonce: Uint8Array;
}

/** §7.2.1: the Sender Sequence Number "SHALL be less than 2^40". */
export const MAX_SEQUENCE_NUMBER = 2 ** 40 - 1;

const FLAG_H = 0x10;
const FLAG_K = 0x08;
const PIV_MASK = 0x07;
const RESERVED = 0x60;
/** KUDOS §4.1: "Extension-1 Flag", bit 0 of the first byte, announces flag bits 8-15. */
const FLAG_EXTENSION_1 = 0x80;
/** KUDOS §4.1: the Nonce Flag 'd', bit 15 (the least significant bit of the second byte). */
const FLAG_D = 0x01;
/**
 * Second byte: bit 8 is Extension-2 (a third flag byte, for which nothing is defined, §8.1) and
 * bits 9-14 are unassigned; either set means a format we cannot parse, so it is refused like
 * RFC 8613 §6.1's reserved bits.
 */
const RESERVED_2 = 0xfe;
/** KUDOS §4.1: the reserved most significant bit of 'x'. */
export const KUDOS_X_RESERVED = 0x80;

export function encodeOscoreOption(value: OscoreOptionValue): Uint8Array {
  const piv = value.piv;
  if (piv !== undefined && (piv.length < 1 || piv.length > 5)) {
    throw new RangeError(`Partial IV must be 1-5 bytes, not ${piv.length} (RFC 8613 §6.1: n = 6, 7 are reserved)`);
  }
  const ctx = value.kidContext;
  if (ctx !== undefined && ctx.length > 255) throw new RangeError(`kid context longer than 255 bytes (${ctx.length})`);
  const kudos = value.kudos;
  if (kudos !== undefined) checkKudosFields(kudos, RangeError);
  const flags = (piv?.length ?? 0) | (value.kid !== undefined ? FLAG_K : 0) | (ctx !== undefined ? FLAG_H : 0) | (kudos ? FLAG_EXTENSION_1 : 0);
  // §2: "If the OSCORE flag bits are all zero (0x00), the option value SHALL be empty."
  if (flags === 0) return new Uint8Array(0);
  const kudosLength = kudos ? 1 + 1 + kudos.nonce.length : 0;
  const length = 1 + (piv?.length ?? 0) + (ctx !== undefined ? 1 + ctx.length : 0) + kudosLength + (value.kid?.length ?? 0);
  const out = new Uint8Array(length);
  let pos = 0;
  out[pos++] = flags;
  if (kudos) out[pos++] = FLAG_D;
  if (piv !== undefined) {
    out.set(piv, pos);
    pos += piv.length;
  }
  if (ctx !== undefined) {
    out[pos++] = ctx.length;
    out.set(ctx, pos);
    pos += ctx.length;
  }
  if (kudos) {
    out[pos++] = kudos.x;
    out.set(kudos.nonce, pos);
    pos += kudos.nonce.length;
  }
  if (value.kid !== undefined) out.set(value.kid, pos);
  return out;
}

/**
 * Where the fields of an OSCORE option value lie in it (offsets; a length −1: absent). Filled by
 * parseOscoreOption, so that a receiver can copy the fields it keeps without views of the value
 * (a view of a Buffer costs more than copying a few bytes, issue 21).
 */
export class OscoreOptionLayout {
  pivAt = 0;
  pivLength = -1;
  kidContextAt = 0;
  kidContextLength = -1;
  /** The KUDOS 'x' byte (when kudosNonceLength ≥ 0) and the nonce after it. */
  kudosX = 0;
  kudosNonceAt = 0;
  kudosNonceLength = -1;
  kidAt = 0;
  kidLength = -1;
}

/** Fills `into` with the layout of `bytes` (every field set). Throws MalformedOscoreOption; never anything else. */
export function parseOscoreOption(bytes: Uint8Array, into: OscoreOptionLayout): void {
  into.pivLength = into.kidContextLength = into.kudosNonceLength = into.kidLength = -1;
  if (bytes.length === 0) return;
  const flags = bytes[0]!;
  // §6.1: reserved bits set → "the message is considered to be malformed and decompression fails".
  if ((flags & RESERVED) !== 0) throw new MalformedOscoreOption(`reserved OSCORE flag bits set (0x${flags.toString(16).padStart(2, '0')})`);
  if (flags === 0) throw new MalformedOscoreOption('OSCORE flag byte 0x00 must be sent as an empty option value (RFC 8613 §2)');
  const n = flags & PIV_MASK;
  if (n > 5) throw new MalformedOscoreOption(`reserved Partial IV length ${n} (RFC 8613 §6.1)`);
  let pos = 1;
  let nonceFlag = false;
  if ((flags & FLAG_EXTENSION_1) !== 0) {
    if (bytes.length < 2) throw new MalformedOscoreOption('Extension-1 flag set but no second flag byte (KUDOS §4.1)');
    const flags2 = bytes[pos++]!;
    if ((flags2 & RESERVED_2) !== 0) {
      throw new MalformedOscoreOption(`reserved OSCORE flag bits set in the second flag byte (0x${flags2.toString(16).padStart(2, '0')})`);
    }
    nonceFlag = (flags2 & FLAG_D) !== 0;
  }
  if (n > 0) {
    if (pos + n > bytes.length) throw new MalformedOscoreOption(`truncated Partial IV (${n} bytes announced)`);
    // §5: "All leading bytes of value zero SHALL be removed when encoding the Partial IV, except
    // in the case of Partial IV value 0". A non-minimal encoding would name the same nonce as the
    // minimal one; it can only come from a non-conforming sender, so it is refused.
    if (n > 1 && bytes[pos] === 0) throw new MalformedOscoreOption('Partial IV has a leading zero byte (RFC 8613 §5)');
    into.pivAt = pos;
    into.pivLength = n;
    pos += n;
  }
  if ((flags & FLAG_H) !== 0) {
    if (pos >= bytes.length) throw new MalformedOscoreOption('kid context flag set but no kid context length');
    const s = bytes[pos++]!;
    if (pos + s > bytes.length) throw new MalformedOscoreOption(`truncated kid context (${s} bytes announced)`);
    into.kidContextAt = pos;
    into.kidContextLength = s;
    pos += s;
  }
  if (nonceFlag) {
    if (pos >= bytes.length) throw new MalformedOscoreOption("flag 'd' set but no 'x' byte (KUDOS §4.1)");
    const x = bytes[pos++]!;
    // KUDOS §4.1: a set reserved bit of 'x' makes the message malformed (RFC 8613 §8.2 item 2 / §8.4 item 2).
    if ((x & KUDOS_X_RESERVED) !== 0) throw new MalformedOscoreOption(`reserved bit set in the KUDOS 'x' byte (0x${x.toString(16).padStart(2, '0')})`);
    const size = (x & 0x0f) + 1;
    if (pos + size > bytes.length) throw new MalformedOscoreOption(`truncated KUDOS nonce (${size} bytes announced)`);
    into.kudosX = x;
    into.kudosNonceAt = pos;
    into.kudosNonceLength = size;
    pos += size;
  }
  if ((flags & FLAG_K) !== 0) {
    // §6.1: "The remaining bytes encode the value of the 'kid'".
    into.kidAt = pos;
    into.kidLength = bytes.length - pos;
  } else if (pos !== bytes.length) {
    throw new MalformedOscoreOption(`${bytes.length - pos} trailing bytes in the OSCORE option without the kid flag`);
  }
}

/** decodeOscoreOption's layout: it is read at once, before anything else can parse. */
const LAYOUT = new OscoreOptionLayout();

/** Throws MalformedOscoreOption; never anything else. The returned fields are views into `bytes`. */
export function decodeOscoreOption(bytes: Uint8Array): OscoreOptionValue {
  const l = LAYOUT;
  parseOscoreOption(bytes, l);
  const out: OscoreOptionValue = {};
  if (l.pivLength >= 0) out.piv = bytes.subarray(l.pivAt, l.pivAt + l.pivLength);
  if (l.kidContextLength >= 0) out.kidContext = bytes.subarray(l.kidContextAt, l.kidContextAt + l.kidContextLength);
  if (l.kudosNonceLength >= 0) out.kudos = { x: l.kudosX, nonce: bytes.subarray(l.kudosNonceAt, l.kudosNonceAt + l.kudosNonceLength) };
  if (l.kidLength >= 0) out.kid = bytes.subarray(l.kidAt, l.kidAt + l.kidLength);
  return out;
}

function checkKudosFields(fields: KudosOptionFields, error: new (message: string) => Error): void {
  const { x, nonce } = fields;
  if (!Number.isInteger(x) || x < 0 || x > 0xff) throw new error(`KUDOS 'x' must be one byte, not ${x}`);
  if ((x & KUDOS_X_RESERVED) !== 0) throw new error("the reserved bit of the KUDOS 'x' byte must be 0 (KUDOS §4.1)");
  if (nonce.length !== (x & 0x0f) + 1) throw new error(`KUDOS nonce of ${nonce.length} bytes does not match m = ${x & 0x0f} in 'x'`);
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
