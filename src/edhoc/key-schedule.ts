/**
 * The EDHOC key schedule (RFC 9528 §4) with Node's crypto, synchronously: the steps of
 * schedule.ts run by runSync. Pure functions of a suite.
 */
import { runSync } from './crypto.js';
import { NODE_EDHOC_CRYPTO as node } from './node-crypto.js';
import { extractStep, hashStep, kdfStep, prkExporterStep, transcriptHash2Step, transcriptHashNextStep } from './schedule.js';
import type { CipherSuite } from './suites.js';

export { ExporterLabel, hashLength, kdfInfo, KdfLabel } from './schedule.js';

export const hashOf = (suite: CipherSuite, data: Uint8Array): Uint8Array => runSync(hashStep(node, suite, data));

/** EDHOC_Extract (§4.1.1): HKDF-Extract for the SHA-2 suites. */
export const edhocExtract = (suite: CipherSuite, salt: Uint8Array, ikm: Uint8Array): Uint8Array => runSync(extractStep(node, suite, salt, ikm));

/** EDHOC_KDF(PRK, info_label, context, length) = EDHOC_Expand(PRK, info, length). */
export const edhocKdf = (suite: CipherSuite, prk: Uint8Array, label: number, context: Uint8Array, length: number): Uint8Array =>
  runSync(kdfStep(node, suite, prk, label, context, length));

/** TH_2 = H(G_Y, H(message_1)) (§5.3.2). */
export const transcriptHash2 = (suite: CipherSuite, gY: Uint8Array, message1: Uint8Array): Uint8Array => runSync(transcriptHash2Step(node, suite, gY, message1));

/** TH_3 and TH_4 (§5.3.2, §5.4.2). */
export const transcriptHashNext = (suite: CipherSuite, previous: Uint8Array, plaintext: Uint8Array, cred: Uint8Array): Uint8Array =>
  runSync(transcriptHashNextStep(node, suite, previous, plaintext, cred));

export const prkExporterFrom = (suite: CipherSuite, prkOut: Uint8Array): Uint8Array => runSync(prkExporterStep(node, suite, prkOut));
