/**
 * The browser build's EDHOC (src/browser/edhoc.ts on the Web Crypto provider) in Node, whose
 * globalThis.crypto.subtle is Web Crypto too: the RFC 9529 traces of
 * test/support/edhoc-traces-browser.ts (the same ones headless Chromium runs in
 * test/browser-chromium.test.ts), and handshakes between the browser build and the Node build's
 * EDHOC (node:crypto, KeyObjects) in both roles, static DH and ES256 signatures.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as browser from '../src/browser/index.js';
import { CoseCurve, ec2PrivateKey, fromHex, toHex } from '../src/cose/index.js';
import { ccsCredential, CredentialStore, EdhocInitiator, EdhocResponder, type EdhocMethod } from '../src/edhoc/index.js';
import { TRACES } from './edhoc-trace-vectors.js';
import { checkRfc9529 } from './support/edhoc-traces-browser.js';

test('RFC 9529 traces through the browser build with Web Crypto (in Node)', async () => {
  const results = await checkRfc9529(browser);
  assert.equal(results.length, 15, JSON.stringify(results));
  for (const r of results) assert.ok(r.ok, `${r.name}: ${r.detail}`);
});

// The P-256 identities of trace 2 (RFC 9529 §3), as static DH or ES256 keys.
const credR = fromHex(TRACES['3.4']!['CRED_R (CBOR Data Item)']!);
const credI = fromHex(TRACES['3.5']!['CRED_I (CBOR Data Item)']!);
const skR = fromHex(TRACES['3.4']!['SK_R (Raw Value)']!);
const skI = fromHex(TRACES['3.5']!['SK_I (Raw Value)']!);

for (const method of [3, 0] as EdhocMethod[]) {
  test(`method ${method}, suite 2: the browser build as Initiator, the Node build as Responder`, async () => {
    const responder = new EdhocResponder({ suites: [2], credentials: [ccsCredential(credR, ec2PrivateKey(CoseCurve.P256, skR))], peers: new CredentialStore().addCcs(credI) });
    const initiator = new browser.BrowserEdhocInitiator({
      method,
      suites: [2],
      credential: browser.ccsOwnCredential(credI, { crv: CoseCurve.P256, d: skI }),
      peers: browser.pinnedPeers([browser.ccsPeer(credR)]),
    });
    const { state: i1, message: m1 } = await initiator.prepareMessage1({ connectionId: Uint8Array.of(0x0a) });
    const { state: r2, message: m2 } = responder.processMessage1(m1).prepareMessage2({ connectionId: Uint8Array.of(0x0b) });
    const { state: i3, message: m3 } = await (await i1.processMessage2(m2)).prepareMessage3();
    const { session: nodeSession, message: m4 } = r2.processMessage3(m3).prepareMessage4();
    const pageSession = await i3.processMessage4(m4);
    const [page, node] = [await pageSession.oscore(), nodeSession.oscore()];
    assert.equal(toHex(page.masterSecret), toHex(node.masterSecret));
    assert.equal(toHex(page.masterSalt), toHex(node.masterSalt));
    assert.equal(toHex(page.senderId), toHex(node.recipientId));
    assert.equal(toHex(nodeSession.peer.cred), toHex(credI));
  });

  test(`method ${method}, suite 2: the Node build as Initiator, the browser build as Responder`, async () => {
    const initiator = new EdhocInitiator({ method, suites: [2], credential: ccsCredential(credI, ec2PrivateKey(CoseCurve.P256, skI)), peers: new CredentialStore().addCcs(credR) });
    const responder = new browser.BrowserEdhocResponder({
      suites: [2],
      credentials: [browser.ccsOwnCredential(credR, { crv: CoseCurve.P256, d: skR })],
      peers: browser.pinnedPeers([browser.ccsPeer(credI)]),
    });
    const { state: i1, message: m1 } = initiator.prepareMessage1({ connectionId: Uint8Array.of(0x0a) });
    const { state: r2, message: m2 } = await (await responder.processMessage1(m1)).prepareMessage2({ connectionId: Uint8Array.of(0x0b) });
    const { state: i3, message: m3 } = i1.processMessage2(m2).prepareMessage3();
    const { session: pageSession, message: m4 } = await (await r2.processMessage3(m3)).prepareMessage4();
    const nodeSession = i3.processMessage4(m4);
    assert.equal(toHex((await pageSession.oscore()).masterSecret), toHex(nodeSession.oscore().masterSecret));
    assert.equal(toHex(pageSession.peer.cred), toHex(credI));
  });
}

test('a page refuses an ID_CRED kind it cannot pin with error 1, an unknown kid with error 3', () => {
  const peers = browser.pinnedPeers([browser.ccsPeer(credR)]);
  assert.throws(() => peers.resolve({ map: new Map([[13, new Uint8Array(1)]]), encoded: new Uint8Array(0) } as never), (e: unknown) => e instanceof browser.EdhocError && e.code === 1);
  assert.equal(peers.resolve(browser.idCredKid(Uint8Array.of(0x99))), undefined);
  assert.equal(toHex(peers.resolve(browser.idCredKid(Uint8Array.of(0x32)))!.cred), toHex(credR));
});
