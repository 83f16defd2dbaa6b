/**
 * Every test vector of RFC 8613 Appendix C, byte for byte, plus the worked examples of §5.4 (AAD)
 * and §6.3 (compressed COSE objects).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from 'cbor2';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import {
  type DerivedContext,
  additionalData,
  decodeOscoreOption,
  deriveContext,
  encodeOscoreOption,
  encodePlaintext,
  externalAad,
  hkdfInfo,
  nonce,
  protectRequest,
  protectResponse,
  unprotectRequest,
  unprotectResponse,
} from '../src/oscore/index.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const eqHex = (actual: Uint8Array, expected: string, what: string): void => assert.equal(toHex(actual), expected.replace(/\s+/g, ''), what);

const MASTER_SECRET = hex('0102030405060708090a0b0c0d0e0f10');
const MASTER_SALT = hex('9e7ca92223786340');
const ID_CONTEXT = hex('37cbf3210017a2d3');

interface DerivationVector {
  name: string;
  salt?: Uint8Array;
  idContext?: Uint8Array;
  senderId: string;
  recipientId: string;
  infoSender: string;
  infoRecipient: string;
  infoIv: string;
  senderKey: string;
  recipientKey: string;
  commonIv: string;
  senderNonce: string;
  recipientNonce: string;
}

const DERIVATIONS: DerivationVector[] = [
  {
    name: 'C.1.1 client (Master Salt)',
    salt: MASTER_SALT,
    senderId: '',
    recipientId: '01',
    infoSender: '8540f60a634b657910',
    infoRecipient: '854101f60a634b657910',
    infoIv: '8540f60a6249560d',
    senderKey: 'f0910ed7295e6ad4b54fc793154302ff',
    recipientKey: 'ffb14e093c94c9cac9471648b4f98710',
    commonIv: '4622d4dd6d944168eefb54987c',
    senderNonce: '4622d4dd6d944168eefb54987c',
    recipientNonce: '4722d4dd6d944169eefb54987c',
  },
  {
    name: 'C.1.2 server (Master Salt)',
    salt: MASTER_SALT,
    senderId: '01',
    recipientId: '',
    infoSender: '854101f60a634b657910',
    infoRecipient: '8540f60a634b657910',
    infoIv: '8540f60a6249560d',
    senderKey: 'ffb14e093c94c9cac9471648b4f98710',
    recipientKey: 'f0910ed7295e6ad4b54fc793154302ff',
    commonIv: '4622d4dd6d944168eefb54987c',
    senderNonce: '4722d4dd6d944169eefb54987c',
    recipientNonce: '4622d4dd6d944168eefb54987c',
  },
  {
    name: 'C.2.1 client (no Master Salt)',
    senderId: '00',
    recipientId: '01',
    infoSender: '854100f60a634b657910',
    infoRecipient: '854101f60a634b657910',
    infoIv: '8540f60a6249560d',
    senderKey: '321b26943253c7ffb6003b0b64d74041',
    recipientKey: 'e57b5635815177cd679ab4bcec9d7dda',
    commonIv: 'be35ae297d2dace910c52e99f9',
    senderNonce: 'bf35ae297d2dace910c52e99f9',
    recipientNonce: 'bf35ae297d2dace810c52e99f9',
  },
  {
    name: 'C.2.2 server (no Master Salt)',
    senderId: '01',
    recipientId: '00',
    infoSender: '854101f60a634b657910',
    infoRecipient: '854100f60a634b657910',
    infoIv: '8540f60a6249560d',
    senderKey: 'e57b5635815177cd679ab4bcec9d7dda',
    recipientKey: '321b26943253c7ffb6003b0b64d74041',
    commonIv: 'be35ae297d2dace910c52e99f9',
    senderNonce: 'bf35ae297d2dace810c52e99f9',
    recipientNonce: 'bf35ae297d2dace910c52e99f9',
  },
  {
    name: 'C.3.1 client (ID Context)',
    salt: MASTER_SALT,
    idContext: ID_CONTEXT,
    senderId: '',
    recipientId: '01',
    infoSender: '85404837cbf3210017a2d30a634b657910',
    infoRecipient: '8541014837cbf3210017a2d30a634b657910',
    infoIv: '85404837cbf3210017a2d30a6249560d',
    senderKey: 'af2a1300a5e95788b356336eeecd2b92',
    recipientKey: 'e39a0c7c77b43f03b4b39ab9a268699f',
    commonIv: '2ca58fb85ff1b81c0b7181b85e',
    senderNonce: '2ca58fb85ff1b81c0b7181b85e',
    recipientNonce: '2da58fb85ff1b81d0b7181b85e',
  },
  {
    name: 'C.3.2 server (ID Context)',
    salt: MASTER_SALT,
    idContext: ID_CONTEXT,
    senderId: '01',
    recipientId: '',
    infoSender: '8541014837cbf3210017a2d30a634b657910',
    infoRecipient: '85404837cbf3210017a2d30a634b657910',
    infoIv: '85404837cbf3210017a2d30a6249560d',
    senderKey: 'e39a0c7c77b43f03b4b39ab9a268699f',
    recipientKey: 'af2a1300a5e95788b356336eeecd2b92',
    commonIv: '2ca58fb85ff1b81c0b7181b85e',
    senderNonce: '2da58fb85ff1b81d0b7181b85e',
    recipientNonce: '2ca58fb85ff1b81c0b7181b85e',
  },
];

function derive(v: Pick<DerivationVector, 'salt' | 'idContext' | 'senderId' | 'recipientId'>): DerivedContext {
  return deriveContext({
    masterSecret: MASTER_SECRET,
    ...(v.salt ? { masterSalt: v.salt } : {}),
    ...(v.idContext ? { idContext: v.idContext } : {}),
    senderId: hex(v.senderId),
    recipientId: hex(v.recipientId),
  });
}

for (const v of DERIVATIONS) {
  test(`RFC 8613 ${v.name}: info, keys, Common IV and nonces`, () => {
    eqHex(hkdfInfo(hex(v.senderId), v.idContext, 10, 'Key', 16), v.infoSender, 'info (Sender Key)');
    eqHex(hkdfInfo(hex(v.recipientId), v.idContext, 10, 'Key', 16), v.infoRecipient, 'info (Recipient Key)');
    eqHex(hkdfInfo(new Uint8Array(0), v.idContext, 10, 'IV', 13), v.infoIv, 'info (Common IV)');
    const c = derive(v);
    eqHex(c.senderKey, v.senderKey, 'Sender Key');
    eqHex(c.recipientKey, v.recipientKey, 'Recipient Key');
    eqHex(c.commonIv, v.commonIv, 'Common IV');
    eqHex(nonce(c.commonIv, c.senderId, Uint8Array.of(0)), v.senderNonce, 'sender nonce');
    eqHex(nonce(c.commonIv, c.recipientId, Uint8Array.of(0)), v.recipientNonce, 'recipient nonce');
    assert.equal(c.aead, 10);
    assert.equal(c.hkdf, -10);
    // SenderParams/RecipientParams mirror the outputs.
    assert.deepEqual(c.sender.senderKey, c.senderKey);
    assert.deepEqual(c.recipient.recipientKey, c.recipientKey);
  });
}

interface RequestVector {
  name: string;
  client: DerivationVector;
  server: DerivationVector;
  unprotected: string;
  aadArray: string;
  aad: string;
  plaintext: string;
  nonce: string;
  option: string;
  kidContext?: 'include';
  protected: string;
}

const [C11, C12, C21, C22, C31, C32] = DERIVATIONS as [DerivationVector, DerivationVector, DerivationVector, DerivationVector, DerivationVector, DerivationVector];

const REQUESTS: RequestVector[] = [
  {
    name: 'C.4 request, client (C.1 context)',
    client: C11,
    server: C12,
    unprotected: '44015d1f00003974396c6f63616c686f737483747631',
    aadArray: '8501810a40411440',
    aad: '8368456e63727970743040488501810a40411440',
    plaintext: '01b3747631',
    nonce: '4622d4dd6d944168eefb549868',
    option: '0914',
    protected: '44025d1f00003974396c6f63616c686f7374620914ff612f1092f1776f1c1668b3825e',
  },
  {
    name: 'C.5 request, client (C.2 context)',
    client: C21,
    server: C22,
    unprotected: '440171c30000b932396c6f63616c686f737483747631',
    aadArray: '8501810a4100411440',
    aad: '8368456e63727970743040498501810a4100411440',
    plaintext: '01b3747631',
    nonce: 'bf35ae297d2dace910c52e99ed',
    option: '091400',
    protected: '440271c30000b932396c6f63616c686f737463091400ff4ed339a5a379b0b8bc731fffb0',
  },
  {
    name: 'C.6 request with kid context, client (C.3 context)',
    client: C31,
    server: C32,
    unprotected: '44012f8eef9bbf7a396c6f63616c686f737483747631',
    aadArray: '8501810a40411440',
    aad: '8368456e63727970743040488501810a40411440',
    plaintext: '01b3747631',
    nonce: '2ca58fb85ff1b81c0b7181b84a',
    option: '19140837cbf3210017a2d3',
    kidContext: 'include',
    protected: '44022f8eef9bbf7a396c6f63616c686f73746b19140837cbf3210017a2d3ff72cd7273fd331ac45cffbe55c3',
  },
];

for (const v of REQUESTS) {
  test(`RFC 8613 ${v.name}: intermediate values and protected bytes`, () => {
    const client = derive(v.client);
    const piv = Uint8Array.of(20);
    eqHex(externalAad(10, client.senderId, piv), v.aadArray, 'aad_array');
    eqHex(additionalData(10, client.senderId, piv), v.aad, 'AAD');
    eqHex(nonce(client.commonIv, client.senderId, piv), v.nonce, 'nonce');
    const request = decodeMessage(hex(v.unprotected));
    const innerOptions = request.options.filter((o) => o.number === 11);
    eqHex(encodePlaintext(request.code, innerOptions, request.payload), v.plaintext, 'plaintext');

    const { message, binding } = protectRequest(request, client.sender, 20, v.kidContext ? { kidContext: v.kidContext } : {});
    eqHex(message.options.find((o) => o.number === 9)!.value, v.option, 'OSCORE option value');
    eqHex(encodeMessage(message), v.protected, 'protected request');
    eqHex(binding.kid, v.client.senderId, 'binding kid');
    eqHex(binding.piv, '14', 'binding piv');
  });

  test(`RFC 8613 ${v.name}: the server unprotects the printed bytes back to the original`, () => {
    const server = derive(v.server);
    let asked: [Uint8Array, Uint8Array | undefined] | undefined;
    const result = unprotectRequest(decodeMessage(hex(v.protected)), (kid, kidContext) => {
      asked = [kid, kidContext];
      return toHex(kid) === v.server.recipientId ? server.recipient : undefined;
    });
    assert.ok(result.ok, result.ok ? '' : result.reason);
    eqHex(encodeMessage(result.message), v.unprotected, 'unprotected request');
    assert.equal(result.sequenceNumber, 20);
    eqHex(result.kid, v.client.senderId, 'kid');
    eqHex(asked![0], v.client.senderId, 'kid passed to findRecipient');
    if (v.kidContext) eqHex(result.kidContext!, toHex(ID_CONTEXT), 'kid context');
    else assert.equal(result.kidContext, undefined);
    assert.equal(asked![1] === undefined, v.kidContext === undefined);
  });
}

const RESPONSE_UNPROTECTED = '64455d1f00003974ff48656c6c6f20576f726c6421';
const C4_PROTECTED = REQUESTS[0]!.protected;

test('RFC 8613 C.7 response without Partial IV, server', () => {
  const server = derive(C12);
  const req = unprotectRequest(decodeMessage(hex(C4_PROTECTED)), () => server.recipient);
  assert.ok(req.ok);
  // Intermediate values: the request's kid and Partial IV in the AAD, the request's nonce.
  eqHex(additionalData(10, req.binding.kid, req.binding.piv), '8368456e63727970743040488501810a40411440', 'AAD');
  eqHex(encodePlaintext(0x45, [], hex('48656c6c6f20576f726c6421')), '45ff48656c6c6f20576f726c6421', 'plaintext');
  eqHex(nonce(server.commonIv, req.binding.kid, req.binding.piv), '4622d4dd6d944168eefb549868', 'nonce');

  const protectedResponse = protectResponse(decodeMessage(hex(RESPONSE_UNPROTECTED)), server.sender, req.binding);
  eqHex(protectedResponse.options.find((o) => o.number === 9)!.value, '', 'OSCORE option value');
  eqHex(encodeMessage(protectedResponse), '64445d1f0000397490ffdbaad1e9a7e7b2a813d3c31524378303cdafae119106', 'protected response');

  // The client verifies it with the binding of its own request.
  const client = derive(C11);
  const { binding } = protectRequest(decodeMessage(hex(REQUESTS[0]!.unprotected)), client.sender, 20);
  const back = unprotectResponse(decodeMessage(encodeMessage(protectedResponse)), client.recipient, binding);
  assert.ok(back.ok, back.ok ? '' : back.reason);
  eqHex(encodeMessage(back.message), RESPONSE_UNPROTECTED, 'unprotected response');
  assert.equal(back.sequenceNumber, undefined);
});

test('RFC 8613 C.8 response with Partial IV, server', () => {
  const server = derive(C12);
  const req = unprotectRequest(decodeMessage(hex(C4_PROTECTED)), () => server.recipient);
  assert.ok(req.ok);
  eqHex(nonce(server.commonIv, server.senderId, Uint8Array.of(0)), '4722d4dd6d944169eefb54987c', 'nonce');
  const protectedResponse = protectResponse(decodeMessage(hex(RESPONSE_UNPROTECTED)), server.sender, req.binding, { sequenceNumber: 0 });
  eqHex(protectedResponse.options.find((o) => o.number === 9)!.value, '0100', 'OSCORE option value');
  eqHex(encodeMessage(protectedResponse), '64445d1f00003974920100ff4d4c13669384b67354b2b6175ff4b8658c666a6cf88e', 'protected response');

  const client = derive(C11);
  const { binding } = protectRequest(decodeMessage(hex(REQUESTS[0]!.unprotected)), client.sender, 20);
  const back = unprotectResponse(decodeMessage(encodeMessage(protectedResponse)), client.recipient, binding);
  assert.ok(back.ok, back.ok ? '' : back.reason);
  eqHex(encodeMessage(back.message), RESPONSE_UNPROTECTED, 'unprotected response');
  assert.equal(back.sequenceNumber, 0);
});

test('RFC 8613 §5.4 AAD example (kid 0x00, Partial IV 0x25)', () => {
  eqHex(externalAad(10, Uint8Array.of(0), Uint8Array.of(0x25)), '8501810a4100412540', 'aad_array');
  // external_aad is that array wrapped in a bstr.
  eqHex(encode(externalAad(10, Uint8Array.of(0), Uint8Array.of(0x25))), '498501810a4100412540', 'external_aad');
  eqHex(additionalData(10, Uint8Array.of(0), Uint8Array.of(0x25)), '8368456e63727970743040498501810a4100412540', 'AAD');
});

test('RFC 8613 §6.3 compressed COSE object examples', () => {
  const cases: [Parameters<typeof encodeOscoreOption>[0], string][] = [
    [{ kid: hex('25'), piv: hex('05') }, '090525'],
    [{ kid: hex(''), piv: hex('00') }, '0900'],
    [{ kid: hex(''), piv: hex('05'), kidContext: hex('44616c656b') }, '19050544616c656b'],
    [{}, ''],
    [{ piv: hex('07') }, '0107'],
  ];
  for (const [value, encoded] of cases) {
    eqHex(encodeOscoreOption(value), encoded, `encode ${encoded}`);
    const decoded = decodeOscoreOption(hex(encoded));
    assert.deepEqual(
      { piv: decoded.piv && toHex(decoded.piv), kid: decoded.kid && toHex(decoded.kid), kidContext: decoded.kidContext && toHex(decoded.kidContext) },
      { piv: value.piv && toHex(value.piv), kid: value.kid && toHex(value.kid), kidContext: value.kidContext && toHex(value.kidContext) },
    );
  }
});
