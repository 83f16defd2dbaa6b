/**
 * A Security Context at run time (RFC 8613 §3): the derived keys, the Sender Sequence Number
 * source, and per Recipient ID the replay window and the Appendix B.1.2 Echo state. One sender may
 * serve several recipients (a server configured with several recipient IDs, as libcoap allows):
 * they share the sender key, so they must share the sequence number too.
 */
import { checkContextParams, deriveContext, equalBytes, type ContextParams, type DerivedContext, type RecipientParams, type SenderParams } from './context.js';
import { OscoreConfigError } from './errors.js';
import { ReplayWindow } from './replay.js';
import { bytesToHex as hex } from '../util/bytes.js';
import type { ContextTable } from './context-table.js';

/** Where Sender Sequence Numbers come from. Persistent in production (Appendix B.1.1). */
export interface SequenceSource {
  next(): number;
  /**
   * Called when the context is about to verify its first request: a source that persists lazily
   * must make its state durable now, so that after a restart the context counts as restarted (its
   * replay windows then start uninitialised, Appendix B.1.2) even if it never sent a number.
   */
  prepare?(): void;
  /**
   * Undefined when a number can be handed out now; else a promise settled when one can (a source
   * reserving numbers from a shared store, src/store/block-sequence.ts), rejected when it cannot.
   */
  ready?(): Promise<void> | undefined;
}

/** Volatile numbering from a start value: for tests, never for a context that outlives the process. */
export class VolatileSequence implements SequenceSource {
  constructor(private value = 0) {}
  next(): number {
    return this.value++;
  }
}

export interface SecurityContextInput {
  masterSecret: Uint8Array;
  masterSalt?: Uint8Array;
  idContext?: Uint8Array;
  senderId: Uint8Array;
  recipientIds: readonly Uint8Array[];
  aead?: number;
  hkdf?: number;
  replayWindow?: number;
  /** Appendix B.1.2: after a restart, demand an Echo round trip before trusting the replay window. */
  echoOnRestart?: boolean;
  /** The peer name handlers authorize on. */
  name?: string;
  /** Per recipient ID (same order), the name of the peer it authenticates; defaults to `name`. */
  recipientNames?: readonly (string | undefined)[];
  /**
   * Appendix B.2 (libcoap's rfc8613_b_2): new contexts may be derived from this one's input
   * parameters with a random ID Context (see rederivation.ts).
   */
  rederivation?: boolean;
}

export interface ChallengeBudget {
  second: number;
  count: number;
  accepted: number;
  acceptedBefore: number;
}

export interface RecipientState {
  /** The authenticated peer's name, for authorization. */
  readonly name: string;
  readonly params: RecipientParams;
  /** The Recipient ID (the kid of requests it verifies), without deriving the keys. */
  readonly recipientId: Uint8Array;
  /** The Recipient ID in hex: the kid as endpoint contexts report it. */
  readonly kidHex: string;
  readonly replay: ReplayWindow;
  /**
   * Echo challenges this recipient's requests below the replay window got in `second`
   * (server/oscore.ts): each costs a Sender Sequence Number, so they are counted per second and
   * bounded by the requests accepted from it in this second and the one before. The Echo values
   * themselves are stateless (MAC'd, RFC 9175 Appendix A), so nothing else is kept.
   */
  readonly challenges: ChallengeBudget;
}

/**
 * The options of a context that are not bytes, shared by every context with the same values (a
 * server with a context per device has a handful of distinct ones).
 */
export interface ContextOptions {
  readonly aead: number | undefined;
  readonly hkdf: number | undefined;
  readonly replayWindow: number | undefined;
  readonly echoOnRestart: boolean | undefined;
}
/** The constructor's input for a context fromTable makes (the constructor stops early). */
const TABLE_MADE: SecurityContextInput = Object.freeze({ masterSecret: new Uint8Array(0), senderId: new Uint8Array(0), recipientIds: [] });

/** `restarted` of a context fromTable makes: its table tells. */
const ASK_BACKING = (): boolean => false;

