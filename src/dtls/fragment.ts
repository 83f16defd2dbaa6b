/**
 * Handshake message fragmentation and reassembly (RFC 6347 §4.2.2, §4.2.3).
 *
 * The receiver keeps next_receive_seq. Fragments of messages with message_seq < next_receive_seq
 * are retransmissions and are reported as duplicates (they can trigger a retransmission of our own
 * last flight, §4.2.4) but never re-processed. Messages a little ahead of next_receive_seq are
 * queued (bounded by `maxAhead`); anything further ahead is dropped. Fragments may arrive in any
 * order and may overlap; a message is delivered only when every byte is covered, and only in
 * message_seq order.
 */
import { encodeHandshakeFragment, HANDSHAKE_HEADER_LENGTH, type HandshakeFragment } from './handshake-messages.js';

export interface HandshakeMessage {
  msgType: number;
  messageSeq: number;
  body: Buffer;
  /** Record epoch the fragments arrived in (all fragments of a message must share it). */
  epoch: number;
}

interface Pending {
  msgType: number;
  length: number;
  epoch: number;
  body: Buffer;
  /** Sorted, non-overlapping covered [start, end) ranges. */
  ranges: Array<[number, number]>;
}

export type FragmentResult = 'accepted' | 'duplicate' | 'dropped';

export interface ReassemblerOptions {
  /** Largest handshake message accepted (bytes). */
  maxMessageLength?: number;
  /** How many messages beyond next_receive_seq may be queued. */
  maxAhead?: number;
}

export class HandshakeReassembler {
  private next = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly maxMessageLength: number;
  private readonly maxAhead: number;

  constructor(opts: ReassemblerOptions = {}) {
    this.maxMessageLength = opts.maxMessageLength ?? 16384;
    this.maxAhead = opts.maxAhead ?? 8;
  }

  get nextReceiveSeq(): number {
    return this.next;
  }

  /** Used after a stateless cookie exchange: the first message processed is the ClientHello with seq n. */
  set nextReceiveSeq(n: number) {
    this.next = n;
    this.pending.clear();
  }

  add(f: HandshakeFragment, epoch: number): FragmentResult {
    if (f.messageSeq < this.next) return 'duplicate';
    if (f.messageSeq >= this.next + this.maxAhead) return 'dropped';
    if (f.length > this.maxMessageLength) return 'dropped';
    if (f.fragmentOffset + f.fragmentLength > f.length) return 'dropped';
    let p = this.pending.get(f.messageSeq);
    if (!p) {
      p = { msgType: f.msgType, length: f.length, epoch, body: Buffer.alloc(f.length), ranges: [] };
      this.pending.set(f.messageSeq, p);
    } else if (p.msgType !== f.msgType || p.length !== f.length || p.epoch !== epoch) {
      // Inconsistent with what we already hold for this message_seq: drop the fragment.
      return 'dropped';
    }
    if (f.fragmentLength === 0 && f.length !== 0) return 'accepted';
    f.body.copy(p.body, f.fragmentOffset);
    p.ranges = mergeRange(p.ranges, f.fragmentOffset, f.fragmentOffset + f.fragmentLength);
    return 'accepted';
  }

  /** Next complete message in order, if any. Advances next_receive_seq. */
  pop(): HandshakeMessage | undefined {
    const p = this.pending.get(this.next);
    if (!p) return undefined;
    const complete = p.length === 0 || (p.ranges.length === 1 && p.ranges[0]![0] === 0 && p.ranges[0]![1] === p.length);
    if (!complete) return undefined;
    this.pending.delete(this.next);
    const msg: HandshakeMessage = { msgType: p.msgType, messageSeq: this.next, body: p.body, epoch: p.epoch };
    this.next++;
    return msg;
  }
}

function mergeRange(ranges: Array<[number, number]>, start: number, end: number): Array<[number, number]> {
  const all = [...ranges, [start, end] as [number, number]].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const r of all) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}

/**
 * Splits one handshake message into encoded fragments whose size (header included) does not exceed
 * `maxFragment` bytes. A message that fits is emitted as a single fragment.
 */
export function fragmentHandshake(msgType: number, messageSeq: number, body: Buffer, maxFragment: number): Buffer[] {
  const room = Math.max(1, maxFragment - HANDSHAKE_HEADER_LENGTH);
  const out: Buffer[] = [];
  let offset = 0;
  do {
    const len = Math.min(room, body.length - offset);
    out.push(
      encodeHandshakeFragment({
        msgType,
        length: body.length,
        messageSeq,
        fragmentOffset: offset,
        fragmentLength: len,
        body: body.subarray(offset, offset + len),
      }),
    );
    offset += len;
  } while (offset < body.length);
  return out;
}
