/**
 * Access tokens and the AS token endpoint core: RFC 9203 Fig. 6 (the CWT claims set with cnf.osc)
 * byte for byte, Figs. 13–14 (the Master Salt), Figs. 2–5, 7–8 and 11–12 as round trips, the token
 * sealed for one RS and refused when forged, and RFC 9200 §5.8.3 errors of the token endpoint.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResponseCode } from '../src/coap/codes.js';
import { decodeStrict, encodeCbor, fromHex, toHex } from '../src/cose/cbor.js';
import { AceErrorCode, AceParam, AceProfile, decodeAceMap, encodeAceMap } from '../src/ace/ace-cbor.js';
import { MemoryAsState } from '../src/ace/as-state.js';
import { AuthorizationServer, type AudienceEntry } from '../src/ace/authorization-server.js';
import { masterSalt, masterSaltForJson, profileContext, OscoreProfileError } from '../src/ace/oscore-profile.js';
import { checkClaims, encodeClaims, openToken, parseClaims, sealToken, TokenError, type AccessTokenClaims, type TokenKey } from '../src/ace/token.js';

const FIG6 = fromHex(`
  A5 03 76 74656D7053656E736F72496E4C6976696E67526F6F6D
  06 1A 5112D728 04 1A 51145DC8
  09 78 18 74656D70657261747572655F67206669726D776172655F70
  08 A1 04 A2 00 41 01 02 50 F9AF838368E353E78888E1426BD94E6F`);

const FIG5: AccessTokenClaims = {
  aud: 'tempSensorInLivingRoom',
  iat: 1360189224,
  exp: 1360289224,
  scope: 'temperature_g firmware_p',
  cnf: { osc: { id: fromHex('01'), ms: fromHex('f9af838368e353e78888e1426bd94e6f') } },
};

test('RFC 9203 Fig. 6: the claims set of Fig. 5 encodes byte for byte and parses back', () => {
  assert.equal(toHex(encodeClaims(FIG5)), toHex(FIG6));
  assert.deepEqual(parseClaims(FIG6), FIG5);
});

test('RFC 9203 Fig. 8: the update-of-rights claims set carries cnf.kid and round-trips', () => {
  const fig8: AccessTokenClaims = { aud: 'tempSensorInLivingRoom', iat: 1360189224, exp: 1360289224, scope: 'temperature_h', cnf: { kid: fromHex('01') } };
  const bytes = encodeClaims(fig8);
  assert.deepEqual(parseClaims(bytes), fig8);
  assert.equal(toHex(bytes).endsWith('08a10341' + '01'), true, 'cnf { kid: h\'01\' } last');
});

test('RFC 9203 Fig. 13: Master Salt = bstr(salt) | bstr(N1) | bstr(N2)', () => {
  const salt = masterSalt(fromHex('f9af838368e353e78888e1426bd94e6f'), fromHex('018a278f7faab55a'), fromHex('25a8991cd700ac01'));
  assert.equal(toHex(salt), '50f9af838368e353e78888e1426bd94e6f' + '48018a278f7faab55a' + '4825a8991cd700ac01');
});

test('RFC 9203 Fig. 14: the JSON Master Salt is base64 of the length-prefixed values', () => {
  assert.equal(masterSaltForJson(fromHex('f9af838368e353e78888e1426bd94e6f'), fromHex('018a278f7faab55a'), fromHex('25a8991cd700ac01')), 'EPmvg4No41PniIjhQmvZTm8IAYonj3+qtVoIJaiZHNcArAE=');
});

test('RFC 9203 Figs. 11–12: the authz-info request and response maps round-trip', () => {
  const fig11 = encodeAceMap([[AceParam.access_token, fromHex('8343a1010aa2044c53')], [AceParam.nonce1, fromHex('018a278f7faab55a')], [AceParam.ace_client_recipientid, fromHex('1645')]]);
  assert.equal(toHex(fig11), 'a3' + '01' + '49' + '8343a1010aa2044c53' + '1828' + '48' + '018a278f7faab55a' + '182b' + '42' + '1645');
  const fig12 = encodeAceMap([[AceParam.nonce2, fromHex('25a8991cd700ac01')], [AceParam.ace_server_recipientid, fromHex('0000')]]);
  assert.equal(toHex(fig12), 'a2' + '182a' + '48' + '25a8991cd700ac01' + '182c' + '42' + '0000');
  assert.deepEqual(decodeAceMap(fig12).get(AceParam.ace_server_recipientid), fromHex('0000'));
});

test('RFC 9203 §4.3: both sides derive matching contexts; equal Recipient IDs abort', () => {
  const exchange = {
    material: { id: fromHex('01'), ms: fromHex('f9af838368e353e78888e1426bd94e6f') },
    nonce1: fromHex('018a278f7faab55a'),
    nonce2: fromHex('25a8991cd700ac01'),
    clientRecipientId: fromHex('1645'),
    serverRecipientId: fromHex('0000'),
  };
  const client = profileContext('client', exchange, 'rs');
  const server = profileContext('server', exchange, 'client');
  assert.deepEqual(client.sender.senderKey, server.primaryRecipient.params.recipientKey);
  assert.deepEqual(server.sender.senderKey, client.primaryRecipient.params.recipientKey);
  assert.deepEqual(client.sender.senderId, fromHex('0000'));
  assert.throws(() => profileContext('client', { ...exchange, serverRecipientId: fromHex('1645') }, 'rs'), OscoreProfileError);
  // Other nonces, other keys: a repost never reuses a context (§2, §4.1).
  const again = profileContext('client', { ...exchange, nonce2: fromHex('25a8991cd700ac02') }, 'rs');
  assert.notDeepEqual(again.sender.senderKey, client.sender.senderKey);
});

const RS_KEY: TokenKey = { kid: fromHex('a5'), key: fromHex('000102030405060708090a0b0c0d0e0f') };

test('a sealed token opens with the AS–RS key and is refused when forged or under another key', () => {
  const token = sealToken(FIG5, RS_KEY);
  assert.equal(toHex(token).slice(0, 8), '8343a101', 'COSE_Encrypt0 with a protected alg, as Fig. 4 shows');
  assert.deepEqual(openToken(token, (kid) => (toHex(kid) === 'a5' ? RS_KEY : undefined)), FIG5);
  const altered = Uint8Array.from(token);
  altered[altered.length - 3]! ^= 0x01;
  assert.throws(() => openToken(altered, () => RS_KEY), (e: unknown) => e instanceof TokenError && e.code === ResponseCode.Unauthorized);
  const otherKey = { ...RS_KEY, key: fromHex('0f0e0d0c0b0a09080706050403020100') };
  assert.throws(() => openToken(sealToken(FIG5, otherKey), () => RS_KEY), (e: unknown) => e instanceof TokenError && e.code === ResponseCode.Unauthorized);
  assert.throws(() => openToken(token, () => undefined), (e: unknown) => e instanceof TokenError && e.code === ResponseCode.Unauthorized);
  assert.throws(() => openToken(fromHex('a0'), () => RS_KEY), (e: unknown) => e instanceof TokenError && e.code === ResponseCode.BadRequest);
});

test('RFC 9200 §5.10.1.1: claim checks in order: exp (4.01), aud (4.03), scope (4.00)', () => {
  const code = (f: () => void): number => {
    try {
      f();
    } catch (e) {
      return (e as TokenError).code;
    }
    return 0;
  };
  const base = { audiences: ['tempSensorInLivingRoom'], now: 1360189300, knownScopes: new Set(['temperature_g', 'firmware_p']) };
  assert.equal(code(() => checkClaims(FIG5, base)), 0);
  assert.equal(code(() => checkClaims(FIG5, { ...base, now: 1360289224 })), ResponseCode.Unauthorized);
  assert.equal(code(() => checkClaims(FIG5, { ...base, now: 1360289224, audiences: ['other'] })), ResponseCode.Unauthorized, 'exp before aud');
  assert.equal(code(() => checkClaims(FIG5, { ...base, audiences: ['other'] })), ResponseCode.Forbidden);
  assert.equal(code(() => checkClaims(FIG5, { ...base, knownScopes: new Set(['temperature_g']) })), ResponseCode.BadRequest);
});

function authorizationServer(now = 1_000_000): { as: AuthorizationServer; state: MemoryAsState } {
  const state = new MemoryAsState();
  const audiences: AudienceEntry[] = [
    { name: 'tempSensor4711', key: RS_KEY, scopes: ['read', 'write'], profile: 'coap_oscore' },
    { name: 'other', key: { kid: fromHex('b6'), key: fromHex('101112131415161718191a1b1c1d1e1f') }, scopes: ['read'], profile: 'coap_oscore' },
  ];
  const as = new AuthorizationServer({
    issuer: 'as',
    audiences,
    clients: [{ name: 'client1', grants: new Map([['tempSensor4711', ['read', 'write']]]) }, { name: 'client2', grants: new Map([['tempSensor4711', ['read']]]) }],
    state,
    now: () => now,
  });
  return { as, state };
}

const errorOf = (payload: Uint8Array): number => decodeAceMap(payload).get(AceParam.error) as number;

test('RFC 9203 Fig. 2 → Fig. 4: a token request gets a token, ace_profile, expires_in and cnf.osc', () => {
  const { as } = authorizationServer();
  const fig2 = encodeAceMap([[AceParam.audience, 'tempSensor4711'], [AceParam.scope, 'read']]);
  const response = as.token('client1', fig2);
  assert.equal(response.code, ResponseCode.Created);
  const map = decodeAceMap(response.payload);
  assert.equal(map.get(AceParam.ace_profile), AceProfile.coap_oscore);
  assert.equal(map.get(AceParam.expires_in), 3600);
  const osc = (map.get(AceParam.cnf) as Map<number, Map<number, unknown>>).get(4)!;
  const claims = openToken(map.get(AceParam.access_token) as Uint8Array, () => RS_KEY);
  assert.equal(claims.aud, 'tempSensor4711');
  assert.equal(claims.scope, 'read');
  assert.equal(claims.exp, 1_000_000 + 3600);
  assert.ok('osc' in claims.cnf);
  assert.deepEqual(claims.cnf.osc.id, osc.get(0));
  assert.deepEqual(claims.cnf.osc.ms, osc.get(2));
  // §3.2: "a different OSCORE_Input_Material ... to different authorized clients" — and per request.
  const second = decodeAceMap(as.token('client2', fig2).payload);
  const osc2 = (second.get(AceParam.cnf) as Map<number, Map<number, unknown>>).get(4)!;
  assert.notDeepEqual(osc2.get(0), osc.get(0));
  assert.notDeepEqual(osc2.get(2), osc.get(2));
});

test('RFC 9203 Fig. 3 → Fig. 7: an update of rights names the Input Material; the response has no cnf', () => {
  const { as } = authorizationServer();
  const first = decodeAceMap(as.token('client1', encodeAceMap([[AceParam.audience, 'tempSensor4711'], [AceParam.scope, 'read']])).payload);
  const id = ((first.get(AceParam.cnf) as Map<number, Map<number, unknown>>).get(4)!.get(0)) as Uint8Array;
  const fig3 = encodeAceMap([[AceParam.audience, 'tempSensor4711'], [AceParam.scope, 'write'], [AceParam.req_cnf, new Map([[3, id]])]]);
  const response = as.token('client1', fig3);
  assert.equal(response.code, ResponseCode.Created);
  const map = decodeAceMap(response.payload);
  assert.equal(map.has(AceParam.cnf), false);
  assert.deepEqual(openToken(map.get(AceParam.access_token) as Uint8Array, () => RS_KEY).cnf, { kid: id });
  // Another client cannot name it (§3.1: invalid_request).
  const stolen = as.token('client2', encodeAceMap([[AceParam.audience, 'tempSensor4711'], [AceParam.req_cnf, new Map([[3, id]])]]));
  assert.equal(stolen.code, ResponseCode.BadRequest);
  assert.equal(errorOf(stolen.payload), AceErrorCode.invalid_request);
});

test('RFC 9200 §5.8.3: error responses with their codes', () => {
  const { as } = authorizationServer();
  const request = (entries: Array<[number, unknown]>) => encodeAceMap(entries);
  const unauth = as.token(undefined, request([[AceParam.audience, 'tempSensor4711']]));
  assert.equal(unauth.code, ResponseCode.Unauthorized);
  assert.equal(errorOf(unauth.payload), AceErrorCode.invalid_client);
  assert.equal(errorOf(as.token('nobody', request([[AceParam.audience, 'tempSensor4711']])).payload), AceErrorCode.invalid_client);
  assert.equal(errorOf(as.token('client1', fromHex('ff')).payload), AceErrorCode.invalid_request);
  assert.equal(errorOf(as.token('client1', request([[AceParam.scope, 'read']])).payload), AceErrorCode.invalid_request);
  assert.equal(errorOf(as.token('client1', request([[AceParam.audience, 'other']])).payload), AceErrorCode.unauthorized_client);
  assert.equal(errorOf(as.token('client1', request([[AceParam.audience, 'tempSensor4711'], [AceParam.grant_type, 0]])).payload), AceErrorCode.unsupported_grant_type);
  assert.equal(errorOf(as.token('client1', request([[AceParam.audience, 'tempSensor4711'], [AceParam.scope, 'admin']])).payload), AceErrorCode.invalid_scope);
  assert.equal(errorOf(as.token('client2', request([[AceParam.audience, 'tempSensor4711'], [AceParam.scope, 'write']])).payload), AceErrorCode.invalid_scope);
  assert.equal(errorOf(as.token('client1', request([[AceParam.audience, 'tempSensor4711'], [AceParam.ace_profile, 1]])).payload), AceErrorCode.incompatible_ace_profiles);
  const cose = new Map([[1, new Map([[1, 4]])]]);
  assert.equal(errorOf(as.token('client1', request([[AceParam.audience, 'tempSensor4711'], [AceParam.req_cnf, cose]])).payload), AceErrorCode.unsupported_pop_key);
  const refused = as.token('client1', request([[AceParam.audience, 'tempSensor4711'], [AceParam.grant_type, 0]]));
  assert.equal(refused.code, ResponseCode.BadRequest);
  assert.equal(typeof decodeAceMap(refused.payload).get(AceParam.error_description), 'string');
});

test('the granted scope narrows to what the client may have, and says so', () => {
  const { as } = authorizationServer();
  const map = decodeAceMap(as.token('client2', encodeAceMap([[AceParam.audience, 'tempSensor4711'], [AceParam.scope, 'read write']])).payload);
  assert.equal(map.get(AceParam.scope), 'read');
  assert.equal(decodeStrict(encodeCbor(map.get(AceParam.scope))), 'read');
});

test('coap_edhoc_oscore: the token carries the client\'s registered EDHOC credential (cnf.kccs), no OSCORE material', () => {
  const ccs = encodeCbor(new Map<number, unknown>([[2, 'client3'], [8, new Map([[1, new Map<number, unknown>([[1, 2], [-1, 1], [-2, fromHex('aa'.repeat(32))]])]])]]));
  const as = new AuthorizationServer({
    audiences: [{ name: 'edhoc-rs', key: RS_KEY, scopes: ['read'], profile: 'coap_edhoc_oscore' }],
    clients: [
      { name: 'client3', grants: new Map([['edhoc-rs', ['read']]]), edhocCredential: ccs },
      { name: 'client4', grants: new Map([['edhoc-rs', ['read']]]) },
    ],
    state: new MemoryAsState(),
  });
  const response = as.token('client3', encodeAceMap([[AceParam.audience, 'edhoc-rs']]));
  assert.equal(response.code, ResponseCode.Created);
  const map = decodeAceMap(response.payload);
  assert.equal(map.get(AceParam.ace_profile), AceProfile.coap_edhoc_oscore);
  assert.equal(map.has(AceParam.cnf), false);
  assert.deepEqual(openToken(map.get(AceParam.access_token) as Uint8Array, () => RS_KEY).cnf, { kccs: ccs });
  assert.equal(errorOf(as.token('client4', encodeAceMap([[AceParam.audience, 'edhoc-rs']])).payload), AceErrorCode.unsupported_pop_key);
  const other = new Map([[14, new Map([[2, 'someone else']])]]);
  assert.equal(errorOf(as.token('client3', encodeAceMap([[AceParam.audience, 'edhoc-rs'], [AceParam.req_cnf, other]])).payload), AceErrorCode.unsupported_pop_key);
});
