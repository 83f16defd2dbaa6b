/**
 * A server's idle OSCORE contexts as bytes (issue 21, "Many peers"): one context per device,
 * 100,000 devices, most of them silent at any moment. As objects, every context is several heap
 * objects (the context, its recipient, its byte strings, its sequence source) that V8 marks on
 * every major GC — and creating them all at start-up taught V8's allocation-site pretenuring that
 * the server's objects live long, so from then on a request's objects were allocated in the old
 * generation and kept its young objects alive through every scavenge (BENCHMARKS.md, h21-contexts).
 *
 * Here an idle context is a few dozen bytes in one growable buffer and a few slots of typed
 * arrays: no JS object per context. A request's kid is found through an open-addressing hash
 * table (typed arrays too) that compares the kid's bytes in place. The first request that names a
 * context makes a full OscoreSecurityContext of it ("materialises" it), which stays in a bounded
 * LRU of active contexts; the least recently used one is put away when the LRU is full.
 *
 * What must survive being put away, exactly (RFC 8613):
 * - the Sender Sequence Number (§7.2.1, Appendix B.1.1): never put away at all — each entry gets
 *   one SequenceSource for the table's whole life, shared by every object made of the entry, so a
 *   number can never be handed out twice, even by an evicted object an in-flight response still
 *   holds;
 * - the replay window and the Echo challenge budget of each recipient (§7.4, Appendix B.1.2): never
 *   put away either — they live in a per-window-size slab from the recipient's first verified
 *   request on, and every object of the entry reads and writes them there in place (ReplayWindow
 *   on a slot, SlotChallenges), so a request accepted before eviction is still a replay after it, a
 *   window initialised by an Echo round trip stays initialised, and an evicted object a request in
 *   flight still holds sees the same window as its successor;
 * - whether the context resumed from earlier state (B.1.2's "restarted"): decided once per entry.
 *
 * Keys (Sender Key, Common IV, each Recipient Key) are kept in the table once derived (45 bytes
 * for the default AEAD) and handed to every later object of the entry, so a device that comes back
 * after being put away costs no HKDF run (three per context). They were in memory anyway, as part
 * of the context; like the master secret they are never logged.
 */
import { DEFAULT_AEAD } from './algorithms.js';
import { checkContextParams } from './context.js';
import { OscoreConfigError } from './errors.js';
import { ActiveList } from './active-list.js';
import { ReplayWindow, type WindowSlots } from './replay.js';
import type { RecipientParams, SenderParams } from './context.js';
import { OscoreSecurityContext, VolatileSequence, tableLending, type ChallengeBudget, type ContextBacking, type DirectoryEntry, type SecurityContextInput, type SequenceSource, type VerifiedState } from './security-context.js';

/** What the table asks about each entry's Sender Sequence Numbers. */
export interface TableSequences {
  /** The entry's number source, asked once for the table's life (see the module comment). */
  source(entry: number, identity: () => SenderIdentity): SequenceSource;
  /** Whether the entry's numbering resumes from earlier state (Appendix B.1.2); asked at most once. */
  resumes(entry: number, identity: () => SenderIdentity): boolean;
}

export interface SenderIdentity {
  masterSecret: Uint8Array;
  masterSalt?: Uint8Array;
  idContext?: Uint8Array;
  senderId: Uint8Array;
}

/** Volatile numbering from 0, never resumed: for contexts that do not outlive the process (tests, benchmarks). */
export const volatileSequences: TableSequences = {
  source: () => new VolatileSequence(0),
  resumes: () => false,
};

export interface ContextTableOptions {
  /** How many contexts are kept materialised at once (the LRU). Default 1024. */
  active?: number;
  sequences?: TableSequences;
  /** How many entries (and recipients) are about to be added: the arrays and hash are sized once, not grown. */
  expected?: number;
}

const DEFAULT_ACTIVE = 1024;

// Per entry, Int32 fields (offsets into the byte slab; -1: absent).
const E_SECRET = 0;
const E_SECRET_LEN = 1;
const E_SALT = 2;
const E_SALT_LEN = 3;
const E_ID_CONTEXT = 4;
const E_ID_CONTEXT_LEN = 5;
const E_SENDER = 6;
const E_SENDER_LEN = 7;
const E_FIRST_RECIPIENT = 8;
const E_RECIPIENTS = 9;
const E_OPTIONS = 10;
const E_NAME = 11;
const E_NAME_LEN = 12;
/** -1 not asked yet, 0 fresh, 1 resumed (B.1.2). */
const E_RESTARTED = 13;
/** 1 when the input named recipients one by one (recipientNames). */
const E_PER_RECIPIENT_NAMES = 14;
/** The derived Sender Key and Common IV, once an object of the entry derived them: offset (-1: not yet) and lengths. */
const E_KEYS = 15;
const E_KEY_LEN = 16;
const E_IV_LEN = 17;
/** Its slot in the LRU of materialised contexts (ActiveList), or -1. */
const E_ACTIVE = 18;
const ENTRY_FIELDS = 19;

// Per recipient, Int32 fields.
const R_ENTRY = 0;
const R_KID = 1;
const R_KID_LEN = 2;
const R_NAME = 3;
const R_NAME_LEN = 4;
/** Its slot in the window slab of its window size, from its first verified request on; else -1. */
const R_DORMANT = 5;
/** The derived Recipient Key's offset (length E_KEY_LEN), once derived; else -1. */
const R_KEY = 6;
const RECIPIENT_FIELDS = 7;

