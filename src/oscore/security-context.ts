/**
 * A Security Context at run time (RFC 8613 §3): the derived keys, the Sender Sequence Number
 * source, and per Recipient ID the replay window and the Appendix B.1.2 Echo state. One sender may
 * serve several recipients (a server configured with several recipient IDs, as libcoap allows):
 * they share the sender key, so they must share the sequence number too.
 */
import { randomBytes } from 'node:crypto';
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
}

export interface RecipientState {
  /** The authenticated peer's name, for authorization. */
  readonly name: string;
  readonly params: RecipientParams;
  readonly replay: ReplayWindow;
  /** The Echo value we challenged this recipient with after a restart (Appendix B.1.2). */
  echoChallenge: Uint8Array | undefined;
}

export class OscoreSecurityContext {
  readonly name: string;
  readonly sender: SenderParams;
  readonly idContext: Uint8Array | undefined;
  private readonly recipientStates = new Map<string, RecipientState>();

  /**
   * `restarted`: the sequence source resumed from earlier state, so requests this context accepted
   * before may come again; with echoOnRestart the replay windows start uninitialised (B.1.2).
   */
  constructor(
    input: SecurityContextInput,
    private readonly sequence: SequenceSource,
    restarted = false,
  ) {
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
      this.recipientStates.set(hex(recipientId), { name, params: derived.recipient, replay, echoChallenge: undefined });
    }
    this.sender = sender!;
    this.idContext = input.idContext;
  }

  /** The next Sender Sequence Number; never returns one twice (§7.2). */
  nextSequenceNumber(): number {
    return this.sequence.next();
  }

  recipient(kid: Uint8Array, kidContext?: Uint8Array): RecipientState | undefined {
    if (kidContext !== undefined && !(this.idContext && equalBytes(kidContext, this.idContext))) return undefined;
    return this.recipientStates.get(hex(kid));
  }

  /** The only recipient of a client context (its server). */
  get primaryRecipient(): RecipientState {
    return this.recipientStates.values().next().value!;
  }

  /** A fresh, unpredictable Echo value for the B.1.2 challenge (RFC 9175 §2.2: 1–40 bytes). */
  static newEchoValue(): Uint8Array {
    return randomBytes(8);
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Finds the context and recipient for a request's kid (and kid context) among many contexts. */
export class ContextDirectory {
  constructor(private readonly contexts: readonly OscoreSecurityContext[]) {}

  find(kid: Uint8Array, kidContext: Uint8Array | undefined): { context: OscoreSecurityContext; recipient: RecipientState } | undefined {
    for (const context of this.contexts) {
      const recipient = context.recipient(kid, kidContext);
      if (recipient) return { context, recipient };
    }
    return undefined;
  }
}
