/**
 * OSCORE message processing (RFC 8613 §4, §8): error mapping, option classes, Proxy-Uri, Observe,
 * nested layers (draft-ietf-core-oscore-capable-proxies), immutability and round-trip properties.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import {
  type CoapMessage,
  type CoapOption,
  MessageType,
  createMessage,
  decodeString,
  decodeUint,
  encodeString,
  encodeUint,
  getOption,
  getOptions,
} from '../src/coap/message.js';
import { OptionNumber as N } from '../src/coap/options.js';
import {
  type DerivedContext,
  type RecipientParams,
  type RequestBinding,
  OscoreConfigError,
  OscoreProtectError,
  SequenceNumberExhausted,
  aeadAlgorithm,
  additionalData,
  allAeadAlgorithms,
  decodePlaintext,
  deriveContext,
  encodeOscoreOption,
  errorResponseParts,
  nonce,
  protectRequest,
  protectResponse,
  unprotectRequest,
  unprotectResponse,
} from '../src/oscore/index.js';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const str = encodeString;
const wire = (m: CoapMessage): CoapMessage => decodeMessage(encodeMessage(m));
const hexOf = (m: CoapMessage): string => encodeMessage(m).toString('hex');

function pair(aead = 10, idContext?: Uint8Array, clientId = bytes(0xc1), serverId = bytes(0x5e)): { client: DerivedContext; server: DerivedContext } {
  const masterSecret = str('a master secret of some length');
  const common = { masterSecret, masterSalt: bytes(1, 2, 3), aead, ...(idContext ? { idContext } : {}) };
  return {
    client: deriveContext({ ...common, senderId: clientId, recipientId: serverId }),
    server: deriveContext({ ...common, senderId: serverId, recipientId: clientId }),
  };
}

const { client, server } = pair();
const serverLookup = (kid: Uint8Array): RecipientParams | undefined =>
  Buffer.from(kid).equals(Buffer.from(server.recipientId)) ? server.recipient : undefined;

const GET = (options: CoapOption[] = [], payload: Uint8Array = new Uint8Array(0)): CoapMessage =>
  createMessage({ code: Method.GET, type: MessageType.CON, messageId: 0x1234, token: bytes(1, 2, 3, 4), options, payload });

/** Decrypts a request's ciphertext directly, to look at the inner (plaintext) options. */
function innerOfRequest(protectedMsg: CoapMessage, ctx: DerivedContext = client): { code: number; options: CoapOption[]; payload: Uint8Array } {
  const alg = aeadAlgorithm(ctx.aead);
  const piv = protectedMsg.options.find((o) => o.number === N.Oscore)!.value.subarray(1, 1 + (protectedMsg.options.find((o) => o.number === N.Oscore)!.value[0]! & 7));
  const pt = alg.open(ctx.senderKey, nonce(ctx.commonIv, ctx.senderId, piv), additionalData(alg.id, ctx.senderId, piv), protectedMsg.payload)!;
  return decodePlaintext(pt)!;
}

function snapshot(m: CoapMessage): string {
  return JSON.stringify({ ...m, token: [...m.token], payload: [...m.payload], options: m.options.map((o) => [o.number, [...o.value]]) });
}

// --- the §8.2 error mapping ---------------------------------------------------------------------

test('§8.2: a good request unprotects; result carries kid, sequence number, binding and recipient', () => {
  const req = GET([{ number: N.UriPath, value: str('temp') }]);
  const { message, binding } = protectRequest(req, client.sender, 7);
  const r = unprotectRequest(wire(message), serverLookup);
  assert.ok(r.ok);
  assert.equal(hexOf(r.message), hexOf(req));
  assert.equal(r.sequenceNumber, 7);
  assert.deepEqual([...r.kid], [0xc1]);
  assert.deepEqual([...r.binding.piv], [...binding.piv]);
  assert.equal(r.recipient, server.recipient);
  assert.equal(r.binding.observe, false);
});

function expectFailure(m: CoapMessage, code: number, reason: RegExp, lookup = serverLookup): void {
  const r = unprotectRequest(m, lookup);
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.code, code, r.reason);
    assert.match(r.reason, reason);
  }
}

