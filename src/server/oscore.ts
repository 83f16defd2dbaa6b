/**
 * OSCORE on the server (RFC 8613 §8.2, §8.3): unprotect a request with the context its kid names,
 * check the replay window, challenge with Echo after a restart (Appendix B.1.2), and protect every
 * response and notification to it. OSCORE errors go back unprotected with Max-Age 0 (§8.2);
 * everything the application answers, errors included, is protected (§8.3).
 *
 * Echo challenges (RFC 9175 §2.3): a request whose freshness the replay window cannot vouch for —
 * any request after a restart (B.1.2), or one whose Partial IV is below the window, which may or
 * may not have been received before — is not processed and gets a protected 4.01 with an Echo
 * value. The values are stateless (a timestamp and a MAC bound to the recipient, freshness.ts), so
 * any recent one is accepted: a replayed request answered with a new challenge cannot invalidate
 * the value an honest client is about to echo, nor can concurrent requests of one client.
 *
 * Below the window is where a lossy path leaves a request that was retransmitted while more than a
 * window's worth of later requests went through (30 % loss, 8 in flight: a few in 300). It was
 * never processed (deduplication below answers every copy of a processed one from the cache), so
 * "Replay detected" would fail an action the client may safely repeat; the challenge makes the
 * client repeat it with a fresh Partial IV. A Partial IV inside the window that was seen is a
 * replay for certain: "Replay detected", unprotected, costing nothing.
 *
 * How many such challenges a recipient gets per second (issue 21): a client with 256 requests in
 * flight whose burst of requests a full receive queue dropped retransmits them all 2–3 s later,
 * tens of thousands of Partial IVs behind, within the same second. A flat budget (10 per second)
 * answered the rest "Replay detected" although RFC 8613 §7.4 makes that the answer for a Partial
 * IV that "has [been] received before" — these were never received, only no longer tellable (the
 * window of §3.2.2, 32 by default, cannot span a retransmission timeout at thousands of requests
 * per second, and no bitmap per recipient could at any rate). So the budget follows the
 * recipient's own traffic: at least `staleChallengesPerSecond`, and as many as it had requests
 * accepted in this and the previous second. A replaying attacker still cannot make this server
 * spend more Sender Sequence Numbers (or responses) on challenges than the honest client spends on
 * requests, and a request below the window beyond the budget gets a 4.01 that does not claim a
 * replay ("Replay window exceeded").
 *
 * With `rederivation` set on a configured context, the server also runs Appendix B.2 (see
 * oscore/rederivation.ts): a request whose kid matches but whose 'kid context' is unknown is
 * request #1 (steps 2) or request #2 (step 4) of the protocol. Derived contexts live in memory
 * only; after a restart the client's requests name an unknown kid context again and B.2 reruns.
 */
import { ResponseCode } from '../coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeUint, getOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { decodeOscoreOption } from '../oscore/option.js';
import { errorResponseParts, protectResponse, unprotectRequest, type RequestBinding, type UnprotectRequestResult } from '../oscore/protect.js';
import { B2_NONCE_LENGTH, R2Cache, type R2CacheOptions, newB2Nonce, r2Of, secondIdContext, unwrapB2KidContext, withResponseKidContext } from '../oscore/rederivation.js';
import { ContextDirectory, OscoreSecurityContext, serving, type RecipientState } from '../oscore/security-context.js';
import type { ContextTable } from '../oscore/context-table.js';
import { withOscoreLayer, type EndpointContext, type OscoreLayerInfo } from '../exchange/context.js';
import { escalatingClassOf } from '../oscore/escalation.js';
import { EchoFreshness } from './freshness.js';
import type { ContextSource } from '../store/server-contexts.js';
import { StoreError } from '../store/types.js';
import type { ServerSecurity, UnprotectOutcome } from './security.js';
import { bytesToHex as hex } from '../util/bytes.js';


type Found = NonNullable<ReturnType<ContextDirectory['find']>>;

