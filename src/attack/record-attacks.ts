/**
 * TEST TOOL. The same attack catalogue as attacks.ts, played by an on-path attacker who is *not*
 * the proxy (issue 28): it sits on the wire of a DTLS-protected hop and sees DTLS records, not
 * CoAP. It can only do to records what an outsider can: flip ciphertext bits, drop, delay,
 * reorder, replay genuine records, and inject records of its own (which it cannot authenticate).
 * Each CoAP-level attack maps to the closest record-level act; the runs then show which of them
 * the DTLS record layer (RFC 6347 §4.1.2.1 replay window, §4.1.2.7 MAC check) turns away.
 */
import type { RandomSource } from '../util/random.js';
import type { Direction } from './attacks.js';

export interface WireRecord {
  /** request: client → server of the hop; response: server → client. */
  direction: Direction;
  bytes: Buffer;
}

export interface WireEmission extends WireRecord {
  delayMs: number;
}

/** A DTLS 1.2 application_data record (content type 23, RFC 6347 §4.1). */
const APPLICATION_DATA = 23;
const RECORD_HEADER_LENGTH = 13;

type Act = 'flip' | 'drop' | 'delay' | 'reorder' | 'replay' | 'forge' | 'strip' | 'pass';

/** Per attack of attacks.ts: what an outsider can do instead, and in which direction by default. */
const RECORD_ACTS: Record<string, { act: Act; direction: Direction }> = {
  'modify-payload': { act: 'flip', direction: 'response' },
  'modify-option': { act: 'flip', direction: 'request' },
  'modify-code': { act: 'flip', direction: 'request' },
  'modify-header': { act: 'flip', direction: 'response' },
  fuzz: { act: 'flip', direction: 'response' },
  drop: { act: 'drop', direction: 'response' },
  delay: { act: 'delay', direction: 'request' },
  reorder: { act: 'reorder', direction: 'response' },
  // Two genuine records of one session can only be exchanged in order, not in content.
  swap: { act: 'reorder', direction: 'response' },
  duplicate: { act: 'replay', direction: 'request' },
  replay: { act: 'replay', direction: 'request' },
  'stale-cache': { act: 'replay', direction: 'response' },
  'inject-response': { act: 'forge', direction: 'response' },
  'inject-request': { act: 'forge', direction: 'request' },
  flood: { act: 'forge', direction: 'response' },
  strip: { act: 'strip', direction: 'response' },
  eavesdrop: { act: 'pass', direction: 'request' },
  'traffic-analysis': { act: 'pass', direction: 'request' },
  none: { act: 'pass', direction: 'request' },
};

export interface RecordAttackOptions {
  direction?: Direction;
  /** For delay: how long (ms). */
  amount?: number;
  /** Attack only records after this many application-data records of the target direction. */
  skip?: number;
}

/** Applies one attack, by name, to the records of one hop; keeps its own state. */
export class RecordInterceptor {
  private readonly act: Act;
  private readonly direction: Direction;
  private count = 0;
  private held: WireRecord | undefined;
  private released = false;
  private first: Buffer | undefined;
  private delayedLength: number | undefined;
  private delayUntil = 0;
  private done = false;

  constructor(
    attack: string,
    private readonly options: RecordAttackOptions,
    private readonly random: RandomSource,
    private readonly now: () => number,
  ) {
    const entry = RECORD_ACTS[attack];
    if (!entry) throw new Error(`no record-level form of attack "${attack}"`);
    this.act = entry.act;
    this.direction = options.direction ?? entry.direction;
  }

  /** Returns what to emit instead of `r`, or undefined to forward it unchanged. [] drops it. */
  intercept(r: WireRecord): WireEmission[] | undefined {
    // Handshake records pass: the outsider attacks the protected traffic, not session setup.
    if (r.bytes[0] !== APPLICATION_DATA || r.direction !== this.direction) return undefined;
    const n = this.count++;
    const skip = this.options.skip ?? 0;
    const pass: WireEmission[] = [{ ...r, delayMs: 0 }];
    switch (this.act) {
      case 'pass':
        return undefined;
      case 'flip': {
        if (n < skip) return undefined;
        const out = Buffer.from(r.bytes);
        const at = RECORD_HEADER_LENGTH + Math.floor(this.random.float() * Math.max(1, out.length - RECORD_HEADER_LENGTH));
        out[Math.min(at, out.length - 1)]! ^= this.random.bytes(1)[0]! | 1;
        return [{ ...r, bytes: out, delayMs: 0 }];
      }
      case 'drop':
        return n < skip ? undefined : [];
      case 'delay': {
        if (n < skip) return undefined;
        if (this.delayedLength === undefined) {
          this.delayedLength = r.bytes.length;
          const amount = this.options.amount ?? 120_000;
          this.delayUntil = this.now() + amount;
          return [{ ...r, delayMs: amount }];
        }
        // Retransmissions of the held request (same length, re-encrypted) are withheld as well.
        return r.bytes.length === this.delayedLength && this.now() < this.delayUntil ? [] : undefined;
      }
      case 'reorder': {
        if (n < skip || this.released) return undefined;
        if (!this.held) {
          this.held = r;
          return [];
        }
        this.released = true;
        return [...pass, { ...this.held, delayMs: 1 }];
      }
      case 'replay': {
        if (!this.first) {
          this.first = Buffer.from(r.bytes);
          return undefined;
        }
        if (this.done) return undefined;
        this.done = true;
        return [...pass, { ...r, bytes: Buffer.from(this.first), delayMs: 10 }];
      }
      case 'forge': {
        if (n < skip || this.done) return undefined;
        this.done = true;
        // A record with the genuine header (epoch, a fresh sequence number) and random ciphertext.
        const forged = Buffer.concat([r.bytes.subarray(0, RECORD_HEADER_LENGTH), this.random.bytes(r.bytes.length - RECORD_HEADER_LENGTH)]);
        forged.writeUIntBE(forged.readUIntBE(5, 6) + 1000, 5, 6);
        return [{ ...r, bytes: forged, delayMs: 0 }, { ...r, delayMs: 5 }];
      }
      case 'strip': {
        if (n < skip || this.done) return undefined;
        this.done = true;
        // A plain CoAP 2.05 "downgraded" (ACK, MID 0) in place of the protected record.
        const coap = Buffer.concat([Buffer.from([0x60, 0x45, 0x00, 0x00, 0xff]), Buffer.from('downgraded')]);
        return [{ ...r, bytes: coap, delayMs: 0 }];
      }
    }
  }
}
