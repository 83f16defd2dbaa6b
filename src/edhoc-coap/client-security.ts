/**
 * OSCORE with one server, its context made by EDHOC on demand: a MessageSecurity
 * (client/security.ts) that runs EDHOC before the first protected request, sends message_3
 * inside that request (the EDHOC + OSCORE request, RFC 9668 §3.2.1), and runs EDHOC again when
 * the server has lost the context.
 *
 * - **One handshake at a time.** Requests that need a context while one is being made wait for
 *   it. While the combined request is outstanding, other requests wait for its outcome: the
 *   server knows the context only once message_3 has arrived (§3.2.1: at most one outstanding
 *   combined request per C_R).
 * - **Sequential fallback.** With `combined: false`, with message_4 (§3.3.1 step 4: the combined
 *   request then fails), for a request whose COMB_PAYLOAD would exceed MAX_UNFRAGMENTED_SIZE
 *   (§3.2.2 B) and for a non-first Block1 block (§3.2.2 A), message_3 goes in its own POST.
 * - **A lost context** (RFC 8613 §8.2: the server answers an unprotected 4.01, "Security context
 *   not found", e.g. after a restart; or an unprotected 4.00, when a restarted server gave our
 *   kid to another client): the context is dropped and the request is repeated once under a new
 *   EDHOC session. The server processed nothing (it could not decrypt), so repeating is safe.
 *   An attacker can forge such an answer, and so make us run EDHOC again — as it could drop our
 *   requests; at most once per request.
 * - **EDHOC errors** (an unprotected answer with Content-Format 64) fail the request with
 *   EdhocRequestError naming the peer's error; the next request starts a new session.
 */
import { EMPTY_BYTES, getOption, getUintOption, sortOptions, type CoapMessage } from '../coap/message.js';
import { ContentFormat } from '../coap/content-format.js';
import { ResponseCode } from '../coap/codes.js';
import { OptionNumber } from '../coap/options.js';
import { readBlockOption } from '../coap/block.js';
import type { SendRequest } from '../client/blockwise.js';
import { protectWith } from '../client/oscore.js';
import type { HopSecurity } from '../client/route.js';
import { MAX_UNFRAGMENTED_SIZE, type MessageSecurity, type ProtectedRequest } from '../client/security.js';
import type { EadItem } from '../edhoc/ead.js';
import { EdhocPeerError, parseErrorMessage } from '../edhoc/errors.js';
import type { InitiatorConfig } from '../edhoc/initiator.js';
import { EdhocResponder, type ResponderConfig } from '../edhoc/responder.js';
import { findCipherSuite } from '../edhoc/suites.js';
import type { EdhocSession } from '../edhoc/session.js';
import { CoapRequestError } from '../exchange/errors.js';
import { answerOf, kudosEad2After, kudosEad3, kudosEadAsk, type KudosSupport } from '../kudos/edhoc-ead.js';
import { OscoreRequester } from '../oscore/requester.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import type { ClassOf } from '../oscore/protect.js';
import { exchangeMessages12, expectChanged, type EdhocPost } from './handshake.js';
import { ConnectionIdentifiers, edhocOscoreContext, maxOscoreIdLength, type EdhocContextOptions } from './oscore-context.js';
import { combinePayload, prefixWithIdentifier } from './transfer.js';

export interface EdhocClientOptions extends EdhocContextOptions {
  /** Method, suites, own credential and trusted peers (src/edhoc/credentials.ts): this client is the Initiator. */
  readonly initiator?: InitiatorConfig;
  /**
   * Instead of `initiator`: the reverse message flow (RFC 9528 App. A.2.2), this client being the
   * Responder — it protects the client's identity against passive attackers only, the server's
   * against active ones (choose by whose identity matters more, §9). No combined request (RFC 9668
   * §3 applies to the forward flow) and no message_4.
   */
  readonly responder?: ResponderConfig;
  /** How EDHOC messages reach the server's EDHOC resource (postOverClient, postOverEndpoint). */
  readonly post: EdhocPost;
  /** Send message_3 with the first OSCORE request (RFC 9668). Default true, unless `message4`. */
  readonly combined?: boolean;
  /** The server sends message_4 (the application profile's choice): message_3 goes alone and message_4 is verified. */
  readonly message4?: boolean;
  /** C_I values in use by this client, shared by its sessions with all servers (RFC 9668 §4.1.1). */
  readonly connectionIds?: ConnectionIdentifiers;
  /**
   * Our KUDOS support, signalled in EDHOC (draft-ietf-core-oscore-key-update §4.8): as Initiator we
   * ask in message_1 and answer in message_3; in the reverse flow we answer when asked. The
   * server's answer is `peerKudos`. Without it, no KUDOS_EAD item is sent.
   */
  readonly kudos?: KudosSupport;
  /** More EAD_3 items to send (forward flow), e.g. the ACE access token (draft-ietf-ace-edhoc-oscore-profile §4.1); a function is asked at each run. */
  readonly ead3?: readonly EadItem[] | (() => readonly EadItem[]);
}