export interface OscoreServerOptions {
  /** Appendix B.2.1: bounds and lifetime of the cached R2 values. */
  r2Cache?: R2CacheOptions;
  /**
   * draft-ietf-core-oscore-capable-proxies §2.4.1: per-source lists of security contexts. The first
   * list whose `match` accepts the request's source (its address, and the OSCORE layers already
   * removed from it) is the only one searched; a kid outside it gets the same 4.01 "Security context
   * not found" as an unknown kid — no lookup in other lists first (no timing side channel, separate
   * ID name spaces). Requests no list matches use the main contexts.
   */
  sourceLists?: readonly SourceList[];
  /**
   * Milliseconds of a monotonic clock, for the age of Echo values. Default `performance.now()`;
   * lockstep tests pass their fake clock.
   */
  now?: () => number;
  /** How long the Echo value of a challenge is accepted (RFC 9175 §2.3 "recent"). Default 60 s. */
  echoLifetimeMs?: number;
  /**
   * Per recipient and second, how many requests below the replay window get an Echo challenge at
   * least (each costs a Sender Sequence Number, as a replay of any old captured request would);
   * the budget grows to the number of fresh requests the recipient made in this and the previous
   * second, so a busy client's losses are all challenged (see the module comment). Beyond it they
   * get 4.01 "Replay window exceeded". Challenges after a restart are not counted: refusing those
   * would let a replaying attacker starve the client again. Default 10.
   */
  staleChallengesPerSecond?: number;
  /**
   * Contexts kept in a context store (issue 26, src/store/): a kid not held here is looked up there
   * before the request is unprotected, and a context's Sender Sequence Numbers come from the
   * store's reservations. While the store cannot answer, requests get 5.03.
   */
  contextSource?: ContextSource;
  /**
   * Idle contexts kept as bytes, materialised on use (issue 21: a context per device; see
   * oscore/context-table.ts). Consulted after `contexts`.
   */
  table?: ContextTable;
}

const DEFAULT_ECHO_LIFETIME_MS = 60_000;
const DEFAULT_STALE_CHALLENGES_PER_SECOND = 10;

export interface SourceList {
  match(source: EndpointContext): boolean;
  contexts: readonly OscoreSecurityContext[];
}

/** §2.4.1 helper: a source whose outermost removed OSCORE layer was authenticated as `peer` (e.g. a reverse proxy). */
export const behindLayer = (peer: string) => (source: EndpointContext): boolean => source.oscore?.some((l) => l.peer === peer) === true;

/**
 * A response goes to the next hop, which removes this layer (draft-ietf-core-oscore-capable-proxies
 * §2.2 for X at position 1): every outer-only option in it — those a proxy adds to a response, such
 * as Reply-From and Group-ETag (draft-ietf-core-groupcomm-proxy §10.3/§10.4: integrity and
 * confidentiality on the client–proxy leg) — is Class E in this layer.
 */
const NEXT_HOP_RESPONSE = escalatingClassOf({ x: 1, consumers: () => [] });
/** A response's protection options: the same for every response (no object per response). */
const RESPONSE_PROTECTION = Object.freeze({ classOf: NEXT_HOP_RESPONSE });

export class OscoreServerSecurity implements ServerSecurity {
  private readonly directory: ContextDirectory;
  private readonly r2s: R2Cache<string>;
  private readonly sourceLists: ReadonlyArray<{ match: SourceList['match']; directory: ContextDirectory }>;
  /** Its key is random per instance: values issued before a restart never verify (RFC 9175 §2.4). */
  private readonly echo: EchoFreshness;
  private readonly now: () => number;
  private readonly echoLifetimeMs: number;
  private readonly staleChallengesPerSecond: number;
  private readonly contextSource: ContextSource | undefined;

  constructor(contexts: readonly OscoreSecurityContext[], options: OscoreServerOptions = {}) {
    this.directory = new ContextDirectory(contexts, options.table);
    this.r2s = new R2Cache(options.r2Cache);
    this.sourceLists = (options.sourceLists ?? []).map((l) => ({ match: l.match, directory: new ContextDirectory(l.contexts) }));
    this.now = options.now ?? (() => performance.now());
    this.echo = new EchoFreshness(this.now);
    this.echoLifetimeMs = options.echoLifetimeMs ?? DEFAULT_ECHO_LIFETIME_MS;
    this.staleChallengesPerSecond = options.staleChallengesPerSecond ?? DEFAULT_STALE_CHALLENGES_PER_SECOND;
    this.contextSource = options.contextSource;
  }