function withOscoreValue(m: CoapMessage, value: Uint8Array): CoapMessage {
  return { ...m, options: m.options.map((o) => (o.number === N.Oscore ? { number: N.Oscore, value } : o)) };
}

test('§8.2 step 2: malformed or missing OSCORE option → 4.02 Bad Option', () => {
  const { message } = protectRequest(GET([{ number: N.UriPath, value: str('x') }]), client.sender, 1);
  const good = message.options.find((o) => o.number === N.Oscore)!.value;
  expectFailure({ ...message, options: message.options.filter((o) => o.number !== N.Oscore) }, ResponseCode.BadOption, /Missing OSCORE option/);
  expectFailure(withOscoreValue(message, bytes(0x29, 1, 0xc1)), ResponseCode.BadOption, /Failed to decode COSE: reserved OSCORE flag bits/);
  // 0x80 is KUDOS's Extension-1 flag now (draft-ietf-core-oscore-key-update §4.1); an unassigned bit of
  // the second flag byte is what is reserved there.
  expectFailure(withOscoreValue(message, bytes(0x89, 0x02, 1, 0xc1)), ResponseCode.BadOption, /reserved OSCORE flag bits/);
  expectFailure(withOscoreValue(message, bytes(0x89, 0x01, 1, 0x87, 0, 1, 2, 3, 4, 5, 6, 7, 0xc1)), ResponseCode.BadOption, /reserved bit set in the KUDOS 'x' byte/);
  expectFailure(withOscoreValue(message, bytes(0x19, 1, 0x05, 0xaa)), ResponseCode.BadOption, /truncated kid context/);
  expectFailure(withOscoreValue(message, bytes(0x0e, 1, 2, 3, 4, 5, 6, 0xc1)), ResponseCode.BadOption, /reserved Partial IV length 6/);
  expectFailure(withOscoreValue(message, bytes(0x0f, 1, 2, 3, 4, 5, 6, 7, 0xc1)), ResponseCode.BadOption, /reserved Partial IV length 7/);
  expectFailure(withOscoreValue(message, bytes(0x08, 0xc1)), ResponseCode.BadOption, /without Partial IV/);
  expectFailure(withOscoreValue(message, bytes(0x01, 1)), ResponseCode.BadOption, /without kid/);
  expectFailure(withOscoreValue(message, new Uint8Array(0)), ResponseCode.BadOption, /without Partial IV/);
  expectFailure({ ...message, payload: new Uint8Array(0) }, ResponseCode.BadOption, /no payload/);
  expectFailure({ ...message, options: [...message.options, { number: N.Oscore, value: good }] }, ResponseCode.BadOption, /repeated OSCORE option/);
});

test('§8.2 step 2: unknown kid → 4.01 "Security context not found"', () => {
  const { message } = protectRequest(GET(), client.sender, 1);
  expectFailure(withOscoreValue(message, encodeOscoreOption({ piv: bytes(1), kid: bytes(0x99) })), ResponseCode.Unauthorized, /^Security context not found$/);
  expectFailure(message, ResponseCode.Unauthorized, /Security context not found/, () => undefined);
});

test('§8.2 step 6: tampered ciphertext, tag, Partial IV or wrong context → 4.00 "Decryption failed"', () => {
  const { message } = protectRequest(GET([{ number: N.UriPath, value: str('x') }], str('body')), client.sender, 1);
  for (const at of [0, 3, message.payload.length - 1]) {
    const payload = Uint8Array.from(message.payload);
    payload[at]! ^= 0x40;
    expectFailure({ ...message, payload }, ResponseCode.BadRequest, /^Decryption failed$/);
  }
  expectFailure({ ...message, payload: message.payload.subarray(0, 5) }, ResponseCode.BadRequest, /Decryption failed/);
  expectFailure(withOscoreValue(message, encodeOscoreOption({ piv: bytes(2), kid: bytes(0xc1) })), ResponseCode.BadRequest, /Decryption failed/);
  // A context found for the kid, but another one (different keys).
  const other = pair(10, bytes(7)).server;
  expectFailure(message, ResponseCode.BadRequest, /Decryption failed/, () => other.recipient);
});

