/**
 * RFC 8613 Appendix B.2 (Security Context Derived Multiple Times) between our client and our
 * server on the lockstep network: client- and server-initiated runs, the kid context values on the
 * wire (R1; R2; R2 || R3 — the RFC's order), the protected 4.01, the automatic retry, replays of
 * request #1 and #2 after the switch, the old context being replaced, the 5.03 of B.2.1, and a
 * server without rederivation.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { encodeMessage } from '../src/coap/codec.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { VerificationError, securedSender, withEchoRetry } from '../src/client/security.js';
import { decodeOscoreOption, decodePartialIv } from '../src/oscore/option.js';
import { protectResponse } from '../src/oscore/protect.js';
import { R2Cache, concatBytes, r2Of, responseKidContext, secondIdContext, thirdIdContext, unwrapB2KidContext, withResponseKidContext, wrapB2KidContext } from '../src/oscore/rederivation.js';
import { OscoreSecurityContext, VolatileSequence, type SecurityContextInput } from '../src/oscore/security-context.js';
import { OscoreServerSecurity, type OscoreServerOptions } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';

const SERVER = { address: '10.0.0.1', port: 5683 };
const CLIENT = { address: '10.0.0.2', port: 40000 };
const hex = (s: string): Uint8Array => Buffer.from(s, 'hex');
const toHex = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : Buffer.from(b).toString('hex'));
/** The B.2 values travel "wrapped in a CBOR bstr" (RFC 8949 §3.1, major type 2): the value inside a 'kid context'. */
const unwrapped = (kidContext: Uint8Array | undefined): Uint8Array => {
  const value = kidContext === undefined ? undefined : unwrapB2KidContext(kidContext);
  assert.ok(value !== undefined, "the 'kid context' is a CBOR bstr");
  return value;
};

const COMMON = { masterSecret: hex('0102030405060708090a0b0c0d0e0f10'), masterSalt: hex('9e7ca92223786340') };
const CLIENT_CONTEXT: SecurityContextInput = { ...COMMON, senderId: hex(''), recipientIds: [hex('01')], name: 'server', rederivation: true };
const SERVER_CONTEXT: SecurityContextInput = { ...COMMON, senderId: hex('01'), recipientIds: [hex('')], name: 'client', rederivation: true };

function setup(options: { server?: SecurityContextInput; client?: SecurityContextInput; restarted?: boolean; serverOptions?: OscoreServerOptions } = {}) {
  const net = new FakeNetwork();
  const serverContext = new OscoreSecurityContext(options.server ?? SERVER_CONTEXT, new VolatileSequence(), options.restarted);
  const security = new OscoreServerSecurity([serverContext], options.serverOptions);
  const server = new CoapServer(net.endpoint(SERVER, {}, 1), { security });
  let handled = 0;
  server.resource('/whoami', {
    GET: (req) => {
      handled++;
      return { code: ResponseCode.Content, payload: JSON.stringify(req.context.oscore ?? null) };
    },
  });
  const client = net.endpoint(CLIENT, {}, 2);
  const newClient = (input: SecurityContextInput = options.client ?? CLIENT_CONTEXT) => new OscoreClientSecurity(new OscoreSecurityContext(input, new VolatileSequence()));
  const oscore = newClient();
  const request = (path = '/whoami'): CoapMessage => ({
    type: MessageType.CON,
    code: Method.GET,
    messageId: 0,
    token: EMPTY_BYTES,
    options: path.split('/').filter(Boolean).map((segment) => ({ number: OptionNumber.UriPath, value: encodeString(segment) })),
    payload: EMPTY_BYTES,
  });
  const send = (security: OscoreClientSecurity = oscore) => withEchoRetry(securedSender(client, SERVER, security));
  const sendOnce = (security: OscoreClientSecurity = oscore) => securedSender(client, SERVER, security);
  const toServer = () => net.log.filter((d) => d.to.address === SERVER.address && getOption(d.message, OptionNumber.Oscore)).map((d) => d.message);
  const fromServer = () => net.log.filter((d) => d.from.address === SERVER.address).map((d) => d.message);
  const cose = (m: CoapMessage) => decodeOscoreOption(getOption(m, OptionNumber.Oscore)!);
  /** Re-sends a recorded message as a new datagram (a new Message ID, so deduplication lets it through). */
  const replay = (m: CoapMessage, messageId = 0x7777) => net.carry(CLIENT, SERVER, encodeMessage({ ...m, messageId }));
  return { net, server, security, serverContext, client, oscore, newClient, request, send, sendOnce, toServer, fromServer, cose, replay, handled: () => handled };
}

