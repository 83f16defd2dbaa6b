/**
 * EDHOC-made OSCORE contexts in a context store (issue 26, docs/scale-out.md): the
 * SharedEdhocContexts of server nodes that share one store. Each context an EdhocServer makes is
 * written to the store under its Recipient ID (C_R), with the peer's name, and numbered from the
 * store's block reservations (BlockSequence), so:
 * - when the node dies, the client's next request reaches another node, which finds the context
 *   in the store on the kid miss (StoreContexts) and, having no replay window for it, answers
 *   with the Echo challenge of RFC 8613 Appendix B.1.2: one round trip, not a new EDHOC run;
 * - the two nodes' Sender Sequence Numbers come from disjoint reservations of one counter, so the
 *   (key, nonce) pairs of the context stay unique across the farm.
 *
 * The price is forward secrecy at rest: EdhocServer alone never writes an EDHOC context's keys
 * anywhere; with this, they are in the store (as private as a credentials file must be) until
 * they expire (`expiresInSeconds`, the store's own expiry) — choose it as the longest a client
 * may keep a context before it runs EDHOC again.
 *
 * Writing is in the background: the client's first request is served from memory meanwhile, and
 * a node that dies before the write is done leaves its client to run EDHOC again (the client
 * library does that on the other node's "Security context not found").
 */
import { OSCORE_DEFAULTS } from '../credentials/oscore-params.js';
import type { EdhocSession } from '../edhoc/session.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { BlockSequence } from '../store/block-sequence.js';
import { StoreError, type ContextStore } from '../store/types.js';
import { bytesToHex as hex } from '../util/bytes.js';
import { edhocOscoreParameters } from './oscore-context.js';
import type { SharedEdhocContexts } from './server.js';

export interface StoredEdhocContextsOptions {
  /** Seconds a stored context lives. Default 86,400 (a day). */
  readonly expiresInSeconds?: number;
  /** Sender Sequence Numbers per reservation (RFC 8613 Appendix B.1.1's K), on every node. Default 64. */
  readonly blockSize?: number;
  /** The replay window of the context on the other nodes (§3.2.2). Default 32. */
  readonly replayWindow?: number;
  /** Told each failed write or reservation (the context then stays on this node only). */
  readonly onError?: (error: Error) => void;
  /**
   * The peer name stored with a context, which handlers on the other nodes see. Default the
   * context's own name (the peer's subject); attachEdhocResponder stores `edhoc NAME`, NAME its grant.
   */
  readonly nameOf?: (session: EdhocSession, context: OscoreSecurityContext) => string;
}

export class StoredEdhocContexts implements SharedEdhocContexts {
  readonly #sequences = new WeakMap<EdhocSession, BlockSequence>();
  readonly #writing = new Set<Promise<void>>();
  readonly #expiresInSeconds: number;
  readonly #blockSize: number;
  readonly #replayWindow: number;
  readonly #onError: (error: Error) => void;
  readonly #nameOf: (session: EdhocSession, context: OscoreSecurityContext) => string;

  constructor(
    readonly store: ContextStore,
    options: StoredEdhocContextsOptions = {},
  ) {
    this.#expiresInSeconds = options.expiresInSeconds ?? 86_400;
    this.#blockSize = options.blockSize ?? OSCORE_DEFAULTS.sequenceSaveInterval;
    this.#replayWindow = options.replayWindow ?? OSCORE_DEFAULTS.replayWindow;
    this.#onError = options.onError ?? (() => undefined);
    this.#nameOf = options.nameOf ?? ((_session, context) => context.name);
  }

  sequenceFor(session: EdhocSession): BlockSequence {
    const sequence = new BlockSequence(this.store, undefined, this.#blockSize);
    this.#sequences.set(session, sequence);
    return sequence;
  }

  publish(session: EdhocSession, context: OscoreSecurityContext): void {
    const sequence = this.#sequences.get(session);
    if (sequence !== undefined) {
      // Named by the context's sender identity, as StoreContexts names it on another node: one counter.
      sequence.of(context);
      // The first block now, so that an Echo challenge or a notification finds a number ready.
      const reserving = sequence.ready();
      if (reserving !== undefined) this.#track(reserving);
    }
    const { name: _derivedName, ...parameters } = edhocOscoreParameters(session);
    const record = {
      name: this.#nameOf(session, context),
      context: { ...OSCORE_DEFAULTS, ...parameters, replayWindow: this.#replayWindow, sequenceSaveInterval: this.#blockSize },
    };
    const kid = parameters.recipientIds[0]!;
    this.#track(
      this.store.putContext(record, { expiresInSeconds: this.#expiresInSeconds, onlyIfAbsent: true }).then((written) => {
        // Another node's context has this kid (56 random bits for suites 0–3: very unlikely): ours stays here only.
        if (!written) throw new StoreError(this.store.description, `kid ${hex(kid)} is already stored; the EDHOC context of ${context.name} stays on this node`);
      }),
    );
  }

  /** Resolves when every write and reservation started so far has finished (before closing the store). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#writing]);
  }

  #track(work: Promise<void>): void {
    const tracked = work.catch((error: Error) => this.#onError(error));
    this.#writing.add(tracked);
    void tracked.finally(() => this.#writing.delete(tracked));
  }
}
