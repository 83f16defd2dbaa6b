/**
 * The EDHOC Responder as a chain of single-use states (RFC 9528 §5):
 *
 *   EdhocResponder --processMessage1--> ResponderProcessedM1 --prepareMessage2--> ResponderWaitM3
 *   --processMessage3--> ResponderProcessedM3 --prepareMessage4 | complete--> EdhocSession
 *
 * One EdhocResponder per incoming message_1: a second message_1 on the same object throws
 * EdhocStateError. Bounded: a state holds one session's values and nothing a peer can grow.
 */
import { coseAead, CoseError, decrypt0, encodeCbor, encrypt0, generateEcdhKeyPair, validateEcdhPublicKey, type EcdhKeyPair } from '../cose/index.js';
import { chainPrk, ecdhOrError, makeSignatureOrMac, ownKeyFits, staticDhSecret, staticPrivate, verifySignatureOrMac } from './auth.js';
import { allowedSignatureOrMacLengths, resolvePeer, xor } from './common.js';
import type { CredentialResolver, OwnCredential, PeerCredential } from './credentials.js';
import { parseEad, type EadItem } from './ead.js';
import { EdhocConfigError, EdhocError, EdhocPeerError, unspecified } from './errors.js';
import { edhocExtract, edhocKdf, hashLength, KdfLabel, transcriptHash2, transcriptHashNext } from './key-schedule.js';
import { encodeEad, encodePlaintext, parseMessage1, parsePlaintext3, parseSingleCiphertext } from './messages.js';
import { EdhocSession } from './session.js';
import { initiatorUsesStaticDh, responderUsesStaticDh, SingleUseState, type EdhocMethod } from './state.js';
import { findCipherSuite, type CipherSuite } from './suites.js';

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
    if (config.suites.some((s) => findCipherSuite(s) === undefined)) throw new EdhocConfigError('a configured cipher suite is not supported');
    this.#config = config;
  }

  /**
   * Processes message_1 (§5.2.3), including the suite check of §6.3.1: the selected suite must be
   * the first in SUITES_I this Responder supports, else error 2 with SUITES_R.
   */
  processMessage1(message1: Uint8Array): ResponderProcessedM1 {
    this.consume('processMessage1');
    const config = this.#config;
    const m1 = parseMessage1(message1);
    if (!(config.methods ?? [0, 1, 2, 3]).includes(m1.method)) throw unspecified('Method not supported');
    const selected = m1.suites[m1.suites.length - 1]!;
    const firstSupported = m1.suites.find((s) => config.suites.includes(s));
    if (firstSupported !== selected) throw new EdhocError(2, 'wrong selected cipher suite', firstSupported !== undefined ? [firstSupported] : config.suites);
    const suite = findCipherSuite(selected)!;
    try {
      validateEcdhPublicKey(suite.curve, m1.gX);
    } catch (e) {
      if (e instanceof CoseError) throw unspecified(`G_X: ${e.message}`);
      throw e;
    }
    const ephemeral = (config.ephemeralKey ?? generateEcdhKeyPair)(suite.curve);
    // G_XY now, so that a low-order G_X is refused at message_1 (RFC 9529 §4.2.4).
    const gXY = ecdhOrError(suite, ephemeral.privateKey, m1.gX);
    const staticDhR = responderUsesStaticDh(m1.method);
    const credential = config.credentials.find((c) => ownKeyFits(suite, staticDhR, c.privateKey));
    if (credential === undefined) throw unspecified('Method not supported with this cipher suite');
    const ead1 = parseEad(m1.eadValues, new Set(config.understoodEadLabels ?? []), 'EAD_1');
    return new ResponderProcessedM1({ config, suite, method: m1.method, credential, connectionIdI: m1.connectionIdI, gX: m1.gX, ead1, ephemeral, gXY, message1 });
  }
}

interface ProcessedM1Data {
  readonly config: ResponderConfig;
  readonly suite: CipherSuite;
  readonly method: EdhocMethod;
  readonly credential: OwnCredential;
  readonly connectionIdI: Uint8Array;
  readonly gX: Uint8Array;
  readonly ead1: EadItem[];
  readonly ephemeral: EcdhKeyPair;
  readonly gXY: Uint8Array;
  readonly message1: Uint8Array;
}

export class ResponderProcessedM1 extends SingleUseState {
  readonly #d: ProcessedM1Data;