test('B.2 client-initiated: R1, then a protected 4.01 with R2, then R2||R3; the application sees one 2.05', async () => {
  const s = setup();
  s.oscore.rederive();
  const r1 = s.oscore.nextIdContext!;
  assert.equal(r1.length, 8, 'R1: 8 random bytes');
  const response = await s.net.until(s.send()(s.request()));
  assert.equal(response.message.code, ResponseCode.Content, 'the application sees a normal 2.05 after one automatic retry');
  assert.equal(s.handled(), 1, 'request #1 never reached the application');

  const [request1, request2, ...rest] = s.toServer();
  assert.equal(rest.length, 0, 'exactly two requests: #1 and the automatic #2');
  // Step 1: "containing R1 wrapped in a CBOR bstr as 'kid context'": 0x48 (bstr of 8 bytes), R1.
  assert.equal(toHex(s.cose(request1!).kidContext), '48' + toHex(r1));
  assert.equal(decodePartialIv(s.cose(request1!).piv!), 0, 'the first context (new keys) numbers from 0');

  // Step 2: the 4.01 is OSCORE-protected (outer 2.04, ciphertext) and carries R2 as 'kid context'.
  const [response1, response2] = s.fromServer();
  assert.equal(response1!.code, ResponseCode.Changed, 'outer code 2.04: response #1 is protected (§4.2)');
  const r2 = unwrapped(s.cose(response1!).kidContext);
  assert.equal(r2.length, 8, 'R2: 8 random bytes');
  assert.equal(toHex(s.cose(response1!).kidContext), '48' + toHex(r2), 'R2 wrapped in a CBOR bstr');
  assert.equal(s.cose(response1!).piv, undefined, 'response #1 uses the request nonce under its fresh ID2 key');
  assert.ok(response1!.payload.length > 0);

  // Step 3: request #2 carries ID3 = R2 || R3, a new context whose numbering starts at 0.
  const id3 = unwrapped(s.cose(request2!).kidContext);
  assert.equal(id3.length, 16);
  assert.equal(toHex(s.cose(request2!).kidContext), '50' + toHex(id3), 'R2 || R3 wrapped in a CBOR bstr (0x50: 16 bytes)');
  assert.equal(toHex(id3.subarray(0, 8)), toHex(r2), 'ID3 starts with R2 (RFC 8613 Figure 14: R2 || R3)');
  assert.notEqual(toHex(id3.subarray(8)), toHex(r1), 'R3 is a new random string');
  assert.equal(decodePartialIv(s.cose(request2!).piv!), 0);
  assert.equal(s.cose(response2!).kidContext, undefined, "response #2 carries no 'kid context'");

  // Steps 4 and 5: both sides now use ID3.
  assert.equal(toHex(s.oscore.context.idContext), toHex(id3), 'step 5: the client switched to ID3');
  assert.deepEqual(JSON.parse(decodeString(response.message.payload)), [{ peer: 'client', kid: '', kidContext: toHex(id3) }]);
  assert.deepEqual(s.security.contexts.map((c) => toHex(c.idContext)), [undefined, toHex(id3)]);

  // Later requests use the third context without any further exchange.
  const again = await s.net.until(s.send()(s.request()));
  assert.equal(again.message.code, ResponseCode.Content);
  const third = s.toServer()[2]!;
  assert.equal(toHex(s.cose(third).kidContext), toHex(id3), "an ordinary request: 'kid context' is the ID Context itself (§5.1)");
  assert.equal(decodePartialIv(s.cose(third).piv!), 1);
  assert.equal(s.toServer().length, 3);
});

test('B.2: a server without rederivation answers an unknown kid context with an unprotected 4.01 "Security context not found"', async () => {
  const s = setup({ server: { ...SERVER_CONTEXT, rederivation: false } });
  s.oscore.rederive();
  await assert.rejects(s.net.until(s.send()(s.request())), (e: unknown) => e instanceof VerificationError && /unprotected 4\.01 Unauthorized: "Security context not found"/.test(e.message));
  const [answer] = s.fromServer();
  assert.equal(answer!.code, ResponseCode.Unauthorized);
  assert.equal(getOption(answer!, OptionNumber.Oscore), undefined);
  assert.equal(decodeString(answer!.payload), 'Security context not found');
  assert.equal(s.handled(), 0);
  assert.equal(s.security.contexts.length, 1);
});

