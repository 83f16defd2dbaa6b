/**
 * RFC 9529 (draft-ietf-lake-traces-09) byte for byte: trace 1 (§2: method 0, suite 0, X.509 by
 * x5t), trace 2 (§3: method 3, suite 2 after a suite negotiation, CCS by kid), every intermediate
 * value, the OSCORE parameters and the key update; and the §4 invalid messages, each refused.
 * The hex comes from test/edhoc-trace-vectors.ts, generated from the RFC text.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CoseCurve,
  CoseSignAlg,
  ec2PrivateKey,
  ecdhKeyPairFromPrivate,
  ecdhSharedSecret,
  encodeCbor,
  encrypt0,
  encStructure0,
  fromHex,
  okpPrivateKey,
  okpPublicKey,
  signBytes,
  toHex,
  decodeStrict,
} from '../src/cose/index.js';
import {
  ccsCredential,
  CredentialStore,
  EdhocError,
  EdhocInitiator,
  EdhocPeerError,
  EdhocResponder,
  edhocExtract,
  edhocKdf,
  findCipherSuite,
  identifierToCbor,
  KdfLabel,
  parsePlaintext2,
  transcriptHash2,
  transcriptHashNext,
  x509Credential,
  type EdhocSession,
  type InitiatorConfig,
} from '../src/edhoc/index.js';
import { TRACES } from './edhoc-trace-vectors.js';

const v = (section: string, label: string): Uint8Array => {
  const hex = TRACES[section]?.[label];
  if (hex === undefined) throw new Error(`no vector §${section} "${label}"`);
  return fromHex(hex);
};
const hex = (b: Uint8Array): string => toHex(b);
const same = (actual: Uint8Array, section: string, label: string): void => assert.equal(hex(actual), hex(v(section, label)), `§${section} ${label}`);

/** CRED_x of trace 1 is the bstr-wrapped DER certificate. */
const der = (section: string, label: string): Uint8Array => decodeStrict(v(section, label)) as Uint8Array;

