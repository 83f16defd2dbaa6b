/**
 * The EDHOC and OSCORE profile (draft-ietf-ace-edhoc-oscore-profile) end to end in one process
 * with real sockets: an AS on CoAP (clients authenticated by OSCORE), an RS running EDHOC whose
 * Initiators are authenticated by the credentials their tokens name, and clients using
 * AceEdhocClientSecurity. Failure cases: no token, EDHOC with a credential no token names (and
 * without any token), an expired token, a scope too narrow, a forged token.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { PLAIN } from '../src/client/security.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { ResponseCode } from '../src/coap/codes.js';
import { coseKeyFromKeyObject, decodeStrict, encodeCcs, fromHex, generatePrivateKey, CoseCurve } from '../src/cose/index.js';
import { ACCESS_TOKEN_EAD_LABEL, AceParam, Claim, CreationHint, decodeAceMap, EdhocInfo, encodeAceMap } from '../src/ace/ace-cbor.js';
import { MemoryAsState } from '../src/ace/as-state.js';
import { bindAuthorizationServer } from '../src/ace/as-resources.js';
import { AuthorizationServer } from '../src/ace/authorization-server.js';
import { AceEdhocClientSecurity } from '../src/ace/edhoc-client.js';
import { AceResourceServer } from '../src/ace/resource-server.js';
import { parseClaims, sealToken, type AccessTokenClaims } from '../src/ace/token.js';
import { ccsCredential, CredentialStore, type OwnCredential } from '../src/edhoc/credentials.js';
import { EdhocClientSecurity, EdhocRequestError } from '../src/edhoc-coap/client-security.js';
import { postOverClient } from '../src/edhoc-coap/handshake.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { peerKey } from '../src/transport/transport.js';
import { decrypt0, decodeEncrypt0 } from '../src/cose/encrypt.js';

const RS_KEY = { kid: fromHex('a5'), key: fromHex('000102030405060708090a0b0c0d0e0f') };
const SUITE = 2; // P-256, ES256
let clock = 2_000_000_000;
const now = (): number => clock;

function identity(name: string, kid: string): { own: OwnCredential; ccs: Uint8Array } {
  const privateKey = generatePrivateKey(CoseCurve.P256);
  const ccs = encodeCcs({ sub: name, coseKey: coseKeyFromKeyObject(privateKey, { kid: fromHex(kid) }) });
  return { own: ccsCredential(ccs, privateKey), ccs };
}

function asChannel(secret: string, clientId: string, name: string): { client: OscoreSecurityContext; server: OscoreSecurityContext } {
  const masterSecret = fromHex(secret);
  return {
    client: new OscoreSecurityContext({ masterSecret, senderId: fromHex(clientId), recipientIds: [fromHex('aa')], name: 'as' }, new VolatileSequence()),
    server: new OscoreSecurityContext({ masterSecret, senderId: fromHex('aa'), recipientIds: [fromHex(clientId)], name }, new VolatileSequence()),
  };
}

const rsIdentity = identity('rs', '52');
const alice = identity('alice', 'a1');
const bob = identity('bob', 'b1');
const mallory = identity('mallory', 'e1');
const aliceChannel = asChannel('0102030405060708090a0b0c0d0e0f10', '01', 'alice');
const bobChannel = asChannel('1112131415161718191a1b1c1d1e1f20', '02', 'bob');
let asServer: CoapServer;
let rsServer: CoapServer;
let rs: AceResourceServer;
let authorizationServer: AuthorizationServer;
let asUri: string;
let rsOrigin: string;
const rsLog: string[] = [];
const clients: CoapClient[] = [];

before(async () => {
  asServer = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new OscoreServerSecurity([aliceChannel.server, bobChannel.server]) });
  authorizationServer = new AuthorizationServer({
    issuer: 'as',
    audiences: [{ name: 'sensor', key: RS_KEY, scopes: ['read', 'write'], profile: 'coap_edhoc_oscore', lifetimeSeconds: 600, edhocCredential: rsIdentity.ccs }],
    clients: [
      { name: 'alice', grants: new Map([['sensor', ['read', 'write']]]), edhocCredential: alice.ccs },
      { name: 'bob', grants: new Map([['sensor', ['read']]]), edhocCredential: bob.ccs },
    ],
    state: new MemoryAsState(),
    now,
  });
  bindAuthorizationServer(asServer, authorizationServer);
  asUri = `coap://${peerKey(asServer.address())}/token`;
  rsServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  let value = 'initial';
  rsServer.resource('/value', { GET: () => ({ code: ResponseCode.Content, payload: value }), PUT: (r) => ((value = r.text()), { code: ResponseCode.Changed }) });
  rsServer.resource('/whoami', { GET: (r) => ({ code: ResponseCode.Content, payload: `${r.context.oscore?.at(-1)?.peer} ${r.context.scope?.join(',')}` }) });
  rs = AceResourceServer.attach(rsServer, {
    audiences: ['sensor'],
    tokenKeys: [RS_KEY],
    scopes: ['read', 'write'],
    asUri,
    issuer: 'as',
    now,
    maxTokens: 8,
    edhoc: { responder: { suites: [SUITE], methods: [0], credentials: [rsIdentity.own] } },
    log: (line) => rsLog.push(line),
  });
  rs.protectResource(rsServer, '/value', { GET: 'read', PUT: 'write' });
  rs.protectResource(rsServer, '/whoami', { GET: 'read' });
  rsOrigin = `coap://${peerKey(rsServer.address())}`;
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await asServer.close();
  await rsServer.close();
});

function newClient(): CoapClient {
  const client = new CoapClient();
  clients.push(client);
  return client;
}

function aceClient(who: { own: OwnCredential }, channel: OscoreSecurityContext, options: { audience?: string; scope?: string; combined?: boolean } = {}): { client: CoapClient; ace: AceEdhocClientSecurity } {
  const client = newClient();
  const ace = new AceEdhocClientSecurity({ client, asUri, asSecurity: new OscoreClientSecurity(channel), rsOrigin, now, identity: { credential: who.own, method: 0, suites: [SUITE] }, ...options });
  return { client, ace };
}

/** A token for `who` straight from the AS (as a client would get it), and its claims. */
async function fetchToken(channel: OscoreSecurityContext, ccs: Uint8Array, scope = 'read'): Promise<{ token: Uint8Array; response: Map<number, unknown> }> {
  const client = newClient();
  const response = await client.request({
    method: 'POST',
    uri: asUri,
    payload: encodeAceMap([[AceParam.audience, 'sensor'], [AceParam.scope, scope], [AceParam.req_cnf, new Map([[14, decodeStrict(ccs)]])]]),
    contentFormat: ContentFormat.AceCbor,
    security: new OscoreClientSecurity(channel),
  });
  assert.equal(response.code, ResponseCode.Created, response.text());
  const map = decodeAceMap(response.payload);
  return { token: map.get(AceParam.access_token) as Uint8Array, response: map };
}