test('B.2: after the switch a replayed request #1 only starts a new run (a new R2), and a replayed request #2 is refused', async () => {
  const s = setup();
  s.oscore.rederive();
  await s.net.until(s.send()(s.request()));
  const [request1, request2] = s.toServer();
  const id3 = s.oscore.context.idContext!;
  const firstR2 = unwrapped(s.cose(s.fromServer()[0]!).kidContext);

  // B.2.2: "Replaying an old request with a value of 'kid_context' that the server does not
  // recognize could trigger the protocol." The first context was deleted: R1 is unknown again.
  s.replay(request1!, 0x7777);
  await s.net.run(5);
  const answer1 = s.fromServer().at(-1)!;
  assert.equal(answer1.code, ResponseCode.Changed, 'a protected 4.01 (response #1 again), not the resource');
  const newR2 = unwrapped(s.cose(answer1).kidContext);
  assert.equal(newR2.length, 8);
  assert.notEqual(toHex(newR2), toHex(firstR2), 'R2 MUST NOT be reused');
  assert.equal(s.handled(), 1, 'the replayed request #1 was not acted on');

  // Request #2: "The server MUST NOT accept replayed request #2 messages" — the third context's
  // replay window refuses it.
  s.replay(request2!, 0x7778);
  await s.net.run(5);
  const answer2 = s.fromServer().at(-1)!;
  assert.equal(answer2.code, ResponseCode.Unauthorized);
  assert.equal(getOption(answer2, OptionNumber.Oscore), undefined);
  assert.equal(decodeString(answer2.payload), 'Replay detected');
  assert.equal(s.handled(), 1);

  // The client's context is untouched by the replays.
  const again = await s.net.until(s.send()(s.request()));
  assert.equal(again.message.code, ResponseCode.Content);
  assert.equal(toHex(s.cose(s.toServer().at(-1)!).kidContext), toHex(id3));
  assert.equal(s.handled(), 2);
});

test('B.2 step 4: the third context replaces the previous one with that client; the old context is refused', async () => {
  const s = setup();
  // Before the switch the configured context works.
  const legacy = s.newClient({ ...CLIENT_CONTEXT, rederivation: false });
  assert.equal((await s.net.until(s.send(legacy)(s.request()))).message.code, ResponseCode.Content);
  s.oscore.rederive();
  await s.net.until(s.send()(s.request()));
  assert.equal(s.handled(), 2);
  // "This security context replaces the previous security context with the client": the
  // configured context (no ID Context) no longer serves kid ''.
  await assert.rejects(s.net.until(s.send(legacy)(s.request())), (e: unknown) => e instanceof VerificationError && /unprotected 4\.00 Bad Request: "Decryption failed"/.test(e.message));
  assert.equal(s.handled(), 2);
  assert.equal(s.security.contexts.length, 2);
  assert.equal(s.security.contexts.filter((c) => c.origin !== undefined).length, 1, 'one derived context for the client');

  // A second run replaces the first derived context (not adding to it).
  const previous = toHex(s.oscore.context.idContext);
  s.oscore.rederive();
  assert.equal((await s.net.until(s.send()(s.request()))).message.code, ResponseCode.Content);
  assert.notEqual(toHex(s.oscore.context.idContext), previous);
  assert.deepEqual(s.security.contexts.map((c) => toHex(c.idContext)), [undefined, toHex(s.oscore.context.idContext)]);
});

test('B.2 server-initiated: after a restart the server answers with R2 instead of an Echo challenge; ID2 = R2, ID3 = R2||R3', async () => {
  const s = setup({ restarted: true });
  const response = await s.net.until(s.send()(s.request()));
  assert.equal(response.message.code, ResponseCode.Content);
  assert.equal(s.handled(), 1);
  const [request1, request2] = s.toServer();
  assert.equal(s.cose(request1!).kidContext, undefined, 'step 1 omitted: an ordinary request with the configured context');
  const r2 = unwrapped(s.cose(s.fromServer()[0]!).kidContext);
  assert.equal(getOption(s.fromServer()[0]!, OptionNumber.Echo), undefined);
  assert.equal(toHex(unwrapped(s.cose(request2!).kidContext).subarray(0, 8)), toHex(r2));
  assert.equal(toHex(s.oscore.context.idContext), toHex(unwrapped(s.cose(request2!).kidContext)));
});

