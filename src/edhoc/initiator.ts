/**
 * The EDHOC Initiator as a chain of single-use states (RFC 9528 §5):
 *
 *   EdhocInitiator --prepareMessage1--> InitiatorWaitM2 --processMessage2--> InitiatorProcessedM2
 *   --prepareMessage3--> InitiatorSentM3 --processMessage4 | complete--> EdhocSession
 *
 * Sans-IO: states take and return bytes. Randomness (the ephemeral key) can be injected. The
 * computation of each step is initiator-steps.ts, run here synchronously with Node's crypto.
 */
import type { EcdhKeyPair } from '../cose/ecdh.js';
import type { CredentialResolver, OwnCredential, PeerCredential } from './credentials.js';
import { runSync } from './crypto.js';
import type { EadItem } from './ead.js';
import type { EdhocPeerError } from './errors.js';
import { message1Step, selectAfterSuitesRejected, selectSuite, prepareMessage3Step, processMessage2Step, processMessage4Step, type ProcessedM2Core, type SentM3Core, type WaitM2Core } from './initiator-steps.js';
import { NODE_EDHOC_CRYPTO as node } from './node-crypto.js';
import { EdhocSession } from './session.js';
import { SingleUseState, type EdhocMethod } from './state.js';
import type { CipherSuite } from './suites.js';

export interface InitiatorConfig {
  readonly method: EdhocMethod;
  /** Supported suites, most preferred first (§5.2.2). */
  readonly suites: readonly number[];
  /** The suite to select (default: the most preferred); SUITES_I runs up to it. */
  readonly selectedSuite?: number;
  readonly credential: OwnCredential;
  readonly peers: CredentialResolver;
  /** |ead_label| values this endpoint understands; an unknown critical item aborts (§3.8). */
  readonly understoodEadLabels?: readonly number[];
  /**
   * Ephemeral key source (tests inject fixed keys; default: fresh random keys). Its curve is not
   * checked against the suite: RFC 9529 §3.1 itself offers suite 6 with a P-256 G_X.
   */
  readonly ephemeralKey?: (curve: number) => EcdhKeyPair;
}

export class EdhocInitiator extends SingleUseState {
  readonly #config: InitiatorConfig;
  readonly #suite: CipherSuite;
  readonly #suitesI: number[];

  constructor(config: InitiatorConfig) {
    super();
    // The own key is checked when message_3 needs it: RFC 9529 §3 first offers suite 6 (X25519)
    // with a P-256 credential, which only ever meets error 2.
    const { suite, suitesI } = selectSuite(config);
    this.#config = config;
    this.#suite = suite;
    this.#suitesI = suitesI;
  }

  /** After error code 2 (§6.3.1): a new Initiator selecting its most preferred suite among SUITES_R. */
  static afterSuitesRejected(config: InitiatorConfig, error: EdhocPeerError): EdhocInitiator {
    return new EdhocInitiator(selectAfterSuitesRejected(config, error));
  }

  get suitesI(): readonly number[] {
    return this.#suitesI;
  }

  prepareMessage1(options: { connectionId: Uint8Array; ead?: readonly EadItem[] }): { state: InitiatorWaitM2; message: Uint8Array } {
    this.consume('prepareMessage1');
    const { data, message } = runSync(message1Step(node, this.#config, this.#suite, this.#suitesI, options.connectionId, options.ead ?? []));
    return { state: new InitiatorWaitM2(data), message };
  }
}

export class InitiatorWaitM2 extends SingleUseState {
  readonly #w: WaitM2Core<PeerCredential>;

  constructor(w: WaitM2Core<PeerCredential>) {
    super();
    this.#w = w;
  }

  /**
   * Processes message_2 (§5.3.3). Throws EdhocError (send its errorMessage, abort) or
   * EdhocPeerError (the Responder answered with an error; after code 2, see afterSuitesRejected).
   */
  processMessage2(message2: Uint8Array): InitiatorProcessedM2 {
    this.consume('processMessage2');
    return new InitiatorProcessedM2(runSync(processMessage2Step(node, this.#w, message2)));
  }
}

export class InitiatorProcessedM2 extends SingleUseState {
  readonly #d: ProcessedM2Core<PeerCredential>;

  constructor(data: ProcessedM2Core<PeerCredential>) {
    super();
    this.#d = data;
  }

  get connectionIdR(): Uint8Array {
    return this.#d.connectionIdR;
  }

  /** The Responder's authenticated credential. */
  get peer(): PeerCredential {
    return this.#d.peer;
  }

  get ead2(): readonly EadItem[] {
    return this.#d.ead2;
  }

  /** Composes message_3 (§5.4.2); the session keys exist from here on. */
  prepareMessage3(options: { ead?: readonly EadItem[] } = {}): { state: InitiatorSentM3; message: Uint8Array } {
    this.consume('prepareMessage3');
    const { sent, message } = runSync(prepareMessage3Step(node, this.#d, options.ead ?? []));
    return { state: new InitiatorSentM3(sent), message };
  }
}

export class InitiatorSentM3 extends SingleUseState {
  readonly #s: SentM3Core<PeerCredential>;

  constructor(sent: SentM3Core<PeerCredential>) {
    super();
    this.#s = sent;
  }

  #session(ead: readonly EadItem[]): EdhocSession {
    const { d, prkOut } = this.#s;
    return new EdhocSession({ role: 'initiator', method: d.config.method, suite: d.suite, connectionIdI: d.connectionIdI, connectionIdR: d.connectionIdR, peer: d.peer, ead, prkOut });
  }

  /** The session without message_4: key confirmation comes from the first protected response (§5.5). */
  complete(): EdhocSession {
    this.consume('complete');
    return this.#session(this.#s.d.ead2);
  }

  /** Verifies message_4 (§5.5.3) and returns the session. */
  processMessage4(message4: Uint8Array): EdhocSession {
    this.consume('processMessage4');
    return this.#session(runSync(processMessage4Step(node, this.#s, message4)));
  }
}
