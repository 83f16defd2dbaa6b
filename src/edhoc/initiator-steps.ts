/**
 * What the EDHOC Initiator computes at each step (RFC 9528 §5), over a crypto provider
 * (crypto.ts). initiator.ts wraps these in Node's synchronous single-use states, the browser build
 * (src/browser/edhoc.ts) in asynchronous ones; the protocol is written only here.
 */
import { encodeCbor } from '../cose/cbor.js';
import type { EcdhKeyPair } from '../cose/ecdh.js';
import { encStructure0 } from '../cose/structures.js';
import { chainPrkStep, checkOwnKey, ecdhStep, makeSignatureOrMacStep, staticDhPrivate, staticDhSecretStep, verifySignatureOrMacStep } from './auth-steps.js';
import { allowedSignatureOrMacLengths, resolvePeer, xor, type PeerResolver } from './common.js';
import { call, sameBytes, type Awaitable, type EdhocCrypto, type Step } from './crypto.js';
import { parseEad, type EadItem } from './ead.js';
import { EdhocConfigError, EdhocPeerError, unspecified } from './errors.js';
import type { IdCred } from './identifiers.js';
import { decodeMessage, encodeEad, encodeMessage1, encodePlaintext, parseMessage2, parsePlaintext2, parseSingleCiphertext } from './messages.js';
import { extractStep, hashLength, KdfLabel, kdfStep, transcriptHash2Step, transcriptHashNextStep } from './schedule.js';
import { initiatorUsesStaticDh, responderUsesStaticDh, type EdhocMethod } from './state.js';
import { findCipherSuite, type CipherSuite } from './suites.js';

/** This endpoint's credential: CRED_x, ID_CRED_x and a private key of the provider's kind. */
export interface OwnCredentialCore {
  readonly cred: Uint8Array;
  readonly idCred: IdCred;
  readonly privateKey: unknown;
}

/** A peer's credential as the core needs it: CRED_x and a public key of the provider's kind. */
export interface PeerCore {
  readonly cred: Uint8Array;
  readonly publicKey: unknown;
}

export interface InitiatorCoreConfig<P extends PeerCore> {
  readonly method: EdhocMethod;
  readonly credential: OwnCredentialCore;
  readonly peers: PeerResolver<P>;
  readonly understoodEadLabels?: readonly number[];
  readonly ephemeralKey?: (curve: number) => Awaitable<EcdhKeyPair>;
}

export interface WaitM2Core<P extends PeerCore> {
  readonly config: InitiatorCoreConfig<P>;
  readonly suite: CipherSuite;
  readonly ephemeral: EcdhKeyPair;
  readonly connectionIdI: Uint8Array;
  readonly message1: Uint8Array;
}

export interface ProcessedM2Core<P extends PeerCore> {
  readonly config: InitiatorCoreConfig<P>;
  readonly suite: CipherSuite;
  readonly ephemeral: EcdhKeyPair;
  readonly gY: Uint8Array;
  readonly connectionIdI: Uint8Array;
  readonly connectionIdR: Uint8Array;
  readonly peer: P;
  readonly ead2: EadItem[];
  readonly prk3e2m: Uint8Array;
  readonly th3: Uint8Array;
}

export interface SentM3Core<P extends PeerCore> {
  readonly d: ProcessedM2Core<P>;
  readonly prk4e3m: Uint8Array;
  readonly th4: Uint8Array;
  readonly prkOut: Uint8Array;
}

/** The selected suite and SUITES_I of a configuration (§5.2.2); throws EdhocConfigError. */
export function selectSuite(config: { readonly suites: readonly number[]; readonly selectedSuite?: number }): { suite: CipherSuite; suitesI: number[] } {
  const selected = config.selectedSuite ?? config.suites[0];
  const at = selected === undefined ? -1 : config.suites.indexOf(selected);
  if (at < 0) throw new EdhocConfigError('the selected suite must be one of the supported suites');
  const suite = findCipherSuite(selected!);
  if (suite === undefined) throw new EdhocConfigError(`cipher suite ${selected} is not supported`);
  return { suite, suitesI: config.suites.slice(0, at + 1) };
}

/**
 * After error code 2 (§6.3.1): the configuration selecting its most preferred suite among SUITES_R.
 * The preference order is unchanged, so SUITES_I keeps every suite preferred over it.
 */
export function selectAfterSuitesRejected<C extends { readonly suites: readonly number[] }>(config: C, error: EdhocPeerError): C & { selectedSuite: number } {
  const offered = error.suitesR ?? [];
  const choice = config.suites.find((s) => offered.includes(s) && findCipherSuite(s) !== undefined);
  if (error.code !== 2 || choice === undefined) throw new EdhocConfigError('no cipher suite in common with the Responder');
  return { ...config, selectedSuite: choice };
}

/** message_1 (§5.2.2) with a fresh (or injected) ephemeral key. */
export function* message1Step<P extends PeerCore>(
  c: EdhocCrypto,
  config: InitiatorCoreConfig<P>,
  suite: CipherSuite,
  suitesI: readonly number[],
  connectionId: Uint8Array,
  ead: readonly EadItem[],
): Step<{ data: WaitM2Core<P>; message: Uint8Array }> {
  const ephemeral = yield* call(config.ephemeralKey !== undefined ? config.ephemeralKey(suite.curve) : c.generateEphemeral(suite.curve));
  const message = encodeMessage1(config.method, suitesI, ephemeral.publicKey, connectionId, ead);
  return { data: { config, suite, ephemeral, connectionIdI: connectionId, message1: message }, message };
}

