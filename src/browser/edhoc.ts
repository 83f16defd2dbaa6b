/**
 * EDHOC (RFC 9528) for the browser build: the states of src/edhoc/initiator.ts and responder.ts,
 * asynchronous, running the same steps (initiator-steps.ts, responder-steps.ts, session-steps.ts)
 * with the Web Crypto provider (edhoc-crypto.ts). Credentials come from objects: a page has no
 * credentials file and no X.509 parser, so a peer is trusted by pinning its credential and key
 * (a CCS, whose key is inside it, or a certificate with its public key); chains to a trust anchor
 * are the Node build's (CredentialStore).
 */
import { encodeCbor, originalEncoding } from '../cose/cbor.js';
import type { EcdhKeyPair } from '../cose/ecdh.js';
import { CoseHash } from '../cose/ids.js';
import { parseCcs, type CwtClaimsSet } from '../cose/cwt.js';
import { runAsync } from '../edhoc/crypto.js';
import type { EadItem } from '../edhoc/ead.js';
import { unspecified, type EdhocPeerError } from '../edhoc/errors.js';
import { idCredKccs, idCredKid, IdCredLabel, idCredX5t, type IdCred } from '../edhoc/identifiers.js';
import {
  message1Step,
  prepareMessage3Step,
  processMessage2Step,
  processMessage4Step,
  selectAfterSuitesRejected,
  selectSuite,
  type InitiatorCoreConfig,
  type ProcessedM2Core,
  type SentM3Core,
  type WaitM2Core,
} from '../edhoc/initiator-steps.js';
import {
  checkConnectionIdR,
  checkResponderSuites,
  prepareMessage2Step,
  prepareMessage4Step,
  processMessage1Step,
  processMessage3Step,
  type ProcessedM1Core,
  type ProcessedM3Core,
  type ResponderCoreConfig,
  type WaitM3Core,
} from '../edhoc/responder-steps.js';
import { prkExporterStep } from '../edhoc/schedule.js';
import { exporterStep, keyUpdateStep, oscoreParametersStep, type OscoreParameters } from '../edhoc/session-steps.js';
import { SingleUseState, type EdhocMethod } from '../edhoc/state.js';
import type { CipherSuite } from '../edhoc/suites.js';
import { bytesToHex } from '../util/bytes.js';
import { WEB_EDHOC_CRYPTO as web, type WebPrivateKey, type WebPublicKey } from './edhoc-crypto.js';

/** This page's credential: CRED_x, ID_CRED_x and the raw private key. */
export interface BrowserOwnCredential {
  readonly cred: Uint8Array;
  readonly idCred: IdCred;
  readonly privateKey: WebPrivateKey;
}

/** A pinned peer credential, handed back to the application once the peer has proven its key. */
export interface BrowserPeerCredential {
  readonly kind: 'ccs' | 'x509';
  readonly cred: Uint8Array;
  readonly publicKey: WebPublicKey;
  readonly subject?: string;
  readonly claims?: CwtClaimsSet;
  /** kid (CCS) or x5t thumbprints (certificate) under which the peer may name it. */
  readonly names: readonly string[];
}

function publicKeyOf(claims: CwtClaimsSet): WebPublicKey {
  const { crv, x, y } = claims.coseKey;
  return y instanceof Uint8Array ? { crv, x, y } : { crv, x };
}

/** A CCS credential of this page, referenced by its COSE_Key kid (or `kid`), or by value. */
export function ccsOwnCredential(ccs: Uint8Array, privateKey: WebPrivateKey, options: { kid?: Uint8Array; byValue?: boolean } = {}): BrowserOwnCredential {
  const claims = parseCcs(ccs);
  const kid = options.kid ?? claims.coseKey.kid;
  const idCred = options.byValue === true || kid === undefined ? idCredKccs(claims.encoded) : idCredKid(kid);
  return { cred: claims.encoded, idCred, privateKey };
}

/** Pins a peer's CCS: the peer may name it by its kid (or `kid`) or send it by value. */
export function ccsPeer(ccs: Uint8Array, kid?: Uint8Array): BrowserPeerCredential {
  const claims = parseCcs(ccs);
  const k = kid ?? claims.coseKey.kid;
  return {
    kind: 'ccs',
    cred: claims.encoded,
    publicKey: publicKeyOf(claims),
    claims,
    ...(claims.sub !== undefined ? { subject: claims.sub } : {}),
    names: [`ccs:${bytesToHex(claims.encoded)}`, ...(k !== undefined ? [`kid:${bytesToHex(k)}`] : [])],
  };
}

