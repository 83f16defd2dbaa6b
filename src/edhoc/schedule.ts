/**
 * The EDHOC key schedule (RFC 9528 §4) as steps over a crypto provider (crypto.ts):
 * EDHOC_Extract/Expand/KDF for the SHA-2 suites, transcript hashes and the exporter.
 * key-schedule.ts runs them synchronously with Node's crypto.
 */
import { concatBytes, encodeCbor, encodeSequence } from '../cose/cbor.js';
import { call, type EdhocCrypto, type Step } from './crypto.js';
import type { CipherSuite } from './suites.js';

/** EDHOC_KDF info labels (§4.1.2 Figure 8, §4.2.1, App. H). */
export const KdfLabel = {
  KEYSTREAM_2: 0,
  SALT_3E2M: 1,
  MAC_2: 2,
  K_3: 3,
  IV_3: 4,
  SALT_4E3M: 5,
  MAC_3: 6,
  PRK_OUT: 7,
  K_4: 8,
  IV_4: 9,
  PRK_EXPORTER: 10,
  KEY_UPDATE: 11,
} as const;

/** EDHOC_Exporter labels for OSCORE (App. A.1). */
export const ExporterLabel = { OSCORE_MASTER_SECRET: 0, OSCORE_MASTER_SALT: 1 } as const;

export const hashLength = (suite: CipherSuite): number => suite.hashLength;

/** info = (info_label: int, context: bstr, length: uint) as a CBOR sequence (§4.1.2). */
export const kdfInfo = (label: number, context: Uint8Array, length: number): Uint8Array => encodeSequence(label, context, length);

export const hashStep = (c: EdhocCrypto, suite: CipherSuite, data: Uint8Array): Step<Uint8Array> => call(c.hash(suite.hash, data));

/** EDHOC_Extract (§4.1.1): HKDF-Extract for the SHA-2 suites. */
export const extractStep = (c: EdhocCrypto, suite: CipherSuite, salt: Uint8Array, ikm: Uint8Array): Step<Uint8Array> => call(c.hkdfExtract(suite.hash, salt, ikm));

/** EDHOC_KDF(PRK, info_label, context, length) = EDHOC_Expand(PRK, info, length). */
export const kdfStep = (c: EdhocCrypto, suite: CipherSuite, prk: Uint8Array, label: number, context: Uint8Array, length: number): Step<Uint8Array> =>
  call(c.hkdfExpand(suite.hash, prk, kdfInfo(label, context, length), length));

/** TH_2 = H(G_Y, H(message_1)) over a CBOR sequence of two bstr (§5.3.2). */
export function* transcriptHash2Step(c: EdhocCrypto, suite: CipherSuite, gY: Uint8Array, message1: Uint8Array): Step<Uint8Array> {
  const hashOfMessage1 = yield* hashStep(c, suite, message1);
  return yield* hashStep(c, suite, encodeSequence(gY, hashOfMessage1));
}

/** TH_3 = H(TH_2, PLAINTEXT_2, CRED_R) and TH_4 = H(TH_3, PLAINTEXT_3, CRED_I): TH as bstr, the rest as raw CBOR. */
export const transcriptHashNextStep = (c: EdhocCrypto, suite: CipherSuite, previous: Uint8Array, plaintext: Uint8Array, cred: Uint8Array): Step<Uint8Array> =>
  hashStep(c, suite, concatBytes(encodeCbor(previous), plaintext, cred));

export const prkExporterStep = (c: EdhocCrypto, suite: CipherSuite, prkOut: Uint8Array): Step<Uint8Array> =>
  kdfStep(c, suite, prkOut, KdfLabel.PRK_EXPORTER, new Uint8Array(0), hashLength(suite));