interface Options {
  readonly aead: number | undefined;
  readonly hkdf: number | undefined;
  readonly replayWindow: number | undefined;
  readonly echoOnRestart: boolean | undefined;
}

/**
 * The replay windows and challenge budgets of every verified recipient with one window size: per
 * slot, 8 doubles (window: initialised, highest, lower limit; budget: second, count, accepted,
 * accepted before; one unused) and the window's bit ring. Windows and budgets work on their slot in
 * place (see the module comment).
 */
class DormantSlab implements WindowSlots {
  header = new Float64Array(0);
  words = new Uint32Array(0);
  /** Per slot, bumped when remove() frees it: windows and budgets made on it before then throw. */
  generations = new Uint32Array(0);
  used = 0;
  /** Slots of removed entries (ContextTable.remove), handed out again first. */
  readonly free: number[] = [];
  /** Window and budget objects of contexts put away, moved to another slot for the next context (bounded). */
  readonly spares: { replay: ReplayWindow; challenges: SlotChallenges }[] = [];
  readonly wordsPerSlot: number;

  constructor(readonly windowSize: number) {
    this.wordsPerSlot = ReplayWindow.ringWords(windowSize);
  }

  /** A slot set up for a window that has seen nothing and a budget that counted nothing. */
  allocate(initialised: boolean): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      if (this.used * SLOT_HEADER === this.header.length) this.#grow(Math.max(16, this.used * 2));
      slot = this.used++;
    }
    ReplayWindow.clearSlot(this.windowSize, this, slot, SLOT_HEADER, initialised);
    const h = slot * SLOT_HEADER;
    this.header[h + B_SECOND] = -1;
    this.header[h + B_COUNT] = 0;
    this.header[h + B_ACCEPTED] = 0;
    this.header[h + B_ACCEPTED_BEFORE] = 0;
    return slot;
  }

  /** Frees a removed entry's slot: what was made on it stops working (generations). */
  release(slot: number): void {
    this.generations[slot]!++;
    this.free.push(slot);
  }

  #grow(slots: number): void {
    const header = new Float64Array(slots * SLOT_HEADER);
    header.set(this.header);
    const words = new Uint32Array(slots * this.wordsPerSlot);
    words.set(this.words);
    const generations = new Uint32Array(slots);
    generations.set(this.generations);
    this.header = header;
    this.words = words;
    this.generations = generations;
  }
}

const SLOT_HEADER = 8;
/** Window objects kept per window size for the next contexts (one per recipient put away is taken by the next verified one). */
const MAX_SPARE_WINDOWS = 4;
const B_SECOND = 3;
const B_COUNT = 4;
const B_ACCEPTED = 5;
const B_ACCEPTED_BEFORE = 6;

/** A recipient's Echo challenge budget (server/oscore.ts), read and written in its slot in place. */
class SlotChallenges implements ChallengeBudget {
  readonly #slab: DormantSlab;
  #at = 0;
  #slot = 0;
  #generation = 0;

  constructor(slab: DormantSlab, slot: number) {
    this.#slab = slab;
    this.moveTo(slot);
  }

  /** As ReplayWindow.moveTo. */
  moveTo(slot: number): void {
    this.#slot = slot;
    this.#at = slot * SLOT_HEADER;
    this.#generation = this.#slab.generations[slot]!;
  }

  #header(): Float64Array {
    if (this.#slab.generations[this.#slot] !== this.#generation) throw new Error('this challenge budget belongs to a context that was removed');
    return this.#slab.header;
  }

  get second(): number {
    return this.#header()[this.#at + B_SECOND]!;
  }
  set second(value: number) {
    this.#header()[this.#at + B_SECOND] = value;
  }
  get count(): number {
    return this.#header()[this.#at + B_COUNT]!;
  }
  set count(value: number) {
    this.#header()[this.#at + B_COUNT] = value;
  }
  get accepted(): number {
    return this.#header()[this.#at + B_ACCEPTED]!;
  }
  set accepted(value: number) {
    this.#header()[this.#at + B_ACCEPTED] = value;
  }
  get acceptedBefore(): number {
    return this.#header()[this.#at + B_ACCEPTED_BEFORE]!;
  }
  set acceptedBefore(value: number) {
    this.#header()[this.#at + B_ACCEPTED_BEFORE] = value;
  }
}

export class ContextTable implements ContextBacking {
  #bytes = new Uint8Array(4096);
  /** The same bytes as a Buffer (toString('latin1') makes a binary string in one native call). */
  #buffer = Buffer.from(this.#bytes.buffer);
  #byteCount = 0;
  #entries = new Int32Array(ENTRY_FIELDS * 64);
  #entryCount = 0;
  #recipients = new Int32Array(RECIPIENT_FIELDS * 64);
  #recipientCount = 0;
  /** Open addressing, linear probing: recipient index + 1, 0 empty. By kid, and by kid and ID Context. */
  #byKid = new Int32Array(128);
  #byKidAndIdContext = new Int32Array(128);
  #keyed = 0;
  readonly #options: Options[] = [];
  readonly #optionIndex = new Map<string, number>();
  #lastOptions = -1;
  readonly #dormant = new Map<number, DormantSlab>();
  /** Materialised contexts, least recently used first; an entry's slot is its E_ACTIVE field. */
  readonly #active = new ActiveList<OscoreSecurityContext>();
  #lastEntry = -1;
  /** Each entry's one number source, made when the entry is first materialised. */
  readonly #sources = new Map<number, SequenceSource>();
  readonly #capacity: number;
  readonly #sequences: TableSequences;
  /** Replay window sizes already checked (a ReplayWindow made per entry only to check its size cost 1 µs each at load). */
  readonly #checkedWindows = new Set<number>();
  /** Where #storeAt puts an offset and length nobody keeps in place. */
  readonly #scratch = new Int32Array(2);
  /** Removed entries by recipient count, which add() reuses with their recipient rows (remove). */
  readonly #freeEntries = new Map<number, number[]>();
  #freeCount = 0;
  /** Bytes of removed entries still in the slab: compacted away once they are half of it. */
  #deadBytes = 0;
  /**
   * The key objects of the context put away last (one recipient, no ID Context): the next context
   * made takes them over, their bytes overwritten, instead of five new arrays and two objects
   * (issue 21: with more active devices than the LRU, one context is made per request and lives
   * ≈ 1,000 requests, so whatever it allocates is copied by the scavenger and dies old). The
   * evicted context gave them up (tableLending.releaseSender, releaseParams): asked again, it derives
   * its own. They were never handed out publicly (security-context.ts, TableRecipient).
   */
  #spare: { sender: SenderParams; recipient: RecipientParams } | undefined;
  /** Entries removed at least once, by how many times (a context made of an earlier use of the entry must not touch the new one's state); others are at 0. */
  readonly #generations = new Map<number, number>();