const sha256 = async (data: Uint8Array): Promise<Uint8Array> => web.hash(CoseHash.SHA_256, data);

/** x5t of a certificate (RFC 9360), SHA-256/64 as RFC 9529 uses it. */
export async function x5tOf(der: Uint8Array): Promise<IdCred> {
  return idCredX5t(CoseHash.SHA_256_64, (await sha256(der)).subarray(0, 8));
}

/** This page's X.509 credential, referenced by x5t (RFC 9528 §3.5.3). */
export async function x509OwnCredential(der: Uint8Array, privateKey: WebPrivateKey): Promise<BrowserOwnCredential> {
  return { cred: encodeCbor(der), idCred: await x5tOf(der), privateKey };
}

/**
 * Pins a peer's certificate with its public key (the page trusts exactly this certificate; it
 * parses no X.509): found by x5t with SHA-256/64 or SHA-256, or sent in an x5chain of one.
 */
export async function x509Peer(der: Uint8Array, publicKey: WebPublicKey, subject?: string): Promise<BrowserPeerCredential> {
  const digest = await sha256(der);
  return {
    kind: 'x509',
    cred: encodeCbor(der),
    publicKey,
    ...(subject !== undefined ? { subject } : {}),
    names: [`x5t:${CoseHash.SHA_256_64}:${bytesToHex(digest.subarray(0, 8))}`, `x5t:${CoseHash.SHA_256}:${bytesToHex(digest)}`, `x5chain:${bytesToHex(der)}`],
  };
}

/** The names an ID_CRED_x gives its credential (none for a kind the page cannot pin). */
function namesIn(idCred: IdCred): string[] {
  const { map } = idCred;
  const kid = map.get(IdCredLabel.kid);
  const kccs = map.get(IdCredLabel.kccs);
  const x5t = map.get(IdCredLabel.x5t);
  const x5chain = map.get(IdCredLabel.x5chain);
  if (kccs !== undefined) return [`ccs:${bytesToHex(originalEncoding(kccs))}`];
  if (Array.isArray(x5t) && typeof x5t[0] === 'number' && x5t[1] instanceof Uint8Array) return [`x5t:${x5t[0]}:${bytesToHex(x5t[1])}`];
  if (x5chain instanceof Uint8Array) return [`x5chain:${bytesToHex(x5chain)}`];
  if (Array.isArray(x5chain) && x5chain.length === 1 && x5chain[0] instanceof Uint8Array) return [`x5chain:${bytesToHex(x5chain[0])}`];
  if (kid instanceof Uint8Array) return [`kid:${bytesToHex(kid)}`];
  return [];
}

/**
 * A resolver over pinned credentials: an unknown one is undefined (the core answers error 3); a
 * kind of ID_CRED the page cannot pin is error 1 (§6.4: error 3 is for unknown credentials of a
 * supported kind).
 */
export function pinnedPeers(peers: readonly BrowserPeerCredential[]): { resolve(idCred: IdCred): BrowserPeerCredential | undefined } {
  const byName = new Map<string, BrowserPeerCredential>();
  for (const p of peers) for (const name of p.names) byName.set(name, p);
  return {
    resolve: (idCred) => {
      const names = namesIn(idCred);
      if (names.length === 0) throw unspecified('unsupported ID_CRED type');
      return names.map((n) => byName.get(n)).find((p) => p !== undefined);
    },
  };
}

type PeerResolverOf = InitiatorCoreConfig<BrowserPeerCredential>['peers'];

export interface BrowserInitiatorConfig {
  readonly method: EdhocMethod;
  /** Supported suites, most preferred first (§5.2.2): 0 and 2 (and 1, 3, 6) with Web Crypto. */
  readonly suites: readonly number[];
  readonly selectedSuite?: number;
  readonly credential: BrowserOwnCredential;
  readonly peers: PeerResolverOf;
  readonly understoodEadLabels?: readonly number[];
  /** Ephemeral key source (tests inject the RFC 9529 keys; default: fresh Web Crypto keys). */
  readonly ephemeralKey?: (curve: number) => EcdhKeyPair | Promise<EcdhKeyPair>;
}

export interface BrowserResponderConfig extends ResponderCoreConfig<BrowserPeerCredential, BrowserOwnCredential> {
  readonly peers: PeerResolverOf;
}

