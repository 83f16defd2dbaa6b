/**
 * The per-peer gate of draft-ietf-core-oscore-key-update §4.3.7: "During an ongoing KUDOS
 * execution, a peer MUST NOT send a non KUDOS message to the other peer", and before sending a
 * KUDOS message it "MUST ensure that it has no outstanding interactions with the other peer".
 *
 * The gate counts the exchanges in flight with one peer (`admit` … release). `close()` stops new
 * ones: they wait, in a bounded queue, each with a deadline after which it fails with
 * KudosGateError — never silently, never forever. `drained()` resolves once the exchanges admitted
 * before the close have ended; `open()` lets the waiting ones go, in order, on whichever context
 * the update left (CTX_NEW, or CTX_OLD after an abort).
 */

export class KudosGateError extends Error {
  override readonly name = 'KudosGateError';
}

export interface PeerGateOptions {
  /** Names the peer in errors. */
  peer: string;
  /** The most requests held at once; one more fails at once. Default 32. */
  maxHeld?: number;
  /** How long a held request waits for the update before it fails. Default 10 s. */
  holdTimeoutMs?: number;
}

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class PeerGate {
  readonly #peer: string;
  readonly #maxHeld: number;
  readonly #holdTimeoutMs: number;
  #closed = false;
  #inFlight = 0;
  readonly #waiting: Waiter[] = [];
  #drainWaiters: (() => void)[] = [];

  constructor(options: PeerGateOptions) {
    this.#peer = options.peer;
    this.#maxHeld = options.maxHeld ?? 32;
    this.#holdTimeoutMs = options.holdTimeoutMs ?? 10_000;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get held(): number {
    return this.#waiting.length;
  }

  /**
   * Waits while the gate is closed, then counts one exchange in flight; call the returned function
   * when the exchange ends (its final response, or its failure).
   */
  async admit(): Promise<() => void> {
    if (this.#closed) await this.hold();
    this.#inFlight++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#inFlight--;
      if (this.#inFlight === 0) this.#drained();
    };
  }

  /** Waits while the gate is closed, without counting an exchange (a server holding a request). */
  hold(): Promise<void> {
    if (!this.#closed) return Promise.resolve();
    if (this.#waiting.length >= this.#maxHeld) {
      return Promise.reject(new KudosGateError(`KUDOS key update with ${this.#peer} in progress and ${this.#maxHeld} requests already held`));
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const index = this.#waiting.indexOf(waiter);
          if (index >= 0) this.#waiting.splice(index, 1);
          reject(new KudosGateError(`KUDOS key update with ${this.#peer} did not finish within ${this.#holdTimeoutMs} ms; request not sent`));
        }, this.#holdTimeoutMs),
      };
      this.#waiting.push(waiter);
    });
  }

  close(): void {
    this.#closed = true;
  }

  /** The update ended (completed or aborted): held requests go, in arrival order. */
  open(): void {
    this.#closed = false;
    const waiting = this.#waiting.splice(0);
    for (const w of waiting) {
      clearTimeout(w.timer);
      w.resolve();
    }
  }

  /** Resolves when no admitted exchange is in flight; rejects after `timeoutMs`. */
  drained(timeoutMs = this.#holdTimeoutMs): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#drainWaiters = this.#drainWaiters.filter((w) => w !== done);
        reject(new KudosGateError(`${this.#inFlight} exchanges with ${this.#peer} still outstanding after ${timeoutMs} ms; KUDOS not started (§4.3.7)`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.#drainWaiters.push(done);
    });
  }

  #drained(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }
}
