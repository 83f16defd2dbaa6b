/**
 * What the EDHOC Responder computes at each step (RFC 9528 §5), over a crypto provider
 * (crypto.ts). responder.ts wraps these in Node's synchronous single-use states, the browser
 * build (src/browser/edhoc.ts) in asynchronous ones.
 */
import { encodeCbor } from '../cose/cbor.js';
import type { EcdhKeyPair } from '../cose/ecdh.js';
import { CoseError } from '../cose/error.js';
import { encStructure0 } from '../cose/structures.js';
import { chainPrkStep, ecdhStep, makeSignatureOrMacStep, ownKeyFits, staticDhPrivate, staticDhSecretStep, verifySignatureOrMacStep } from './auth-steps.js';
import { allowedSignatureOrMacLengths, resolvePeer, xor, type PeerResolver } from './common.js';
import { call, sameBytes, type Awaitable, type EdhocCrypto, type Step } from './crypto.js';
import { parseEad, type EadItem } from './ead.js';
import { EdhocConfigError, EdhocError, EdhocPeerError, unspecified } from './errors.js';
import type { OwnCredentialCore, PeerCore } from './initiator-steps.js';
import { encodeEad, encodePlaintext, parseMessage1, parsePlaintext3, parseSingleCiphertext } from './messages.js';
import { extractStep, hashLength, KdfLabel, kdfStep, transcriptHash2Step, transcriptHashNextStep } from './schedule.js';
import { initiatorUsesStaticDh, responderUsesStaticDh, type EdhocMethod } from './state.js';
import { findCipherSuite, type CipherSuite } from './suites.js';

export interface ResponderCoreConfig<P extends PeerCore, O extends OwnCredentialCore = OwnCredentialCore> {
  /** Supported suites, most preferred first. */
  readonly suites: readonly number[];
  /** Methods accepted (default: all four). */
  readonly methods?: readonly EdhocMethod[];
  /** Own credentials; the first whose key fits the method and suite is used. */
  readonly credentials: readonly O[];
  readonly peers: PeerResolver<P>;
  readonly understoodEadLabels?: readonly number[];
  readonly ephemeralKey?: (curve: number) => Awaitable<EcdhKeyPair>;
}

export interface ProcessedM1Core<P extends PeerCore> {
  readonly config: ResponderCoreConfig<P>;
  readonly suite: CipherSuite;
  readonly method: EdhocMethod;
  readonly credential: OwnCredentialCore;
  readonly connectionIdI: Uint8Array;
  readonly gX: Uint8Array;
  readonly ead1: EadItem[];
  readonly ephemeral: EcdhKeyPair;
  readonly gXY: Uint8Array;
  readonly message1: Uint8Array;
}

export interface WaitM3Core<P extends PeerCore> extends ProcessedM1Core<P> {
  readonly connectionIdR: Uint8Array;
  readonly prk3e2m: Uint8Array;
  readonly th3: Uint8Array;
}

export interface ProcessedM3Core<P extends PeerCore> {
  readonly d: WaitM3Core<P>;
  /** The Initiator's authenticated credential. */
  readonly peer: P;
  readonly ead3: EadItem[];
  readonly prk4e3m: Uint8Array;
  readonly th4: Uint8Array;
  readonly prkOut: Uint8Array;
}

/** Checks the configured suites exist; throws EdhocConfigError. */
export function checkResponderSuites(suites: readonly number[]): void {
  if (suites.some((s) => findCipherSuite(s) === undefined)) throw new EdhocConfigError('a configured cipher suite is not supported');
}

/**
 * Processes message_1 (§5.2.3), including the suite check of §6.3.1: the selected suite must be
 * the first in SUITES_I this Responder supports, else error 2 with SUITES_R.
 */
export function* processMessage1Step<P extends PeerCore>(c: EdhocCrypto, config: ResponderCoreConfig<P>, message1: Uint8Array): Step<ProcessedM1Core<P>> {
  const m1 = parseMessage1(message1);
  if (!(config.methods ?? [0, 1, 2, 3]).includes(m1.method)) throw unspecified('Method not supported');
  const selected = m1.suites[m1.suites.length - 1]!;
  const firstSupported = m1.suites.find((s) => config.suites.includes(s));
  if (firstSupported !== selected) throw new EdhocError(2, 'wrong selected cipher suite', firstSupported !== undefined ? [firstSupported] : config.suites);
  const suite = findCipherSuite(selected)!;
  try {
    yield* call(c.validatePublicKey(suite.curve, m1.gX));
  } catch (e) {
    if (e instanceof CoseError) throw unspecified(`G_X: ${e.message}`);
    throw e;
  }
  const ephemeral = yield* call(config.ephemeralKey !== undefined ? config.ephemeralKey(suite.curve) : c.generateEphemeral(suite.curve));
  // G_XY now, so that a low-order G_X is refused at message_1 (RFC 9529 §4.2.4).
  const gXY = yield* ecdhStep(c, suite, ephemeral.privateKey, m1.gX);
  const staticDhR = responderUsesStaticDh(m1.method);
  const credential = config.credentials.find((own) => ownKeyFits(c, suite, staticDhR, own.privateKey));
  if (credential === undefined) throw unspecified('Method not supported with this cipher suite');
  const ead1 = parseEad(m1.eadValues, new Set(config.understoodEadLabels ?? []), 'EAD_1');
  return { config, suite, method: m1.method, credential, connectionIdI: m1.connectionIdI, gX: m1.gX, ead1, ephemeral, gXY, message1 };
}

