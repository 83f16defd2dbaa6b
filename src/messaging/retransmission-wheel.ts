/**
 * The first retransmission timeout of every outgoing CON (RFC 7252 §4.2) without a timer per CON.
 *
 * Almost every CON is acknowledged long before its first timeout (ACK_TIMEOUT × a random factor in
 * [1, ACK_RANDOM_FACTOR], 2–3 s by default), so a timer of its own — a heap entry, a closure, a
 * clock read, and a cancel — is work done per request for the rare one that needs it. Here CONs
 * wait in a list in the order they were sent, and one timer serves the whole list: it fires when
 * the oldest CON has waited ACK_TIMEOUT, the least any initial timeout can be. A CON still waiting
 * then is handed to `onOutlived`, which gives it a timer of its own at its exact time (its send time
 * plus its own timeout, never earlier than ACK_TIMEOUT after sending): so retransmissions happen at
 * the same times as with a timer per CON from the start. An acknowledged CON just leaves the list.
 *
 * Sans-IO like the messaging layer: the scheduler is injected (lockstep tests run it on the fake clock).
 */
import type { Scheduler, Timer } from '../util/scheduler.js';

/** A CON in the wheel: when it was sent, and its links in the send-order list. */
export interface WheelEntry {
  /** Scheduler time of its first transmission. */
  readonly sentAt: number;
  /** @internal */
  older: WheelEntry | undefined;
  /** @internal */
  newer: WheelEntry | undefined;
  /** @internal In the list (not yet outlived nor removed). */
  inWheel: boolean;
}

/**
 * How far before its hand-off time an entry may already be handed off: the wheel's timer is due
 * at `now + (sentAt + ackTimeout − now)`, which floating point may put an ulp before
 * `sentAt + ackTimeout`. Handing off early is harmless: the entry's own timer is at its exact time.
 */
const HAND_OFF_TOLERANCE_MS = 1e-3;

export class RetransmissionWheel<E extends WheelEntry> {
  private oldest: E | undefined;
  private newest: E | undefined;
  private timer: Timer | undefined;

  constructor(
    private readonly scheduler: Scheduler,
    /** ACK_TIMEOUT: no CON's initial timeout is shorter. */
    private readonly ackTimeout: number,
    /** An entry that waited ACK_TIMEOUT and is still in the wheel; it is out of the wheel when called. */
    private readonly onOutlived: (entry: E, now: number) => void,
  ) {}

  /** Adds a CON just sent (its sentAt is the latest of the wheel's). */
  add(entry: E): void {
    entry.inWheel = true;
    entry.older = this.newest;
    entry.newer = undefined;
    if (this.newest !== undefined) this.newest.newer = entry;
    else this.oldest = entry;
    this.newest = entry;
    if (this.timer === undefined) this.arm(entry.sentAt);
  }

  /** Takes out an acknowledged (or abandoned) CON; nothing if it is not in the wheel. */
  remove(entry: E): void {
    if (!entry.inWheel) return;
    entry.inWheel = false;
    const older = entry.older as E | undefined;
    const newer = entry.newer as E | undefined;
    if (older !== undefined) older.newer = newer;
    else this.oldest = newer;
    if (newer !== undefined) newer.older = older;
    else this.newest = older;
    entry.older = entry.newer = undefined;
    // The timer stays armed for the removed entry's time: when it fires it re-arms for the oldest
    // left (one timer per ACK_TIMEOUT at most, instead of a cancel and a new timer per ACK).
  }

  /** Forgets every entry and stops the timer. */
  clear(): void {
    for (let e = this.oldest; e !== undefined; e = this.oldest) this.remove(e);
    this.timer?.cancel();
    this.timer = undefined;
  }

  private arm(sentAt: number): void {
    this.timer = this.scheduler.schedule(sentAt + this.ackTimeout - this.scheduler.now(), () => this.fire());
  }

  private fire(): void {
    this.timer = undefined;
    const now = this.scheduler.now();
    const limit = now + HAND_OFF_TOLERANCE_MS - this.ackTimeout;
    for (let e = this.oldest; e !== undefined && e.sentAt <= limit; e = this.oldest) {
      this.remove(e);
      this.onOutlived(e, now);
    }
    if (this.oldest !== undefined && this.timer === undefined) this.arm(this.oldest.sentAt);
  }
}
