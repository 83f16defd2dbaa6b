/**
 * The Group OSCORE crypto vectors of draft-ietf-core-cacheable-oscore Appendix F, byte for byte
 * (values parsed from the spec text by test/group-oscore-vectors-generate.ts), and the
 * compressed COSE object examples of draft-ietf-core-oscore-groupcomm §4.3.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { ResponseCode } from '../src/coap/codes.js';
import { fromHex, toHex } from '../src/cose/cbor.js';
import { CoseCurve, CoseKty, rawKeyParts, generateKeyPairOn } from '../src/cose/key.js';
import { encodeCcs } from '../src/cose/cwt.js';
import { encodePlaintext } from '../src/oscore/protect.js';
import { aadArray, encStructure, countersignStructure } from '../src/group-oscore/aad.js';
import { deriveCommonContext, deriveEndpointKey, derivePairwiseKey, groupNonce, signatureKeystream } from '../src/group-oscore/common.js';
import { GroupSecurityContext } from '../src/group-oscore/context.js';
import { REQUEST_HASH_OPTION, protectDeterministicRequest, unprotectDeterministicRequest } from '../src/group-oscore/deterministic.js';
import { decodeGroupOscoreOption, encodeGroupOscoreOption } from '../src/group-oscore/option.js';
import { encodeClassIOptions, protectGroupResponse, unprotectGroupResponse } from '../src/group-oscore/protect.js';
import { signBytes } from '../src/cose/sign.js';
import { okpPrivateKey } from '../src/cose/key.js';
import { F1, F2, F3, v } from './support/appendix-f.js';

const eq = (actual: Uint8Array, expected: Uint8Array, what: string): void => assert.equal(toHex(actual), toHex(expected), what);

const SERVER_CCS = v(F1, "Server's authentication credential as CCS (serialization)");
const GM_CCS = v(F1, "Group Manager's authentication credential as CCS (serialization)");
const ALGORITHMS = { aead: 10, hkdf: 5, groupEncryption: 10, signature: -8, pairwiseKeyAgreement: -27 } as const;
const COMMON = { masterSecret: v(F1, 'Master Secret'), masterSalt: v(F1, 'Master Salt'), gid: v(F1, 'ID Context'), algorithms: ALGORITHMS, gmCredential: GM_CCS };
const DETERMINISTIC = { senderId: v(F1, "Deterministic Client's Sender ID"), hash: -16 };
const SERVER_ID = v(F1, "Server's Sender ID");

function serverContext(): GroupSecurityContext {
  return new GroupSecurityContext({ ...COMMON, senderId: SERVER_ID, ownCredential: { credential: SERVER_CCS, privateKey: v(F1, "Server's private key (serialization)") } });
}

/** A second member (the client C of App. F, whose own credential the vectors do not need). */
function clientContext(): GroupSecurityContext {
  const { privateKey } = generateKeyPairOn(CoseCurve.Ed25519);
  const { x, d } = rawKeyParts(privateKey);
  const ccs = encodeCcs({ sub: 'client', coseKey: { kty: CoseKty.OKP, crv: CoseCurve.Ed25519, x } });
  return new GroupSecurityContext({ ...COMMON, senderId: Uint8Array.of(0x01), ownCredential: { credential: ccs, privateKey: d! }, members: [{ senderId: SERVER_ID, credential: SERVER_CCS }] });
}

test('App. F.2: the Deterministic Client Sender Key, aad_array, AAD, Request-Hash, key, nonce and ciphertext', () => {
  const common = deriveCommonContext(COMMON);
  const senderKey = deriveEndpointKey(common, DETERMINISTIC.senderId);
  eq(senderKey, v(F2, "Deterministic Client's Sender Key"), 'Sender Key');
  const optionValue = encodeGroupOscoreOption({ group: false, piv: v(F2, 'Partial IV'), kidContext: v(F2, 'kid context'), kid: v(F2, 'kid') });
  eq(optionValue, v(F2, 'OSCORE Option value'), 'OSCORE option');
  const aad = aadArray({ algorithms: ALGORITHMS, requestKid: v(F2, 'kid'), requestPiv: v(F2, 'Partial IV'), classIOptions: new Uint8Array(0), requestKidContext: v(F2, 'kid context'), oscoreOption: optionValue, senderCredential: new Uint8Array(0), gmCredential: GM_CCS });
  eq(aad, v(F2, 'aad_array (serialization)'), 'aad_array');
  eq(encStructure(aad), v(F2, 'AAD (serialization)'), 'AAD');
  eq(groupNonce(common, 13, v(F2, 'kid'), v(F2, 'Partial IV')), v(F2, 'Nonce'), 'nonce');
  // §3.4.2 step 3: K = HKDF(Sender Key, H, info(kid)), with the Request-Hash value as IKM.
  eq(derivePairwiseKey(common, senderKey, v(F2, 'Request-Hash value'), DETERMINISTIC.senderId), v(F2, 'Encryption Key'), 'deterministic key K');
});

