/**
 * EDHOC on a CoAP server: the Responder of the forward message flow (RFC 9528 App. A.2.1, RFC
 * 9668 §3.3) and, with `initiator` configured, the Initiator of the reverse flow (A.2.2: an empty
 * POST asks for message_1, C_I || message_2 is answered with message_3). It holds the resource at
 * /.well-known/edhoc, the sessions between the first message and the last, and the OSCORE contexts they
 * establish, installed next to the server's other contexts. It is the server's ServerSecurity:
 * requests whose kid names an EDHOC context are unprotected with it, every other OSCORE request
 * goes to the security the server had before (`fallback`), and the combined request of RFC 9668
 * comes in through `completeEdhoc` (stages/edhoc-combined.ts).
 *
 * Bounded state (a peer makes us allocate it): at most `maxSessions` sessions waiting for
 * message_3 (forward) or message_2 (reverse), each dropped `sessionLifetimeMs` after our last
 * message (a later message gets EDHOC error 1 with 4.00); a message_1 beyond the limit gets EDHOC error 1 with 5.00 and costs nothing. A
 * message_1 equal to one whose session is still waiting (a replay, or a client's own repetition)
 * gets the same message_2 again — no new state and never a second, different message_2 (RFC 9528
 * §7). At most `maxContexts` EDHOC contexts, the one installed first dropped first (its client
 * gets 4.01 and runs EDHOC again); they are held as bytes and materialised on use, so a server can
 * keep one per device (issue 21; installed-contexts.ts).
 */