/** EDHOC run by hand with `who`'s credential and whatever EAD_3 the test gives. */
function rawEdhoc(who: { own: OwnCredential; ccs: Uint8Array }, ead3: Array<{ label: number; value?: Uint8Array }>, byValue = true): { client: CoapClient; edhoc: EdhocClientSecurity } {
  const client = newClient();
  const credential = byValue ? ccsCredential(who.ccs, who.own.privateKey, { byValue: true }) : who.own;
  const edhoc = new EdhocClientSecurity({
    initiator: { method: 0, suites: [SUITE], credential, peers: new CredentialStore().addCcs(rsIdentity.ccs) },
    post: postOverClient(client, rsOrigin),
    ead3,
  });
  return { client, edhoc };
}

function claimsOf(token: Uint8Array): AccessTokenClaims {
  const encrypt0 = decodeEncrypt0(token);
  const iv = encrypt0.unprotectedHeader.get(5) as Uint8Array;
  return parseClaims(decrypt0(10, RS_KEY.key, iv, encrypt0.ciphertext, encrypt0.protectedHeader, new Uint8Array(0))!);
}

test('the AS: the first token of a series has the client\'s credential in cnf and edhoc_info; the response rs_cnf and edhoc_info, no cnf', async () => {
  const { token, response } = await fetchToken(aliceChannel.client, alice.ccs);
  const claims = claimsOf(token);
  assert.ok('kccs' in claims.cnf);
  assert.deepEqual(decodeStrict(claims.cnf.kccs), decodeStrict(alice.ccs));
  const info = response.get(AceParam.edhoc_info) as Map<number, unknown>;
  assert.deepEqual(claims.edhocInfo?.sessionId, info.get(EdhocInfo.session_id), 'token and response name the same series');
  assert.deepEqual((response.get(AceParam.rs_cnf) as Map<number, unknown>).get(14), decodeStrict(rsIdentity.ccs), 'rs_cnf: the RS\'s credential by value');
  assert.equal(response.has(AceParam.cnf), false, '§3.3: "the response from AS MUST NOT include the cnf parameter"');
  assert.equal(Claim.edhoc_info, AceParam.edhoc_info);
});

test('no token: the RS answers 4.01 with AS Request Creation Hints', async () => {
  const response = await newClient().request({ method: 'GET', uri: `${rsOrigin}/value`, security: PLAIN });
  assert.equal(response.code, ResponseCode.Unauthorized);
  const hints = decodeAceMap(response.payload);
  assert.equal(hints.get(CreationHint.audience), 'sensor');
  assert.equal(hints.get(CreationHint.scope), 'read');
});