test('B.2 with a configured ID Context: ID2 = R2 || ID1, and the old ID Context then starts a new run', async () => {
  const id1 = hex('37cbf3210017a2d3');
  const s = setup({ server: { ...SERVER_CONTEXT, idContext: id1 }, client: { ...CLIENT_CONTEXT, idContext: id1 }, restarted: true });
  assert.equal((await s.net.until(s.send()(s.request()))).message.code, ResponseCode.Content);
  const r2 = unwrapped(s.cose(s.fromServer()[0]!).kidContext);
  assert.equal(toHex(s.cose(s.toServer()[0]!).kidContext), toHex(id1), 'request #1 is an ordinary request: the ID Context itself');
  assert.equal(toHex(s.oscore.context.idContext!.subarray(0, 8)), toHex(r2));
  // A request with the replaced ID Context is request #1 of a new run, not served.
  const old = s.newClient({ ...CLIENT_CONTEXT, idContext: id1, rederivation: false });
  const answer = await s.net.until(s.sendOnce(old)(s.request())).catch((e: unknown) => e);
  assert.ok(answer instanceof VerificationError, 'a client without rederivation cannot read response #1');
  assert.equal(unwrapped(s.cose(s.fromServer().at(-1)!).kidContext).length, 8);
  assert.equal(s.handled(), 1);
});

test('B.2.1: with the R2 cache full, request #1 gets an unprotected 5.03', async () => {
  const s = setup({ serverOptions: { r2Cache: { capacity: 1, lifetimeMs: 30_000 } } });
  s.oscore.rederive();
  const first = await s.net.until(s.sendOnce()(s.request()));
  assert.equal(first.message.code, ResponseCode.Unauthorized, 'without the retry wrapper the verified 4.01 reaches the caller');
  const other = s.newClient();
  other.rederive();
  await assert.rejects(s.net.until(s.sendOnce(other)(s.request())), (e: unknown) => e instanceof VerificationError && /unprotected 5\.03/.test(e.message));
  // The pending run still completes: the first client's next request is request #2.
  assert.equal((await s.net.until(s.sendOnce()(s.request()))).message.code, ResponseCode.Content);
});