const sharedOptions = new Map<string, ContextOptions>();
function optionsOf(input: SecurityContextInput): ContextOptions {
  const last = lastOptions;
  if (last && last.aead === input.aead && last.hkdf === input.hkdf && last.replayWindow === input.replayWindow && last.echoOnRestart === input.echoOnRestart) return last;
  return (lastOptions = sharedOptionsOf(input));
}
let lastOptions: ContextOptions | undefined;
function sharedOptionsOf(input: SecurityContextInput): ContextOptions {
  const key = `${input.aead}/${input.hkdf}/${input.replayWindow}/${input.echoOnRestart}`;
  let options = sharedOptions.get(key);
  if (options === undefined) {
    options = Object.freeze({ aead: input.aead, hkdf: input.hkdf, replayWindow: input.replayWindow, echoOnRestart: input.echoOnRestart });
    sharedOptions.set(key, options);
  }
  return options;
}

/** Recipient's private state, for the module's `serving` and `tableLending` (set in its static block). */
let recipientAccess: {
  params(r: Recipient): RecipientParams;
  verified(r: Recipient): VerifiedState;
  derivedParams(r: Recipient): RecipientParams | undefined;
  adoptParams(r: Recipient, params: RecipientParams): void;
  releaseParams(r: Recipient): RecipientParams | undefined;
  releaseVerified(r: Recipient): VerifiedState | undefined;
};

/** OscoreSecurityContext's private state, for the module's `serving` and `tableLending` (set in its static block). */
let senderAccess: {
  sender(c: OscoreSecurityContext): SenderParams;
  derivedSender(c: OscoreSecurityContext): SenderParams | undefined;
  adoptSender(c: OscoreSecurityContext, sender: SenderParams): void;
  releaseSender(c: OscoreSecurityContext): SenderParams | undefined;
};

/**
 * One recipient of a context. A server may hold a context per device (issue 21: 100,000 of them),
 * most idle, so everything but the Recipient ID (kept as the binary string ContextDirectory keys
 * on) is made on first use: the keys (three HKDF runs) when a request names the kid, the replay
 * window and challenge budget once one verifies (a forged request costs no state beyond the keys).
 * It is also the directory's entry for its kid (`context`, `recipient`).
 */
class Recipient implements RecipientState {
  /** The keys the server verifies with (`serving.params`); a table-made context's may be lent on (TableRecipient). */
  #params: RecipientParams | undefined;
  #verified: VerifiedState | undefined;

  constructor(
    readonly context: OscoreSecurityContext,
    /** The Recipient ID as a binary string (bytesKey). */
    readonly kidKey: string,
    private readonly configuredName: string | undefined,
  ) {}

