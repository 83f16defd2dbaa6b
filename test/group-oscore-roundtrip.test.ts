/**
 * Group OSCORE round trips, in process on message objects: one client and three servers made by
 * the offline Group Manager, in group mode and pairwise mode, with EdDSA/Ed25519 and with
 * ECDSA/P-256. Source authentication (a member cannot answer in another's name), replayed group
 * requests, and a removed member after the rekey.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { type CoapMessage, MessageType, createMessage, encodeString } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoseSignAlg } from '../src/cose/sign.js';
import { fromHex, toHex } from '../src/cose/cbor.js';
import { GroupContextStore, GroupSecurityContext } from '../src/group-oscore/context.js';
import { DEFAULT_GROUP_ALGORITHMS, GroupManager, applyRekey, contextFromMemberFile } from '../src/group-oscore/manager.js';
import {
  protectGroupRequest,
  protectGroupResponse,
  unprotectGroupRequest,
  unprotectGroupResponse,
} from '../src/group-oscore/protect.js';
import { GroupResponseTracker } from '../src/group-oscore/responses.js';
import { forgeGroupResponse } from '../src/attack/group-forge.js';
import { REQUEST_HASH_OPTION, protectDeterministicRequest, unprotectDeterministicRequest } from '../src/group-oscore/deterministic.js';

const SERVERS = ['s1', 's2', 's3'] as const;

interface Group {
  gm: GroupManager;
  client: GroupSecurityContext;
  servers: Map<string, GroupSecurityContext>;
}

function makeGroup(signature: number): Group {
  const gm = GroupManager.create({ name: 'lights', algorithms: { ...DEFAULT_GROUP_ALGORITHMS, signature } });
  for (const name of ['client', ...SERVERS]) gm.addMember(name);
  const client = contextFromMemberFile(gm.memberFile('client'));
  const servers = new Map(SERVERS.map((name) => [name, contextFromMemberFile(gm.memberFile(name))]));
  return { gm, client, servers };
}

const getRequest = (path: string): CoapMessage =>
  createMessage({ type: MessageType.NON, code: Method.GET, messageId: 0x1234, token: Uint8Array.of(1, 2, 3, 4), options: [{ number: OptionNumber.UriPath, value: encodeString(path) }] });

const answer = (request: CoapMessage, text: string): CoapMessage =>
  createMessage({ type: MessageType.NON, code: ResponseCode.Content, messageId: 0x4321, token: request.token, payload: encodeString(text) });

const byGid = (context: GroupSecurityContext) => (gid: Uint8Array): GroupSecurityContext | undefined =>
  toHex(gid) === toHex(context.gid) ? context : undefined;

const text = (m: CoapMessage): string => Buffer.from(m.payload).toString();

/** Every server answers a group request; returns the protected responses by server name. */
function serveAll(group: Group, protectedRequest: CoapMessage): Map<string, CoapMessage> {
  const responses = new Map<string, CoapMessage>();
  for (const [name, server] of group.servers) {
    const result = unprotectGroupRequest(protectedRequest, byGid(server));
    assert.ok(result.ok, `${name}: ${result.ok ? '' : result.reason}`);
    assert.equal(result.freshness, 'fresh');
    assert.equal(result.mode, 'group');
    assert.equal(result.message.code, Method.GET);
    responses.set(name, protectGroupResponse(answer(result.message, `${name} says on`), server, result.binding));
  }
  return responses;
}

