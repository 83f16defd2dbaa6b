/**
 * EDHOC over CoAP (RFC 9528 App. A.2) and the EDHOC + OSCORE request (RFC 9668) in lockstep on a
 * fake network: handshakes and the first OSCORE request, the round trip the combined request
 * saves (datagrams counted), the server's bounded session table, EDHOC errors with their CoAP
 * codes, and the client running EDHOC again after the server lost its context.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { EMPTY_BYTES, MessageType, encodeString, getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { blockwiseRequest } from '../src/client/blockwise.js';
import { securedSender, withEchoRetry } from '../src/client/security.js';
import { concatBytes } from '../src/cose/index.js';
import { EdhocInitiator, EdhocPeerError, parseErrorMessage } from '../src/edhoc/index.js';
import { EdhocClientSecurity, EdhocRequestError, EdhocServer, postOverEndpoint, prefixNewSession, prefixWithIdentifier, type EdhocServerOptions } from '../src/edhoc-coap/index.js';
import { HkdfId } from '../src/oscore/algorithms.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import type { PeerAddress } from '../src/transport/transport.js';
import { edhocPeers, type EdhocPeers } from './support/edhoc-peers.js';
import { FakeNetwork } from './support/network.js';

const SERVER: PeerAddress = { address: '10.0.0.1', port: 5683 };
const CLIENT: PeerAddress = { address: '10.0.0.2', port: 40000 };

function startServer(net: FakeNetwork, peers: EdhocPeers, options: Partial<EdhocServerOptions> = {}, fallback?: OscoreServerSecurity) {
  const server = new CoapServer(net.endpoint(SERVER, {}, 1), fallback ? { security: fallback } : {});
  server.resource('/hello', { GET: (request) => ({ code: ResponseCode.Content, payload: `hello ${request.context.oscore?.[0]?.peer ?? 'stranger'}` }) });
  server.resource('/echo', { POST: (request) => ({ code: ResponseCode.Changed, payload: request.payload }) });
  const edhoc = EdhocServer.attach(server, { responder: peers.responder, ...options });
  return { server, edhoc };
}

function setup(method: 0 | 1 | 2 | 3, suite: number, options: { server?: Partial<EdhocServerOptions>; client?: { combined?: boolean; message4?: boolean }; peers?: EdhocPeers } = {}) {
  const net = new FakeNetwork();
  const peers = options.peers ?? edhocPeers(method, suite);
  const { server, edhoc } = startServer(net, peers, options.server);
  const endpoint = net.endpoint(CLIENT, { nstart: 8 }, 2);
  const post = postOverEndpoint(endpoint, SERVER);
  const security = new EdhocClientSecurity({ initiator: peers.initiator, post, ...options.client });
  const send = withEchoRetry(securedSender(endpoint, SERVER, security));
  return { net, peers, server, edhoc, endpoint, post, security, send };
}

const request = (code: number, path: string, payload: string | Uint8Array = EMPTY_BYTES): CoapMessage => ({
  type: MessageType.CON,
  code,
  messageId: 0,
  token: EMPTY_BYTES,
  options: [{ number: OptionNumber.UriPath, value: encodeString(path) }],
  payload: typeof payload === 'string' ? encodeString(payload) : payload,
});
const get = (path: string): CoapMessage => request(Method.GET, path);

/** Datagrams that carry a request or a response (no empty ACKs: every answer here is piggybacked). */
const carried = (net: FakeNetwork): number => net.log.filter((d) => d.message.code !== 0).length;