test('§4.2 / §8.2 step 1: the outer code is not protected and is discarded; the inner code is protected', () => {
  const req = createMessage({ code: Method.DELETE, token: bytes(9), options: [{ number: N.UriPath, value: str('door') }] });
  const { message } = protectRequest(req, client.sender, 3);
  assert.equal(message.code, Method.POST);
  const r = unprotectRequest({ ...message, code: Method.GET }, serverLookup);
  assert.ok(r.ok);
  assert.equal(r.message.code, Method.DELETE);
});

test('§8.2 step 1: outer Class E options (e.g. injected by a proxy) are discarded; Class U kept', () => {
  const req = GET([{ number: N.UriHost, value: str('example.com') }, { number: N.UriPath, value: str('a') }]);
  const { message } = protectRequest(req, client.sender, 4);
  const injected = createMessage({
    ...message,
    options: [...message.options, { number: N.UriPath, value: str('evil') }, { number: N.IfMatch, value: bytes(1) }, { number: N.HopLimit, value: bytes(16) }],
  });
  const r = unprotectRequest(injected, serverLookup);
  assert.ok(r.ok);
  assert.deepEqual(getOptions(r.message, N.UriPath).map(decodeString), ['a']);
  assert.equal(getOption(r.message, N.IfMatch), undefined);
  assert.deepEqual([...getOption(r.message, N.HopLimit)!], [16]);
  assert.equal(decodeString(getOption(r.message, N.UriHost)!), 'example.com');
});

test('a decrypted but malformed inner message is 4.00, not a crash', () => {
  const alg = aeadAlgorithm(10);
  const piv = bytes(5);
  const garbage = alg.seal(client.senderKey, nonce(client.commonIv, client.senderId, piv), additionalData(10, client.senderId, piv), bytes(0x01, 0xff));
  const m = createMessage({ code: Method.POST, options: [{ number: N.Oscore, value: encodeOscoreOption({ piv, kid: client.senderId }) }], payload: garbage });
  expectFailure(m, ResponseCode.BadRequest, /Malformed inner message/);
});

test('errorResponseParts: code, Outer Max-Age 0, diagnostic payload', () => {
  const parts = errorResponseParts({ code: ResponseCode.Unauthorized, reason: 'Security context not found' });
  assert.equal(parts.code, ResponseCode.Unauthorized);
  assert.deepEqual(parts.options, [{ number: N.MaxAge, value: new Uint8Array(0) }]);
  assert.equal(decodeString(parts.payload), 'Security context not found');
});

// --- option classes -------------------------------------------------------------------------------

test('§4.1: Class E options inner, Class U outer, unknown options Class E', () => {
  const req = GET(
    [
      { number: N.UriHost, value: str('h') },
      { number: N.ETag, value: bytes(1) },
      { number: N.UriPort, value: encodeUint(61616) },
      { number: N.UriPath, value: str('p') },
      { number: N.ContentFormat, value: encodeUint(50) },
      { number: N.HopLimit, value: bytes(9) },
      { number: N.Accept, value: encodeUint(0) },
      { number: N.ProxyScheme, value: str('coap') },
      { number: N.Echo, value: bytes(1, 2, 3) },
      { number: 2052, value: bytes(7) },
    ],
    str('payload'),
  );
  const { message } = protectRequest(req, client.sender, 11);
  assert.deepEqual(message.options.map((o) => o.number), [N.UriHost, N.UriPort, N.Oscore, N.HopLimit, N.ProxyScheme]);
  const inner = innerOfRequest(message);
  assert.equal(inner.code, Method.GET);
  assert.deepEqual(inner.options.map((o) => o.number), [N.ETag, N.UriPath, N.ContentFormat, N.Accept, N.Echo, 2052]);
  assert.equal(decodeString(inner.payload), 'payload');
  const r = unprotectRequest(wire(message), serverLookup);
  assert.ok(r.ok);
  assert.equal(hexOf(r.message), hexOf(req));
});

