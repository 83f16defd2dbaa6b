/**
 * The authorization certificate of the AuthorizedPublicKey mode (draft §3.1), with the field
 * lengths the draft leaves open fixed as follows (docs/trust-anchor-modes.md):
 *
 *   struct {
 *     opaque ASN.1_subjectPublicKeyInfo<1..2^24-1>;   // 3-byte length, DER SPKI (RFC 7250 §3)
 *     opaque trust_anchor_id<1..255>;                 // 1-byte length, ASCII [A-Za-z0-9_:@-]
 *     uint32 sequence_number;                         // big-endian, 1 … 2^32−1
 *     MACAlgorithm mac_algorithm;                     // uint8, RFC 5246: hmac_sha256(3) only
 *     uint8 mac_length;                               // 16 … 32 (truncated HMAC-SHA256)
 *     opaque MAC[mac_length];
 *   } MacCert;
 *
 * MAC = HMAC-SHA256(K_RS-TA, MacCert with an empty MAC)[0 .. mac_length): the encoding of every
 * field up to and including mac_length (which keeps its real value, so a truncation length cannot
 * be changed), without the MAC bytes. The Certificate handshake body for certificate_type
 * AuthzCert (3) is exactly this structure.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { isValidId } from './derive.js';
import { MAX_SEQUENCE_NUMBER } from './window.js';

/** RFC 5246 §6.1 MACAlgorithm. */
export const MacAlgorithm = { HmacSha256: 3 } as const;
export const MIN_MAC_LENGTH = 16;
export const MAX_MAC_LENGTH = 32;

export interface MacCert {
  spki: Buffer;
  trustAnchorId: string;
  sequence: number;
  macAlgorithm: number;
  macLength: number;
  mac: Buffer;
}

export class MacCertError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MacCertError';
  }
}

/** The MAC input: all fields through mac_length, MAC omitted. */
export function macInput(c: Omit<MacCert, 'mac'>): Buffer {
  const id = Buffer.from(c.trustAnchorId, 'latin1');
  if (c.spki.length < 1 || c.spki.length > 0xffffff) throw new MacCertError('SPKI length out of range');
  if (id.length < 1 || id.length > 255) throw new MacCertError('trust_anchor_id length out of range');
  const head = Buffer.alloc(3);
  head.writeUIntBE(c.spki.length, 0, 3);
  const tail = Buffer.alloc(7);
  tail.writeUInt32BE(c.sequence >>> 0, 0);
  tail[4] = c.macAlgorithm;
  tail[5] = c.macLength;
  return Buffer.concat([head, c.spki, Buffer.from([id.length]), id, tail.subarray(0, 6)]);
}

export function computeMac(key: Uint8Array, c: Omit<MacCert, 'mac'>): Buffer {
  if (c.macAlgorithm !== MacAlgorithm.HmacSha256) throw new MacCertError(`unsupported mac_algorithm ${c.macAlgorithm}`);
  return createHmac('sha256', key).update(macInput(c)).digest().subarray(0, c.macLength);
}

/** Issues a MacCert (trust-anchor side). */
export function issueMacCert(key: Uint8Array, spki: Buffer, trustAnchorId: string, sequence: number, macLength = MAX_MAC_LENGTH): MacCert {
  if (!isValidId(trustAnchorId)) throw new MacCertError('invalid trust_anchor_id');
  if (!Number.isInteger(sequence) || sequence < 1 || sequence > MAX_SEQUENCE_NUMBER) throw new MacCertError('sequence number out of range');
  if (macLength < MIN_MAC_LENGTH || macLength > MAX_MAC_LENGTH) throw new MacCertError('mac_length out of range');
  const fields = { spki: Buffer.from(spki), trustAnchorId, sequence, macAlgorithm: MacAlgorithm.HmacSha256, macLength };
  return { ...fields, mac: computeMac(key, fields) };
}

export function encodeMacCert(c: MacCert): Buffer {
  if (c.mac.length !== c.macLength) throw new MacCertError('MAC length differs from mac_length');
  return Buffer.concat([macInput(c), c.mac]);
}

/** Strict structural decoding; throws MacCertError on any malformation or trailing byte. */
export function decodeMacCert(body: Uint8Array): MacCert {
  const b = Buffer.from(body);
  let o = 0;
  const need = (n: number): void => {
    if (o + n > b.length) throw new MacCertError('truncated MacCert');
  };
  need(3);
  const spkiLength = b.readUIntBE(o, 3);
  o += 3;
  if (spkiLength === 0) throw new MacCertError('empty SubjectPublicKeyInfo');
  need(spkiLength);
  const spki = b.subarray(o, o + spkiLength);
  o += spkiLength;
  need(1);
  const idLength = b[o++]!;
  if (idLength === 0) throw new MacCertError('empty trust_anchor_id');
  need(idLength);
  const trustAnchorId = b.subarray(o, o + idLength).toString('latin1');
  o += idLength;
  need(6);
  const sequence = b.readUInt32BE(o);
  const macAlgorithm = b[o + 4]!;
  const macLength = b[o + 5]!;
  o += 6;
  need(macLength);
  const mac = b.subarray(o, o + macLength);
  o += macLength;
  if (o !== b.length) throw new MacCertError('trailing bytes after MacCert');
  return { spki: Buffer.from(spki), trustAnchorId, sequence, macAlgorithm, macLength, mac: Buffer.from(mac) };
}

/** Constant-time MAC check (the caller has already checked TA id, sequence number and SPKI). */
export function macMatches(key: Uint8Array, c: MacCert): boolean {
  if (c.macAlgorithm !== MacAlgorithm.HmacSha256) return false;
  if (c.macLength < MIN_MAC_LENGTH || c.macLength > MAX_MAC_LENGTH || c.mac.length !== c.macLength) return false;
  const expected = computeMac(key, c);
  return timingSafeEqual(expected, c.mac);
}
