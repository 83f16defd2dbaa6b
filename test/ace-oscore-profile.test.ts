/**
 * The OSCORE profile end to end in one process: an AS on CoAP (clients authenticated by OSCORE),
 * an RS with /authz-info and scope-guarded resources, and clients using AceClientSecurity.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { PLAIN } from '../src/client/security.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { ResponseCode } from '../src/coap/codes.js';
import { fromHex } from '../src/cose/cbor.js';
import { AceParam, CreationHint, decodeAceMap, encodeAceMap } from '../src/ace/ace-cbor.js';
import { MemoryAsState } from '../src/ace/as-state.js';
import { bindAuthorizationServer } from '../src/ace/as-resources.js';
import { AuthorizationServer } from '../src/ace/authorization-server.js';
import { AceClientError, AceClientSecurity } from '../src/ace/client.js';
import { AceResourceServer } from '../src/ace/resource-server.js';
import { sealToken } from '../src/ace/token.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { peerKey } from '../src/transport/transport.js';

const RS_KEY = { kid: fromHex('a5'), key: fromHex('000102030405060708090a0b0c0d0e0f') };
let clock = 2_000_000_000;
const now = (): number => clock;

function pair(secret: string, clientId: string, name: string): { client: OscoreSecurityContext; server: OscoreSecurityContext } {
  const masterSecret = fromHex(secret);
  return {
    client: new OscoreSecurityContext({ masterSecret, senderId: fromHex(clientId), recipientIds: [fromHex('aa')], name: 'as' }, new VolatileSequence()),
    server: new OscoreSecurityContext({ masterSecret, senderId: fromHex('aa'), recipientIds: [fromHex(clientId)], name }, new VolatileSequence()),
  };
}

const c1 = pair('0102030405060708090a0b0c0d0e0f10', '01', 'client1');
const c2 = pair('1112131415161718191a1b1c1d1e1f20', '02', 'client2');
let asServer: CoapServer;
let rsServer: CoapServer;
let rs: AceResourceServer;
let asUri: string;
let rsOrigin: string;
const clients: CoapClient[] = [];

before(async () => {
  asServer = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new OscoreServerSecurity([c1.server, c2.server]) });
  const as = new AuthorizationServer({
    issuer: 'as',
    audiences: [
      { name: 'rs1', key: RS_KEY, scopes: ['read', 'write'], profile: 'coap_oscore', lifetimeSeconds: 600 },
      { name: 'rs2', key: { kid: fromHex('b6'), key: fromHex('101112131415161718191a1b1c1d1e1f') }, scopes: ['read'], profile: 'coap_oscore' },
    ],
    clients: [
      { name: 'client1', grants: new Map([['rs1', ['read', 'write']], ['rs2', ['read']]]) },
      { name: 'client2', grants: new Map([['rs1', ['read']]]) },
    ],
    state: new MemoryAsState(),
    now,
  });
  bindAuthorizationServer(asServer, as);
  asUri = `coap://${peerKey(asServer.address())}/token`;
  rsServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  rs = AceResourceServer.attach(rsServer, { audiences: ['rs1'], tokenKeys: [RS_KEY], scopes: ['read', 'write'], asUri, issuer: 'as', now, maxTokens: 4 });
  let value = 'initial';
  rsServer.resource('/value', rs.guard({ GET: 'read', PUT: 'write' }, { GET: () => ({ code: ResponseCode.Content, payload: value }), PUT: (r) => ((value = r.text()), { code: ResponseCode.Changed }) }));
  rsServer.resource('/whoami', rs.guard({ GET: 'read' }, { GET: (r) => ({ code: ResponseCode.Content, payload: `${r.context.oscore?.at(-1)?.peer} ${r.context.scope?.join(',')}` }) }));
  rsOrigin = `coap://${peerKey(rsServer.address())}`;
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await asServer.close();
  await rsServer.close();
});

function aceClient(context: OscoreSecurityContext, options: { audience?: string; scope?: string } = {}): { client: CoapClient; ace: AceClientSecurity } {
  const client = new CoapClient();
  clients.push(client);
  const ace = new AceClientSecurity({ client, asUri, asSecurity: new OscoreClientSecurity(context), rsOrigin, now, ...options });
  return { client, ace };
}

test('no token: the RS answers 4.01 with AS Request Creation Hints (RFC 9200 §5.3)', async () => {
  const client = new CoapClient();
  clients.push(client);
  const response = await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: PLAIN });
  assert.equal(response.code, ResponseCode.Unauthorized);
  assert.equal(response.contentFormat, ContentFormat.AceCbor);
  const hints = decodeAceMap(response.payload);
  assert.equal(hints.get(CreationHint.AS), asUri);
  assert.equal(hints.get(CreationHint.audience), 'rs1');
  assert.equal(hints.get(CreationHint.scope), 'read');
});

test('a client discovers the audience from the hints, gets a token, posts it and reads with OSCORE', async () => {
  const { client, ace } = aceClient(c1.client);
  const response = await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace });
  assert.equal(response.code, ResponseCode.Content);
  assert.equal(response.text(), 'initial');
  assert.equal(response.context.oscore?.length, 1, 'the response was verified with OSCORE');
  const who = await client.request({ method: 'GET', uri: `${rsOrigin}/whoami`, security: ace });
  assert.match(who.text(), /^ace 01 read,write$/, 'the handler sees the token\'s scope in the endpoint context');
});

test('scope too narrow: a token for "read" gets 4.05 on PUT; another resource\'s scope 4.03', async () => {
  const { client, ace } = aceClient(c2.client, { audience: 'rs1' });
  assert.equal((await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace })).code, ResponseCode.Content);
  const put = await client.request({ method: 'PUT', uri: `${rsOrigin}/value`, payload: 'x', security: ace });
  assert.equal(put.code, ResponseCode.MethodNotAllowed);
  assert.equal(put.context.oscore?.length, 1, 'the refusal is protected');
  rsServer.resource('/admin', rs.guard({ GET: 'write' }, { GET: () => ({ code: ResponseCode.Content, payload: 'secret' }) }));
  assert.equal((await client.request({ method: 'GET', uri: `${rsOrigin}/admin`, security: ace })).code, ResponseCode.Forbidden);
  rsServer.remove('/admin');
});

test('the AS refuses a scope the client may not have and a client without OSCORE', async () => {
  const { client, ace } = aceClient(c2.client, { audience: 'rs1', scope: 'write' });
  await assert.rejects(client.request({ method: 'PUT', uri: `${rsOrigin}/value`, payload: 'x', security: ace }), (e: unknown) => e instanceof AceClientError && /invalid_scope/.test(e.message));
  const plain = new CoapClient();
  clients.push(plain);
  const response = await plain.request({ method: 'POST', uri: asUri, payload: encodeAceMap([[AceParam.audience, 'rs1']]), contentFormat: ContentFormat.AceCbor, security: PLAIN });
  assert.equal(response.code, ResponseCode.Unauthorized);
  assert.equal(decodeAceMap(response.payload).get(AceParam.error), 2, 'invalid_client');
});

test('a token for another audience: 4.01 when sealed for that RS, 4.03 when the key fits but aud does not', async () => {
  const { client, ace } = aceClient(c1.client, { audience: 'rs2' });
  await assert.rejects(client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace }), (e: unknown) => e instanceof AceClientError && /4\.01/.test(e.message));
  const otherAudience = sealToken({ aud: 'rs3', exp: clock + 60, scope: 'read', cnf: { osc: { id: fromHex('77'), ms: fromHex('000102030405060708090a0b0c0d0e0f') } } }, RS_KEY);
  const poster = new CoapClient();
  clients.push(poster);
  const response = await poster.request({ method: 'POST', uri: `${rsOrigin}/authz-info`, payload: encodeAceMap([[AceParam.access_token, otherAudience], [AceParam.nonce1, fromHex('0102030405060708')], [AceParam.ace_client_recipientid, fromHex('07')]]), contentFormat: ContentFormat.AceCbor, security: PLAIN });
  assert.equal(response.code, ResponseCode.Forbidden);
});

test('expiry: the RS answers 4.01 unprotected; the client gets a new token and goes on', async () => {
  const { client, ace } = aceClient(c1.client, { audience: 'rs1', scope: 'read' });
  assert.equal((await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace })).code, ResponseCode.Content);
  const first = ace.context;
  clock += 601;
  const again = await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace });
  assert.equal(again.code, ResponseCode.Content);
  assert.notEqual(ace.context, first, 'a new context from a new token');
  // The same expiry seen by the RS only (a client whose clock is behind): unprotected 4.01, then recovery.
  const stale = new OscoreClientSecurity(first!);
  await assert.rejects(client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: stale }), /unprotected 4\.01/);
});

test('a replayed authz-info post makes a context nobody can use; the client\'s context keeps working', async () => {
  const client = new CoapClient();
  clients.push(client);
  // The post the client sends, as an on-path attacker records it.
  const posts: Uint8Array[] = [];
  const recording = { request: (r: Parameters<CoapClient['request']>[0]) => (r.uri.endsWith('/authz-info') && r.payload instanceof Uint8Array && posts.push(r.payload), client.request(r)) };
  const ace = new AceClientSecurity({ client: recording, asUri, asSecurity: new OscoreClientSecurity(c1.client), rsOrigin, now, audience: 'rs1', scope: 'read' });
  assert.equal((await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace })).code, ResponseCode.Content);
  assert.equal(posts.length, 1);
  const attacker = new CoapClient();
  clients.push(attacker);
  const replay = () => attacker.request({ method: 'POST', uri: `${rsOrigin}/authz-info`, payload: posts[0]!, contentFormat: ContentFormat.AceCbor, security: PLAIN });
  const one = await replay();
  const two = await replay();
  assert.equal(one.code, ResponseCode.Created);
  assert.equal(two.code, ResponseCode.Created);
  assert.notDeepEqual(decodeAceMap(one.payload).get(AceParam.nonce2), decodeAceMap(two.payload).get(AceParam.nonce2), 'fresh N2 each time: no state reuse');
  const context = ace.context;
  assert.equal((await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace })).code, ResponseCode.Content);
  assert.equal(ace.context, context, 'the client\'s context still works: no re-establishment was needed');
  assert.equal(posts.length, 1);
});

test('forged tokens: altered ciphertext and another AS key get 4.01 at authz-info', async () => {
  const token = await fetchToken(c1.client);
  const poster = new CoapClient();
  clients.push(poster);
  const post = async (bytes: Uint8Array) =>
    poster.request({ method: 'POST', uri: `${rsOrigin}/authz-info`, payload: encodeAceMap([[AceParam.access_token, bytes], [AceParam.nonce1, fromHex('0102030405060708')], [AceParam.ace_client_recipientid, fromHex('07')]]), contentFormat: ContentFormat.AceCbor, security: PLAIN });
  const altered = Uint8Array.from(token);
  altered[altered.length - 1]! ^= 0x80;
  assert.equal((await post(altered)).code, ResponseCode.Unauthorized);
  assert.equal((await post(fromHex('00'))).code, ResponseCode.BadRequest, 'not a token at all');
  const missing = await poster.request({ method: 'POST', uri: `${rsOrigin}/authz-info`, payload: encodeAceMap([[AceParam.access_token, token]]), contentFormat: ContentFormat.AceCbor, security: PLAIN });
  assert.equal(missing.code, ResponseCode.BadRequest, 'no nonce1 / ace_client_recipientid');
});

test('update of access rights over the existing context (RFC 9203 §3.1, §4.1): no new keys', async () => {
  const { client, ace } = aceClient(c1.client, { audience: 'rs1', scope: 'read' });
  assert.equal((await client.request({ method: 'PUT', uri: `${rsOrigin}/value`, payload: 'x', security: ace })).code, ResponseCode.MethodNotAllowed);
  const context = ace.context;
  await ace.updateAccess('read write');
  assert.equal((await client.request({ method: 'PUT', uri: `${rsOrigin}/value`, payload: 'updated', security: ace })).code, ResponseCode.Changed);
  assert.equal(ace.context, context);
});

test('bounded token storage: beyond maxTokens the oldest client re-posts transparently', async () => {
  const many = [];
  for (let i = 0; i < 5; i++) {
    const { client, ace } = aceClient(c1.client, { audience: 'rs1', scope: 'read' });
    assert.equal((await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace })).code, ResponseCode.Content);
    many.push({ client, ace });
  }
  assert.ok(rs.tokenCount <= 4);
  const first = many[0]!;
  const before = first.ace.context;
  assert.equal((await first.client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: first.ace })).code, ResponseCode.Content);
  assert.notEqual(first.ace.context, before, 'evicted, so it posted its token again');
});

async function fetchToken(context: OscoreSecurityContext): Promise<Uint8Array> {
  const client = new CoapClient();
  clients.push(client);
  const response = await client.request({ method: 'POST', uri: asUri, payload: encodeAceMap([[AceParam.audience, 'rs1'], [AceParam.scope, 'read']]), contentFormat: ContentFormat.AceCbor, security: new OscoreClientSecurity(context) });
  assert.equal(response.code, ResponseCode.Created);
  return decodeAceMap(response.payload).get(AceParam.access_token) as Uint8Array;
}
