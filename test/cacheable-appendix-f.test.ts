/**
 * draft-ietf-core-cacheable-oscore Appendix F through the deterministic client and server: the
 * hash input of §3.4.2 step 2, the Deterministic Request the requester makes, the response the
 * server stack (the group-oscore stage and a resource marked `deterministic`) sends back, both
 * byte for byte, and the client's verification of it. The crypto pieces one by one (keys, AAD,
 * nonce, ciphertext, signature) are in group-oscore-vectors.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { ResponseCode } from '../src/coap/codes.js';
import { toHex } from '../src/cose/cbor.js';
import { GroupContextStore, GroupSecurityContext } from '../src/group-oscore/context.js';
import { REQUEST_HASH_OPTION } from '../src/group-oscore/deterministic.js';
import { DeterministicRequester, protectDeterministicResponse } from '../src/group-oscore/deterministic-exchange.js';
import { deriveCommonContext, deriveEndpointKey } from '../src/group-oscore/common.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';
import { F1, F2, F3, v } from './support/appendix-f.js';

const ALGORITHMS = { aead: 10, hkdf: 5, groupEncryption: 10, signature: -8, pairwiseKeyAgreement: -27 } as const;
const COMMON = {
  masterSecret: v(F1, 'Master Secret'),
  masterSalt: v(F1, 'Master Salt'),
  gid: v(F1, 'ID Context'),
  algorithms: ALGORITHMS,
  gmCredential: v(F1, "Group Manager's authentication credential as CCS (serialization)"),
  // F.1: the Deterministic Client's Sender ID and SHA-256 (-16).
  deterministicClient: { senderId: v(F1, "Deterministic Client's Sender ID"), hash: -16 },
};
const SERVER_ID = v(F1, "Server's Sender ID");
const SERVER_CCS = v(F1, "Server's authentication credential as CCS (serialization)");
const REQUEST = v(F2, 'From there, the protected CoAP request as Deterministic Request');
const RESPONSE = v(F3, 'From there, the protected CoAP response');

const server = (): GroupSecurityContext => new GroupSecurityContext({ ...COMMON, senderId: SERVER_ID, ownCredential: { credential: SERVER_CCS, privateKey: v(F1, "Server's private key (serialization)") } });
/** The client C: a silent member (no Sender Context of its own is needed to send Deterministic Requests) that knows S. */
const client = (): GroupSecurityContext => new GroupSecurityContext({ ...COMMON, members: [{ senderId: SERVER_ID, credential: SERVER_CCS }] });

test('App. F.2: the hash input is Sender Key ‖ aad_array ‖ plaintext, and its SHA-256 is the Request-Hash', () => {
  const senderKey = deriveEndpointKey(deriveCommonContext(COMMON), COMMON.deterministicClient.senderId);
  const input = Buffer.concat([senderKey, v(F2, 'aad_array (serialization)'), v(F2, 'Plaintext')]);
  assert.equal(input.length, 16 + 150 + 12);
  assert.equal(toHex(createHash('sha256').update(input).digest()), toHex(v(F2, 'Request-Hash value')));
});

test('App. F.2: the DeterministicRequester makes the Deterministic Request byte for byte', () => {
  const requester = new DeterministicRequester(client());
  const exchange = requester.protect(decodeMessage(v(F2, 'Unprotected CoAP request')), SERVER_ID);
  assert.equal(toHex(exchange.requestHash), toHex(v(F2, 'Request-Hash value')));
  assert.equal(toHex(encodeMessage(exchange.message)), toHex(REQUEST));
});

test('App. F.3: protectDeterministicResponse makes the response byte for byte; its plaintext is F.3\'s', () => {
  const s = server();
  const requester = new DeterministicRequester(client());
  const exchange = requester.protect(decodeMessage(v(F2, 'Unprotected CoAP request')), SERVER_ID);
  const unprotected = decodeMessage(v(F3, 'Unprotected CoAP response'));
  const protectedResponse = protectDeterministicResponse(unprotected, s, exchange.binding, exchange.requestHash);
  assert.equal(toHex(encodeMessage(protectedResponse)), toHex(RESPONSE));
  assert.equal(protectedResponse.options.some((o) => o.number === REQUEST_HASH_OPTION), false, 'step 7: Request-Hash elided');
  const verified = exchange.verify(decodeMessage(RESPONSE));
  assert.ok(verified.ok, verified.ok ? '' : verified.reason);
  assert.equal(toHex(verified.kid), toHex(SERVER_ID));
  assert.equal(Buffer.from(verified.message.payload).toString(), '. ID: 42');
  assert.equal(toHex(encodeMessage({ ...verified.message, type: 0, messageId: 0, token: new Uint8Array(0) }).subarray(4)), toHex(v(F3, 'Plaintext')).slice(2), 'the inner options and payload of F.3\'s plaintext');
});

test('App. F end to end: the server stack answers F.2\'s request with F.3\'s response, byte for byte', async () => {
  const net = new FakeNetwork();
  const contexts = new GroupContextStore();
  contexts.install('F', server());
  const s = new CoapServer(net.endpoint({ address: '10.0.0.1', port: 5683 }, {}, 1), { group: { contexts } });
  s.resource('/helloWorld', { GET: () => ({ code: ResponseCode.Content, maxAge: 3600, payload: '. ID: 42' }) }, { deterministic: true });
  const wire = net.transport({ address: '10.0.0.2', port: 40000 });
  const received: Uint8Array[] = [];
  wire.setHandler((data) => received.push(new Uint8Array(data)));
  wire.send(REQUEST, { address: '10.0.0.1', port: 5683 });
  await net.run(10);
  assert.equal(received.length, 1);
  assert.equal(toHex(received[0]!), toHex(RESPONSE));
});

test('App. F.3: the client refuses the response for another request, from another server, or once stale', () => {
  let now = 0;
  const requester = new DeterministicRequester(client(), { now: () => now });
  const other = requester.protect({ ...decodeMessage(v(F2, 'Unprotected CoAP request')), options: [{ number: 11, value: Buffer.from('goodbye') }] }, SERVER_ID);
  const refused = other.verify(decodeMessage(RESPONSE));
  assert.equal(refused.ok, false, 'another Request-Hash: the Class I option does not verify');
  const elsewhere = requester.protect(decodeMessage(v(F2, 'Unprotected CoAP request')), Uint8Array.of(0x53));
  const fromAnother = elsewhere.verify(decodeMessage(RESPONSE));
  assert.match(fromAnother.ok ? '' : fromAnother.reason, /another server/, 'sent to 0x53, answered by 0x52 (§3.4.4 step 1)');
  const mine = requester.protect(decodeMessage(v(F2, 'Unprotected CoAP request')), SERVER_ID);
  assert.ok(mine.verify(decodeMessage(RESPONSE)).ok, 'first received at 0 s');
  now = 3600_000;
  assert.ok(mine.verify(decodeMessage(RESPONSE)).ok, 'again within its Max-Age of 3600 s');
  now = 3600_001;
  const stale = mine.verify(decodeMessage(RESPONSE));
  assert.match(stale.ok ? '' : stale.reason, /stale response: served 3600 s after it was first received/);
});
