/**
 * TEST TOOL. Forward secrecy (draft-hartke-core-e2e-security-reqs-00 R1.10): a passive attacker
 * records an EDHOC run (RFC 9528) and an OSCORE exchange under the context it derived (App. A.1);
 * the endpoints then throw the session away. Later the attacker obtains both parties' long-term
 * private keys. It recomputes every key it can from the recording and those keys, and tries to
 * decrypt: the ephemeral–ephemeral secret G_XY is out of its reach, so it fails at the first
 * authenticated step. The same decryption code succeeds with the session key (PRK_out) and — as a
 * control that it is a real decryptor — with G_XY. OSCORE with a pre-shared master secret, where the
 * long-term key is the session key, is the baseline that leaks.
 *
 * Runs in process on the sans-IO EDHOC core and src/oscore; no sockets.
 */
import { type KeyObject } from 'node:crypto';
import { encodeMessage, decodeMessage as decodeCoap } from '../coap/codec.js';
import { Method, ResponseCode } from '../coap/codes.js';
import { encodeString, getOption, MessageType, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { coseAead, CoseCurve, CoseHash, coseKeyFromKeyObject, CoseSignAlg, decrypt0, ecdhSharedSecret, encodeCcs, generateEcdhKeyPair, rawKeyParts, type EcdhKeyPair, generatePrivateKey } from '../cose/index.js';
import { chainPrk } from '../edhoc/auth.js';
import { xor } from '../edhoc/common.js';
import { ccsCredential, CredentialStore, EdhocInitiator, EdhocResponder, findCipherSuite, type CipherSuite, type EdhocMethod } from '../edhoc/index.js';
import { edhocExtract, edhocKdf, ExporterLabel, hashLength, KdfLabel, prkExporterFrom, transcriptHash2, transcriptHashNext } from '../edhoc/key-schedule.js';
import { parseMessage1, parseMessage2, parseSingleCiphertext } from '../edhoc/messages.js';
import { initiatorUsesStaticDh, responderUsesStaticDh } from '../edhoc/state.js';
import { deriveContext, type ContextParams } from '../oscore/context.js';
import { decodeOscoreOption } from '../oscore/option.js';
import { protectRequest, protectResponse, unprotectRequest, unprotectResponse } from '../oscore/protect.js';

/** What went over the air: EDHOC message_1..3, then one OSCORE request and its response. */
export interface Recording {
  readonly message1: Uint8Array;
  readonly message2: Uint8Array;
  readonly message3: Uint8Array;
  readonly request: Uint8Array;
  readonly response: Uint8Array;
}

/** What the attacker obtains later: both long-term private keys, and the (public) credentials. */
export interface LongTermSecrets {
  readonly initiatorKey: KeyObject;
  readonly responderKey: KeyObject;
  readonly credI: Uint8Array;
  readonly credR: Uint8Array;
}

export type Decryption = { ok: true; request: string; response: string } | { ok: false; failedAt: string };

export interface ForwardSecrecyRun {
  readonly method: EdhocMethod;
  readonly suite: number;
  readonly recording: Recording;
  readonly longTerm: LongTermSecrets;
  /** PRK_out of the run — thrown away by the endpoints; kept here only for the "with the session key" half. */
  readonly sessionKey: Uint8Array;
  /** G_XY, kept only for the control decryption. */
  readonly ephemeralSecret: Uint8Array;
}

const SECRET_PATH = 'door';
const SECRET_PAYLOAD = 'door code 4711';
const C_I = Uint8Array.of(0x0c);
const C_R = Uint8Array.of(0x18, 0x2a);

/** The long-term key a party needs in `method`: a static DH key on the suite curve, or a signature key. */
function longTermKey(suite: CipherSuite, staticDh: boolean): KeyObject {
  if (staticDh && suite.curve === CoseCurve.X25519) return generatePrivateKey(CoseCurve.X25519);
  if (!staticDh && suite.signature === CoseSignAlg.EdDSA) return generatePrivateKey(CoseCurve.Ed25519);
  if ((staticDh ? suite.curve === CoseCurve.P256 : suite.signature === CoseSignAlg.ES256)) return generatePrivateKey(CoseCurve.P256);
  throw new RangeError(`cipher suite ${suite.id}: this run makes X25519, Ed25519 and P-256 keys only`);
}

const hkdfForHash = (hash: number): number => {
  if (hash !== CoseHash.SHA_256) throw new RangeError(`no OSCORE HKDF for application hash ${hash} here`);
  return -10; // HKDF SHA-256 (RFC 8613 §3.2)
};

/** Runs EDHOC and one OSCORE exchange in process and returns what a recorder kept. */
export function recordEdhocOscoreExchange(method: EdhocMethod, suiteId: number): ForwardSecrecyRun {
  const suite = findCipherSuite(suiteId);
  if (suite === undefined) throw new RangeError(`cipher suite ${suiteId} is not supported`);
  const keyI = longTermKey(suite, initiatorUsesStaticDh(method));
  const keyR = longTermKey(suite, responderUsesStaticDh(method));
  const ccsI = encodeCcs({ sub: 'client', coseKey: coseKeyFromKeyObject(keyI, { kid: Uint8Array.of(0x01) }) });
  const ccsR = encodeCcs({ sub: 'server', coseKey: coseKeyFromKeyObject(keyR, { kid: Uint8Array.of(0x02) }) });
  let ephemeralI: EcdhKeyPair | undefined;
  const initiator = new EdhocInitiator({
    method,
    suites: [suiteId],
    credential: ccsCredential(ccsI, keyI),
    peers: new CredentialStore().addCcs(ccsR),
    ephemeralKey: (crv) => (ephemeralI = generateEcdhKeyPair(crv)),
  });
  const responder = new EdhocResponder({ suites: [suiteId], credentials: [ccsCredential(ccsR, keyR)], peers: new CredentialStore().addCcs(ccsI) });
  const { state: waitM2, message: message1 } = initiator.prepareMessage1({ connectionId: C_I });
  const { state: waitM3, message: message2 } = responder.processMessage1(message1).prepareMessage2({ connectionId: C_R });
  const { state: sentM3, message: message3 } = waitM2.processMessage2(message2).prepareMessage3();
  const serverSession = waitM3.processMessage3(message3).complete();
  const clientSession = sentM3.complete();

  const oscoreParams = (p: ReturnType<typeof clientSession.oscore>): ContextParams => ({
    masterSecret: p.masterSecret,
    masterSalt: p.masterSalt,
    senderId: p.senderId,
    recipientId: p.recipientId,
    aead: p.aeadAlgorithm,
    hkdf: hkdfForHash(p.hashAlgorithm),
  });
  const client = deriveContext(oscoreParams(clientSession.oscore()));
  const server = deriveContext(oscoreParams(serverSession.oscore()));
  const get: CoapMessage = {
    type: MessageType.CON,
    code: Method.GET,
    messageId: 0x3a01,
    token: Uint8Array.of(0x71),
    options: [{ number: OptionNumber.UriPath, value: encodeString(SECRET_PATH) }],
    payload: new Uint8Array(0),
  };
  const { message: protectedRequest } = protectRequest(get, client.sender, 0);
  const request = new Uint8Array(encodeMessage(protectedRequest));
  const atServer = unprotectRequest(decodeCoap(request), () => server.recipient);
  if (!atServer.ok) throw new Error(`the server could not verify the recorded request: ${atServer.reason}`);
  const content: CoapMessage = { type: MessageType.ACK, code: ResponseCode.Content, messageId: get.messageId, token: get.token, options: [], payload: encodeString(SECRET_PAYLOAD) };
  const response = new Uint8Array(encodeMessage(protectResponse(content, server.sender, atServer.binding)));

  const gY = (parseMessage2(message2, ephemeralI!.publicKey.length) as { gY: Uint8Array }).gY;
  return {
    method,
    suite: suiteId,
    recording: { message1, message2, message3, request, response },
    longTerm: { initiatorKey: keyI, responderKey: keyR, credI: ccsI, credR: ccsR },
    sessionKey: clientSession.prkOut,
    ephemeralSecret: ecdhSharedSecret(suite.curve, ephemeralI!.privateKey, gY),
  };
}

/** From PRK_out: the OSCORE context of App. A.1 (IDs read off the recording), then the request and response. */
export function decryptWithSessionKey(recording: Recording, suiteId: number, prkOut: Uint8Array): Decryption {
  const suite = findCipherSuite(suiteId)!;
  const prkExporter = prkExporterFrom(suite, prkOut);
  const exporter = (label: number, length: number): Uint8Array => edhocKdf(suite, prkExporter, label, new Uint8Array(0), length);
  const request = decodeCoap(recording.request);
  const kid = decodeOscoreOption(getOption(request, OptionNumber.Oscore)!).kid!;
  const { connectionIdI } = parseMessage1(recording.message1);
  // The client sends with C_R (the request's kid) and receives with C_I (message_1's C_I).
  const client = deriveContext({
    masterSecret: exporter(ExporterLabel.OSCORE_MASTER_SECRET, coseAead(suite.appAead).keyLength),
    masterSalt: exporter(ExporterLabel.OSCORE_MASTER_SALT, 8),
    senderId: kid,
    recipientId: connectionIdI,
    aead: suite.appAead,
    hkdf: hkdfForHash(suite.appHash),
  });
  const opened = unprotectRequest(request, () => ({ ...client.sender, recipientId: client.senderId, recipientKey: client.senderKey }));
  if (!opened.ok) return { ok: false, failedAt: `OSCORE request: ${opened.reason}` };
  const answer = unprotectResponse(decodeCoap(recording.response), client.recipient, opened.binding);
  if (!answer.ok) return { ok: false, failedAt: `OSCORE response: ${answer.reason}` };
  const path = opened.message.options.filter((o) => o.number === OptionNumber.UriPath).map((o) => Buffer.from(o.value).toString('utf8'));
  return { ok: true, request: `GET /${path.join('/')}`, response: Buffer.from(answer.message.payload).toString('utf8') };
}

/**
 * The EDHOC key schedule as a passive observer runs it with a guess for G_XY: PRK_2e, the
 * keystream of message_2, PRK_3e2m (with G_RX from the Responder's long-term key, methods 1 and 3),
 * K_3/IV_3 — message_3 is AEAD-protected, so a wrong guess fails there — then PRK_4e3m (with G_IY
 * from the Initiator's long-term key, methods 2 and 3), PRK_out and the OSCORE traffic.
 */
export function decryptWithEphemeralGuess(recording: Recording, longTerm: LongTermSecrets, gXY: Uint8Array): Decryption {
  const m1 = parseMessage1(recording.message1);
  const suite = findCipherSuite(m1.suites[m1.suites.length - 1]!)!;
  const m2 = parseMessage2(recording.message2, m1.gX.length);
  if (!('gY' in m2)) return { ok: false, failedAt: 'message_2 is an error message' };
  const th2 = transcriptHash2(suite, m2.gY, recording.message1);
  const prk2e = edhocExtract(suite, th2, gXY);
  const plaintext2 = xor(m2.ciphertext2, edhocKdf(suite, prk2e, KdfLabel.KEYSTREAM_2, th2, m2.ciphertext2.length));
  const gRX = responderUsesStaticDh(m1.method) ? ecdhSharedSecret(suite.curve, rawKeyParts(longTerm.responderKey).d!, m1.gX) : undefined;
  const prk3e2m = chainPrk(suite, prk2e, KdfLabel.SALT_3E2M, th2, gRX);
  const th3 = transcriptHashNext(suite, th2, plaintext2, longTerm.credR);
  const aead = coseAead(suite.aead);
  const ciphertext3 = parseSingleCiphertext(recording.message3, 'message_3');
  if (!(ciphertext3 instanceof Uint8Array)) return { ok: false, failedAt: 'message_3 is an error message' };
  const plaintext3 = decrypt0(
    suite.aead,
    edhocKdf(suite, prk3e2m, KdfLabel.K_3, th3, aead.keyLength),
    edhocKdf(suite, prk3e2m, KdfLabel.IV_3, th3, aead.nonceLength),
    ciphertext3,
    new Uint8Array(0),
    th3,
  );
  if (plaintext3 === undefined) return { ok: false, failedAt: 'message_3: AEAD authentication failed under the recomputed K_3/IV_3' };
  const gIY = initiatorUsesStaticDh(m1.method) ? ecdhSharedSecret(suite.curve, rawKeyParts(longTerm.initiatorKey).d!, m2.gY) : undefined;
  const prk4e3m = chainPrk(suite, prk3e2m, KdfLabel.SALT_4E3M, th3, gIY);
  const th4 = transcriptHashNext(suite, th3, plaintext3, longTerm.credI);
  return decryptWithSessionKey(recording, suite.id, edhocKdf(suite, prk4e3m, KdfLabel.PRK_OUT, th4, hashLength(suite)));
}

/**
 * Every Diffie-Hellman value the attacker can compute from the recording and the long-term keys
 * (a static DH key with each public key in sight: G_X, G_Y and the other party's static key), each
 * tried as G_XY. A signature key is no DH key: for method 0 the list is empty and the guess is the
 * only thing left — here, the all-zero string.
 */
export function attackerCandidates(recording: Recording, longTerm: LongTermSecrets): { label: string; gXY: Uint8Array }[] {
  const m1 = parseMessage1(recording.message1);
  const suite = findCipherSuite(m1.suites[m1.suites.length - 1]!)!;
  const m2 = parseMessage2(recording.message2, m1.gX.length);
  const gY = 'gY' in m2 ? m2.gY : new Uint8Array(0);
  const candidates: { label: string; gXY: Uint8Array }[] = [{ label: 'a guess (zero bytes)', gXY: new Uint8Array(m1.gX.length) }];
  const own = (key: KeyObject): Uint8Array | undefined => {
    const parts = rawKeyParts(key);
    return parts.crv === suite.curve ? parts.d : undefined;
  };
  const publics: [string, Uint8Array][] = [
    ['G_X', m1.gX],
    ['G_Y', gY],
    ['the Initiator static key', rawKeyParts(longTerm.initiatorKey).x],
    ['the Responder static key', rawKeyParts(longTerm.responderKey).x],
  ];
  for (const [who, key] of [['Initiator', longTerm.initiatorKey], ['Responder', longTerm.responderKey]] as const) {
    const d = own(key);
    if (d === undefined) continue;
    for (const [name, point] of publics) {
      try {
        candidates.push({ label: `${who} long-term key × ${name}`, gXY: ecdhSharedSecret(suite.curve, d, point) });
      } catch {
        // Not a point on this curve (a signature key's public part): no DH value from it.
      }
    }
  }
  return candidates;
}

export interface ForwardSecrecyOutcome {
  readonly method: EdhocMethod;
  readonly suite: number;
  /** Every attempt with the long-term keys, and how it failed (or what it read). */
  readonly withLongTermKeys: readonly { label: string; result: Decryption }[];
  readonly withSessionKey: Decryption;
  readonly control: Decryption;
}

export function runForwardSecrecy(method: EdhocMethod, suiteId: number): ForwardSecrecyOutcome {
  const run = recordEdhocOscoreExchange(method, suiteId);
  // The endpoints' sessions are gone; the attacker has the recording and the long-term keys.
  const withLongTermKeys = attackerCandidates(run.recording, run.longTerm).map(({ label, gXY }) => ({ label, result: decryptWithEphemeralGuess(run.recording, run.longTerm, gXY) }));
  return {
    method,
    suite: suiteId,
    withLongTermKeys,
    withSessionKey: decryptWithSessionKey(run.recording, suiteId, run.sessionKey),
    control: decryptWithEphemeralGuess(run.recording, run.longTerm, run.ephemeralSecret),
  };
}

/** The baseline: OSCORE from a pre-shared master secret, recorded, then decrypted with that long-term secret. */
export function runPreSharedBaseline(): Decryption {
  const masterSecret = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
  const params = { masterSecret, masterSalt: Uint8Array.of(0x9e, 0x7c), aead: 10, hkdf: -10 };
  const client = deriveContext({ ...params, senderId: Uint8Array.of(1), recipientId: new Uint8Array(0) });
  const server = deriveContext({ ...params, senderId: new Uint8Array(0), recipientId: Uint8Array.of(1) });
  const get: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: 1, token: Uint8Array.of(9), options: [{ number: OptionNumber.UriPath, value: encodeString(SECRET_PATH) }], payload: new Uint8Array(0) };
  const request = protectRequest(get, client.sender, 0).message;
  const atServer = unprotectRequest(request, () => server.recipient);
  if (!atServer.ok) throw new Error(atServer.reason);
  const response = protectResponse({ ...get, type: MessageType.ACK, code: ResponseCode.Content, options: [], payload: encodeString(SECRET_PAYLOAD) }, server.sender, atServer.binding);
  // Later: the attacker holds the master secret (the only long-term key) and the two recorded messages.
  const attacker = deriveContext({ ...params, senderId: new Uint8Array(0), recipientId: Uint8Array.of(1) });
  const opened = unprotectRequest(decodeCoap(encodeMessage(request)), () => attacker.recipient);
  if (!opened.ok) return { ok: false, failedAt: `OSCORE request: ${opened.reason}` };
  const answer = unprotectResponse(decodeCoap(encodeMessage(response)), { ...attacker.sender, recipientId: attacker.senderId, recipientKey: attacker.senderKey }, opened.binding);
  if (!answer.ok) return { ok: false, failedAt: `OSCORE response: ${answer.reason}` };
  return { ok: true, request: `GET /${SECRET_PATH}`, response: Buffer.from(answer.message.payload).toString('utf8') };
}

export const FORWARD_SECRECY_SECRET = SECRET_PAYLOAD;

/** The runs the threat report shows: each method with suites 0 and 2, and the pre-shared baseline. */
export interface ForwardSecrecyReport {
  readonly runs: readonly ForwardSecrecyOutcome[];
  readonly preShared: Decryption;
}

export function runForwardSecrecyMatrix(): ForwardSecrecyReport {
  const runs: ForwardSecrecyOutcome[] = [];
  for (const method of [0, 1, 2, 3] as const) for (const suite of [0, 2]) runs.push(runForwardSecrecy(method, suite));
  return { runs, preShared: runPreSharedBaseline() };
}
