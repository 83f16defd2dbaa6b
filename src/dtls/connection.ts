/**
 * Sans-IO DTLS 1.2 connection state machine (RFC 6347) for the client and the server role.
 *
 * The engine never touches sockets or timers: callers feed datagrams to `receive`, send whatever
 * datagrams the engine returns, and drive retransmissions with `nextTimeout()` / `handleTimeout()`
 * using their own clock (§4.2.4: timer starts at 1 s, doubles per retransmission up to 60 s).
 *
 * Supported: full handshakes (no resumption, no renegotiation) with
 *  - PSK                 (RFC 4279)            TLS_PSK_WITH_AES_128_CCM_8 / _GCM_SHA256
 *  - ECDHE_PSK           (RFC 5489, RFC 8442)  TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256
 *  - ECDHE_ECDSA + RPK   (RFC 7250, RFC 7251)  TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 / _GCM_SHA256
 * and the extended master secret (RFC 7627), required by default.
 */
import {
  createECDH,
  createPublicKey,
  randomBytes,
  sign as cryptoSign,
  timingSafeEqual,
  verify as cryptoVerify,
  type ECDH,
  type KeyObject,
  type X509Certificate,
} from 'node:crypto';
import { AlertDescription, AlertLevel, alertName, TlsAlertError } from './alerts.js';
import { DecodeError, bufferView } from './bytes.js';
import { createRecordProtection, fixedIvLengthOf, keyLengthOf, type RecordProtection } from './cipher.js';
import { fragmentHandshake, HandshakeReassembler, type HandshakeMessage } from './fragment.js';
import {
  CertificateType,
  CLIENT_CERT_TYPE_ECDSA_SIGN,
  decodeCertificateRequest,
  decodeCertTypeList,
  decodeCertTypeSelected,
  decodeClientHello,
  decodeDigitallySigned,
  decodeEcdhClientKeyExchange,
  decodeEcdheEcdsaServerKeyExchange,
  decodeEcdhePskClientKeyExchange,
  decodeEcdhePskServerKeyExchange,
  decodeFinished,
  decodeHandshakeFragments,
  decodeHelloVerifyRequest,
  decodePskClientKeyExchange,
  decodePskServerKeyExchange,
  decodeRpkCertificate,
  decodeServerHello,
  decodeServerName,
  decodeUint16List,
  decodeUint8List,
  decodeX509Certificate,
  EC_POINT_UNCOMPRESSED,
  EMPTY_CERTIFICATE,
  encodeCertificateRequest,
  encodeClientHello,
  encodeDigitallySigned,
  encodeEcdhClientKeyExchange,
  encodeEcdhParams,
  encodeEcdhePskClientKeyExchange,
  encodeEcdhePskServerKeyExchange,
  encodeHandshakeMessage,
  encodePskClientKeyExchange,
  encodePskServerKeyExchange,
  encodeRpkCertificate,
  encodeServerHello,
  encodeServerName,
  encodeUint16List,
  encodeX509Certificate,
  ExtensionType,
  findExtension,
  HandshakeType,
  NAMED_CURVE_SECP256R1,
  SIG_ECDSA_SECP256R1_SHA256,
  type ClientHello,
  type Extension,
} from './handshake-messages.js';
import {
  ecdhePskPremaster,
  extendedMasterSecret,
  finishedVerifyData,
  keyBlock,
  masterSecret,
  pskPremaster,
  sha256,
} from './prf.js';
import {
  ContentType,
  decodeRecords,
  DTLS_1_0,
  DTLS_1_2,
  encodeRecord,
  MAX_CIPHERTEXT,
  MAX_PLAINTEXT,
  MAX_SEQUENCE,
  readSequence,
  RECORD_HEADER_LENGTH,
  ReplayWindow,
  writeRecordHeader,
  type DtlsRecord,
} from './record.js';
import { DEFAULT_SUITES, suiteById, TLS_EMPTY_RENEGOTIATION_INFO_SCSV, type CipherSuite } from './suites.js';
import { validateChain, type X509Credentials } from './x509.js';

// ---------------------------------------------------------------------------------------------
// Public types

export interface PskCredentials {
  identity: Uint8Array;
  key: Uint8Array;
}

export interface RpkCredentials {
  /** Our P-256 private key. */
  privateKey: KeyObject;
  /** Our public key; derived from the private key when omitted. */
  publicKey?: KeyObject;
  /**
   * Which peer keys to accept. An array is compared by SubjectPublicKeyInfo DER; a callback gets
   * the peer's SPKI DER and must return true to accept. There is no "accept anything" default.
   */
  trustedPeerKeys: KeyObject[] | ((spki: Buffer) => boolean);
}

/**
 * What a PSK store may return instead of a bare key: the key plus a hook run once the handshake
 * has succeeded (the peer's Finished verified), before our Finished is sent. The hook may throw a
 * TlsAlertError to refuse the handshake at that point (e.g. a trust-anchor sequence number that
 * a concurrent handshake consumed first). Used by the DerivedKey mode (src/trust-anchor).
 */
export interface PskGrant {
  key: Uint8Array;
  onHandshakeSuccess?: () => void;
}

/** Looks up a PSK identity: undefined → unknown_psk_identity; a thrown TlsAlertError → that alert. */
export type PskStore = (identity: Buffer) => Uint8Array | PskGrant | undefined;

/** A verified AuthzCert (MacCert): the client key it authorizes and who authorized it. */
export interface AuthzGrant {
  /** The client's P-256 public key, which must sign CertificateVerify. */
  publicKey: KeyObject;
  spki: Buffer;
  trustAnchor: { id: string; sequence: number };
  /** Runs once the handshake has succeeded; may throw a TlsAlertError to refuse it. */
  onHandshakeSuccess?: () => void;
}

/** Server side of the AuthorizedPublicKey mode (client_certificate_type AuthzCert = 3). */
export interface AuthzServerCredentials {
  /** Our P-256 key; its public half was given to the client by the trust anchor. */
  privateKey: KeyObject;
  /** Verifies a MacCert (the Certificate body); any throw → bad_certificate. */
  verifyCertificate: (certificate: Buffer) => AuthzGrant;
}

/** Client side of the AuthorizedPublicKey mode. */
export interface AuthzClientCredentials {
  /** The encoded MacCert from the trust anchor (sent as the Certificate body). */
  certificate: Uint8Array;
  /** The private key whose public key the MacCert carries. */
  privateKey: KeyObject;
  /** The resource server's public key, from the trust anchor (the server sends no certificate). */
  serverPublicKey: KeyObject;
}

export type PeerIdentity =
  | { type: 'psk'; identity: Buffer }
  | { type: 'rpk'; spki: Buffer; publicKey: KeyObject; trustAnchor?: { id: string; sequence: number } }
  | { type: 'x509'; subject: string; chain: X509Certificate[]; publicKey: KeyObject };

export type DtlsEvent =
  | { type: 'connected' }
  | { type: 'closed' }
  | { type: 'alert'; level: number; description: number; name: string; origin: 'local' | 'remote' };

export interface DtlsOutput {
  /** Datagrams to send to the peer, in order. */
  readonly send: readonly Buffer[];
  /** Decrypted application data records, in order. */
  readonly appData: readonly Buffer[];
  readonly events: readonly DtlsEvent[];
}

/** A DtlsOutput being filled while a datagram or timeout is processed. */
export interface DtlsOutputBuilder extends DtlsOutput {
  send: Buffer[];
  appData: Buffer[];
  events: DtlsEvent[];
}

/** Shared by outputs with nothing in a field (frozen: an output is never added to once returned). */
const NO_DATAGRAMS: readonly Buffer[] = Object.freeze([]);
const NO_EVENTS: readonly DtlsEvent[] = Object.freeze([]);
const NOTHING: DtlsOutput = Object.freeze({ send: NO_DATAGRAMS, appData: NO_DATAGRAMS, events: NO_EVENTS });

export type ConnectionState = 'idle' | 'handshaking' | 'connected' | 'closed' | 'failed';

export interface CommonOptions {
  /** Clock in milliseconds; only compared with itself. */
  now: () => number;
  /** Random source; defaults to crypto.randomBytes. Override only in tests. */
  random?: (n: number) => Buffer;
  /** Cipher suites in preference order (defaults to all supported). */
  cipherSuites?: readonly number[];
  /** Largest datagram the engine emits (bytes of UDP payload). Default 1200. */
  mtu?: number;
  /** Initial retransmission timeout, default 1000 ms (RFC 6347 §4.2.4.1). */
  initialTimeoutMs?: number;
  /** Retransmission timeout ceiling, default 60 000 ms. */
  maxTimeoutMs?: number;
  /** Retransmissions of one flight before the handshake fails. Default 7. */
  maxRetransmissions?: number;
  /** Require RFC 7627 extended master secret (default true). */
  requireExtendedMasterSecret?: boolean;
  /**
   * Answer a record that fails authentication while the peer's Finished is expected with a fatal
   * bad_record_mac alert (RFC 6347 §4.1.2.7 permits this); otherwise such records are dropped
   * silently like all other unauthentic records. Default true: a wrong PSK then fails fast.
   */
  alertOnHandshakeAuthFailure?: boolean;
  /** Wall clock (ms since the epoch) for certificate validity periods. Default Date.now. */
  wallClock?: () => number;
  /**
   * Debugging only (issue 28): receives the session's client random and master secret once they
   * are derived, so that the caller can write an NSS key log for Wireshark. The engine does no I/O;
   * the caller decides where the secret goes (and must never put it in a log).
   */
  onSecret?: (secret: DtlsSessionSecret) => void;
}

