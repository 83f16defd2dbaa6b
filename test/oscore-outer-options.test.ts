/**
 * Outer options of an OSCORE-carrying request are validated before anything reads them (RFC 7252
 * §5.4.1/§5.4.3/§5.4.5, RFC 7959 §2.2, RFC 8613 §2): no key is needed to send them, so every
 * malformation must get the protocol's own answer — never an exception, never just an empty ACK.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { addDemoResources } from '../src/demo/resources.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { lockstep, msg, opt } from './support/lockstep.js';

const COMMON = { masterSecret: Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex'), masterSalt: Buffer.from('9e7ca92223786340', 'hex') };

function oscoreServer() {
  const h = lockstep();
  const server = new CoapServer(h.endpoint, {
    security: new OscoreServerSecurity([new OscoreSecurityContext({ ...COMMON, senderId: Buffer.from([1]), recipientIds: [EMPTY_BYTES] }, new VolatileSequence())]),
  });
  addDemoResources(server, { tick: false });
  const client = new OscoreClientSecurity(new OscoreSecurityContext({ ...COMMON, senderId: EMPTY_BYTES, recipientIds: [Buffer.from([1])] }, new VolatileSequence()));
  let mid = 1;
  /** Sends one datagram and returns what the server sent back right away (nothing for a silent rejection). */
  const send = (options: CoapOption[], type: MessageType = MessageType.CON) => {
    h.transport.deliver(msg({ type, code: Method.POST, messageId: mid++, token: Uint8Array.of(mid & 0xff), options, payload: Buffer.from('ciphertext') }));
    return h.transport.take().map((d) => d.message);
  };
  return { h, server, client, send };
}

const OSCORE = opt(OptionNumber.Oscore, Uint8Array.of(0x09, 0x05, 0x00));

test('a 4-byte outer Block1 (block number past 2^20) → 4.02, not an exception (RFC 7252 §5.4.3)', () => {
  const s = oscoreServer();
  const [reply] = s.send([OSCORE, opt(OptionNumber.Block1, Uint8Array.of(0xff, 0xff, 0xff, 0xf0))]);
  assert.equal(reply?.type, MessageType.ACK);
  assert.equal(reply?.code, ResponseCode.BadOption);
  assert.equal(s.server.blockwise.stats().reassemblies, 0);
});

test('an outer Block1 or Block2 repeated → 4.02 (§5.4.5); an outer SZX 7 → 4.00 (RFC 7959 §2.2)', () => {
  const s = oscoreServer();
  const repeated = s.send([OSCORE, opt(OptionNumber.Block1, Uint8Array.of(0x0e)), opt(OptionNumber.Block1, Uint8Array.of(0x1e))]);
  assert.equal(repeated[0]?.code, ResponseCode.BadOption);
  const repeated2 = s.send([OSCORE, opt(OptionNumber.Block2, Uint8Array.of(0x02)), opt(OptionNumber.Block2, Uint8Array.of(0x12))]);
  assert.equal(repeated2[0]?.code, ResponseCode.BadOption);
  const szx7 = s.send([OSCORE, opt(OptionNumber.Block1, Uint8Array.of(0x1f))]);
  assert.equal(szx7[0]?.code, ResponseCode.BadRequest);
});

test('a later outer Block1 with no transfer before it → 4.08, for any 3-byte block number', () => {
  const s = oscoreServer();
  const [reply] = s.send([OSCORE, opt(OptionNumber.Block1, Uint8Array.of(0xff, 0xff, 0xf0))]);
  assert.equal(reply?.code, ResponseCode.RequestEntityIncomplete);
});

test('a 302-byte OSCORE option → 4.02 Bad Option, not 4.01 (RFC 8613 §2: length 0-255; RFC 7252 §5.4.3)', () => {
  const s = oscoreServer();
  // Flags: kid present; the rest of the 302 bytes is the kid. It decodes, but it is too long to be an OSCORE option.
  const value = Buffer.alloc(302, 0x41);
  value[0] = 0x09;
  value[1] = 0x05;
  const [reply] = s.send([opt(OptionNumber.Oscore, value)]);
  assert.equal(reply?.code, ResponseCode.BadOption);
});

test('NON: the same malformations are rejected silently — no 4.02 in a NON (RFC 7252 §5.4.1, §4.3)', () => {
  const s = oscoreServer();
  assert.deepEqual(s.send([OSCORE, opt(OptionNumber.Block1, Uint8Array.of(0xff, 0xff, 0xff, 0xf0))], MessageType.NON), []);
  assert.deepEqual(s.send([opt(OptionNumber.Oscore, Buffer.alloc(302, 0x09))], MessageType.NON), []);
});

test('outer Block1 on a real protected request still works after validation, Uri-Path untouched', () => {
  const s = oscoreServer();
  const protectedRequest = s.client.protect({ type: MessageType.CON, code: Method.POST, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.UriPath, value: encodeString('echo') }], payload: Buffer.from('hi') });
  const m = protectedRequest.message;
  s.h.transport.deliver(msg({ ...m, messageId: 99, token: Uint8Array.of(7), options: [...m.options, opt(OptionNumber.Block1, Uint8Array.of(0x00))] }));
  const [reply] = s.h.transport.take();
  assert.equal(reply?.message.code, ResponseCode.Changed);
});

test('an outer Size1 of the wrong length is elective: ignored (RFC 7252 §5.4.3, RFC 7959 §4: 0-4 bytes), not read as a huge size', () => {
  const s = oscoreServer();
  s.h.transport.deliver(msg({ code: Method.POST, messageId: 500, token: Uint8Array.of(5), options: [OSCORE, opt(OptionNumber.Block1, Uint8Array.of(0x08)), opt(OptionNumber.Size1, Buffer.alloc(5, 0xff))], payload: Buffer.alloc(16, 0x61) }));
  const [reply] = s.h.transport.take();
  assert.equal(reply?.message.code, ResponseCode.Continue);
});