describe('EDHOC over CoAP, then OSCORE', () => {
  for (const [method, suite] of [
    [3, 2],
    [0, 0],
    [0, 2],
    [3, 24],
  ] as const) {
    it(`method ${method}, suite ${suite}: EDHOC, then an OSCORE GET authenticated as the EDHOC peer`, async () => {
      const s = setup(method, suite);
      const response = await s.net.until(s.send(get('hello')));
      assert.equal(response.message.code, ResponseCode.Content);
      assert.equal(Buffer.from(response.message.payload).toString(), 'hello client');
      assert.equal(s.security.handshakes, 1);
      assert.equal(s.edhoc.contexts.length, 1);
      // App. A.1: the client's Sender ID is C_R, the server's is C_I.
      const serverContext = s.edhoc.contexts[0]!;
      const clientContext = s.security.context!;
      assert.deepEqual(clientContext.sender.senderId, serverContext.primaryRecipient.params.recipientId);
      assert.deepEqual(serverContext.sender.senderId, clientContext.primaryRecipient.params.recipientId);
      assert.equal(response.context.oscore?.[0]?.peer, 'server', 'the client names the layer after the authenticated server');
      assert.equal(s.edhoc.sessionCount, 0);
    });
  }

  it('suite 24: the OSCORE context uses HKDF SHA-384 and A256GCM (the application hash and AEAD)', async () => {
    const s = setup(3, 24);
    await s.net.until(s.send(get('hello')));
    const input = s.security.context!.exportParameters();
    assert.equal(input.hkdf, HkdfId.HKDF_SHA_384);
    assert.equal(input.aead, 3);
    assert.equal(input.masterSecret.length, 32);
  });

  it('the combined request saves one round trip: 4 datagrams instead of 6 for EDHOC plus the first GET', async () => {
    const combined = setup(3, 2);
    await combined.net.until(combined.send(get('hello')));
    const sequential = setup(3, 2, { client: { combined: false } });
    await sequential.net.until(sequential.send(get('hello')));
    assert.equal(carried(combined.net), 4);
    assert.equal(carried(sequential.net), 6);
    // RFC 9668 §3.2.1: the third datagram is the OSCORE request with the EDHOC option and message_3 in front.
    const third = combined.net.log.filter((d) => d.message.code !== 0)[2]!.message;
    assert.ok(getOption(third, OptionNumber.Oscore));
    assert.equal(getOption(third, OptionNumber.Edhoc)?.length, 0);
    assert.equal(getOption(third, OptionNumber.UriPath), undefined, 'Uri-Path is inside the ciphertext');
    // message_3 as the sequential flow sent it (after its C_R prefix) leads the combined payload.
    const message3Post = sequential.net.log.filter((d) => d.message.code === Method.POST)[1]!.message;
    assert.equal(third.payload[0]! >> 5, 2, 'EDHOC_MSG_3 is a CBOR byte string');
    assert.ok(message3Post.payload.length > 1);
  });

  it('an EDHOC option with a value is still the EDHOC option: the value is ignored (RFC 9668 §3.1)', async () => {
    const s = setup(3, 2);
    s.net.mutate = (d) => {
      if (getOption(d.message, OptionNumber.Edhoc) === undefined) return undefined;
      const options = d.message.options.map((o) => (o.number === OptionNumber.Edhoc ? { number: o.number, value: Uint8Array.of(0x2a) } : o));
      return Buffer.from(encodeMessage({ ...d.message, options }));
    };
    const response = await s.net.until(s.send(get('hello')));
    assert.equal(response.message.code, ResponseCode.Content);
    assert.equal(carried(s.net), 4);
  });

  it('a repeated EDHOC option is refused before any EDHOC work: 4.02 (it "MUST occur at most once", RFC 9668 §3.1)', async () => {
    const s = setup(3, 2);
    s.net.mutate = (d) => {
      if (getOption(d.message, OptionNumber.Edhoc) === undefined) return undefined;
      const options = [...d.message.options, { number: OptionNumber.Edhoc, value: EMPTY_BYTES }].sort((a, b) => a.number - b.number);
      return Buffer.from(encodeMessage({ ...d.message, options }));
    };
    await assert.rejects(s.net.until(s.send(get('hello'))), /4\.02/);
    assert.equal(s.edhoc.contexts.length, 0);
  });

  it('a first request sent block-wise (inner Block1): only block 0 carries message_3 (RFC 9668 §3.2.2 A)', async () => {
    const s = setup(3, 2);
    const body = 'x'.repeat(300);
    const response = await s.net.until(blockwiseRequest(s.send, request(Method.POST, 'echo', body), { szx: 2, maxBodySize: 4096, maxRestarts: 0 }));
    assert.equal(Buffer.from(response.message.payload).toString(), body);
    const requests = s.net.log.filter((d) => d.message.code === Method.POST && getOption(d.message, OptionNumber.Oscore) !== undefined);
    assert.ok(requests.length >= 5, 'five inner blocks of 64 bytes');
    assert.deepEqual(
      requests.map((d) => getOption(d.message, OptionNumber.Edhoc) !== undefined),
      requests.map((_, i) => i === 0),
    );
    assert.equal(s.security.handshakes, 1);
  });

  it('message_4 when the application profile sends it: message_3 alone, message_4 verified, then OSCORE', async () => {
    const s = setup(3, 2, { server: { message4: true }, client: { message4: true } });
    const response = await s.net.until(s.send(get('hello')));
    assert.equal(response.message.code, ResponseCode.Content);
    assert.equal(carried(s.net), 6);
  });

  it('a combined request to a server that sends message_4 fails with EDHOC error 1 (RFC 9668 §3.3.1 step 4), unprotected 4.00', async () => {
    const s = setup(3, 2, { server: { message4: true } });
    await assert.rejects(s.net.until(s.send(get('hello'))), (e: unknown) => e instanceof EdhocRequestError && e.peerError?.code === 1);
    const answer = s.net.log.filter((d) => d.from === SERVER || d.from.address === SERVER.address).at(-1)!.message;
    assert.equal(answer.code, ResponseCode.BadRequest);
    assert.equal(getOption(answer, OptionNumber.Oscore), undefined);
    assert.equal(getOption(answer, OptionNumber.ContentFormat)?.[0], ContentFormat.EdhocCborSeq);
    assert.equal(s.edhoc.contexts.length, 0, 'no OSCORE context from a failed session');
  });

  it('concurrent first requests share one handshake; the others wait for the combined request', async () => {
    const s = setup(3, 2);
    const responses = await s.net.until(Promise.all([s.send(get('hello')), s.send(request(Method.POST, 'echo', 'two')), s.send(get('hello'))]));
    assert.deepEqual(
      responses.map((r) => Buffer.from(r.message.payload).toString()),
      ['hello client', 'two', 'hello client'],
    );
    assert.equal(s.security.handshakes, 1);
    assert.equal(s.edhoc.contexts.length, 1);
    assert.equal(s.net.log.filter((d) => d.message.code !== 0 && getOption(d.message, OptionNumber.Edhoc) !== undefined).length, 1, 'one combined request');
  });

  it('after a server restart (contexts lost) the client runs EDHOC again by itself and the GET succeeds', async () => {
    const s = setup(3, 2);
    await s.net.until(s.send(get('hello')));
    const before = s.security.context;
    // The restarted server: same address, same credentials, no contexts.
    const restarted = startServer(s.net, s.peers);
    const response = await s.net.until(s.send(get('hello')));
    assert.equal(Buffer.from(response.message.payload).toString(), 'hello client');
    assert.equal(s.security.handshakes, 2);
    assert.notEqual(s.security.context, before);
    assert.equal(restarted.edhoc.contexts.length, 1);
    // RFC 8613 §8.2: the unprotected 4.01 that told the client.
    assert.ok(s.net.log.some((d) => d.message.code === ResponseCode.Unauthorized && getOption(d.message, OptionNumber.Oscore) === undefined));
  });

  it('a suite the server does not support: error 2, and the client retries with the suite it offers (RFC 9528 §6.3.1)', async () => {
    const peers = edhocPeers(3, 2, { initiatorSuites: [6, 2] });
    const s = setup(3, 2, { peers });
    const response = await s.net.until(s.send(get('hello')));
    assert.equal(response.message.code, ResponseCode.Content);
    const first = s.net.log.filter((d) => d.from.address === SERVER.address)[0]!.message;
    assert.equal(first.code, ResponseCode.BadRequest);
    assert.equal(parseErrorMessage(first.payload).code, 2);
  });

  it('C_R never equals the Recipient ID of a configured context: with all one-byte IDs taken it is two bytes long', async () => {
    const net = new FakeNetwork();
    const peers = edhocPeers(3, 2);
    const allOneByte = Array.from({ length: 256 }, (_, i) => Uint8Array.of(i));
    const configured = new OscoreServerSecurity([new OscoreSecurityContext({ masterSecret: new Uint8Array(16), senderId: Uint8Array.of(1, 2, 3), recipientIds: allOneByte, name: 'psk' }, new VolatileSequence(0))]);
    const { edhoc } = startServer(net, peers, {}, configured);
    const endpoint = net.endpoint(CLIENT, {}, 2);
    const security = new EdhocClientSecurity({ initiator: peers.initiator, post: postOverEndpoint(endpoint, SERVER) });
    const response = await net.until(withEchoRetry(securedSender(endpoint, SERVER, security))(get('hello')));
    assert.equal(response.message.code, ResponseCode.Content);
    assert.equal(edhoc.contexts[0]!.primaryRecipient.params.recipientId.length, 2);
    // A client of the configured context is still served through the fallback.
    const psk = new OscoreSecurityContext({ masterSecret: new Uint8Array(16), senderId: Uint8Array.of(7), recipientIds: [Uint8Array.of(1, 2, 3)] }, new VolatileSequence(0));
    const { OscoreClientSecurity } = await import('../src/client/oscore.js');
    const other = net.endpoint({ address: '10.0.0.3', port: 40000 }, {}, 3);
    const plain = await net.until(withEchoRetry(securedSender(other, SERVER, new OscoreClientSecurity(psk)))(get('hello')));
    assert.equal(Buffer.from(plain.message.payload).toString(), 'hello psk');
  });
});