test('a client discovers the audience, gets a token, runs EDHOC with the token in EAD_3 (combined request) and reads', async () => {
  const { client, ace } = aceClient(alice, aliceChannel.client);
  const response = await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace });
  assert.equal(response.code, ResponseCode.Content);
  assert.equal(response.text(), 'initial');
  assert.equal(response.context.oscore?.length, 1, 'verified with the EDHOC-made OSCORE context');
  assert.equal(ace.handshakes, 1);
  const who = await client.request({ method: 'GET', uri: `${rsOrigin}/whoami`, security: ace });
  assert.equal(who.text(), 'alice read,write', 'the handler sees the token\'s scope and the credential\'s subject');
  assert.equal((await client.request({ method: 'PUT', uri: `${rsOrigin}/value`, payload: 'alice', security: ace })).code, ResponseCode.Changed);
  assert.equal(ace.handshakes, 1, 'one EDHOC session for all of them');
});

test('scope too narrow: bob\'s read token gets 4.05 on PUT and 4.03 on a resource of another scope', async () => {
  const { client, ace } = aceClient(bob, bobChannel.client, { audience: 'sensor', combined: false });
  assert.equal((await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace })).code, ResponseCode.Content);
  const put = await client.request({ method: 'PUT', uri: `${rsOrigin}/value`, payload: 'bob', security: ace });
  assert.equal(put.code, ResponseCode.MethodNotAllowed);
  assert.equal(put.context.oscore?.length, 1, 'the refusal is protected');
  rsServer.resource('/admin', rs.guard({ GET: 'write' }, { GET: () => ({ code: ResponseCode.Content, payload: 'secret' }) }));
  assert.equal((await client.request({ method: 'GET', uri: `${rsOrigin}/admin`, security: ace })).code, ResponseCode.Forbidden);
  rsServer.remove('/admin');
});

test('EDHOC with a credential no token names: EDHOC error 1, no context', async () => {
  const contextsBefore = rs.tokenCount;
  const { token } = await fetchToken(aliceChannel.client, alice.ccs);
  // Mallory presents alice's token (captured) with her own credential.
  const stolen = rawEdhoc(mallory, [{ label: -ACCESS_TOKEN_EAD_LABEL, value: token }]);
  await assert.rejects(
    stolen.client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: stolen.edhoc }),
    (e: unknown) => e instanceof EdhocRequestError && e.peerError?.code === 1 && /another credential/.test(e.message),
  );
  // Without any token.
  const none = rawEdhoc(mallory, []);
  await assert.rejects(none.client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: none.edhoc }), (e: unknown) => e instanceof EdhocRequestError && /no valid access token/.test(e.message));
  // Two tokens in EAD_3 (§4.3.3: abort).
  const two = rawEdhoc(alice, [{ label: -ACCESS_TOKEN_EAD_LABEL, value: token }, { label: -ACCESS_TOKEN_EAD_LABEL, value: token }]);
  await assert.rejects(two.client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: two.edhoc }), (e: unknown) => e instanceof EdhocRequestError && /more than one/.test(e.message));
  assert.equal(rs.tokenCount, contextsBefore, 'no token was stored and no context bound');
});

test('forged tokens in EAD_3: altered ciphertext, another AS key, a token of the OSCORE profile', async () => {
  const { token } = await fetchToken(aliceChannel.client, alice.ccs);
  const altered = Uint8Array.from(token);
  altered[altered.length - 1]! ^= 0x80;
  const otherKey = sealToken({ ...claimsOf(token) }, { kid: RS_KEY.kid, key: fromHex('ffffffffffffffffffffffffffffffff') });
  const oscoreProfile = sealToken({ aud: 'sensor', exp: clock + 60, scope: 'read', cnf: { osc: { id: fromHex('77'), ms: fromHex('000102030405060708090a0b0c0d0e0f') } } }, RS_KEY);
  for (const [what, bytes, reason] of [['altered', altered, /does not decrypt/], ['other key', otherKey, /does not decrypt/], ['OSCORE profile', oscoreProfile, /not of the EDHOC and OSCORE profile/]] as const) {
    const run = rawEdhoc(alice, [{ label: -ACCESS_TOKEN_EAD_LABEL, value: bytes }]);
    await assert.rejects(run.client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: run.edhoc }), (e: unknown) => e instanceof EdhocRequestError && reason.test(e.message), what);
  }
});

