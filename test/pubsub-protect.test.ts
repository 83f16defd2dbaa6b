/**
 * Protected publications, sans-IO: the profile's format (draft-ietf-ace-coap-pubsub-profile §6),
 * and each requirement R5.1–R5.7 violated once and detected.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { decodeStrict, encodeCbor, isMap } from '../src/cose/cbor.js';
import { decodeEncrypt0, encodeEncrypt0 } from '../src/cose/encrypt.js';
import { forgePublication, PUBSUB_THREAT_ROWS, runPubSubThreat } from '../src/attack/pubsub-attacks.js';
import { assertPubSubRow } from './support/pubsub-threats.js';
import {
  addMember,
  createTopicGroup,
  issueKeyMaterial,
  parseKdcState,
  parseKeyMaterial,
  protectPublication,
  PublicationVerifier,
  PublisherSession,
  rekey,
  removeMember,
  serializeKeyMaterial,
  type KdcState,
  type TopicBinding,
  type TopicKeyMaterial,
} from '../src/pubsub-protection/index.js';

const KITCHEN: TopicBinding = { topicDataPath: '/ps/data/kitchen', contentFormat: 0 };
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Issued through the key file format, as the CLI hands it out. */
const issue = (state: KdcState, name: string): TopicKeyMaterial => parseKeyMaterial(serializeKeyMaterial(issueKeyMaterial(state, name)));

function group(): { state: KdcState; pub: TopicKeyMaterial; sub: TopicKeyMaterial } {
  const state = createTopicGroup('kitchen');
  addMember(state, 'sensor', 'publisher');
  addMember(state, 'display', 'subscriber');
  return { state, pub: issue(state, 'sensor'), sub: issue(state, 'display') };
}

const publisherOf = (m: TopicKeyMaterial) => ({ groupKey: m.groupKey, senderId: m.senderId!, signingKey: m.signingKey!, signAlg: m.signAlg });

describe('protected publication format (profile §6.1)', () => {
  test('COSE_Encrypt0 with alg protected, kid = Gid, Partial IV and a Countersignature version 2 naming the Sender ID', () => {
    const { pub } = group();
    const bytes = protectPublication(publisherOf(pub), 0, text('21.5'), KITCHEN);
    const e = decodeEncrypt0(bytes);
    const protectedMap = decodeStrict(e.protectedHeader);
    assert.ok(isMap(protectedMap));
    assert.equal(protectedMap.get(1), pub.groupKey.alg);
    assert.deepEqual(e.unprotectedHeader.get(4), pub.groupKey.gid);
    assert.deepEqual(e.unprotectedHeader.get(6), Uint8Array.of(0), 'Partial IV 0 is the byte 0x00');
    const cs = e.unprotectedHeader.get(11) as unknown[];
    assert.equal(cs.length, 3);
    assert.deepEqual((cs[1] as Map<number, Uint8Array>).get(4), pub.senderId);
    assert.equal(Buffer.from(bytes).includes(Buffer.from('21.5')), false, 'the plaintext is not in the object');
  });

  test('every subscriber verifies and decrypts, in order (R5.5)', () => {
    const { state, pub } = group();
    addMember(state, 'logger', 'subscriber');
    const verifiers = [new PublicationVerifier(issue(state, 'display')), new PublicationVerifier(issue(state, 'logger'))];
    for (let seq = 0; seq < 3; seq++) {
      const bytes = protectPublication(publisherOf(pub), seq, text(`t=${seq}`), KITCHEN);
      for (const v of verifiers) {
        const verdict = v.verify(bytes, KITCHEN);
        assert.ok(verdict.ok, JSON.stringify(verdict));
        assert.equal(Buffer.from(verdict.plaintext).toString(), `t=${seq}`);
        assert.equal(verdict.sequenceNumber, seq);
      }
    }
  });

  test('without a binding the object is the profile\'s exactly (empty external_aad) and verifies without one', () => {
    const { pub, sub } = group();
    const bytes = protectPublication(publisherOf(pub), 0, text('x'), undefined);
    assert.equal(new PublicationVerifier(sub).verify(bytes, undefined).ok, true);
    assert.equal(new PublicationVerifier(sub).verify(bytes, KITCHEN).ok, false, 'a bound subscriber refuses an unbound object');
  });

  test('malformed input is refused with a reason, never thrown', () => {
    const { sub } = group();
    const v = new PublicationVerifier(sub);
    for (const bytes of [new Uint8Array(0), text('21.5'), encodeCbor([new Uint8Array(0), new Map(), new Uint8Array(3)]), Uint8Array.of(0x83, 0x40)]) {
      const verdict = v.verify(bytes, KITCHEN);
      assert.equal(verdict.ok, false);
      assert.equal(!verdict.ok && verdict.reason, 'malformed');
    }
  });
});