describe('the reverse message flow (RFC 9528 App. A.2.2): the server is the Initiator', () => {
  it('an empty POST brings message_1, C_I || message_2 brings message_3; then OSCORE with the server as Initiator', async () => {
    const net = new FakeNetwork();
    const peers = edhocPeers(3, 2, { names: ['server', 'client'] });
    const { edhoc } = startServer(net, { initiator: peers.initiator, responder: edhocPeers(3, 2).responder }, { initiator: peers.initiator });
    const endpoint = net.endpoint(CLIENT, {}, 2);
    const security = new EdhocClientSecurity({ responder: peers.responder, post: postOverEndpoint(endpoint, SERVER) });
    const response = await net.until(withEchoRetry(securedSender(endpoint, SERVER, security))(get('hello')));
    assert.equal(Buffer.from(response.message.payload).toString(), 'hello client');
    assert.equal(response.context.oscore?.[0]?.peer, 'server');
    const datagrams = net.log.filter((d) => d.message.code !== 0);
    assert.equal(datagrams.length, 6);
    assert.equal(datagrams[0]!.message.payload.length, 0, 'the empty POST');
    assert.equal(getOption(datagrams[0]!.message, OptionNumber.ContentFormat), undefined);
    assert.equal(getOption(datagrams[1]!.message, OptionNumber.ContentFormat)?.[0], ContentFormat.EdhocCborSeq);
    // A.1 with the roles swapped: the server (Initiator) sends with C_R, the client's identifier.
    assert.deepEqual(edhoc.contexts[0]!.sender.senderId, security.context!.primaryRecipient.params.recipientId);
    assert.equal(edhoc.sessionCount, 0);
  });

  it('a server without an Initiator configuration refuses the empty POST (4.15: it is no EDHOC message)', async () => {
    const s = setup(3, 2);
    const reply = await s.net.until(s.post(EMPTY_BYTES));
    assert.equal(reply.code, ResponseCode.UnsupportedContentFormat);
  });
});

