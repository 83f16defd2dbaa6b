/**
 * The KUDOS exchange with one peer (draft-ietf-core-oscore-key-update §4.3, Appendix B), sans-IO:
 * the caller hands it every CoAP message to protect or unprotect for this peer and acts on the
 * returned events. States IDLE (00), BUSY (10: we offered a nonce) and PENDING (11); the BUSY (01)
 * of §4.3.2 lasts no longer than the call that received the divergent message, because entering
 * it obliges the next message to be convergent, so the session derives CTX_NEW and moves to
 * PENDING at once (the caller gets `send-convergent`). Pre-IDLE is the clean-up inside the
 * transition to IDLE.
 *
 * Both flows work: a divergent message may be a request (the forward flow, Appendix A.1) or a
 * response (the reverse flow, A.2), from either peer.
 *
 * Nonces: every message this session protects carries its own Partial IV, responses included
 * (RFC 8613 §8.3 step 3's second alternative, which §3 of the draft makes mandatory whenever the
 * response's context differs from the request's). So every AEAD nonce is (Sender ID, own Sender
 * Sequence Number) under one sender key, and no nonce depends on what the peer sent.
 */
import { randomBytes } from 'node:crypto';
import type { CoapMessage } from '../coap/message.js';
import { type DerivedContext, nonce as aeadNonce } from '../oscore/context.js';
import { type OscoreOptionValue, encodePartialIv } from '../oscore/option.js';
import { type ClassOf, DECRYPTION_FAILED, protectRequest, protectResponse, unprotectRequest, unprotectResponse } from '../oscore/protect.js';
import { ReplayWindow } from '../oscore/replay.js';
import { FailedDecryptions } from './integrity.js';
import { equal, fingerprint, normalised, pairKey, readOption, temporaryContext, withKudosFields } from './messages.js';
import { aeadIntegrityLimit } from './policy.js';
import type { KudosRecord, KudosStorage, PeerCapability, PersistedContext, SecretPair } from './persistence.js';
import type { ChallengeHandle, IncomingRequest, KudosEvent, KudosSessionOptions, KudosState, OutgoingRequest, UnprotectedRequest, UnprotectedResponse } from './session-types.js';
import {
  type ContextMaterial,
  type NoncePair,
  X_Z,
  deriveKeys,
  pairInput,
  parseXByte,
  samePair,
  splitMasterSalt,
  updateCtx,
  xByte,
} from './update-ctx.js';

export type { ChallengeHandle, IncomingRequest, KudosEvent, KudosSessionOptions, KudosState, OutgoingRequest, UnprotectedRequest, UnprotectedResponse } from './session-types.js';

/** A context in use: its material, keys, sequence numbers and request replay window. */
interface LiveContext {
  material: ContextMaterial;
  keys: DerivedContext;
  /** Persisted contexts: numbers below reservedUpTo are on disk (B.1.1); temporary ones: volatile. */
  nextSequence: number;
  reservedUpTo: number;
  persisted: boolean;
  /**
   * The context existed before this session was opened (read from storage, or provisioned as a
   * context already in use): messages under it, or under a CTX_TEMP derived from it, may have been
   * accepted by an earlier process, so its replay windows start uninitialised (RFC 8613 B.1.2).
   */
  restored: boolean;
  replay: ReplayWindow;
  /** Failed decryptions under its Recipient Key (the integrity limit, integrity.ts). */
  failures: FailedDecryptions;
}

/**
 * What `verify` (one context tried by #receive) reports. `challenge`: it decrypted, but its
 * freshness is unknown (B.1.2); `forged`: the AEAD refused it (counted against the integrity
 * limit); `keyUpdate`: it verified under a Recipient Key past that limit.
 */
type Verified<T> = { ok: true; value: T } | { ok: false; reason: string; code?: number; challenge?: ChallengeHandle; forged?: boolean; keyUpdate?: IncomingRequest };
type VerifiedRequest = Extract<ReturnType<typeof unprotectRequest>, { ok: true }> & { via: IncomingRequest['via'] };
type Verify<T> = (context: LiveContext, via: IncomingRequest['via'], replay: ReplayWindow) => Verified<T>;

const BAD_OPTION = 0x82;
const UNAUTHORIZED = 0x81;
/** Bounded memory for the peer's CTX_TEMPs a hostile peer could make us derive. */
const MAX_PEER_TEMPS = 4;
const MAX_SEQUENCE = 2 ** 40 - 1;
const INTEGRITY_LIMIT_REACHED = 'the integrity limit of this Recipient Key is reached (failed decryptions, §4.3 hard limit): a key update is needed';