/** Processes message_2 (§5.3.3). Throws EdhocError (send, abort) or EdhocPeerError (the Responder's error message). */
export function* processMessage2Step<P extends PeerCore>(c: EdhocCrypto, w: WaitM2Core<P>, message2: Uint8Array): Step<ProcessedM2Core<P>> {
  const { suite, config } = w;
  const parsed = parseMessage2(message2, w.ephemeral.publicKey.length);
  if (parsed instanceof EdhocPeerError) throw parsed;
  const { gY, ciphertext2 } = parsed;
  const gXY = yield* ecdhStep(c, suite, w.ephemeral.privateKey, gY);
  const th2 = yield* transcriptHash2Step(c, suite, gY, w.message1);
  const prk2e = yield* extractStep(c, suite, th2, gXY);
  if (ciphertext2.length > 255 * hashLength(suite)) throw unspecified('PLAINTEXT_2 too long');
  const plaintext2 = xor(ciphertext2, yield* kdfStep(c, suite, prk2e, KdfLabel.KEYSTREAM_2, th2, ciphertext2.length));
  const staticDhR = responderUsesStaticDh(config.method);
  const pt = parsePlaintext2(plaintext2, allowedSignatureOrMacLengths(suite, staticDhR), new Set(config.understoodEadLabels ?? []));
  const connectionIdR = pt.connectionIdR!;
  // RFC 9668 §4.1 / RFC 9528 §3.3.3: equal identifiers would give both sides the same OSCORE Recipient ID.
  if (sameBytes(connectionIdR, w.connectionIdI)) throw unspecified('C_R equals C_I');
  const peer = resolvePeer(config.peers, pt.idCred);
  const dhSecret = staticDhR ? yield* staticDhSecretStep(c, suite, w.ephemeral.privateKey, peer.publicKey) : undefined;
  const prk3e2m = yield* chainPrkStep(c, suite, prk2e, KdfLabel.SALT_3E2M, th2, dhSecret);
  const macInput = { connectionIdR, idCred: pt.idCred, th: th2, cred: peer.cred, ead: pt.eadBytes };
  const ok = yield* verifySignatureOrMacStep(c, suite, prk3e2m, KdfLabel.MAC_2, staticDhR, macInput, peer.publicKey, pt.signatureOrMac);
  if (!ok) throw unspecified('Signature_or_MAC_2 does not verify');
  const th3 = yield* transcriptHashNextStep(c, suite, th2, plaintext2, peer.cred);
  return { config, suite, ephemeral: w.ephemeral, gY, connectionIdI: w.connectionIdI, connectionIdR, peer, ead2: pt.ead, prk3e2m, th3 };
}

/** Composes message_3 (§5.4.2); the session keys exist from here on. */
export function* prepareMessage3Step<P extends PeerCore>(c: EdhocCrypto, d: ProcessedM2Core<P>, ead: readonly EadItem[]): Step<{ sent: SentM3Core<P>; message: Uint8Array }> {
  const { suite, config } = d;
  const staticDhI = initiatorUsesStaticDh(config.method);
  const own = config.credential;
  checkOwnKey(c, suite, staticDhI, own.privateKey);
  const dhSecret = staticDhI ? yield* ecdhStep(c, suite, staticDhPrivate(c, suite, own.privateKey), d.gY) : undefined;
  const prk4e3m = yield* chainPrkStep(c, suite, d.prk3e2m, KdfLabel.SALT_4E3M, d.th3, dhSecret);
  const eadBytes = encodeEad(ead);
  const sig3 = yield* makeSignatureOrMacStep(c, suite, prk4e3m, KdfLabel.MAC_3, staticDhI, { idCred: own.idCred, th: d.th3, cred: own.cred, ead: eadBytes }, own.privateKey);
  const plaintext3 = encodePlaintext(undefined, own.idCred, sig3, eadBytes);
  const aead = c.aeadLengths(suite.aead);
  const k3 = yield* kdfStep(c, suite, d.prk3e2m, KdfLabel.K_3, d.th3, aead.keyLength);
  const iv3 = yield* kdfStep(c, suite, d.prk3e2m, KdfLabel.IV_3, d.th3, aead.nonceLength);
  const ciphertext3 = yield* call(c.aeadSeal(suite.aead, k3, iv3, encStructure0(new Uint8Array(0), d.th3), plaintext3));
  const th4 = yield* transcriptHashNextStep(c, suite, d.th3, plaintext3, own.cred);
  const prkOut = yield* kdfStep(c, suite, prk4e3m, KdfLabel.PRK_OUT, th4, hashLength(suite));
  return { sent: { d, prk4e3m, th4, prkOut }, message: encodeCbor(ciphertext3) };
}

/** Verifies message_4 (§5.5.3): its EAD_4 items. */
export function* processMessage4Step<P extends PeerCore>(c: EdhocCrypto, s: SentM3Core<P>, message4: Uint8Array): Step<EadItem[]> {
  const { suite, config } = s.d;
  const ciphertext4 = parseSingleCiphertext(message4, 'message_4');
  if (ciphertext4 instanceof EdhocPeerError) throw ciphertext4;
  const aead = c.aeadLengths(suite.aead);
  const k4 = yield* kdfStep(c, suite, s.prk4e3m, KdfLabel.K_4, s.th4, aead.keyLength);
  const iv4 = yield* kdfStep(c, suite, s.prk4e3m, KdfLabel.IV_4, s.th4, aead.nonceLength);
  const plaintext4 = yield* call(c.aeadOpen(suite.aead, k4, iv4, encStructure0(new Uint8Array(0), s.th4), ciphertext4));
  if (plaintext4 === undefined) throw unspecified('message_4 does not verify');
  return parseEad(decodeMessage(plaintext4, 'PLAINTEXT_4'), new Set(config.understoodEadLabels ?? []), 'PLAINTEXT_4');
}