/** A completed session (the Node build's EdhocSession, asynchronous). */
export class BrowserEdhocSession {
  readonly role: 'initiator' | 'responder';
  readonly method: EdhocMethod;
  readonly suite: CipherSuite;
  readonly connectionIdI: Uint8Array;
  readonly connectionIdR: Uint8Array;
  /** The peer's authenticated credential. */
  readonly peer: BrowserPeerCredential;
  readonly ead: readonly EadItem[];
  #prkOut: Uint8Array;
  #prkExporter: Uint8Array;

  private constructor(init: Omit<BrowserEdhocSession, 'prkOut' | 'prkExporter' | 'exporter' | 'keyUpdate' | 'oscore'>, prkOut: Uint8Array, prkExporter: Uint8Array) {
    this.role = init.role;
    this.method = init.method;
    this.suite = init.suite;
    this.connectionIdI = init.connectionIdI;
    this.connectionIdR = init.connectionIdR;
    this.peer = init.peer;
    this.ead = init.ead;
    this.#prkOut = prkOut;
    this.#prkExporter = prkExporter;
  }

  static async create(init: Omit<BrowserEdhocSession, 'prkOut' | 'prkExporter' | 'exporter' | 'keyUpdate' | 'oscore'>, prkOut: Uint8Array): Promise<BrowserEdhocSession> {
    return new BrowserEdhocSession(init, prkOut, await runAsync(prkExporterStep(web, init.suite, prkOut)));
  }

  get prkOut(): Uint8Array {
    return this.#prkOut.slice();
  }

  get prkExporter(): Uint8Array {
    return this.#prkExporter.slice();
  }