  constructor(options: ContextTableOptions = {}) {
    const active = options.active ?? DEFAULT_ACTIVE;
    if (!Number.isInteger(active) || active < 1) throw new RangeError(`a context table keeps at least one context active, not ${active}`);
    this.#capacity = active;
    this.#sequences = options.sequences ?? volatileSequences;
    const expected = options.expected ?? 0;
    if (expected > 64) {
      // Loading a credentials file of N devices: no growth copies and no rehash on the way.
      this.#entries = new Int32Array(ENTRY_FIELDS * expected);
      this.#recipients = new Int32Array(RECIPIENT_FIELDS * expected);
      this.#byKid = new Int32Array(slotsFor(expected));
      this.#byKidAndIdContext = new Int32Array(slotsFor(expected));
      this.#bytes = new Uint8Array(expected * 64);
      this.#buffer = Buffer.from(this.#bytes.buffer);
    }
  }

  /** The number of contexts held. */
  get size(): number {
    return this.#entryCount - this.#freeCount;
  }

  /** The contexts materialised now, least recently used first. */
  get active(): readonly OscoreSecurityContext[] {
    return this.#active.values();
  }

  /**
   * Adds a context, checked as OscoreSecurityContext checks it; returns its entry number. Contexts
   * that run Appendix B.2 are refused: their derived contexts replace them per client, which needs
   * them as objects (ContextDirectory).
   */
  add(input: SecurityContextInput): number {
    const recipientIds = input.recipientIds;
    if (recipientIds.length === 0) throw new OscoreConfigError('a security context needs at least one recipient ID');
    if (input.rederivation) throw new OscoreConfigError('a context table holds no context that runs Appendix B.2; pass it as an OscoreSecurityContext');
    const windowSize = input.replayWindow;
    if (windowSize !== undefined && !this.#checkedWindows.has(windowSize)) {
      new ReplayWindow(windowSize); // refuses a bad size now
      this.#checkedWindows.add(windowSize);
    }
    for (const recipientId of recipientIds) checkContextParams({ masterSecret: input.masterSecret, senderId: input.senderId, recipientId, aead: input.aead, hkdf: input.hkdf });
    const reused = this.#freeEntries.get(recipientIds.length)?.pop();
    const entry = reused ?? this.#entryCount;
    if (reused === undefined && (entry + 1) * ENTRY_FIELDS > this.#entries.length) this.#entries = grown(this.#entries, this.#entries.length * 2);
    const e = entry * ENTRY_FIELDS;
    const firstRecipient = reused === undefined ? this.#recipientCount : this.#entries[e + E_FIRST_RECIPIENT]!;
    this.#storeAt(this.#entries, e + E_SECRET, input.masterSecret);
    this.#storeAt(this.#entries, e + E_SALT, input.masterSalt);
    this.#storeAt(this.#entries, e + E_ID_CONTEXT, input.idContext);
    this.#storeAt(this.#entries, e + E_SENDER, input.senderId);
    this.#storeTextAt(this.#entries, e + E_NAME, input.name);
    const fields = this.#entries;
    fields[e + E_OPTIONS] = this.#optionsOf(input);
    fields[e + E_RESTARTED] = -1;
    fields[e + E_PER_RECIPIENT_NAMES] = input.recipientNames ? 1 : 0;
    fields[e + E_FIRST_RECIPIENT] = firstRecipient;
    fields[e + E_RECIPIENTS] = recipientIds.length;
    fields[e + E_KEYS] = -1;
    fields[e + E_ACTIVE] = -1;
    if (reused === undefined) {
      this.#entryCount++;
      this.#recipientCount += recipientIds.length;
      if (this.#recipientCount * RECIPIENT_FIELDS > this.#recipients.length) this.#recipients = grown(this.#recipients, Math.max(this.#recipients.length * 2, this.#recipientCount * RECIPIENT_FIELDS));
    } else {
      this.#freeCount--;
    }
    // Rows not filled yet are skipped by a rehash on the way (a removed entry's rows already are).
    for (let i = 0; i < recipientIds.length; i++) this.#recipients[(firstRecipient + i) * RECIPIENT_FIELDS + R_ENTRY] = -1;
    const names = input.recipientNames;
    for (let i = 0; i < recipientIds.length; i++) this.#addRecipient(entry, firstRecipient + i, recipientIds[i]!, names?.[i], input.idContext !== undefined);
    return entry;
  }

  /**
   * The recipient a request's kid (and kid context) names, materialising its context if it is
   * idle. Among entries sharing a kid, the first added serves, as in ContextDirectory.
   */
  find(kid: Uint8Array, kidContext: Uint8Array | undefined): DirectoryEntry | undefined {
    const r = kidContext === undefined ? this.#lookup(this.#byKid, kid, undefined) : this.#lookup(this.#byKidAndIdContext, kid, kidContext);
    if (r < 0) return undefined;
    const base = r * RECIPIENT_FIELDS;
    const entry = this.#recipients[base + R_ENTRY]!;
    const context = this.#activate(entry);
    return context.recipientAt(r - this.#entries[entry * ENTRY_FIELDS + E_FIRST_RECIPIENT]!);
  }

  /** Whether a recipient has this kid (with or without an ID Context), without materialising anything. */
  has(kid: Uint8Array): boolean {
    return this.#lookup(this.#byKid, kid, undefined) >= 0;
  }

  /** The entry a request with this kid and no kid context would find, or -1; nothing is materialised. */
  entryOf(kid: Uint8Array): number {
    const r = this.#lookup(this.#byKid, kid, undefined);
    return r < 0 ? -1 : this.#recipients[r * RECIPIENT_FIELDS + R_ENTRY]!;
  }

  /** The entry's first Recipient ID (a fresh copy). */
  kidOf(entry: number): Uint8Array {
    this.#checkLive(entry);
    const base = this.#entries[entry * ENTRY_FIELDS + E_FIRST_RECIPIENT]! * RECIPIENT_FIELDS;
    return this.#read(this.#recipients[base + R_KID]!, this.#recipients[base + R_KID_LEN]!)!;
  }

  /**
   * Forgets an entry (a bounded table of contexts made at run time, EDHOC's, drops its oldest):
   * its kids find nothing from now on, its materialised object leaves the LRU, and its rows, slab
   * bytes and saved replay windows are reused by later entries. An object of it still held (a
   * response on its way) keeps working: it holds its own sequence source, which nothing else is
   * given again, so none of its numbers is handed out twice.
   */
  remove(entry: number): void {
    this.#checkLive(entry);
    const e = entry * ENTRY_FIELDS;
    const first = this.#entries[e + E_FIRST_RECIPIENT]!;
    const count = this.#entries[e + E_RECIPIENTS]!;
    const withIdContext = this.#entries[e + E_ID_CONTEXT]! >= 0;
    this.#eachRange(entry, (_fields, _at, length) => (this.#deadBytes += length));
    const windowSize = this.#options[this.#entries[e + E_OPTIONS]!]!.replayWindow ?? 32;
    for (let r = first; r < first + count; r++) {
      const base = r * RECIPIENT_FIELDS;
      this.#unindex(this.#byKid, this.#hashOf(r, false), r);
      if (withIdContext) this.#unindex(this.#byKidAndIdContext, this.#hashOf(r, true), r);
      const slot = this.#recipients[base + R_DORMANT]!;
      if (slot >= 0) this.#slab(windowSize).release(slot);
      this.#recipients[base + R_ENTRY] = -1;
      this.#keyed--;
    }
    const slot = this.#entries[e + E_ACTIVE]!;
    if (slot >= 0) this.#active.remove(slot);
    this.#entries[e + E_ACTIVE] = -1;
    this.#sources.delete(entry);
    this.#generations.set(entry, (this.#generations.get(entry) ?? 0) + 1);
    if (this.#lastEntry === entry) this.#lastEntry = -1;
    let free = this.#freeEntries.get(count);
    if (free === undefined) this.#freeEntries.set(count, (free = []));
    free.push(entry);
    this.#freeCount++;
    if (this.#deadBytes > 4096 && this.#deadBytes * 2 > this.#byteCount) this.#compact();
  }

  #checkLive(entry: number): void {
    const live = Number.isInteger(entry) && entry >= 0 && entry < this.#entryCount && this.#recipients[this.#entries[entry * ENTRY_FIELDS + E_FIRST_RECIPIENT]! * RECIPIENT_FIELDS + R_ENTRY] === entry;
    if (!live) throw new RangeError(`no context table entry ${entry}`);
  }

  /** Every byte range a live entry holds in the slab: offset field, and length. */
  #eachRange(entry: number, visit: (fields: Int32Array, at: number, length: number) => void): void {
    const e = entry * ENTRY_FIELDS;
    const f = this.#entries;
    for (const field of [E_SECRET, E_SALT, E_ID_CONTEXT, E_SENDER, E_NAME]) if (f[e + field]! >= 0) visit(f, e + field, f[e + field + 1]!);
    // The Sender Key and Common IV were stored one after the other (#keepKeys).
    if (f[e + E_KEYS]! >= 0) visit(f, e + E_KEYS, f[e + E_KEY_LEN]! + f[e + E_IV_LEN]!);
    const first = f[e + E_FIRST_RECIPIENT]!;
    const recipients = this.#recipients;
    for (let r = first; r < first + f[e + E_RECIPIENTS]!; r++) {
      const base = r * RECIPIENT_FIELDS;
      for (const field of [R_KID, R_NAME]) if (recipients[base + field]! >= 0) visit(recipients, base + field, recipients[base + field + 1]!);
      if (recipients[base + R_KEY]! >= 0) visit(recipients, base + R_KEY, f[e + E_KEY_LEN]!);
    }
  }

  /** The live entries' bytes into a new slab, offsets rewritten: removed entries' bytes are gone. */
  #compact(): void {
    const old = this.#bytes;
    const bytes = new Uint8Array(Math.max(4096, (this.#byteCount - this.#deadBytes) * 2));
    let at = 0;
    const move = (fields: Int32Array, field: number, length: number): void => {
      bytes.set(old.subarray(fields[field]!, fields[field]! + length), at);
      fields[field] = at;
      at += length;
    };
    for (let entry = 0; entry < this.#entryCount; entry++) {
      const first = this.#entries[entry * ENTRY_FIELDS + E_FIRST_RECIPIENT]!;
      if (this.#recipients[first * RECIPIENT_FIELDS + R_ENTRY] === entry) this.#eachRange(entry, move);
    }
    this.#bytes = bytes;
    this.#buffer = Buffer.from(bytes.buffer);
    this.#byteCount = at;
    this.#deadBytes = 0;
  }

  /** Takes recipient r out of a hash table, moving later entries of its probe run back (no tombstones). */
  #unindex(slots: Int32Array, hash: number, r: number): void {
    const mask = slots.length - 1;
    let hole = hash & mask;
    while (slots[hole] !== r + 1) hole = (hole + 1) & mask;
    slots[hole] = 0;
    for (let i = (hole + 1) & mask; slots[i] !== 0; i = (i + 1) & mask) {
      const moved = slots[i]! - 1;
      const home = this.#hashOf(moved, slots === this.#byKidAndIdContext) & mask;
      // It may fill the hole unless its home lies cyclically in (hole, i]: a probe from there would not pass the hole.
      const movable = hole <= i ? home <= hole || home > i : home <= hole && home > i;
      if (!movable) continue;
      slots[hole] = slots[i]!;
      slots[i] = 0;
      hole = i;
    }
  }

  /** The entry's context, materialised and marked most recently used. */
  #activate(entry: number): OscoreSecurityContext {
    const active = this.#active;
    const at = entry * ENTRY_FIELDS + E_ACTIVE;
    const slot = this.#entries[at]!;
    if (slot >= 0) {
      if (this.#lastEntry !== entry) {
        active.touch(slot);
        this.#lastEntry = entry;
      }
      return active.item(slot);
    }
    if (active.size >= this.#capacity) {
      // Put away first: the new context may take over the evicted one's key objects (#spare).
      const oldest = active.oldest;
      const evictedEntry = active.key(oldest);
      const evicted = active.item(oldest);
      active.remove(oldest);
      this.#entries[evictedEntry * ENTRY_FIELDS + E_ACTIVE] = -1;
      this.#putAway(evictedEntry, evicted);
    }
    const context = this.#materialise(entry);
    this.#entries[at] = active.add(entry, context);
    this.#lastEntry = entry;
    return context;
  }

  /**
   * A context of the entry from its bytes (issue 21: with more active devices than the LRU, one per
   * request): what was checked at add() is not checked again, the byte strings come straight from
   * the slab as binary strings, the keys kept once derived are adopted, and the replay windows stay
   * in their slab (verifiedStateOf).
   */
  #materialise(entry: number): OscoreSecurityContext {
    const e = entry * ENTRY_FIELDS;
    const fields = this.#entries;
    const options = this.#options[fields[e + E_OPTIONS]!]!;
    const first = fields[e + E_FIRST_RECIPIENT]!;
    const count = fields[e + E_RECIPIENTS]!;
    const recipients = this.#recipients;
    let kids: string | string[];
    let recipientNames: (string | undefined)[] | undefined;
    if (count === 1) {
      kids = this.#binary(recipients[first * RECIPIENT_FIELDS + R_KID]!, recipients[first * RECIPIENT_FIELDS + R_KID_LEN]!)!;
    } else {
      kids = [];
      for (let r = first; r < first + count; r++) kids.push(this.#binary(recipients[r * RECIPIENT_FIELDS + R_KID]!, recipients[r * RECIPIENT_FIELDS + R_KID_LEN]!)!);
    }
    if (fields[e + E_PER_RECIPIENT_NAMES] === 1) {
      recipientNames = [];
      for (let r = first; r < first + count; r++) recipientNames.push(this.#text(recipients[r * RECIPIENT_FIELDS + R_NAME]!, recipients[r * RECIPIENT_FIELDS + R_NAME_LEN]!));
    }
    let source = this.#sources.get(entry);
    if (source === undefined) this.#sources.set(entry, (source = this.#sequences.source(entry, () => this.#identity(entry))));
    const idContext = this.#read(fields[e + E_ID_CONTEXT]!, fields[e + E_ID_CONTEXT_LEN]!);
    const context = OscoreSecurityContext.fromTable(
      this,
      entry,
      this.#generations.get(entry) ?? 0,
      source,
      this.#binary(fields[e + E_SECRET]!, fields[e + E_SECRET_LEN]!)!,
      this.#binary(fields[e + E_SALT]!, fields[e + E_SALT_LEN]!),
      this.#binary(fields[e + E_SENDER]!, fields[e + E_SENDER_LEN]!)!,
      idContext,
      options,
      this.#text(fields[e + E_NAME]!, fields[e + E_NAME_LEN]!),
      kids,
      recipientNames,
    );
    if (fields[e + E_KEYS]! >= 0) this.#adoptKeys(entry, context, idContext, options);
    return context;
  }

  /** @internal ContextBacking: recipient `index` of the entry's window and budget, in the slab; a first verified request sets them up there. */
  verifiedStateOf(entry: number, generation: number, index: number, context: OscoreSecurityContext): VerifiedState {
    this.#checkGeneration(entry, generation);
    const e = entry * ENTRY_FIELDS;
    const at = (this.#entries[e + E_FIRST_RECIPIENT]! + index) * RECIPIENT_FIELDS + R_DORMANT;
    const slab = this.#slab(context.replayWindowSize);
    let slot = this.#recipients[at]!;
    if (slot < 0) this.#recipients[at] = slot = slab.allocate(context.startWindow());
    const spare = slab.spares.pop();
    if (spare !== undefined) {
      // Given up by a context put away (#putAway): from here on this slot's, whatever it served before.
      spare.replay.moveTo(slot);
      spare.challenges.moveTo(slot);
      return spare;
    }
    return { replay: new ReplayWindow(slab.windowSize, undefined, { slots: slab, slot, headerStride: SLOT_HEADER }), challenges: new SlotChallenges(slab, slot) };
  }

  /** A context made of an entry before remove() must not read or set up the state of the entry's next use. */
  #checkGeneration(entry: number, generation: number): void {
    if ((this.#generations.get(entry) ?? 0) !== generation) throw new Error('this context was removed from its table: it verifies no request');
  }

  /** Hands the keys derived by an earlier object of the entry to the new one (see the module comment). */
  #adoptKeys(entry: number, context: OscoreSecurityContext, idContext: Uint8Array | undefined, options: Options): void {
    const e = entry * ENTRY_FIELDS;
    const fields = this.#entries;
    const keys = fields[e + E_KEYS]!;
    const keyLength = fields[e + E_KEY_LEN]!;
    if (idContext === undefined && fields[e + E_RECIPIENTS] === 1 && this.#recipients[fields[e + E_FIRST_RECIPIENT]! * RECIPIENT_FIELDS + R_KEY]! >= 0) {
      const r = fields[e + E_FIRST_RECIPIENT]! * RECIPIENT_FIELDS;
      const spare = this.#takeSpare(keyLength, fields[e + E_IV_LEN]!, fields[e + E_SENDER_LEN]!, this.#recipients[r + R_KID_LEN]!);
      if (spare !== undefined) {
        // Every byte and field of both objects is this entry's from here on (test/oscore-context-table.test.ts).
        const { sender, recipient } = spare;
        this.#copyInto(sender.senderKey, keys);
        this.#copyInto(sender.commonIv, keys + keyLength);
        this.#copyInto(sender.senderId, fields[e + E_SENDER]!);
        this.#copyInto(recipient.recipientId, this.#recipients[r + R_KID]!);
        this.#copyInto(recipient.recipientKey, this.#recipients[r + R_KEY]!);
        sender.aead = recipient.aead = options.aead ?? DEFAULT_AEAD;
        tableLending.adoptSender(context, sender);
        tableLending.adoptParams(context.recipientAt(0)!, recipient);
        return;
      }
    }
    const senderKey = this.#read(keys, keyLength)!;
    const commonIv = this.#read(keys + keyLength, fields[e + E_IV_LEN]!)!;
    const aead = options.aead ?? DEFAULT_AEAD;
    // The shapes assembleContext gives (context-rules.ts), without the DerivedContext around them.
    const senderId = this.#read(fields[e + E_SENDER]!, fields[e + E_SENDER_LEN]!)!;
    tableLending.adoptSender(context, idContext === undefined ? { senderId, senderKey, commonIv, aead } : { senderId, senderKey, commonIv, aead, idContext });
    const first = fields[e + E_FIRST_RECIPIENT]!;
    const count = fields[e + E_RECIPIENTS]!;
    for (let i = 0; i < count; i++) {
      const base = (first + i) * RECIPIENT_FIELDS;
      const at = this.#recipients[base + R_KEY]!;
      if (at < 0) continue;
      const recipientId = this.#read(this.#recipients[base + R_KID]!, this.#recipients[base + R_KID_LEN]!)!;
      const recipientKey = this.#read(at, keyLength)!;
      tableLending.adoptParams(context.recipientAt(i)!, idContext === undefined ? { recipientId, recipientKey, commonIv, aead } : { recipientId, recipientKey, commonIv, aead, idContext });
    }
  }

  /** Keeps the keys the evicted object derived, each once for the table's life (see the module comment). */
  #keepKeys(entry: number, context: OscoreSecurityContext): void {
    const e = entry * ENTRY_FIELDS;
    const sender = tableLending.derivedSender(context);
    if (sender === undefined) return;
    const fields = this.#entries;
    if (fields[e + E_KEYS]! < 0) {
      this.#storeAt(fields, e + E_KEYS, sender.senderKey);
      fields[e + E_IV_LEN] = sender.commonIv.length;
      this.#storeAt(this.#scratch, 0, sender.commonIv);
    }
    const first = fields[e + E_FIRST_RECIPIENT]!;
    const count = fields[e + E_RECIPIENTS]!;
    for (let i = 0; i < count; i++) {
      const at = (first + i) * RECIPIENT_FIELDS + R_KEY;
      if (this.#recipients[at]! >= 0) continue;
      const params = tableLending.derivedParams(context.recipientAt(i)!);
      if (params === undefined) continue;
      this.#storeAt(this.#scratch, 0, params.recipientKey);
      this.#recipients[at] = this.#scratch[0]!;
    }
  }

  /** An evicted context: only its keys, if it derived them, are kept; its windows are in the slab already. */
  #putAway(entry: number, context: OscoreSecurityContext): void {
    this.#keepKeys(entry, context);
    const e = entry * ENTRY_FIELDS;
    for (let i = 0; i < this.#entries[e + E_RECIPIENTS]!; i++) {
      const verified = tableLending.releaseVerified(context.recipientAt(i)!);
      if (verified === undefined) continue;
      const slab = this.#slab((verified.replay as ReplayWindow).size);
      if (slab.spares.length < MAX_SPARE_WINDOWS) slab.spares.push(verified as { replay: ReplayWindow; challenges: SlotChallenges });
    }
    if (this.#entries[e + E_RECIPIENTS] !== 1 || this.#entries[e + E_ID_CONTEXT]! >= 0) return;
    const recipient = context.recipientAt(0)!;
    if (tableLending.derivedSender(context) === undefined || tableLending.derivedParams(recipient) === undefined) return;
    this.#spare = { sender: tableLending.releaseSender(context)!, recipient: tableLending.releaseParams(recipient)! };
  }

  /** The spare key objects (#spare), if their arrays have these lengths: their bytes are the caller's to overwrite. */
  #takeSpare(keyLength: number, ivLength: number, senderIdLength: number, kidLength: number): { sender: SenderParams; recipient: RecipientParams } | undefined {
    const spare = this.#spare;
    if (spare === undefined) return undefined;
    this.#spare = undefined;
    const { sender, recipient } = spare;
    const fits =
      sender.senderKey.length === keyLength &&
      recipient.recipientKey.length === keyLength &&
      sender.commonIv.length === ivLength &&
      recipient.commonIv === sender.commonIv &&
      sender.senderId.length === senderIdLength &&
      recipient.recipientId.length === kidLength;
    return fits ? spare : undefined;
  }

  #slab(windowSize: number): DormantSlab {
    let slab = this.#dormant.get(windowSize);
    if (slab === undefined) this.#dormant.set(windowSize, (slab = new DormantSlab(windowSize)));
    return slab;
  }

  /** @internal ContextBacking: whether the entry resumed (B.1.2), asked of the sequences once. */
  restartedOf(entry: number, generation: number = this.#generations.get(entry) ?? 0): boolean {
    this.#checkGeneration(entry, generation);
    const at = entry * ENTRY_FIELDS + E_RESTARTED;
    if (this.#entries[at] === -1) this.#entries[at] = this.#sequences.resumes(entry, () => this.#identity(entry)) ? 1 : 0;
    return this.#entries[at] === 1;
  }

  #identity(entry: number): SenderIdentity {
    const e = entry * ENTRY_FIELDS;
    const f = this.#entries;
    const masterSalt = this.#read(f[e + E_SALT]!, f[e + E_SALT_LEN]!);
    const idContext = this.#read(f[e + E_ID_CONTEXT]!, f[e + E_ID_CONTEXT_LEN]!);
    return {
      masterSecret: this.#read(f[e + E_SECRET]!, f[e + E_SECRET_LEN]!)!,
      ...(masterSalt ? { masterSalt } : {}),
      ...(idContext ? { idContext } : {}),
      senderId: this.#read(f[e + E_SENDER]!, f[e + E_SENDER_LEN]!)!,
    };
  }

  #optionsOf(input: SecurityContextInput): number {
    const last = this.#options[this.#lastOptions];
    // Nearly every entry of a credentials file has the options of the one before it: no key string then.
    if (last !== undefined && last.aead === input.aead && last.hkdf === input.hkdf && last.replayWindow === input.replayWindow && last.echoOnRestart === input.echoOnRestart) return this.#lastOptions;
    const key = `${input.aead}/${input.hkdf}/${input.replayWindow}/${input.echoOnRestart}`;
    let index = this.#optionIndex.get(key);
    if (index === undefined) {
      index = this.#options.push({ aead: input.aead, hkdf: input.hkdf, replayWindow: input.replayWindow, echoOnRestart: input.echoOnRestart }) - 1;
      this.#optionIndex.set(key, index);
    }
    return (this.#lastOptions = index);
  }

  /** Appends bytes to the slab; their offset and length go to fields[at] and fields[at + 1] (-1 and 0 for absent). */
  #storeAt(fields: Int32Array, at: number, bytes: Uint8Array | undefined): void {
    if (bytes === undefined) {
      fields[at] = -1;
      fields[at + 1] = 0;
      return;
    }
    this.#reserve(bytes.length);
    this.#bytes.set(bytes, this.#byteCount);
    fields[at] = this.#byteCount;
    fields[at + 1] = bytes.length;
    this.#byteCount += bytes.length;
  }

  /** As #storeAt, the text as UTF-8 (written in place: no Uint8Array per name). */
  #storeTextAt(fields: Int32Array, at: number, text: string | undefined): void {
    if (text === undefined) {
      fields[at] = -1;
      fields[at + 1] = 0;
      return;
    }
    this.#reserve(text.length * 3);
    const { written } = encoder.encodeInto(text, this.#bytes.subarray(this.#byteCount));
    fields[at] = this.#byteCount;
    fields[at + 1] = written;
    this.#byteCount += written;
  }

  #reserve(length: number): void {
    if (this.#byteCount + length <= this.#bytes.length) return;
    const larger = new Uint8Array(Math.max(this.#bytes.length * 2, this.#byteCount + length));
    larger.set(this.#bytes.subarray(0, this.#byteCount));
    this.#bytes = larger;
    this.#buffer = Buffer.from(larger.buffer);
  }

  /** Overwrites `target` with as many stored bytes from `at`. */
  #copyInto(target: Uint8Array, at: number): void {
    const bytes = this.#bytes;
    for (let i = 0; i < target.length; i++) target[i] = bytes[at + i]!;
  }

  /** A fresh copy of stored bytes; undefined for absent. */
  #read(at: number, length: number): Uint8Array | undefined {
    return at < 0 ? undefined : this.#bytes.slice(at, at + length);
  }

  /** Stored bytes as a binary string (bytesKey's form); undefined for absent. */
  #binary(at: number, length: number): string | undefined {
    return at < 0 ? undefined : length === 0 ? '' : this.#buffer.toString('latin1', at, at + length);
  }

  #text(at: number, length: number): string | undefined {
    if (at < 0) return undefined;
    const bytes = this.#bytes;
    for (let i = at; i < at + length; i++) if (bytes[i]! >= 0x80) return decoder.decode(bytes.subarray(at, at + length));
    // ASCII (device names nearly always are): its binary string is the text.
    return length === 0 ? '' : this.#buffer.toString('latin1', at, at + length);
  }

  /** Fills recipient row r (a new row or a removed entry's) and indexes it. */
  #addRecipient(entry: number, r: number, kid: Uint8Array, name: string | undefined, withIdContext: boolean): void {
    const base = r * RECIPIENT_FIELDS;
    this.#storeAt(this.#recipients, base + R_KID, kid);
    this.#storeTextAt(this.#recipients, base + R_NAME, name);
    const fields = this.#recipients;
    fields[base + R_ENTRY] = entry;
    fields[base + R_DORMANT] = -1;
    fields[base + R_KEY] = -1;
    // Kept at most half full, so a probe ends soon at an empty slot.
    if ((this.#keyed + 1) * 2 > this.#byKid.length) this.#rehash(slotsFor(this.#keyed + 1), r);
    this.#keyed++;
    this.#insert(this.#byKid, this.#hashOf(r, false), r);
    if (withIdContext) this.#insert(this.#byKidAndIdContext, this.#hashOf(r, true), r);
  }

  /** The table at `slots` slots, recipients inserted again in order (so the first added still comes first on a probe); `adding` is the row being filled. */
  #rehash(slots: number, adding: number): void {
    this.#byKid = new Int32Array(slots);
    this.#byKidAndIdContext = new Int32Array(slots);
    for (let r = 0; r < this.#recipientCount; r++) {
      const entry = this.#recipients[r * RECIPIENT_FIELDS + R_ENTRY]!;
      if (r === adding || entry < 0) continue; // the row being added, or a removed entry's
      this.#insert(this.#byKid, this.#hashOf(r, false), r);
      if (this.#entries[entry * ENTRY_FIELDS + E_ID_CONTEXT]! >= 0) this.#insert(this.#byKidAndIdContext, this.#hashOf(r, true), r);
    }
  }

  #insert(slots: Int32Array, hash: number, r: number): void {
    const mask = slots.length - 1;
    let i = hash & mask;
    while (slots[i] !== 0) i = (i + 1) & mask;
    slots[i] = r + 1;
  }

  #hashOf(r: number, withIdContext: boolean): number {
    const base = r * RECIPIENT_FIELDS;
    const at = this.#recipients[base + R_KID]!;
    let hash = fnv(this.#bytes, at, at + this.#recipients[base + R_KID_LEN]!, FNV_OFFSET);
    if (withIdContext) {
      const e = this.#recipients[base + R_ENTRY]! * ENTRY_FIELDS;
      const idAt = this.#entries[e + E_ID_CONTEXT]!;
      hash = fnv(this.#bytes, idAt, idAt + this.#entries[e + E_ID_CONTEXT_LEN]!, Math.imul(hash ^ 0xff, FNV_PRIME));
    }
    return hash;
  }

  /** The first recipient whose kid (and ID Context) are these bytes; -1 when none. */
  #lookup(slots: Int32Array, kid: Uint8Array, idContext: Uint8Array | undefined): number {
    let hash = fnv(kid, 0, kid.length, FNV_OFFSET);
    if (idContext !== undefined) hash = fnv(idContext, 0, idContext.length, Math.imul(hash ^ 0xff, FNV_PRIME));
    const mask = slots.length - 1;
    const recipients = this.#recipients;
    for (let i = hash & mask; slots[i] !== 0; i = (i + 1) & mask) {
      const r = slots[i]! - 1;
      const base = r * RECIPIENT_FIELDS;
      if (!this.#equal(recipients[base + R_KID]!, recipients[base + R_KID_LEN]!, kid)) continue;
      if (idContext === undefined) return r;
      const e = recipients[base + R_ENTRY]! * ENTRY_FIELDS;
      if (this.#equal(this.#entries[e + E_ID_CONTEXT]!, this.#entries[e + E_ID_CONTEXT_LEN]!, idContext)) return r;
    }
    return -1;
  }

  #equal(at: number, length: number, bytes: Uint8Array): boolean {
    if (at < 0 || length !== bytes.length) return false;
    const stored = this.#bytes;
    for (let i = 0; i < length; i++) if (stored[at + i] !== bytes[i]) return false;
    return true;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnv(bytes: Uint8Array, from: number, to: number, seed: number): number {
  let hash = seed;
  for (let i = from; i < to; i++) hash = Math.imul(hash ^ bytes[i]!, FNV_PRIME);
  return hash >>> 0;
}

/** Hash slots for n keys: a power of two, at most half full. */
function slotsFor(n: number): number {
  let slots = 128;
  while (slots < n * 2) slots *= 2;
  return slots;
}

function grown(array: Int32Array<ArrayBuffer>, length: number): Int32Array<ArrayBuffer> {
  const larger = new Int32Array(length);
  larger.set(array);
  return larger;
}
