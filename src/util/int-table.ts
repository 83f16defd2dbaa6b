/**
 * A table from non-negative integers below 2^31 (Message IDs, numbers read from tokens) to values,
 * for keys that come and go with every message: open addressing with linear probing and
 * backward-shift deletion, so a steady state of adds and removes allocates nothing. A `Map` under
 * that churn allocates a new backing table every few dozen operations (V8 rehashes away deleted
 * entries when it fills and shrinks below a quarter full), which the client's allocation profile
 * showed as 150–200 bytes of garbage per request (issue 21). Grows at half full; shrinks at an
 * eighth, and only once it has stayed below that for as many removals as it has slots: a size
 * that swings with every burst (a proxy's outstanding CONs upstream go from 32 to 0 and back with
 * each batch of datagrams) would otherwise resize twice per swing, which the proxy's allocation
 * profile showed as 90 bytes of garbage per forwarded request.
 */
const EMPTY = -1;
const MIN_CAPACITY = 8;

export class IntTable<V> {
  private keys = new Int32Array(MIN_CAPACITY).fill(EMPTY);
  private values: (V | undefined)[] = new Array<V | undefined>(MIN_CAPACITY).fill(undefined);
  private shift = 32 - Math.log2(MIN_CAPACITY);
  private count = 0;
  /** Removals since the table last held an eighth of its slots or more (shrinking waits for `keys.length` of them). */
  private sparseRemovals = 0;

  get size(): number {
    return this.count;
  }

  get(key: number): V | undefined {
    const keys = this.keys;
    const mask = keys.length - 1;
    for (let i = this.home(key); ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === key) return this.values[i];
      if (k === EMPTY) return undefined;
    }
  }

  has(key: number): boolean {
    return this.slotOf(key) !== EMPTY;
  }

  set(key: number, value: V): void {
    if (!(key >= 0 && key <= 0x7fffffff && Number.isInteger(key))) throw new RangeError(`IntTable keys are integers in 0..2^31-1, not ${key}`);
    const keys = this.keys;
    const mask = keys.length - 1;
    for (let i = this.home(key); ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === key) {
        this.values[i] = value;
        return;
      }
      if (k === EMPTY) {
        keys[i] = key;
        this.values[i] = value;
        if (++this.count * 2 > keys.length) this.resize(keys.length * 2);
        else if (this.count * 8 >= keys.length) this.sparseRemovals = 0;
        return;
      }
    }
  }

  delete(key: number): boolean {
    let hole = this.slotOf(key);
    if (hole === EMPTY) return false;
    const keys = this.keys;
    const values = this.values;
    const mask = keys.length - 1;
    // Backward shift: an entry after the hole moves into it unless its home lies cyclically in
    // (hole, j], where a lookup from its home would still reach it without crossing the hole.
    for (let j = (hole + 1) & mask; keys[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.home(keys[j]!);
      const reachable = hole < j ? hole < home && home <= j : hole < home || home <= j;
      if (reachable) continue;
      keys[hole] = keys[j]!;
      values[hole] = values[j];
      hole = j;
    }
    keys[hole] = EMPTY;
    values[hole] = undefined;
    this.count--;
    if (keys.length > MIN_CAPACITY && this.count * 8 < keys.length && ++this.sparseRemovals >= keys.length) this.resize(keys.length / 2);
    return true;
  }

  /** Slots allocated (a power of two, at least 8): for tests of the resizing rule. */
  get capacity(): number {
    return this.keys.length;
  }

  /** The values, in no particular order (a copy: the table may change while the caller walks it). */
  valuesSnapshot(): V[] {
    const out: V[] = [];
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] !== EMPTY) out.push(this.values[i]!);
    return out;
  }

  private slotOf(key: number): number {
    const keys = this.keys;
    const mask = keys.length - 1;
    for (let i = this.home(key); ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === key) return i;
      if (k === EMPTY) return EMPTY;
    }
  }

  /** Fibonacci hashing: sequential keys (Message IDs) spread over the table. */
  private home(key: number): number {
    return Math.imul(key, 0x9e3779b1) >>> this.shift;
  }

  private resize(capacity: number): void {
    const oldKeys = this.keys;
    const oldValues = this.values;
    this.keys = new Int32Array(capacity).fill(EMPTY);
    this.values = new Array<V | undefined>(capacity).fill(undefined);
    this.shift = 32 - Math.log2(capacity);
    this.sparseRemovals = 0;
    const mask = capacity - 1;
    for (let j = 0; j < oldKeys.length; j++) {
      const key = oldKeys[j]!;
      if (key === EMPTY) continue;
      let i = this.home(key);
      while (this.keys[i] !== EMPTY) i = (i + 1) & mask;
      this.keys[i] = key;
      this.values[i] = oldValues[j];
    }
  }
}
