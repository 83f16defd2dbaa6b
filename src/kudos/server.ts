/**
 * KUDOS on the server (draft-ietf-core-oscore-key-update §4.3): a ServerSecurity that unprotects
 * the requests of its KUDOS peers with their KudosSession (and hands every other kid to
 * `fallback`), and protects the answers to them with the same session.
 *
 * - Forward flow (A.1): a divergent request (to /.well-known/kudos, well-known.ts, or to any
 *   resource) moves the session to PENDING; the response to it goes out convergent, and the
 *   client's next request under CTX_NEW is the key confirmation.
 * - Reverse flow (A.2), started here with `startKudos(peer)` or by the policy: the next response
 *   to the peer goes out divergent (BUSY). Until the client's convergent request arrives, its other
 *   requests are held by the kudos-gate stage (server/stages/kudos-gate.ts, §4.3.7), in a bounded
 *   queue, and released when the update completes or — after `busyTimeoutMs` without an answer —
 *   is abandoned on CTX_OLD.
 *
 * A peer whose requests failed decryption up to the integrity limit of its key (integrity.ts)
 * gets no request processed under that key any more: its next verified request is answered with
 * a divergent 4.01 Echo challenge, which starts the update; the repeated request goes under CTX_NEW.
 *
 * After a restart (a session resumed from its record) no peer context's replay window is known:
 * RFC 8613 Appendix B.1.2, as OscoreServerSecurity does for plain contexts — the first request
 * under each is answered with a protected 4.01 carrying an Echo value (stateless, keyed per
 * instance, so values from before the restart never verify: RFC 9175 §2.4) and never reaches a
 * handler; the client repeats it with the value, which sets the window.
 */
