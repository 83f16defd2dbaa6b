/**
 * A Security Context at run time (RFC 8613 §3): the derived keys, the Sender Sequence Number
 * source, and per Recipient ID the replay window and the Appendix B.1.2 Echo state. One sender may
 * serve several recipients (a server configured with several recipient IDs, as libcoap allows):
 * they share the sender key, so they must share the sequence number too.
 */
import { deriveContext, equalBytes, type RecipientParams, type SenderParams } from './context.js';
import { OscoreConfigError } from './errors.js';
import { ReplayWindow } from './replay.js';

/** Where Sender Sequence Numbers come from. Persistent in production (Appendix B.1.1). */
export interface SequenceSource {
  next(): number;
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

export interface RecipientState {
  /** The authenticated peer's name, for authorization. */
  readonly name: string;
  readonly params: RecipientParams;
  /** The Recipient ID in hex: the kid as endpoint contexts report it. */
  readonly kidHex: string;
  readonly replay: ReplayWindow;
  /**
   * Echo challenges this recipient's requests below the replay window got (server/oscore.ts):
   * each costs a Sender Sequence Number, so they are counted per second and bounded. The Echo
   * values themselves are stateless (MAC'd, RFC 9175 Appendix A), so nothing else is kept.
   */
  challenges: { second: number; count: number };
}

export class OscoreSecurityContext {
  readonly name: string;
  readonly sender: SenderParams;
  readonly idContext: Uint8Array | undefined;
  /** Appendix B.2 is enabled for this context (and those derived from it). */
  readonly rederivation: boolean;
  /** Whether this context resumed from earlier state (see the constructor). */
  readonly restarted: boolean;
  /**
   * The configured context this one was derived from by Appendix B.2 (undefined for a configured
   * context). All contexts derived from one origin share its input parameters (Master Secret,
   * Master Salt, Sender/Recipient IDs, algorithms) and differ only in the ID Context.
   */
  readonly origin: OscoreSecurityContext | undefined;
  private readonly recipientStates = new Map<string, RecipientState>();
  readonly #input: SecurityContextInput;

  /**
   * `restarted`: the sequence source resumed from earlier state, so requests this context accepted
   * before may come again; with echoOnRestart the replay windows start uninitialised (B.1.2).
   */
  constructor(
    input: SecurityContextInput,
    private readonly sequence: SequenceSource,
    restarted = false,
    origin?: OscoreSecurityContext,
  ) {
    this.#input = { ...input, recipientIds: [...input.recipientIds], ...(input.recipientNames ? { recipientNames: [...input.recipientNames] } : {}) };
    this.rederivation = input.rederivation ?? false;
    this.restarted = restarted;
    this.origin = origin;
    if (input.recipientIds.length === 0) throw new OscoreConfigError('a security context needs at least one recipient ID');
    let sender: SenderParams | undefined;
    this.name = input.name ?? `kid ${hex(input.recipientIds[0]!) || '(empty)'}`;
    for (const [index, recipientId] of input.recipientIds.entries()) {
      const derived = deriveContext({
        masterSecret: input.masterSecret,
        ...(input.masterSalt ? { masterSalt: input.masterSalt } : {}),
        ...(input.idContext ? { idContext: input.idContext } : {}),
        senderId: input.senderId,
        recipientId,
        ...(input.aead !== undefined ? { aead: input.aead } : {}),
        ...(input.hkdf !== undefined ? { hkdf: input.hkdf } : {}),
      });
      sender ??= derived.sender;
      const replay = new ReplayWindow(input.replayWindow ?? 32, { initialised: !(restarted && input.echoOnRestart !== false) });
      const name = input.recipientNames?.[index] ?? input.name ?? `kid ${hex(recipientId) || '(empty)'}`;
      const kidHex = hex(recipientId);
      this.recipientStates.set(kidHex, { name, params: derived.recipient, kidHex, replay, challenges: { second: -1, count: 0 } });
    }
    this.sender = sender!;
    this.idContext = input.idContext;
  }

  /**
   * Debugging only (issue 28, `--oscore-export`): a copy of the input parameters, master secret
   * included, for a Wireshark context file. Nothing else may call this; never log the result.
   */
  exportParameters(): Readonly<SecurityContextInput> {
    const i = this.#input;
    return { ...i, masterSecret: Uint8Array.from(i.masterSecret), recipientIds: i.recipientIds.map((r) => Uint8Array.from(r)) };
  }

  /** The next Sender Sequence Number; never returns one twice (§7.2). */
  nextSequenceNumber(): number {
    return this.sequence.next();
  }

  recipient(kid: Uint8Array, kidContext?: Uint8Array): RecipientState | undefined {
    if (kidContext !== undefined && !(this.idContext && equalBytes(kidContext, this.idContext))) return undefined;
    return this.recipientStates.get(hex(kid));
  }

  /** The Recipient IDs of this context. */
  get recipientIds(): Uint8Array[] {
    return [...this.recipientStates.values()].map((r) => r.params.recipientId);
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
    const input = base.#input;
    let recipientIds = input.recipientIds;
    let recipientNames = input.recipientNames;
    if (recipientId !== undefined) {
      const state = base.recipientStates.get(hex(recipientId));
      if (!state) throw new OscoreConfigError(`no recipient ${hex(recipientId) || '(empty)'} in context ${base.name}`);
      recipientIds = [recipientId];
      recipientNames = [state.name];
    }
    const derived: SecurityContextInput = { ...input, idContext: Uint8Array.from(idContext), recipientIds, ...(recipientNames ? { recipientNames } : {}) };
    // restarted = false: fresh keys, nothing was accepted with them before; no Echo needed.
    return new OscoreSecurityContext(derived, new VolatileSequence(0), false, base);
  }

  /** The only recipient of a client context (its server). */
  get primaryRecipient(): RecipientState {
    return this.recipientStates.values().next().value!;
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/**
 * Finds the context and recipient for a request's kid (and kid context) among many contexts.
 * Configured contexts come first, in order; contexts derived by Appendix B.2 are added after them
 * and replace, for their one client (kid), the context they were derived from.
 */
export class ContextDirectory {
  private readonly contexts: OscoreSecurityContext[];
  /** Per configured context, the kids (hex) it no longer serves because B.2 replaced it for them. */
  private readonly retired = new Map<OscoreSecurityContext, Set<string>>();

  constructor(contexts: readonly OscoreSecurityContext[]) {
    this.contexts = [...contexts];
  }

  find(kid: Uint8Array, kidContext: Uint8Array | undefined): { context: OscoreSecurityContext; recipient: RecipientState } | undefined {
    for (const context of this.contexts) {
      if (this.retired.get(context)?.has(hex(kid))) continue;
      const recipient = context.recipient(kid, kidContext);
      if (recipient) return { context, recipient };
    }
    return undefined;
  }

  /** The configured contexts with this kid that allow Appendix B.2 (retired ones included). */
  rederivationOrigins(kid: Uint8Array): OscoreSecurityContext[] {
    return this.contexts.filter((c) => c.origin === undefined && c.rederivation && c.recipient(kid) !== undefined);
  }

  /** The contexts currently in use (configured and derived). */
  get all(): readonly OscoreSecurityContext[] {
    return this.contexts;
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
    const key = hex(kid);
    for (let i = this.contexts.length - 1; i >= 0; i--) {
      const c = this.contexts[i]!;
      if (c.origin === origin && c.recipient(kid) !== undefined) this.contexts.splice(i, 1);
    }
    let retired = this.retired.get(origin);
    if (!retired) this.retired.set(origin, (retired = new Set()));
    retired.add(key);
    this.contexts.push(replacement);
  }
}