test('§4.1.3: Max-Age, Block1/2, Size1/2, No-Response go inner; classOf can make Block2 outer', () => {
  const req = GET([
    { number: N.MaxAge, value: encodeUint(30) },
    { number: N.Block2, value: encodeUint(0x12) },
    { number: N.Block1, value: encodeUint(0x0a) },
    { number: N.Size2, value: encodeUint(0) },
    { number: N.Size1, value: encodeUint(900) },
    { number: N.NoResponse, value: encodeUint(26) },
  ]);
  const { message } = protectRequest(req, client.sender, 12);
  assert.deepEqual(message.options.map((o) => o.number), [N.Oscore]);
  assert.deepEqual(innerOfRequest(message).options.map((o) => o.number), [N.MaxAge, N.Block2, N.Block1, N.Size2, N.Size1, N.NoResponse]);
  const outerBlock = protectRequest(req, client.sender, 13, { classOf: (n) => (n === N.Block2 ? 'U' : 'E') }).message;
  assert.deepEqual(outerBlock.options.map((o) => o.number), [N.Oscore, N.Block2]);
  // On receipt an outer Block2 is discarded (§8.2 step 1: it is class E): the block layer used it first.
  const r = unprotectRequest(outerBlock, serverLookup);
  assert.ok(r.ok);
  assert.equal(getOption(r.message, N.Block2), undefined);
});

test('§4.1.3.3: Proxy-Uri is decomposed (RFC example) and recomposed on receipt', () => {
  const req = GET([{ number: N.ProxyUri, value: str('coap://example.com/resource?q=1') }]);
  const { message } = protectRequest(req, client.sender, 14);
  assert.deepEqual(message.options.map((o) => [o.number, o.number === N.Oscore ? '' : decodeString(o.value)]), [[N.Oscore, ''], [N.ProxyUri, 'coap://example.com']]);
  const inner = innerOfRequest(message);
  assert.deepEqual(inner.options.map((o) => [o.number, decodeString(o.value)]), [[N.UriPath, 'resource'], [N.UriQuery, 'q=1']]);
  const r = unprotectRequest(wire(message), serverLookup);
  assert.ok(r.ok);
  assert.equal(hexOf(r.message), hexOf(req));
});

test('§4.1.3.3: Proxy-Uri with port, percent-encoded segments and query; without a path; unparsable', () => {
  const uri = 'coap://[2001:db8::1]:61616/a%2Fb/c%20d?x=1&y=%26';
  const { message } = protectRequest(GET([{ number: N.ProxyUri, value: str(uri) }]), client.sender, 15);
  assert.equal(decodeString(getOption(message, N.ProxyUri)!), 'coap://[2001:db8::1]:61616');
  assert.deepEqual(getOptions(innerOfRequest(message), N.UriPath).map(decodeString), ['a/b', 'c d']);
  assert.deepEqual(getOptions(innerOfRequest(message), N.UriQuery).map(decodeString), ['x=1', 'y=&']);
  const r = unprotectRequest(message, serverLookup);
  assert.ok(r.ok);
  assert.equal(decodeString(getOption(r.message, N.ProxyUri)!), uri);
  assert.equal(getOption(r.message, N.UriPath), undefined);

  const bare = protectRequest(GET([{ number: N.ProxyUri, value: str('http://example.org') }]), client.sender, 16).message;
  assert.equal(decodeString(getOption(bare, N.ProxyUri)!), 'http://example.org');
  assert.throws(() => protectRequest(GET([{ number: N.ProxyUri, value: str('not a uri') }]), client.sender, 17), OscoreProtectError);
});

// --- Observe ----------------------------------------------------------------------------------------

test('§4.1.3.5.1: Observe registration: outer FETCH, inner and outer Observe with the original value', () => {
  const req = GET([{ number: N.Observe, value: encodeUint(0) }, { number: N.UriPath, value: str('temp') }]);
  const { message, binding } = protectRequest(req, client.sender, 21);
  assert.equal(message.code, Method.FETCH);
  assert.deepEqual(getOption(message, N.Observe), new Uint8Array(0));
  assert.deepEqual(innerOfRequest(message).options.map((o) => o.number), [N.Observe, N.UriPath]);
  assert.equal(binding.observe, true);
  const cancel = protectRequest(GET([{ number: N.Observe, value: encodeUint(1) }]), client.sender, 22).message;
  assert.equal(decodeUint(getOption(cancel, N.Observe)!), 1);
  assert.equal(decodeUint(getOption(innerOfRequest(cancel), N.Observe)!), 1);
  const r = unprotectRequest(wire(message), serverLookup);
  assert.ok(r.ok);
  assert.equal(hexOf(r.message), hexOf(req));
  assert.equal(r.binding.observe, true);
});