describe('each requirement violated is detected', () => {
  const refusal = (v: PublicationVerifier, bytes: Uint8Array, binding: TopicBinding = KITCHEN): string => {
    const verdict = v.verify(bytes, binding);
    assert.equal(verdict.ok, false, 'refused');
    return verdict.ok ? '' : verdict.reason;
  };

  test('R5.5: a modified ciphertext byte is refused', () => {
    const { pub, sub } = group();
    const bytes = protectPublication(publisherOf(pub), 0, text('21.5'), KITCHEN);
    const e = decodeEncrypt0(bytes);
    const ciphertext = Uint8Array.from(e.ciphertext);
    ciphertext[0]! ^= 1;
    assert.equal(refusal(new PublicationVerifier(sub), encodeEncrypt0({ ...e, ciphertext })), 'bad-signature');
  });

  test('R5.2: a publication moved to another topic of the same group is refused', () => {
    const { pub, sub } = group();
    const bytes = protectPublication(publisherOf(pub), 0, text('21.5'), { ...KITCHEN, topicDataPath: '/ps/data/garage' });
    assert.equal(refusal(new PublicationVerifier(sub), bytes), 'bad-signature');
  });

  test('R5.3: a publication whose Content-Format was changed is refused', () => {
    const { pub, sub } = group();
    const bytes = protectPublication(publisherOf(pub), 0, text('21.5'), KITCHEN);
    assert.equal(refusal(new PublicationVerifier(sub), bytes, { ...KITCHEN, contentFormat: 50 }), 'bad-signature');
    assert.equal(refusal(new PublicationVerifier(sub), bytes, { ...KITCHEN, contentFormat: undefined }), 'bad-signature');
  });

  test('R5.4: a replayed publication and an older one after a newer are refused (never-older); the profile window takes the late one', () => {
    const { pub, sub } = group();
    const p = [0, 1, 2].map((seq) => protectPublication(publisherOf(pub), seq, text(`t=${seq}`), KITCHEN));
    const strict = new PublicationVerifier(sub);
    assert.ok(strict.verify(p[0]!, KITCHEN).ok);
    assert.equal(refusal(strict, p[0]!), 'replayed-or-older');
    assert.ok(strict.verify(p[2]!, KITCHEN).ok);
    assert.equal(refusal(strict, p[1]!), 'replayed-or-older');
    const windowed = new PublicationVerifier(sub, { policy: 'window' });
    assert.ok(windowed.verify(p[2]!, KITCHEN).ok);
    assert.ok(windowed.verify(p[1]!, KITCHEN).ok, 'a late, never-seen one is in the window');
    assert.equal(refusal(windowed, p[1]!), 'replayed-or-older');
  });

  test('R5.4: a refused publication does not advance the window', () => {
    const { pub, sub } = group();
    const v = new PublicationVerifier(sub);
    const forged = decodeEncrypt0(protectPublication(publisherOf(pub), 5, text('x'), KITCHEN));
    const ciphertext = Uint8Array.from(forged.ciphertext);
    ciphertext[1]! ^= 0x80;
    refusal(v, encodeEncrypt0({ ...forged, ciphertext }));
    assert.ok(v.verify(protectPublication(publisherOf(pub), 1, text('y'), KITCHEN), KITCHEN).ok);
  });

  test('R5.4 across new key material (a KDC refresh): same key keeps every window, a new publisher is admitted, a new key restarts them', () => {
    const { state, pub, sub } = group();
    const v = new PublicationVerifier(sub);
    const first = protectPublication(publisherOf(pub), 3, text('t=3'), KITCHEN);
    assert.ok(v.verify(first, KITCHEN).ok);
    addMember(state, 'second', 'publisher');
    const second = issue(state, 'second');
    assert.equal(refusal(v, protectPublication(publisherOf(second), 0, text('s'), KITCHEN)), 'unauthorized-publisher');
    v.updateMaterial(issue(state, 'display'));
    assert.equal(refusal(v, first), 'replayed-or-older', 'the same group key: what was accepted stays accepted once');
    assert.ok(v.verify(protectPublication(publisherOf(second), 0, text('s'), KITCHEN), KITCHEN).ok, 'the new publisher is known');
    rekey(state);
    v.updateMaterial(issue(state, 'display'));
    assert.ok(v.verify(protectPublication(publisherOf(issue(state, 'sensor')), 0, text('t=0'), KITCHEN), KITCHEN).ok, 'a new key: numbers start at 0 again');
    assert.equal(refusal(v, first), 'retired-group-key');
    assert.throws(() => v.updateMaterial({ ...issue(state, 'display'), topic: 'garage' }), /cannot replace/);
  });

  test('R5.1/R5.6: a subscriber holding the group key cannot forge a publication, neither as the publisher nor as itself', () => {
    const { state, pub, sub } = group();
    addMember(state, 'colluder', 'subscriber');
    const colluder = issue(state, 'colluder');
    const forge = (senderId: Uint8Array): Uint8Array => forgePublication(colluder, senderId, 9, text('open the door'), KITCHEN);
    assert.equal(refusal(new PublicationVerifier(sub), forge(pub.senderId!)), 'bad-signature');
    assert.equal(refusal(new PublicationVerifier(sub), forge(Uint8Array.of(0x42))), 'unauthorized-publisher');
  });

  test('R5.1: a subscriber is not a publisher: its Sender ID is in no key file', () => {
    const { state, sub } = group();
    assert.equal(issue(state, 'display').senderId, undefined);
    assert.equal(sub.publishers.length, 1);
  });

  test('R5.7: removing a member rekeys; the old generation is refused as retired, and the departed member cannot read the new one', () => {
    const { state, pub, sub } = group();
    addMember(state, 'leaver', 'subscriber');
    const leaver = issue(state, 'leaver');
    const oldPublication = protectPublication(publisherOf(pub), 0, text('old'), KITCHEN);
    removeMember(state, 'leaver');
    const pub2 = issue(state, 'sensor');
    const sub2 = issue(state, 'display');
    assert.equal(pub2.groupKey.num, 2);
    assert.notDeepEqual(pub2.groupKey.key, pub.groupKey.key);
    assert.equal(refusal(new PublicationVerifier(sub2), oldPublication), 'retired-group-key');
    const fresh = protectPublication(publisherOf(pub2), 0, text('new'), KITCHEN);
    assert.ok(new PublicationVerifier(sub2).verify(fresh, KITCHEN).ok);
    assert.equal(refusal(new PublicationVerifier(leaver), fresh), 'unknown-group-key');
    assert.equal(refusal(new PublicationVerifier(sub), fresh), 'unknown-group-key');
    assert.throws(() => issueKeyMaterial(state, 'leaver'), /not a member/);
  });

  test('R5.7: a generation with a lifetime expires for publisher and subscriber alike; rekey gives the next one', () => {
    const now = Date.now();
    const state = createTopicGroup('kitchen', { lifetimeSeconds: 60, now });
    addMember(state, 'sensor', 'publisher');
    addMember(state, 'display', 'subscriber');
    const pub = issue(state, 'sensor');
    const later = now + 61_000;
    assert.throws(() => protectPublication(publisherOf(pub), 0, text('x'), KITCHEN, later), /expired/);
    const bytes = protectPublication(publisherOf(pub), 0, text('x'), KITCHEN, now);
    assert.equal(new PublicationVerifier(issue(state, 'display')).verify(bytes, KITCHEN, later).ok, false);
    rekey(state, later);
    const next = issue(state, 'sensor');
    assert.ok(next.groupKey.exp! > Math.floor(later / 1000));
    assert.ok(new PublicationVerifier(issue(state, 'display')).verify(protectPublication(publisherOf(next), 0, text('y'), KITCHEN, later), KITCHEN, later).ok);
  });

  test('the KDC state survives its file format', () => {
    const { state } = group();
    const again = parseKdcState(JSON.stringify(state));
    assert.deepEqual(issueKeyMaterial(again, 'sensor').senderId, issueKeyMaterial(state, 'sensor').senderId);
    assert.throws(() => parseKdcState('{}'), /format/);
    assert.throws(() => parseKeyMaterial('{"format":"coapsec-pubsub-keys/1"}'), /topic/);
  });
});

