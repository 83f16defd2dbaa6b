/**
 * A completed EDHOC session: PRK_out, the exporter (§4.2.1), EDHOC_KeyUpdate (App. H) and the
 * OSCORE Security Context parameters (App. A.1).
 */
import { coseAead } from '../cose/index.js';
import type { EadItem } from './ead.js';
import { edhocKdf, ExporterLabel, hashLength, KdfLabel, prkExporterFrom } from './key-schedule.js';
import type { PeerCredential } from './credentials.js';
import type { EdhocMethod } from './state.js';
import type { CipherSuite } from './suites.js';

export interface OscoreParameters {
  readonly masterSecret: Uint8Array;
  readonly masterSalt: Uint8Array;
  readonly senderId: Uint8Array;
  readonly recipientId: Uint8Array;
  /** COSE id of the application AEAD. */
  readonly aeadAlgorithm: number;
  /** COSE id of the application hash; OSCORE's HKDF is the HKDF with this hash. */
  readonly hashAlgorithm: number;
}

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
    if (!Number.isSafeInteger(label) || label < 0) throw new RangeError('exporter label must be a uint');
    return edhocKdf(this.suite, this.#prkExporter, label, context, length);
  }

  /** EDHOC_KeyUpdate(context) (App. H): PRK_out = EDHOC_KDF(PRK_out, 11, context, hash_length), PRK_exporter anew. */
  keyUpdate(context: Uint8Array): void {
    this.#prkOut = edhocKdf(this.suite, this.#prkOut, KdfLabel.KEY_UPDATE, context, hashLength(this.suite));
    this.#prkExporter = prkExporterFrom(this.suite, this.#prkOut);
  }

  /**
   * App. A.1: Master Secret/Salt from the exporter (labels 0 and 1, context h''), the application
   * AEAD and hash of the suite, and the IDs of §3.3.3: the Initiator sends with C_R and receives
   * with C_I, the Responder the other way round.
   */
  oscore(options: { keyLength?: number; saltLength?: number } = {}): OscoreParameters {
    const keyLength = options.keyLength ?? coseAead(this.suite.appAead).keyLength;
    const empty = new Uint8Array(0);
    const initiator = this.role === 'initiator';
    return {
      masterSecret: this.exporter(ExporterLabel.OSCORE_MASTER_SECRET, empty, keyLength),
      masterSalt: this.exporter(ExporterLabel.OSCORE_MASTER_SALT, empty, options.saltLength ?? 8),
      senderId: initiator ? this.connectionIdR : this.connectionIdI,
      recipientId: initiator ? this.connectionIdI : this.connectionIdR,
      aeadAlgorithm: this.suite.appAead,
      hashAlgorithm: this.suite.appHash,
    };
  }
}