test('App. F.2: the whole Deterministic Request, byte for byte, and its verification by the server', () => {
  const request = decodeMessage(v(F2, 'Unprotected CoAP request'));
  const client = clientContext();
  const { message, requestHash } = protectDeterministicRequest(request, client, DETERMINISTIC);
  eq(requestHash, v(F2, 'Request-Hash value'), 'Request-Hash');
  eq(message.payload, v(F2, 'Ciphertext'), 'ciphertext');
  eq(new Uint8Array(encodeMessage(message)), v(F2, 'From there, the protected CoAP request as Deterministic Request'), 'protected request');

  const server = serverContext();
  const result = unprotectDeterministicRequest(decodeMessage(v(F2, 'From there, the protected CoAP request as Deterministic Request')), server, DETERMINISTIC);
  assert.ok(result.ok, result.ok ? '' : result.reason);
  eq(encodePlaintext(result.message.code, result.message.options.filter((o) => o.number !== REQUEST_HASH_OPTION), result.message.payload), v(F2, 'Plaintext'), 'recovered plaintext');
  // A single flipped ciphertext bit, or a Request-Hash that does not match the request, is refused.
  const tampered = decodeMessage(v(F2, 'From there, the protected CoAP request as Deterministic Request'));
  const wrongHash = { ...tampered, options: tampered.options.map((o) => (o.number === REQUEST_HASH_OPTION ? { number: o.number, value: new Uint8Array(32) } : o)) };
  assert.equal(unprotectDeterministicRequest(wrongHash, server, DETERMINISTIC).ok, false);
});

test('App. F.3: the group-mode response — keys, aad, ciphertext, countersignature, SEKey, keystream, encrypted signature', () => {
  const common = deriveCommonContext(COMMON);
  eq(deriveEndpointKey(common, SERVER_ID), v(F3, 'Encryption Key'), 'server Sender Key');
  eq(common.signatureEncryptionKey!, v(F3, 'Signature Encryption Key'), 'Signature Encryption Key');
  const requestHash = v(F3, 'Request-Hash Option value');
  const classI = encodeClassIOptions([{ number: REQUEST_HASH_OPTION, value: requestHash }]);
  const aad = aadArray({ algorithms: ALGORITHMS, requestKid: v(F2, 'kid'), requestPiv: v(F2, 'Partial IV'), classIOptions: classI, requestKidContext: v(F3, 'kid context'), oscoreOption: v(F3, 'OSCORE Option value'), senderCredential: SERVER_CCS, gmCredential: GM_CCS });
  eq(aad, v(F3, 'aad_array (serialization)'), 'aad_array');
  eq(encStructure(aad), v(F3, 'AAD (serialization)'), 'AAD');
  eq(groupNonce(common, 13, SERVER_ID, v(F3, 'Partial IV')), v(F3, 'Nonce'), 'nonce');
  const signature = signBytes(-8, okpPrivateKey(CoseCurve.Ed25519, v(F1, "Server's private key (serialization)")), countersignStructure(aad, v(F3, 'Ciphertext')));
  eq(signature, v(F3, 'Plain signature'), 'countersignature');
  eq(signatureKeystream(common, v(F3, 'Partial IV'), SERVER_ID, v(F3, 'kid context'), false, 64), v(F3, 'Signature keystream'), 'keystream');
});

test('App. F.3: the whole protected response, byte for byte, and the client verifies it', () => {
  const server = serverContext();
  const binding = { kid: DETERMINISTIC.senderId, piv: Uint8Array.of(0), kidContext: COMMON.gid, mode: 'pairwise' as const, observe: false };
  const response = decodeMessage(v(F3, 'Unprotected CoAP response'));
  const protectedResponse = protectGroupResponse(response, server, binding, {
    mode: 'group',
    freshPartialIv: true,
    classIOptions: [REQUEST_HASH_OPTION],
    outerCode: ResponseCode.Content,
    outerMaxAge: 3600,
  });
  const expected = v(F3, 'From there, the protected CoAP response');
  eq(protectedResponse.payload.subarray(0, 22), v(F3, 'Ciphertext'), 'ciphertext');
  eq(protectedResponse.payload.subarray(22), v(F3, 'Encrypted signature'), 'encrypted signature');
  eq(new Uint8Array(encodeMessage(protectedResponse)), expected, 'protected response');

  const client = clientContext();
  const requestHash = v(F3, 'Request-Hash Option value');
  const opened = unprotectGroupResponse(decodeMessage(expected), client, binding, { classIOptions: [{ number: REQUEST_HASH_OPTION, value: requestHash }] });
  assert.ok(opened.ok, opened.ok ? '' : opened.reason);
  eq(opened.kid, SERVER_ID, 'kid');
  assert.equal(Buffer.from(opened.message.payload).toString(), '. ID: 42');
  // The Class I Request-Hash binds the response to its request: another hash does not verify.
  const other = unprotectGroupResponse(decodeMessage(expected), client, binding, { classIOptions: [{ number: REQUEST_HASH_OPTION, value: new Uint8Array(32) }] });
  assert.equal(other.ok, false);
});

test('Group OSCORE §4.3: the OSCORE option values of the compressed examples', () => {
  const cases = [
    { name: '§4.3.1 group-mode request', value: { group: true, piv: Uint8Array.of(5), kidContext: fromHex('44616c'), kid: Uint8Array.of(0x25) }, expected: '390503 44616c 25' },
    { name: '§4.3.1 group-mode response', value: { group: true, kid: Uint8Array.of(0x52) }, expected: '2852' },
    { name: '§4.3.2 pairwise request', value: { group: false, piv: Uint8Array.of(5), kidContext: fromHex('44616c'), kid: Uint8Array.of(0x25) }, expected: '190503 44616c 25' },
    { name: '§4.3.2 pairwise response', value: { group: false }, expected: '' },
  ];
  for (const c of cases) {
    const encoded = encodeGroupOscoreOption(c.value);
    assert.equal(toHex(encoded), c.expected.replace(/\s+/g, ''), c.name);
    assert.deepEqual(decodeGroupOscoreOption(encoded), c.value, `${c.name} decodes back`);
  }
  // §4.3: before compression the group-mode request is 96 bytes and the response 88: the
  // COSE_Encrypt0 array [h'', {kid, PIV, kid context, Countersignature0 (64 bytes)}, ciphertext].
  assert.throws(() => decodeGroupOscoreOption(Uint8Array.of(0x49, 0x05)), /reserved/);
});