/** What a key log line for DTLS 1.2 needs: "CLIENT_RANDOM <client random> <master secret>". */
export interface DtlsSessionSecret {
  clientRandom: Buffer;
  masterSecret: Buffer;
}

export interface DtlsClientOptions extends CommonOptions {
  /** PSK credentials, or a function choosing them from the server's identity hint. */
  psk?: PskCredentials | ((hint: Buffer) => PskCredentials | undefined);
  rpk?: RpkCredentials;
  /** X.509 certificate mode: roots to validate the server against, and optionally our own chain. */
  x509?: X509Credentials;
  /** AuthorizedPublicKey mode: a MacCert from a trust anchor (draft §3). */
  authz?: AuthzClientCredentials;
  /** Sent as server_name (RFC 6066). */
  serverName?: string;
  /** Host name or IP address the server's X.509 certificate must match (checkHost/checkIP). */
  verifyHost?: string;
}

export interface ServerConnectionOptions extends CommonOptions {
  /** Look up the key for a PSK identity; undefined → unknown_psk_identity. */
  pskStore?: PskStore;
  identityHint?: Uint8Array;
  rpk?: RpkCredentials;
  /** AuthorizedPublicKey mode: accept client_certificate_type AuthzCert (3). */
  authz?: AuthzServerCredentials;
  /** X.509 certificate mode: our chain and key; roots for client certificates. */
  x509?: X509Credentials;
  /** Request the client's raw public key or certificate (CertificateRequest) and fail without one. */
  requireClientAuth?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Internals

interface WriteState {
  seq: number;
  protection: RecordProtection | null;
}

type FlightItem =
  | { kind: 'handshake'; epoch: number; msgType: number; messageSeq: number; body: Buffer }
  | { kind: 'ccs'; epoch: number }
  | { kind: 'raw'; epoch: number; type: number; data: Buffer };

type Expect =
  | 'none'
  | 'hvr_or_sh'
  | 'certificate'
  | 'ske'
  | 'ske_or_shd'
  | 'cr_or_shd'
  | 'shd'
  | 'client_certificate'
  | 'cke'
  | 'certificate_verify'
  | 'ccs'
  | 'finished'
  | 'done';

const MAX_HELLO_VERIFY = 4;
const MAX_BUFFERED_FUTURE_RECORDS = 8;

/**
 * Configured keys are encoded once: exporting an SPKI costs about 140 µs, and every RPK handshake
 * needs our own key and each trusted peer key (measured in BENCHMARKS.md, trust-anchor section).
 */
const spkiCache = new WeakMap<KeyObject, Buffer>();

export function spkiOf(key: KeyObject): Buffer {
  let spki = spkiCache.get(key);
  if (!spki) {
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    spki = pub.export({ type: 'spki', format: 'der' });
    spkiCache.set(key, spki);
  }
  return spki;
}

/** Parses an SPKI and accepts only EC P-256 keys (RFC 7925 §4.4.1). */
export function parseP256Spki(spki: Buffer): KeyObject | null {
  try {
    const k = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return null;
    return k;
  } catch {
    return null;
  }
}

function isTrusted(spki: Buffer, trusted: RpkCredentials['trustedPeerKeys']): boolean {
  if (typeof trusted === 'function') {
    try {
      return trusted(Buffer.from(spki)) === true;
    } catch {
      return false;
    }
  }
  for (const k of trusted) {
    const s = spkiOf(k);
    if (s.length === spki.length && timingSafeEqual(s, spki)) return true;
  }
  return false;
}

function ecdsaSign(key: KeyObject, data: Buffer): Buffer {
  return cryptoSign('sha256', data, { key, dsaEncoding: 'der' });
}

function ecdsaVerify(key: KeyObject, data: Buffer, signature: Buffer): boolean {
  try {
    return cryptoVerify('sha256', data, { key, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

function ctEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function computeEcdh(ecdh: ECDH, point: Buffer): Buffer {
  if (point.length !== 65 || point[0] !== 0x04) throw new TlsAlertError(AlertDescription.IllegalParameter, 'peer ECDH point must be uncompressed P-256');
  try {
    return ecdh.computeSecret(point);
  } catch {
    throw new TlsAlertError(AlertDescription.IllegalParameter, 'invalid peer ECDH point');
  }
}

/** The bytes of `data` from `start` as a Buffer view (no copy). */
export function emptyOutput(): DtlsOutputBuilder {
  return { send: [], appData: [], events: [] };
}

// ---------------------------------------------------------------------------------------------

export abstract class DtlsConnection {
  state: ConnectionState = 'idle';
  peerIdentity: PeerIdentity | undefined;
  /** Negotiated cipher suite once ServerHello has been sent/received. */
  cipherSuite: CipherSuite | undefined;
  /** Whether RFC 7627 extended master secret was negotiated. */
  extendedMasterSecret = false;
  /** Human-readable reason once the state is 'failed'. */
  failureReason: string | undefined;

  protected readonly now: () => number;
  protected readonly random: (n: number) => Buffer;
  protected readonly suites: readonly number[];
  protected readonly mtu: number;
  private readonly initialTimeout: number;
  private readonly maxTimeout: number;
  private readonly maxRetransmissions: number;
  protected readonly requireEms: boolean;
  private readonly alertOnHandshakeAuthFailure: boolean;

  // Record layer
  private readonly writeStates: WriteState[] = [{ seq: 0, protection: null }];
  private writeEpoch = 0;
  private readEpoch = 0;
  private readonly readProtections: Array<RecordProtection | null> = [null];
  private pendingReadProtection: RecordProtection | null = null;
  private readonly replay: ReplayWindow[] = [new ReplayWindow()];
  private futureRecords: DtlsRecord[] = [];
  private earlyChangeCipherSpec = false;

  // Handshake layer
  protected readonly reassembler = new HandshakeReassembler();
  protected sendMessageSeq = 0;
  protected transcript: Buffer[] = [];
  protected expect: Expect = 'none';
  protected clientRandom: Buffer = Buffer.alloc(0);
  protected serverRandom: Buffer = Buffer.alloc(0);
  protected master: Buffer | undefined;
  protected ecdh: ECDH | undefined;
  protected peerPublicKey: KeyObject | undefined;
  protected certificateRequested = false;
  /** Certificate types in use for ECDHE_ECDSA (RFC 7250; X.509 when the extension is absent). */
  protected serverCertType: number = CertificateType.X509;
  protected clientCertType: number = CertificateType.X509;
  protected readonly wallClock: () => number;
  private readonly onSecret: ((secret: DtlsSessionSecret) => void) | undefined;

  // Flights and retransmission
  private flight: FlightItem[] = [];
  private timer: { deadline: number; timeout: number; count: number } | undefined;
  /** message_seq of the last message of the peer's previous flight (its retransmission ⇒ resend ours). */
  protected peerFlightLastSeq = -1;
  private retransmittedThisDatagram = false;

  protected constructor(
    readonly role: 'client' | 'server',
    opts: CommonOptions,
  ) {
    this.now = opts.now;
    this.random = opts.random ?? randomBytes;
    this.suites = opts.cipherSuites ?? DEFAULT_SUITES;
    this.mtu = opts.mtu ?? 1200;
    this.initialTimeout = opts.initialTimeoutMs ?? 1000;
    this.maxTimeout = opts.maxTimeoutMs ?? 60_000;
    this.maxRetransmissions = opts.maxRetransmissions ?? 7;
    this.requireEms = opts.requireExtendedMasterSecret ?? true;
    this.alertOnHandshakeAuthFailure = opts.alertOnHandshakeAuthFailure ?? true;
    this.wallClock = opts.wallClock ?? Date.now;
    this.onSecret = opts.onSecret;
  }

  // -------------------------------------------------------------------------------------------
  // Public API

  /** Processes one received datagram. Never throws on bad input. */
  receive(datagram: Uint8Array): DtlsOutput {
    if (this.state === 'connected') {
      const data = this.receiveApplicationData(datagram);
      if (data !== undefined) return data === null ? NOTHING : { send: NO_DATAGRAMS, appData: [data], events: NO_EVENTS };
    }
    const out = emptyOutput();
    if (this.state === 'closed' || this.state === 'failed' || this.state === 'idle') return out;
    this.retransmittedThisDatagram = false;
    try {
      for (const rec of decodeRecords(datagram)) {
        this.processRecord(rec, out);
        if (this.isTerminated()) break;
      }
    } catch (e) {
      this.abort(e, out);
    }
    return out;
  }

  /** Protects application data; one record per datagram. */
  send(data: Uint8Array): Buffer[] {
    if (this.state !== 'connected') throw new Error(`DTLS connection not established (state ${this.state})`);
    if (data.length > MAX_PLAINTEXT) throw new RangeError('application data record too large');
    // Encrypted straight from the caller's bytes (only read, never kept).
    return [this.encodeOut(ContentType.ApplicationData, this.writeEpoch, data)];
  }

  /** Sends close_notify and closes the connection. */
  close(): Buffer[] {
    if (this.state === 'closed' || this.state === 'failed' || this.state === 'idle') {
      this.state = 'closed';
      return [];
    }
    const out = this.alertRecord(AlertLevel.Warning, AlertDescription.CloseNotify);
    this.state = 'closed';
    this.stopTimer();
    this.flight = [];
    return out ? [out] : [];
  }

  /** Absolute time (same clock as `now`) at which `handleTimeout` should be called, if any. */
  nextTimeout(): number | undefined {
    return this.timer?.deadline;
  }

  /**
   * Retransmits the current flight when its timer expired (timeout doubles, §4.2.4.1). A handshake
   * that exhausts maxRetransmissions moves to state 'failed' (see failureReason).
   */
  handleTimeout(now: number = this.now()): Buffer[] {
    const t = this.timer;
    if (!t || now < t.deadline || this.isTerminated()) return [];
    if (t.count >= this.maxRetransmissions) {
      this.stopTimer();
      this.fail('handshake timed out');
      return [];
    }
    t.count++;
    t.timeout = Math.min(t.timeout * 2, this.maxTimeout);
    t.deadline = now + t.timeout;
    try {
      return this.encodeFlight();
    } catch (e) {
      const out = emptyOutput();
      this.abort(e, out);
      return out.send;
    }
  }

  get isEstablished(): boolean {
    return this.state === 'connected';
  }

  // -------------------------------------------------------------------------------------------
  // Record layer

  private isTerminated(): boolean {
    return this.state === 'closed' || this.state === 'failed';
  }

  /**
   * Once connected, nearly every datagram is one application_data record of the current epoch; it
   * is handled here without the general path's objects per datagram (record list, record, output
   * arrays), with the same checks in the same order as processRecord. Returns the plaintext, null
   * when the record is dropped (replayed, unauthentic, empty), or undefined, having changed
   * nothing, for any other datagram: the general path takes it.
   */
  private receiveApplicationData(datagram: Uint8Array): Buffer | null | undefined {
    const length = datagram.length - RECORD_HEADER_LENGTH;
    // decodeRecords refuses a fragment over MAX_CIPHERTEXT (§4.1, RFC 5246 §6.2.3) before decrypting; so does this.
    if (length < 0 || length > MAX_CIPHERTEXT || datagram[0] !== ContentType.ApplicationData || ((datagram[11]! << 8) | datagram[12]!) !== length) return undefined;
    const epoch = (datagram[3]! << 8) | datagram[4]!;
    const protection = this.readProtections[epoch];
    if (epoch !== this.readEpoch || !protection || ((datagram[1]! << 8) | datagram[2]!) !== DTLS_1_2) return undefined;
    const seq = readSequence(datagram, 5);
    const window = this.replay[epoch]!;
    if (window.isReplay(seq)) return null;
    const plaintext = protection.decrypt(ContentType.ApplicationData, DTLS_1_2, epoch, seq, bufferView(datagram, RECORD_HEADER_LENGTH));
    // §4.1.2.7: a record that fails authentication is silently discarded.
    if (plaintext === null) return null;
    // The general path decrypts again and answers with record_overflow.
    if (plaintext.length > MAX_PLAINTEXT) return undefined;
    window.accept(seq);
    return plaintext.length > 0 ? plaintext : null;
  }

  private processRecord(rec: DtlsRecord, out: DtlsOutputBuilder): void {
    let protection: RecordProtection | null;
    if (rec.epoch === this.readEpoch) {
      protection = this.readProtections[rec.epoch] ?? null;
    } else if (rec.epoch === this.readEpoch + 1 && this.state === 'handshaking') {
      // Reordered: a record of the next epoch overtook the ChangeCipherSpec. Keep a few.
      if (this.futureRecords.length < MAX_BUFFERED_FUTURE_RECORDS) this.futureRecords.push({ ...rec, fragment: Buffer.from(rec.fragment) });
      return;
    } else if (rec.epoch < this.readEpoch && rec.type === ContentType.Handshake) {
      // Retransmitted handshake records of an older epoch: only used to detect a retransmitted
      // peer flight (§4.2.4); never processed as new messages (see handleHandshake).
      protection = this.readProtections[rec.epoch] ?? null;
    } else {
      return;
    }
    if (rec.epoch !== 0 && rec.version !== DTLS_1_2) return;
    const window = this.replay[rec.epoch];
    if (!window || window.isReplay(rec.seq)) return;
    let plaintext: Buffer | null = rec.fragment;
    if (protection) {
      plaintext = protection.decrypt(rec.type, rec.version, rec.epoch, rec.seq, rec.fragment);
      if (!plaintext) {
        // §4.1.2.7: invalid records are silently discarded — except (optionally) while the peer's
        // Finished is awaited, where failure almost surely means mismatched keys (e.g. wrong PSK).
        if (this.alertOnHandshakeAuthFailure && this.state === 'handshaking' && this.expect === 'finished' && rec.epoch === this.readEpoch) {
          throw new TlsAlertError(AlertDescription.BadRecordMac, 'record authentication failed during handshake');
        }
        return;
      }
    }
    if (plaintext.length > MAX_PLAINTEXT) {
      if (protection) throw new TlsAlertError(AlertDescription.RecordOverflow, 'record too large');
      return;
    }
    window.accept(rec.seq);
    const older = rec.epoch < this.readEpoch;
    switch (rec.type) {
      case ContentType.Handshake:
        this.handleHandshakeRecord(plaintext, rec.epoch, older, out);
        break;
      case ContentType.ChangeCipherSpec:
        this.handleChangeCipherSpec(plaintext, out);
        break;
      case ContentType.Alert:
        this.handleAlert(plaintext, rec.epoch, out);
        break;
      case ContentType.ApplicationData:
        // Epoch > 0: `plaintext` is the decryption's own fresh buffer, not a view of the datagram.
        if (this.state === 'connected' && rec.epoch > 0 && plaintext.length > 0) out.appData.push(plaintext);
        break;
      default:
        break;
    }
  }

  private encodeOut(type: number, epoch: number, plaintext: Uint8Array, version = DTLS_1_2): Buffer {
    const state = this.writeStates[epoch];
    if (!state) throw new Error(`no write state for epoch ${epoch}`);
    // Never let the sequence number (and hence the AEAD nonce) wrap within an epoch (§4.1).
    if (state.seq >= MAX_SEQUENCE) throw new TlsAlertError(AlertDescription.InternalError, 'sequence number space exhausted');
    const seq = state.seq++;
    if (!state.protection) return encodeRecord({ type, version, epoch, seq, fragment: Buffer.from(plaintext) });
    return writeRecordHeader(state.protection.encrypt(type, version, epoch, seq, plaintext, RECORD_HEADER_LENGTH), type, version, epoch, seq);
  }

  /** Record-layer overhead of an epoch (header + AEAD expansion). */
  private overhead(epoch: number): number {
    return RECORD_HEADER_LENGTH + (this.writeStates[epoch]?.protection?.overhead ?? 0);
  }

  /** Installs keys for epoch 1 (write side becomes active on our ChangeCipherSpec). */
  protected installKeys(write: RecordProtection, read: RecordProtection): void {
    this.writeStates[1] = { seq: 0, protection: write };
    this.pendingReadProtection = read;
  }

  private handleChangeCipherSpec(data: Buffer, out: DtlsOutputBuilder): void {
    if (this.state !== 'handshaking') return; // duplicate CCS after the handshake: drop
    if (data.length !== 1 || data[0] !== 1) return; // malformed (unauthenticated) CCS: drop
    if (this.expect !== 'ccs' || !this.pendingReadProtection) {
      // CCS overtook handshake messages of the same flight (reordering/loss). Remember it so the
      // epoch switch happens once those messages are processed; the Finished still authenticates.
      // Only meaningful for the server: a client's peer cannot send CCS before our flight 5.
      if (this.role === 'server' && this.expect !== 'finished') this.earlyChangeCipherSpec = true;
      return;
    }
    this.earlyChangeCipherSpec = false;
    this.readEpoch = 1;
    this.readProtections[1] = this.pendingReadProtection;
    this.replay[1] = new ReplayWindow();
    this.pendingReadProtection = null;
    this.expect = 'finished';
    const buffered = this.futureRecords;
    this.futureRecords = [];
    for (const rec of buffered) {
      if (this.isTerminated()) break;
      this.processRecord(rec, out);
    }
  }

  /** Called when the peer's ChangeCipherSpec is next; applies one that arrived early. */
  protected expectChangeCipherSpec(out: DtlsOutputBuilder): void {
    this.expect = 'ccs';
    if (this.earlyChangeCipherSpec) this.handleChangeCipherSpec(Buffer.from([1]), out);
  }

  private handleAlert(data: Buffer, epoch: number, out: DtlsOutputBuilder): void {
    if (data.length !== 2) return;
    // Once established, only authenticated alerts count.
    if (this.state === 'connected' && epoch === 0) return;
    const level = data[0]!;
    const description = data[1]!;
    out.events.push({ type: 'alert', level, description, name: alertName(description), origin: 'remote' });
    if (description === AlertDescription.CloseNotify) {
      const reply = this.state === 'connected' ? this.alertRecord(AlertLevel.Warning, AlertDescription.CloseNotify) : undefined;
      if (reply) out.send.push(reply);
      this.state = 'closed';
      this.stopTimer();
      this.flight = [];
      out.events.push({ type: 'closed' });
      return;
    }
    if (level === AlertLevel.Fatal) {
      this.stopTimer();
      this.flight = [];
      this.state = 'failed';
      this.failureReason = `received fatal alert ${alertName(description)}`;
    }
  }

  private alertRecord(level: number, description: number): Buffer | undefined {
    try {
      return this.encodeOut(ContentType.Alert, this.writeEpoch, Buffer.from([level, description]));
    } catch {
      return undefined;
    }
  }

  /** Server side: the epoch-0 write sequence continues from the ClientHello's record number. */
  protected setInitialRecordSeq(seq: number): void {
    this.writeStates[0]!.seq = seq;
    this.replay[0]!.accept(seq);
  }

  protected abort(e: unknown, out: DtlsOutputBuilder): void {
    let description: number = AlertDescription.InternalError;
    let reason = 'internal error';
    if (e instanceof TlsAlertError) {
      description = e.description;
      reason = e.message;
    } else if (e instanceof DecodeError) {
      description = AlertDescription.DecodeError;
      reason = e.message;
    } else if (e instanceof Error) {
      reason = `internal error: ${e.message}`;
    }
    if (!this.isTerminated()) {
      const rec = this.alertRecord(AlertLevel.Fatal, description);
      if (rec) out.send.push(rec);
      out.events.push({ type: 'alert', level: AlertLevel.Fatal, description, name: alertName(description), origin: 'local' });
    }
    this.fail(reason);
  }

  private fail(reason: string): void {
    this.stopTimer();
    this.flight = [];
    this.state = 'failed';
    this.failureReason ??= reason;
  }

  // -------------------------------------------------------------------------------------------
  // Flights

  protected beginFlight(): void {
    this.flight = [];
    this.stopTimer();
  }

  protected queueHandshake(msgType: number, body: Buffer, addToTranscript = true): void {
    const messageSeq = this.sendMessageSeq++;
    this.flight.push({ kind: 'handshake', epoch: this.writeEpoch, msgType, messageSeq, body });
    if (addToTranscript) this.transcript.push(encodeHandshakeMessage(msgType, messageSeq, body));
  }

  /** Queues ChangeCipherSpec and switches the write side to the next epoch. */
  protected queueChangeCipherSpec(): void {
    this.flight.push({ kind: 'ccs', epoch: this.writeEpoch });
    this.writeEpoch++;
    if (!this.writeStates[this.writeEpoch]) throw new Error('keys not installed before ChangeCipherSpec');
  }

  /** Encodes the current flight (fresh record sequence numbers each time, §4.2.4). */
  private encodeFlight(): Buffer[] {
    const records: Buffer[] = [];
    for (const item of this.flight) {
      if (item.kind === 'ccs') {
        records.push(this.encodeOut(ContentType.ChangeCipherSpec, item.epoch, Buffer.from([1])));
      } else if (item.kind === 'raw') {
        records.push(this.encodeOut(item.type, item.epoch, item.data));
      } else {
        // The ClientHello is never fragmented: a stateless server (cookie exchange, §4.2.1) cannot
        // reassemble before it has verified the cookie.
        const maxFragment = item.msgType === HandshakeType.ClientHello ? Number.MAX_SAFE_INTEGER : this.mtu - this.overhead(item.epoch);
        for (const frag of fragmentHandshake(item.msgType, item.messageSeq, item.body, maxFragment)) {
          records.push(this.encodeOut(ContentType.Handshake, item.epoch, frag));
        }
      }
    }
    // Pack records into datagrams no larger than the MTU (§4.1.1: records never span datagrams).
    const datagrams: Buffer[] = [];
    let current: Buffer[] = [];
    let size = 0;
    for (const r of records) {
      if (size > 0 && size + r.length > this.mtu) {
        datagrams.push(Buffer.concat(current));
        current = [];
        size = 0;
      }
      current.push(r);
      size += r.length;
    }
    if (current.length) datagrams.push(Buffer.concat(current));
    return datagrams;
  }

  protected transmitFlight(out: DtlsOutputBuilder, armTimer: boolean): void {
    out.send.push(...this.encodeFlight());
    if (armTimer) this.timer = { deadline: this.now() + this.initialTimeout, timeout: this.initialTimeout, count: 0 };
    else this.stopTimer();
  }

  protected stopTimer(): void {
    this.timer = undefined;
  }

  private retransmitOnPeerRetransmission(out: DtlsOutputBuilder): void {
    if (this.retransmittedThisDatagram || this.flight.length === 0) return;
    this.retransmittedThisDatagram = true;
    out.send.push(...this.encodeFlight());
    // The peer is alive; restart the timer at its current value rather than doubling.
    if (this.timer) this.timer.deadline = this.now() + this.timer.timeout;
  }

  // -------------------------------------------------------------------------------------------
  // Handshake layer

  private handleHandshakeRecord(data: Buffer, epoch: number, olderEpoch: boolean, out: DtlsOutputBuilder): void {
    let fragments;
    try {
      fragments = decodeHandshakeFragments(data);
    } catch {
      return; // unparseable handshake record: drop (may be an unauthenticated forgery)
    }
    for (const f of fragments) {
      if (olderEpoch && f.messageSeq >= this.reassembler.nextReceiveSeq) continue;
      const r = this.reassembler.add(f, epoch);
      if (r === 'duplicate' && f.messageSeq === this.peerFlightLastSeq) this.retransmitOnPeerRetransmission(out);
    }
    for (let msg = this.reassembler.pop(); msg; msg = this.reassembler.pop()) {
      if (this.state !== 'handshaking') continue; // no renegotiation: ignore post-handshake messages
      this.handleMessage(msg, out);
      if (this.isTerminated()) return;
    }
  }

  protected abstract handleMessage(msg: HandshakeMessage, out: DtlsOutputBuilder): void;

  protected addTranscript(msg: HandshakeMessage): void {
    this.transcript.push(encodeHandshakeMessage(msg.msgType, msg.messageSeq, msg.body));
  }

  protected unexpected(msg: HandshakeMessage): never {
    throw new TlsAlertError(AlertDescription.UnexpectedMessage, `unexpected handshake message ${msg.msgType} while expecting ${this.expect}`);
  }

  protected requireEpoch(msg: HandshakeMessage, epoch: number): void {
    if (msg.epoch !== epoch) throw new TlsAlertError(AlertDescription.UnexpectedMessage, `handshake message ${msg.msgType} in wrong epoch`);
  }

  /** Derives master secret and epoch-1 keys. `sessionHash` must cover messages up to ClientKeyExchange. */
  protected deriveKeys(premaster: Buffer): void {
    const suite = this.cipherSuite!;
    this.master = this.extendedMasterSecret
      ? extendedMasterSecret(premaster, sha256(this.transcript))
      : masterSecret(premaster, this.clientRandom, this.serverRandom);
    premaster.fill(0);
    // Copies: the callback may keep them, and must never see buffers the engine later wipes.
    this.onSecret?.({ clientRandom: Buffer.from(this.clientRandom), masterSecret: Buffer.from(this.master) });
    const kb = keyBlock(this.master, this.clientRandom, this.serverRandom, keyLengthOf(suite.aead), fixedIvLengthOf(suite.aead));
    const clientProt = createRecordProtection(suite.aead, kb.clientWriteKey, kb.clientWriteIv);
    const serverProt = createRecordProtection(suite.aead, kb.serverWriteKey, kb.serverWriteIv);
    kb.clientWriteKey.fill(0);
    kb.serverWriteKey.fill(0);
    if (this.role === 'client') this.installKeys(clientProt, serverProt);
    else this.installKeys(serverProt, clientProt);
  }

  protected verifyData(label: 'client finished' | 'server finished'): Buffer {
    return finishedVerifyData(this.master!, label, sha256(this.transcript));
  }

  protected checkPeerFinished(msg: HandshakeMessage, label: 'client finished' | 'server finished'): void {
    this.requireEpoch(msg, 1);
    const received = decodeFinished(msg.body);
    const expected = this.verifyData(label);
    if (!ctEqual(received, expected)) throw new TlsAlertError(AlertDescription.DecryptError, 'Finished verify_data mismatch');
    this.addTranscript(msg);
  }

  protected connected(out: DtlsOutputBuilder): void {
    this.state = 'connected';
    this.expect = 'done';
    out.events.push({ type: 'connected' });
  }

  protected checkPeerRpk(spki: Buffer | null, rpk: RpkCredentials | undefined): void {
    if (!spki) throw new TlsAlertError(AlertDescription.BadCertificate, 'empty certificate');
    const key = parseP256Spki(spki);
    if (!key) throw new TlsAlertError(AlertDescription.UnsupportedCertificate, 'peer key is not an EC P-256 SubjectPublicKeyInfo');
    if (!rpk || !isTrusted(spki, rpk.trustedPeerKeys)) throw new TlsAlertError(AlertDescription.BadCertificate, 'peer raw public key is not trusted');
    this.peerPublicKey = key;
    this.peerIdentity = { type: 'rpk', spki: Buffer.from(spki), publicKey: key };
  }

  protected checkPeerX509(body: Buffer, x509: X509Credentials | undefined, host: string | undefined): void {
    const der = decodeX509Certificate(body);
    if (der.length === 0) throw new TlsAlertError(AlertDescription.HandshakeFailure, 'peer sent no certificate');
    if (!x509) throw new TlsAlertError(AlertDescription.UnsupportedCertificate, 'X.509 certificates are not configured');
    const v = validateChain(der, x509.roots, { now: this.wallClock(), ...(host !== undefined ? { host } : {}) });
    this.peerPublicKey = v.leaf.publicKey;
    this.peerIdentity = { type: 'x509', subject: v.subject, chain: v.chain, publicKey: v.leaf.publicKey };
  }

  /** Our Certificate message body for the negotiated type, and the key that signs for it. */
  protected ownCertificate(type: number, rpk: RpkCredentials | undefined, x509: X509Credentials | undefined): { body: Buffer; key: KeyObject | undefined } {
    if (type === CertificateType.RawPublicKey) {
      return rpk ? { body: encodeRpkCertificate(spkiOf(rpk.publicKey ?? rpk.privateKey)), key: rpk.privateKey } : { body: EMPTY_CERTIFICATE, key: undefined };
    }
    if (x509?.certificates?.length && x509.privateKey) return { body: encodeX509Certificate(x509.certificates.map((c) => c.raw)), key: x509.privateKey };
    return { body: EMPTY_CERTIFICATE, key: undefined };
  }
}

// =============================================================================================
// Client

export class DtlsClient extends DtlsConnection {
  private readonly opts: DtlsClientOptions;
  private cookie: Buffer = Buffer.alloc(0);
  private helloVerifyCount = 0;
  private offeredSuites: number[] = [];
  private pskHint: Buffer = Buffer.alloc(0);
  private serverPoint: Buffer | undefined;

  constructor(opts: DtlsClientOptions) {
    super('client', opts);
    this.opts = opts;
    if (!opts.psk && !opts.rpk && !opts.x509 && !opts.authz) throw new Error('DtlsClient needs psk, rpk, x509 and/or authz credentials');
    if (opts.authz && (opts.rpk || opts.x509)) throw new Error('authz (AuthorizedPublicKey) credentials cannot be combined with rpk or x509');
    if (opts.x509?.certificates?.length && !opts.x509.privateKey) throw new Error('x509 certificates need their privateKey');
  }

  /** Starts the handshake; returns the datagrams of the first flight. */
  start(): Buffer[] {
    if (this.state !== 'idle') throw new Error('handshake already started');
    this.state = 'handshaking';
    this.clientRandom = this.random(32);
    this.offeredSuites = this.suites.filter((id) => {
      const s = suiteById(id);
      if (!s) return false;
      if (s.keyExchange === 'ECDHE_ECDSA') return !!this.opts.rpk || !!this.opts.x509 || !!this.opts.authz;
      return !!this.opts.psk;
    });
    if (this.offeredSuites.length === 0) throw new Error('no cipher suite usable with the configured credentials');
    const out = emptyOutput();
    this.sendClientHello(out);
    return out.send;
  }

  private buildClientHello(): ClientHello {
    const suites = this.offeredSuites.map(suiteById) as CipherSuite[];
    const ecdhe = suites.some((s) => s.keyExchange !== 'PSK');
    const ecdsa = suites.some((s) => s.keyExchange === 'ECDHE_ECDSA');
    const extensions: Extension[] = [];
    if (this.opts.serverName) extensions.push({ type: ExtensionType.ServerName, data: encodeServerName(this.opts.serverName) });
    if (ecdhe) {
      extensions.push({ type: ExtensionType.SupportedGroups, data: encodeUint16List([NAMED_CURVE_SECP256R1]) });
      extensions.push({ type: ExtensionType.EcPointFormats, data: Buffer.from([1, EC_POINT_UNCOMPRESSED]) });
    }
    if (ecdsa) {
      extensions.push({ type: ExtensionType.SignatureAlgorithms, data: encodeUint16List([SIG_ECDSA_SECP256R1_SHA256]) });
      // RFC 7250 §3: X.509 alone is the default and needs no extension.
      if (this.opts.authz) {
        // Trust-anchor draft §3.2: client_certificate_type=(AuthzCert); the server answers
        // server_certificate_type=(X.509) with an empty certificate_list. We offer X.509 for the
        // server explicitly so that its ServerHello may carry the extension (RFC 7250 §4.2).
        extensions.push({ type: ExtensionType.ClientCertificateType, data: Buffer.from([1, CertificateType.AuthzCert]) });
        extensions.push({ type: ExtensionType.ServerCertificateType, data: Buffer.from([1, CertificateType.X509]) });
      } else if (this.opts.rpk) {
        const types = this.opts.x509 ? [CertificateType.RawPublicKey, CertificateType.X509] : [CertificateType.RawPublicKey];
        const clientTypes = this.opts.x509?.certificates?.length ? types : [CertificateType.RawPublicKey];
        extensions.push({ type: ExtensionType.ClientCertificateType, data: Buffer.from([clientTypes.length, ...clientTypes]) });
        extensions.push({ type: ExtensionType.ServerCertificateType, data: Buffer.from([types.length, ...types]) });
      }
    }
    extensions.push({ type: ExtensionType.ExtendedMasterSecret, data: Buffer.alloc(0) });
    extensions.push({ type: ExtensionType.RenegotiationInfo, data: Buffer.from([0]) });
    return {
      version: DTLS_1_2,
      random: this.clientRandom,
      sessionId: Buffer.alloc(0),
      cookie: this.cookie,
      cipherSuites: this.offeredSuites,
      compressionMethods: [0],
      extensions,
    };
  }

  private sendClientHello(out: DtlsOutputBuilder): void {
    this.beginFlight();
    // §4.2.6: the ClientHello answered by HelloVerifyRequest is not part of the transcript.
    this.transcript = [];
    this.queueHandshake(HandshakeType.ClientHello, encodeClientHello(this.buildClientHello()));
    this.expect = 'hvr_or_sh';
    this.transmitFlight(out, true);
  }

  protected handleMessage(msg: HandshakeMessage, out: DtlsOutputBuilder): void {
    // RFC 5246 §7.4.1.1: HelloRequest during a handshake SHOULD be ignored (we never renegotiate).
    if (msg.msgType === HandshakeType.HelloRequest && msg.body.length === 0) return;
    switch (this.expect) {
      case 'hvr_or_sh':
        if (msg.msgType === HandshakeType.HelloVerifyRequest) return this.onHelloVerifyRequest(msg, out);
        if (msg.msgType === HandshakeType.ServerHello) return this.onServerHello(msg);
        return this.unexpected(msg);
      case 'certificate':
        if (msg.msgType !== HandshakeType.Certificate) return this.unexpected(msg);
        return this.onCertificate(msg);
      case 'ske':
      case 'ske_or_shd':
        if (msg.msgType === HandshakeType.ServerKeyExchange) return this.onServerKeyExchange(msg);
        if (msg.msgType === HandshakeType.ServerHelloDone && this.expect === 'ske_or_shd') return this.onServerHelloDone(msg, out);
        return this.unexpected(msg);
      case 'cr_or_shd':
        if (msg.msgType === HandshakeType.CertificateRequest) return this.onCertificateRequest(msg);
        if (msg.msgType === HandshakeType.ServerHelloDone) return this.onServerHelloDone(msg, out);
        return this.unexpected(msg);
      case 'shd':
        if (msg.msgType === HandshakeType.ServerHelloDone) return this.onServerHelloDone(msg, out);
        return this.unexpected(msg);
      case 'finished':
        if (msg.msgType !== HandshakeType.Finished) return this.unexpected(msg);
        this.checkPeerFinished(msg, 'server finished');
        this.beginFlight();
        return this.connected(out);
      default:
        return this.unexpected(msg);
    }
  }

  private onHelloVerifyRequest(msg: HandshakeMessage, out: DtlsOutputBuilder): void {
    this.requireEpoch(msg, 0);
    const hvr = decodeHelloVerifyRequest(msg.body);
    if (hvr.version !== DTLS_1_0 && hvr.version !== DTLS_1_2) throw new TlsAlertError(AlertDescription.ProtocolVersion, 'unsupported HelloVerifyRequest version');
    if (++this.helloVerifyCount > MAX_HELLO_VERIFY) throw new TlsAlertError(AlertDescription.HandshakeFailure, 'too many HelloVerifyRequests');
    this.cookie = Buffer.from(hvr.cookie);
    this.sendClientHello(out);
  }

  private onServerHello(msg: HandshakeMessage): void {
    this.requireEpoch(msg, 0);
    const sh = decodeServerHello(msg.body);
    if (sh.version !== DTLS_1_2) throw new TlsAlertError(AlertDescription.ProtocolVersion, 'server did not select DTLS 1.2');
    const suite = suiteById(sh.cipherSuite);
    if (!suite || !this.offeredSuites.includes(sh.cipherSuite)) throw new TlsAlertError(AlertDescription.IllegalParameter, 'server selected a cipher suite we did not offer');
    if (sh.compressionMethod !== 0) throw new TlsAlertError(AlertDescription.IllegalParameter, 'server selected compression');
    const offered = new Set(this.buildClientHello().extensions.map((e) => e.type));
    for (const e of sh.extensions) {
      // RFC 5246 §7.4.1.4: the server MUST NOT send extensions the client did not offer.
      if (!offered.has(e.type)) throw new TlsAlertError(AlertDescription.UnsupportedExtension, `unsolicited extension ${e.type}`);
    }
    const reneg = findExtension(sh.extensions, ExtensionType.RenegotiationInfo);
    if (reneg && !(reneg.data.length === 1 && reneg.data[0] === 0)) throw new TlsAlertError(AlertDescription.HandshakeFailure, 'bad renegotiation_info');
    this.extendedMasterSecret = !!findExtension(sh.extensions, ExtensionType.ExtendedMasterSecret);
    if (this.requireEms && !this.extendedMasterSecret) throw new TlsAlertError(AlertDescription.HandshakeFailure, 'server did not negotiate extended master secret');
    if (suite.keyExchange === 'ECDHE_ECDSA') {
      // RFC 7250 §4.2: an absent server_certificate_type means X.509.
      const sct = findExtension(sh.extensions, ExtensionType.ServerCertificateType);
      this.serverCertType = sct ? decodeCertTypeSelected(sct.data) : CertificateType.X509;
      const serverTypeOk =
        this.serverCertType === CertificateType.RawPublicKey ? !!this.opts.rpk : this.serverCertType === CertificateType.X509 && (!!this.opts.x509 || !!this.opts.authz);
      if (!serverTypeOk) throw new TlsAlertError(AlertDescription.UnsupportedCertificate, `server selected an unsupported certificate type (${this.serverCertType})`);
      const cct = findExtension(sh.extensions, ExtensionType.ClientCertificateType);
      this.clientCertType = cct ? decodeCertTypeSelected(cct.data) : this.opts.rpk && !this.opts.x509 ? CertificateType.RawPublicKey : CertificateType.X509;
      if (this.clientCertType === CertificateType.AuthzCert ? !this.opts.authz : this.clientCertType !== CertificateType.RawPublicKey && this.clientCertType !== CertificateType.X509)
        throw new TlsAlertError(AlertDescription.UnsupportedCertificate, 'server selected an unsupported client certificate type');
      if (this.opts.authz && this.clientCertType !== CertificateType.AuthzCert)
        throw new TlsAlertError(AlertDescription.UnsupportedCertificate, 'server did not accept the AuthzCert client certificate type');
    }
    this.cipherSuite = suite;
    this.serverRandom = Buffer.from(sh.random);
    this.addTranscript(msg);
    this.expect = suite.keyExchange === 'ECDHE_ECDSA' ? 'certificate' : suite.keyExchange === 'PSK' ? 'ske_or_shd' : 'ske';
  }

  private onCertificate(msg: HandshakeMessage): void {
    this.requireEpoch(msg, 0);
    if (this.clientCertType === CertificateType.AuthzCert && this.opts.authz) {
      // §3.2: the server's key came from the trust anchor; its certificate_list is empty.
      if (decodeX509Certificate(msg.body).length !== 0) throw new TlsAlertError(AlertDescription.UnsupportedCertificate, 'AuthzCert mode: the server must send an empty certificate_list');
      this.peerPublicKey = this.opts.authz.serverPublicKey;
      this.peerIdentity = { type: 'rpk', spki: spkiOf(this.opts.authz.serverPublicKey), publicKey: this.opts.authz.serverPublicKey };
    } else if (this.serverCertType === CertificateType.X509) this.checkPeerX509(msg.body, this.opts.x509, this.opts.verifyHost);
    else this.checkPeerRpk(decodeRpkCertificate(msg.body), this.opts.rpk);
    this.addTranscript(msg);
    this.expect = 'ske';
  }

  private onServerKeyExchange(msg: HandshakeMessage): void {
    this.requireEpoch(msg, 0);
    const kx = this.cipherSuite!.keyExchange;
    if (kx === 'PSK') {
      this.pskHint = Buffer.from(decodePskServerKeyExchange(msg.body).hint);
      this.expect = 'shd';
    } else if (kx === 'ECDHE_PSK') {
      const ske = decodeEcdhePskServerKeyExchange(msg.body);
      if (ske.params.curve !== NAMED_CURVE_SECP256R1) throw new TlsAlertError(AlertDescription.IllegalParameter, 'unsupported curve');
      this.pskHint = Buffer.from(ske.hint);
      this.serverPoint = Buffer.from(ske.params.point);
      this.expect = 'shd';
    } else {
      const ske = decodeEcdheEcdsaServerKeyExchange(msg.body);
      if (ske.params.curve !== NAMED_CURVE_SECP256R1) throw new TlsAlertError(AlertDescription.IllegalParameter, 'unsupported curve');
      if (ske.signed.algorithm !== SIG_ECDSA_SECP256R1_SHA256) throw new TlsAlertError(AlertDescription.IllegalParameter, 'unsupported signature algorithm');
      const signedData = Buffer.concat([this.clientRandom, this.serverRandom, ske.params.raw]);
      if (!ecdsaVerify(this.peerPublicKey!, signedData, ske.signed.signature))
        throw new TlsAlertError(AlertDescription.DecryptError, 'ServerKeyExchange signature invalid');
      this.serverPoint = Buffer.from(ske.params.point);
      this.expect = 'cr_or_shd';
    }
    this.addTranscript(msg);
  }

  private onCertificateRequest(msg: HandshakeMessage): void {
    this.requireEpoch(msg, 0);
    const cr = decodeCertificateRequest(msg.body);
    if (!cr.certificateTypes.includes(CLIENT_CERT_TYPE_ECDSA_SIGN) || !cr.signatureAlgorithms.includes(SIG_ECDSA_SECP256R1_SHA256)) {
      throw new TlsAlertError(AlertDescription.HandshakeFailure, 'cannot satisfy CertificateRequest');
    }
    this.certificateRequested = true;
    this.addTranscript(msg);
    this.expect = 'shd';
  }

  private resolvePsk(): PskCredentials {
    const p = this.opts.psk;
    const creds = typeof p === 'function' ? p(Buffer.from(this.pskHint)) : p;
    if (!creds) throw new TlsAlertError(AlertDescription.HandshakeFailure, 'no PSK for the server identity hint');
    // The session is authenticated by this PSK; its identity names it on the client side too.
    this.peerIdentity = { type: 'psk', identity: Buffer.from(creds.identity) };
    return creds;
  }

  private onServerHelloDone(msg: HandshakeMessage, out: DtlsOutputBuilder): void {
    this.requireEpoch(msg, 0);
    if (msg.body.length !== 0) throw new TlsAlertError(AlertDescription.DecodeError, 'ServerHelloDone not empty');
    this.addTranscript(msg);
    this.peerFlightLastSeq = msg.messageSeq;
    const kx = this.cipherSuite!.keyExchange;
    this.beginFlight();

    const authz = this.opts.authz;
    const own =
      this.clientCertType === CertificateType.AuthzCert && authz
        ? { body: Buffer.from(authz.certificate), key: authz.privateKey }
        : this.ownCertificate(this.clientCertType, this.opts.rpk, this.opts.x509);
    if (this.certificateRequested) this.queueHandshake(HandshakeType.Certificate, own.body);
    let premaster: Buffer;
    if (kx === 'PSK') {
      const psk = this.resolvePsk();
      this.queueHandshake(HandshakeType.ClientKeyExchange, encodePskClientKeyExchange(psk.identity));
      premaster = pskPremaster(psk.key);
    } else {
      if (!this.serverPoint) throw new TlsAlertError(AlertDescription.UnexpectedMessage, 'missing ServerKeyExchange');
      this.ecdh = createECDH('prime256v1');
      this.ecdh.generateKeys();
      const z = computeEcdh(this.ecdh, this.serverPoint);
      const point = this.ecdh.getPublicKey();
      if (kx === 'ECDHE_PSK') {
        const psk = this.resolvePsk();
        this.queueHandshake(HandshakeType.ClientKeyExchange, encodeEcdhePskClientKeyExchange(psk.identity, point));
        premaster = ecdhePskPremaster(z, psk.key);
      } else {
        this.queueHandshake(HandshakeType.ClientKeyExchange, encodeEcdhClientKeyExchange(point));
        premaster = z;
      }
      this.ecdh = undefined;
    }
    this.deriveKeys(premaster);
    if (this.certificateRequested && own.key) {
      const signature = ecdsaSign(own.key, Buffer.concat(this.transcript));
      this.queueHandshake(HandshakeType.CertificateVerify, encodeDigitallySigned({ algorithm: SIG_ECDSA_SECP256R1_SHA256, signature }));
    }
    this.queueChangeCipherSpec();
    this.queueHandshake(HandshakeType.Finished, this.verifyData('client finished'));
    this.expectChangeCipherSpec(out);
    this.transmitFlight(out, true);
  }
}

// =============================================================================================
// Server-side connection (created by DtlsServerEngine after a valid cookie)

export class DtlsServerConnection extends DtlsConnection {
  private readonly opts: ServerConnectionOptions;
  /** The peer address key this connection belongs to. */
  readonly peer: string;
  /** When authenticated traffic last passed, either way (the engine's idle timeout counts from it). */
  lastActivity: number;
  /** Hook of a PskGrant / AuthzGrant, run when the client's Finished has been verified. */
  private onHandshakeSuccess: (() => void) | undefined;

  constructor(peer: string, opts: ServerConnectionOptions) {
    super('server', opts);
    this.opts = opts;
    this.peer = peer;
    this.lastActivity = opts.now();
  }

  /** True if `random` is the ClientHello random this connection was created for. */
  isSameClientHello(random: Buffer): boolean {
    return this.clientRandom.length === 32 && ctEqual(this.clientRandom, random);
  }

  /**
   * Starts the handshake from a (cookie-verified) ClientHello. §4.2.1: the initial ServerHello
   * reuses the ClientHello's record sequence number; §4.2.2: its message_seq mirrors the
   * ClientHello's.
   */
  acceptClientHello(body: Buffer, messageSeq: number, recordSeq: number): DtlsOutput {
    const out = emptyOutput();
    this.state = 'handshaking';
    this.reassembler.nextReceiveSeq = messageSeq + 1;
    this.sendMessageSeq = messageSeq;
    try {
      this.setInitialRecordSeq(recordSeq);
      const ch = decodeClientHello(body);
      this.clientRandom = Buffer.from(ch.random);
      this.transcript = [encodeHandshakeMessage(HandshakeType.ClientHello, messageSeq, body)];
      this.peerFlightLastSeq = messageSeq;
      this.respondToClientHello(ch, out);
    } catch (e) {
      this.abort(e, out);
    }
    return out;
  }

  private respondToClientHello(ch: ClientHello, out: DtlsOutputBuilder): void {
    // DTLS versions count down: 0xfefd (1.2) < 0xfeff (1.0).
    if ((ch.version & 0xff00) !== 0xfe00 || ch.version > DTLS_1_2) throw new TlsAlertError(AlertDescription.ProtocolVersion, 'client does not support DTLS 1.2');
    if (!ch.compressionMethods.includes(0)) throw new TlsAlertError(AlertDescription.IllegalParameter, 'null compression not offered');
    const ext = (t: number) => findExtension(ch.extensions, t);

    const reneg = ext(ExtensionType.RenegotiationInfo);
    if (reneg && !(reneg.data.length === 1 && reneg.data[0] === 0)) throw new TlsAlertError(AlertDescription.HandshakeFailure, 'bad renegotiation_info');
    const secureReneg = !!reneg || ch.cipherSuites.includes(TLS_EMPTY_RENEGOTIATION_INFO_SCSV);

    this.extendedMasterSecret = !!ext(ExtensionType.ExtendedMasterSecret);
    if (this.requireEms && !this.extendedMasterSecret) throw new TlsAlertError(AlertDescription.HandshakeFailure, 'client did not offer extended master secret');

    const sni = ext(ExtensionType.ServerName);
    if (sni) decodeServerName(sni.data); // accepted (validated for syntax) but not used

    const groups = ext(ExtensionType.SupportedGroups);
    const pointFormats = ext(ExtensionType.EcPointFormats);
    const sigAlgs = ext(ExtensionType.SignatureAlgorithms);
    const sct = ext(ExtensionType.ServerCertificateType);
    const cct = ext(ExtensionType.ClientCertificateType);
    // RFC 4492 §4: absent extensions mean "any"; present ones must include what we use.
    const ecOk =
      (!groups || decodeUint16List(groups.data).includes(NAMED_CURVE_SECP256R1)) &&
      (!pointFormats || decodeUint8List(pointFormats.data).includes(EC_POINT_UNCOMPRESSED));
    const sigOk = !sigAlgs || decodeUint16List(sigAlgs.data).includes(SIG_ECDSA_SECP256R1_SHA256);
    const wantClientAuth = !!this.opts.requireClientAuth;
    // RFC 7250 §4.1: the first type in the client's list we support; X.509 when the extension is absent.
    const pickType = (offered: Extension | undefined, haveRpk: boolean, haveX509: boolean): number | undefined => {
      const list = offered ? decodeCertTypeList(offered.data) : [CertificateType.X509];
      return list.find((t) => (t === CertificateType.RawPublicKey && haveRpk) || (t === CertificateType.X509 && haveX509));
    };
    const x509 = this.opts.x509;
    // Trust-anchor draft §3.2: a client offering AuthzCert gets it when we have trust anchors; we
    // then send server_certificate_type X.509 with an empty certificate_list and always request
    // the client's certificate.
    const authzMode =
      !!this.opts.authz &&
      !!cct &&
      decodeCertTypeList(cct.data).includes(CertificateType.AuthzCert) &&
      (!sct || decodeCertTypeList(sct.data).includes(CertificateType.X509));
    const serverType = authzMode ? CertificateType.X509 : pickType(sct, !!this.opts.rpk, !!(x509?.certificates?.length && x509.privateKey));
    const clientType = authzMode ? CertificateType.AuthzCert : wantClientAuth ? pickType(cct, !!this.opts.rpk, !!x509) : CertificateType.X509;

    let certTypeProblem = false;
    let chosen: CipherSuite | undefined;
    for (const id of this.suites) {
      if (!ch.cipherSuites.includes(id)) continue;
      const s = suiteById(id);
      if (!s) continue;
      if (s.keyExchange === 'PSK' && this.opts.pskStore) chosen = s;
      else if (s.keyExchange === 'ECDHE_PSK' && this.opts.pskStore && ecOk) chosen = s;
      else if (s.keyExchange === 'ECDHE_ECDSA' && (this.opts.rpk || this.opts.x509 || authzMode) && ecOk && sigOk) {
        if (serverType !== undefined && clientType !== undefined) chosen = s;
        else certTypeProblem = true;
      }
      if (chosen) break;
    }
    if (!chosen) {
      if (certTypeProblem) throw new TlsAlertError(AlertDescription.UnsupportedCertificate, 'no certificate type in common with the client');
      throw new TlsAlertError(AlertDescription.HandshakeFailure, 'no shared cipher suite');
    }
    this.cipherSuite = chosen;
    this.serverRandom = this.random(32);
    const kx = chosen.keyExchange;

    const extensions: Extension[] = [];
    if (secureReneg) extensions.push({ type: ExtensionType.RenegotiationInfo, data: Buffer.from([0]) });
    if (this.extendedMasterSecret) extensions.push({ type: ExtensionType.ExtendedMasterSecret, data: Buffer.alloc(0) });
    if (kx !== 'PSK' && pointFormats) extensions.push({ type: ExtensionType.EcPointFormats, data: Buffer.from([1, EC_POINT_UNCOMPRESSED]) });
    this.certificateRequested = kx === 'ECDHE_ECDSA' && (wantClientAuth || authzMode);
    if (kx === 'ECDHE_ECDSA') {
      this.serverCertType = serverType!;
      this.clientCertType = clientType!;
      // RFC 7250 §4.2: echo only extensions the client sent; client_certificate_type only with a CertificateRequest.
      if (sct) extensions.push({ type: ExtensionType.ServerCertificateType, data: Buffer.from([this.serverCertType]) });
      if (cct && this.certificateRequested) extensions.push({ type: ExtensionType.ClientCertificateType, data: Buffer.from([this.clientCertType]) });
    }

    this.beginFlight();
    this.queueHandshake(
      HandshakeType.ServerHello,
      encodeServerHello({ version: DTLS_1_2, random: this.serverRandom, sessionId: Buffer.alloc(0), cipherSuite: chosen.id, compressionMethod: 0, extensions }),
    );
    const own =
      authzMode && kx === 'ECDHE_ECDSA'
        ? { body: EMPTY_CERTIFICATE, key: this.opts.authz!.privateKey }
        : this.ownCertificate(this.serverCertType, this.opts.rpk, this.opts.x509);
    if (kx === 'ECDHE_ECDSA') this.queueHandshake(HandshakeType.Certificate, own.body);
    if (kx === 'PSK') {
      if (this.opts.identityHint) this.queueHandshake(HandshakeType.ServerKeyExchange, encodePskServerKeyExchange(Buffer.from(this.opts.identityHint)));
    } else {
      this.ecdh = createECDH('prime256v1');
      this.ecdh.generateKeys();
      const point = this.ecdh.getPublicKey();
      if (kx === 'ECDHE_PSK') {
        this.queueHandshake(HandshakeType.ServerKeyExchange, encodeEcdhePskServerKeyExchange(Buffer.from(this.opts.identityHint ?? []), point));
      } else {
        const params = encodeEcdhParams(point);
        const signature = ecdsaSign(own.key!, Buffer.concat([this.clientRandom, this.serverRandom, params]));
        this.queueHandshake(
          HandshakeType.ServerKeyExchange,
          Buffer.concat([params, encodeDigitallySigned({ algorithm: SIG_ECDSA_SECP256R1_SHA256, signature })]),
        );
      }
    }
    if (this.certificateRequested) {
      this.queueHandshake(
        HandshakeType.CertificateRequest,
        encodeCertificateRequest({ certificateTypes: [CLIENT_CERT_TYPE_ECDSA_SIGN], signatureAlgorithms: [SIG_ECDSA_SECP256R1_SHA256], authorities: Buffer.alloc(0) }),
      );
    }
    this.queueHandshake(HandshakeType.ServerHelloDone, Buffer.alloc(0));
    this.expect = this.certificateRequested ? 'client_certificate' : 'cke';
    this.transmitFlight(out, true);
  }

  protected handleMessage(msg: HandshakeMessage, out: DtlsOutputBuilder): void {
    switch (this.expect) {
      case 'client_certificate':
        if (msg.msgType !== HandshakeType.Certificate) return this.unexpected(msg);
        return this.onClientCertificate(msg);
      case 'cke':
        if (msg.msgType !== HandshakeType.ClientKeyExchange) return this.unexpected(msg);
        return this.onClientKeyExchange(msg, out);
      case 'certificate_verify':
        if (msg.msgType !== HandshakeType.CertificateVerify) return this.unexpected(msg);
        return this.onCertificateVerify(msg, out);
      case 'finished':
        if (msg.msgType !== HandshakeType.Finished) return this.unexpected(msg);
        return this.onFinished(msg, out);
      default:
        return this.unexpected(msg);
    }
  }

  private onClientCertificate(msg: HandshakeMessage): void {
    this.requireEpoch(msg, 0);
    if (this.clientCertType === CertificateType.AuthzCert) {
      // §3.3: known trust anchor, fresh sequence number, valid SPKI, correct MAC; any failure is
      // bad_certificate. The verifier (src/trust-anchor) applies them in that order.
      let grant: AuthzGrant;
      try {
        grant = this.opts.authz!.verifyCertificate(Buffer.from(msg.body));
      } catch (e) {
        throw new TlsAlertError(AlertDescription.BadCertificate, `AuthzCert rejected: ${(e as Error).message}`);
      }
      this.peerPublicKey = grant.publicKey;
      this.peerIdentity = { type: 'rpk', spki: Buffer.from(grant.spki), publicKey: grant.publicKey, trustAnchor: { ...grant.trustAnchor } };
      this.onHandshakeSuccess = grant.onHandshakeSuccess;
    } else if (this.clientCertType === CertificateType.X509) {
      this.checkPeerX509(msg.body, this.opts.x509, undefined);
    } else {
      const spki = decodeRpkCertificate(msg.body);
      if (!spki) throw new TlsAlertError(AlertDescription.HandshakeFailure, 'client authentication required');
      this.checkPeerRpk(spki, this.opts.rpk);
    }
    this.addTranscript(msg);
    this.expect = 'cke';
  }

  private lookupPsk(identity: Buffer): Buffer {
    let found: Uint8Array | PskGrant | undefined;
    try {
      found = this.opts.pskStore!(Buffer.from(identity));
    } catch (e) {
      // A store may refuse with a specific alert (e.g. a replayed trust-anchor sequence number).
      if (e instanceof TlsAlertError) throw e;
      found = undefined;
    }
    const key = found instanceof Uint8Array ? found : found?.key;
    if (!key || key.length === 0) throw new TlsAlertError(AlertDescription.UnknownPskIdentity, 'unknown PSK identity');
    if (found && !(found instanceof Uint8Array)) this.onHandshakeSuccess = found.onHandshakeSuccess;
    this.peerIdentity = { type: 'psk', identity: Buffer.from(identity) };
    return Buffer.from(key);
  }

  private onClientKeyExchange(msg: HandshakeMessage, out: DtlsOutputBuilder): void {
    this.requireEpoch(msg, 0);
    const kx = this.cipherSuite!.keyExchange;
    let premaster: Buffer;
    if (kx === 'PSK') {
      premaster = pskPremaster(this.lookupPsk(decodePskClientKeyExchange(msg.body).identity));
    } else if (kx === 'ECDHE_PSK') {
      const cke = decodeEcdhePskClientKeyExchange(msg.body);
      const psk = this.lookupPsk(cke.identity);
      premaster = ecdhePskPremaster(computeEcdh(this.ecdh!, cke.point), psk);
    } else {
      premaster = computeEcdh(this.ecdh!, decodeEcdhClientKeyExchange(msg.body).point);
    }
    this.ecdh = undefined;
    this.addTranscript(msg);
    this.deriveKeys(premaster);
    if (this.certificateRequested) this.expect = 'certificate_verify';
    else this.expectChangeCipherSpec(out);
  }

  private onCertificateVerify(msg: HandshakeMessage, out: DtlsOutputBuilder): void {
    this.requireEpoch(msg, 0);
    const signed = decodeDigitallySigned(msg.body);
    if (signed.algorithm !== SIG_ECDSA_SECP256R1_SHA256) throw new TlsAlertError(AlertDescription.IllegalParameter, 'unsupported signature algorithm');
    if (!ecdsaVerify(this.peerPublicKey!, Buffer.concat(this.transcript), signed.signature)) {
      // The reading of §3.3: in AuthzCert mode every client-authentication failure,
      // including proof of possession of the private key, is bad_certificate.
      if (this.clientCertType === CertificateType.AuthzCert) throw new TlsAlertError(AlertDescription.BadCertificate, 'AuthzCert: CertificateVerify signature invalid');
      throw new TlsAlertError(AlertDescription.DecryptError, 'CertificateVerify signature invalid');
    }
    this.addTranscript(msg);
    this.expectChangeCipherSpec(out);
  }

  private onFinished(msg: HandshakeMessage, out: DtlsOutputBuilder): void {
    this.checkPeerFinished(msg, 'client finished');
    // The handshake has succeeded: commit what the credential check deferred (the trust-anchor
    // window is updated only now, §2.4). A refusal here aborts before our Finished is sent.
    const commit = this.onHandshakeSuccess;
    this.onHandshakeSuccess = undefined;
    commit?.();
    this.peerFlightLastSeq = msg.messageSeq;
    this.beginFlight();
    this.queueChangeCipherSpec();
    this.queueHandshake(HandshakeType.Finished, this.verifyData('server finished'));
    // Final flight: no timer; it is resent when the client retransmits its Finished (§4.2.4).
    this.transmitFlight(out, false);
    this.connected(out);
  }
}
