/**
 * The Group OSCORE context beyond the round trips: the Ed25519→X25519 map (§2.5.2.1), bounded
 * Recipient Contexts created on the fly and the invalid replay windows that follow an eviction
 * (§2.6.1.2) with their Echo recovery (§9), the option codec's Group Flag, and the Group Manager's
 * identifier rules and state file (§12).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType, createMessage, encodeString } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { fromHex, toHex } from '../src/cose/cbor.js';
import { ecdhKeyPairFromPrivate } from '../src/cose/ecdh.js';
import { CoseCurve, rawKeyParts, generateKeyPairOn } from '../src/cose/key.js';
import { CoseSignAlg } from '../src/cose/sign.js';
import { ed25519PublicToX25519, ed25519SeedToX25519 } from '../src/group-oscore/montgomery.js';
import { GroupManager, applyRekey, contextFromMemberFile } from '../src/group-oscore/manager.js';
import { acceptEchoedRequest, protectGroupRequest, protectGroupResponse, unprotectGroupRequest, unprotectGroupResponse } from '../src/group-oscore/protect.js';
import { decodeGroupOscoreOption } from '../src/group-oscore/option.js';

test('§2.5.2.1: an Ed25519 public key maps to the X25519 public key of the same secret', () => {
  for (let i = 0; i < 8; i += 1) {
    const { privateKey } = generateKeyPairOn(CoseCurve.Ed25519);
    const { x, d } = rawKeyParts(privateKey);
    // Independent check: Node's X25519 public key for the scalar bytes RFC 8032 §5.1.5 derives.
    const expected = ecdhKeyPairFromPrivate(CoseCurve.X25519, ed25519SeedToX25519(d!)).publicKey;
    assert.equal(toHex(ed25519PublicToX25519(x)), toHex(expected));
  }
});

test('§2.5.2.1: y = 1 and y = −1 are refused, as are encodings that are not curve points', () => {
  const le = (hex: string): Uint8Array => fromHex(hex).reverse();
  const p = (2n ** 255n - 19n);
  const y = (v: bigint): Uint8Array => le(v.toString(16).padStart(64, '0'));
  assert.throws(() => ed25519PublicToX25519(y(1n)), /±1/);
  assert.throws(() => ed25519PublicToX25519(y(p - 1n)), /±1/);
  assert.throws(() => ed25519PublicToX25519(y(p)), /not below p/);
  assert.throws(() => ed25519PublicToX25519(y(2n)), /not a curve point/); // x² = 3/(4d+1) is not a square
  assert.throws(() => ed25519PublicToX25519(new Uint8Array(31)), /32 bytes/);
});

function smallGroup(signature: number = CoseSignAlg.EdDSA) {
  const gm = GroupManager.create({ name: 'g', algorithms: { aead: 10, hkdf: 5, groupEncryption: 10, signature, pairwiseKeyAgreement: -27 } });
  for (const name of ['a', 'b', 'server']) gm.addMember(name);
  return gm;
}

const request = () => createMessage({ type: MessageType.NON, code: Method.GET, token: Uint8Array.of(7), options: [{ number: OptionNumber.UriPath, value: encodeString('x') }] });

test('§2.2/§2.6.1.2: Recipient Contexts are bounded; after an eviction a new one must prove freshness with Echo (§9)', () => {
  const gm = smallGroup();
  const a = contextFromMemberFile(gm.memberFile('a'));
  const b = contextFromMemberFile(gm.memberFile('b'));
  const server = contextFromMemberFile(gm.memberFile('server'), { maxRecipients: 1 });
  const find = () => server;
  const fromA = unprotectGroupRequest(protectGroupRequest(request(), a, { mode: 'group' }).message, find);
  assert.ok(fromA.ok && fromA.freshness === 'fresh');
  const fromB = unprotectGroupRequest(protectGroupRequest(request(), b, { mode: 'group' }).message, find);
  // Creating b's context evicted a's, which had verified a message: every new window is invalid from now on.
  assert.ok(fromB.ok && fromB.freshness === 'unverified');
  assert.equal(server.recipientCount, 1);
  // a's context was evicted after it verified a message: its new context cannot tell replays apart.
  const { message, binding } = protectGroupRequest(request(), a, { mode: 'pairwise', recipientId: server.senderId! });
  const again = unprotectGroupRequest(message, find);
  assert.ok(again.ok);
  assert.equal(again.freshness, 'unverified', 'not to be delivered');
  // §9: a protected 4.01 with Echo and the server's own Partial IV, then the echoed request.
  const echo = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  again.recipient.echoChallenge = echo;
  const challenge = protectGroupResponse(
    createMessage({ type: MessageType.NON, code: ResponseCode.Unauthorized, token: message.token, options: [{ number: OptionNumber.Echo, value: echo }] }),
    server,
    again.binding,
    { freshPartialIv: true },
  );
  const opened = unprotectGroupResponse(challenge, a, binding);
  assert.ok(opened.ok && opened.sequenceNumber !== undefined);
  const echoed = createMessage({ ...request(), options: [...request().options, { number: OptionNumber.Echo, value: echo }] });
  const retry = unprotectGroupRequest(protectGroupRequest(echoed, a, { mode: 'pairwise', recipientId: server.senderId! }).message, find);
  assert.ok(retry.ok && retry.freshness === 'unverified');
  assert.equal(acceptEchoedRequest(retry), true);
  assert.equal(retry.recipient.replay.initialised, true);
  // A wrong Echo value does not validate a window.
  const otherServer = contextFromMemberFile(gm.memberFile('server'), { maxRecipients: 1 });
  unprotectGroupRequest(protectGroupRequest(request(), b, { mode: 'group' }).message, () => otherServer);
  unprotectGroupRequest(protectGroupRequest(request(), a, { mode: 'group' }).message, () => otherServer);
  const wrong = unprotectGroupRequest(protectGroupRequest(createMessage({ ...request(), options: [{ number: OptionNumber.Echo, value: Uint8Array.of(9) }] }), b, { mode: 'group' }).message, () => otherServer);
  assert.ok(wrong.ok && wrong.freshness === 'unverified');
  wrong.recipient.echoChallenge = echo;
  assert.equal(acceptEchoedRequest(wrong), false);
});

test('§7.2: a request from a Sender ID without a known credential is refused with 5.03 and leaves no Recipient Context', () => {
  const gm = smallGroup();
  const a = contextFromMemberFile(gm.memberFile('a'));
  gm.addMember('late');
  const late = contextFromMemberFile(gm.memberFile('late'));
  const result = unprotectGroupRequest(protectGroupRequest(request(), late, { mode: 'group' }).message, () => a);
  assert.equal(result.ok, false);
  assert.equal(result.ok ? 0 : result.code, ResponseCode.ServiceUnavailable);
  assert.equal(a.recipientCount, 0);
  // Once the GM hands out the credential, the next request verifies.
  a.addMember({ senderId: late.senderId!, credential: late.own!.bytes });
  assert.ok(unprotectGroupRequest(protectGroupRequest(request(), late, { mode: 'group' }).message, () => a).ok);
});

test('a request that does not verify leaves no Recipient Context behind (§7.2)', () => {
  const gm = smallGroup();
  const a = contextFromMemberFile(gm.memberFile('a'));
  const server = contextFromMemberFile(gm.memberFile('server'));
  const { message } = protectGroupRequest(request(), a, { mode: 'group' });
  const tampered = { ...message, payload: message.payload.map((b, i) => (i === 0 ? b ^ 1 : b)) };
  const result = unprotectGroupRequest(tampered, () => server);
  assert.equal(result.ok ? '' : result.reason, 'Decryption failed');
  assert.equal(server.recipientCount, 0);
});

test('§4.1: the Group Flag tells the modes apart; reserved bits are malformed', () => {
  assert.equal(decodeGroupOscoreOption(fromHex('2852')).group, true);
  assert.equal(decodeGroupOscoreOption(fromHex('0852')).group, false);
  assert.throws(() => decodeGroupOscoreOption(fromHex('8852')), /reserved/);
  assert.throws(() => decodeGroupOscoreOption(fromHex('00')), /0x00/);
});

test('§12: Sender IDs are unique, never reassigned under one Gid; rekeying changes Gid and Key Generation Number', () => {
  const gm = GroupManager.create({ name: 'g' });
  const ids = ['a', 'b', 'c'].map((n) => gm.addMember(n).senderId);
  assert.equal(new Set(ids).size, 3);
  const gid0 = gm.gid;
  // Removing b rekeys: b's ID is stale, a new Gid is installed.
  const rekey = gm.removeMember('b');
  assert.notEqual(rekey.gid, gid0);
  assert.deepEqual(rekey.staleSenderIds, [ids[1]]);
  assert.equal(gm.keyGeneration, 1);
  // Under the new Gid the old IDs are kept and b's may be given again (§12.2.1.2 restricts per Gid).
  assert.equal(gm.memberFile('a').senderId, ids[0]);
  const d = gm.addMember('d').senderId;
  assert.ok(!['a', 'c'].map((n) => gm.memberFile(n).senderId).includes(d));
  // No Sender ID twice under one Gid, even after its member left — without a rekey in between.
  const state = gm.toJSON();
  const resumed = GroupManager.fromJSON(JSON.parse(JSON.stringify(state)));
  assert.deepEqual(resumed.toJSON(), state, 'the state file round-trips through JSON');
  assert.throws(() => resumed.addMember('a'), /already has a member/);
});

test('§12.2: members install the rekey; the old context is a different key generation', () => {
  const gm = smallGroup(CoseSignAlg.ES256);
  const a = contextFromMemberFile(gm.memberFile('a'));
  const server = contextFromMemberFile(gm.memberFile('server'));
  const rekey = gm.removeMember('b');
  const a1 = applyRekey(a, rekey);
  const s1 = applyRekey(server, rekey);
  assert.equal(a1.keyGeneration, 1);
  assert.equal(a1.members.length, 1, 'b is gone from a\'s members');
  assert.throws(() => applyRekey(a1, rekey), /not newer/);
  const r = unprotectGroupRequest(protectGroupRequest(request(), a1, { mode: 'pairwise', recipientId: s1.senderId! }).message, () => s1);
  assert.ok(r.ok, r.ok ? '' : r.reason);
  assert.equal(r.sequenceNumber, 0, 'the sequence number restarts with the new context');
});

test('§7.3: a response from a newer context than the request carries the new Gid and its own Partial IV', () => {
  const gm = smallGroup();
  const a = contextFromMemberFile(gm.memberFile('a'));
  const server = contextFromMemberFile(gm.memberFile('server'));
  const { message, binding } = protectGroupRequest(request(), a, { mode: 'group' });
  const verified = unprotectGroupRequest(message, () => server);
  assert.ok(verified.ok);
  const rekey = gm.rekey();
  const server1 = applyRekey(server, rekey);
  const a1 = applyRekey(a, rekey);
  const response = protectGroupResponse(createMessage({ type: MessageType.NON, code: ResponseCode.Content, token: message.token }), server1, verified.binding);
  const option = decodeGroupOscoreOption(response.options.find((o) => o.number === OptionNumber.Oscore)!.value);
  assert.equal(toHex(option.kidContext!), rekey.gid);
  assert.ok(option.piv !== undefined);
  // The client verifies it with its new context, against the request it sent under the old one.
  assert.ok(unprotectGroupResponse(response, a1, binding).ok);
  assert.equal(unprotectGroupResponse(response, a, binding).ok, false, 'not with the old one');
});

test('malformed and mutated messages never throw: every failure is an answer', () => {
  const gm = smallGroup();
  const a = contextFromMemberFile(gm.memberFile('a'));
  const server = contextFromMemberFile(gm.memberFile('server'));
  let seed = 0x2545f491;
  const random = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const mutate = (bytes: Uint8Array): Uint8Array => {
    const out = Uint8Array.from(bytes.subarray(0, random(bytes.length + 2)));
    if (out.length > 0) out[random(out.length)] ^= 1 << random(8);
    return out;
  };
  for (const mode of ['group', 'pairwise'] as const) {
    const { message, binding } = protectGroupRequest(request(), a, mode === 'group' ? { mode } : { mode, recipientId: server.senderId! });
    const oscore = message.options.find((o) => o.number === OptionNumber.Oscore)!.value;
    const verified = unprotectGroupRequest(message, () => server);
    assert.ok(verified.ok);
    const response = protectGroupResponse(createMessage({ type: MessageType.NON, code: ResponseCode.Content, token: message.token }), server, verified.binding, { freshPartialIv: true });
    const responseOption = response.options.find((o) => o.number === OptionNumber.Oscore)!.value;
    for (let i = 0; i < 150; i += 1) {
      const badRequest = { ...message, payload: mutate(message.payload), options: [{ number: OptionNumber.Oscore, value: i % 2 ? mutate(oscore) : oscore }] };
      const r = unprotectGroupRequest(badRequest, () => server);
      assert.equal(r.ok, false);
      const badResponse = { ...response, payload: mutate(response.payload), options: [{ number: OptionNumber.Oscore, value: i % 2 ? mutate(responseOption) : responseOption }] };
      assert.equal(unprotectGroupResponse(badResponse, a, binding).ok, false);
    }
  }
});