test('§4.1.3.5.2: notifications: outer 2.05 with the original Observe, inner Observe empty, Partial IV ordering', () => {
  const req = GET([{ number: N.Observe, value: encodeUint(0) }]);
  const { message, binding } = protectRequest(req, client.sender, 23);
  const sr = unprotectRequest(message, serverLookup);
  assert.ok(sr.ok);
  const notification = createMessage({
    code: ResponseCode.Content,
    type: MessageType.NON,
    token: req.token,
    options: [{ number: N.Observe, value: encodeUint(4242) }, { number: N.ContentFormat, value: encodeUint(0) }, { number: N.MaxAge, value: encodeUint(10) }],
    payload: str('22.5 C'),
  });
  const p = protectResponse(notification, server.sender, sr.binding, { sequenceNumber: 0x01020304, outerMaxAge: 0 });
  assert.equal(p.code, ResponseCode.Content);
  assert.equal(decodeUint(getOption(p, N.Observe)!), 4242);
  assert.deepEqual(getOption(p, N.MaxAge), new Uint8Array(0));
  assert.deepEqual(getOption(p, N.Oscore), bytes(0x04, 1, 2, 3, 4));

  const r = unprotectResponse(wire(p), client.recipient, binding);
  assert.ok(r.ok, r.ok ? '' : r.reason);
  assert.equal(r.sequenceNumber, 0x01020304);
  // The inner (empty) Observe is replaced by the 3 low bytes of the Partial IV; the outer one ignored.
  assert.equal(decodeUint(getOption(r.message, N.Observe)!), 0x020304);
  assert.equal(decodeUint(getOption(r.message, N.MaxAge)!), 10, 'inner Max-Age; the outer 0 is discarded');
  assert.equal(r.message.code, ResponseCode.Content);
  assert.equal(decodeString(r.message.payload), '22.5 C');

  const raw = unprotectResponse(p, client.recipient, binding, { observeFromPartialIv: false });
  assert.ok(raw.ok);
  assert.deepEqual(getOption(raw.message, N.Observe), new Uint8Array(0));

  // A response with inner Observe to a request without Observe is refused.
  const plain = protectRequest(GET(), client.sender, 24);
  const sr2 = unprotectRequest(plain.message, serverLookup);
  assert.ok(sr2.ok);
  const bad = protectResponse(notification, server.sender, sr2.binding, { sequenceNumber: 5 });
  const refused = unprotectResponse(bad, client.recipient, plain.binding);
  assert.equal(refused.ok, false);
});

test('§4.2: ordinary responses have outer code 2.04 and no Partial IV unless a sequence number is given', () => {
  const { message, binding } = protectRequest(GET(), client.sender, 25);
  const sr = unprotectRequest(message, serverLookup);
  assert.ok(sr.ok);
  const resp = createMessage({ code: ResponseCode.NotFound, type: MessageType.ACK, messageId: 0x1234, token: bytes(1, 2, 3, 4) });
  const p = protectResponse(resp, server.sender, sr.binding);
  assert.equal(p.code, ResponseCode.Changed);
  assert.deepEqual(getOption(p, N.Oscore), new Uint8Array(0));
  const r = unprotectResponse(p, client.recipient, binding);
  assert.ok(r.ok);
  assert.equal(hexOf(r.message), hexOf(resp));
  assert.equal(r.sequenceNumber, undefined);
});