  /** Serves a context made after start-up (one fetched or preloaded from a context store). */
  install(context: OscoreSecurityContext): void {
    this.directory.insert(context);
  }

  /**
   * With a context source: a kid not held here is fetched first, and a context without a reserved
   * Sender Sequence Number waits for its reservation (the Echo challenge of a first request needs
   * one). Requests under a §2.4.1 source list use configured contexts only.
   */
  prepare(request: CoapMessage, context: EndpointContext): Promise<CoapMessage | undefined> | undefined {
    const source = this.contextSource;
    const option = source && getOption(request, OptionNumber.Oscore);
    if (option === undefined || this.sourceLists.some((l) => l.match(context))) return undefined;
    let kid: Uint8Array | undefined;
    let kidContext: Uint8Array | undefined;
    try {
      ({ kid, kidContext } = decodeOscoreOption(option));
    } catch {
      return undefined; // unprotect answers it
    }
    if (kid === undefined) return undefined;
    const found = this.directory.find(kid, kidContext);
    if (found !== undefined) {
      const reserving = found.context.sequenceReady();
      if (reserving === undefined) return undefined;
      return settled(
        reserving.catch((error: Error) => {
          source!.onError?.(error);
          throw error;
        }),
      );
    }
    const loading = source!.lookup(kid, kidContext);
    if (loading === undefined) return undefined; // known absent: unprotect answers 4.01
    return settled(
      loading.then((loaded) => {
        if (loaded !== undefined && this.directory.find(kid, kidContext) === undefined) this.directory.insert(loaded);
      }),
    );
  }

  /** The contexts in use now, configured and derived (B.2), and those of `table` materialised now, for inspection. */
  get contexts(): readonly OscoreSecurityContext[] {
    return this.directory.all;
  }

  /** Whether a request with this kid and no kid context finds one of these contexts (a table's idle ones included): EDHOC's C_R must not be such a kid. */
  hasKid(kid: Uint8Array): boolean {
    return this.directory.hasKid(kid);
  }

  /** How many contexts serve requests, the table's idle ones included. */
  get contextCount(): number {
    return this.directory.size;
  }

  /**
   * unprotectRequest's lookup, made once (not a closure per request, issue 21): it runs within
   * unprotect, which sets `lookupIn` before and reads `lookedUp` after.
   */
  private lookupIn: ContextDirectory | undefined;
  private lookedUp: Found | undefined;
  private readonly findRecipient = (kid: Uint8Array, kidContext: Uint8Array | undefined): RecipientState['params'] | undefined => {
    const directory = this.lookupIn!;
    let found = directory.find(kid, kidContext);
    // A B.2 request #2 names its ID3 wrapped in a CBOR bstr; once ID3 is in use (step 4 done), a
    // replay of it must meet that context's replay window, not start another run.
    if (found === undefined && kidContext !== undefined) {
      const id3 = unwrapB2KidContext(kidContext);
      const derived = id3 && directory.find(kid, id3);
      if (derived && derived.context.origin !== undefined) found = derived;
    }
    this.lookedUp = found;
    // The objects a table may lend on at eviction (security-context.ts `serving`): used within this
    // request's synchronous step only; the response asks its context again.
    return found === undefined ? undefined : serving.params(found.recipient);
  };

