/**
 * The EDHOC Initiator as a chain of single-use states (RFC 9528 §5):
 *
 *   EdhocInitiator --prepareMessage1--> InitiatorWaitM2 --processMessage2--> InitiatorProcessedM2
 *   --prepareMessage3--> InitiatorSentM3 --processMessage4 | complete--> EdhocSession
 *
 * Sans-IO: states take and return bytes. Randomness (the ephemeral key) can be injected.
 */
import { coseAead, decrypt0, encodeCbor, encrypt0, generateEcdhKeyPair, type EcdhKeyPair } from '../cose/index.js';
import { chainPrk, checkOwnKey, ecdhOrError, makeSignatureOrMac, staticDhSecret, staticPrivate, verifySignatureOrMac } from './auth.js';
import type { CredentialResolver, OwnCredential, PeerCredential } from './credentials.js';
import { parseEad, type EadItem } from './ead.js';
import { EdhocConfigError, EdhocPeerError, unspecified } from './errors.js';
import { edhocExtract, edhocKdf, hashLength, KdfLabel, transcriptHash2, transcriptHashNext } from './key-schedule.js';
import { decodeMessage, encodeEad, encodeMessage1, encodePlaintext, parseMessage2, parsePlaintext2, parseSingleCiphertext } from './messages.js';
import { EdhocSession } from './session.js';
import { initiatorUsesStaticDh, responderUsesStaticDh, SingleUseState, type EdhocMethod } from './state.js';
import { findCipherSuite, type CipherSuite } from './suites.js';
import { allowedSignatureOrMacLengths, resolvePeer, xor } from './common.js';

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
    const selected = config.selectedSuite ?? config.suites[0];
    const at = selected === undefined ? -1 : config.suites.indexOf(selected);
    if (at < 0) throw new EdhocConfigError('the selected suite must be one of the supported suites');
    const suite = findCipherSuite(selected!);
    if (suite === undefined) throw new EdhocConfigError(`cipher suite ${selected} is not supported`);
    // The own key is checked when message_3 needs it: RFC 9529 §3 first offers suite 6 (X25519)
    // with a P-256 credential, which only ever meets error 2.
    this.#config = config;
    this.#suite = suite;
    this.#suitesI = config.suites.slice(0, at + 1);
  }

  /**
   * After error code 2 (§6.3.1): a new Initiator selecting its most preferred suite among
   * SUITES_R. The preference order is unchanged, so SUITES_I keeps every suite preferred over it.
   */
  static afterSuitesRejected(config: InitiatorConfig, error: EdhocPeerError): EdhocInitiator {
    const offered = error.suitesR ?? [];
    const choice = config.suites.find((s) => offered.includes(s) && findCipherSuite(s) !== undefined);
    if (error.code !== 2 || choice === undefined) throw new EdhocConfigError('no cipher suite in common with the Responder');
    return new EdhocInitiator({ ...config, selectedSuite: choice });
  }

  get suitesI(): readonly number[] {
    return this.#suitesI;
  }

  prepareMessage1(options: { connectionId: Uint8Array; ead?: readonly EadItem[] }): { state: InitiatorWaitM2; message: Uint8Array } {
    this.consume('prepareMessage1');
    const suite = this.#suite;
    const ephemeral = (this.#config.ephemeralKey ?? generateEcdhKeyPair)(suite.curve);
    const message = encodeMessage1(this.#config.method, this.#suitesI, ephemeral.publicKey, options.connectionId, options.ead ?? []);
    return { state: new InitiatorWaitM2(this.#config, suite, ephemeral, options.connectionId, message), message };
  }
}

export class InitiatorWaitM2 extends SingleUseState {
  constructor(
    private readonly config: InitiatorConfig,
    private readonly suite: CipherSuite,
    private readonly ephemeral: EcdhKeyPair,
    private readonly connectionIdI: Uint8Array,
    private readonly message1: Uint8Array,
  ) {
    super();
  }

  /**
   * Processes message_2 (§5.3.3). Throws EdhocError (send its errorMessage, abort) or
   * EdhocPeerError (the Responder answered with an error; after code 2, see afterSuitesRejected).
   */
  processMessage2(message2: Uint8Array): InitiatorProcessedM2 {
    this.consume('processMessage2');
    const { suite, config } = this;
    const parsed = parseMessage2(message2, this.ephemeral.publicKey.length);
    if (parsed instanceof EdhocPeerError) throw parsed;
    const { gY, ciphertext2 } = parsed;
    const gXY = ecdhOrError(suite, this.ephemeral.privateKey, gY);
    const th2 = transcriptHash2(suite, gY, this.message1);
    const prk2e = edhocExtract(suite, th2, gXY);
    if (ciphertext2.length > 255 * hashLength(suite)) throw unspecified('PLAINTEXT_2 too long');
    const plaintext2 = xor(ciphertext2, edhocKdf(suite, prk2e, KdfLabel.KEYSTREAM_2, th2, ciphertext2.length));
    const staticDhR = responderUsesStaticDh(config.method);
    const pt = parsePlaintext2(plaintext2, allowedSignatureOrMacLengths(suite, staticDhR), new Set(config.understoodEadLabels ?? []));
    const connectionIdR = pt.connectionIdR!;
    // RFC 9668 §4.1 / RFC 9528 §3.3.3: equal identifiers would give both sides the same OSCORE Recipient ID.
    if (Buffer.from(connectionIdR).equals(Buffer.from(this.connectionIdI))) throw unspecified('C_R equals C_I');
    const peer = resolvePeer(config.peers, pt.idCred);
    const prk3e2m = chainPrk(suite, prk2e, KdfLabel.SALT_3E2M, th2, staticDhR ? staticDhSecret(suite, this.ephemeral.privateKey, peer.publicKey) : undefined);
    const ok = verifySignatureOrMac(
      suite,
      prk3e2m,
      KdfLabel.MAC_2,
      staticDhR,
      { connectionIdR, idCred: pt.idCred, th: th2, cred: peer.cred, ead: pt.eadBytes },
      peer.publicKey,
      pt.signatureOrMac,
    );
    if (!ok) throw unspecified('Signature_or_MAC_2 does not verify');
    const th3 = transcriptHashNext(suite, th2, plaintext2, peer.cred);
    return new InitiatorProcessedM2({ config, suite, ephemeral: this.ephemeral, gY, connectionIdI: this.connectionIdI, connectionIdR, peer, ead2: pt.ead, prk3e2m, th3 });
  }
}

interface ProcessedM2Data {
  readonly config: InitiatorConfig;
  readonly suite: CipherSuite;
  readonly ephemeral: EcdhKeyPair;
  readonly gY: Uint8Array;
  readonly connectionIdI: Uint8Array;
  readonly connectionIdR: Uint8Array;
  readonly peer: PeerCredential;
  readonly ead2: EadItem[];
  readonly prk3e2m: Uint8Array;
  readonly th3: Uint8Array;
}

export class InitiatorProcessedM2 extends SingleUseState {
  readonly #d: ProcessedM2Data;

  constructor(data: ProcessedM2Data) {
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
    const d = this.#d;
    const { suite, config } = d;
    const staticDhI = initiatorUsesStaticDh(config.method);
    const own = config.credential;
    checkOwnKey(suite, staticDhI, own.privateKey);
    const prk4e3m = chainPrk(suite, d.prk3e2m, KdfLabel.SALT_4E3M, d.th3, staticDhI ? ecdhOrError(suite, staticPrivate(own.privateKey), d.gY) : undefined);
    const eadBytes = encodeEad(options.ead ?? []);
    const sig3 = makeSignatureOrMac(suite, prk4e3m, KdfLabel.MAC_3, staticDhI, { idCred: own.idCred, th: d.th3, cred: own.cred, ead: eadBytes }, own.privateKey);
    const plaintext3 = encodePlaintext(undefined, own.idCred, sig3, eadBytes);
    const aead = coseAead(suite.aead);
    const k3 = edhocKdf(suite, d.prk3e2m, KdfLabel.K_3, d.th3, aead.keyLength);
    const iv3 = edhocKdf(suite, d.prk3e2m, KdfLabel.IV_3, d.th3, aead.nonceLength);
    const ciphertext3 = encrypt0(suite.aead, k3, iv3, plaintext3, new Uint8Array(0), d.th3);
    const th4 = transcriptHashNext(suite, d.th3, plaintext3, own.cred);
    const prkOut = edhocKdf(suite, prk4e3m, KdfLabel.PRK_OUT, th4, hashLength(suite));
    const message = encodeCbor(ciphertext3);
    return { state: new InitiatorSentM3(d, prk4e3m, th4, prkOut), message };
  }
}

export class InitiatorSentM3 extends SingleUseState {
  constructor(
    private readonly d: ProcessedM2Data,
    private readonly prk4e3m: Uint8Array,
    private readonly th4: Uint8Array,
    private readonly prkOut: Uint8Array,
  ) {
    super();
  }

  #session(ead: readonly EadItem[]): EdhocSession {
    const d = this.d;
    return new EdhocSession({
      role: 'initiator',
      method: d.config.method,
      suite: d.suite,
      connectionIdI: d.connectionIdI,
      connectionIdR: d.connectionIdR,
      peer: d.peer,
      ead,
      prkOut: this.prkOut,
    });
  }

  /** The session without message_4: key confirmation comes from the first protected response (§5.5). */
  complete(): EdhocSession {
    this.consume('complete');
    return this.#session(this.d.ead2);
  }

  /** Verifies message_4 (§5.5.3) and returns the session. */
  processMessage4(message4: Uint8Array): EdhocSession {
    this.consume('processMessage4');
    const { suite, config } = this.d;
    const ciphertext4 = parseSingleCiphertext(message4, 'message_4');
    if (ciphertext4 instanceof EdhocPeerError) throw ciphertext4;
    const aead = coseAead(suite.aead);
    const k4 = edhocKdf(suite, this.prk4e3m, KdfLabel.K_4, this.th4, aead.keyLength);
    const iv4 = edhocKdf(suite, this.prk4e3m, KdfLabel.IV_4, this.th4, aead.nonceLength);
    const plaintext4 = decrypt0(suite.aead, k4, iv4, ciphertext4, new Uint8Array(0), this.th4);
    if (plaintext4 === undefined) throw unspecified('message_4 does not verify');
    const ead4 = parseEad(decodeMessage(plaintext4, 'PLAINTEXT_4'), new Set(config.understoodEadLabels ?? []), 'PLAINTEXT_4');
    return this.#session(ead4);
  }
}