test('§8.4: response failures: wrong binding, tampering, missing option, replaced Partial IV', () => {
  const { message, binding } = protectRequest(GET(), client.sender, 26);
  const sr = unprotectRequest(message, serverLookup);
  assert.ok(sr.ok);
  const resp = createMessage({ code: ResponseCode.Content, token: bytes(1), payload: str('x') });
  const p = protectResponse(resp, server.sender, sr.binding);
  const otherBinding: RequestBinding = { kid: binding.kid, piv: bytes(27) };
  assert.deepEqual(unprotectResponse(p, client.recipient, otherBinding), { ok: false, reason: 'Decryption failed' });
  const payload = Uint8Array.from(p.payload);
  payload[0]! ^= 1;
  assert.equal(unprotectResponse({ ...p, payload }, client.recipient, binding).ok, false);
  assert.deepEqual(unprotectResponse({ ...p, options: [] }, client.recipient, binding), { ok: false, reason: 'Missing OSCORE option' });
  assert.equal(unprotectResponse(withOscoreValue(p, bytes(0x01, 0)), client.recipient, binding).ok, false);
  assert.equal(unprotectResponse(withOscoreValue(p, bytes(0xe0)), client.recipient, binding).ok, false);
  const withPiv = protectResponse(resp, server.sender, sr.binding, { sequenceNumber: 3 });
  assert.equal(unprotectResponse(withOscoreValue(withPiv, bytes(0x01, 4)), client.recipient, binding).ok, false);
  assert.ok(unprotectResponse(withPiv, client.recipient, binding).ok);
});

// --- local misuse ---------------------------------------------------------------------------------

test('§7.2.1: sequence numbers past 2^40-1 throw SequenceNumberExhausted; kid context options', () => {
  assert.throws(() => protectRequest(GET(), client.sender, 2 ** 40), SequenceNumberExhausted);
  assert.ok(protectRequest(GET(), client.sender, 2 ** 40 - 1));
  const b = { kid: bytes(0xc1), piv: bytes(1) };
  assert.throws(() => protectResponse(GET(), server.sender, b, { sequenceNumber: 2 ** 40 }), SequenceNumberExhausted);
  assert.throws(() => protectRequest(GET(), client.sender, 1, { kidContext: 'include' }), OscoreConfigError);
  const explicit = protectRequest(GET(), client.sender, 1, { kidContext: bytes(0xab, 0xcd) }).message;
  assert.deepEqual(getOption(explicit, N.Oscore), bytes(0x19, 1, 2, 0xab, 0xcd, 0xc1));
  let seen: Uint8Array | undefined;
  const r = unprotectRequest(explicit, (kid, ctx) => {
    seen = ctx;
    return serverLookup(kid);
  });
  assert.ok(r.ok);
  assert.deepEqual(seen, bytes(0xab, 0xcd));
});

test('inputs are never mutated', () => {
  const req = GET([{ number: N.UriHost, value: str('h') }, { number: N.Observe, value: new Uint8Array(0) }, { number: N.ProxyUri, value: str('coap://h/x') }], str('p'));
  const before = snapshot(req);
  const { message, binding } = protectRequest(req, client.sender, 30);
  assert.equal(snapshot(req), before);
  const protectedBefore = snapshot(message);
  const sr = unprotectRequest(message, serverLookup);
  assert.equal(snapshot(message), protectedBefore);
  assert.ok(sr.ok);
  const resp = createMessage({ code: ResponseCode.Content, options: [{ number: N.Observe, value: encodeUint(3) }], payload: str('r') });
  const respBefore = snapshot(resp);
  const p = protectResponse(resp, server.sender, sr.binding, { sequenceNumber: 1 });
  assert.equal(snapshot(resp), respBefore);
  const pBefore = snapshot(p);
  assert.ok(unprotectResponse(p, client.recipient, binding).ok);
  assert.equal(snapshot(p), pBefore);
});

// --- nested layers -----------------------------------------------------------------------------------

