/**
 * What a completed EDHOC session derives (RFC 9528 §4.2.1, App. A.1, App. H), over a crypto
 * provider: session.ts runs it with Node's crypto, src/browser/edhoc.ts with Web Crypto.
 */
import type { EdhocCrypto, Step } from './crypto.js';
import { ExporterLabel, hashLength, KdfLabel, kdfStep, prkExporterStep } from './schedule.js';
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

export interface SessionKeys {
  readonly role: 'initiator' | 'responder';
  readonly suite: CipherSuite;
  readonly connectionIdI: Uint8Array;
  readonly connectionIdR: Uint8Array;
  readonly prkExporter: Uint8Array;
}

/** EDHOC_Exporter(label, context, length) = EDHOC_KDF(PRK_exporter, label, context, length). */
export function exporterStep(c: EdhocCrypto, suite: CipherSuite, prkExporter: Uint8Array, label: number, context: Uint8Array, length: number): Step<Uint8Array> {
  if (!Number.isSafeInteger(label) || label < 0) throw new RangeError('exporter label must be a uint');
  return kdfStep(c, suite, prkExporter, label, context, length);
}

/** EDHOC_KeyUpdate(context) (App. H): the new PRK_out and PRK_exporter. */
export function* keyUpdateStep(c: EdhocCrypto, suite: CipherSuite, prkOut: Uint8Array, context: Uint8Array): Step<{ prkOut: Uint8Array; prkExporter: Uint8Array }> {
  const next = yield* kdfStep(c, suite, prkOut, KdfLabel.KEY_UPDATE, context, hashLength(suite));
  return { prkOut: next, prkExporter: yield* prkExporterStep(c, suite, next) };
}

/**
 * App. A.1: Master Secret/Salt from the exporter (labels 0 and 1, context h''), the application
 * AEAD and hash of the suite, and the IDs of §3.3.3: the Initiator sends with C_R and receives
 * with C_I, the Responder the other way round.
 */
export function* oscoreParametersStep(c: EdhocCrypto, s: SessionKeys, options: { keyLength?: number; saltLength?: number } = {}): Step<OscoreParameters> {
  const keyLength = options.keyLength ?? c.aeadLengths(s.suite.appAead).keyLength;
  const empty = new Uint8Array(0);
  const initiator = s.role === 'initiator';
  return {
    masterSecret: yield* exporterStep(c, s.suite, s.prkExporter, ExporterLabel.OSCORE_MASTER_SECRET, empty, keyLength),
    masterSalt: yield* exporterStep(c, s.suite, s.prkExporter, ExporterLabel.OSCORE_MASTER_SALT, empty, options.saltLength ?? 8),
    senderId: initiator ? s.connectionIdR : s.connectionIdI,
    recipientId: initiator ? s.connectionIdI : s.connectionIdR,
    aeadAlgorithm: s.suite.appAead,
    hashAlgorithm: s.suite.appHash,
  };
}