  unprotect(request: CoapMessage, context: EndpointContext): UnprotectOutcome | undefined {
    if (getOption(request, OptionNumber.Oscore) === undefined) return undefined;
    // §2.4.1: the list is chosen by the source before any context is looked up.
    const directory = this.sourceLists.length === 0 ? this.directory : (this.sourceLists.find((l) => l.match(context))?.directory ?? this.directory);
    this.lookupIn = directory;
    this.lookedUp = undefined;
    let result = unprotectRequest(request, this.findRecipient);
    let found = this.lookedUp as Found | undefined;
    this.lookedUp = undefined;
    if (!result.ok && found === undefined && result.code === ResponseCode.Unauthorized) {
      const b2 = this.rederivation(request, directory);
      if (b2 === undefined) return { ok: false, response: errorMessage(result) };
      if (b2.kind === 'answer') return { ok: false, response: b2.response };
      // Step 4 succeeded: request #2 verified with the third context, which now serves this client.
      // Its 'kid context' carried ID3 wrapped; the layer names the ID Context itself.
      result = { ...b2.result, kidContext: b2.found.context.idContext };
      found = b2.found;
    }
    if (!result.ok) return { ok: false, response: errorMessage(result) };
    const { context: security, recipient } = found!;
    const sequenceNumber = result.sequenceNumber;
    // RFC 9175 §2.3: a request echoing a recent value we issued to this recipient was made after it.
    const echoed = getOption(result.message, OptionNumber.Echo);
    const provenFresh = echoed !== undefined && this.echo.verifyFor(echoed, echoIdentity(security, recipient), this.echoLifetimeMs) === 'fresh';

    const { replay } = serving.state(recipient);
    if (!replay.initialised) {
      if (security.rederivation && security.origin === undefined) {
        // B.2, initiated by the server ("in the latter case step 1 is omitted"): it "has lost part
        // of its security context, e.g., ... Sender Sequence Number or Replay Window". Request #1
        // is the one just verified with the existing context, ID1 its ID Context.
        return { ok: false, response: this.responseOne(security, recipient, result.kid, security.idContext, result.binding) };
      }
      // Appendix B.1.2: after a restart, only a request echoing a challenge sets the window.
      if (!provenFresh) return { ok: false, response: this.challenge(security, recipient, result.binding) };
      replay.initialiseAt(sequenceNumber);
    } else {
      const verdict = replay.verdict(sequenceNumber, provenFresh);
      if (verdict === 'too-old' && this.mayChallengeStale(recipient)) {
        // Below the window (or B.1.2's lower limit): maybe never received. RFC 9175 §2.3: "the
        // server MUST NOT process the request further and SHOULD send a 4.01 ... with an Echo option".
        return { ok: false, response: this.challenge(security, recipient, result.binding) };
      }
      if (verdict === 'too-old') return { ok: false, response: errorMessage({ code: ResponseCode.Unauthorized, reason: 'Replay window exceeded' }) };
      // §7.4: a Partial IV received before.
      if (!replay.accept(sequenceNumber, provenFresh)) return { ok: false, response: errorMessage({ code: ResponseCode.Unauthorized, reason: 'Replay detected' }) };
      this.countAccepted(recipient);
    }

    const layer: OscoreLayerInfo = result.kidContext ? { peer: recipient.name, kid: recipient.kidHex, kidContext: hex(security.idContext ?? result.kidContext) } : serving.plainLayer(recipient);
    const verified = result;
    return {
      ok: true,
      inner: verified.message,
      context: withOscoreLayer(context, layer),
      protect: (response, kind) => {
        // §8.3.1: every notification after the first carries a fresh Partial IV.
        let fresh: { sequenceNumber?: number; classOf: typeof NEXT_HOP_RESPONSE } = RESPONSE_PROTECTION;
        if (kind === 'notification') {
          try {
            fresh = { sequenceNumber: security.nextSequenceNumber(), classOf: NEXT_HOP_RESPONSE };
          } catch (error) {
            // No reserved number (the context store is slow or down): never a guess. The 5.03
            // ends the observation; the client registers again (RFC 7641 §3.3.1).
            if (error instanceof StoreError) return storeUnavailable();
            throw error;
          }
        }
        // Asked now, not at verification: a table may have put the context away since (its own keys
        // are derived again then; the sequence source is the entry's, shared).
        return protectResponse(response, serving.sender(security), verified.binding, fresh);
      },
    };
  }

  /**
   * A protected 4.01 carrying only an Echo value (B.1.2). The request's nonce cannot serve: a
   * request with this Partial IV may have been answered with it before (§5), so "the server MUST
   * use its Partial IV when generating the AEAD nonce and MUST include the Partial IV".
   */
  private challenge(security: OscoreSecurityContext, recipient: RecipientState, binding: RequestBinding): CoapMessage {
    const challenge = echoChallenge(this.echo.issueFor(echoIdentity(security, recipient)));
    let sequenceNumber: number;
    try {
      sequenceNumber = security.nextSequenceNumber();
    } catch (error) {
      if (error instanceof StoreError) return storeUnavailable();
      throw error;
    }
    return protectResponse(challenge, serving.sender(security), binding, { sequenceNumber });
  }