export class KudosSession {
  readonly #o: Required<Pick<KudosSessionOptions, 'reserve' | 'nonceLength' | 'preserveObservations' | 'retainOldMs' | 'replayWindow'>> & KudosSessionOptions;
  readonly #storage: KudosStorage;
  #current!: LiveContext;
  /** CTX_NEW while PENDING. */
  #next: LiveContext | undefined;
  #pending: KudosRecord['pending'];
  /** Our (X, nonce) offered in a divergent message, bound to #tempIn (§4.3.1); never persisted. */
  #ownPair: NoncePair | undefined;
  /** Our CTX_TEMP (volatile sequence numbers, §4.4.1). */
  #temp: LiveContext | undefined;
  #tempNoFs = false;
  /** The peer's CTX_TEMPs seen in this execution, by pair: their replay windows. */
  #peerTemps = new Map<string, ReplayWindow>();
  #retained: (SecretPair & { until: number; live: LiveContext }) | undefined;
  #bootstrap: SecretPair | undefined;
  #peerCapability: PeerCapability;
  /**
   * The peer's pairs this execution has moved past (bounded): a divergent message carrying one is
   * a replay from earlier in the execution, since a peer never returns to a deleted pair (§4.3.1).
   */
  #supersededPeerPairs = new Set<string>();
  #state: KudosState = 'IDLE';
  /** The bootstrap context (no-FS mode) existed before this session was opened. */
  readonly #restored: boolean;

