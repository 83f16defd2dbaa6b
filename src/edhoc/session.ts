/**
 * A completed EDHOC session: PRK_out, the exporter (§4.2.1), EDHOC_KeyUpdate (App. H) and the
 * OSCORE Security Context parameters (App. A.1), with Node's crypto (session-steps.ts).
 */
import { runSync } from './crypto.js';
import type { EadItem } from './ead.js';
import { prkExporterFrom } from './key-schedule.js';
import type { PeerCredential } from './credentials.js';
import { NODE_EDHOC_CRYPTO as node } from './node-crypto.js';
import { exporterStep, keyUpdateStep, oscoreParametersStep, type OscoreParameters } from './session-steps.js';
import type { EdhocMethod } from './state.js';
import type { CipherSuite } from './suites.js';

export type { OscoreParameters };

export class EdhocSession {
  readonly role: 'initiator' | 'responder';
  readonly method: EdhocMethod;
  readonly suite: CipherSuite;
  readonly connectionIdI: Uint8Array;
  readonly connectionIdR: Uint8Array;
  /** The peer's authenticated credential: authorize on this. */
  readonly peer: PeerCredential;
  /** EAD items of the last message received (EAD_3 at the Responder, EAD_2 or EAD_4 at the Initiator). */
  readonly ead: readonly EadItem[];
  #prkOut: Uint8Array;
  #prkExporter: Uint8Array;

  constructor(init: {
    role: 'initiator' | 'responder';
    method: EdhocMethod;
    suite: CipherSuite;
    connectionIdI: Uint8Array;
    connectionIdR: Uint8Array;
    peer: PeerCredential;
    ead: readonly EadItem[];
    prkOut: Uint8Array;
  }) {
    this.role = init.role;
    this.method = init.method;
    this.suite = init.suite;
    this.connectionIdI = init.connectionIdI;
    this.connectionIdR = init.connectionIdR;
    this.peer = init.peer;
    this.ead = init.ead;
    this.#prkOut = init.prkOut;
    this.#prkExporter = prkExporterFrom(init.suite, init.prkOut);
  }

  /** PRK_out (§4.1.3). A copy: the session's own is replaced by keyUpdate(). */
  get prkOut(): Uint8Array {
    return this.#prkOut.slice();
  }

  get prkExporter(): Uint8Array {
    return this.#prkExporter.slice();
  }

  /** EDHOC_Exporter(label, context, length) = EDHOC_KDF(PRK_exporter, label, context, length). */
  exporter(label: number, context: Uint8Array, length: number): Uint8Array {
    return runSync(exporterStep(node, this.suite, this.#prkExporter, label, context, length));
  }

  /** EDHOC_KeyUpdate(context) (App. H): PRK_out = EDHOC_KDF(PRK_out, 11, context, hash_length), PRK_exporter anew. */
  keyUpdate(context: Uint8Array): void {
    const next = runSync(keyUpdateStep(node, this.suite, this.#prkOut, context));
    this.#prkOut = next.prkOut;
    this.#prkExporter = next.prkExporter;
  }

  /** App. A.1: the OSCORE Security Context parameters. */
  oscore(options: { keyLength?: number; saltLength?: number } = {}): OscoreParameters {
    return runSync(oscoreParametersStep(node, { role: this.role, suite: this.suite, connectionIdI: this.connectionIdI, connectionIdR: this.connectionIdR, prkExporter: this.#prkExporter }, options));
  }
}
