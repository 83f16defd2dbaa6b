/**
 * KUDOS support signalled in EDHOC (draft-ietf-core-oscore-key-update §4.8), over real runs of the
 * EDHOC core with each peer in each role: the Initiator asks in message_1, the Responder answers
 * in message_2, the Initiator answers in message_3 (not after NONE); each records what the other
 * said, and a KUDOS session for the EDHOC-derived context is provisioned with that capability.
 * The items §4.8 says to ignore are ignored.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { coseKeyFromKeyObject, encodeCcs, generatePrivateKey, CoseCurve } from '../src/cose/index.js';
import { ccsCredential, CredentialStore, EdhocInitiator, EdhocResponder, type EadItem, type InitiatorConfig, type ResponderConfig } from '../src/edhoc/index.js';
import { KUDOS_EAD_LABEL, kudosEad2, kudosEad3, kudosEadAsk, peerCapabilityOf, readKudosEad, type KudosSupport } from '../src/kudos/edhoc-ead.js';
import { KudosFileStorage, KudosSession } from '../src/kudos/index.js';
import { CLIENT_IDENTITY, tempDirectory } from './kudos-helpers.js';

function identity(name: string, kid: number) {
  const privateKey = generatePrivateKey(CoseCurve.Ed25519);
  const ccs = encodeCcs({ sub: name, coseKey: coseKeyFromKeyObject(privateKey, { kid: Uint8Array.of(kid) }) });
  return { own: ccsCredential(ccs, privateKey), ccs };
}
const alice = identity('alice', 0x0a);
const bob = identity('bob', 0x0b);

/** One EDHOC run, `initiator` asking; each side applies §4.8 with its own support and records the other's. */
function run(initiator: { who: typeof alice; support: KudosSupport }, responder: { who: typeof alice; support: KudosSupport }) {
  const iConfig: InitiatorConfig = { method: 0, suites: [0], credential: initiator.who.own, peers: new CredentialStore().addCcs(responder.who.ccs) };
  const rConfig: ResponderConfig = { suites: [0], credentials: [responder.who.own], peers: new CredentialStore().addCcs(initiator.who.ccs) };
  const { state: i1, message: m1 } = new EdhocInitiator(iConfig).prepareMessage1({ connectionId: Uint8Array.of(0x37), ead: [kudosEadAsk()] });
  const r1 = new EdhocResponder(rConfig).processMessage1(m1);
  const asked = readKudosEad(r1.ead1, 1);
  const { state: r2, message: m2 } = r1.prepareMessage2({ connectionId: Uint8Array.of(0x27), ead: kudosEad2(responder.support) });
  const i2 = i1.processMessage2(m2);
  const responderSaid = readKudosEad(i2.ead2, 2) as KudosSupport | undefined;
  const ead3 = kudosEad3(initiator.support, responderSaid);
  const { state: i3, message: m3 } = i2.prepareMessage3({ ead: ead3 });
  const r3 = r2.processMessage3(m3);
  const initiatorSaid = readKudosEad(r3.ead3, 3) as KudosSupport | undefined;
  const out = r3.prepareMessage4();
  i3.processMessage4(out.message);
  return { asked, responderSaid, initiatorSaid, ead3 };
}

test('each peer in each role learns the other\'s KUDOS support (§4.8, Figure 3)', () => {
  const ab = run({ who: alice, support: 'full' }, { who: bob, support: 'part' });
  assert.equal(ab.asked, 'ask');
  assert.equal(ab.responderSaid, 'part', 'alice (Initiator) records that bob supports no-FS mode only');
  assert.equal(ab.initiatorSaid, 'full', 'bob (Responder) records that alice supports both modes');
  const ba = run({ who: bob, support: 'part' }, { who: alice, support: 'full' });
  assert.equal(ba.responderSaid, 'full');
  assert.equal(ba.initiatorSaid, 'part');
});

test('after NONE in message_2 the Initiator says nothing in message_3 (§4.8, Figure 4)', () => {
  const r = run({ who: alice, support: 'full' }, { who: bob, support: 'none' });
  assert.equal(r.responderSaid, 'none');
  assert.deepEqual(r.ead3, []);
  assert.equal(r.initiatorSaid, undefined);
});

test('the cases §4.8 says to ignore: a value other than ASK in message_1, ASK in message_2/3, anything in message_4, an unknown value', () => {
  const item = (value: number[]): EadItem[] => [{ label: KUDOS_EAD_LABEL, value: Uint8Array.from(value) }];
  assert.equal(readKudosEad(item([1]), 1), undefined);
  assert.equal(readKudosEad([kudosEadAsk()], 2), undefined);
  assert.equal(readKudosEad([kudosEadAsk()], 3), undefined);
  assert.equal(readKudosEad(item([1]), 4), undefined);
  assert.equal(readKudosEad(item([7]), 2), undefined);
  assert.equal(readKudosEad([], 2), undefined);
  assert.ok(KUDOS_EAD_LABEL > 0, 'non-critical: a positive label');
});

test('the recorded support provisions the KUDOS session of the EDHOC-derived context (§4.4.2 capability)', (t) => {
  const dir = tempDirectory('edhoc-ead');
  t.after(dir.remove);
  const r = run({ who: alice, support: 'full' }, { who: bob, support: 'part' });
  const capability = peerCapabilityOf(r.responderSaid!);
  assert.equal(capability, 'non-capable');
  const session = KudosSession.open({ identity: CLIENT_IDENTITY, storage: new KudosFileStorage(dir.path, CLIENT_IDENTITY) }, { masterSecret: new Uint8Array(16).fill(1), ...(capability ? { peerCapability: capability } : {}) });
  assert.equal(session.peerCapability, 'non-capable', 'no-FS mode will be used with this peer');
  assert.equal(peerCapabilityOf('full'), 'capable');
  assert.equal(peerCapabilityOf('none'), undefined);
});