/** Checks C_R before a step consumes the state: it must differ from C_I (§3.3.3). */
export function checkConnectionIdR<P extends PeerCore>(d: ProcessedM1Core<P>, connectionIdR: Uint8Array): void {
  if (sameBytes(connectionIdR, d.connectionIdI)) throw new EdhocConfigError('C_R must differ from C_I');
}

/** Composes message_2 (§5.3.2). */
export function* prepareMessage2Step<P extends PeerCore>(c: EdhocCrypto, d: ProcessedM1Core<P>, connectionIdR: Uint8Array, ead: readonly EadItem[]): Step<{ data: WaitM3Core<P>; message: Uint8Array }> {
  const { suite, credential } = d;
  const gY = d.ephemeral.publicKey;
  const th2 = yield* transcriptHash2Step(c, suite, gY, d.message1);
  const prk2e = yield* extractStep(c, suite, th2, d.gXY);
  const staticDhR = responderUsesStaticDh(d.method);
  const dhSecret = staticDhR ? yield* ecdhStep(c, suite, staticDhPrivate(c, suite, credential.privateKey), d.gX) : undefined;
  const prk3e2m = yield* chainPrkStep(c, suite, prk2e, KdfLabel.SALT_3E2M, th2, dhSecret);
  const eadBytes = encodeEad(ead);
  const macInput = { connectionIdR, idCred: credential.idCred, th: th2, cred: credential.cred, ead: eadBytes };
  const sig2 = yield* makeSignatureOrMacStep(c, suite, prk3e2m, KdfLabel.MAC_2, staticDhR, macInput, credential.privateKey);
  const plaintext2 = encodePlaintext(connectionIdR, credential.idCred, sig2, eadBytes);
  if (plaintext2.length > 255 * hashLength(suite)) throw new EdhocConfigError('PLAINTEXT_2 too long for the keystream');
  const ciphertext2 = xor(plaintext2, yield* kdfStep(c, suite, prk2e, KdfLabel.KEYSTREAM_2, th2, plaintext2.length));
  const gYCiphertext2 = new Uint8Array(gY.length + ciphertext2.length);
  gYCiphertext2.set(gY);
  gYCiphertext2.set(ciphertext2, gY.length);
  const th3 = yield* transcriptHashNextStep(c, suite, th2, plaintext2, credential.cred);
  return { data: { ...d, connectionIdR, prk3e2m, th3 }, message: encodeCbor(gYCiphertext2) };
}

/** Processes message_3 (§5.4.3). Throws EdhocError (send, abort) or EdhocPeerError. */
export function* processMessage3Step<P extends PeerCore>(c: EdhocCrypto, d: WaitM3Core<P>, message3: Uint8Array): Step<ProcessedM3Core<P>> {
  const { suite, config } = d;
  const ciphertext3 = parseSingleCiphertext(message3, 'message_3');
  if (ciphertext3 instanceof EdhocPeerError) throw ciphertext3;
  const aead = c.aeadLengths(suite.aead);
  const k3 = yield* kdfStep(c, suite, d.prk3e2m, KdfLabel.K_3, d.th3, aead.keyLength);
  const iv3 = yield* kdfStep(c, suite, d.prk3e2m, KdfLabel.IV_3, d.th3, aead.nonceLength);
  const plaintext3 = yield* call(c.aeadOpen(suite.aead, k3, iv3, encStructure0(new Uint8Array(0), d.th3), ciphertext3));
  if (plaintext3 === undefined) throw unspecified('message_3 does not verify');
  const staticDhI = initiatorUsesStaticDh(d.method);
  const pt = parsePlaintext3(plaintext3, allowedSignatureOrMacLengths(suite, staticDhI), new Set(config.understoodEadLabels ?? []));
  const peer = resolvePeer(config.peers, pt.idCred);
  const dhSecret = staticDhI ? yield* staticDhSecretStep(c, suite, d.ephemeral.privateKey, peer.publicKey) : undefined;
  const prk4e3m = yield* chainPrkStep(c, suite, d.prk3e2m, KdfLabel.SALT_4E3M, d.th3, dhSecret);
  const macInput = { idCred: pt.idCred, th: d.th3, cred: peer.cred, ead: pt.eadBytes };
  const ok = yield* verifySignatureOrMacStep(c, suite, prk4e3m, KdfLabel.MAC_3, staticDhI, macInput, peer.publicKey, pt.signatureOrMac);
  if (!ok) throw unspecified('Signature_or_MAC_3 does not verify');
  const th4 = yield* transcriptHashNextStep(c, suite, d.th3, plaintext3, peer.cred);
  const prkOut = yield* kdfStep(c, suite, prk4e3m, KdfLabel.PRK_OUT, th4, hashLength(suite));
  return { d, peer, ead3: pt.ead, prk4e3m, th4, prkOut };
}

/** message_4 (§5.5.2). */
export function* prepareMessage4Step<P extends PeerCore>(c: EdhocCrypto, p: ProcessedM3Core<P>, ead: readonly EadItem[]): Step<Uint8Array> {
  const { suite } = p.d;
  const aead = c.aeadLengths(suite.aead);
  const k4 = yield* kdfStep(c, suite, p.prk4e3m, KdfLabel.K_4, p.th4, aead.keyLength);
  const iv4 = yield* kdfStep(c, suite, p.prk4e3m, KdfLabel.IV_4, p.th4, aead.nonceLength);
  const ciphertext4 = yield* call(c.aeadSeal(suite.aead, k4, iv4, encStructure0(new Uint8Array(0), p.th4), encodeEad(ead)));
  return encodeCbor(ciphertext4);
}
