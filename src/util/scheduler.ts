/**
 * Timers for protocol layers: one binary heap driven by one host timer (architecture rule 6),
 * and a fake scheduler with a manual clock for lockstep tests. Layers take a Scheduler and never
 * call setTimeout or Date.now themselves, so the same code runs in real time and in lockstep.
 */

export interface Timer {
  /** Absolute due time in the scheduler's milliseconds. */
  readonly at: number;
  cancel(): void;
  readonly cancelled: boolean;
}

export interface Scheduler {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  schedule(delayMs: number, callback: () => void): Timer;
}

const NOOP = (): void => {};

class HeapTimer implements Timer {
  cancelled = false;
  /** Still in the heap (not yet popped to run, nor dropped by a compaction). */
  queued = true;
  constructor(
    readonly at: number,
    readonly seq: number,
    public callback: () => void,
    private readonly heap: TimerHeap,
  ) {}
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    // Drop the closure now: a cancelled timer waits in the heap until it surfaces or the heap is
    // compacted, and must not keep its request (buffers, promises, listeners) alive meanwhile.
    this.callback = NOOP;
    if (this.queued) this.heap.onCancel();
  }
}

/** Min-heap on (at, seq); cancelled timers are skipped when they reach the top (lazy deletion). */
class TimerHeap {
  private items: HeapTimer[] = [];
  private seq = 0;
  /** Cancelled timers still in `items`. */
  private cancelledCount = 0;

  /** Called by HeapTimer.cancel(). Rebuilds the heap without cancelled timers once they dominate it. */
  onCancel(): void {
    this.cancelledCount++;
    if (this.cancelledCount > 64 && this.cancelledCount * 2 > this.items.length) this.compact();
  }

  private compact(): void {
    const live = this.items.filter((t) => !t.cancelled);
    this.items = live;
    this.cancelledCount = 0;
    // Floyd's bottom-up heap construction: O(n).
    for (let i = (live.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  liveCount(): number {
    let n = 0;
    for (const t of this.items) if (!t.cancelled) n++;
    return n;
  }

  push(at: number, callback: () => void): HeapTimer {
    const t = new HeapTimer(at, this.seq++, callback, this);
    const items = this.items;
    items.push(t);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
    return t;
  }

  /** The earliest live timer, dropping cancelled ones on the way. */
  peek(): HeapTimer | undefined {
    while (this.items.length > 0 && this.items[0]!.cancelled) {
      this.pop();
      this.cancelledCount--;
    }
    return this.items[0];
  }

  pop(): HeapTimer | undefined {
    const items = this.items;
    const top = items[0];
    if (top) top.queued = false;
    const last = items.pop();
    if (items.length > 0 && last) {
      items[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  private siftDown(start: number): void {
    const items = this.items;
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < items.length && before(items[l]!, items[m]!)) m = l;
      if (r < items.length && before(items[r]!, items[m]!)) m = r;
      if (m === i) break;
      [items[i], items[m]] = [items[m]!, items[i]!];
      i = m;
    }
  }
}

const before = (a: HeapTimer, b: HeapTimer): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/** Real time: performance.now() and a single unref'd setTimeout for the earliest due timer. */
export class RealScheduler implements Scheduler {
  private readonly heap = new TimerHeap();
  private hostTimer: ReturnType<typeof setTimeout> | undefined;
  private hostTimerAt = Infinity;

  now(): number {
    return performance.now();
  }

  schedule(delayMs: number, callback: () => void): Timer {
    const t = this.heap.push(this.now() + Math.max(0, delayMs), callback);
    if (t.at < this.hostTimerAt) this.arm(t.at);
    return t;
  }

  private arm(at: number): void {
    if (this.hostTimer) clearTimeout(this.hostTimer);
    this.hostTimerAt = at;
    this.hostTimer = setTimeout(() => this.fire(), Math.max(0, Math.ceil(at - this.now())));
    // Node: the timer alone does not keep the process alive. A browser's timer id is a number.
    (this.hostTimer as { unref?: () => void }).unref?.();
  }

  private fire(): void {
    this.hostTimer = undefined;
    this.hostTimerAt = Infinity;
    const now = this.now();
    // Bounded: each pass pops one timer; timers scheduled meanwhile for "now" run in this pass too.
    for (let t = this.heap.peek(); t && t.at <= now; t = this.heap.peek()) {
      this.heap.pop();
      runGuarded(t.callback);
    }
    const next = this.heap.peek();
    if (next) this.arm(next.at);
  }
}

/** Manual clock for lockstep tests: time moves only by advance(). */
export class FakeScheduler implements Scheduler {
  private readonly heap = new TimerHeap();
  private time: number;

  constructor(startMs = 0) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  schedule(delayMs: number, callback: () => void): Timer {
    return this.heap.push(this.time + Math.max(0, delayMs), callback);
  }

  /** Runs every timer due within the next `ms` milliseconds, in order, moving the clock to each. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (let t = this.heap.peek(); t && t.at <= end; t = this.heap.peek()) {
      this.heap.pop();
      this.time = Math.max(this.time, t.at);
      t.callback();
    }
    this.time = end;
  }

  /** Due time of the next live timer, if any. */
  nextDue(): number | undefined {
    return this.heap.peek()?.at;
  }

  /** Live (not cancelled) timers. */
  pendingTimers(): number {
    return this.heap.liveCount();
  }
}

function runGuarded(callback: () => void): void {
  try {
    callback();
  } catch (error) {
    const warning = `coapsec: timer callback failed: ${(error as Error).stack ?? error}`;
    const host = (globalThis as { process?: { emitWarning(text: string): void } }).process;
    if (host) host.emitWarning(warning);
    else console.warn(warning);
  }
}
