/**
 * AEAD record protection for DTLS 1.2 (RFC 5246 §6.2.3.3, RFC 6655 §3, RFC 5288 §3, RFC 7251).
 *
 *   nonce            = client/server_write_IV (4, implicit) || explicit nonce (8)
 *   explicit nonce   = seq_num = epoch (2) || sequence_number (6)   (sent in clear before ciphertext)
 *   additional_data  = seq_num (8) || type (1) || version (2) || length (2, plaintext length)
 *
 * Using epoch||seq as the explicit nonce makes nonce uniqueness follow from sequence number
 * uniqueness, which the connection enforces (never wraps, refuses at 2^48-1).
 *
 * ChaCha20-Poly1305 (RFC 7905 §2) has no explicit nonce: nonce = write_IV (12) XOR
 * (0x00000000 || seq_num), and the record fragment is ciphertext || tag (16).
 */
import {
  createCipheriv,
  createDecipheriv,
  type CipherChaCha20Poly1305,
  type CipherGCM,
  type DecipherChaCha20Poly1305,
  type DecipherGCM,
} from 'node:crypto';
import { ccm8Protection } from './ccm8.js';
import { EXPLICIT_NONCE_LENGTH, epochSeq, writeAdditionalData, writeSeqNum } from './record.js';

export type AeadKind = 'CCM_8' | 'GCM' | 'CHACHA20_POLY1305';

export interface RecordProtection {
  readonly kind: AeadKind;
  /** Bytes added to the plaintext: explicit nonce + tag. */
  readonly overhead: number;
  /**
   * The record fragment (explicit nonce || ciphertext || tag), preceded by `headroom` bytes left
   * for the caller (the record header), so a record is written into one buffer.
   */
  encrypt(type: number, version: number, epoch: number, seq: number, plaintext: Uint8Array, headroom?: number): Buffer;
  /** Returns null when the record does not authenticate (callers drop it). */
  decrypt(type: number, version: number, epoch: number, seq: number, fragment: Buffer): Buffer | null;
}

const additionalData = (epoch: number, seq: number, type: number, version: number, length: number): Buffer =>
  writeAdditionalData(Buffer.allocUnsafe(13), epoch, seq, type, version, length);

export function keyLengthOf(kind: AeadKind): number {
  return kind === 'CHACHA20_POLY1305' ? 32 : 16;
}

export function fixedIvLengthOf(kind: AeadKind): number {
  return kind === 'CHACHA20_POLY1305' ? 12 : 4;
}

type AnyCipher = CipherGCM | CipherChaCha20Poly1305;
type AnyDecipher = DecipherGCM | DecipherChaCha20Poly1305;

export function createRecordProtection(kind: AeadKind, key: Buffer, fixedIv: Buffer): RecordProtection {
  if (key.length !== keyLengthOf(kind)) throw new RangeError(`${kind} key must be ${keyLengthOf(kind)} bytes`);
  if (fixedIv.length !== fixedIvLengthOf(kind)) throw new RangeError(`${kind} implicit IV must be ${fixedIvLengthOf(kind)} bytes`);
  const k = Buffer.from(key);
  const iv = Buffer.from(fixedIv);
  if (kind === 'CCM_8') return ccm8Protection(k, iv);
  const tagLength = 16;
  const explicitLength = kind === 'CHACHA20_POLY1305' ? 0 : EXPLICIT_NONCE_LENGTH;
  const algorithm = kind === 'GCM' ? 'aes-128-gcm' : 'chacha20-poly1305';

  const nonceFor = (explicit: Buffer): Buffer => {
    if (kind !== 'CHACHA20_POLY1305') return Buffer.concat([iv, explicit]);
    const n = Buffer.from(iv);
    for (let i = 0; i < 8; i++) n[4 + i]! ^= explicit[i]!;
    return n;
  };

  return {
    kind,
    overhead: explicitLength + tagLength,
    encrypt(type, version, epoch, seq, plaintext, headroom = 0) {
      // One output buffer: [headroom] explicit nonce || ciphertext || tag (one call per record).
      const out = Buffer.allocUnsafe(headroom + explicitLength + plaintext.length + tagLength);
      let nonce: Buffer;
      if (explicitLength) {
        writeSeqNum(out, headroom, epoch, seq);
        nonce = Buffer.allocUnsafe(12);
        iv.copy(nonce, 0);
        out.copy(nonce, 4, headroom, headroom + EXPLICIT_NONCE_LENGTH);
      } else {
        nonce = nonceFor(epochSeq(epoch, seq));
      }
      const ad = additionalData(epoch, seq, type, version, plaintext.length);
      const c = createCipheriv(algorithm as 'aes-128-gcm', k, nonce, { authTagLength: tagLength }) as unknown as AnyCipher;
      c.setAAD(ad, { plaintextLength: plaintext.length });
      let pos = headroom + explicitLength;
      pos += c.update(plaintext).copy(out, pos);
      pos += c.final().copy(out, pos);
      c.getAuthTag().copy(out, pos);
      return out;
    },
    decrypt(type, version, epoch, seq, fragment) {
      if (fragment.length < explicitLength + tagLength) return null;
      // For the AES suites the explicit nonce is taken from the record as sent (RFC 5288 §3).
      const explicit = explicitLength ? fragment.subarray(0, explicitLength) : epochSeq(epoch, seq);
      const ct = fragment.subarray(explicitLength, fragment.length - tagLength);
      const tag = fragment.subarray(fragment.length - tagLength);
      const ad = additionalData(epoch, seq, type, version, ct.length);
      try {
        const d = createDecipheriv(algorithm as 'aes-128-gcm', k, nonceFor(explicit), { authTagLength: tagLength }) as unknown as AnyDecipher;
        d.setAuthTag(tag);
        d.setAAD(ad, { plaintextLength: ct.length });
        const pt = d.update(ct);
        d.final();
        return pt;
      } catch {
        return null;
      }
    },
  };
}
