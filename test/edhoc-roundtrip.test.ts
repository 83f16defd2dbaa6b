/**
 * Our Initiator against our Responder: every method × supported cipher suite, each credential
 * kind, and the failures a peer or an attacker can cause, each with the error RFC 9528 gives it.
 */
import assert from 'node:assert/strict';
import { type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { CoseCurve, coseKeyFromKeyObject, decodeSequenceStrict, encodeCcs, encodeSequence, fromHex, okpPrivateKey, okpPublicKey, decodeStrict, toHex, generatePrivateKey, generateKeyPairOn } from '../src/cose/index.js';
import {
  ccsCredential,
  CredentialStore,
  EdhocConfigError,
  EdhocError,
  EdhocInitiator,
  EdhocPeerError,
  EdhocResponder,
  EdhocStateError,
  padding,
  SUPPORTED_SUITES,
  x509Credential,
  type EadItem,
  type EdhocMethod,
  type EdhocSession,
  type InitiatorConfig,
  type OwnCredential,
  type ResponderConfig,
} from '../src/edhoc/index.js';
import { TRACES } from './edhoc-trace-vectors.js';

const SIGNATURE_KEY: Record<number, () => KeyObject> = {
  0: () => generatePrivateKey(CoseCurve.Ed25519),
  2: () => generatePrivateKey(CoseCurve.P256),
  24: () => generatePrivateKey(CoseCurve.P384),
};
const DH_KEY: Record<number, () => KeyObject> = {
  [CoseCurve.X25519]: () => generatePrivateKey(CoseCurve.X25519),
  [CoseCurve.P256]: () => generatePrivateKey(CoseCurve.P256),
  [CoseCurve.P384]: () => generatePrivateKey(CoseCurve.P384),
};
const SUITE_CURVE: Record<number, number> = { 0: 4, 1: 4, 2: 1, 3: 1, 4: 4, 5: 1, 6: 4, 24: 2 };
const SUITE_SIGNATURE: Record<number, number> = { 0: 0, 1: 0, 2: 2, 3: 2, 4: 0, 5: 2, 6: 2, 24: 24 };

function credentialFor(suite: number, staticDh: boolean, name: string, kid: Uint8Array): { own: OwnCredential; ccs: Uint8Array } {
  const privateKey = staticDh ? DH_KEY[SUITE_CURVE[suite]!]!() : SIGNATURE_KEY[SUITE_SIGNATURE[suite]!]!();
  const ccs = encodeCcs({ sub: name, coseKey: coseKeyFromKeyObject(privateKey, { kid }) });
  return { own: ccsCredential(ccs, privateKey), ccs };
}

interface Pair {
  initiator: InitiatorConfig;
  responder: ResponderConfig;
  ccsI: Uint8Array;
  ccsR: Uint8Array;
}

function pair(method: EdhocMethod, suite: number, extra: { byValue?: boolean } = {}): Pair {
  const i = credentialFor(suite, method === 2 || method === 3, 'initiator', Uint8Array.of(0x0a));
  const r = credentialFor(suite, method === 1 || method === 3, 'responder', Uint8Array.of(0x0b));
  const ownI = extra.byValue === true ? ccsCredential(i.ccs, i.own.privateKey, { byValue: true }) : i.own;
  return {
    initiator: { method, suites: [suite], credential: ownI, peers: new CredentialStore().addCcs(r.ccs) },
    responder: { suites: [suite], credentials: [r.own], peers: new CredentialStore().addCcs(i.ccs) },
    ccsI: i.ccs,
    ccsR: r.ccs,
  };
}

const C_I = Uint8Array.of(0x37);
const C_R = fromHex('abcd');

function handshake(p: Pair, opts: { ead1?: EadItem[]; ead2?: EadItem[]; ead3?: EadItem[]; ead4?: EadItem[]; message4?: boolean } = {}) {
  const { state: i1, message: m1 } = new EdhocInitiator(p.initiator).prepareMessage1({ connectionId: C_I, ...(opts.ead1 ? { ead: opts.ead1 } : {}) });
  const r1 = new EdhocResponder(p.responder).processMessage1(m1);
  const { state: r2, message: m2 } = r1.prepareMessage2({ connectionId: C_R, ...(opts.ead2 ? { ead: opts.ead2 } : {}) });
  const i2 = i1.processMessage2(m2);
  const { state: i3, message: m3 } = i2.prepareMessage3(opts.ead3 ? { ead: opts.ead3 } : {});
  const r3 = r2.processMessage3(m3);
  let initiator: EdhocSession;
  let responder: EdhocSession;
  if (opts.message4 === false) {
    responder = r3.complete();
    initiator = i3.complete();
  } else {
    const out = r3.prepareMessage4(opts.ead4 ? { ead: opts.ead4 } : {});
    responder = out.session;
    initiator = i3.processMessage4(out.message);
  }
  return { m1, m2, m3, r1, i2, r3, initiator, responder };
}

function expectEdhocError(fn: () => unknown, code: number, pattern?: RegExp): EdhocError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof EdhocError, `expected EdhocError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return e;
  }
  assert.fail('no error');
}

const hex = toHex;

describe('every method × supported cipher suite', () => {
  assert.deepEqual([...SUPPORTED_SUITES], [0, 1, 2, 3, 4, 5, 6, 24]);
  for (const suite of SUPPORTED_SUITES) {
    for (const method of [0, 1, 2, 3] as const) {
      it(`method ${method}, suite ${suite}: both sides agree on keys and identities`, () => {
        const p = pair(method, suite);
        const { initiator, responder } = handshake(p);
        assert.equal(hex(initiator.prkOut), hex(responder.prkOut));
        assert.equal(initiator.prkOut.length, suite === 24 ? 48 : 32);
        const oi = initiator.oscore();
        const or = responder.oscore();
        assert.equal(hex(oi.masterSecret), hex(or.masterSecret));
        assert.equal(hex(oi.masterSalt), hex(or.masterSalt));
        assert.equal(hex(oi.senderId), hex(C_R));
        assert.equal(hex(or.senderId), hex(C_I));
        assert.equal(hex(initiator.peer.cred), hex(p.ccsR));
        assert.equal(hex(responder.peer.cred), hex(p.ccsI));
        assert.equal(responder.peer.subject, 'initiator');
        assert.equal(hex(initiator.exporter(42, Uint8Array.of(1), 20)), hex(responder.exporter(42, Uint8Array.of(1), 20)));
      });
    }
  }
});

describe('credentials', () => {
  it('a CCS sent by value (kccs) is accepted when the store holds it', () => {
    const { responder } = handshake(pair(0, 2, { byValue: true }));
    assert.equal(responder.peer.kind, 'ccs');
  });

  it('an unknown kid gets error 3, an unknown CCS by value too', () => {
    for (const byValue of [false, true]) {
      const p = pair(3, 2, { byValue });
      const { state, message } = new EdhocInitiator(p.initiator).prepareMessage1({ connectionId: C_I });
      const r1 = new EdhocResponder({ ...p.responder, peers: new CredentialStore() }).processMessage1(message);
      const { state: r2, message: m2 } = r1.prepareMessage2({ connectionId: C_R });
      const { message: m3 } = state.processMessage2(m2).prepareMessage3();
      const error = expectEdhocError(() => r2.processMessage3(m3), 3);
      assert.equal(hex(error.errorMessage), '03f5');
    }
  });

  it('a wrong credential under the right kid fails verification with error 1', () => {
    for (const method of [0, 3] as const) {
      const p = pair(method, 2);
      const impostor = pair(method, 2);
      const { state, message } = new EdhocInitiator(p.initiator).prepareMessage1({ connectionId: C_I });
      const r1 = new EdhocResponder({ ...p.responder, credentials: impostor.responder.credentials }).processMessage1(message);
      const { message: m2 } = r1.prepareMessage2({ connectionId: C_R });
      expectEdhocError(() => state.processMessage2(m2), 1, /Signature_or_MAC_2 does not verify/);
    }
  });

  it('a peer that authenticates but is not allowed is refused with error 1', () => {
    const p = pair(0, 0);
    const peers = new CredentialStore({ allow: (peer) => peer.subject !== 'initiator' }).addCcs(p.ccsI);
    const { state, message } = new EdhocInitiator(p.initiator).prepareMessage1({ connectionId: C_I });
    const { state: r2, message: m2 } = new EdhocResponder({ ...p.responder, peers }).processMessage1(message).prepareMessage2({ connectionId: C_R });
    const { message: m3 } = state.processMessage2(m2).prepareMessage3();
    expectEdhocError(() => r2.processMessage3(m3), 1, /not authorized/);
  });

  describe('X.509 (the RFC 9529 §2 certificates)', () => {
    const v = (s: string, l: string) => fromHex(TRACES[s]![l]!);
    const certR = decodeStrict(v('2.2', 'CRED_R (CBOR Data Item)')) as Uint8Array;
    const certI = decodeStrict(v('2.3', 'CRED_I (CBOR Data Item)')) as Uint8Array;
    const root = { subject: 'CN=EDHOC Root Ed25519', publicKey: okpPublicKey(CoseCurve.Ed25519, v('2.8.3', 'pub')) };
    const skR = okpPrivateKey(CoseCurve.Ed25519, v('2.2', 'SK_R (Raw Value)'));
    const skI = okpPrivateKey(CoseCurve.Ed25519, v('2.3', 'SK_I (Raw Value)'));
    const now = () => Date.parse('2025-01-01T00:00:00Z');
    const x509Pair = (anchors: typeof root[], at = now): Pair => ({
      initiator: { method: 0, suites: [0], credential: x509Credential([certI], skI, 'x5chain'), peers: new CredentialStore({ trustAnchors: anchors, now: at }).addCertificate(certR) },
      responder: { suites: [0], credentials: [x509Credential([certR], skR, 'x5chain')], peers: new CredentialStore({ trustAnchors: anchors, now: at }) },
      ccsI: new Uint8Array(0),
      ccsR: new Uint8Array(0),
    });

    it('x5chain to a trust anchor authenticates both sides', () => {
      const { initiator, responder } = handshake(x509Pair([root]));
      assert.equal(initiator.peer.subject, 'CN=EDHOC Responder Ed25519');
      assert.equal(responder.peer.certificates?.length, 1);
    });

    it('a chain to no configured anchor, or an expired certificate, is refused', () => {
      const other = { subject: 'CN=EDHOC Root Ed25519', publicKey: generateKeyPairOn(CoseCurve.Ed25519).publicKey };
      const { state, message } = new EdhocInitiator(x509Pair([other]).initiator).prepareMessage1({ connectionId: C_I });
      const { message: m2 } = new EdhocResponder(x509Pair([other]).responder).processMessage1(message).prepareMessage2({ connectionId: C_R });
      expectEdhocError(() => state.processMessage2(m2), 1, /trust anchor/);
      const late = x509Pair([root], () => Date.parse('2031-01-01T00:00:00Z'));
      const { state: s2, message: n1 } = new EdhocInitiator(late.initiator).prepareMessage1({ connectionId: C_I });
      const { message: n2 } = new EdhocResponder(late.responder).processMessage1(n1).prepareMessage2({ connectionId: C_R });
      expectEdhocError(() => s2.processMessage2(n2), 1, /not valid at this time/);
    });
  });
});

describe('failures', () => {
  it('a tampered message_2 or message_3 fails its MAC/AEAD check with error 1', () => {
    const p = pair(3, 0);
    const { state, message } = new EdhocInitiator(p.initiator).prepareMessage1({ connectionId: C_I });
    const { message: m2 } = new EdhocResponder(p.responder).processMessage1(message).prepareMessage2({ connectionId: C_R });
    const bad2 = m2.slice();
    bad2[bad2.length - 1]! ^= 0x01; // inside MAC_2
    expectEdhocError(() => state.processMessage2(bad2), 1, /does not verify/);

    const q = pair(0, 2);
    const { state: i1, message: n1 } = new EdhocInitiator(q.initiator).prepareMessage1({ connectionId: C_I });
    const { state: r2, message: n2 } = new EdhocResponder(q.responder).processMessage1(n1).prepareMessage2({ connectionId: C_R });
    const { message: n3 } = i1.processMessage2(n2).prepareMessage3();
    const bad3 = n3.slice();
    bad3[5]! ^= 0x80;
    expectEdhocError(() => r2.processMessage3(bad3), 1, /message_3 does not verify/);
  });

  it('a replayed message_1: the used state refuses it, and a fresh Responder’s session cannot be completed with the old message_3', () => {
    const p = pair(3, 2);
    const { m1, m3 } = handshake(p);
    const responder = new EdhocResponder(p.responder);
    const { state: r2 } = responder.processMessage1(m1).prepareMessage2({ connectionId: C_R });
    assert.throws(() => responder.processMessage1(m1), EdhocStateError);
    expectEdhocError(() => r2.processMessage3(m3), 1, /message_3 does not verify/);
  });

  it('every state is single-use', () => {
    const p = pair(0, 0);
    const { state, message } = new EdhocInitiator(p.initiator).prepareMessage1({ connectionId: C_I });
    const r1 = new EdhocResponder(p.responder).processMessage1(message);
    const { message: m2 } = r1.prepareMessage2({ connectionId: C_R });
    assert.throws(() => r1.prepareMessage2({ connectionId: C_R }), EdhocStateError);
    const i2 = state.processMessage2(m2);
    assert.throws(() => state.processMessage2(m2), EdhocStateError);
    i2.prepareMessage3();
    assert.throws(() => i2.prepareMessage3(), EdhocStateError);
  });

  it('an unsupported suite gets error 2 with SUITES_R, and the Initiator retries with the common one', () => {
    const p = pair(0, 2);
    const initiatorConfig: InitiatorConfig = { ...p.initiator, suites: [0, 2] };
    const responder = { ...p.responder, suites: [2, 3] };
    const { state, message } = new EdhocInitiator(initiatorConfig).prepareMessage1({ connectionId: C_I });
    const error = expectEdhocError(() => new EdhocResponder(responder).processMessage1(message), 2);
    assert.deepEqual(decodeSequenceStrict(error.errorMessage), [2, [2, 3]]);
    let peerError: EdhocPeerError | undefined;
    assert.throws(() => state.processMessage2(error.errorMessage), (e) => {
      peerError = e as EdhocPeerError;
      return e instanceof EdhocPeerError && e.code === 2;
    });
    const retry = EdhocInitiator.afterSuitesRejected(initiatorConfig, peerError!);
    assert.deepEqual(retry.suitesI, [0, 2]);
    const { state: i1, message: m1 } = retry.prepareMessage1({ connectionId: C_I });
    const { message: m2 } = new EdhocResponder(responder).processMessage1(m1).prepareMessage2({ connectionId: C_R });
    i1.processMessage2(m2);
    // No common suite at all: the retry cannot be built.
    assert.throws(() => EdhocInitiator.afterSuitesRejected({ ...initiatorConfig, suites: [0] }, peerError!), EdhocConfigError);
  });

  it('a Responder that supports a suite the Initiator prefers over the selected one answers error 2 naming it', () => {
    const p = pair(0, 2);
    const { message } = new EdhocInitiator({ ...p.initiator, suites: [0, 2], selectedSuite: 2 }).prepareMessage1({ connectionId: C_I });
    const error = expectEdhocError(() => new EdhocResponder({ ...p.responder, suites: [2, 0] }).processMessage1(message), 2);
    assert.deepEqual(decodeSequenceStrict(error.errorMessage), [2, 0]);
  });

  it('truncated messages are refused with error 1', () => {
    const p = pair(3, 2);
    const { state, message } = new EdhocInitiator(p.initiator).prepareMessage1({ connectionId: C_I });
    for (let cut = 1; cut < message.length; cut += 7) {
      expectEdhocError(() => new EdhocResponder(p.responder).processMessage1(message.subarray(0, message.length - cut)), 1);
    }
    const { state: r2, message: m2 } = new EdhocResponder(p.responder).processMessage1(message).prepareMessage2({ connectionId: C_R });
    expectEdhocError(() => state.processMessage2(m2.subarray(0, m2.length - 1)), 1);
    const again = new EdhocInitiator(p.initiator).prepareMessage1({ connectionId: C_I });
    const { state: r2b, message: m2b } = new EdhocResponder(p.responder).processMessage1(again.message).prepareMessage2({ connectionId: C_R });
    const { message: m3 } = again.state.processMessage2(m2b).prepareMessage3();
    expectEdhocError(() => r2b.processMessage3(m3.subarray(0, m3.length - 2)), 1);
    assert.ok(r2.spent === false);
  });

  it('a peer error message is reported, not answered', () => {
    const p = pair(0, 0);
    const { state } = new EdhocInitiator(p.initiator).prepareMessage1({ connectionId: C_I });
    assert.throws(() => state.processMessage2(encodeSequence(1, 'Method not')), (e) => e instanceof EdhocPeerError && e.code === 1 && e.diagnostic === 'Method not');
  });

  it('C_R equal to C_I is refused on both sides', () => {
    const p = pair(0, 0);
    const { message } = new EdhocInitiator(p.initiator).prepareMessage1({ connectionId: C_I });
    assert.throws(() => new EdhocResponder(p.responder).processMessage1(message).prepareMessage2({ connectionId: C_I }), EdhocConfigError);
  });

  it('a method the Responder does not accept gets error 1', () => {
    const p = pair(1, 0);
    const { message } = new EdhocInitiator(p.initiator).prepareMessage1({ connectionId: C_I });
    expectEdhocError(() => new EdhocResponder({ ...p.responder, methods: [0, 3] }).processMessage1(message), 1, /Method not supported/);
  });
});

describe('EAD', () => {
  it('padding is dropped, non-critical items are delivered, in every message', () => {
    const item = { label: 5, value: Uint8Array.of(1, 2) };
    const out = handshake(pair(0, 0), { ead1: [...padding(30), item], ead2: [item, ...padding(3)], ead3: [...padding(1), item], ead4: [item] });
    assert.deepEqual(out.r1.ead1, [item]);
    assert.deepEqual(out.i2.ead2, [item]);
    assert.deepEqual(out.r3.ead3, [item]);
    assert.deepEqual(out.initiator.ead, [item]);
    assert.equal(padding(30).length, 1);
  });

  it('an unknown critical item aborts with error 1; an understood one is delivered', () => {
    const p = pair(0, 0);
    const critical = [{ label: -7, value: Uint8Array.of(9) }];
    const { message } = new EdhocInitiator(p.initiator).prepareMessage1({ connectionId: C_I, ead: critical });
    expectEdhocError(() => new EdhocResponder(p.responder).processMessage1(message), 1, /critical EAD item -7/);
    const r1 = new EdhocResponder({ ...p.responder, understoodEadLabels: [7] }).processMessage1(message);
    assert.deepEqual(r1.ead1, critical);
  });
});