  static {
    recipientAccess = {
      params: (r) => (r.#params ??= r.context.derivedFor(r.recipientId).recipient),
      verified: (r) => (r.#verified ??= r.context.newVerifiedState(r)),
      derivedParams: (r) => r.#params,
      adoptParams: (r, params) => void (r.#params = params),
      releaseParams: (r) => {
        const params = r.#params;
        r.#params = undefined;
        return params;
      },
      releaseVerified: (r) => {
        const verified = r.#verified;
        r.#verified = undefined;
        return verified;
      },
    };
  }

  get recipient(): RecipientState {
    return this;
  }

  get name(): string {
    return this.configuredName ?? `kid ${this.kidHex || '(empty)'}`;
  }

  get recipientId(): Uint8Array {
    return keyBytes(this.kidKey);
  }

  get kidHex(): string {
    return Buffer.from(this.kidKey, 'latin1').toString('hex');
  }

  get params(): RecipientParams {
    return recipientAccess.params(this);
  }

  get replay(): ReplayWindow {
    return recipientAccess.verified(this).replay;
  }

  get challenges(): ChallengeBudget {
    return recipientAccess.verified(this).challenges;
  }
}

/**
 * A recipient of a context a ContextTable made. Its table lends the objects it works with — the
 * key objects (`params`, and the context's `sender`) and the replay window and budget objects — to
 * the next device's context when it puts this one away (issue 21: no allocation per device that
 * comes back). So what it hands out publicly are objects of its own, never lent: a copy of its
 * keys, a window and budget object on its own slot. Kept past eviction, they still read this
 * device's keys and state, never another's (test/context-table-lending.test.ts).
 */
class TableRecipient extends Recipient {
  #ownParams: RecipientParams | undefined;
  #ownState: VerifiedState | undefined;
  /** The layer a request without 'kid context' names (serving.plainLayer): made once per object, not looked up per request. */
  layer: RecipientLabel | undefined;

  override get params(): RecipientParams {
    return (this.#ownParams ??= copyRecipientParams(recipientAccess.params(this)));
  }

  override get replay(): ReplayWindow {
    return (this.#ownState ??= this.context.newVerifiedState(this)).replay;
  }

  override get challenges(): ChallengeBudget {
    return (this.#ownState ??= this.context.newVerifiedState(this)).challenges;
  }
}

/** Whom a verified request without 'kid context' came from (exchange/context.ts's OscoreLayerInfo). */
export interface RecipientLabel {
  readonly peer: string;
  readonly kid: string;
}

/** Labels of recipients not made by a table (long-lived: configured, derived, fetched from a store). */
const plainLabels = new WeakMap<RecipientState, RecipientLabel>();

function copyRecipientParams(p: RecipientParams): RecipientParams {
  const { recipientId, recipientKey, commonIv, aead, idContext } = p;
  return idContext === undefined
    ? { recipientId: recipientId.slice(), recipientKey: recipientKey.slice(), commonIv: commonIv.slice(), aead }
    : { recipientId: recipientId.slice(), recipientKey: recipientKey.slice(), commonIv: commonIv.slice(), aead, idContext: idContext.slice() };
}

function copySenderParams(p: SenderParams): SenderParams {
  const { senderId, senderKey, commonIv, aead, idContext } = p;
  return idContext === undefined
    ? { senderId: senderId.slice(), senderKey: senderKey.slice(), commonIv: commonIv.slice(), aead }
    : { senderId: senderId.slice(), senderKey: senderKey.slice(), commonIv: commonIv.slice(), aead, idContext: idContext.slice() };
}

/** @internal What a recipient keeps once a request was verified. */
export interface VerifiedState {
  readonly replay: ReplayWindow;
  readonly challenges: ChallengeBudget;
}

/**
 * @internal What a context made by a ContextTable asks the table (context-table.ts): its
 * recipients' replay windows and challenge budgets live in the table's slab, read and written in
 * place by every object of the entry, made there on the first verified request.
 */
export interface ContextBacking {
  /** `generation`: the entry's when the context was made; a context of a removed entry gets an error, never another's state. */
  verifiedStateOf(entry: number, generation: number, recipient: number, context: OscoreSecurityContext): VerifiedState;
  /** Whether the entry's numbering resumed from earlier state (B.1.2), asked when first needed. */
  restartedOf(entry: number, generation: number): boolean;
}

export class OscoreSecurityContext {
  /** Appendix B.2 is enabled for this context (and those derived from it). */
  readonly rederivation: boolean;
  #restarted: boolean | (() => boolean);
  /**
   * The configured context this one was derived from by Appendix B.2 (undefined for a configured
   * context). All contexts derived from one origin share its input parameters (Master Secret,
   * Master Salt, Sender/Recipient IDs, algorithms) and differ only in the ID Context.
   */
  readonly origin: OscoreSecurityContext | undefined;
  /**
   * The input byte strings as binary strings (bytesKey): immutable, so no defensive copies, and
   * about a sixth of a Uint8Array's heap. Keys are derived from them on first use.
   */
  #masterSecret!: string;
  #masterSalt: string | undefined;
  #senderId!: string;
  #idContext: Uint8Array | undefined;
  #options!: ContextOptions;
  #name: string | undefined;
  /** The recipients in configuration order; nearly always one. */
  #recipients!: Recipient | readonly Recipient[];
  #recipientNames: readonly (string | undefined)[] | undefined;
  /** Derived on first use (see Recipient). */
  #sender: SenderParams | undefined;

  /**
   * `restarted`: the sequence source resumed from earlier state, so requests this context accepted
   * before may come again; with echoOnRestart the replay windows start uninitialised (B.1.2). A
   * function is asked when first needed (a server with a context per device tells lazily).
   * Every parameter is checked here; the keys are derived when first needed.
   */
  constructor(
    input: SecurityContextInput,
    private readonly sequence: SequenceSource,
    restarted: boolean | (() => boolean) = false,
    origin?: OscoreSecurityContext,
  ) {
    this.rederivation = input.rederivation ?? false;
    this.#restarted = restarted;
    this.origin = origin;
    if (input === TABLE_MADE) return; // fromTable sets the rest
    if (input.recipientIds.length === 0) throw new OscoreConfigError('a security context needs at least one recipient ID');
    if (input.replayWindow !== undefined) new ReplayWindow(input.replayWindow); // refuses a bad size now, not at the first request
    this.#masterSecret = bytesKey(input.masterSecret);
    this.#masterSalt = input.masterSalt && bytesKey(input.masterSalt);
    this.#senderId = bytesKey(input.senderId);
    this.#idContext = input.idContext && Uint8Array.from(input.idContext);
    this.#options = optionsOf(input);
    this.#name = input.name;
    this.#recipientNames = input.recipientNames && [...input.recipientNames];
    const recipients = input.recipientIds.map((recipientId, index) => {
      checkContextParams({ masterSecret: input.masterSecret, senderId: input.senderId, recipientId, aead: input.aead, hkdf: input.hkdf });
      return new Recipient(this, bytesKey(recipientId), input.recipientNames?.[index] ?? input.name);
    });
    this.#recipients = recipients.length === 1 ? recipients[0]! : recipients;
  }

  /**
   * @internal A context of a ContextTable entry (context-table.ts), made from what the table keeps,
   * checked when the entry was added: no input object, no copies and no checks again — a server
   * with more active devices than its LRU makes one per request (issue 21). The byte strings come
   * as binary strings (bytesKey), `kids` one per recipient.
   */
  static fromTable(
    backing: ContextBacking,
    entry: number,
    generation: number,
    sequence: SequenceSource,
    masterSecret: string,
    masterSalt: string | undefined,
    senderId: string,
    idContext: Uint8Array | undefined,
    options: ContextOptions,
    name: string | undefined,
    kids: string | readonly string[],
    recipientNames: readonly (string | undefined)[] | undefined,
  ): OscoreSecurityContext {
    // `restarted` is asked of the table when first needed (see the getter): no closure per context.
    const context = new TableMadeContext(backing, entry, generation, sequence);
    context.#masterSecret = masterSecret;
    context.#masterSalt = masterSalt;
    context.#senderId = senderId;
    context.#idContext = idContext;
    context.#options = options;
    context.#name = name;
    context.#recipientNames = recipientNames;
    if (typeof kids === 'string') {
      context.#recipients = new TableRecipient(context, kids, recipientNames?.[0] ?? name);
    } else {
      context.#recipients = kids.map((kid, index) => new TableRecipient(context, kid, recipientNames?.[index] ?? name));
    }
    return context;
  }

  /** @internal The recipient at `index` (configuration order), without an array. */
  recipientAt(index: number): Recipient | undefined {
    const r = this.#recipients;
    return r instanceof Recipient ? (index === 0 ? r : undefined) : r[index];
  }

  /** Whether this context resumed from earlier state (see the constructor). */
  get restarted(): boolean {
    const r = this.#restarted;
    if (typeof r === 'boolean') return r;
    if (r === ASK_BACKING && this instanceof TableMadeContext) return (this.#restarted = this.backing.restartedOf(this.entry, this.generation));
    return (this.#restarted = r());
  }

  /** What makes this context's Sender Context distinct (§3.3): for its sequence number file. */
  senderIdentity(): { masterSecret: Uint8Array; masterSalt?: Uint8Array; idContext?: Uint8Array; senderId: Uint8Array } {
    return {
      masterSecret: keyBytes(this.#masterSecret),
      ...(this.#masterSalt !== undefined ? { masterSalt: keyBytes(this.#masterSalt) } : {}),
      ...(this.#idContext ? { idContext: this.#idContext } : {}),
      senderId: keyBytes(this.#senderId),
    };
  }

  get idContext(): Uint8Array | undefined {
    return this.#idContext;
  }

  get name(): string {
    return this.#name ?? `kid ${this.primaryRecipient.kidHex || '(empty)'}`;
  }

  /** The Sender Context (and the Common Context parts it uses), derived on first use. */
  get sender(): SenderParams {
    return senderAccess.sender(this);
  }

  static {
    senderAccess = {
      sender: (c) => (c.#sender ??= c.derivedFor(c.primaryRecipient.recipientId).sender),
      derivedSender: (c) => c.#sender,
      adoptSender: (c, sender) => void (c.#sender = sender),
      releaseSender: (c) => {
        const sender = c.#sender;
        c.#sender = undefined;
        return sender;
      },
    };
  }

  /** @internal The §3.2 derivation for one recipient; a Recipient calls it once. */
  derivedFor(recipientId: Uint8Array): DerivedContext {
    const derived = deriveContext(this.paramsFor(recipientId));
    this.#sender ??= derived.sender;
    return derived;
  }

  /** @internal A recipient's replay window and challenge budget, made on its first verified request (by the table, for a table's context). */
  newVerifiedState(recipient: Recipient): VerifiedState {
    if (this instanceof TableMadeContext) {
      const r = this.#recipients;
      return this.backing.verifiedStateOf(this.entry, this.generation, r instanceof Recipient ? 0 : r.indexOf(recipient), this);
    }
    return { replay: new ReplayWindow(this.#options.replayWindow ?? 32, { initialised: this.startWindow() }), challenges: { second: -1, count: 0, accepted: 0, acceptedBefore: 0 } };
  }

  /**
   * @internal For a recipient's first verified request: whether its new window starts initialised
   * (not after a restart with echoOnRestart, B.1.2), and the sequence source made durable first.
   */
  startWindow(): boolean {
    const initialised = !(this.restarted && this.#options.echoOnRestart !== false);
    this.sequence.prepare?.();
    return initialised;
  }

  /** @internal The replay window size (default 32). */
  get replayWindowSize(): number {
    return this.#options.replayWindow ?? 32;
  }

  private paramsFor(recipientId: Uint8Array): ContextParams {
    const options = this.#options;
    return {
      masterSecret: keyBytes(this.#masterSecret),
      ...(this.#masterSalt !== undefined ? { masterSalt: keyBytes(this.#masterSalt) } : {}),
      ...(this.#idContext ? { idContext: this.#idContext } : {}),
      senderId: keyBytes(this.#senderId),
      recipientId,
      ...(options.aead !== undefined ? { aead: options.aead } : {}),
      ...(options.hkdf !== undefined ? { hkdf: options.hkdf } : {}),
    };
  }

  /** The input parameters, rebuilt (fresh copies). */
  private input(): SecurityContextInput {
    const o = this.#options;
    return {
      masterSecret: keyBytes(this.#masterSecret),
      ...(this.#masterSalt !== undefined ? { masterSalt: keyBytes(this.#masterSalt) } : {}),
      ...(this.#idContext ? { idContext: Uint8Array.from(this.#idContext) } : {}),
      senderId: keyBytes(this.#senderId),
      recipientIds: this.recipientIds,
      ...(o.aead !== undefined ? { aead: o.aead } : {}),
      ...(o.hkdf !== undefined ? { hkdf: o.hkdf } : {}),
      ...(o.replayWindow !== undefined ? { replayWindow: o.replayWindow } : {}),
      ...(o.echoOnRestart !== undefined ? { echoOnRestart: o.echoOnRestart } : {}),
      ...(this.#name !== undefined ? { name: this.#name } : {}),
      ...(this.#recipientNames ? { recipientNames: [...this.#recipientNames] } : {}),
      ...(this.rederivation ? { rederivation: true } : {}),
    };
  }

  /**
   * Debugging only (issue 28, `--oscore-export`): a copy of the input parameters, master secret
   * included, for a Wireshark context file. Nothing else may call this; never log the result.
   */
  exportParameters(): Readonly<SecurityContextInput> {
    return this.input();
  }

  /** Undefined when nextSequenceNumber() can answer now; else what it waits for (SequenceSource.ready). */
  sequenceReady(): Promise<void> | undefined {
    return this.sequence.ready?.();
  }

  /** The next Sender Sequence Number; never returns one twice (§7.2). */
  nextSequenceNumber(): number {
    return this.sequence.next();
  }

  recipient(kid: Uint8Array, kidContext?: Uint8Array): RecipientState | undefined {
    if (kidContext !== undefined && !(this.#idContext && equalBytes(kidContext, this.#idContext))) return undefined;
    const key = bytesKey(kid);
    for (const r of this.recipients) if (r.kidKey === key) return r;
    return undefined;
  }

  /** The Recipient IDs of this context (fresh copies). */
  get recipientIds(): Uint8Array[] {
    return this.recipients.map((r) => keyBytes(r.kidKey));
  }

  /** @internal Every recipient; each is also ContextDirectory's entry for its kid. */
  get recipients(): readonly Recipient[] {
    const r = this.#recipients;
    return r instanceof Recipient ? [r] : r;
  }

  /**
   * Appendix B.2: a new security context from the same input parameters with another ID Context
   * (ID1 = R1, ID2 = R2 || ID1 or ID3 = R2 || R3), optionally for one recipient only (a server
   * re-deriving for one client). It is a *new* context: its keys differ from every earlier one
   * (the ID Context enters every HKDF info, §3.2.1, and contains fresh randomness), so its Sender
   * Sequence Number starts at 0 and its replay windows start empty and initialised — no (key,
   * nonce) pair of any other context can repeat. Its state is kept in memory only (volatile
   * sequence numbers): B.2 exists for when state is lost, and after a restart the peers simply run
   * B.2 again from the configured context.
   */
  derive(idContext: Uint8Array, recipientId?: Uint8Array): OscoreSecurityContext {
    const base = this.origin ?? this;
    const input = base.input();
    let recipientIds = input.recipientIds;
    let recipientNames = input.recipientNames;
    if (recipientId !== undefined) {
      const state = base.recipient(recipientId);
      if (!state) throw new OscoreConfigError(`no recipient ${hex(recipientId) || '(empty)'} in context ${base.name}`);
      recipientIds = [recipientId];
      recipientNames = [state.name];
    }
    const derived: SecurityContextInput = { ...input, idContext, recipientIds, ...(recipientNames ? { recipientNames } : {}) };
    // restarted = false: fresh keys, nothing was accepted with them before; no Echo needed.
    return new OscoreSecurityContext(derived, new VolatileSequence(0), false, base);
  }

  /** The only recipient of a client context (its server). */
  get primaryRecipient(): RecipientState {
    const r = this.#recipients;
    return r instanceof Recipient ? r : r[0]!;
  }
}


/**
 * A context OscoreSecurityContext.fromTable made: its table, entry and the entry's generation then
 * (a subclass, so that contexts made from an input keep their size: issue 21's memory per idle
 * context). Its public `sender` is a copy of its own, as TableRecipient's `params`.
 */
class TableMadeContext extends OscoreSecurityContext {
  #ownSender: SenderParams | undefined;

  constructor(
    readonly backing: ContextBacking,
    readonly entry: number,
    readonly generation: number,
    sequence: SequenceSource,
  ) {
    super(TABLE_MADE, sequence, ASK_BACKING);
  }

  override get sender(): SenderParams {
    return (this.#ownSender ??= copySenderParams(senderAccess.sender(this)));
  }
}

/**
 * @internal What the server's OSCORE stage works with (server/oscore.ts): for a table-made
 * context, the objects its table lends on to the next device's context at eviction — fine within
 * one synchronous step of the server, which asks again after any wait; an evicted context asked
 * again derives its own keys and gets window objects on its own slot. Not exported by the package
 * (src/oscore/index.ts): the public `sender`, `params`, `replay` and `challenges` are never lent.
 * For every other context, the same objects as the public getters.
 */
export const serving = {
  params(recipient: RecipientState): RecipientParams {
    return recipient instanceof Recipient ? recipientAccess.params(recipient) : recipient.params;
  },
  /** The replay window and challenge budget (a RecipientState of another kind is its own). */
  state(recipient: RecipientState): VerifiedState {
    return recipient instanceof Recipient ? recipientAccess.verified(recipient) : recipient;
  },
  sender(context: OscoreSecurityContext): SenderParams {
    return senderAccess.sender(context);
  },
  /** `{ peer, kid }` of the recipient, the same object every time for one recipient object. */
  plainLayer(recipient: RecipientState): RecipientLabel {
    if (recipient instanceof TableRecipient) return (recipient.layer ??= { peer: recipient.name, kid: recipient.kidHex });
    let label = plainLabels.get(recipient);
    if (label === undefined) plainLabels.set(recipient, (label = { peer: recipient.name, kid: recipient.kidHex }));
    return label;
  },
};

/**
 * @internal What a ContextTable does with the objects of a context it made (context-table.ts): keep
 * the keys it derived, take its key, window and budget objects back when it puts it away, and give
 * them to the next context it makes. Not exported by the package.
 */
export const tableLending = {
  derivedSender: (context: OscoreSecurityContext): SenderParams | undefined => senderAccess.derivedSender(context),
  adoptSender: (context: OscoreSecurityContext, sender: SenderParams): void => senderAccess.adoptSender(context, sender),
  releaseSender: (context: OscoreSecurityContext): SenderParams | undefined => senderAccess.releaseSender(context),
  derivedParams: (recipient: Recipient): RecipientParams | undefined => recipientAccess.derivedParams(recipient),
  adoptParams: (recipient: Recipient, params: RecipientParams): void => recipientAccess.adoptParams(recipient, params),
  releaseParams: (recipient: Recipient): RecipientParams | undefined => recipientAccess.releaseParams(recipient),
  releaseVerified: (recipient: Recipient): VerifiedState | undefined => recipientAccess.releaseVerified(recipient),
};

/** What ContextDirectory.find returns: the recipient itself, which knows its context (no allocation per find). */
export interface DirectoryEntry {
  readonly context: OscoreSecurityContext;
  readonly recipient: RecipientState;
}

type Bucket = DirectoryEntry | DirectoryEntry[];

/**
 * Finds the context and recipient for a request's kid (and kid context) among many contexts.
 * Configured contexts come first, in order; contexts derived by Appendix B.2 are added after them
 * and replace, for their one client (kid), the context they were derived from.
 *
 * A server may hold a context per device, so finding one costs the same with one context as with
 * 100,000 (issue 21): two hash maps, keyed by the kid, and by the kid with the ID Context, as
 * binary strings (no hex per lookup). A bucket is the entries for one key in directory order,
 * nearly always one; a kid several contexts share (without a kid context to tell them apart) is
 * served by the first, as a scan in order would.
 */
export class ContextDirectory {
  /** Contexts in use, in directory order: configured (all kept, even retired for some kid), then derived. */
  private readonly configured: readonly OscoreSecurityContext[];
  private readonly derived = new Set<OscoreSecurityContext>();
  /** Contexts added after construction (fetched from a context store on first use, src/store/). */
  private readonly inserted: OscoreSecurityContext[] = [];
  private readonly byKid = new Map<string, Bucket>();
  private readonly byKidAndIdContext = new Map<string, Bucket>();
  /** Configured contexts allowing B.2, by kid; a context retired for a kid stays here. */
  private readonly origins = new Map<string, OscoreSecurityContext[]>();

  /**
   * `table`: idle contexts kept as bytes (context-table.ts), consulted after the contexts here: a
   * server with a context per device passes them there, not as objects.
   */
  constructor(
    contexts: readonly OscoreSecurityContext[],
    private readonly table?: ContextTable,
  ) {
    this.configured = [...contexts];
    for (const context of contexts) {
      this.add(context);
      if (context.origin !== undefined || !context.rederivation) continue;
      for (const r of context.recipients) {
        const key = r.kidKey;
        const list = this.origins.get(key);
        if (list) list.push(context);
        else this.origins.set(key, [context]);
      }
    }
  }

  find(kid: Uint8Array, kidContext: Uint8Array | undefined): DirectoryEntry | undefined {
    const bucket = kidContext === undefined ? this.byKid.get(bytesKey(kid)) : this.byKidAndIdContext.get(kidAndIdContextKey(kid, kidContext));
    if (bucket === undefined) return this.table?.find(kid, kidContext);
    return Array.isArray(bucket) ? bucket[0] : bucket;
  }

  /** Whether a request with this kid and no kid context would find a context here (the table's idle ones included); nothing is materialised. */
  hasKid(kid: Uint8Array): boolean {
    return this.byKid.has(bytesKey(kid)) || (this.table?.has(kid) ?? false);
  }

  /** How many contexts serve requests: those here and those in the table, idle or not. */
  get size(): number {
    return this.configured.length + this.inserted.length + this.derived.size + (this.table?.size ?? 0);
  }

  /** The configured contexts with this kid that allow Appendix B.2 (retired ones included). */
  rederivationOrigins(kid: Uint8Array): OscoreSecurityContext[] {
    return [...(this.origins.get(bytesKey(kid)) ?? [])];
  }

  /** The contexts currently in use (configured, inserted and derived) and those of the table materialised now. */
  get all(): readonly OscoreSecurityContext[] {
    return [...this.configured, ...this.inserted, ...this.derived, ...(this.table?.active ?? [])];
  }

  /** Serves `context` from now on, after the configured ones (a context fetched from a store). */
  insert(context: OscoreSecurityContext): void {
    this.inserted.push(context);
    this.add(context);
  }

  /**
   * Appendix B.2 step 4: "This security context replaces the previous security context with the
   * client, and the first and the second security contexts are deleted." Atomically: the configured
   * origin stops serving this kid, any earlier derived context for the kid is dropped, and
   * `replacement` (derived for this one kid) is added. Other kids of the origin are unaffected.
   */
  replace(kid: Uint8Array, replacement: OscoreSecurityContext): void {
    const origin = replacement.origin;
    if (origin === undefined) throw new OscoreConfigError('only a derived context replaces another');
    // Everything serving this kid that came from `origin`: the origin itself (retired for this kid
    // only) and earlier derived contexts (dropped: each was derived for this one kid).
    for (const { context } of bucketEntries(this.byKid.get(bytesKey(kid)))) {
      if (context === origin) {
        this.unindex(context, kid);
      } else if (context.origin === origin) {
        for (const r of context.recipients) this.unindex(context, r.recipientId);
        this.derived.delete(context);
      }
    }
    this.add(replacement);
    this.derived.add(replacement);
  }

  private add(context: OscoreSecurityContext): void {
    for (const entry of context.recipients) {
      push(this.byKid, entry.kidKey, entry);
      if (context.idContext !== undefined) push(this.byKidAndIdContext, kidAndIdContextKey(entry.recipientId, context.idContext), entry);
    }
  }

  /** Stops `context` serving `kid`. */
  private unindex(context: OscoreSecurityContext, kid: Uint8Array): void {
    remove(this.byKid, bytesKey(kid), context);
    if (context.idContext !== undefined) remove(this.byKidAndIdContext, kidAndIdContextKey(kid, context.idContext), context);
  }
}

function bucketEntries(bucket: Bucket | undefined): DirectoryEntry[] {
  return bucket === undefined ? [] : Array.isArray(bucket) ? [...bucket] : [bucket];
}

function push(map: Map<string, Bucket>, key: string, entry: DirectoryEntry): void {
  const bucket = map.get(key);
  if (bucket === undefined) map.set(key, entry);
  else if (Array.isArray(bucket)) bucket.push(entry);
  else map.set(key, [bucket, entry]);
}

function remove(map: Map<string, Bucket>, key: string, context: OscoreSecurityContext): void {
  const rest = bucketEntries(map.get(key)).filter((e) => e.context !== context);
  if (rest.length === 0) map.delete(key);
  else map.set(key, rest.length === 1 ? rest[0]! : rest);
}

/** The bytes as a string of char codes 0-255: a Map key with no encoding pass (no hex). */
export function bytesKey(bytes: Uint8Array): string {
  if (bytes.length > 16) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  let key = '';
  for (let i = 0; i < bytes.length; i++) key += String.fromCharCode(bytes[i]!);
  return key;
}

function keyBytes(key: string): Uint8Array {
  const bytes = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) bytes[i] = key.charCodeAt(i);
  return bytes;
}

/** Unambiguous: the kid's length first (a kid is at most nonce length − 6 bytes, §3.3). */
function kidAndIdContextKey(kid: Uint8Array, idContext: Uint8Array): string {
  return String.fromCharCode(kid.length) + bytesKey(kid) + bytesKey(idContext);
}