  private constructor(options: KudosSessionOptions, record: KudosRecord, restored: boolean) {
    this.#o = { reserve: 64, nonceLength: 8, preserveObservations: false, retainOldMs: 0, replayWindow: 32, ...options };
    if (this.#o.nonceLength < 1 || this.#o.nonceLength > 16) throw new RangeError('KUDOS nonce length must be 1-16 bytes');
    this.#storage = options.storage;
    this.#bootstrap = record.bootstrap;
    this.#peerCapability = record.peerCapability;
    this.#restored = restored;
    // Startup (§4.3.3.1): resume from disk. CTX_TEMPs and our pair were never written, so they are
    // gone (Pre-IDLE step 1). A persisted PENDING resumes as PENDING — CTX_NEW is on disk with its
    // reservation, and the peer may still be in BUSY waiting for our convergent message (see docs/kudos.md).
    this.#current = this.#live(record.current, true, restored);
    this.#pending = record.pending;
    if (record.pending) {
      this.#next = this.#live(record.pending.next, true, restored);
      this.#state = 'PENDING';
    }
    if (record.retained && record.retained.until > this.#now()) {
      this.#retained = { ...record.retained, live: this.#live({ ...record.retained, reservedUpTo: 0 }, false, restored) };
    }
    // Every sequence number below a reservation may have been used before the crash.
    this.#persist();
  }

  /**
   * Opens the session from its storage. `initial` provisions a context never seen before (a
   * pre-shared or EDHOC-derived context, with optional no-FS bootstrap material); it is ignored
   * when the storage already holds a record (the Latest material wins over the provisioned one).
   * `firstSequenceNumber`: where the provisioned context's Sender Sequence Numbers resume, when it
   * was used before KUDOS took it over (its own sequence store's next number); `restarted`: that
   * context was used before (by an earlier process), so its requests may come again.
   *
   * RFC 8613 Appendix B.1.2: every context that existed before this call — a record read from
   * storage, or a provisioned context marked `restarted` — starts with uninitialised replay
   * windows. The first request verified under each is not processed: unprotectRequest returns a
   * `challenge` to answer with a 4.01 carrying Echo, and only a request that proves its freshness
   * (`provenFresh`, the echoed value) sets the window.
   */
  static open(
    options: KudosSessionOptions,
    initial?: { masterSecret: Uint8Array; masterSalt?: Uint8Array; bootstrap?: SecretPair; peerCapability?: PeerCapability; firstSequenceNumber?: number; restarted?: boolean },
  ): KudosSession {
    let record = options.storage.read();
    const restored = record !== undefined || initial?.restarted === true;
    if (!record) {
      if (!initial) throw new Error('no KUDOS state stored and no initial context given');
      record = {
        current: { masterSecret: initial.masterSecret, masterSalt: initial.masterSalt ?? new Uint8Array(0), reservedUpTo: initial.firstSequenceNumber ?? 0 },
        ...(initial.bootstrap ? { bootstrap: initial.bootstrap } : {}),
        peerCapability: initial.peerCapability ?? 'unknown',
      };
    }
    return new KudosSession(options, record, restored);
  }

  get state(): KudosState {
    return this.#state;
  }

  /** §4.3.7: while true, the caller must not start other exchanges with this peer. */
  get holdsTraffic(): boolean {
    return this.#state !== 'IDLE';
  }

  /** The established context's secrets (for comparison in tests and diagnostics; never log them). */
  get currentSecrets(): SecretPair {
    return { masterSecret: this.#current.material.masterSecret, masterSalt: this.#current.material.masterSalt };
  }

  /** The IDs, ID Context and algorithms: what KUDOS never changes (§4). */
  get identity(): KudosSessionOptions['identity'] {
    return this.#o.identity;
  }

  /**
   * The encryptions under the current Sender Key so far, for the key-usage policy (policy.ts): its
   * next Sender Sequence Number (every message protected here has its own Partial IV). After a
   * restart it is the reservation, at most `reserve` above the true count.
   */
  get sentWithCurrent(): number {
    return this.#current.nextSequence;
  }

  /** Failed decryptions under the current Recipient Key (after a restart: the persisted bound). */
  get failedDecryptions(): number {
    return this.#current.failures.count;
  }

  /**
   * The current Recipient Key reached its integrity limit: non KUDOS messages under it are refused
   * until a KUDOS update replaces it (§4.3), which the caller starts.
   */
  get integrityLimitReached(): boolean {
    return this.#current.failures.reached;
  }

  get peerCapability(): PeerCapability {
    return this.#peerCapability;
  }

  /** §4.6: the policy's time is up, or the old Recipient Key reached its usage limits. */
  dropRetainedContext(): void {
    if (!this.#retained) return;
    this.#retained = undefined;
    this.#persist();
  }

  /**
   * Gives up an execution this peer started (BUSY) whose answer never came: our pair and CTX_TEMP
   * are deleted and CTX_OLD stays (a clean abort). A PENDING execution cannot be given up this way:
   * the peer may already be using CTX_NEW, so only a message from the peer ends it (§4.3.3.5).
   */
  abandon(): KudosEvent[] {
    const events: KudosEvent[] = [];
    if (this.#state !== 'BUSY') return events;
    this.#ownPair = undefined;
    this.#temp = undefined;
    events.push({ type: 'aborted', reason: 'no answer to our divergent message' });
    this.#moveTo('IDLE', events);
    return events;
  }

  // --- outgoing ------------------------------------------------------------------------------

  /**
   * Protects a request. `startKudos` (only when no other exchange with the peer is outstanding,
   * §4.3.7) makes it divergent when IDLE. In BUSY every message is divergent, in PENDING
   * convergent: no non KUDOS message leaves while an update runs (§4.3.2).
   */
  protectRequest(request: CoapMessage, options: { startKudos?: boolean; classOf?: ClassOf } = {}): { message: CoapMessage; outgoing: OutgoingRequest; events: KudosEvent[] } {
    const events: KudosEvent[] = [];
    const { context, kudos } = this.#outgoingContext(options.startKudos ?? false, events);
    const sequence = this.#nextSequence(context);
    const { message, binding } = protectRequest(request, context.keys.sender, sequence, {
      // §5.1 of RFC 8613: a context with an ID Context names it in every request (KUDOS keeps it, §4).
      ...(this.#o.identity.idContext !== undefined ? { kidContext: 'include' as const } : {}),
      ...(options.classOf ? { classOf: options.classOf } : {}),
    });
    this.#audit(context, sequence);
    return { message: kudos ? withKudosFields(message, kudos) : message, outgoing: { binding }, events };
  }

  /** Protects a response to a verified request; `startKudos` as for requests (the reverse flow, A.2). */
  protectResponse(response: CoapMessage, request: IncomingRequest, options: { startKudos?: boolean } = {}): { message: CoapMessage; events: KudosEvent[] } {
    const events: KudosEvent[] = [];
    const { context, kudos } = this.#outgoingContext(options.startKudos ?? false, events);
    const sequence = this.#nextSequence(context);
    const message = protectResponse(response, context.keys.sender, request.binding, { sequenceNumber: sequence });
    this.#audit(context, sequence);
    return { message: kudos ? withKudosFields(message, kudos) : message, events };
  }

  /**
   * The 4.01 Echo challenge of RFC 8613 Appendix B.1.2 for a request unprotectRequest refused with
   * `challenge`. It is protected like any response (own Partial IV, §8.3; the B.1.2 text: "The
   * server MUST use its Partial IV"), except in PENDING for a request whose sender does not hold
   * CTX_NEW (it came under CTX_OLD, or a CTX_TEMP derived from it): that sender left the
   * execution or started another one, and could not read a convergent answer under CTX_NEW, so
   * the challenge goes under CTX_OLD. It carries no application data, and the state does not move
   * until the echoed request arrives (§4.3.2's "MUST NOT send non KUDOS messages" in PENDING is
   * kept for everything else).
   */
  protectChallenge(challenge: CoapMessage, request: ChallengeHandle): { message: CoapMessage; events: KudosEvent[] } {
    if (this.#state !== 'PENDING' || request.peerHoldsNew) return this.protectResponse(challenge, request);
    const context = this.#current;
    const sequence = this.#nextSequence(context);
    const message = protectResponse(challenge, context.keys.sender, request.binding, { sequenceNumber: sequence });
    this.#audit(context, sequence);
    return { message, events: [] };
  }

  #outgoingContext(start: boolean, events: KudosEvent[]): { context: LiveContext; kudos?: { x: number; nonce: Uint8Array } } {
    if (this.#state === 'PENDING') {
      const pending = this.#pending!;
      const x = (pending.ownPair.x & ~X_Z) | X_Z;
      return { context: this.#next!, kudos: { x, nonce: pending.ownPair.nonce } };
    }
    if (this.#state === 'IDLE' && !start) return { context: this.#current };
    // Sending a divergent message: IDLE → BUSY (10), or stay in BUSY with the same CTX_TEMP.
    const noFs = this.#peerCapability === 'non-capable';
    if (this.#temp === undefined || this.#tempNoFs !== noFs || this.#temp.nextSequence > MAX_SEQUENCE) {
      // §4.3.3.4: a new (X, nonce) pair and a new CTX_TEMP when there is none or it is used up.
      const nonce = this.#random(this.#o.nonceLength);
      this.#ownPair = { x: xByte({ convergent: false, preserveObservations: this.#o.preserveObservations, noForwardSecrecy: noFs }, nonce.length), nonce };
      this.#tempNoFs = noFs;
      this.#temp = this.#live({ ...temporaryContext(this.#ownPair, this.#ctxIn(noFs)), reservedUpTo: 0 }, false);
    }
    this.#moveTo('BUSY', events);
    return { context: this.#temp, kudos: this.#ownPair! };
  }

  // --- incoming ------------------------------------------------------------------------------

  /**
   * `provenFresh` (RFC 8613 Appendix B.1.2, RFC 9175 §2.3): whether the decrypted request carries
   * an Echo value the caller issued since this session was opened. It is asked only for a request
   * under a context whose replay window is not set yet (or below its B.1.2 lower limit); without
   * it, such a request is refused with `challenge`, its handle for `protectChallenge`.
   */
  unprotectRequest(request: CoapMessage, options: { provenFresh?: (inner: CoapMessage) => boolean } = {}): UnprotectedRequest {
    const events: KudosEvent[] = [];
    const option = readOption(request);
    if (!option.ok) return { ok: false, code: BAD_OPTION, reason: option.reason, events };
    const verified = this.#receive(option.value, events, (context, via, replay): Verified<VerifiedRequest> => {
      const r = unprotectRequest(request, (kid) => (equal(kid, context.keys.recipientId) ? context.keys.recipient : undefined));
      if (!r.ok) return { ok: false, reason: r.reason, code: r.code, forged: r.reason === DECRYPTION_FAILED };
      const proven = (): boolean => options.provenFresh?.(r.message) === true;
      if (!replay.initialised) {
        // B.1.2: "the first time after booting, the server receives an OSCORE request, the server
        // responds with an OSCORE protected 4.01 (Unauthorized), containing only the Echo option";
        // "If the server ... can verify a second OSCORE request as fresh, then the Partial IV of
        // the second request is set as the lower limit of the Replay Window".
        if (!proven()) return { ok: false, code: UNAUTHORIZED, reason: 'freshness unknown since the restart (RFC 8613 Appendix B.1.2)', challenge: { binding: r.binding, via, peerHoldsNew: via === 'next' } };
        replay.initialiseAt(r.sequenceNumber);
      } else if (!replay.accept(r.sequenceNumber, replay.verdict(r.sequenceNumber) === 'too-old' && proven())) {
        // §7.4: the replay window of the context that verified it.
        return { ok: false, code: UNAUTHORIZED, reason: 'Replay detected' };
      }
      if (context.failures.reached) return { ok: false, code: UNAUTHORIZED, reason: INTEGRITY_LIMIT_REACHED, keyUpdate: { binding: r.binding, via } };
      return { ok: true, value: { ...r, via } };
    });
    if (!verified.ok) {
      return {
        ok: false,
        code: verified.code ?? UNAUTHORIZED,
        reason: verified.reason,
        events,
        ...(verified.challenge ? { challenge: verified.challenge } : {}),
        ...(verified.keyUpdate ? { keyUpdate: verified.keyUpdate } : {}),
      };
    }
    const { value } = verified;
    return { ok: true, message: value.message, request: { binding: value.binding, via: value.via }, kudos: option.value.kudos !== undefined, events };
  }

  unprotectResponse(response: CoapMessage, outgoing: OutgoingRequest): UnprotectedResponse {
    const events: KudosEvent[] = [];
    const option = readOption(response);
    if (!option.ok) return { ok: false, reason: option.reason, events };
    // Responses carry their own Partial IV here; those without one were protected with the
    // request's nonce, which only a non-KUDOS peer does and only under the request's context.
    const verified = this.#receive(option.value, events, (context, _via, replay): Verified<Extract<ReturnType<typeof unprotectResponse>, { ok: true }>> => {
      const r = unprotectResponse(response, context.keys.recipient, outgoing.binding);
      if (!r.ok) return { ok: false, reason: r.reason, forged: r.reason === DECRYPTION_FAILED };
      if (context.failures.reached) return { ok: false, reason: INTEGRITY_LIMIT_REACHED };
      if (r.sequenceNumber === undefined) return { ok: true, value: r };
      if (!replay.initialised) {
        // A response answers a request made since this session was opened, so the peer protected
        // it after every message it sent before: its Partial IV is a lower limit (B.1.2) no
        // earlier message of the peer can pass.
        replay.initialiseAt(r.sequenceNumber);
      } else if (!replay.accept(r.sequenceNumber)) {
        // A duplicate of an already verified response under the same key: refused like a replayed request.
        return { ok: false, reason: 'Replay detected' };
      }
      return { ok: true, value: r };
    });
    if (!verified.ok) return { ok: false, reason: verified.reason, events };
    const { message, sequenceNumber } = verified.value;
    return { ok: true, message, ...(sequenceNumber !== undefined ? { sequenceNumber } : {}), kudos: option.value.kudos !== undefined, events };
  }

  /**
   * The KUDOS state machine on reception (§4.3.3), shared by requests and responses: `verify`
   * tries one context and reports success; state moves only after successful verification.
   */
  #receive<T>(option: OscoreOptionValue, events: KudosEvent[], verify: Verify<T>): Verified<T> {
    // A message no context verified, refused by the AEAD under the current Recipient Key, counts
    // against that key's integrity limit. One that another context verified (a late message
    // under a retained CTX_OLD, CTX_NEW in PENDING) is no forgery, and CTX_TEMPs are keyed by the
    // sender's nonce, so a forgery stream never accumulates on one of them.
    const current = this.#current;
    let forgedUnderCurrent = false;
    const result = this.#receiveOnce(option, events, (context, via, replay) => {
      const r = verify(context, via, replay);
      if (!r.ok && r.forged && context === current) forgedUnderCurrent = true;
      return r;
    });
    if (!result.ok && !result.challenge && forgedUnderCurrent && current.failures.record()) this.#persist();
    return result;
  }

  #receiveOnce<T>(option: OscoreOptionValue, events: KudosEvent[], verify: Verify<T>): Verified<T> {
    const kudos = option.kudos;
    if (kudos === undefined) return this.#receiveNonKudos(events, verify);
    const bits = parseXByte(kudos.x);
    const peerPair: NoncePair = { x: kudos.x, nonce: Uint8Array.from(kudos.nonce) };
    // §4.4.2: a CAPABLE peer known to be CAPABLE "MUST ignore the message for the sake of KUDOS
    // processing" when 'p' is 1; it cannot be verified otherwise (its CTX_IN is the bootstrap one).
    if (bits.noForwardSecrecy && this.#peerCapability === 'capable') return { ok: false, code: UNAUTHORIZED, reason: 'no-FS KUDOS message from a peer known to be CAPABLE (downgrade refused)' };
    if (bits.noForwardSecrecy && !this.#bootstrap) return { ok: false, code: UNAUTHORIZED, reason: 'no-FS KUDOS message but no bootstrap material' };
    const result = bits.convergent ? this.#receiveConvergent(peerPair, bits.noForwardSecrecy, events, verify) : this.#receiveDivergent(peerPair, bits.noForwardSecrecy, events, verify);
    if (result.ok && this.#peerCapability === 'unknown' && !bits.noForwardSecrecy) {
      // §4.4.2: a peer that sent 'p' = 0 is CAPABLE; store it so a downgrade is refused from now on.
      this.#peerCapability = 'capable';
      this.#persist();
    }
    return result;
  }

  #receiveNonKudos<T>(events: KudosEvent[], verify: Verify<T>): Verified<T> {
    if (this.#state === 'PENDING') {
      const r = verify(this.#next!, 'next', this.#next!.replay);
      if (r.ok) {
        // §4.3.3.5: a non KUDOS message protected with the latest CTX_NEW is key confirmation.
        this.#complete(events);
        return r;
      }
      if (!r.ok && r.challenge) return r;
    }
    const r = verify(this.#current, 'current', this.#current.replay);
    if (!r.ok && r.challenge) return r;
    if (r.ok && this.#state === 'PENDING' && this.#o.peerKeepsQuiet) {
      // The peer sent a fresh non KUDOS message under CTX_OLD. A peer that keeps §4.3.7 sends none
      // while an execution runs, so it is not in this one any more (it rebooted in BUSY, or gave
      // up on it). Staying PENDING would answer it under a CTX_NEW it cannot have, for ever.
      this.#abort('non KUDOS message from the peer under CTX_OLD: it left this execution', events);
      this.#moveTo('IDLE', events);
    }
    if (r.ok || !this.#retained) return r;
    if (this.#retained.until <= this.#now()) {
      this.dropRetainedContext();
      return r;
    }
    // §4.6: CTX_NEW first, then CTX_OLD, for non KUDOS messages only.
    return verify(this.#retained.live, 'retained', this.#retained.live.replay);
  }

  #receiveDivergent<T>(
    peerPair: NoncePair,
    noFs: boolean,
    events: KudosEvent[],
    verify: Verify<T>,
  ): Verified<T> {
    // CTX_TEMP = updateCtx(X2 | N2, 0x, CTX_IN) (§4.3.1) with CTX_IN = CTX_OLD (FS) or CTX_BOOTSTRAP (no-FS).
    if (this.#supersededPeerPairs.has(pairKey(peerPair))) return { ok: false, code: UNAUTHORIZED, reason: 'stale KUDOS divergent message (a nonce the peer has moved past)' };
    // No-FS mode: the execution that made the current context took the peer's nonce from a
    // message that still decrypts (CTX_BOOTSTRAP never changes, §4.4.2); the nonce is in the
    // current Master Salt, so a replay of it is recognised without storing anything.
    if (noFs && this.#inCurrentSalt(peerPair)) return { ok: false, code: UNAUTHORIZED, reason: 'stale KUDOS divergent message (its nonce made the current context, no-FS mode)' };
    // `restored`: CTX_IN existed before this session was opened, so this CTX_TEMP may have verified
    // messages in an earlier process (B.1.2): a pair not seen since starts with an uninitialised window.
    const tryFrom = (ctxIn: ContextMaterial, restored: boolean) => {
      const temp = this.#live({ ...temporaryContext(peerPair, ctxIn), reservedUpTo: 0 }, false);
      const key = `${noFs ? 'p' : 'f'}${pairKey(peerPair)}`;
      const replay = this.#peerTemps.get(key) ?? new ReplayWindow(this.#o.replayWindow, { initialised: !restored });
      const r = verify(temp, 'temp', replay);
      if (r.ok) {
        if (this.#peerTemps.size >= MAX_PEER_TEMPS && !this.#peerTemps.has(key)) this.#peerTemps.delete(this.#peerTemps.keys().next().value!);
        this.#peerTemps.set(key, replay);
      }
      return r;
    };
    if (this.#state === 'PENDING') {
      const pending = this.#pending!;
      // CTX_IN of this execution: CTX_OLD, or the bootstrap context in no-FS mode.
      const r = tryFrom(this.#ctxIn(noFs), this.#ctxInRestored(noFs));
      if (!r.ok && r.challenge) return r;
      if (r.ok) {
        // §4.3.4: the same (X, nonce) as the divergent message that got us here: stay in PENDING.
        // (The peer's pair is also the other half of CTX_NEW's Master Salt, so this survives a reboot.)
        if (noFs === pending.noForwardSecrecy && samePair(normalised(peerPair), normalised(this.#peerHalfOfSalt() ?? pending.peerPair))) {
          events.push({ type: 'send-convergent' });
          return r;
        }
        // §4.3.3.5, first case: delete CTX_NEW and our pair, abort, enter BUSY on this message.
        this.#supersede(pending.peerPair);
        this.#abort('divergent message with a new nonce from CTX_OLD', events);
        this.#enterPendingFrom(peerPair, noFs, events);
        return r;
      }
      if (!noFs) {
        // Second case: the peer completed and started over from CTX_NEW, which becomes CTX_OLD.
        const fromNew = tryFrom(this.#next!.material, this.#next!.restored);
        if (!fromNew.ok && fromNew.challenge) {
          // It decrypted under a CTX_TEMP from CTX_NEW, which only a peer that derived CTX_NEW can
          // do, so steps 1-4 of this case hold whatever its freshness; step 5 (BUSY on this
          // message) waits for the echoed request. The challenge then goes out as a non KUDOS
          // message under the peer's CTX_OLD: a convergent one would tell the peer, now BUSY in its
          // own execution, that we answered it (found by the KUDOS model test).
          this.#adoptNewAsOld(events);
          this.#persist();
          this.#moveTo('IDLE', events);
          return fromNew;
        }
        if (fromNew.ok) {
          this.#adoptNewAsOld(events);
          this.#enterPendingFrom(peerPair, false, events);
          return fromNew;
        }
      }
      return r;
    }
    // IDLE or BUSY (10). KUDOS messages never use a retained CTX_OLD (§4.6).
    const r = tryFrom(this.#ctxIn(noFs), this.#ctxInRestored(noFs));
    if (!r.ok) return r;
    this.#enterPendingFrom(peerPair, noFs, events);
    return r;
  }

  #receiveConvergent<T>(
    peerPair: NoncePair,
    noFs: boolean,
    events: KudosEvent[],
    verify: Verify<T>,
  ): Verified<T> {
    if (this.#state === 'IDLE') {
      // §4.3.3.3: ignored for KUDOS, processed as a CoAP message (a late duplicate under CTX_NEW).
      return verify(this.#current, 'current', this.#current.replay);
    }
    if (this.#state === 'PENDING') {
      const pending = this.#pending!;
      if (noFs === pending.noForwardSecrecy && samePair(normalised(peerPair), normalised(pending.peerPair))) {
        const r = verify(this.#next!, 'next', this.#next!.replay);
        if (r.ok) this.#complete(events);
        return r;
      }
      // A convergent message built on our pair and a peer pair other than the one our CTX_NEW used:
      // the peer lost the divergent message we answered (it rebooted in BUSY) and answered an
      // earlier one of ours. Its CTX_NEW holds our pair, so it verifies only if the peer took our
      // nonce: that is key confirmation of that CTX_NEW, never used by us for sending. Without
      // this, both peers would wait in PENDING for each other (see docs/kudos.md).
      const material = updateCtx(pairInput(normalised(pending.ownPair)), pairInput(normalised(peerPair)), this.#ctxIn(noFs));
      const candidate = this.#live({ ...material, reservedUpTo: 0 }, false);
      const r = verify(candidate, 'next', candidate.replay);
      if (!r.ok) return { ok: false, code: UNAUTHORIZED, reason: 'convergent message for another KUDOS execution' };
      this.#pending = { next: { ...material, reservedUpTo: 0 }, ownPair: pending.ownPair, peerPair, noForwardSecrecy: noFs, preserveObservations: this.#preserveDecision(pending.ownPair, peerPair) };
      this.#next = candidate;
      this.#complete(events);
      return r;
    }
    // BUSY (10): CTX_NEW = updateCtx(X1 | N1, X2 | N2, CTX_IN); key confirmation on success.
    if (!this.#ownPair || noFs !== this.#tempNoFs) return { ok: false, code: UNAUTHORIZED, reason: 'convergent message that answers no divergent message of ours' };
    const ownPair = this.#ownPair;
    const material = updateCtx(pairInput(normalised(ownPair)), pairInput(normalised(peerPair)), this.#ctxIn(noFs));
    const candidate = this.#live({ ...material, reservedUpTo: 0 }, false);
    const r = verify(candidate, 'next', candidate.replay);
    if (!r.ok) return r;
    this.#pending = {
      next: { ...material, reservedUpTo: 0 },
      ownPair,
      peerPair,
      noForwardSecrecy: noFs,
      preserveObservations: this.#preserveDecision(ownPair, peerPair),
    };
    this.#next = candidate;
    this.#complete(events);
    return r;
  }

  /** Received a verified divergent message: BUSY (01 or 11), send convergent, PENDING (§4.3.3.4). */
  #enterPendingFrom(peerPair: NoncePair, noFs: boolean, events: KudosEvent[]): void {
    this.#moveTo('BUSY', events);
    // §4.3.1: reuse our pair if it is bound to the same CTX_IN, else generate one.
    let ownPair = this.#ownPair;
    if (!ownPair || this.#tempNoFs !== noFs) {
      const nonce = this.#random(this.#o.nonceLength);
      // §4.5.1: "If a peer receives a KUDOS message with the bit 'b' set to 0, then the peer MUST set to 0 the bit 'b'".
      const preserve = this.#o.preserveObservations && parseXByte(peerPair.x).preserveObservations;
      ownPair = { x: xByte({ convergent: false, preserveObservations: preserve, noForwardSecrecy: noFs }, nonce.length), nonce };
      this.#ownPair = ownPair;
      this.#tempNoFs = noFs;
      this.#temp = undefined; // a CTX_TEMP from an older pair is of no use any more
    }
    const material = updateCtx(pairInput(normalised(ownPair)), pairInput(normalised(peerPair)), this.#ctxIn(noFs));
    const preserve = this.#preserveDecision(ownPair, peerPair);
    const start = preserve ? this.#observationStart() : 0;
    this.#pending = { next: { ...material, reservedUpTo: start }, ownPair, peerPair, noForwardSecrecy: noFs, preserveObservations: preserve };
    this.#next = this.#live(this.#pending.next, true);
    // CTX_NEW and its reservation reach the disk before the convergent message can be protected (§4.3).
    this.#persist();
    this.#moveTo('PENDING', events);
    events.push({ type: 'send-convergent' });
  }

  /** Key confirmation and the Pre-IDLE stage (§4.3.3.2; Step A of §4.4.2 is implicit: CTX_BOOTSTRAP is never kept derived). */
  #complete(events: KudosEvent[]): void {
    const pending = this.#pending!;
    const old = this.#current;
    let next = this.#next!;
    if (!next.persisted) {
      // Initiator side: CTX_NEW was derived on receiving the convergent message.
      const start = pending.preserveObservations ? this.#observationStart() : 0;
      next = this.#live({ ...next.material, reservedUpTo: start }, true);
      next.replay = this.#next!.replay;
    }
    this.#current = next;
    this.#next = undefined;
    this.#pending = undefined;
    this.#temp = undefined;
    this.#ownPair = undefined;
    this.#forgetPeerTemps();
    this.#supersededPeerPairs.clear();
    // §4.6: never retain a CTX_OLD whose Recipient Key reached its limits.
    this.#retained = this.#o.retainOldMs > 0 && !old.failures.reached
      ? { masterSecret: old.material.masterSecret, masterSalt: old.material.masterSalt, until: this.#now() + this.#o.retainOldMs, live: old }
      : undefined;
    this.#persist();
    this.#moveTo('IDLE', events);
    events.push({ type: 'completed', preserveObservations: pending.preserveObservations, noForwardSecrecy: pending.noForwardSecrecy });
  }

  /** §4.3.3.5, divergent message from a CTX_TEMP derived from CTX_NEW, steps 1-4. */
  #adoptNewAsOld(events: KudosEvent[]): void {
    this.#current = this.#next!;
    this.#next = undefined;
    this.#pending = undefined;
    this.#retained = undefined;
    this.#ownPair = undefined;
    this.#temp = undefined;
    this.#forgetPeerTemps();
    events.push({ type: 'aborted', reason: 'divergent message protected from CTX_NEW: CTX_NEW becomes CTX_OLD' });
  }

  #supersede(pair: NoncePair): void {
    if (this.#supersededPeerPairs.size >= MAX_PEER_TEMPS * 4) this.#supersededPeerPairs.delete(this.#supersededPeerPairs.values().next().value!);
    this.#supersededPeerPairs.add(pairKey(pair));
  }

  #abort(reason: string, events: KudosEvent[]): void {
    this.#next = undefined;
    this.#pending = undefined;
    this.#ownPair = undefined;
    this.#temp = undefined;
    this.#persist();
    events.push({ type: 'aborted', reason });
  }

  // --- helpers -------------------------------------------------------------------------------

  /** §4.5.1: observations survive only if every 'b' exchanged was 1. */
  #preserveDecision(ownPair: NoncePair, peerPair: NoncePair): boolean {
    return parseXByte(ownPair.x).preserveObservations && parseXByte(peerPair.x).preserveObservations;
  }

  /** §4.5.1 step 4: Sender Sequence Number PIV* + 1. */
  #observationStart(): number {
    const pivs = this.#o.observationPartialIvs?.() ?? [];
    return pivs.length === 0 ? 0 : Math.max(...pivs) + 1;
  }

  /** The peer's half of CTX_NEW's Master Salt (§4.3.4 step 1). */
  #peerHalfOfSalt(): NoncePair | undefined {
    const halves = splitMasterSalt(this.#next!.material.masterSalt);
    const own = normalised(this.#pending!.ownPair);
    if (!halves) return undefined;
    if (samePair(halves[0], own)) return halves[1];
    if (samePair(halves[1], own)) return halves[0];
    return undefined;
  }

  /**
   * Pre-IDLE deletes the CTX_TEMPs (§4.3.3.2). Their replay windows go with those from CTX_OLD,
   * whose messages no longer decrypt; those from CTX_BOOTSTRAP stay (bounded, MAX_PEER_TEMPS), as
   * their messages still decrypt in the next no-FS execution: a recent replay is refused by its window.
   */
  #forgetPeerTemps(): void {
    for (const key of [...this.#peerTemps.keys()]) if (key.startsWith('f')) this.#peerTemps.delete(key);
  }

  /** Whether the peer's pair is one of the two the current Master Salt was built from (§4.2: X_N). */
  #inCurrentSalt(peerPair: NoncePair): boolean {
    const halves = splitMasterSalt(this.#current.material.masterSalt);
    return halves !== undefined && halves.some((half) => samePair(normalised(half), normalised(peerPair)));
  }

  /** §4.4.2: CTX_IN is CTX_OLD in FS mode, CTX_BOOTSTRAP in no-FS mode. */
  #ctxIn(noFs: boolean): ContextMaterial {
    if (!noFs) return this.#current.material;
    const b = this.#bootstrap;
    if (!b) throw new Error('no-FS mode needs Bootstrap Master Secret and Salt (§4.4.1)');
    return { ...this.#o.identity, masterSecret: b.masterSecret, masterSalt: b.masterSalt };
  }

  /** Whether #ctxIn(noFs) existed before this session was opened. */
  /**
   * Whether CTX_TEMPs derived from #ctxIn(noFs) may have verified messages this session no longer
   * tracks. CTX_OLD: if it was read from storage (B.1.2). CTX_BOOTSTRAP: always — it is CTX_IN of
   * every no-FS execution with the peer (§4.4.2), so a divergent message recorded in any earlier
   * one still decrypts, and a new pair's window starts uninitialised: the first divergent request
   * with it is challenged (B.1.2) before the state moves, which a replay cannot answer.
   */
  #ctxInRestored(noFs: boolean): boolean {
    if (noFs) return true;
    return noFs ? this.#restored : this.#current.restored;
  }

  #live(secrets: PersistedContext, persisted: boolean, restored = false): LiveContext {
    const material: ContextMaterial = { ...this.#o.identity, masterSecret: secrets.masterSecret, masterSalt: secrets.masterSalt };
    return {
      material,
      keys: deriveKeys(material),
      nextSequence: secrets.reservedUpTo,
      reservedUpTo: secrets.reservedUpTo,
      persisted,
      restored,
      replay: new ReplayWindow(this.#o.replayWindow, { initialised: !restored }),
      failures: new FailedDecryptions(this.#o.integrityLimit ?? aeadIntegrityLimit(this.#o.identity.aead), secrets.failedDecryptions ?? 0),
    };
  }

  #nextSequence(context: LiveContext): number {
    const n = context.nextSequence;
    if (n > MAX_SEQUENCE) throw new Error('Sender Sequence Number space of this context is used up; run KUDOS');
    if (context.persisted && n >= context.reservedUpTo) {
      context.reservedUpTo = n + this.#o.reserve;
      this.#persist();
    }
    context.nextSequence = n + 1;
    return n;
  }

  #persist(): void {
    const snapshot = (c: LiveContext): PersistedContext => {
      // On the way in (construction), reservations are raised past every possibly used number.
      if (c.reservedUpTo <= c.nextSequence) c.reservedUpTo = c.nextSequence + this.#o.reserve;
      const failed = c.failures.persistedUpTo;
      return { masterSecret: c.material.masterSecret, masterSalt: c.material.masterSalt, reservedUpTo: c.reservedUpTo, ...(failed > 0 ? { failedDecryptions: failed } : {}) };
    };
    const record: KudosRecord = { current: snapshot(this.#current), peerCapability: this.#peerCapability };
    if (this.#pending && this.#next) record.pending = { ...this.#pending, next: snapshot(this.#next) };
    if (this.#retained) record.retained = { masterSecret: this.#retained.masterSecret, masterSalt: this.#retained.masterSalt, until: this.#retained.until };
    if (this.#bootstrap) record.bootstrap = this.#bootstrap;
    this.#storage.write(record);
  }

  #moveTo(to: KudosState, events: KudosEvent[]): void {
    if (this.#state === to) return;
    events.push({ type: 'state', from: this.#state, to });
    this.#state = to;
  }

  #audit(context: LiveContext, sequence: number): void {
    if (!this.#o.onEncrypt) return;
    const keys = context.keys;
    this.#o.onEncrypt(fingerprint(keys.senderKey), aeadNonce(keys.commonIv, keys.senderId, encodePartialIv(sequence)));
  }

  #random(length: number): Uint8Array {
    return this.#o.random ? this.#o.random(length) : Uint8Array.from(randomBytes(length));
  }

  #now(): number {
    return this.#o.now ? this.#o.now() : Date.now();
  }
}