describe('the EDHOC resource refuses bad input with EDHOC errors and bounds its state', () => {
  const post = (s: ReturnType<typeof setup>, payload: Uint8Array) => s.net.until(s.post(payload));
  const message1 = (s: ReturnType<typeof setup>, connectionId = Uint8Array.of(0x01)) => new EdhocInitiator(s.peers.initiator).prepareMessage1({ connectionId });

  it('a malformed message_1 gets EDHOC error 1 with 4.00 and Content-Format 64', async () => {
    const s = setup(3, 2);
    const reply = await post(s, prefixNewSession(Uint8Array.of(0x03, 0x02, 0x41)));
    assert.equal(reply.code, ResponseCode.BadRequest);
    assert.equal(reply.contentFormat, ContentFormat.EdhocCborSeq);
    assert.equal(parseErrorMessage(reply.payload).code, 1);
    assert.equal(s.edhoc.sessionCount, 0);
  });

  it('a payload with neither `true` nor a connection identifier in front gets EDHOC error 1 with 4.00', async () => {
    const s = setup(3, 2);
    const reply = await post(s, Uint8Array.of(0xa0, 0x01));
    assert.equal(reply.code, ResponseCode.BadRequest);
    assert.equal(parseErrorMessage(reply.payload).code, 1);
  });

  it('a wrong Content-Format gets 4.15, not an EDHOC error', async () => {
    const s = setup(3, 2);
    const { message } = message1(s);
    const wrong = { ...request(Method.POST, '.well-known', prefixNewSession(message)) };
    wrong.options = [
      { number: OptionNumber.UriPath, value: encodeString('.well-known') },
      { number: OptionNumber.UriPath, value: encodeString('edhoc') },
    ];
    const response = await s.net.until(s.endpoint.request(wrong, SERVER));
    assert.equal(response.message.code, ResponseCode.UnsupportedContentFormat);
  });

  it('a tampered message_3 gets EDHOC error 1 with 4.00, ends the session and installs no context', async () => {
    const s = setup(3, 2);
    const { state, message } = message1(s);
    const m2 = await post(s, prefixNewSession(message));
    const processed = state.processMessage2(m2.payload);
    const { message: m3 } = processed.prepareMessage3();
    const tampered = Uint8Array.from(m3);
    tampered[tampered.length - 1]! ^= 1;
    const reply = await post(s, prefixWithIdentifier(processed.connectionIdR, tampered));
    assert.equal(reply.code, ResponseCode.BadRequest);
    assert.equal(parseErrorMessage(reply.payload).code, 1);
    assert.equal(s.edhoc.contexts.length, 0);
    assert.equal(s.edhoc.sessionCount, 0);
    // The genuine message_3 now finds no session.
    const late = await post(s, prefixWithIdentifier(processed.connectionIdR, m3));
    assert.equal(late.code, ResponseCode.BadRequest);
  });

  it('the N+1th concurrent session is refused with EDHOC error 1 and 5.00; an abandoned session expires', async () => {
    const s = setup(3, 2, { server: { maxSessions: 2, sessionLifetimeMs: 10_000 } });
    const first = message1(s, Uint8Array.of(0x01));
    const r1 = await post(s, prefixNewSession(first.message));
    assert.equal((await post(s, prefixNewSession(message1(s, Uint8Array.of(0x02)).message))).code, ResponseCode.Changed);
    const refused = await post(s, prefixNewSession(message1(s, Uint8Array.of(0x03)).message));
    assert.equal(refused.code, ResponseCode.InternalServerError);
    assert.equal(refused.contentFormat, ContentFormat.EdhocCborSeq);
    assert.equal(parseErrorMessage(refused.payload).code, 1);
    assert.equal(s.edhoc.sessionCount, 2);
    await s.net.run(10_001);
    assert.equal(s.edhoc.sessionCount, 0, 'both sessions expired');
    // message_3 of the expired first session: EDHOC error 1, 4.00.
    const processed = first.state.processMessage2(r1.payload);
    const late = await post(s, prefixWithIdentifier(processed.connectionIdR, processed.prepareMessage3().message));
    assert.equal(late.code, ResponseCode.BadRequest);
    assert.equal(parseErrorMessage(late.payload).code, 1);
    assert.equal((await post(s, prefixNewSession(message1(s, Uint8Array.of(0x04)).message))).code, ResponseCode.Changed, 'room again');
  });

  it('a replayed message_1 creates no new session and gets the same message_2 (RFC 9528 §7)', async () => {
    const s = setup(3, 2);
    const { message } = message1(s);
    const replies = [];
    for (let i = 0; i < 10; i++) replies.push(await post(s, prefixNewSession(message)));
    assert.equal(s.edhoc.sessionCount, 1);
    for (const reply of replies) assert.deepEqual(reply.payload, replies[0]!.payload);
  });

  it('an EDHOC option without OSCORE gets 4.00 (RFC 9668 §3.3.1 step 1)', async () => {
    const s = setup(3, 2);
    const message = get('hello');
    message.options = [...message.options, { number: OptionNumber.Edhoc, value: EMPTY_BYTES }];
    const response = await s.net.until(s.endpoint.request(message, SERVER));
    assert.equal(response.message.code, ResponseCode.BadRequest);
  });

  it('a combined request whose payload is not EDHOC_MSG_3 | OSCORE_PAYLOAD gets 4.00', async () => {
    const s = setup(3, 2);
    const message: CoapMessage = { ...request(Method.POST, 'x'), options: [{ number: OptionNumber.Oscore, value: Uint8Array.of(0x09, 0x00, 0x01) }, { number: OptionNumber.Edhoc, value: EMPTY_BYTES }], payload: concatBytes(Uint8Array.of(0x01, 0x02)) };
    const response = await s.net.until(s.endpoint.request(message, SERVER));
    assert.equal(response.message.code, ResponseCode.BadRequest);
    assert.equal(getOption(response.message, OptionNumber.Oscore), undefined);
  });

  it('a combined request with a tampered message_3 gets an unprotected EDHOC error 1 and the client an EdhocRequestError', async () => {
    const s = setup(3, 2);
    s.net.mutate = (d, data) => {
      if (getOption(d.message, OptionNumber.Edhoc) === undefined) return undefined;
      const copy = Buffer.from(data);
      const at = copy.indexOf(0xff) + 3; // inside CIPHERTEXT_3
      copy[at]! ^= 1;
      return copy;
    };
    await assert.rejects(s.net.until(s.send(get('hello'))), (e: unknown) => e instanceof EdhocRequestError && e.peerError instanceof EdhocPeerError && e.peerError.code === 1);
    assert.equal(s.edhoc.contexts.length, 0);
    // The next request runs a new session and succeeds.
    s.net.mutate = () => undefined;
    const response = await s.net.until(s.send(get('hello')));
    assert.equal(response.message.code, ResponseCode.Content);
    assert.equal(s.security.handshakes, 2);
  });
});
