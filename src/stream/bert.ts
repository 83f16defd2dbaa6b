/**
 * BERT, Block-wise Extension for Reliable Transport (RFC 8323 §6): over a connection where both
 * CSMs offered Block-Wise-Transfer with a Max-Message-Size above 1152 (§5.3.2), a Block1/Block2
 * option with SZX 7 carries a payload of several 1024-byte blocks; its NUM counts 1024-byte units
 * and the next NUM advances by the number of units carried. Pure functions and a bounded
 * reassembler; the carrier decides whether BERT is allowed (StreamConnection.bertAllowed).
 */
import { BERT_SZX, type BlockValue } from '../coap/block.js';
import { joinBytes } from '../util/bytes.js';

/** The unit of a BERT block (§6: "multiple 1024-byte blocks"). */
export const BERT_UNIT = 1024;

/**
 * How many payload bytes a BERT message may carry to a peer with `peerMaxMessageSize`, leaving
 * `overhead` bytes for header, token and options: a whole number of 1024-byte units, at least one.
 */
export function bertPayloadLimit(peerMaxMessageSize: number, overhead = 128): number {
  return Math.max(BERT_UNIT, Math.floor((peerMaxMessageSize - overhead) / BERT_UNIT) * BERT_UNIT);
}

/** The BERT block of `body` that starts at unit `num`, as large as `payloadLimit` allows (§6, Figure 13). */
export function sliceBert(body: Uint8Array, num: number, payloadLimit: number): { block: BlockValue; payload: Uint8Array } {
  const units = Math.max(1, Math.floor(payloadLimit / BERT_UNIT));
  const start = num * BERT_UNIT;
  if (start > body.length || (start === body.length && body.length > 0)) throw new RangeError(`BERT block ${num} is past the end of a ${body.length}-byte body`);
  const end = Math.min(body.length, start + units * BERT_UNIT);
  return { block: { num, more: end < body.length, szx: BERT_SZX }, payload: body.subarray(start, end) };
}

/** Where the block after `block` (carrying `payloadLength` bytes) starts, in 1024-byte units. */
export function nextBertNum(block: BlockValue, payloadLength: number): number {
  return block.num + Math.ceil(payloadLength / BERT_UNIT);
}

export class BertError extends Error {}

/**
 * Reassembles a body from BERT blocks arriving in order (a Block1 upload, or a Block2 download),
 * bounded by `maxBodySize`. Non-final blocks must carry whole 1024-byte units (§6).
 */
export class BertAssembler {
  private readonly parts: Uint8Array[] = [];
  private received = 0;
  private done = false;

  constructor(private readonly maxBodySize: number) {}

  /** The NUM the next block must carry. */
  get expectedNum(): number {
    return this.received / BERT_UNIT;
  }

  /** Adds a block; returns the whole body after the final one, undefined before. */
  add(block: BlockValue, payload: Uint8Array): Uint8Array | undefined {
    if (this.done) throw new BertError('the body is already complete');
    if (block.szx !== BERT_SZX) throw new BertError(`not a BERT block (SZX ${block.szx})`);
    if (block.num * BERT_UNIT !== this.received) throw new BertError(`block ${block.num} out of order: expected ${this.expectedNum}`);
    if (block.more && (payload.length === 0 || payload.length % BERT_UNIT !== 0)) {
      throw new BertError(`a non-final BERT block carries whole 1024-byte units, not ${payload.length} bytes`);
    }
    if (this.received + payload.length > this.maxBodySize) throw new BertError(`body larger than ${this.maxBodySize} bytes`);
    this.parts.push(payload);
    this.received += payload.length;
    if (block.more) return undefined;
    this.done = true;
    return joinBytes(this.parts, this.received);
  }
}
