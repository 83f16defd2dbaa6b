/**
 * RFC 9529 (the EDHOC traces) through the browser build, written for any runtime: a page in
 * headless Chromium (test/browser-chromium.test.ts, bundled by esbuild) or Node
 * (test/browser-edhoc.test.ts) passes in the coapsec/browser module it loaded. Both roles of trace 1
 * (§2: method 0, suite 0, Ed25519 certificates by x5t) and trace 2 (§3: method 3, suite 2 after
 * error 2, P-256 CCS by kid) run with the traces' ephemeral keys, every message, PRK_out,
 * PRK_exporter, the OSCORE parameters and the key update compared byte for byte; the §4 invalid
 * message_1s must each be refused with error 1. Then two round trips with fresh ephemeral keys
 * (ES256 and Ed25519 signing, which the traces' methods leave partly unexercised). Only the trace
 * data is imported: everything else is the module under test.
 */
import type * as Browser from '../../src/browser/index.js';
import { TRACES } from '../edhoc-trace-vectors.js';
import type { VectorResult } from './oscore-appendix-c.js';

type Api = typeof Browser;
type Session = Browser.BrowserEdhocSession;
type Expect = (what: string, actual: Uint8Array | string | number | undefined, section: string, label: string) => void;

export async function checkRfc9529(api: Api): Promise<VectorResult[]> {
  const vector = (section: string, label: string): string => {
    const hex = TRACES[section]?.[label];
    if (hex === undefined) throw new Error(`no vector §${section} "${label}"`);
    return hex;
  };
  const v = (section: string, label: string): Uint8Array => api.hexToBytes(vector(section, label))!;
  const results: VectorResult[] = [];
  const check = async (name: string, run: (expect: Expect) => Promise<void>): Promise<void> => {
    const differences: string[] = [];
    const expect: Expect = (what, actual, section, label) => {
      const shown = actual instanceof Uint8Array ? api.bytesToHex(actual) : actual;
      const expected = vector(section, label);
      if (shown !== expected) differences.push(`${what}: got ${String(shown)}, expected ${expected} (§${section} ${label})`);
    };
    try {
      await run(expect);
      results.push({ name, ok: differences.length === 0, detail: differences.join('; ') });
    } catch (error) {
      results.push({ name, ok: false, detail: `threw ${String(error)}` });
    }
  };
  const fixedKey = (crv: number, section: string) => () => api.webEcdhKeyPair(crv, v(section, 'X (Raw Value)'));

  async function sessions(expect: Expect, initiator: Session, responder: Session, keys: { out: string; oscore: string; update: string }): Promise<void> {
    for (const [side, s] of [['initiator', initiator], ['responder', responder]] as const) {
      expect(`${side} PRK_out`, s.prkOut, keys.out, 'PRK_out (Raw Value)');
      expect(`${side} PRK_exporter`, s.prkExporter, keys.out, 'PRK_exporter (Raw Value)');
      const o = await s.oscore();
      expect(`${side} Master Secret`, o.masterSecret, keys.oscore, 'OSCORE Master Secret (Raw Value)');
      expect(`${side} Master Salt`, o.masterSalt, keys.oscore, 'OSCORE Master Salt (Raw Value)');
      expect(`${side} Sender ID`, o.senderId, keys.oscore, side === 'initiator' ? "Client's OSCORE Sender ID (Raw Value)" : "Server's OSCORE Sender ID (Raw Value)");
      await s.keyUpdate(v(keys.update, 'context for KeyUpdate (Raw Value)'));
      expect(`${side} PRK_out after KeyUpdate`, s.prkOut, keys.update, 'PRK_out after KeyUpdate (Raw Value)');
      const updated = await s.oscore();
      expect(`${side} Master Secret after KeyUpdate`, updated.masterSecret, keys.update, 'OSCORE Master Secret after KeyUpdate (Raw Value)');
      expect(`${side} Master Salt after KeyUpdate`, updated.masterSalt, keys.update, 'OSCORE Master Salt after KeyUpdate (Raw Value)');
    }
  }

  await check('RFC 9529 §2: method 0, suite 0, X.509 by x5t, both roles', async (expect) => {
    const certR = api.hexToBytes(vector('2.2', 'CRED_R (Raw Value)'))!;
    const certI = api.hexToBytes(vector('2.3', 'CRED_I (Raw Value)'))!;
    const initiator = new api.BrowserEdhocInitiator({
      method: 0,
      suites: [0],
      credential: await api.x509OwnCredential(certI, { crv: api.CoseCurve.Ed25519, d: v('2.3', 'SK_I (Raw Value)') }),
      peers: api.pinnedPeers([await api.x509Peer(certR, { crv: api.CoseCurve.Ed25519, x: v('2.2', 'PK_R (Raw Value)') }, 'CN=EDHOC Responder Ed25519')]),
      ephemeralKey: fixedKey(api.CoseCurve.X25519, '2.1'),
    });
    const responder = new api.BrowserEdhocResponder({
      suites: [0],
      credentials: [await api.x509OwnCredential(certR, { crv: api.CoseCurve.Ed25519, d: v('2.2', 'SK_R (Raw Value)') })],
      peers: api.pinnedPeers([await api.x509Peer(certI, { crv: api.CoseCurve.Ed25519, x: v('2.3', 'PK_I (Raw Value)') })]),
      ephemeralKey: (crv) => api.webEcdhKeyPair(crv, v('2.2', 'Y (Raw Value)')),
    });
    const { state: i1, message: m1 } = await initiator.prepareMessage1({ connectionId: v('2.1', 'C_I (Raw Value)') });
    expect('message_1', m1, '2.1', 'message_1 (CBOR Sequence)');
    const r1 = await responder.processMessage1(m1);
    const { state: r2, message: m2 } = await r1.prepareMessage2({ connectionId: v('2.2', 'C_R (Raw Value)') });
    expect('message_2', m2, '2.2', 'message_2 (CBOR Sequence)');
    const i2 = await i1.processMessage2(m2);
    const { state: i3, message: m3 } = await i2.prepareMessage3();
    expect('message_3', m3, '2.3', 'message_3 (CBOR Sequence)');
    const r3 = await r2.processMessage3(m3);
    const { session: rs, message: m4 } = await r3.prepareMessage4();
    expect('message_4', m4, '2.4', 'message_4 (CBOR Sequence)');
    const is = await i3.processMessage4(m4);
    if (is.peer.subject !== 'CN=EDHOC Responder Ed25519') throw new Error(`the initiator authenticated ${String(is.peer.subject)}`);
    await sessions(expect, is, rs, { out: '2.5', oscore: '2.6', update: '2.7' });
  });

  await check('RFC 9529 §3: method 3, suite 2 after error 2, P-256 CCS by kid, both roles', async (expect) => {
    const credR = v('3.4', 'CRED_R (CBOR Data Item)');
    const credI = v('3.5', 'CRED_I (CBOR Data Item)');
    const config: Browser.BrowserInitiatorConfig = {
      method: 3,
      suites: [6, 2],
      credential: api.ccsOwnCredential(credI, { crv: api.CoseCurve.P256, d: v('3.5', 'SK_I (Raw Value)') }),
      peers: api.pinnedPeers([api.ccsPeer(credR)]),
      // §3.1 offers suite 6 with a P-256 G_X; the Responder refuses by suite before reading it.
      ephemeralKey: fixedKey(api.CoseCurve.P256, '3.1'),
    };
    const newResponder = () =>
      new api.BrowserEdhocResponder({
        suites: [2],
        credentials: [api.ccsOwnCredential(credR, { crv: api.CoseCurve.P256, d: v('3.4', 'SK_R (Raw Value)') })],
        peers: api.pinnedPeers([api.ccsPeer(credI)]),
        ephemeralKey: (crv) => api.webEcdhKeyPair(crv, v('3.4', 'Y (Raw Value)')),
      });
    const first = await new api.BrowserEdhocInitiator(config).prepareMessage1({ connectionId: v('3.1', 'C_I (Raw Value)') });
    expect('first message_1', first.message, '3.1', 'message_1 (CBOR Sequence)');
    let refusal: Uint8Array | undefined;
    try {
      await newResponder().processMessage1(first.message);
    } catch (e) {
      if (e instanceof api.EdhocError && e.code === 2) refusal = e.errorMessage;
      else throw e;
    }
    if (refusal === undefined) throw new Error('suite 6 was not refused');
    expect('error message', refusal, '3.2', 'error (CBOR Sequence)');
    let peerError: Browser.EdhocPeerError | undefined;
    try {
      await first.state.processMessage2(refusal);
    } catch (e) {
      if (e instanceof api.EdhocPeerError) peerError = e;
      else throw e;
    }
    if (peerError === undefined) throw new Error('the error message was not taken for error 2');
    const retry = api.BrowserEdhocInitiator.afterSuitesRejected({ ...config, ephemeralKey: fixedKey(api.CoseCurve.P256, '3.3') }, peerError);
    const { state: i1, message: m1 } = await retry.prepareMessage1({ connectionId: v('3.3', 'C_I (Raw Value)') });
    expect('message_1', m1, '3.3', 'message_1 (CBOR Sequence)');
    const r1 = await newResponder().processMessage1(m1);
    const { state: r2, message: m2 } = await r1.prepareMessage2({ connectionId: v('3.4', 'C_R (raw value)') });
    expect('message_2', m2, '3.4', 'message_2 (CBOR Sequence)');
    const i2 = await i1.processMessage2(m2);
    const { state: i3, message: m3 } = await i2.prepareMessage3();
    expect('message_3', m3, '3.5', 'message_3 (CBOR Sequence)');
    const r3 = await r2.processMessage3(m3);
    const { session: rs, message: m4 } = await r3.prepareMessage4();
    expect('message_4', m4, '3.6', 'message_4 (CBOR Sequence)');
    const is = await i3.processMessage4(m4);
    await sessions(expect, is, rs, { out: '3.7', oscore: '3.8', update: '3.9' });
  });

  // Not traces: both roles in this runtime with fresh ephemeral keys (Web Crypto's generateKey),
  // signatures made and checked here — ES256 (suite 2, the trace 2 keys as signing keys) and
  // Ed25519 (suite 0, the trace 1 certificates).
  await check('round trip, method 0, suite 2 (ES256, P-256 ECDH), fresh ephemeral keys', async () => {
    const credR = v('3.4', 'CRED_R (CBOR Data Item)');
    const credI = v('3.5', 'CRED_I (CBOR Data Item)');
    const initiator = new api.BrowserEdhocInitiator({
      method: 0,
      suites: [2],
      credential: api.ccsOwnCredential(credI, { crv: api.CoseCurve.P256, d: v('3.5', 'SK_I (Raw Value)') }),
      peers: api.pinnedPeers([api.ccsPeer(credR)]),
    });
    const responder = new api.BrowserEdhocResponder({
      suites: [2],
      credentials: [api.ccsOwnCredential(credR, { crv: api.CoseCurve.P256, d: v('3.4', 'SK_R (Raw Value)') })],
      peers: api.pinnedPeers([api.ccsPeer(credI)]),
    });
    await roundTrip(initiator, responder, credR, credI);
  });

  await check('round trip, method 0, suite 0 (Ed25519, X25519), fresh ephemeral keys', async () => {
    const certR = api.hexToBytes(vector('2.2', 'CRED_R (Raw Value)'))!;
    const certI = api.hexToBytes(vector('2.3', 'CRED_I (Raw Value)'))!;
    const initiator = new api.BrowserEdhocInitiator({
      method: 0,
      suites: [0],
      credential: await api.x509OwnCredential(certI, { crv: api.CoseCurve.Ed25519, d: v('2.3', 'SK_I (Raw Value)') }),
      peers: api.pinnedPeers([await api.x509Peer(certR, { crv: api.CoseCurve.Ed25519, x: v('2.2', 'PK_R (Raw Value)') })]),
    });
    const responder = new api.BrowserEdhocResponder({
      suites: [0],
      credentials: [await api.x509OwnCredential(certR, { crv: api.CoseCurve.Ed25519, d: v('2.2', 'SK_R (Raw Value)') })],
      peers: api.pinnedPeers([await api.x509Peer(certI, { crv: api.CoseCurve.Ed25519, x: v('2.3', 'PK_I (Raw Value)') })]),
    });
    await roundTrip(initiator, responder, api.hexToBytes(vector('2.2', 'CRED_R (CBOR Data Item)'))!, api.hexToBytes(vector('2.3', 'CRED_I (CBOR Data Item)'))!);
  });

  async function roundTrip(initiator: Browser.BrowserEdhocInitiator, responder: Browser.BrowserEdhocResponder, credR: Uint8Array, credI: Uint8Array): Promise<void> {
    const { state: i1, message: m1 } = await initiator.prepareMessage1({ connectionId: Uint8Array.of(0x0a) });
    const { state: r2, message: m2 } = await (await responder.processMessage1(m1)).prepareMessage2({ connectionId: Uint8Array.of(0x0b) });
    const { state: i3, message: m3 } = await (await i1.processMessage2(m2)).prepareMessage3();
    const rs = await (await r2.processMessage3(m3)).complete();
    const is = await i3.complete();
    const [a, b] = [await is.oscore(), await rs.oscore()];
    if (api.bytesToHex(a.masterSecret) !== api.bytesToHex(b.masterSecret) || api.bytesToHex(a.masterSalt) !== api.bytesToHex(b.masterSalt)) throw new Error('the two sides derived different OSCORE keys');
    if (api.bytesToHex(is.peer.cred) !== api.bytesToHex(credR) || api.bytesToHex(rs.peer.cred) !== api.bytesToHex(credI)) throw new Error('a side authenticated the wrong credential');
  }

  const invalidMessage1: [string, number[]][] = [
    ['4.1.1', [2]],
    ['4.1.2', [2]],
    ['4.1.3', [2]],
    ['4.1.4', [2]],
    ['4.2.1', [24]],
    ['4.2.2', [2]],
    ['4.2.3', [2]],
    ['4.2.4', [0]],
    ['4.2.6', [2]],
    ['4.3.1', [2]],
    ['4.3.2', [2]],
  ];
  for (const [section, suites] of invalidMessage1) {
    await check(`RFC 9529 §${section}: message_1 refused with error 1`, async () => {
      const credR = v('3.4', 'CRED_R (CBOR Data Item)');
      const responder = new api.BrowserEdhocResponder({
        suites,
        credentials: [api.ccsOwnCredential(credR, { crv: api.CoseCurve.P256, d: v('3.4', 'SK_R (Raw Value)') })],
        peers: api.pinnedPeers([]),
      });
      try {
        await responder.processMessage1(v(section, 'Invalid message_1'));
      } catch (e) {
        if (e instanceof api.EdhocError && e.code === 1) return;
        throw new Error(`refused with ${String(e)}, not EDHOC error 1`);
      }
      throw new Error('accepted');
    });
  }
  return results;
}