/** A request failed because EDHOC failed; `peerError` is the server's EDHOC error, when it sent one. */
export class EdhocRequestError extends CoapRequestError {
  constructor(
    message: string,
    readonly peerError?: EdhocPeerError,
  ) {
    super(message);
    this.name = 'EdhocRequestError';
  }
}

/** The longest C_I we choose: the shortest OSCORE ID limit of any AEAD (12-byte nonces: 6 bytes). */
const MAX_CONNECTION_ID = 6;
/** Room for the OSCORE option, the other options and the tag next to message_3 and the payload. */
const COMBINED_OVERHEAD = 256;

interface Established {
  readonly session: EdhocSession;
  readonly context: OscoreSecurityContext;
  readonly requester: OscoreRequester;
  /** Our connection identifier: C_I, or C_R in the reverse flow; the context's Recipient ID. */
  readonly ownConnectionId: Uint8Array;
  /** What the server signalled of its KUDOS support (§4.8), when we signal ours. */
  readonly peerKudos: KudosSupport | undefined;
  /** message_3 while the server has not received it. */
  message3: Uint8Array | undefined;
  /** Settles when the outstanding combined request (or message_3 POST) has an outcome. */
  delivering: Promise<void> | undefined;
}

interface Sending {
  readonly established: Established;
  /** This request carries message_3; `settle` ends the wait of the requests behind it. */
  readonly combined: boolean;
  readonly settle: () => void;
  /** An unprotected answer that says the server cannot use the context (see isContextFailure). */
  failure?: CoapMessage;
}

export class EdhocClientSecurity implements MessageSecurity, HopSecurity {
  readonly #options: EdhocClientOptions;
  readonly #ids: ConnectionIdentifiers;
  #current: Established | undefined;
  #handshake: Promise<Established> | undefined;
  #handshakes = 0;
  /** Per request being sent: the session it is protected with, and whether it carries message_3. */
  readonly #sending = new WeakMap<CoapMessage, Sending>();

  constructor(options: EdhocClientOptions) {
    if ((options.initiator === undefined) === (options.responder === undefined)) throw new TypeError('EdhocClientSecurity needs either initiator or responder');
    this.#options = options;
    this.#ids = options.connectionIds ?? new ConnectionIdentifiers();
  }

  /** The OSCORE context in use, if any. */
  get context(): OscoreSecurityContext | undefined {
    return this.#current?.context;
  }

  /** The EDHOC session behind it: the server's authenticated credential is `session.peer`. */
  get session(): EdhocSession | undefined {
    return this.#current?.session;
  }

  /**
   * The server's KUDOS support as it signalled it in this EDHOC session (§4.8; NONE when it said
   * nothing), with `kudos` set; kudosSessionForEdhoc (kudos-session.ts) provisions the KUDOS
   * session of the context with it.
   */
  get peerKudos(): KudosSupport | undefined {
    return this.#current?.peerKudos;
  }

  /** EDHOC sessions run so far (message_1 sent and message_2 verified). */
  get handshakes(): number {
    return this.#handshakes;
  }

