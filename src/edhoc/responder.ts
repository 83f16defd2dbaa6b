/**
 * The EDHOC Responder as a chain of single-use states (RFC 9528 §5):
 *
 *   EdhocResponder --processMessage1--> ResponderProcessedM1 --prepareMessage2--> ResponderWaitM3
 *   --processMessage3--> ResponderProcessedM3 --prepareMessage4 | complete--> EdhocSession
 *
 * One EdhocResponder per incoming message_1: a second message_1 on the same object throws
 * EdhocStateError. Bounded: a state holds one session's values and nothing a peer can grow. The
 * computation of each step is responder-steps.ts, run here synchronously with Node's crypto.
 */
import type { EcdhKeyPair } from '../cose/ecdh.js';
import type { CredentialResolver, OwnCredential, PeerCredential } from './credentials.js';
import { runSync } from './crypto.js';
import type { EadItem } from './ead.js';
import { NODE_EDHOC_CRYPTO as node } from './node-crypto.js';
import {
  checkConnectionIdR,
  checkResponderSuites,
  prepareMessage2Step,
  prepareMessage4Step,
  processMessage1Step,
  processMessage3Step,
  type ProcessedM1Core,
  type ProcessedM3Core,
  type WaitM3Core,
} from './responder-steps.js';
import { EdhocSession } from './session.js';
import { SingleUseState, type EdhocMethod } from './state.js';

export interface ResponderConfig {
  /** Supported suites, most preferred first. */
  readonly suites: readonly number[];
  /** Methods accepted (default: all four). */
  readonly methods?: readonly EdhocMethod[];
  /** Own credentials; the first whose key fits the method and suite is used. */
  readonly credentials: readonly OwnCredential[];
  readonly peers: CredentialResolver;
  readonly understoodEadLabels?: readonly number[];
  readonly ephemeralKey?: (curve: number) => EcdhKeyPair;
}

export class EdhocResponder extends SingleUseState {
  readonly #config: ResponderConfig;

  constructor(config: ResponderConfig) {
    super();
    checkResponderSuites(config.suites);
    this.#config = config;
  }

  /**
   * Processes message_1 (§5.2.3), including the suite check of §6.3.1: the selected suite must be
   * the first in SUITES_I this Responder supports, else error 2 with SUITES_R.
   */
  processMessage1(message1: Uint8Array): ResponderProcessedM1 {
    this.consume('processMessage1');
    return new ResponderProcessedM1(runSync(processMessage1Step(node, this.#config, message1)));
  }
}

export class ResponderProcessedM1 extends SingleUseState {
  readonly #d: ProcessedM1Core<PeerCredential>;

  constructor(data: ProcessedM1Core<PeerCredential>) {
    super();
    this.#d = data;
  }

  get method(): EdhocMethod {
    return this.#d.method;
  }

  get suite(): number {
    return this.#d.suite.id;
  }

  get connectionIdI(): Uint8Array {
    return this.#d.connectionIdI;
  }

  get ead1(): readonly EadItem[] {
    return this.#d.ead1;
  }

  /** Composes message_2 (§5.3.2). C_R must differ from C_I (§3.3.3). */
  prepareMessage2(options: { connectionId: Uint8Array; ead?: readonly EadItem[] }): { state: ResponderWaitM3; message: Uint8Array } {
    checkConnectionIdR(this.#d, options.connectionId);
    this.consume('prepareMessage2');
    const { data, message } = runSync(prepareMessage2Step(node, this.#d, options.connectionId, options.ead ?? []));
    return { state: new ResponderWaitM3(data), message };
  }
}

export class ResponderWaitM3 extends SingleUseState {
  readonly #d: WaitM3Core<PeerCredential>;

  constructor(data: WaitM3Core<PeerCredential>) {
    super();
    this.#d = data;
  }

  get connectionIdR(): Uint8Array {
    return this.#d.connectionIdR;
  }

  /** Processes message_3 (§5.4.3). Throws EdhocError (send, abort) or EdhocPeerError. */
  processMessage3(message3: Uint8Array): ResponderProcessedM3 {
    this.consume('processMessage3');
    return new ResponderProcessedM3(runSync(processMessage3Step(node, this.#d, message3)));
  }
}

export class ResponderProcessedM3 extends SingleUseState {
  readonly #p: ProcessedM3Core<PeerCredential>;

  constructor(processed: ProcessedM3Core<PeerCredential>) {
    super();
    this.#p = processed;
  }

  /** The Initiator's authenticated credential. */
  get peer(): PeerCredential {
    return this.#p.peer;
  }

  get ead3(): readonly EadItem[] {
    return this.#p.ead3;
  }

  #session(): EdhocSession {
    const { d, peer, ead3, prkOut } = this.#p;
    return new EdhocSession({ role: 'responder', method: d.method, suite: d.suite, connectionIdI: d.connectionIdI, connectionIdR: d.connectionIdR, peer, ead: ead3, prkOut });
  }

  /** The session, without message_4. */
  complete(): EdhocSession {
    this.consume('complete');
    return this.#session();
  }

  /** message_4 (§5.5.2) and the session. */
  prepareMessage4(options: { ead?: readonly EadItem[] } = {}): { session: EdhocSession; message: Uint8Array } {
    this.consume('prepareMessage4');
    const message = runSync(prepareMessage4Step(node, this.#p, options.ead ?? []));
    return { session: this.#session(), message };
  }
}