import { ContentFormat } from '../coap/content-format.js';
import { ResponseCode } from '../coap/codes.js';
import { getOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { PeerCredential } from '../edhoc/credentials.js';
import type { EadItem } from '../edhoc/ead.js';
import { EdhocConfigError, EdhocError, unspecified } from '../edhoc/errors.js';
import { EdhocInitiator, type InitiatorConfig, type InitiatorWaitM2 } from '../edhoc/initiator.js';
import { EdhocResponder, type ResponderConfig, type ResponderWaitM3 } from '../edhoc/responder.js';
import type { EdhocSession } from '../edhoc/session.js';
import { findCipherSuite } from '../edhoc/suites.js';
import type { EndpointContext } from '../exchange/context.js';
import { answerOf, kudosEad2After, kudosEad3, kudosEadAsk, type KudosSupport } from '../kudos/edhoc-ead.js';
import { decodeOscoreOption } from '../oscore/option.js';
import type { OscoreSecurityContext, SequenceSource } from '../oscore/security-context.js';
import type { CoapRequest, CoapResponse } from '../server/resource.js';
import { OscoreServerSecurity } from '../server/oscore.js';
import { InstalledContexts } from './installed-contexts.js';
import { toMessage } from '../server/response.js';
import type { EdhocCompletion, ServerSecurity, UnprotectOutcome } from '../server/security.js';
import type { CoapServer } from '../server/server.js';
import type { Scheduler, Timer } from '../util/scheduler.js';
import { ConnectionIdentifiers, edhocOscoreParameters, maxOscoreIdLength, type EdhocContextOptions } from './oscore-context.js';
import { EDHOC_PATH, EDHOC_RESOURCE_TYPE, edhocErrorResponse, splitCombinedPayload, splitPrefixed } from './transfer.js';
import { bytesToHex as hex } from '../util/bytes.js';

export interface EdhocServerOptions extends EdhocContextOptions {
  /** Suites, methods, own credentials and the trusted peers (src/edhoc/credentials.ts). */
  readonly responder: ResponderConfig;
  /**
   * Enables the reverse message flow (A.2.2), this server being the Initiator: method, suites, own
   * credential, trusted clients. Without message_4 (the server completes on sending message_3).
   */
  readonly initiator?: InitiatorConfig;
  /** Sessions waiting for the peer's next message. Default 64. */
  readonly maxSessions?: number;
  /** How long a session waits for message_3. Default 60 s. */
  readonly sessionLifetimeMs?: number;
  /**
   * EDHOC-established OSCORE contexts kept; when full, the one installed first is dropped. Default
   * 1024. Each idle one costs a few hundred bytes (BENCHMARKS.md, h21-edhoc): 100,000 are fine.
   */
  readonly maxContexts?: number;
  /** EDHOC contexts kept materialised as objects at once (the LRU in front of the bytes). Default 1024. */
  readonly activeContexts?: number;
  /** Told the Recipient ID of each EDHOC context dropped (the bound, dropContext, a new context under its kid). */
  readonly onDropped?: (recipientId: Uint8Array) => void;
  /**
   * Send message_4 after message_3 (the application profile's choice, RFC 9528 §5.5). A combined
   * request then fails, as RFC 9668 §3.3.1 step 4 requires.
   */
  readonly message4?: boolean;
  /** The resource path. Default /.well-known/edhoc. */
  readonly path?: string;
  /**
   * Our KUDOS support, signalled in EDHOC (draft-ietf-core-oscore-key-update §4.8): as Responder we
   * answer in message_2 (asked or not) and read the client's answer in message_3; as Initiator of
   * the reverse flow we ask in message_1 and answer in message_3. Without it, no KUDOS_EAD item.
   */
  readonly kudos?: KudosSupport;
  /**
   * Called with each session completed, the OSCORE context installed for it and, with `kudos`, the
   * client's KUDOS support (NONE when it said nothing) to provision its KUDOS session with
   * (kudosSessionForEdhoc, kudos-session.ts).
   */
  readonly onEstablished?: (session: EdhocSession, context: OscoreSecurityContext, peerKudos: KudosSupport | undefined) => void;
  /**
   * Asked once message_3 has verified (the Initiator's credential authenticated, EAD_3 decrypted)
   * and before the session completes; an EdhocError thrown here ends the session with that error
   * and no context is made (the ACE EDHOC profile checks the access token of EAD_3 here).
   */
  readonly authorize?: (peer: PeerCredential, ead3: readonly EadItem[]) => void;
  /** Recipient IDs of contexts made elsewhere on this server (ACE's), which C_R must not take either. */
  readonly alsoInUse?: () => Iterable<Uint8Array>;
  /**
   * Server nodes sharing a context store (issue 26, StoredEdhocContexts): each context made is
   * numbered by `sequenceFor` (reservations no other node overlaps) and handed to `publish`, so
   * that another node serves its client when this one dies. Our connection identifiers (the
   * contexts' Recipient IDs) are then random at the longest length the suite allows, so that nodes
   * choosing them independently do not meet (RFC 9668 §4.1.2 per node becomes "per farm").
   */
  readonly sharedContexts?: SharedEdhocContexts;
}

/** Where EDHOC-made contexts go so that other server nodes find them (stored-contexts.ts). */
export interface SharedEdhocContexts {
  /** The Sender Sequence Numbers of the session's context: never one another node uses. */
  sequenceFor(session: EdhocSession): SequenceSource;
  /** Called once per context made, after it is installed here. */
  publish(session: EdhocSession, context: OscoreSecurityContext): void;
}

/** A session waiting for the client: message_3 (forward flow) or message_2 (reverse flow); keyed by our identifier. */
interface PendingSession {
  readonly connectionId: Uint8Array;
  /** Forward flow: the message_1 that started it, and our answer to repeat for a replay. */
  readonly message1Key: string;
  /** Our last message (message_2; message_1 in the reverse flow). */
  readonly sent: Uint8Array;
  readonly state: ResponderWaitM3 | InitiatorWaitM2;
  readonly timer: Timer;
}

export class EdhocServer implements ServerSecurity {
  readonly #options: EdhocServerOptions;
  readonly #fallback: ServerSecurity;
  readonly #scheduler: Scheduler;
  readonly #sessions = new Map<string, PendingSession>();
  readonly #sessionByMessage1 = new Map<string, PendingSession>();
  readonly #contexts: InstalledContexts;
  readonly #ids: ConnectionIdentifiers;

  /**
   * `fallback`: the server's other OSCORE contexts (default none). C_R is never the Recipient ID
   * of one of its contexts without ID Context (RFC 9668 §4.1.2), so kids never collide.
   */
  constructor(options: EdhocServerOptions, scheduler: Scheduler, fallback?: ServerSecurity) {
    this.#options = options;
    this.#scheduler = scheduler;
    this.#fallback = fallback ?? new OscoreServerSecurity([]);
    this.#contexts = new InstalledContexts({
      max: options.maxContexts ?? 1024,
      ...(options.activeContexts !== undefined ? { active: options.activeContexts } : {}),
      now: () => scheduler.now(),
      ...(options.onDropped ? { onDropped: options.onDropped } : {}),
    });
    const configured = fallback instanceof OscoreServerSecurity ? fallback : undefined;
    // Asked per candidate, not listed per handshake: the configured contexts may be one per device
    // (issue 21), most of them idle in a ContextTable, which `contexts` does not list.
    this.#ids = new ConnectionIdentifiers(
      () => options.alsoInUse?.() ?? [],
      (id) => this.#contexts.has(id) || (configured?.hasKid(id) ?? false),
    );
  }

  /**
   * Serves EDHOC on `server`: the resource (POST, rt core.edhoc), and this object as its security,
   * in front of the security it had.
   */
  static attach(server: CoapServer, options: EdhocServerOptions): EdhocServer {
    const edhoc = new EdhocServer(options, server.endpoint.scheduler, server.security);
    server.security = edhoc;
    server.resource(options.path ?? EDHOC_PATH, { POST: (request) => edhoc.handle(request) }, { rt: EDHOC_RESOURCE_TYPE, ct: ContentFormat.CidEdhocCborSeq });
    server.onClose(() => edhoc.close());
    return edhoc;
  }

  /** Sessions waiting for the client's next message (message_3, or message_2 in the reverse flow). */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /**
   * The OSCORE contexts EDHOC established, oldest first, each materialised: for inspection; with
   * many, ask `contextCount`, `hasKid` or `peerFor`.
   */
  get contexts(): readonly OscoreSecurityContext[] {
    return this.#contexts.all();
  }

  /** How many EDHOC-established contexts are held. */
  get contextCount(): number {
    return this.#contexts.size;
  }

  /** Whether an EDHOC-established context has this Recipient ID (C_R); nothing is materialised. */
  hasKid(kid: Uint8Array): boolean {
    return this.#contexts.has(kid);
  }

  /** The peer EDHOC authenticated for the context with this Recipient ID. */
  peerFor(kid: Uint8Array): PeerCredential | undefined {
    return this.#contexts.peerFor(kid);
  }

  /**
   * The EDHOC resource's POST handler: message_1 (prefix `true`) or message_3 (prefix C_R); in
   * the reverse flow an empty request (→ message_1) or message_2 (prefix C_I).
   */
  handle(request: CoapRequest): CoapResponse {
    if (request.payload.length === 0 && this.#options.initiator !== undefined) {
      try {
        return this.#startReverse(this.#options.initiator);
      } catch (e) {
        return errorResponse(e);
      }
    }
    if (request.contentFormat !== ContentFormat.CidEdhocCborSeq) {
      return { code: ResponseCode.UnsupportedContentFormat, payload: 'EDHOC requests are application/cid-edhoc+cbor-seq (65)' };
    }
    try {
      const prefixed = splitPrefixed(request.payload);
      if (prefixed.kind === 'message_1') return this.#message1(prefixed.message);
      const { message4, message3 } = this.#sessionMessage(prefixed.connectionId, prefixed.message, false);
      const answer = message4 ?? message3;
      return answer !== undefined ? { code: ResponseCode.Changed, payload: answer, contentFormat: ContentFormat.EdhocCborSeq } : { code: ResponseCode.Changed };
    } catch (e) {
      return errorResponse(e);
    }
  }

  /**
   * RFC 9668 §3.3.1 steps 1–7 (the stage has seen the EDHOC option): C_R is the OSCORE kid,
   * message_3 the leading byte string of the payload; the rest is the OSCORE ciphertext.
   */
  completeEdhoc(request: CoapMessage): EdhocCompletion {
    const oscore = getOption(request, OptionNumber.Oscore);
    const parts = splitCombinedPayload(request.payload);
    let kid: Uint8Array | undefined;
    try {
      kid = oscore && decodeOscoreOption(oscore).kid;
    } catch {
      kid = undefined;
    }
    // Step 1: without OSCORE (and a kid to take C_R from) or without a COMB_PAYLOAD: 4.00.
    if (kid === undefined || parts === undefined) return { ok: false, response: toMessage({ code: ResponseCode.BadRequest, payload: 'not an EDHOC + OSCORE request' }) };
    try {
      this.#sessionMessage(kid, parts.message3, true);
    } catch (e) {
      // "responds with an EDHOC error message with error code 1"; unprotected, Content-Format 64.
      const error = e instanceof EdhocError && e.code !== 1 ? unspecified(e.message) : e;
      return { ok: false, response: toMessage(errorResponse(error)) };
    }
    return { ok: true, request: { ...request, payload: parts.oscorePayload, options: request.options.filter((o) => o.number !== OptionNumber.Edhoc) } };
  }

  /** A kid none of our EDHOC contexts has may be one the fallback fetches from a context store first. */
  prepare(request: CoapMessage, context: EndpointContext): Promise<CoapMessage | undefined> | undefined {
    if (getOption(request, OptionNumber.Oscore) === undefined || this.#installedFor(request)) return undefined;
    return this.#fallback.prepare?.(request, context);
  }

  unprotect(request: CoapMessage, context: EndpointContext): UnprotectOutcome | undefined {
    if (getOption(request, OptionNumber.Oscore) === undefined) return undefined;
    return (this.#installedFor(request) ? this.#contexts.security : this.#fallback).unprotect(request, context);
  }

  /** Forgets an EDHOC-made context (its client gets 4.01 and runs EDHOC again); false if it was not installed here. */
  dropContext(context: OscoreSecurityContext): boolean {
    return this.#contexts.drop(context);
  }

  /**
   * @internal What a completed handshake does (message_3 verified, or message_2 in the reverse
   * flow): the session's OSCORE context installed, published to the shared store, announced.
   * Benchmarks install contexts through it from sessions made without a handshake.
   */
  installSession(edhoc: EdhocSession, peerKudos?: KudosSupport): OscoreSecurityContext {
    const shared = this.#options.sharedContexts;
    const sequence = shared !== undefined ? shared.sequenceFor(edhoc) : this.#options.sequence?.(edhoc);
    const context = this.#contexts.install(edhocOscoreParameters(edhoc, this.#options), sequence, edhoc.peer);
    shared?.publish(edhoc, context);
    this.#options.onEstablished?.(edhoc, context, peerKudos);
    return context;
  }

  /** Drops every waiting session (their timers included). */
  close(): void {
    for (const session of [...this.#sessions.values()]) this.#endSession(session);
  }

  #message1(message1: Uint8Array): CoapResponse {
    const key = hex(message1);
    const repeated = this.#sessionByMessage1.get(key);
    if (repeated !== undefined) return { code: ResponseCode.Changed, payload: repeated.sent, contentFormat: ContentFormat.EdhocCborSeq };
    if (this.#sessions.size >= (this.#options.maxSessions ?? 64)) throw new ServerBusy('too many EDHOC sessions in progress');
    const processed = new EdhocResponder(this.#options.responder).processMessage1(message1);
    const longest = maxOscoreIdLength({ suite: findCipherSuite(processed.suite)! });
    if (processed.connectionIdI.length > longest) throw unspecified(`C_I is longer than the ${longest} bytes of an OSCORE Recipient ID`);
    const connectionId = this.#ids.allocate(longest, processed.connectionIdI, this.#shortestConnectionId(longest));
    let prepared;
    try {
      const own = this.#options.kudos;
      prepared = processed.prepareMessage2({ connectionId, ...(own !== undefined ? { ead: kudosEad2After(processed.ead1, own) } : {}) });
    } catch (e) {
      this.#ids.release(connectionId);
      throw e;
    }
    this.#keep({ connectionId, message1Key: key, sent: prepared.message, state: prepared.state });
    return { code: ResponseCode.Changed, payload: prepared.message, contentFormat: ContentFormat.EdhocCborSeq };
  }

  /**
   * The client's second message of a waiting session — message_3 (forward flow) or message_2
   * (reverse flow); the session ends here whatever the outcome (RFC 9528 §5.4.3: errors abort it).
   */
  #sessionMessage(connectionId: Uint8Array, message3: Uint8Array, combined: boolean): { message4?: Uint8Array; message3?: Uint8Array } {
    const session = this.#sessions.get(hex(connectionId));
    if (session === undefined) throw unspecified('no EDHOC session with this connection identifier');
    this.#endSession(session);
    if (!('processMessage3' in session.state)) return this.#reverseMessage2(session.state, message3, combined);
    if (combined && this.#options.message4 === true) throw unspecified('this application profile sends message_4; the EDHOC + OSCORE request does not apply');
    const processed = session.state.processMessage3(message3);
    this.#options.authorize?.(processed.peer, processed.ead3);
    let edhoc: EdhocSession;
    let message4: Uint8Array | undefined;
    if (!combined && this.#options.message4 === true) ({ session: edhoc, message: message4 } = processed.prepareMessage4());
    else edhoc = processed.complete();
    this.installSession(edhoc, this.#options.kudos !== undefined ? answerOf(processed.ead3, 3) : undefined);
    return message4 !== undefined ? { message4 } : {};
  }

  /** A.2.2: an empty POST; message_1 with a C_I of ours goes back in the 2.04. */
  #startReverse(config: InitiatorConfig): CoapResponse {
    if (this.#sessions.size >= (this.#options.maxSessions ?? 64)) throw new ServerBusy('too many EDHOC sessions in progress');
    const initiator = new EdhocInitiator(config);
    const suite = findCipherSuite(config.selectedSuite ?? config.suites[0]!)!;
    const longest = maxOscoreIdLength({ suite });
    const connectionId = this.#ids.allocate(longest, undefined, this.#shortestConnectionId(longest));
    const { state, message } = initiator.prepareMessage1({ connectionId, ...(this.#options.kudos !== undefined ? { ead: [kudosEadAsk()] } : {}) });
    this.#keep({ connectionId, message1Key: '', sent: message, state });
    return { code: ResponseCode.Changed, payload: message, contentFormat: ContentFormat.EdhocCborSeq };
  }

  /** A.2.2: C_I || message_2 from the client; message_3 in the 2.04, and the context from here on. */
  #reverseMessage2(state: InitiatorWaitM2, message2: Uint8Array, combined: boolean): { message4?: Uint8Array; message3?: Uint8Array } {
    // RFC 9668 §3: the combined request exists in the forward flow only.
    if (combined) throw unspecified('no forward-flow EDHOC session with this connection identifier');
    const processed = state.processMessage2(message2);
    const own = this.#options.kudos;
    const peerKudos = own !== undefined ? answerOf(processed.ead2, 2) : undefined;
    const { state: sent, message } = processed.prepareMessage3(own !== undefined ? { ead: kudosEad3(own, peerKudos) } : {});
    this.installSession(sent.complete(), peerKudos);
    return { message3: message };
  }

  #installedFor(request: CoapMessage): boolean {
    try {
      const { kid, kidContext } = decodeOscoreOption(getOption(request, OptionNumber.Oscore)!);
      return kid !== undefined && kidContext === undefined && this.#contexts.has(kid);
    } catch {
      return false; // A malformed option: the fallback gives RFC 8613 §8.2's answer.
    }
  }

  #shortestConnectionId(longest: number): number {
    return this.#options.sharedContexts !== undefined ? longest : 1;
  }

  #keep(entry: Omit<PendingSession, 'timer'>): void {
    const session: PendingSession = { ...entry, timer: this.#scheduler.schedule(this.#options.sessionLifetimeMs ?? 60_000, () => this.#endSession(session)) };
    this.#sessions.set(hex(entry.connectionId), session);
    if (entry.message1Key !== '') this.#sessionByMessage1.set(entry.message1Key, session);
  }

  #endSession(session: PendingSession): void {
    session.timer.cancel();
    this.#sessions.delete(hex(session.connectionId));
    if (session.message1Key !== '') this.#sessionByMessage1.delete(session.message1Key);
    this.#ids.release(session.connectionId);
  }
}

/** A server-side reason to refuse (sent as EDHOC error 1 with 5.00, A.2.3). */
class ServerBusy extends EdhocConfigError {}

/**
 * A.2.3: a peer's bad message is a client error (4.00); our own limits or a failure on our side
 * a server error (5.00), with a diagnostic that says nothing about keys (RFC 9528 §9.5).
 */
function errorResponse(e: unknown): CoapResponse {
  if (e instanceof EdhocError) return edhocErrorResponse(e, 'client');
  if (e instanceof ServerBusy) return edhocErrorResponse(unspecified(e.message), 'server');
  return edhocErrorResponse(unspecified('EDHOC processing failed on the server'), 'server');
}
