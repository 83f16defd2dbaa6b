/**
 * A ContextTable's materialised contexts in least-recently-used order (context-table.ts): a doubly
 * linked list over numbered slots in typed arrays, the caller keeping each item's slot. With more
 * active devices than the table keeps materialised, every request evicts the oldest context and
 * adds one; a V8 `Map` under that churn (a delete and a set per request) rebuilt its backing table
 * every ≈ 1,000 requests, garbage that lived long enough to be copied (issue 21, h21-devices3).
 * Here a steady state allocates nothing.
 */
export class ActiveList<T> {
  #items: (T | undefined)[] = [];
  #keys = new Int32Array(16);
  #prev = new Int32Array(16);
  #next = new Int32Array(16);
  /** Least recently used; -1 when empty. */
  #head = -1;
  /** Most recently used; -1 when empty. */
  #tail = -1;
  #size = 0;
  #used = 0;
  /** Slots freed by remove(), handed out again first. */
  readonly #free: number[] = [];

  get size(): number {
    return this.#size;
  }

  /** The least recently used slot, or -1. */
  get oldest(): number {
    return this.#head;
  }

  item(slot: number): T {
    return this.#items[slot]!;
  }

  /** The key the item was added with. */
  key(slot: number): number {
    return this.#keys[slot]!;
  }

  /** Adds an item as the most recently used; returns its slot. */
  add(key: number, item: T): number {
    let slot = this.#free.pop();
    if (slot === undefined) {
      if (this.#used === this.#keys.length) this.#grow(this.#used * 2);
      slot = this.#used++;
    }
    this.#items[slot] = item;
    this.#keys[slot] = key;
    this.#link(slot);
    this.#size++;
    return slot;
  }

  /** Marks the slot's item the most recently used. */
  touch(slot: number): void {
    if (slot === this.#tail) return;
    this.#unlink(slot);
    this.#link(slot);
  }

  remove(slot: number): void {
    this.#unlink(slot);
    this.#items[slot] = undefined;
    this.#free.push(slot);
    this.#size--;
  }

  /** The items, least recently used first. */
  values(): T[] {
    const out: T[] = [];
    for (let slot = this.#head; slot >= 0; slot = this.#next[slot]!) out.push(this.#items[slot]!);
    return out;
  }

  /** Appends the slot at the most recently used end. */
  #link(slot: number): void {
    this.#prev[slot] = this.#tail;
    this.#next[slot] = -1;
    if (this.#tail >= 0) this.#next[this.#tail] = slot;
    else this.#head = slot;
    this.#tail = slot;
  }

  #unlink(slot: number): void {
    const prev = this.#prev[slot]!;
    const next = this.#next[slot]!;
    if (prev >= 0) this.#next[prev] = next;
    else this.#head = next;
    if (next >= 0) this.#prev[next] = prev;
    else this.#tail = prev;
  }

  #grow(slots: number): void {
    const grow = (from: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
      const to = new Int32Array(slots);
      to.set(from);
      return to;
    };
    this.#keys = grow(this.#keys);
    this.#prev = grow(this.#prev);
    this.#next = grow(this.#next);
  }
}
