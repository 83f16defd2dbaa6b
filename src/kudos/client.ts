/**
 * KUDOS on the client's OSCORE path (draft-ietf-core-oscore-key-update §4.3): a KudosSession takes
 * over one context's requests through its OscoreRequester (every request to the peer, each block,
 * each hop of a route built on the context goes through that requester), and a PeerGate holds
 * them while an update runs (§4.3.7).
 *
 * - Forward flow (A.1), started here by `rekey()` or by the policy: the gate closes, the
 *   exchanges in flight end, a divergent request goes to the peer's KUDOS resource, and its
 *   convergent response completes the update; the held requests then go out under CTX_NEW.
 * - Reverse flow (A.2), started by the server: a response arrives divergent; the gate closes and
 *   the convergent request follows at once (the session's `send-convergent`), its response
 *   completing the update on our side.
 * An update that fails (no answer, refused) is abandoned: the session keeps CTX_OLD and the held
 * requests go out under it.
 */
import type { CoapMessage } from '../coap/message.js';
import { protectWith } from '../client/oscore.js';
import type { MessageSecurity } from '../client/security.js';
import type { ClassOf } from '../oscore/protect.js';
import { OscoreExchange, type OscoreRequester, type RequesterKeyUpdate } from '../oscore/requester.js';
import { PeerGate, type PeerGateOptions } from './gate.js';
import { KudosPolicy, type KudosPolicySettings } from './policy.js';
import type { KudosSession } from './session.js';
import type { KudosEvent, OutgoingRequest } from './session-types.js';

/** A request protected by the session, as the client layers see an OSCORE exchange. */
class KudosExchange extends OscoreExchange {
  constructor(
    requester: OscoreRequester,
    message: CoapMessage,
    private readonly outgoing: OutgoingRequest,
    private readonly peer: KudosClientPeer,
  ) {
    super(requester, requester.context, message, outgoing.binding);
  }

  override verify(response: CoapMessage, notification: boolean): CoapMessage | Error {
    const result = this.peer.session.unprotectResponse(response, this.outgoing);
    this.peer.handle(result.events);
    if (!result.ok) return new Error(`OSCORE verification failed: ${result.reason}`);
    if (notification && this.outgoing.binding.observe) {
      const refusal = this.orderNotification(result.sequenceNumber);
      if (refusal !== undefined) return refusal;
    }
    return result.message;
  }
}

/** Sends one request to the peer's KUDOS resource (§4.7.3) with `security`, resolving when its response was verified. */
export type SendKudosRequest = (security: MessageSecurity) => Promise<unknown>;

export interface KudosClientOptions extends Partial<Omit<PeerGateOptions, 'peer'>> {
  /** How KUDOS messages of our own reach the peer (its /.well-known/kudos, typically). */
  send: SendKudosRequest;
  /** When to start an update on our own (policy.ts). */
  policy?: KudosPolicySettings;
  /** State transitions and completed updates, for `-v` (no keys in them). */
  onEvent?: (event: KudosEvent) => void;
  /** Fails an update whose exchanges in flight do not end within this time. Default: holdTimeoutMs. */
  drainTimeoutMs?: number;
}

export class KudosClientPeer implements RequesterKeyUpdate {
  readonly gate: PeerGate;
  readonly #requester: OscoreRequester;
  readonly #options: KudosClientOptions;
  readonly #policy: KudosPolicy;
  #running: Promise<void> | undefined;
  /** The next request protected is our divergent KUDOS request (set by #kudosSecurity). */
  #startKudos = false;

  constructor(
    readonly session: KudosSession,
    requester: OscoreRequester,
    options: KudosClientOptions,
  ) {
    this.#requester = requester;
    this.#options = options;
    this.gate = new PeerGate({ peer: requester.context.name, ...options });
    this.#policy = new KudosPolicy(options.policy ?? {}, requester.context.sender.aead);
    requester.keyUpdate = this;
  }

  /** Detaches the session: the requester protects with its own context again. */
  detach(): void {
    if (this.#requester.keyUpdate === this) this.#requester.keyUpdate = undefined;
  }

  admit(): Promise<() => void> {
    // The integrity limit of our Recipient Key (responses refused under it) is a hard limit, too (§4.3).
    if (!this.gate.closed && (this.session.integrityLimitReached || this.#policy.due(this.session.sentWithCurrent))) {
      // A failed update (a peer without KUDOS, a lost answer) is tried again after another period.
      void this.rekey().catch(() => this.#policy.postpone(this.session.sentWithCurrent));
    }
    return this.gate.admit();
  }

  protect(requester: OscoreRequester, request: CoapMessage, classOf?: ClassOf): OscoreExchange {
    const startKudos = this.#startKudos;
    this.#startKudos = false;
    const { message, outgoing, events } = this.session.protectRequest(request, { startKudos, ...(classOf ? { classOf } : {}) });
    this.handle(events);
    return new KudosExchange(requester, message, outgoing, this);
  }

  /**
   * Runs the forward flow (A.1) now; resolves when the update completed, rejects when it failed
   * (the old context stays). A second call while one runs joins it.
   */
  rekey(): Promise<void> {
    this.#running ??= this.#forwardFlow().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #forwardFlow(): Promise<void> {
    this.gate.close();
    try {
      // §4.3.7: "no outstanding interactions with the other peer" before a KUDOS message.
      await this.gate.drained(this.#options.drainTimeoutMs);
      await this.#options.send(this.#kudosSecurity(true));
      if (this.session.state !== 'IDLE') throw new Error(`KUDOS update not completed (state ${this.session.state})`);
    } catch (error) {
      this.handle(this.session.abandon());
      throw error;
    } finally {
      this.#release();
    }
  }

  /** The session's events: state changes closing the gate, a convergent message owed (A.2), completion. */
  handle(events: readonly KudosEvent[]): void {
    for (const event of events) {
      this.#options.onEvent?.(event);
      if (event.type === 'state' && event.to !== 'IDLE') this.gate.close();
      if (event.type === 'completed') this.#policy.reset();
      if (event.type === 'send-convergent' && this.#running === undefined) {
        // The reverse flow: the server's divergent response obliges our next message to be convergent.
        this.#running = this.#convergent().finally(() => {
          this.#running = undefined;
        });
        this.#running.catch(() => undefined);
      }
    }
    if (this.#running === undefined && this.session.state === 'IDLE' && this.gate.closed) this.gate.open();
  }

  async #convergent(): Promise<void> {
    try {
      await this.#options.send(this.#kudosSecurity(false));
    } finally {
      this.#release();
    }
  }

  /**
   * The update is over on our side: IDLE, or PENDING after a convergent request that got no answer
   * — every message we send in PENDING is convergent (CTX_NEW), so traffic may go and its answer
   * completes the update. BUSY is abandoned before this.
   */
  #release(): void {
    if (this.session.state !== 'BUSY') this.gate.open();
  }

  /**
   * Protection for our own KUDOS messages: the requester's path, without the gate (they are the
   * update). Only the first protection starts the update: the same request repeated for a B.1.2
   * Echo challenge goes out divergent again while we are BUSY (the session makes it so), but not
   * once the challenge itself — a convergent response — completed the update.
   */
  #kudosSecurity(startKudos: boolean): MessageSecurity {
    let start = startKudos;
    return {
      protect: (request) => {
        this.#startKudos = start;
        start = false;
        return protectWith(this.#requester, request);
      },
    };
  }
}