test('expiry: the RS drops token and context (unprotected 4.01); the client gets a new token and runs EDHOC again', async () => {
  const { client, ace } = aceClient(alice, aliceChannel.client, { audience: 'sensor', scope: 'read' });
  assert.equal((await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace })).code, ResponseCode.Content);
  const first = ace.context!;
  clock += 601;
  // The RS's clock only: a client whose clock is behind keeps using the old context and is refused.
  const stale = new OscoreClientSecurity(first);
  await assert.rejects(newClient().request({ method: 'GET', uri: `${rsOrigin}/value`, security: stale }), /unprotected 4\.01/);
  assert.ok(rsLog.some((line) => /dropped: expired/.test(line)));
  const again = await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace });
  assert.equal(again.code, ResponseCode.Content);
  assert.notEqual(ace.context, first, 'a new context from a new EDHOC session');
  assert.equal(ace.handshakes, 2);
  // An expired token presented in EDHOC is refused.
  const { token } = await fetchToken(aliceChannel.client, alice.ccs);
  clock += 601;
  const late = rawEdhoc(alice, [{ label: -ACCESS_TOKEN_EAD_LABEL, value: token }]);
  await assert.rejects(late.client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: late.edhoc }), (e: unknown) => e instanceof EdhocRequestError && /expired/.test(e.message));
});

test('expiry seen by the RS first: the client reruns EDHOC, is refused, gets a new token and goes on', async () => {
  const { client, ace } = aceClient(bob, bobChannel.client, { audience: 'sensor' });
  assert.equal((await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace })).code, ResponseCode.Content);
  // The client's clock has stopped: its token never expires for it.
  const stopped = clock;
  const clientClock = (): number => stopped;
  const skewed = new AceEdhocClientSecurity({ client, asUri, asSecurity: new OscoreClientSecurity(bobChannel.client), rsOrigin, now: clientClock, audience: 'sensor', identity: { credential: bob.own, method: 0, suites: [SUITE] } });
  assert.equal((await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: skewed })).code, ResponseCode.Content);
  clock += 605; // expired for the RS, not for the client
  const response = await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: skewed });
  assert.equal(response.code, ResponseCode.Content);
  assert.equal(skewed.handshakes, 3, 'the first session, a rerun refused with EDHOC error 1, and one with the new token');
});

test('update of access rights (§4.6): a token of the same series posted over the context; no new EDHOC session', async () => {
  const { client, ace } = aceClient(alice, aliceChannel.client, { audience: 'sensor', scope: 'read' });
  assert.equal((await client.request({ method: 'PUT', uri: `${rsOrigin}/value`, payload: 'x', security: ace })).code, ResponseCode.MethodNotAllowed);
  const context = ace.context;
  await ace.updateAccess('read write');
  assert.equal((await client.request({ method: 'PUT', uri: `${rsOrigin}/value`, payload: 'updated', security: ace })).code, ResponseCode.Changed);
  assert.equal(ace.context, context);
  assert.equal(ace.handshakes, 1);
  // The RS loses the context (eight uploaded tokens evict the series, maxTokens 8): the client
  // reruns EDHOC presenting the latest token of its series, so the updated rights stay.
  for (let i = 0; i < 8; i++) {
    const upload = await newClient().request({ method: 'POST', uri: `${rsOrigin}/authz-info`, payload: (await fetchToken(bobChannel.client, bob.ccs)).token, contentFormat: ContentFormat.Cwt, security: PLAIN });
    assert.equal(upload.code, ResponseCode.Created);
  }
  assert.ok(rsLog.some((line) => /evicted/.test(line)));
  assert.equal((await client.request({ method: 'PUT', uri: `${rsOrigin}/value`, payload: 'after rerun', security: ace })).code, ResponseCode.Changed);
  assert.equal(ace.handshakes, 2);
  // A token of another series posted over this context is refused with 4.01 (§4.6.2).
  const { token } = await fetchToken(aliceChannel.client, alice.ccs, 'read write');
  const response = await client.request({ method: 'POST', uri: `${rsOrigin}/authz-info`, payload: token, contentFormat: ContentFormat.Cwt, security: ace });
  assert.equal(response.code, ResponseCode.Unauthorized);
});

test('a token posted to /authz-info beforehand (RFC 9200 §5.10.1): EDHOC with the credential by reference and no EAD_3', async () => {
  const { token } = await fetchToken(bobChannel.client, bob.ccs);
  const upload = await newClient().request({ method: 'POST', uri: `${rsOrigin}/authz-info`, payload: token, contentFormat: ContentFormat.Cwt, security: PLAIN });
  assert.equal(upload.code, ResponseCode.Created);
  const run = rawEdhoc(bob, [], false);
  const response = await run.client.request({ method: 'GET', uri: `${rsOrigin}/whoami`, security: run.edhoc });
  assert.equal(response.code, ResponseCode.Content);
  assert.equal(response.text(), 'bob read');
  // A forged upload is refused like a forged RFC 9203 token.
  const forged = await newClient().request({ method: 'POST', uri: `${rsOrigin}/authz-info`, payload: fromHex('00'), contentFormat: ContentFormat.Cwt, security: PLAIN });
  assert.equal(forged.code, ResponseCode.BadRequest);
});