  exporter(label: number, context: Uint8Array, length: number): Promise<Uint8Array> {
    return runAsync(exporterStep(web, this.suite, this.#prkExporter, label, context, length));
  }

  async keyUpdate(context: Uint8Array): Promise<void> {
    const next = await runAsync(keyUpdateStep(web, this.suite, this.#prkOut, context));
    this.#prkOut = next.prkOut;
    this.#prkExporter = next.prkExporter;
  }

  /** App. A.1: the OSCORE parameters, for openOscore (credentials.ts). */
  oscore(options: { keyLength?: number; saltLength?: number } = {}): Promise<OscoreParameters> {
    const keys = { role: this.role, suite: this.suite, connectionIdI: this.connectionIdI, connectionIdR: this.connectionIdR, prkExporter: this.#prkExporter };
    return runAsync(oscoreParametersStep(web, keys, options));
  }
}

export class BrowserEdhocInitiator extends SingleUseState {
  readonly #config: BrowserInitiatorConfig;
  readonly #suite: CipherSuite;
  readonly #suitesI: number[];

  constructor(config: BrowserInitiatorConfig) {
    super();
    const { suite, suitesI } = selectSuite(config);
    this.#config = config;
    this.#suite = suite;
    this.#suitesI = suitesI;
  }

  /** After error code 2 (§6.3.1): a new Initiator selecting its most preferred suite among SUITES_R. */
  static afterSuitesRejected(config: BrowserInitiatorConfig, error: EdhocPeerError): BrowserEdhocInitiator {
    return new BrowserEdhocInitiator(selectAfterSuitesRejected(config, error));
  }

  get suitesI(): readonly number[] {
    return this.#suitesI;
  }

  async prepareMessage1(options: { connectionId: Uint8Array; ead?: readonly EadItem[] }): Promise<{ state: BrowserInitiatorWaitM2; message: Uint8Array }> {
    this.consume('prepareMessage1');
    const { data, message } = await runAsync(message1Step(web, this.#config, this.#suite, this.#suitesI, options.connectionId, options.ead ?? []));
    return { state: new BrowserInitiatorWaitM2(data), message };
  }
}

export class BrowserInitiatorWaitM2 extends SingleUseState {
  readonly #w: WaitM2Core<BrowserPeerCredential>;

  constructor(w: WaitM2Core<BrowserPeerCredential>) {
    super();
    this.#w = w;
  }

  /** Processes message_2 (§5.3.3); rejects with EdhocError (send its errorMessage) or EdhocPeerError. */
  async processMessage2(message2: Uint8Array): Promise<BrowserInitiatorProcessedM2> {
    this.consume('processMessage2');
    return new BrowserInitiatorProcessedM2(await runAsync(processMessage2Step(web, this.#w, message2)));
  }
}

export class BrowserInitiatorProcessedM2 extends SingleUseState {
  readonly #d: ProcessedM2Core<BrowserPeerCredential>;

  constructor(data: ProcessedM2Core<BrowserPeerCredential>) {
    super();
    this.#d = data;
  }

  get connectionIdR(): Uint8Array {
    return this.#d.connectionIdR;
  }

  get peer(): BrowserPeerCredential {
    return this.#d.peer;
  }

  get ead2(): readonly EadItem[] {
    return this.#d.ead2;
  }

  async prepareMessage3(options: { ead?: readonly EadItem[] } = {}): Promise<{ state: BrowserInitiatorSentM3; message: Uint8Array }> {
    this.consume('prepareMessage3');
    const { sent, message } = await runAsync(prepareMessage3Step(web, this.#d, options.ead ?? []));
    return { state: new BrowserInitiatorSentM3(sent), message };
  }
}

export class BrowserInitiatorSentM3 extends SingleUseState {
  readonly #s: SentM3Core<BrowserPeerCredential>;

  constructor(sent: SentM3Core<BrowserPeerCredential>) {
    super();
    this.#s = sent;
  }

  #session(ead: readonly EadItem[]): Promise<BrowserEdhocSession> {
    const { d, prkOut } = this.#s;
    return BrowserEdhocSession.create({ role: 'initiator', method: d.config.method, suite: d.suite, connectionIdI: d.connectionIdI, connectionIdR: d.connectionIdR, peer: d.peer, ead }, prkOut);
  }

  /** The session without message_4: key confirmation comes from the first protected response (§5.5). */
  complete(): Promise<BrowserEdhocSession> {
    this.consume('complete');
    return this.#session(this.#s.d.ead2);
  }

  async processMessage4(message4: Uint8Array): Promise<BrowserEdhocSession> {
    this.consume('processMessage4');
    return this.#session(await runAsync(processMessage4Step(web, this.#s, message4)));
  }
}

export class BrowserEdhocResponder extends SingleUseState {
  readonly #config: BrowserResponderConfig;

  constructor(config: BrowserResponderConfig) {
    super();
    checkResponderSuites(config.suites);
    this.#config = config;
  }

  async processMessage1(message1: Uint8Array): Promise<BrowserResponderProcessedM1> {
    this.consume('processMessage1');
    return new BrowserResponderProcessedM1(await runAsync(processMessage1Step(web, this.#config, message1)));
  }
}

export class BrowserResponderProcessedM1 extends SingleUseState {
  readonly #d: ProcessedM1Core<BrowserPeerCredential>;

  constructor(data: ProcessedM1Core<BrowserPeerCredential>) {
    super();
    this.#d = data;
  }

  get connectionIdI(): Uint8Array {
    return this.#d.connectionIdI;
  }

  async prepareMessage2(options: { connectionId: Uint8Array; ead?: readonly EadItem[] }): Promise<{ state: BrowserResponderWaitM3; message: Uint8Array }> {
    checkConnectionIdR(this.#d, options.connectionId);
    this.consume('prepareMessage2');
    const { data, message } = await runAsync(prepareMessage2Step(web, this.#d, options.connectionId, options.ead ?? []));
    return { state: new BrowserResponderWaitM3(data), message };
  }
}

export class BrowserResponderWaitM3 extends SingleUseState {
  readonly #d: WaitM3Core<BrowserPeerCredential>;

  constructor(data: WaitM3Core<BrowserPeerCredential>) {
    super();
    this.#d = data;
  }

  async processMessage3(message3: Uint8Array): Promise<BrowserResponderProcessedM3> {
    this.consume('processMessage3');
    return new BrowserResponderProcessedM3(await runAsync(processMessage3Step(web, this.#d, message3)));
  }
}

export class BrowserResponderProcessedM3 extends SingleUseState {
  readonly #p: ProcessedM3Core<BrowserPeerCredential>;

  constructor(processed: ProcessedM3Core<BrowserPeerCredential>) {
    super();
    this.#p = processed;
  }

  get peer(): BrowserPeerCredential {
    return this.#p.peer;
  }

  #session(): Promise<BrowserEdhocSession> {
    const { d, peer, ead3, prkOut } = this.#p;
    return BrowserEdhocSession.create({ role: 'responder', method: d.method, suite: d.suite, connectionIdI: d.connectionIdI, connectionIdR: d.connectionIdR, peer, ead: ead3 }, prkOut);
  }

  complete(): Promise<BrowserEdhocSession> {
    this.consume('complete');
    return this.#session();
  }

  async prepareMessage4(options: { ead?: readonly EadItem[] } = {}): Promise<{ session: BrowserEdhocSession; message: Uint8Array }> {
    this.consume('prepareMessage4');
    const message = await runAsync(prepareMessage4Step(web, this.#p, options.ead ?? []));
    return { session: await this.#session(), message };
  }
}
