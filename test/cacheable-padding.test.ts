/**
 * The Padding option of draft-ietf-core-cacheable-oscore Appendix A on Deterministic Requests: a
 * group that agrees on a plaintext length pads every request to it (Class E, all-zero values,
 * repeated where one option cannot reach the length), so an observer of the wire cannot tell the
 * requests apart by their length (§3.1); the server ignores the option (A.2).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, getOptions, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { fromHex } from '../src/cose/cbor.js';
import { DeterministicClientSecurity } from '../src/client/deterministic.js';
import { securedSender } from '../src/client/security.js';
import { GroupContextStore } from '../src/group-oscore/context.js';
import { protectDeterministicRequest, unprotectDeterministicRequest } from '../src/group-oscore/deterministic.js';
import { GroupManager, contextFromMemberFile } from '../src/group-oscore/manager.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';

const get = (...segments: string[]): CoapMessage => ({
  type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, payload: EMPTY_BYTES,
  options: segments.map((s) => ({ number: OptionNumber.UriPath, value: encodeString(s) })),
});

function group() {
  const gm = GroupManager.create({ name: 'padded' });
  gm.addDeterministicClient();
  const origin = gm.addMember('origin');
  gm.addMember('c1');
  return { gm, origin, member: contextFromMemberFile(gm.memberFile('c1')), server: contextFromMemberFile(gm.memberFile('origin')) };
}

test('padded to one agreed length, requests for different resources have one ciphertext length; unpadded they do not', () => {
  const { member, server } = group();
  const client = member.input.deterministicClient!;
  const requests = [get('a'), get('firmware', 'image-2026-12.bin'), { ...get('t'), options: [...get('t').options, { number: OptionNumber.Observe, value: EMPTY_BYTES }] }];
  const plain = requests.map((r) => protectDeterministicRequest(r, member, client).message.payload.length);
  assert.equal(new Set(plain).size, 3, 'their lengths give them away');
  const padded = requests.map((r) => protectDeterministicRequest(r, member, client, { padTo: 64 }).message);
  assert.deepEqual(new Set(padded.map((m) => m.payload.length)), new Set([64 + 8]), 'AES-CCM-16-64-128: 64 bytes of plaintext and an 8-byte tag');
  // The server decrypts each, checks its hash over the padded plaintext, and drops the Padding option.
  padded.forEach((message, i) => {
    const opened = unprotectDeterministicRequest(message, server, client);
    assert.ok(opened.ok, opened.ok ? '' : opened.reason);
    assert.deepEqual(getOptions(opened.message, OptionNumber.Padding), []);
    assert.deepEqual(getOptions(opened.message, OptionNumber.UriPath), getOptions(requests[i]!, OptionNumber.UriPath));
  });
});

test('every reachable length is reached exactly, with a second Padding option where one cannot; 1 or 2 bytes short, or too long, is refused', () => {
  const { member } = group();
  const client = member.input.deterministicClient!;
  const base = protectDeterministicRequest(get('a'), member, client).message.payload.length - 8;
  for (let extra = 0; extra <= 300; extra++) {
    if (extra === 1 || extra === 2) {
      assert.throws(() => protectDeterministicRequest(get('a'), member, client, { padTo: base + extra }), /cannot pad .* at least 3/);
      continue;
    }
    const m = protectDeterministicRequest(get('a'), member, client, { padTo: base + extra }).message;
    assert.equal(m.payload.length, base + extra + 8, `padded by ${extra}`);
  }
  assert.throws(() => protectDeterministicRequest(get('a'), member, client, { padTo: base - 1 }), /more than the agreed padding length/);
});

test('end to end: the origin serves the padded request (the handler sees no Padding option) and the member verifies the response', async () => {
  const { gm, origin, server: originContext } = group();
  const net = new FakeNetwork();
  const contexts = new GroupContextStore();
  contexts.install('padded', originContext);
  const server = new CoapServer(net.endpoint({ address: '10.0.0.1', port: 5683 }, {}, 1), { group: { contexts } });
  const seenOptions: number[][] = [];
  server.resource('/fw', { GET: (r) => (seenOptions.push(r.message.options.map((o) => o.number)), { code: ResponseCode.Content, payload: 'firmware v1' }) }, { deterministic: true });
  const security = new DeterministicClientSecurity(contextFromMemberFile(gm.memberFile('c1')), { now: () => net.clock.now(), server: fromHex(origin.senderId), padTo: 48 });
  const endpoint = net.endpoint({ address: '10.0.1.1', port: 40000 }, {}, 7);
  const r = await net.until(securedSender(endpoint, { address: '10.0.0.1', port: 5683 }, security)(get('fw')));
  assert.equal(decodeString(r.message.payload), 'firmware v1');
  assert.equal(seenOptions.length, 1);
  assert.ok(seenOptions[0]!.includes(OptionNumber.UriPath) && !seenOptions[0]!.includes(OptionNumber.Padding), `the handler saw ${seenOptions[0]!.join(', ')}`);
  const wire = net.log.find((d) => d.to.address === '10.0.0.1')!.message;
  assert.equal(wire.payload.length, 48 + 8);
});