import { EMPTY_BYTES, MessageType, getOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { withOscoreLayer, type EndpointContext } from '../exchange/context.js';
import { decodeOscoreOption } from '../oscore/option.js';
import { errorResponseParts } from '../oscore/protect.js';
import { EchoFreshness } from '../server/freshness.js';
import { echoChallenge } from '../server/oscore.js';
import type { ServerSecurity, UnprotectOutcome } from '../server/security.js';
import { PeerGate } from './gate.js';
import { KudosPolicy, type KudosPolicySettings } from './policy.js';
import type { KudosSession } from './session.js';
import type { KudosEvent } from './session-types.js';
import { bytesToHex as hex } from '../util/bytes.js';

export interface KudosServerPeerConfig {
  /** The peer name handlers authorize on (the OSCORE layer's `peer`). */
  name: string;
  session: KudosSession;
  /** The peer's Sender ID: the kid of its requests. */
  recipientId: Uint8Array;
  policy?: KudosPolicySettings;
  aead?: number;
}

export interface KudosServerOptions {
  /** The OSCORE contexts that do not run KUDOS. */
  fallback?: ServerSecurity;
  /** Requests held per peer while an update we started runs (default 32), and how long each waits (default 10 s). */
  maxHeld?: number;
  holdTimeoutMs?: number;
  /** An update we started (BUSY) that got no convergent request in this time is abandoned. Default 30 s. */
  busyTimeoutMs?: number;
  /** How long the Echo value of a B.1.2 challenge is accepted. Default 60 s. */
  echoLifetimeMs?: number;
  onEvent?: (peer: string, event: KudosEvent) => void;
}

const AES_CCM_16_64_128 = 10;

class ServerPeer {
  readonly gate: PeerGate;
  readonly policy: KudosPolicy;
  /** The next response to the peer goes out divergent (the reverse flow). */
  startNext = false;
  busyTimer: NodeJS.Timeout | undefined;
  constructor(
    readonly config: KudosServerPeerConfig,
    options: KudosServerOptions,
  ) {
    this.gate = new PeerGate({ peer: config.name, ...(options.maxHeld !== undefined ? { maxHeld: options.maxHeld } : {}), ...(options.holdTimeoutMs !== undefined ? { holdTimeoutMs: options.holdTimeoutMs } : {}) });
    this.policy = new KudosPolicy(config.policy ?? {}, config.aead ?? AES_CCM_16_64_128);
  }
}

export class KudosServerSecurity implements ServerSecurity {
  readonly #peers = new Map<string, ServerPeer>();
  readonly #options: KudosServerOptions;
  /** Its key is random per instance: values issued before a restart never verify (RFC 9175 §2.4). */
  readonly #echo = new EchoFreshness(() => performance.now());

  constructor(peers: readonly KudosServerPeerConfig[], options: KudosServerOptions = {}) {
    this.#options = options;
    for (const config of peers) {
      const key = hex(config.recipientId);
      if (this.#peers.has(key)) throw new Error(`two KUDOS peers with Recipient ID ${key || '(empty)'}`);
      this.#peers.set(key, new ServerPeer(config, options));
    }
  }

  /** A peer whose context was made after the server started (an EDHOC-derived one, §4.8); replaces one with the same Recipient ID. */
  addPeer(config: KudosServerPeerConfig): void {
    this.removePeer(config.recipientId);
    this.#peers.set(hex(config.recipientId), new ServerPeer(config, this.#options));
  }

  /** Forgets the peer with this Recipient ID (its context was dropped); its held requests are released. */
  removePeer(recipientId: Uint8Array): void {
    const peer = this.#peers.get(hex(recipientId));
    if (peer === undefined) return;
    clearTimeout(peer.busyTimer);
    peer.gate.open();
    this.#peers.delete(hex(recipientId));
  }

  /** The session of a peer, by name. */
  session(name: string): KudosSession | undefined {
    return this.#byName(name)?.config.session;
  }

  /** The reverse flow (A.2): the next response to `peer` is a divergent KUDOS message. */
  startKudos(name: string): void {
    const peer = this.#byName(name);
    if (!peer) throw new Error(`no KUDOS peer named ${name}`);
    peer.startNext = true;
  }

  /**
   * §4.3.7 for the kudos-gate stage: while an update we started with the request's sender runs, its
   * non-KUDOS requests wait (a KUDOS message is the update itself and goes on).
   */
  holdFor(message: CoapMessage): Promise<void> | undefined {
    const option = oscoreOption(message);
    if (option === undefined || option.kudos !== undefined || option.kid === undefined) return undefined;
    const peer = this.#peers.get(hex(option.kid));
    return peer?.gate.closed ? peer.gate.hold() : undefined;
  }

  unprotect(message: CoapMessage, context: EndpointContext): UnprotectOutcome | undefined {
    const option = oscoreOption(message);
    const peer = option?.kid === undefined ? undefined : this.#peers.get(hex(option.kid));
    if (peer === undefined) return this.#options.fallback?.unprotect(message, context);
    const session = peer.config.session;
    const echoIdentity = `kudos-b.1.2\0${hex(peer.config.recipientId)}`;
    const lifetime = this.#options.echoLifetimeMs ?? 60_000;
    const result = session.unprotectRequest(message, {
      provenFresh: (inner) => this.#echo.verifyFor(getOption(inner, OptionNumber.Echo), echoIdentity, lifetime) === 'fresh',
    });
    this.#handle(peer, result.events);
    if (!result.ok && result.challenge) {
      const challenge = session.protectChallenge(echoChallenge(this.#echo.issueFor(echoIdentity)), result.challenge);
      this.#handle(peer, challenge.events);
      return { ok: false, response: challenge.message };
    }
    if (!result.ok && result.keyUpdate) {
      // The peer's Sender Key is past our integrity limit (§4.3): its request is not processed,
      // and the answer starts the update (A.2) — divergent, or convergent if one already runs. It
      // is a 4.01 with Echo, which the client repeats (RFC 9175 §2.3) once the update is done.
      const answer = session.protectResponse(echoChallenge(this.#echo.issueFor(echoIdentity)), result.keyUpdate, { startKudos: true });
      this.#handle(peer, answer.events);
      return { ok: false, response: answer.message };
    }
    if (!result.ok) return { ok: false, response: { type: MessageType.ACK, messageId: 0, token: EMPTY_BYTES, ...errorResponseParts(result) } };
    const incoming = result.request;
    const layer = { peer: peer.config.name, kid: hex(peer.config.recipientId) };
    return {
      ok: true,
      inner: result.message,
      context: withOscoreLayer(context, layer),
      protect: (response) => {
        if (session.state === 'IDLE' && peer.policy.due(session.sentWithCurrent)) peer.startNext = true;
        const startKudos = peer.startNext && session.state === 'IDLE';
        peer.startNext = false;
        const out = session.protectResponse(response, incoming, { startKudos });
        this.#handle(peer, out.events);
        return out.message;
      },
    };
  }

  #handle(peer: ServerPeer, events: readonly KudosEvent[]): void {
    for (const event of events) {
      this.#options.onEvent?.(peer.config.name, event);
      if (event.type === 'completed') peer.policy.reset();
      if (event.type === 'aborted') peer.policy.postpone(peer.config.session.sentWithCurrent);
    }
    const session = peer.config.session;
    if (session.state === 'BUSY' && !peer.gate.closed) {
      // Our divergent message is out: the peer's answer is the update's next step (A.2).
      peer.gate.close();
      peer.busyTimer = setTimeout(() => this.#handle(peer, session.abandon()), this.#options.busyTimeoutMs ?? 30_000);
      peer.busyTimer.unref?.();
    } else if (session.state !== 'BUSY' && peer.gate.closed) {
      clearTimeout(peer.busyTimer);
      peer.busyTimer = undefined;
      peer.gate.open();
    }
  }

  #byName(name: string): ServerPeer | undefined {
    for (const peer of this.#peers.values()) if (peer.config.name === name) return peer;
    return undefined;
  }
}

function oscoreOption(message: CoapMessage): ReturnType<typeof decodeOscoreOption> | undefined {
  const value = getOption(message, OptionNumber.Oscore);
  if (value === undefined) return undefined;
  try {
    return decodeOscoreOption(value);
  } catch {
    return undefined; // the session answers a malformed option with its 4.02
  }
}