for (const [label, signature] of [['EdDSA/Ed25519', CoseSignAlg.EdDSA], ['ECDSA/P-256', CoseSignAlg.ES256]] as const) {
  describe(`Group OSCORE with ${label}`, () => {
    test('group mode: one request, three servers, three authenticated responses bound to it', () => {
      const group = makeGroup(signature);
      const { message, binding } = protectGroupRequest(getRequest('light'), group.client, { mode: 'group' });
      assert.equal(message.code, Method.POST);
      assert.equal(message.options.find((o) => o.number === OptionNumber.Oscore)!.value[0]! & 0x20, 0x20, 'Group Flag set');
      const tracker = new GroupResponseTracker();
      const seen: string[] = [];
      for (const [name, response] of serveAll(group, message)) {
        const opened = unprotectGroupResponse(response, group.client, binding);
        assert.ok(opened.ok, `${name}: ${opened.ok ? '' : opened.reason}`);
        assert.equal(opened.mode, 'group');
        assert.ok(tracker.accept(opened.kid, opened.sequenceNumber));
        seen.push(text(opened.message));
        // §5.3.1: a second copy of a response without Partial IV from the same server is refused.
        assert.equal(tracker.accept(opened.kid, opened.sequenceNumber), false);
      }
      assert.deepEqual(seen.sort(), ['s1 says on', 's2 says on', 's3 says on']);
    });

    test('a later response of a long exchange carries a Partial IV and is ordered per server', () => {
      const group = makeGroup(signature);
      const { message, binding } = protectGroupRequest(getRequest('light'), group.client, { mode: 'group' });
      const server = group.servers.get('s1')!;
      const verified = unprotectGroupRequest(message, byGid(server));
      assert.ok(verified.ok);
      const tracker = new GroupResponseTracker();
      const second = protectGroupResponse(answer(verified.message, 'again'), server, verified.binding, { freshPartialIv: true });
      const opened = unprotectGroupResponse(second, group.client, binding);
      assert.ok(opened.ok && opened.sequenceNumber !== undefined);
      assert.ok(tracker.accept(opened.kid, opened.sequenceNumber));
      assert.equal(tracker.accept(opened.kid, opened.sequenceNumber), false, 'the same Partial IV twice is a replay');
    });

    test('source authentication: a response one member forges in another member\'s name is refused', () => {
      const group = makeGroup(signature);
      const { message, binding } = protectGroupRequest(getRequest('light'), group.client, { mode: 'group' });
      const s3File = group.gm.memberFile('s3');
      const forged = forgeGroupResponse(group.servers.get('s2')!, fromHex(s3File.senderId), fromHex(s3File.credential), binding, 'off, says s3', message.token);
      const opened = unprotectGroupResponse(forged, group.client, binding);
      assert.equal(opened.ok, false);
      assert.equal(opened.ok ? '' : opened.reason, 'Decryption failed');
      // The same forgery signed with s3's own key would pass: what refuses it is the signature alone.
      const s3 = contextFromMemberFile(s3File);
      assert.ok(unprotectGroupResponse(forgeGroupResponse(s3, s3.senderId!, fromHex(s3File.credential), binding, 'on', message.token), group.client, binding).ok);
      // The genuine s3 answer still verifies after the forgery was refused.
      const genuine = serveAll(group, message);
      assert.ok(unprotectGroupResponse(genuine.get('s3')!, group.client, binding).ok, 's3\'s own response verifies');
    });

    test('a replayed group request is refused by each server', () => {
      const group = makeGroup(signature);
      const { message } = protectGroupRequest(getRequest('light'), group.client, { mode: 'group' });
      serveAll(group, message);
      for (const [name, server] of group.servers) {
        const again = unprotectGroupRequest(message, byGid(server));
        assert.equal(again.ok, false, `${name} refuses the replay`);
        assert.equal(again.ok ? '' : again.reason, 'Replay detected');
      }
    });

    test('pairwise mode: a unicast request only its server can read, and its pairwise response', () => {
      const group = makeGroup(signature);
      const s2Id = fromHex(group.gm.memberFile('s2').senderId);
      const { message, binding } = protectGroupRequest(getRequest('light'), group.client, { mode: 'pairwise', recipientId: s2Id });
      assert.equal(message.options.find((o) => o.number === OptionNumber.Oscore)!.value[0]! & 0x20, 0, 'Group Flag clear');
      for (const name of ['s1', 's3']) {
        const other = unprotectGroupRequest(message, byGid(group.servers.get(name)!));
        assert.equal(other.ok, false, `${name} cannot read a request protected for s2`);
      }
      const s2 = group.servers.get('s2')!;
      const verified = unprotectGroupRequest(message, byGid(s2));
      assert.ok(verified.ok, verified.ok ? '' : verified.reason);
      assert.equal(verified.mode, 'pairwise');
      const response = protectGroupResponse(answer(verified.message, 's2 only'), s2, verified.binding);
      assert.equal(response.options.find((o) => o.number === OptionNumber.Oscore)!.value.length, 0, 'pairwise response to the first request: empty option');
      const opened = unprotectGroupResponse(response, group.client, binding);
      assert.ok(opened.ok, opened.ok ? '' : opened.reason);
      assert.equal(text(opened.message), 's2 only');
      // s1 answering in s2's name with a pairwise key of its own is refused.
      const forger = contextFromMemberFile({ ...group.gm.memberFile('s1'), senderId: toHex(s2Id) });
      const forgerView = unprotectGroupRequest(message, byGid(forger));
      assert.equal(forgerView.ok, false, 's1 cannot even read it under s2\'s Sender ID');
      const fake = protectGroupResponse(answer(verified.message, 'fake'), forger, verified.binding, { includeKid: true });
      assert.equal(unprotectGroupResponse(fake, group.client, binding).ok, false);
    });

    test('cacheable-oscore §3.4.5: one deterministic request, three servers, group-mode responses bound by the Request-Hash', () => {
      const group = makeGroup(signature);
      const deterministic = { senderId: Uint8Array.of(0xdc), hash: -16 };
      const first = protectDeterministicRequest(getRequest('light'), group.client, deterministic);
      const second = protectDeterministicRequest(getRequest('light'), group.client, deterministic);
      assert.equal(toHex(first.message.payload), toHex(second.message.payload), 'equal requests, equal bytes (cacheable)');
      const classI = [{ number: REQUEST_HASH_OPTION, value: first.requestHash }];
      for (const [name, server] of group.servers) {
        const verified = unprotectDeterministicRequest(first.message, server, deterministic);
        assert.ok(verified.ok, `${name}: ${verified.ok ? '' : verified.reason}`);
        const response = protectGroupResponse(
          { ...answer(verified.message, name), options: [{ number: REQUEST_HASH_OPTION, value: verified.requestHash }] },
          server,
          verified.binding,
          { mode: 'group', freshPartialIv: true, classIOptions: [REQUEST_HASH_OPTION], outerCode: ResponseCode.Content, outerMaxAge: 60 },
        );
        assert.equal(response.options.some((o) => o.number === REQUEST_HASH_OPTION), false, 'Request-Hash elided');
        const opened = unprotectGroupResponse(response, group.client, first.binding, { classIOptions: classI });
        assert.ok(opened.ok, `${name}: ${opened.ok ? '' : opened.reason}`);
        assert.equal(text(opened.message), name);
      }
      // A non-safe method is refused even when authentic (§3.4.3).
      const post = protectDeterministicRequest({ ...getRequest('light'), code: Method.POST }, group.client, deterministic);
      const refused = unprotectDeterministicRequest(post.message, group.servers.get('s1')!, deterministic);
      assert.equal(refused.ok ? 0 : refused.code, ResponseCode.Unauthorized);
    });

    test('rekeying after a removal: the removed member cannot read traffic any more, the others go on', () => {
      const group = makeGroup(signature);
      const rekey = group.gm.removeMember('s3');
      assert.equal(rekey.keyGeneration, 1);
      assert.deepEqual(rekey.staleSenderIds, [group.servers.get('s3')!.senderId && toHex(group.servers.get('s3')!.senderId!)]);
      const client = applyRekey(group.client, rekey);
      const store = new GroupContextStore();
      store.install('lights', group.client);
      store.install('lights', client);
      assert.equal(store.findByGid(group.client.gid), undefined, 'the old context is retired');
      const s1 = applyRekey(group.servers.get('s1')!, rekey);
      const s2 = applyRekey(group.servers.get('s2')!, rekey);
      const removed = group.servers.get('s3')!;

      const { message, binding } = protectGroupRequest(getRequest('light'), client, { mode: 'group' });
      const refused = unprotectGroupRequest(message, byGid(removed));
      assert.equal(refused.ok, false);
      // Even handed the request under its old context, it cannot decrypt: the keys are new.
      const forced = unprotectGroupRequest(message, () => removed);
      assert.equal(forced.ok, false);
      assert.equal(forced.ok ? '' : forced.reason, 'Decryption failed');

      for (const server of [s1, s2]) {
        const verified = unprotectGroupRequest(message, byGid(server));
        assert.ok(verified.ok, verified.ok ? '' : verified.reason);
        const opened = unprotectGroupResponse(protectGroupResponse(answer(verified.message, 'ok'), server, verified.binding), client, binding);
        assert.ok(opened.ok, opened.ok ? '' : opened.reason);
      }
      // The removed member's traffic is not accepted either: its credential is gone from the new context.
      const old = protectGroupRequest(getRequest('light'), removed, { mode: 'group' });
      assert.equal(unprotectGroupRequest(old.message, byGid(s1)).ok, false);
    });
  });
}