  /** Counts a challenge for a request below the window against the recipient's budget for this second. */
  private mayChallengeStale(recipient: RecipientState): boolean {
    const budget = this.budgetNow(recipient);
    if (budget.count >= Math.max(this.staleChallengesPerSecond, budget.accepted + budget.acceptedBefore)) return false;
    budget.count++;
    return true;
  }

  private countAccepted(recipient: RecipientState): void {
    this.budgetNow(recipient).accepted++;
  }

  /** The recipient's counters, moved on to the current second. */
  private budgetNow(recipient: RecipientState): RecipientState['challenges'] {
    const second = Math.floor(this.now() / 1000);
    const budget = serving.state(recipient).challenges;
    if (budget.second !== second) {
      budget.acceptedBefore = budget.second === second - 1 ? budget.accepted : 0;
      budget.accepted = 0;
      budget.count = 0;
      budget.second = second;
    }
    return budget;
  }

  /**
   * Appendix B.2 for a request no context in use verifies: "the server needs to be configured to
   * run this protocol when it is not able to retrieve an existing security context, instead of
   * stopping processing the message as described in step 2 of Section 8.2". Undefined: B.2 does
   * not apply (no kid context, or no configured context with this kid allows it).
   */
  private rederivation(request: CoapMessage, directory: ContextDirectory):
    | { kind: 'answer'; response: CoapMessage }
    | { kind: 'switched'; result: Extract<UnprotectRequestResult, { ok: true }>; found: { context: OscoreSecurityContext; recipient: RecipientState } }
    | undefined {
    let kid: Uint8Array | undefined;
    let kidContext: Uint8Array | undefined;
    try {
      ({ kid, kidContext } = decodeOscoreOption(getOption(request, OptionNumber.Oscore)!));
    } catch {
      return undefined;
    }
    if (kid === undefined || kidContext === undefined) return undefined;
    const origins = directory.rederivationOrigins(kid);
    if (origins.length === 0) return undefined;
    let failure: UnprotectRequestResult | undefined;

    // Step 4: "If the server receives a request with 'kid context' containing a CBOR bstr wrapping
    // ID3, where the first part of ID3 is identical to an R2 sent in a previous response #1, which
    // it has not received before, then the server derives a third security context with ID Context
    // = ID3." "Which it has not received before": R2 leaves the cache once a request #2 with it
    // verifies, and a replay then meets the third context's replay window ("The server MUST NOT
    // accept replayed request #2 messages").
    const wrapped = unwrapB2KidContext(kidContext);
    const r2 = wrapped && r2Of(wrapped);
    for (const origin of r2 ? origins : []) {
      const key = cacheKey(origin, kid);
      if (!this.r2s.has(key, r2!)) continue;
      const third = origin.derive(wrapped!, kid);
      const recipient = third.recipient(kid, wrapped)!;
      const result = unprotectRequest(request, () => recipient.params);
      if (!result.ok) {
        // "If verification fails in any step, the endpoint stops processing that message."
        failure = result;
        continue;
      }
      // "If the server can verify the request ... with the third security context, then the server
      // marks the third security context to be used with this client and removes all instances of
      // R2 associated to this security context from the cache. This security context replaces the
      // previous security context with the client, and the first and the second security contexts
      // are deleted. The server responds using the same security context as in the request."
      // The new replay window starts empty; this request's Partial IV is accepted by the caller.
      this.r2s.clear(key);
      directory.replace(kid, third);
      return { kind: 'switched', result, found: { context: third, recipient } };
    }

    // Step 2: "If the server is able to verify the request ... with the new derived first security
    // context using the received ID1 (transported in 'kid context') as ID Context and the input
    // parameters associated to the received 'kid', then the server generates a random string R2
    // and derives a second security context with ID Context = ID2 = R2 || ID1." With several
    // configured contexts for this kid, each is tried (§3.3: "may need to try multiple times").
    // ID1 is R1 unwrapped from the CBOR bstr of a client-initiated request #1 (step 1), or — from a
    // client that has not started B.2 — the ID Context of an ordinary request (§5.1) that this
    // server has lost, e.g. an ID3 derived before a restart ("the server has lost part of its
    // security context, e.g., ID Context"). Verification tells which.
    const candidates = wrapped !== undefined ? [wrapped, kidContext] : [kidContext];
    for (const origin of origins) {
      for (const id1 of candidates) {
        const derived = deriveFirst(origin, kid, id1);
        const result = unprotectRequest(request, () => derived);
        if (!result.ok) {
          failure = result;
          continue;
        }
        return { kind: 'answer', response: this.responseOne(origin, origin.recipient(kid)!, kid, id1, result.binding) };
      }
    }
    return failure && !failure.ok ? { kind: 'answer', response: errorMessage(failure) } : undefined;
  }