test('nested OSCORE (capable proxies): a doubly protected request and response unprotect through two contexts', () => {
  // Client C shares one context with the origin server S and another with the proxy P.
  const e2e = pair(10, undefined, bytes(0x01), bytes(0x02));
  const hop = pair(AEAD_GCM, bytes(0x70, 0x78), bytes(0xc0), bytes(0x9e));
  const original = GET(
    [{ number: N.UriHost, value: str('origin.example') }, { number: N.Observe, value: new Uint8Array(0) }, { number: N.UriPath, value: str('sensors') }, { number: N.UriPath, value: str('t') }],
    str('q'),
  );
  const inner = protectRequest(original, e2e.client.sender, 100);
  const outer = protectRequest(inner.message, hop.client.sender, 5, { kidContext: 'include' });
  // Only one OSCORE option is visible: the outer layer's. The inner one is encrypted.
  assert.equal(getOptions(outer.message, N.Oscore).length, 1);
  assert.deepEqual(getOption(outer.message, N.Oscore)![0]! & 0x10, 0x10);
  assert.equal(Buffer.from(outer.message.payload).includes(Buffer.from(inner.message.payload)), false);

  // P removes its layer and obtains exactly the singly protected request.
  const atProxy = unprotectRequest(wire(outer.message), (kid, ctx) => (kid[0] === 0xc0 && ctx?.[0] === 0x70 ? hop.server.recipient : undefined));
  assert.ok(atProxy.ok, atProxy.ok ? '' : atProxy.reason);
  assert.equal(hexOf(atProxy.message), hexOf(inner.message));
  // S removes the end-to-end layer and obtains the original.
  const atServer = unprotectRequest(wire(atProxy.message), (kid) => (kid[0] === 0x01 ? e2e.server.recipient : undefined));
  assert.ok(atServer.ok, atServer.ok ? '' : atServer.reason);
  assert.equal(hexOf(atServer.message), hexOf(original));

  // Responses: S protects, P protects again, C removes both layers in reverse order.
  const response = createMessage({ code: ResponseCode.Content, token: original.token, options: [{ number: N.Observe, value: encodeUint(9) }, { number: N.ContentFormat, value: encodeUint(0) }], payload: str('21 C') });
  const r1 = protectResponse(response, e2e.server.sender, atServer.binding, { sequenceNumber: 9 });
  const r2 = protectResponse(r1, hop.server.sender, atProxy.binding, { sequenceNumber: 40 });
  assert.equal(getOptions(r2, N.Oscore).length, 1);
  const c1 = unprotectResponse(wire(r2), hop.client.recipient, outer.binding, { observeFromPartialIv: false });
  assert.ok(c1.ok, c1.ok ? '' : c1.reason);
  // The proxy layer's inner Observe is empty by §4.1.3.5.2, so the hop's Observe is restored as
  // empty; the end-to-end layer underneath is what the client verifies.
  const c2 = unprotectResponse(c1.message, e2e.client.recipient, inner.binding);
  assert.ok(c2.ok, c2.ok ? '' : c2.reason);
  assert.equal(c2.sequenceNumber, 9);
  assert.equal(hexOf(c2.message), hexOf(response));
});

const AEAD_GCM = 1;

test('nested OSCORE: classOf decides per layer (Uri-Host protected for the proxy, §2.2 of the draft)', () => {
  const e2e = pair(10, undefined, bytes(0x01), bytes(0x02));
  const hop = pair(10, undefined, bytes(0xc0), bytes(0x9e));
  const original = GET([{ number: N.UriHost, value: str('origin.example') }, { number: N.UriPath, value: str('x') }]);
  const inner = protectRequest(original, e2e.client.sender, 1);
  const outer = protectRequest(inner.message, hop.client.sender, 1, { classOf: (n) => (n === N.UriHost || n === N.Oscore ? 'E' : 'U') });
  assert.equal(getOption(outer.message, N.UriHost), undefined, 'Uri-Host hidden from the network between C and P');
  const atProxy = unprotectRequest(outer.message, () => hop.server.recipient);
  assert.ok(atProxy.ok);
  assert.equal(hexOf(atProxy.message), hexOf(inner.message));
  assert.throws(() => protectRequest(inner.message, hop.client.sender, 2, { classOf: () => 'U' }), OscoreProtectError);
});

// --- properties --------------------------------------------------------------------------------------

