/**
 * Revocation message from a trust anchor to a resource server (draft §2.4: "the trust anchor has
 * to send a message to the RS specifying the sequence number"). The draft leaves the format open;
 * ours is self-authenticating with K_RS-TA, so it needs no other channel security:
 *
 *   struct {
 *     opaque trust_anchor_id<1..255>;
 *     uint32 sequence_number;
 *     opaque mac[32];     // HMAC-SHA256(K_RS-TA, "coapsec-ta-revoke-v1" || 0x00 || the two fields above)
 *   } Revocation;
 *
 * The label separates this MAC from MacCert MACs (whose input starts with a 3-byte length) and
 * from DerivedKey derivation (whose HMAC inputs start with "DK." or a 32-byte A(i)). Replaying a
 * revocation is harmless: marking a sequence number used twice changes nothing. It is POSTed to
 * the RS's /ta/revoke resource (application/octet-stream).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { isValidId } from './derive.js';
import { MAX_SEQUENCE_NUMBER } from './window.js';

const LABEL = Buffer.from('coapsec-ta-revoke-v1\0', 'latin1');
export const REVOCATION_PATH = '/ta/revoke';

function fields(taId: string, sequence: number): Buffer {
  const id = Buffer.from(taId, 'latin1');
  const seq = Buffer.alloc(4);
  seq.writeUInt32BE(sequence >>> 0);
  return Buffer.concat([Buffer.from([id.length]), id, seq]);
}

export function encodeRevocation(key: Uint8Array, taId: string, sequence: number): Buffer {
  if (!isValidId(taId)) throw new RangeError('invalid TA id');
  if (!Number.isInteger(sequence) || sequence < 1 || sequence > MAX_SEQUENCE_NUMBER) throw new RangeError('sequence number out of range');
  const f = fields(taId, sequence);
  return Buffer.concat([f, createHmac('sha256', key).update(LABEL).update(f).digest()]);
}

/** Parses without authenticating; undefined when malformed. */
export function decodeRevocation(payload: Uint8Array): { taId: string; sequence: number; mac: Buffer } | undefined {
  const b = Buffer.from(payload);
  if (b.length < 1) return undefined;
  const idLength = b[0]!;
  if (idLength === 0 || b.length !== 1 + idLength + 4 + 32) return undefined;
  const taId = b.subarray(1, 1 + idLength).toString('latin1');
  if (!isValidId(taId)) return undefined;
  return { taId, sequence: b.readUInt32BE(1 + idLength), mac: b.subarray(1 + idLength + 4) };
}

export function revocationMacValid(key: Uint8Array, r: { taId: string; sequence: number; mac: Buffer }): boolean {
  const expected = createHmac('sha256', key).update(LABEL).update(fields(r.taId, r.sequence)).digest();
  return r.mac.length === expected.length && timingSafeEqual(r.mac, expected);
}