  /**
   * Step 2, the answer to a verified request #1: "The server sends a 4.01 (Unauthorized) response
   * protected with the second security context, containing R2 wrapped in a CBOR bstr as 'kid
   * context', and caches R2. R2 MUST NOT be reused as that may lead to reuse of key and nonce in
   * response #1." The response uses the request's nonce (no Partial IV): its key, from ID2 with a
   * fresh R2, protects this one message only.
   */
  private responseOne(origin: OscoreSecurityContext, recipient: RecipientState, kid: Uint8Array, id1: Uint8Array | undefined, binding: RequestBinding): CoapMessage {
    const r2 = newB2Nonce(B2_NONCE_LENGTH);
    if (!this.r2s.add(cacheKey(origin, kid), r2)) {
      // B.2.1: "If the server receives a request #1 and is not capable of executing it then it may
      // respond with an unprotected 5.03 (Service Unavailable) error message."
      const busy = errorMessage({ code: ResponseCode.ServiceUnavailable, reason: 'Too many security context derivations in progress' });
      const seconds = Math.ceil(this.r2s.msUntilSpace() / 1000);
      return { ...busy, options: busy.options.map((o) => (o.number === OptionNumber.MaxAge ? { number: o.number, value: encodeUint(seconds) } : o)) };
    }
    const second = origin.derive(secondIdContext(r2, id1), recipient.params.recipientId);
    const unauthorized: CoapMessage = { type: MessageType.ACK, code: ResponseCode.Unauthorized, messageId: 0, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES };
    return withResponseKidContext(protectResponse(unauthorized, second.sender, binding), r2);
  }
}

/** The inner response of a B.1.2 challenge: a 4.01 "containing only the Echo option ... and no diagnostic payload". */
export function echoChallenge(echo: Uint8Array): CoapMessage {
  return { type: MessageType.ACK, code: ResponseCode.Unauthorized, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.Echo, value: echo }], payload: EMPTY_BYTES };
}

/** Step 2's "first security context": ID Context = ID1, only the Recipient Context is needed. */
function deriveFirst(origin: OscoreSecurityContext, kid: Uint8Array, id1: Uint8Array) {
  return origin.derive(id1, kid).recipient(kid)!.params;
}

const contextIds = new WeakMap<OscoreSecurityContext, number>();
let nextContextId = 0;
function contextId(context: OscoreSecurityContext): number {
  let id = contextIds.get(context);
  if (id === undefined) contextIds.set(context, (id = nextContextId++));
  return id;
}

function cacheKey(origin: OscoreSecurityContext, kid: Uint8Array): string {
  return `${contextId(origin)}/${hex(kid)}`;
}

/**
 * Whom an Echo value is bound to: one recipient of one context instance (its kid, and through the
 * instance its ID Context and keys), so a value cannot be moved to another context or recipient.
 */
function echoIdentity(context: OscoreSecurityContext, recipient: RecipientState): string {
  return `oscore-b.1.2\0${contextId(context)}\0${recipient.kidHex}`;
}

/** Settles undefined when `waiting` succeeds, else with the 5.03 to send (the store's details go to its onError, not to the client). */
function settled(waiting: Promise<unknown>): Promise<CoapMessage | undefined> {
  return waiting.then(
    () => undefined,
    () => storeUnavailable(),
  );
}

/** The store cannot answer now: 5.03, and Max-Age 0 — retrying soon may succeed. */
function storeUnavailable(): CoapMessage {
  return errorMessage({ code: ResponseCode.ServiceUnavailable, reason: 'OSCORE context store unavailable' });
}

function errorMessage(failure: { code: number; reason: string }): CoapMessage {
  return { type: MessageType.ACK, messageId: 0, token: EMPTY_BYTES, ...errorResponseParts(failure) };
}