  /**
   * Runs EDHOC now (message_3 in its own POST) unless a context is in use, and returns the
   * context. Needed before an observation, whose registration is protected outside securedSender.
   */
  async establish(): Promise<OscoreSecurityContext> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const established = await this.#ensure();
      if (established.message3 === undefined) return established.context;
      await (established.delivering ?? this.#deliverMessage3(established));
    }
    throw new EdhocRequestError('EDHOC could not be completed');
  }

  around(exchange: SendRequest): SendRequest {
    const run = async (inner: CoapMessage, retried: boolean): Promise<Awaited<ReturnType<SendRequest>>> => {
      const established = await this.#prepare(inner);
      const sending = this.#sending.get(inner)!;
      try {
        const response = await exchange(inner);
        // A verified OSCORE response: the server completed EDHOC and holds the context.
        if (sending.combined) established.message3 = undefined;
        return response;
      } catch (error) {
        const failure = sending.failure;
        if (sending.combined || (failure !== undefined && !retried)) this.#drop(established);
        if (failure !== undefined && getUintOption(failure, OptionNumber.ContentFormat) === ContentFormat.EdhocCborSeq) {
          const peerError = parseErrorMessage(failure.payload);
          throw new EdhocRequestError(`EDHOC with the server failed: ${peerError.message}`, peerError);
        }
        if (failure === undefined || retried) throw error;
      } finally {
        this.#sending.delete(inner);
        if (sending.combined) {
          established.delivering = undefined;
          sending.settle();
        }
      }
      // The server could not use the context: once more, under a new session.
      return run(inner, true);
    };
    return (inner) => run(inner, false);
  }

  protect(request: CoapMessage): ProtectedRequest {
    return this.#protect(request, request);
  }

  /**
   * As one hop's layer of a route (client/route.ts): `message` is what the layers nearer the
   * origin made of `exchange`, the request `around` prepared; a combined request's EDHOC option
   * stays outside this layer, the hop consuming it (RFC 9668 §3.1; draft-ietf-core-oscore-capable-
   * proxies Appendix B.5).
   */
  protectLayer(message: CoapMessage, classOf: ClassOf, exchange: CoapMessage): ProtectedRequest {
    return this.#protect(message, exchange, classOf);
  }

  #protect(request: CoapMessage, exchange: CoapMessage, classOf?: ClassOf): ProtectedRequest {
    const sending = this.#sending.get(exchange);
    const established = sending?.established ?? this.#current;
    if (established === undefined || (established.message3 !== undefined && sending?.combined !== true)) {
      throw new EdhocRequestError('no EDHOC session with this server yet: call establish() first');
    }
    const inner = protectWith(established.requester, request, classOf);
    let message = inner.message;
    if (sending?.combined === true) {
      // RFC 9668 §3.2.1 steps 3–5: COMB_PAYLOAD, and the (empty) EDHOC option; C_R is the kid.
      message = { ...message, payload: combinePayload(established.message3!, message.payload), options: sortOptions([...message.options, { number: OptionNumber.Edhoc, value: EMPTY_BYTES }]) };
    }
    return {
      message,
      ordersNotifications: inner.ordersNotifications,
      describe: (context) => inner.describe(context),
      verify: (response, notification) => {
        const verified = inner.verify(response, notification);
        if (verified instanceof Error && sending !== undefined && isContextFailure(response)) sending.failure = response;
        return verified;
      },
    };
  }

  /** The session `inner` goes out with, and whether it carries message_3. */
  async #prepare(inner: CoapMessage): Promise<Established> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const established = await this.#ensure();
      if (established.message3 === undefined) {
        this.#sending.set(inner, { established, combined: false, settle: () => {} });
        return established;
      }
      if (established.delivering !== undefined) {
        await established.delivering;
        continue;
      }
      if (this.#mayCombine(established, inner)) {
        // Claimed before any await: a concurrent request sees `delivering` and waits behind this one.
        let settle = (): void => {};
        established.delivering = new Promise((resolve) => (settle = resolve));
        this.#sending.set(inner, { established, combined: true, settle });
        return established;
      }
      await this.#deliverMessage3(established);
    }
    throw new EdhocRequestError('EDHOC could not be completed');
  }

  #mayCombine(established: Established, inner: CoapMessage): boolean {
    if (this.#options.combined === false || this.#options.message4 === true) return false;
    const block1 = readBlockOption(inner, OptionNumber.Block1);
    if (block1 !== undefined && block1.num > 0) return false; // §3.2.2 A
    return established.message3!.length + inner.payload.length + COMBINED_OVERHEAD <= MAX_UNFRAGMENTED_SIZE; // §3.2.2 B
  }

  /** The sequential flow's second POST: C_R || message_3, answered by 2.04. */
  #deliverMessage3(established: Established): Promise<void> {
    const message3 = established.message3!;
    const delivering = this.#options
      .post(prefixWithIdentifier(established.session.connectionIdR, message3))
      .then(
        (reply) => {
          expectChanged(reply, 'message_3');
          established.message3 = undefined;
        },
        (error: unknown) => {
          this.#drop(established);
          throw error;
        },
      )
      .finally(() => (established.delivering = undefined));
    established.delivering = delivering.catch(() => {});
    return delivering;
  }

  #ensure(): Promise<Established> {
    if (this.#current !== undefined) return Promise.resolve(this.#current);
    this.#handshake ??= this.#run().then(
      (established) => {
        this.#handshake = undefined;
        this.#current = established;
        return established;
      },
      (error: unknown) => {
        this.#handshake = undefined;
        throw error;
      },
    );
    return this.#handshake;
  }

  async #run(): Promise<Established> {
    const options = this.#options;
    if (options.responder !== undefined) return this.#runReverse(options.responder);
    const connectionIdI = this.#ids.allocate(MAX_CONNECTION_ID);
    try {
      const own = options.kudos;
      const processed = await exchangeMessages12(options.initiator!, options.post, connectionIdI, own !== undefined ? [kudosEadAsk()] : []);
      this.#handshakes++;
      const peerKudos = own !== undefined ? answerOf(processed.ead2, 2) : undefined;
      const { state, message: message3 } = processed.prepareMessage3({ ead: [...(own !== undefined ? kudosEad3(own, peerKudos) : []), ...(typeof options.ead3 === 'function' ? options.ead3() : (options.ead3 ?? []))] });
      let session: EdhocSession;
      let pending: Uint8Array | undefined;
      if (options.message4 === true) {
        const reply = await options.post(prefixWithIdentifier(processed.connectionIdR, message3));
        session = state.processMessage4(expectChanged(reply, 'message_3'));
      } else {
        // Key confirmation comes with the first verified OSCORE response (RFC 9528 §5.4.2).
        session = state.complete();
        pending = message3;
      }
      const context = edhocOscoreContext(session, options);
      return { session, context, requester: new OscoreRequester(context), ownConnectionId: connectionIdI, peerKudos, message3: pending, delivering: undefined };
    } catch (error) {
      this.#ids.release(connectionIdI);
      throw error;
    }
  }

  /** A.2.2: an empty POST brings message_1; C_I || message_2 brings message_3. */
  async #runReverse(config: ResponderConfig): Promise<Established> {
    const message1 = expectChanged(await this.#options.post(EMPTY_BYTES), 'the request for message_1');
    const processed = new EdhocResponder(config).processMessage1(message1);
    const connectionIdR = this.#ids.allocate(maxOscoreIdLength({ suite: findCipherSuite(processed.suite)! }), processed.connectionIdI);
    try {
      const own = this.#options.kudos;
      const { state, message: message2 } = processed.prepareMessage2({ connectionId: connectionIdR, ...(own !== undefined ? { ead: kudosEad2After(processed.ead1, own) } : {}) });
      const reply = await this.#options.post(prefixWithIdentifier(processed.connectionIdI, message2));
      const processed3 = state.processMessage3(expectChanged(reply, 'message_2'));
      const session = processed3.complete();
      this.#handshakes++;
      const context = edhocOscoreContext(session, this.#options);
      const peerKudos = own !== undefined ? answerOf(processed3.ead3, 3) : undefined;
      return { session, context, requester: new OscoreRequester(context), ownConnectionId: connectionIdR, peerKudos, message3: undefined, delivering: undefined };
    } catch (error) {
      this.#ids.release(connectionIdR);
      throw error;
    }
  }

  #drop(established: Established): void {
    if (this.#current !== established) return;
    this.#current = undefined;
    this.#ids.release(established.ownConnectionId);
  }
}

/**
 * An unprotected answer saying the server cannot use our context: RFC 8613 §8.2's 4.01 (no
 * context for the kid) or 4.00 (decryption failed), or an EDHOC error message (RFC 9668 §3.3.1).
 */
function isContextFailure(response: CoapMessage): boolean {
  if (getOption(response, OptionNumber.Oscore) !== undefined) return false;
  return response.code === ResponseCode.Unauthorized || response.code === ResponseCode.BadRequest;
}
