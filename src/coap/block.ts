/**
 * Block1/Block2 option values (RFC 7959 §2.2): NUM | M | SZX, block size 2^(SZX+4).
 * SZX 7 is reserved (BERT, RFC 8323, only over reliable transports).
 */
import { decodeUint, encodeUint, getOption, type CoapMessage } from './message.js';

export interface BlockValue {
  num: number;
  more: boolean;
  szx: number;
}

export const MAX_SZX = 6;
export const MAX_BLOCK_NUM = 0xfffff; // 20 bits in a 3-byte option value

export const blockSize = (szx: number): number => 1 << (szx + 4);

export class BlockOptionError extends Error {}

/** RFC 8323 §6: SZX 7 marks a BERT option, legal only over a reliable transport where both sides offered BERT. */
export const BERT_SZX = 7;

export function decodeBlock(bytes: Uint8Array, options: { bert?: boolean } = {}): BlockValue {
  const v = decodeUint(bytes);
  const szx = v & 7;
  if (szx === BERT_SZX && !options.bert) throw new BlockOptionError('block size exponent 7 is reserved (RFC 7959 §2.2)');
  return { num: Math.floor(v / 16), more: (v & 8) !== 0, szx };
}

export function encodeBlock(block: BlockValue, options: { bert?: boolean } = {}): Uint8Array {
  if (block.szx < 0 || block.szx > (options.bert ? BERT_SZX : MAX_SZX)) throw new RangeError(`SZX out of range: ${block.szx}`);
  if (block.num < 0 || block.num > MAX_BLOCK_NUM) throw new RangeError(`block number out of range: ${block.num}`);
  return encodeUint(block.num * 16 + (block.more ? 8 : 0) + block.szx);
}

/** The SZX for a block size in bytes (16..1024, a power of two). */
export function szxForSize(size: number): number {
  const szx = Math.log2(size) - 4;
  if (!Number.isInteger(szx) || szx < 0 || szx > MAX_SZX) {
    throw new RangeError(`block size must be a power of two from 16 to 1024, got ${size}`);
  }
  return szx;
}

export const blockOffset = (block: BlockValue): number => block.num * blockSize(block.szx);

/** "2/1/64" as RFC 7959 writes blocks in its figures. */
export const formatBlock = (b: BlockValue): string => `${b.num}/${b.more ? 1 : 0}/${blockSize(b.szx)}`;

/** The message's Block1 or Block2 option, undefined when absent; throws BlockOptionError for SZX 7 unless BERT is allowed. */
export function readBlockOption(message: Pick<CoapMessage, 'options'>, number: number, options?: { bert?: boolean }): BlockValue | undefined {
  const value = getOption(message, number);
  return value === undefined ? undefined : decodeBlock(value, options);
}

/**
 * The bytes one NUM stands for: the block size, or for a BERT block (SZX 7) the 1024-byte unit
 * its NUM counts (RFC 8323 §6: a BERT option is read as SZX 6, its payload several such blocks).
 */
export const blockUnit = (szx: number): number => (szx === BERT_SZX ? 1024 : blockSize(szx));