function assertEdhocError(fn: () => unknown, code: number, pattern?: RegExp): EdhocError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof EdhocError, `expected EdhocError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (pattern) assert.match(e.message, pattern);
    return e;
  }
  assert.fail('no error thrown');
}

describe('RFC 9529 §2: method 0, cipher suite 0, X.509 by x5t', () => {
  const suite = findCipherSuite(0)!;
  const certR = der('2.2', 'CRED_R (CBOR Data Item)');
  const certI = der('2.3', 'CRED_I (CBOR Data Item)');
  const root = { subject: 'CN=EDHOC Root Ed25519', publicKey: okpPublicKey(CoseCurve.Ed25519, v('2.8.3', 'pub')) };
  const now = () => Date.parse('2024-06-01T00:00:00Z');
  const initiatorPeers = new CredentialStore({ trustAnchors: [root], now }).addCertificate(certR);
  const responderPeers = new CredentialStore({ trustAnchors: [root], now }).addCertificate(certI);
  const skR = okpPrivateKey(CoseCurve.Ed25519, v('2.2', 'SK_R (Raw Value)'));
  const skI = okpPrivateKey(CoseCurve.Ed25519, v('2.3', 'SK_I (Raw Value)'));

  function run(): { m1: Uint8Array; m2: Uint8Array; m3: Uint8Array; m4: Uint8Array; initiator: EdhocSession; responder: EdhocSession } {
    const initiator = new EdhocInitiator({
      method: 0,
      suites: [0],
      credential: x509Credential([certI], skI, 'x5t'),
      peers: initiatorPeers,
      ephemeralKey: (crv) => ecdhKeyPairFromPrivate(crv, v('2.1', 'X (Raw Value)')),
    });
    const responder = new EdhocResponder({
      suites: [0],
      credentials: [x509Credential([certR], skR, 'x5t')],
      peers: responderPeers,
      ephemeralKey: (crv) => ecdhKeyPairFromPrivate(crv, v('2.2', 'Y (Raw Value)')),
    });
    const { state: i1, message: m1 } = initiator.prepareMessage1({ connectionId: v('2.1', 'C_I (Raw Value)') });
    const r1 = responder.processMessage1(m1);
    const { state: r2, message: m2 } = r1.prepareMessage2({ connectionId: v('2.2', 'C_R (Raw Value)') });
    const i2 = i1.processMessage2(m2);
    const { state: i3, message: m3 } = i2.prepareMessage3();
    const r3 = r2.processMessage3(m3);
    const { session: rs, message: m4 } = r3.prepareMessage4();
    const is = i3.processMessage4(m4);
    return { m1, m2, m3, m4, initiator: is, responder: rs };
  }

  it('produces message_1 … message_4 byte for byte', () => {
    const r = run();
    same(r.m1, '2.1', 'message_1 (CBOR Sequence)');
    same(r.m2, '2.2', 'message_2 (CBOR Sequence)');
    same(r.m3, '2.3', 'message_3 (CBOR Sequence)');
    same(r.m4, '2.4', 'message_4 (CBOR Sequence)');
  });

  it('derives PRK_out, PRK_exporter, the OSCORE parameters and the key update on both sides', () => {
    const { initiator, responder } = run();
    for (const s of [initiator, responder]) {
      same(s.prkOut, '2.5', 'PRK_out (Raw Value)');
      same(s.prkExporter, '2.5', 'PRK_exporter (Raw Value)');
      const o = s.oscore();
      same(o.masterSecret, '2.6', 'OSCORE Master Secret (Raw Value)');
      same(o.masterSalt, '2.6', 'OSCORE Master Salt (Raw Value)');
      assert.equal(o.aeadAlgorithm, 10);
      assert.equal(o.hashAlgorithm, -16);
    }
    same(initiator.oscore().senderId, '2.6', "Client's OSCORE Sender ID (Raw Value)");
    same(responder.oscore().senderId, '2.6', "Server's OSCORE Sender ID (Raw Value)");
    assert.equal(hex(initiator.oscore().recipientId), hex(responder.oscore().senderId));
    for (const s of [initiator, responder]) {
      s.keyUpdate(v('2.7', 'context for KeyUpdate (Raw Value)'));
      same(s.prkOut, '2.7', 'PRK_out after KeyUpdate (Raw Value)');
      same(s.prkExporter, '2.7', 'PRK_exporter after KeyUpdate (Raw Value)');
      same(s.oscore().masterSecret, '2.7', 'OSCORE Master Secret after KeyUpdate (Raw Value)');
      same(s.oscore().masterSalt, '2.7', 'OSCORE Master Salt after KeyUpdate (Raw Value)');
    }
  });

  it('hands each side the other one’s validated certificate', () => {
    const { initiator, responder } = run();
    assert.equal(initiator.peer.kind, 'x509');
    assert.equal(initiator.peer.subject, 'CN=EDHOC Responder Ed25519');
    assert.equal(responder.peer.subject, 'CN=EDHOC Initiator Ed25519');
  });

  it('reproduces every intermediate value of the key schedule', () => {
    const m1 = v('2.1', 'message_1 (CBOR Sequence)');
    const gY = v('2.2', 'G_Y (Raw Value)');
    const gXY = ecdhSharedSecret(CoseCurve.X25519, v('2.1', 'X (Raw Value)'), gY);
    same(gXY, '2.2', 'G_XY (Raw Value) (ECDH shared secret)');
    same(ecdhSharedSecret(CoseCurve.X25519, v('2.2', 'Y (Raw Value)'), v('2.1', 'G_X (Raw Value)')), '2.2', 'G_XY (Raw Value) (ECDH shared secret)');
    same(ecdhKeyPairFromPrivate(CoseCurve.X25519, v('2.2', 'Y (Raw Value)')).publicKey, '2.2', 'G_Y (Raw Value)');
    const th2 = transcriptHash2(suite, gY, m1);
    same(th2, '2.2', 'TH_2 (Raw Value)');
    const prk2e = edhocExtract(suite, th2, gXY);
    same(prk2e, '2.2', 'PRK_2e (Raw Value)');
    same(prk2e, '2.2', 'PRK_3e2m (Raw Value)');
    const mac2 = edhocKdf(suite, prk2e, KdfLabel.MAC_2, v('2.2', 'context_2 (CBOR Sequence)'), 32);
    same(mac2, '2.2', 'MAC_2 (Raw Value)');
    const toSign2 = v('2.2', 'Message to be signed 2 (CBOR Data Item)');
    same(signBytes(CoseSignAlg.EdDSA, skR, toSign2), '2.2', 'Signature_or_MAC_2 (Raw Value)');
    const plaintext2 = v('2.2', 'PLAINTEXT_2 (CBOR Sequence)');
    same(edhocKdf(suite, prk2e, KdfLabel.KEYSTREAM_2, th2, plaintext2.length), '2.2', 'KEYSTREAM_2 (Raw Value)');
    const credR = v('2.2', 'CRED_R (CBOR Data Item)');
    const th3 = transcriptHashNext(suite, th2, plaintext2, credR);
    same(th3, '2.3', 'TH_3 (Raw Value)');
    same(prk2e, '2.3', 'PRK_4e3m (Raw Value)');
    const mac3 = edhocKdf(suite, prk2e, KdfLabel.MAC_3, v('2.3', 'context_3 (CBOR Sequence)'), 32);
    same(mac3, '2.3', 'MAC_3 (Raw Value)');
    same(signBytes(CoseSignAlg.EdDSA, skI, v('2.3', 'Message to be signed 3 (CBOR Data Item)')), '2.3', 'Signature_or_MAC_3 (Raw Value)');
    same(encStructure0(new Uint8Array(0), th3), '2.3', 'A_3 (CBOR Data Item)');
    const k3 = edhocKdf(suite, prk2e, KdfLabel.K_3, th3, 16);
    const iv3 = edhocKdf(suite, prk2e, KdfLabel.IV_3, th3, 13);
    same(k3, '2.3', 'K_3 (Raw Value)');
    same(iv3, '2.3', 'IV_3 (Raw Value)');
    const plaintext3 = v('2.3', 'PLAINTEXT_3 (CBOR Sequence)');
    same(encrypt0(10, k3, iv3, plaintext3, new Uint8Array(0), th3), '2.3', 'CIPHERTEXT_3 (Raw Value)');
    const th4 = transcriptHashNext(suite, th3, plaintext3, v('2.3', 'CRED_I (CBOR Data Item)'));
    same(th4, '2.3', 'TH_4 (Raw Value)');
    same(edhocKdf(suite, prk2e, KdfLabel.K_4, th4, 16), '2.4', 'K_4 (Raw Value)');
    same(edhocKdf(suite, prk2e, KdfLabel.IV_4, th4, 13), '2.4', 'IV_4 (Raw Value)');
    same(encStructure0(new Uint8Array(0), th4), '2.4', 'A_4 (CBOR Data Item)');
    same(edhocKdf(suite, prk2e, KdfLabel.PRK_OUT, th4, 32), '2.5', 'PRK_out (Raw Value)');
  });
});

describe('RFC 9529 §3: method 3, cipher suite 2 after error 2, CCS by kid', () => {
  const suite = findCipherSuite(2)!;
  const credR = v('3.4', 'CRED_R (CBOR Data Item)');
  const credI = v('3.5', 'CRED_I (CBOR Data Item)');
  const skR = ec2PrivateKey(CoseCurve.P256, v('3.4', 'SK_R (Raw Value)'));
  const skI = ec2PrivateKey(CoseCurve.P256, v('3.5', 'SK_I (Raw Value)'));
  const ephemeralFrom = (section: string, label: string) => (crv: number) => ecdhKeyPairFromPrivate(crv, v(section, label));
  const initiatorConfig: InitiatorConfig = {
    method: 3,
    suites: [6, 2],
    credential: ccsCredential(credI, skI),
    peers: new CredentialStore().addCcs(credR),
    // §3.1's G_X is the x-coordinate of a P-256 key although suite 6 uses X25519; the Responder
    // refuses by suite before reading it, so the trace reproduces with the P-256 key as printed.
    ephemeralKey: () => ecdhKeyPairFromPrivate(CoseCurve.P256, v('3.1', 'X (Raw Value)')),
  };
  const newResponder = () =>
    new EdhocResponder({
      suites: [2],
      credentials: [ccsCredential(credR, skR)],
      peers: new CredentialStore().addCcs(credI),
      ephemeralKey: ephemeralFrom('3.4', 'Y (Raw Value)'),
    });

  function run() {
    const first = new EdhocInitiator(initiatorConfig).prepareMessage1({ connectionId: v('3.1', 'C_I (Raw Value)') });
    const refusal = assertEdhocError(() => newResponder().processMessage1(first.message), 2);
    let peerError: EdhocPeerError | undefined;
    try {
      first.state.processMessage2(refusal.errorMessage);
    } catch (e) {
      if (e instanceof EdhocPeerError) peerError = e;
    }
    assert.ok(peerError !== undefined && peerError.code === 2);
    const retry = EdhocInitiator.afterSuitesRejected({ ...initiatorConfig, ephemeralKey: ephemeralFrom('3.3', 'X (Raw Value)') }, peerError);
    const { state: i1, message: m1 } = retry.prepareMessage1({ connectionId: v('3.3', 'C_I (Raw Value)') });
    const r1 = newResponder().processMessage1(m1);
    const { state: r2, message: m2 } = r1.prepareMessage2({ connectionId: v('3.4', 'C_R (raw value)') });
    const i2 = i1.processMessage2(m2);
    const { state: i3, message: m3 } = i2.prepareMessage3();
    const r3 = r2.processMessage3(m3);
    const { session: responder, message: m4 } = r3.prepareMessage4();
    const initiator = i3.processMessage4(m4);
    return { first: first.message, error: refusal.errorMessage, suitesI: retry.suitesI, m1, m2, m3, m4, initiator, responder };
  }

  it('negotiates: suite 6 refused with error 02 02, then message_1 with SUITES_I [6, 2]', () => {
    const r = run();
    same(r.first, '3.1', 'message_1 (CBOR Sequence)');
    same(r.error, '3.2', 'error (CBOR Sequence)');
    assert.deepEqual(r.suitesI, [6, 2]);
    same(r.m1, '3.3', 'message_1 (CBOR Sequence)');
  });

  it('produces message_2 … message_4 of 45, 19 and 9 bytes byte for byte', () => {
    const r = run();
    same(r.m2, '3.4', 'message_2 (CBOR Sequence)');
    same(r.m3, '3.5', 'message_3 (CBOR Sequence)');
    same(r.m4, '3.6', 'message_4 (CBOR Sequence)');
    assert.deepEqual([r.m1.length, r.m2.length, r.m3.length], [39, 45, 19]);
  });

  it('derives PRK_out, PRK_exporter, the OSCORE parameters and the key update on both sides', () => {
    const { initiator, responder } = run();
    for (const s of [initiator, responder]) {
      same(s.prkOut, '3.7', 'PRK_out (Raw Value)');
      same(s.prkExporter, '3.7', 'PRK_exporter (Raw Value)');
      same(s.oscore().masterSecret, '3.8', 'OSCORE Master Secret (Raw Value)');
      same(s.oscore().masterSalt, '3.8', 'OSCORE Master Salt (Raw Value)');
    }
    same(initiator.oscore().senderId, '3.8', "Client's OSCORE Sender ID (Raw Value)");
    same(responder.oscore().senderId, '3.8', "Server's OSCORE Sender ID (Raw Value)");
    assert.equal(initiator.peer.kind, 'ccs');
    assert.equal(hex(initiator.peer.cred), hex(credR));
    assert.equal(hex(responder.peer.cred), hex(credI));
    for (const s of [initiator, responder]) {
      s.keyUpdate(v('3.9', 'context for KeyUpdate (Raw Value)'));
      same(s.prkOut, '3.9', 'PRK_out after KeyUpdate (Raw Value)');
      same(s.prkExporter, '3.9', 'PRK_exporter after KeyUpdate (Raw Value)');
      same(s.oscore().masterSecret, '3.9', 'OSCORE Master Secret after KeyUpdate (Raw Value)');
      same(s.oscore().masterSalt, '3.9', 'OSCORE Master Salt after KeyUpdate (Raw Value)');
    }
  });

  it('reproduces every intermediate value, static DH included', () => {
    const m1 = v('3.3', 'message_1 (CBOR Sequence)');
    const x = v('3.3', 'X (Raw Value)');
    const y = v('3.4', 'Y (Raw Value)');
    same(ecdhKeyPairFromPrivate(CoseCurve.P256, x).publicKey, '3.3', 'G_X (Raw Value)');
    const gY = v('3.4', 'G_Y (Raw Value)');
    const gXY = ecdhSharedSecret(CoseCurve.P256, x, gY);
    same(gXY, '3.4', 'G_XY (Raw Value) (ECDH shared secret)');
    const th2 = transcriptHash2(suite, gY, m1);
    same(th2, '3.4', 'TH_2 (Raw Value)');
    const prk2e = edhocExtract(suite, th2, gXY);
    same(prk2e, '3.4', 'PRK_2e (Raw Value)');
    const salt3e2m = edhocKdf(suite, prk2e, KdfLabel.SALT_3E2M, th2, 32);
    same(salt3e2m, '3.4', 'SALT_3e2m (Raw Value)');
    const gRX = ecdhSharedSecret(CoseCurve.P256, v('3.4', 'SK_R (Raw Value)'), v('3.3', 'G_X (Raw Value)'));
    same(gRX, '3.4', 'G_RX (Raw Value) (ECDH shared secret)');
    const prk3e2m = edhocExtract(suite, salt3e2m, gRX);
    same(prk3e2m, '3.4', 'PRK_3e2m (Raw Value)');
    same(edhocKdf(suite, prk3e2m, KdfLabel.MAC_2, v('3.4', 'context_2 (CBOR Sequence)'), 8), '3.4', 'MAC_2 (Raw Value)');
    const plaintext2 = v('3.4', 'PLAINTEXT_2 (CBOR Sequence)');
    same(edhocKdf(suite, prk2e, KdfLabel.KEYSTREAM_2, th2, plaintext2.length), '3.4', 'KEYSTREAM_2 (Raw Value)');
    const th3 = transcriptHashNext(suite, th2, plaintext2, credR);
    same(th3, '3.5', 'TH_3 (Raw Value)');
    const salt4e3m = edhocKdf(suite, prk3e2m, KdfLabel.SALT_4E3M, th3, 32);
    same(salt4e3m, '3.5', 'SALT_4e3m (Raw Value)');
    const gIY = ecdhSharedSecret(CoseCurve.P256, y, v('3.5', "Initiator's public authentication key, 'x'-coordinate (Raw Value)"));
    same(gIY, '3.5', 'G_IY (Raw Value) (ECDH shared secret)');
    const prk4e3m = edhocExtract(suite, salt4e3m, gIY);
    same(prk4e3m, '3.5', 'PRK_4e3m (Raw Value)');
    same(edhocKdf(suite, prk4e3m, KdfLabel.MAC_3, v('3.5', 'context_3 (CBOR Sequence)'), 8), '3.5', 'MAC_3 (Raw Value)');
    const k3 = edhocKdf(suite, prk3e2m, KdfLabel.K_3, th3, 16);
    const iv3 = edhocKdf(suite, prk3e2m, KdfLabel.IV_3, th3, 13);
    same(k3, '3.5', 'K_3 (Raw Value)');
    same(iv3, '3.5', 'IV_3 (Raw Value)');
    const plaintext3 = v('3.5', 'PLAINTEXT_3 (CBOR Sequence)');
    same(encrypt0(10, k3, iv3, plaintext3, new Uint8Array(0), th3), '3.5', 'CIPHERTEXT_3 (Raw Value)');
    const th4 = transcriptHashNext(suite, th3, plaintext3, credI);
    same(th4, '3.5', 'TH_4 (Raw Value)');
    same(edhocKdf(suite, prk4e3m, KdfLabel.K_4, th4, 16), '3.6', 'K_4 (Raw Value)');
    same(edhocKdf(suite, prk4e3m, KdfLabel.IV_4, th4, 13), '3.6', 'IV_4 (Raw Value)');
    same(edhocKdf(suite, prk4e3m, KdfLabel.PRK_OUT, th4, 32), '3.7', 'PRK_out (Raw Value)');
    same(encodeCbor(identifierToCbor(v('3.4', 'C_R (raw value)'))), '3.4', 'C_R (CBOR Data Item)');
  });
});

describe('RFC 9529 §4: invalid messages are refused', () => {
  const credR = v('3.4', 'CRED_R (CBOR Data Item)');
  const skR = ec2PrivateKey(CoseCurve.P256, v('3.4', 'SK_R (Raw Value)'));
  const responder = (suites: number[]) =>
    new EdhocResponder({ suites, credentials: [ccsCredential(credR, skR)], peers: new CredentialStore(), ephemeralKey: (crv) => ecdhKeyPairFromPrivate(crv, v('3.4', 'Y (Raw Value)')) });
  const message1Cases: [string, number[], RegExp][] = [
    ['4.1.1', [2], /at least 4 elements|METHOD/],
    ['4.1.2', [2], /C_I must be encoded as an integer/],
    ['4.1.3', [2], /SUITES_I/],
    ['4.1.4', [2], /G_X must be a byte string/],
    ['4.2.1', [24], /G_X: .*48 bytes/],
    ['4.2.2', [2], /G_X: .*field prime/],
    ['4.2.3', [2], /G_X: .*not a point/],
    ['4.2.4', [0], /low-order/],
    ['4.2.6', [2], /G_X: .*32 bytes/],
    ['4.3.1', [2], /deterministic CBOR/],
    ['4.3.2', [2], /deterministic CBOR/],
  ];
  for (const [section, suites, pattern] of message1Cases) {
    it(`§${section}: message_1 refused with error 1`, () => {
      const label = Object.keys(TRACES[section]!)[0]!;
      const error = assertEdhocError(() => responder(suites).processMessage1(v(section, label)), 1, pattern);
      assert.equal(decodeStrict(error.errorMessage.subarray(0, 1)), 1);
    });
  }

  it('§4.1.5: a message_2 of two elements is refused', () => {
    const { state } = new EdhocInitiator({
      method: 3,
      suites: [2],
      credential: ccsCredential(v('3.5', 'CRED_I (CBOR Data Item)'), ec2PrivateKey(CoseCurve.P256, v('3.5', 'SK_I (Raw Value)'))),
      peers: new CredentialStore().addCcs(credR),
    }).prepareMessage1({ connectionId: v('3.3', 'C_I (Raw Value)') });
    assertEdhocError(() => state.processMessage2(v('4.1.5', 'Invalid message_2')), 1, /single byte string/);
  });

  const plaintextCases: [string, RegExp][] = [
    ['4.1.6', /compact encoding/],
    ['4.1.7', /must be encoded as an integer/],
    ['4.2.5', /wrong length/],
  ];
  for (const [section, pattern] of plaintextCases) {
    it(`§${section}: PLAINTEXT_2 refused`, () => {
      assertEdhocError(() => parsePlaintext2(v(section, 'Invalid PLAINTEXT_2'), [8], new Set()), 1, pattern);
    });
  }
});