const OPTION_NUMBERS = [
  N.IfMatch, N.UriHost, N.ETag, N.IfNoneMatch, N.UriPort, N.LocationPath, N.Oscore, N.UriPath, N.ContentFormat, N.MaxAge,
  N.UriQuery, N.HopLimit, N.Accept, N.LocationQuery, N.Block2, N.Block1, N.Size2, N.ProxyScheme, N.Size1, N.Echo,
  N.NoResponse, N.RequestTag, 2052, 65000,
];
const optionArb = fc.record({ number: fc.constantFrom(...OPTION_NUMBERS), value: fc.uint8Array({ maxLength: 20 }) });
const optionsArb = (observe: boolean) =>
  fc.tuple(fc.array(optionArb, { maxLength: 10 }), observe ? fc.option(fc.integer({ min: 0, max: 0xffffff }), { nil: undefined }) : fc.constant(undefined)).map(
    ([opts, obs]) => (obs === undefined ? opts : [...opts, { number: N.Observe, value: encodeUint(obs) }]),
  );
const messageArb = (codeArb: fc.Arbitrary<number>) =>
  fc.record({
    type: fc.integer({ min: 0, max: 3 }).map((t) => t as MessageType),
    code: codeArb,
    messageId: fc.integer({ min: 0, max: 0xffff }),
    token: fc.uint8Array({ maxLength: 8 }),
    options: optionsArb(true),
    payload: fc.uint8Array({ maxLength: 100 }),
  }).map((m) => createMessage(m));
const requestArb = messageArb(fc.integer({ min: 1, max: 31 }));
const responseArb = messageArb(fc.tuple(fc.integer({ min: 2, max: 5 }), fc.integer({ min: 0, max: 31 })).map(([c, d]) => (c << 5) | d));

test('property: every request protects and unprotects (over the wire) to an equal message, for every AEAD', () => {
  for (const alg of allAeadAlgorithms()) {
    const ctx = pair(alg.id, undefined, bytes(), bytes(0, 1, 2, 3, 4, 5));
    fc.assert(
      fc.property(requestArb, fc.integer({ min: 0, max: 2 ** 40 - 1 }), fc.boolean(), (req, seq, withContext) => {
        const { message, binding } = protectRequest(req, ctx.client.sender, seq, withContext ? { kidContext: bytes(1, 2) } : {});
        const r = unprotectRequest(wire(message), () => ctx.server.recipient);
        assert.ok(r.ok, r.ok ? '' : r.reason);
        assert.equal(hexOf(r.message), hexOf(req));
        assert.equal(r.sequenceNumber, seq);
        assert.deepEqual([...r.binding.piv], [...binding.piv]);
      }),
      { numRuns: 60 },
    );
  }
});

test('property: every response protects and unprotects to an equal message (Observe from the Partial IV)', () => {
  fc.assert(
    fc.property(requestArb, responseArb, fc.option(fc.integer({ min: 0, max: 2 ** 40 - 1 }), { nil: undefined }), (req, resp, seq) => {
      const { message, binding } = protectRequest(req, client.sender, 1000);
      const sr = unprotectRequest(message, serverLookup);
      assert.ok(sr.ok);
      const p = protectResponse(resp, server.sender, { kid: sr.binding.kid, piv: sr.binding.piv }, seq === undefined ? {} : { sequenceNumber: seq });
      const r = unprotectResponse(wire(p), client.recipient, { kid: binding.kid, piv: binding.piv });
      assert.ok(r.ok, r.ok ? '' : r.reason);
      assert.equal(r.sequenceNumber, seq);
      const expected = createMessage({
        ...resp,
        options: resp.options.map((o) =>
          o.number === N.Observe ? { number: N.Observe, value: seq === undefined ? new Uint8Array(0) : encodeUint(seq % 0x1000000) } : o,
        ),
      });
      assert.equal(hexOf(r.message), hexOf(expected));
    }),
    { numRuns: 200 },
  );
});

test('property: unprotect never throws on arbitrary OSCORE option values and payloads', () => {
  const recipient = server.recipient;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 255 }), (value, payload, code) => {
      const m = createMessage({ code, options: [{ number: N.Oscore, value }], payload });
      const r = unprotectRequest(m, () => recipient);
      if (!r.ok) assert.ok([ResponseCode.BadRequest, ResponseCode.Unauthorized, ResponseCode.BadOption].includes(r.code as never));
      const s = unprotectResponse(m, client.recipient, { kid: bytes(), piv: bytes(0) });
      assert.equal(typeof s.ok, 'boolean');
    }),
  );
});
