/**
 * TLS_*_WITH_AES_128_CCM_8 record protection (RFC 6655 §3, RFC 7251 §2) for one connection
 * direction: AES-CCM with an 8-byte tag and the 12-byte nonce
 *
 *   nonce = write_IV (4) || nonce_explicit (8),   nonce_explicit = seq_num = epoch (2) || sequence_number (6)
 *
 * so the nonces of a direction's next records are known ahead (the sequence number counts up,
 * RFC 6347 §4.1). CCM's CTR keystream depends on the key and the nonce only, so the keystreams of
 * the next BATCH nonces come from one AES call (`AesCcm.keystreams`) instead of one call each;
 * a record then costs one AES call, its CBC-MAC. The AES key is scheduled once per direction.
 *
 * Sending: the batch starts at the record that found no keystream for its sequence number.
 * A keystream serves only the nonce it was made for, and a nonce only the one record with that
 * sequence number (the connection never repeats one within an epoch, §4.1), so no keystream
 * encrypts two messages.
 *
 * Receiving: a keystream is used only for a record whose nonce_explicit names exactly the nonce it
 * was made for. The next nonces are batched only after a record has authenticated: a forged or
 * replayed record (the replay check runs before decryption, §4.1.2.6) costs what it costs without
 * batching and changes no state here; records failing authentication are dropped by the caller
 * (§4.1.2.7). Only a peer that uses seq_num as nonce_explicit (as RFC 6655 §3 has it) gets
 * batches: for any other choice, batching would only add work.
 */
import { AesCcm, type KeystreamSlice } from '../crypto/aes-ccm.js';
import type { RecordProtection } from './cipher.js';
import { EXPLICIT_NONCE_LENGTH, MAX_SEQUENCE, readSequence, writeAdditionalData, writeSeqNum } from './record.js';

const TAG = 8;
const NONCE = 12;
const IV = 4;
const BLOCK = 16;
/** Nonces per AES call; 16 records of up to 48 bytes are 1 KiB of keystream per direction. */
const BATCH = 16;
/** Keystream blocks per nonce at least (S_0 and 48 bytes) and at most (S_0 and 256 bytes). */
const MIN_BLOCKS = 4;
const MAX_BLOCKS = 17;

/**
 * The CTR keystreams of the nonces write_IV || epoch || seq for seq in [first, first + count),
 * `blocks` blocks each, back to back.
 */
class KeystreamBatch {
  #epoch = -1;
  #first = 0;
  #count = 0;
  /** What find() returns, updated in place (no object per record): AesCcm reads it at once. */
  readonly #slice: { bytes: Uint8Array; at: number; length: number } = { bytes: new Uint8Array(0), at: 0, length: 0 };
  readonly #nonces = Buffer.alloc(BATCH * NONCE);

  constructor(
    private readonly ccm: AesCcm,
    iv: Buffer,
  ) {
    for (let k = 0; k < BATCH; k++) iv.copy(this.#nonces, k * NONCE);
  }

  /** The keystream of (epoch, seq) when the batch holds it (valid until the next find or fill). */
  find(epoch: number, seq: number): KeystreamSlice | undefined {
    const k = seq - this.#first;
    if (epoch !== this.#epoch || k < 0 || k >= this.#count) return undefined;
    this.#slice.at = k * this.#slice.length;
    return this.#slice;
  }

  /** True when no nonce after (epoch, seq) is in the batch: the next record needs a new one. */
  exhaustedAfter(epoch: number, seq: number): boolean {
    return epoch !== this.#epoch || seq + 1 >= this.#first + this.#count;
  }

  /** Replaces the batch with the keystreams of (epoch, first), (epoch, first + 1), … for messages of `length` bytes. */
  fill(epoch: number, first: number, length: number): void {
    const count = Math.min(BATCH, MAX_SEQUENCE - first + 1);
    const blocks = Math.max(MIN_BLOCKS, 1 + Math.ceil(length / BLOCK));
    for (let k = 0; k < count; k++) writeSeqNum(this.#nonces, k * NONCE + IV, epoch, first + k);
    this.#slice.bytes = this.ccm.keystreams(count === BATCH ? this.#nonces : this.#nonces.subarray(0, count * NONCE), blocks);
    this.#slice.length = blocks * BLOCK;
    this.#epoch = epoch;
    this.#first = first;
    this.#count = count;
  }

  /** Whether messages of `length` bytes may start a batch (larger ones, handshake flights, do not). */
  static suits(length: number): boolean {
    return 1 + Math.ceil(length / BLOCK) <= MAX_BLOCKS;
  }
}

export function ccm8Protection(key: Buffer, iv: Buffer): RecordProtection {
  const ccm = new AesCcm(key, TAG, NONCE);
  // Scratch nonce and additional_data: AesCcm copies them before returning, and calls never overlap.
  const nonce = Buffer.alloc(NONCE);
  iv.copy(nonce, 0);
  const ad = Buffer.alloc(13);
  const sending = new KeystreamBatch(ccm, iv);
  const receiving = new KeystreamBatch(ccm, iv);
  return {
    kind: 'CCM_8',
    overhead: EXPLICIT_NONCE_LENGTH + TAG,
    encrypt(type, version, epoch, seq, plaintext, headroom = 0) {
      const n = plaintext.length;
      const out = Buffer.allocUnsafe(headroom + EXPLICIT_NONCE_LENGTH + n + TAG);
      writeSeqNum(out, headroom, epoch, seq);
      writeSeqNum(nonce, IV, epoch, seq);
      writeAdditionalData(ad, epoch, seq, type, version, n);
      let keystream = sending.find(epoch, seq);
      if (keystream === undefined && KeystreamBatch.suits(n)) {
        sending.fill(epoch, seq, n);
        keystream = sending.find(epoch, seq);
      }
      // A message longer than the batch's keystreams gets its own (sealInto computes it).
      ccm.sealInto(out, headroom + EXPLICIT_NONCE_LENGTH, nonce, ad, plaintext, keystream);
      return out;
    },
    decrypt(type, version, epoch, seq, fragment) {
      const n = fragment.length - EXPLICIT_NONCE_LENGTH - TAG;
      if (n < 0) return null;
      // The nonce is write_IV || nonce_explicit as sent (RFC 6655 §3, as RFC 5288 §3).
      for (let i = 0; i < EXPLICIT_NONCE_LENGTH; i++) nonce[IV + i] = fragment[i]!;
      const explicitEpoch = (fragment[0]! << 8) | fragment[1]!;
      const explicitSeq = readSequence(fragment, 2);
      writeAdditionalData(ad, epoch, seq, type, version, n);
      const plaintext = ccm.openAt(nonce, ad, fragment, EXPLICIT_NONCE_LENGTH, n, receiving.find(explicitEpoch, explicitSeq));
      if (plaintext === undefined) return null;
      // Authenticated: the peer's next records are worth a batch (see the header comment).
      if (explicitEpoch === epoch && explicitSeq === seq && seq < MAX_SEQUENCE && KeystreamBatch.suits(n) && receiving.exhaustedAfter(epoch, seq)) {
        receiving.fill(epoch, seq + 1, n);
      }
      return plaintext;
    },
  };
}
