/**
 * The OSCORE option value of Group OSCORE (draft-ietf-core-oscore-groupcomm §4.1, §15.1): RFC 8613
 * §6.1's compressed COSE header plus the Group Flag, bit 0x20 of the flag byte (1: group mode,
 * 0: pairwise mode or plain OSCORE). Bit 0x80 (the KUDOS extension byte) and 0x40 stay reserved
 * here: a message that sets them is malformed.
 */
import { MalformedOscoreOption } from '../oscore/errors.js';

export interface GroupOscoreOptionValue {
  /** The Group Flag: true for group mode. */
  readonly group: boolean;
  readonly piv?: Uint8Array;
  readonly kidContext?: Uint8Array;
  readonly kid?: Uint8Array;
}

export const GROUP_FLAG = 0x20;
const FLAG_H = 0x10;
const FLAG_K = 0x08;
const PIV_MASK = 0x07;
const RESERVED = 0xc0;

export function encodeGroupOscoreOption(value: GroupOscoreOptionValue): Uint8Array {
  const { piv, kidContext, kid } = value;
  if (piv !== undefined && (piv.length < 1 || piv.length > 5)) throw new RangeError(`Partial IV must be 1-5 bytes, not ${piv.length}`);
  if (kidContext !== undefined && kidContext.length > 255) throw new RangeError(`kid context longer than 255 bytes (${kidContext.length})`);
  const flags = (value.group ? GROUP_FLAG : 0) | (piv?.length ?? 0) | (kid !== undefined ? FLAG_K : 0) | (kidContext !== undefined ? FLAG_H : 0);
  // RFC 8613 §2: all flag bits zero → the option value is empty.
  if (flags === 0) return new Uint8Array(0);
  const out = new Uint8Array(1 + (piv?.length ?? 0) + (kidContext !== undefined ? 1 + kidContext.length : 0) + (kid?.length ?? 0));
  let pos = 0;
  out[pos++] = flags;
  if (piv !== undefined) {
    out.set(piv, pos);
    pos += piv.length;
  }
  if (kidContext !== undefined) {
    out[pos++] = kidContext.length;
    out.set(kidContext, pos);
    pos += kidContext.length;
  }
  if (kid !== undefined) out.set(kid, pos);
  return out;
}

/** Throws MalformedOscoreOption only. The fields are copies, safe to keep. */
export function decodeGroupOscoreOption(bytes: Uint8Array): GroupOscoreOptionValue {
  if (bytes.length === 0) return { group: false };
  const flags = bytes[0]!;
  if ((flags & RESERVED) !== 0) throw new MalformedOscoreOption(`reserved OSCORE flag bits set (0x${flags.toString(16)})`);
  // RFC 8613 §2: a non-empty value whose flag bits are all zero is not the encoding of anything.
  if (flags === 0) throw new MalformedOscoreOption('OSCORE flag byte 0x00 in a non-empty option value');
  const n = flags & PIV_MASK;
  if (n > 5) throw new MalformedOscoreOption(`Partial IV length ${n} is reserved (RFC 8613 §6.1)`);
  let pos = 1;
  let piv: Uint8Array | undefined;
  let kidContext: Uint8Array | undefined;
  let kid: Uint8Array | undefined;
  if (n > 0) {
    if (pos + n > bytes.length) throw new MalformedOscoreOption('truncated Partial IV');
    piv = bytes.slice(pos, pos + n);
    if (n > 1 && piv[0] === 0) throw new MalformedOscoreOption('Partial IV has a leading zero byte (RFC 8613 §5)');
    pos += n;
  }
  if ((flags & FLAG_H) !== 0) {
    if (pos >= bytes.length) throw new MalformedOscoreOption('kid context flag set but no kid context length');
    const s = bytes[pos++]!;
    if (pos + s > bytes.length) throw new MalformedOscoreOption(`truncated kid context (${s} bytes announced)`);
    kidContext = bytes.slice(pos, pos + s);
    pos += s;
  }
  if ((flags & FLAG_K) !== 0) kid = bytes.slice(pos);
  else if (pos !== bytes.length) throw new MalformedOscoreOption(`${bytes.length - pos} trailing bytes in the OSCORE option without the kid flag`);
  return {
    group: (flags & GROUP_FLAG) !== 0,
    ...(piv !== undefined ? { piv } : {}),
    ...(kidContext !== undefined ? { kidContext } : {}),
    ...(kid !== undefined ? { kid } : {}),
  };
}