describe('the publisher never reuses a nonce (Appendix B.1.1 counter)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pubsub-protect-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a restarted publisher continues above every number used; a new generation starts at 0', () => {
    const { state, pub, sub } = group();
    const v = new PublicationVerifier(sub);
    const first = PublisherSession.open(pub, dir);
    for (let i = 0; i < 3; i++) assert.equal((v.verify(first.protect(text(`${i}`), KITCHEN), KITCHEN) as { sequenceNumber: number }).sequenceNumber, i);
    first.close();
    const second = PublisherSession.open(pub, dir);
    const verdict = v.verify(second.protect(text('after restart'), KITCHEN), KITCHEN);
    assert.ok(verdict.ok && verdict.sequenceNumber === 3, JSON.stringify(verdict));
    second.close();
    rekey(state);
    const third = PublisherSession.open(issue(state, 'sensor'), dir);
    const renewed = new PublicationVerifier(issue(state, 'display')).verify(third.protect(text('new key'), KITCHEN), KITCHEN);
    assert.ok(renewed.ok && renewed.sequenceNumber === 0);
    third.close();
  });
});

describe('R5.7: scheduled rekeying by key epochs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pubsub-epochs-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const EPOCH = 60;
  const refusedAt = (v: PublicationVerifier, bytes: Uint8Array, now: number): string => {
    const verdict = v.verify(bytes, KITCHEN, now);
    return verdict.ok ? 'accepted' : verdict.reason;
  };

  test('after an epoch the publisher uses the next key (a new Gid, numbers from 0); subscribers follow; the old epoch is then refused as retired', () => {
    const start = 1_700_000_000_000;
    const state = createTopicGroup('kitchen', { epochSeconds: EPOCH, now: start });
    addMember(state, 'sensor', 'publisher');
    addMember(state, 'display', 'subscriber');
    const issueAt = (name: string): TopicKeyMaterial => parseKeyMaterial(serializeKeyMaterial(issueKeyMaterial(state, name, start)));
    const session = PublisherSession.open(issueAt('sensor'), dir, start);
    const verifier = new PublicationVerifier(issueAt('display'));
    const gidOf = (bytes: Uint8Array): string => Buffer.from((decodeEncrypt0(bytes).unprotectedHeader.get(4) as Uint8Array)).toString('hex');
    const inEpoch0 = session.protect(text('epoch 0'), KITCHEN, start + 1000);
    const lateInEpoch0 = session.protect(text('epoch 0, held back'), KITCHEN, start + 2000);
    const inEpoch1 = session.protect(text('epoch 1'), KITCHEN, start + (EPOCH + 1) * 1000);
    session.close();
    assert.notEqual(gidOf(inEpoch1), gidOf(inEpoch0), 'the next epoch has its own key and Gid');
    const first = verifier.verify(inEpoch0, KITCHEN, start + 1500);
    assert.ok(first.ok && first.sequenceNumber === 0);
    const next = verifier.verify(inEpoch1, KITCHEN, start + (EPOCH + 2) * 1000);
    assert.ok(next.ok && next.sequenceNumber === 0 && Buffer.from(next.plaintext).toString() === 'epoch 1', JSON.stringify(next));
    assert.equal(refusedAt(verifier, lateInEpoch0, start + (EPOCH + 3) * 1000), 'retired-group-key', 'the older epoch is gone once the next began');
  });

  test('a member issued its key file in a later epoch cannot read earlier epochs; a removed member cannot read the next generation\'s epochs', () => {
    const start = 1_700_000_000_000;
    const state = createTopicGroup('kitchen', { epochSeconds: EPOCH, now: start });
    addMember(state, 'sensor', 'publisher');
    addMember(state, 'display', 'subscriber');
    const sensor = issueKeyMaterial(state, 'sensor', start);
    const early = protectPublication(publisherOf(sensor), 0, text('before the newcomer'), KITCHEN, start);
    addMember(state, 'newcomer', 'subscriber');
    const later = start + 5 * EPOCH * 1000;
    const newcomer = parseKeyMaterial(serializeKeyMaterial(issueKeyMaterial(state, 'newcomer', later)));
    assert.equal(newcomer.epochs?.start, start / 1000 + 5 * EPOCH, 'issued with the current epoch');
    assert.equal(refusedAt(new PublicationVerifier(newcomer), early, later), 'unknown-group-key');
    const leaver = issueKeyMaterial(state, 'display', later);
    removeMember(state, 'display', later);
    const after = issueKeyMaterial(state, 'sensor', later);
    const next = PublisherSession.open(after, dir, later);
    const published = next.protect(text('after removal'), KITCHEN, later + 2 * EPOCH * 1000);
    next.close();
    assert.equal(refusedAt(new PublicationVerifier(leaver), published, later + 2 * EPOCH * 1000), 'unknown-group-key', 'stepping the old generation forward never reaches the new one');
    assert.ok(new PublicationVerifier(issueKeyMaterial(state, 'newcomer', later)).verify(published, KITCHEN, later + 2 * EPOCH * 1000).ok);
  });

  test('the epoch fields are checked in key files and KDC state', () => {
    const state = createTopicGroup('kitchen', { epochSeconds: EPOCH });
    addMember(state, 'display', 'subscriber');
    const file = JSON.parse(serializeKeyMaterial(issueKeyMaterial(state, 'display'))) as Record<string, unknown>;
    assert.throws(() => parseKeyMaterial(JSON.stringify({ ...file, epoch_lifetime: undefined })), /epoch_start and epoch_lifetime go together/);
    assert.throws(() => parseKeyMaterial(JSON.stringify({ ...file, epoch_lifetime: 0 })), /epoch_lifetime at least 1/);
    assert.throws(() => parseKdcState(JSON.stringify({ ...state, epoch_start: undefined })), /go together/);
    assert.throws(() => createTopicGroup('x', { epochSeconds: 1.5 }), /epoch lifetime must be a positive/);
  });
});

describe('pub-sub threat rows: the adversarial broker against protected publications, the unprotected broker as baseline', () => {
  for (const row of PUBSUB_THREAT_ROWS) {
    test(`pub-sub threat row ${row.id}: ${row.threat}`, () => {
      assertPubSubRow(row, runPubSubThreat(row, 'none'), runPubSubThreat(row, 'protected'));
    });
  }
});
