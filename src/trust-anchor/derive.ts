/**
 * DerivedKey mode (draft §2.1–§2.3): the nonce 'DK.' + TA_id + '.' + C_id + '.' + sequence_number
 * [+ '.' + random] and K_RS-C = the first 16 (or 32) bytes of P_SHA256(K_RS-TA, nonce).
 *
 * Nonce syntax chosen here (docs/trust-anchor-modes.md): TA_id and C_id are 1–32 characters of
 * [A-Za-z0-9_:@-] (no '.', so the nonce splits unambiguously); sequence_number is decimal without
 * leading zeros, 1 … 2^32−1; the optional random part (§5, against dictionary attacks) is 16–64
 * lowercase hex digits. The whole nonce is ASCII and at most 128 bytes.
 */
import { pSha256 } from '../dtls/prf.js';
import { MAX_SEQUENCE_NUMBER } from './window.js';

export const ID_PATTERN = /^[A-Za-z0-9_:@-]{1,32}$/;
const RANDOM_PATTERN = /^[0-9a-f]{16,64}$/;
const SEQ_PATTERN = /^(0|[1-9][0-9]{0,9})$/;

export interface DkNonce {
  taId: string;
  clientId: string;
  sequence: number;
  random?: string;
}

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}

export function formatNonce(n: DkNonce): string {
  if (!isValidId(n.taId)) throw new RangeError(`TA id "${n.taId}" must match ${ID_PATTERN}`);
  if (!isValidId(n.clientId)) throw new RangeError(`client id "${n.clientId}" must match ${ID_PATTERN}`);
  if (!Number.isInteger(n.sequence) || n.sequence < 0 || n.sequence > MAX_SEQUENCE_NUMBER) throw new RangeError('sequence number out of range');
  if (n.random !== undefined && !RANDOM_PATTERN.test(n.random)) throw new RangeError('random part must be 16-64 lowercase hex digits');
  return `DK.${n.taId}.${n.clientId}.${n.sequence}${n.random !== undefined ? `.${n.random}` : ''}`;
}

/** True when a PSK identity claims the DerivedKey mode (§2.3: the 'DK' prefix). */
export function isDkIdentity(identity: Uint8Array): boolean {
  return identity.length >= 3 && identity[0] === 0x44 && identity[1] === 0x4b && identity[2] === 0x2e;
}

/** Parses a DK nonce; undefined when it is not one (syntax as documented above). */
export function parseNonce(identity: Uint8Array | string): DkNonce | undefined {
  const text = typeof identity === 'string' ? identity : Buffer.from(identity).toString('latin1');
  if (text.length > 128) return undefined;
  const parts = text.split('.');
  if ((parts.length !== 4 && parts.length !== 5) || parts[0] !== 'DK') return undefined;
  const [, taId, clientId, seq, random] = parts as [string, string, string, string, string | undefined];
  if (!isValidId(taId) || !isValidId(clientId) || !SEQ_PATTERN.test(seq)) return undefined;
  const sequence = Number(seq);
  if (sequence > MAX_SEQUENCE_NUMBER) return undefined;
  if (random !== undefined && !RANDOM_PATTERN.test(random)) return undefined;
  return random !== undefined ? { taId, clientId, sequence, random } : { taId, clientId, sequence };
}

/** K_RS-C = first `length` bytes of P_SHA256(K_RS-TA, nonce) (§2.2; one iteration gives 32 bytes). */
export function deriveKey(kRsTa: Uint8Array, nonce: Uint8Array | string, length: 16 | 32 = 16): Buffer {
  if (length !== 16 && length !== 32) throw new RangeError('K_RS-C is 16 or 32 bytes');
  const seed = typeof nonce === 'string' ? Buffer.from(nonce, 'latin1') : Buffer.from(nonce);
  return pSha256(kRsTa, seed, 32).subarray(0, length);
}