test('B.2 step 3: a response #1 whose kid context was altered fails verification and changes nothing', async () => {
  const s = setup();
  s.net.drop = () => false;
  s.oscore.rederive();
  const pending = s.oscore.nextIdContext;
  // An on-path attacker flips a byte of R2 in response #1.
  const server = s.server;
  void server;
  const original = s.net.carry.bind(s.net);
  s.net.carry = (from, to, data) => {
    if (from.address === SERVER.address) {
      const bytes = Buffer.from(data);
      const index = bytes.indexOf(Buffer.from([0x09, 0x48]), 4); // 's' = 9 and bstr(8 bytes) in the OSCORE option
      if (index > 0) bytes[index + 2]! ^= 0x01;
      return original(from, to, bytes);
    }
    return original(from, to, data);
  };
  await assert.rejects(s.net.until(s.send()(s.request())), (e: unknown) => e instanceof VerificationError && /B\.2 response #1 failed/.test(e.message));
  assert.equal(toHex(s.oscore.nextIdContext), toHex(pending), 'still the first context');
  assert.equal(s.oscore.context.idContext, undefined);
});

test('rederivation.ts: ID Context composition, kid context on a protected response, the R2 cache', () => {
  const r1 = hex('aaaaaaaaaaaaaaaa');
  const r2 = hex('bbbbbbbbbbbbbbbb');
  const r3 = hex('cccccccccccccccc');
  assert.equal(toHex(secondIdContext(r2, r1)), 'bbbbbbbbbbbbbbbbaaaaaaaaaaaaaaaa', 'ID2 = R2 || ID1');
  assert.equal(toHex(secondIdContext(r2, undefined)), toHex(r2));
  assert.equal(toHex(thirdIdContext(r2, r3)), 'bbbbbbbbbbbbbbbbcccccccccccccccc', 'ID3 = R2 || R3');
  assert.equal(toHex(r2Of(concatBytes(r2, r3))), toHex(r2));
  assert.equal(r2Of(r2), undefined, 'R3 must not be empty');

  const context = new OscoreSecurityContext(SERVER_CONTEXT, new VolatileSequence());
  const message: CoapMessage = { type: MessageType.ACK, code: ResponseCode.Unauthorized, messageId: 1, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES };
  const protectedResponse = protectResponse(message, context.sender, { kid: hex(''), piv: hex('00') });
  const withContext = withResponseKidContext(protectedResponse, r2);
  assert.equal(toHex(responseKidContext(withContext)), '48' + toHex(r2), 'R2 wrapped in a CBOR bstr');
  assert.equal(toHex(unwrapB2KidContext(responseKidContext(withContext)!)), toHex(r2));
  assert.deepEqual(withContext.payload, protectedResponse.payload, 'the OSCORE option is not in the AAD: the ciphertext is unchanged');
  assert.equal(responseKidContext(protectedResponse), undefined);

  let now = 0;
  const cache = new R2Cache<string>({ capacity: 2, lifetimeMs: 100, now: () => now });
  assert.ok(cache.add('a', r1));
  assert.ok(cache.add('b', r2));
  assert.equal(cache.add('a', r3), false, 'full');
  assert.ok(cache.has('a', r1) && !cache.has('b', r1));
  cache.clear('a');
  assert.ok(!cache.has('a', r1));
  now = 100;
  assert.equal(cache.size, 0, 'expired');

  // A derived context has new keys and numbers from 0.
  const derived = context.derive(concatBytes(r2, r3), hex(''));
  assert.notEqual(toHex(derived.sender.senderKey), toHex(context.sender.senderKey));
  assert.equal(derived.nextSequenceNumber(), 0);
  assert.equal(derived.origin, context);
  assert.ok(derived.primaryRecipient.replay.initialised);
});

test('B.2 after a server restart: the derived context was in memory only, so the client\'s ID3 is unknown and B.2 runs again from it', async () => {
  const before = setup();
  before.oscore.rederive();
  await before.net.until(before.send()(before.request()));
  const id3 = before.oscore.context.idContext!;
  // The server restarts: configured context from its (persistent) configuration, derived ones gone.
  const after = setup({ restarted: true });
  const response = await after.net.until(after.send(before.oscore)(after.request()));
  assert.equal(response.message.code, ResponseCode.Content);
  const [request1] = after.toServer();
  assert.equal(toHex(after.cose(request1!).kidContext), toHex(id3), 'request #1 is the client\'s ordinary request with ID1 = the old ID3');
  const r2 = unwrapped(after.cose(after.fromServer()[0]!).kidContext);
  assert.equal(toHex(before.oscore.context.idContext!.subarray(0, 8)), toHex(r2));
  assert.notEqual(toHex(before.oscore.context.idContext), toHex(id3));
  assert.equal(after.handled(), 1);
});

test('B.2 on the wire, byte for byte: the OSCORE option of requests #1 and #2 and responses #1 and #2 (RFC 8613 §6.1, Figure 14)', async () => {
  const s = setup();
  s.oscore.rederive();
  const r1 = toHex(s.oscore.nextIdContext)!;
  await s.net.until(s.send()(s.request()));
  const id3 = toHex(s.oscore.context.idContext)!;
  const r2 = id3.slice(0, 16);
  const r3 = id3.slice(16);
  assert.equal(r3.length, 16);
  const [request1, request2] = s.toServer();
  const [response1, response2] = s.fromServer();
  const option = (m: CoapMessage | undefined) => toHex(getOption(m!, OptionNumber.Oscore));
  // flags 0x19 = h (kid context) | k (kid) | n = 1; Partial IV 0x00; s = 0x09; bstr(8 bytes) 0x48 R1; kid '' (empty Sender ID).
  assert.equal(option(request1), `19000948${r1}`, 'request #1: R1 wrapped in a CBOR bstr');
  // flags 0x10 = h only: no Partial IV (the request nonce), no kid; s = 0x09; 0x48 R2.
  assert.equal(option(response1), `100948${r2}`, 'response #1: R2 wrapped in a CBOR bstr');
  // Partial IV 0 under the new third context; s = 0x11 (17); bstr(16 bytes) 0x50 R2 || R3.
  assert.equal(option(request2), `19001150${r2}${r3}`, 'request #2: R2 || R3 wrapped in a CBOR bstr');
  // §6.1: all flags zero, so the option value is empty.
  assert.equal(option(response2), '', 'response #2: an empty OSCORE option');
});

test('B.2 kid context codec: a CBOR bstr of the value, and nothing else is accepted', () => {
  assert.equal(toHex(wrapB2KidContext(hex('0102'))), '420102');
  assert.equal(toHex(wrapB2KidContext(new Uint8Array(24))), '5818' + '00'.repeat(24), 'the one-byte length form from 24 bytes on');
  assert.equal(toHex(unwrapB2KidContext(hex('420102'))), '0102');
  assert.equal(toHex(unwrapB2KidContext(hex('5818' + '00'.repeat(24)))), '00'.repeat(24));
  assert.equal(unwrapB2KidContext(hex('0102')), undefined, 'not a bstr');
  assert.equal(unwrapB2KidContext(hex('430102')), undefined, 'truncated');
  assert.equal(unwrapB2KidContext(hex('41010203')), undefined, 'trailing bytes');
  assert.equal(unwrapB2KidContext(hex('580101')), undefined, 'a length that fits the initial byte must be encoded there (RFC 8949 §4.2.1)');
  assert.equal(unwrapB2KidContext(hex('5f4101ff')), undefined, 'indefinite length');
  assert.equal(unwrapB2KidContext(new Uint8Array(0)), undefined);
});