  constructor(data: ProcessedM1Data) {
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
    const d = this.#d;
    const connectionIdR = options.connectionId;
    if (Buffer.from(connectionIdR).equals(Buffer.from(d.connectionIdI))) throw new EdhocConfigError('C_R must differ from C_I');
    this.consume('prepareMessage2');
    const { suite, credential } = d;
    const gY = d.ephemeral.publicKey;
    const th2 = transcriptHash2(suite, gY, d.message1);
    const prk2e = edhocExtract(suite, th2, d.gXY);
    const staticDhR = responderUsesStaticDh(d.method);
    const prk3e2m = chainPrk(suite, prk2e, KdfLabel.SALT_3E2M, th2, staticDhR ? ecdhOrError(suite, staticPrivate(credential.privateKey), d.gX) : undefined);
    const eadBytes = encodeEad(options.ead ?? []);
    const sig2 = makeSignatureOrMac(suite, prk3e2m, KdfLabel.MAC_2, staticDhR, { connectionIdR, idCred: credential.idCred, th: th2, cred: credential.cred, ead: eadBytes }, credential.privateKey);
    const plaintext2 = encodePlaintext(connectionIdR, credential.idCred, sig2, eadBytes);
    if (plaintext2.length > 255 * hashLength(suite)) throw new EdhocConfigError('PLAINTEXT_2 too long for the keystream');
    const ciphertext2 = xor(plaintext2, edhocKdf(suite, prk2e, KdfLabel.KEYSTREAM_2, th2, plaintext2.length));
    const gYCiphertext2 = new Uint8Array(gY.length + ciphertext2.length);
    gYCiphertext2.set(gY);
    gYCiphertext2.set(ciphertext2, gY.length);
    const th3 = transcriptHashNext(suite, th2, plaintext2, credential.cred);
    const message = encodeCbor(gYCiphertext2);
    return { state: new ResponderWaitM3({ ...d, connectionIdR, prk3e2m, th3 }), message };
  }
}

interface WaitM3Data extends ProcessedM1Data {
  readonly connectionIdR: Uint8Array;
  readonly prk3e2m: Uint8Array;
  readonly th3: Uint8Array;
}

export class ResponderWaitM3 extends SingleUseState {
  readonly #d: WaitM3Data;

  constructor(data: WaitM3Data) {
    super();
    this.#d = data;
  }

  get connectionIdR(): Uint8Array {
    return this.#d.connectionIdR;
  }

  /** Processes message_3 (§5.4.3). Throws EdhocError (send, abort) or EdhocPeerError. */
  processMessage3(message3: Uint8Array): ResponderProcessedM3 {
    this.consume('processMessage3');
    const d = this.#d;
    const { suite, config } = d;
    const ciphertext3 = parseSingleCiphertext(message3, 'message_3');
    if (ciphertext3 instanceof EdhocPeerError) throw ciphertext3;
    const aead = coseAead(suite.aead);
    const k3 = edhocKdf(suite, d.prk3e2m, KdfLabel.K_3, d.th3, aead.keyLength);
    const iv3 = edhocKdf(suite, d.prk3e2m, KdfLabel.IV_3, d.th3, aead.nonceLength);
    const plaintext3 = decrypt0(suite.aead, k3, iv3, ciphertext3, new Uint8Array(0), d.th3);
    if (plaintext3 === undefined) throw unspecified('message_3 does not verify');
    const staticDhI = initiatorUsesStaticDh(d.method);
    const pt = parsePlaintext3(plaintext3, allowedSignatureOrMacLengths(suite, staticDhI), new Set(config.understoodEadLabels ?? []));
    const peer = resolvePeer(config.peers, pt.idCred);
    const prk4e3m = chainPrk(suite, d.prk3e2m, KdfLabel.SALT_4E3M, d.th3, staticDhI ? staticDhSecret(suite, d.ephemeral.privateKey, peer.publicKey) : undefined);
    const ok = verifySignatureOrMac(suite, prk4e3m, KdfLabel.MAC_3, staticDhI, { idCred: pt.idCred, th: d.th3, cred: peer.cred, ead: pt.eadBytes }, peer.publicKey, pt.signatureOrMac);
    if (!ok) throw unspecified('Signature_or_MAC_3 does not verify');
    const th4 = transcriptHashNext(suite, d.th3, plaintext3, peer.cred);
    const prkOut = edhocKdf(suite, prk4e3m, KdfLabel.PRK_OUT, th4, hashLength(suite));
    return new ResponderProcessedM3(d, peer, pt.ead, prk4e3m, th4, prkOut);
  }
}

export class ResponderProcessedM3 extends SingleUseState {
  constructor(
    private readonly d: WaitM3Data,
    /** The Initiator's authenticated credential. */
    readonly peer: PeerCredential,
    readonly ead3: readonly EadItem[],
    private readonly prk4e3m: Uint8Array,
    private readonly th4: Uint8Array,
    private readonly prkOut: Uint8Array,
  ) {
    super();
  }

  #session(): EdhocSession {
    const d = this.d;
    return new EdhocSession({
      role: 'responder',
      method: d.method,
      suite: d.suite,
      connectionIdI: d.connectionIdI,
      connectionIdR: d.connectionIdR,
      peer: this.peer,
      ead: this.ead3,
      prkOut: this.prkOut,
    });
  }

  /** The session, without message_4. */
  complete(): EdhocSession {
    this.consume('complete');
    return this.#session();
  }

  /** message_4 (§5.5.2) and the session. */
  prepareMessage4(options: { ead?: readonly EadItem[] } = {}): { session: EdhocSession; message: Uint8Array } {
    this.consume('prepareMessage4');
    const { suite } = this.d;
    const aead = coseAead(suite.aead);
    const k4 = edhocKdf(suite, this.prk4e3m, KdfLabel.K_4, this.th4, aead.keyLength);
    const iv4 = edhocKdf(suite, this.prk4e3m, KdfLabel.IV_4, this.th4, aead.nonceLength);
    const ciphertext4 = encrypt0(suite.aead, k4, iv4, encodeEad(options.ead ?? []), new Uint8Array(0), this.th4);
    return { session: this.#session(), message: encodeCbor(ciphertext4) };
  }
}

