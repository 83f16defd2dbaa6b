/**
 * Token introspection (RFC 9200 §5.9) in one process with real sockets: the AS's /introspect
 * endpoint answers authenticated resource servers about their own tokens only, and an RS that
 * cannot open a posted token (here: it holds no key of the AS at all) asks it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { PLAIN } from '../src/client/security.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { ResponseCode } from '../src/coap/codes.js';
import { fromHex } from '../src/cose/cbor.js';
import { AceParam, Claim, decodeAceMap, encodeAceMap } from '../src/ace/ace-cbor.js';
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

const RS1_KEY = { kid: fromHex('a5'), key: fromHex('000102030405060708090a0b0c0d0e0f') };
const RS2_KEY = { kid: fromHex('b6'), key: fromHex('101112131415161718191a1b1c1d1e1f') };
let clock = 2_000_000_000;
const now = (): number => clock;

function pair(secret: string, clientId: string, name: string): { client: OscoreSecurityContext; server: OscoreSecurityContext } {
  const masterSecret = fromHex(secret);
  return {
    client: new OscoreSecurityContext({ masterSecret, senderId: fromHex(clientId), recipientIds: [fromHex('aa')], name: 'as' }, new VolatileSequence()),
    server: new OscoreSecurityContext({ masterSecret, senderId: fromHex('aa'), recipientIds: [fromHex(clientId)], name }, new VolatileSequence()),
  };
}

const client1 = pair('0102030405060708090a0b0c0d0e0f10', '01', 'client1');
const rs1Channel = pair('2122232425262728292a2b2c2d2e2f30', '21', 'rs1');
const asLog: string[] = [];
let asServer: CoapServer;
let rsServer: CoapServer;
let asUri: string;
let introspectUri: string;
let rsOrigin: string;
const clients: CoapClient[] = [];

function newClient(): CoapClient {
  const client = new CoapClient();
  clients.push(client);
  return client;
}

before(async () => {
  asServer = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new OscoreServerSecurity([client1.server, rs1Channel.server]) });
  const as = new AuthorizationServer({
    issuer: 'as',
    audiences: [
      { name: 'rs1', key: RS1_KEY, scopes: ['read', 'write'], profile: 'coap_oscore', lifetimeSeconds: 600 },
      { name: 'rs2', key: RS2_KEY, scopes: ['read'], profile: 'coap_oscore' },
    ],
    clients: [{ name: 'client1', grants: new Map([['rs1', ['read']], ['rs2', ['read']]]) }],
    state: new MemoryAsState(),
    now,
  });
  as.onDecision = (line) => asLog.push(line);
  bindAuthorizationServer(asServer, as);
  asUri = `coap://${peerKey(asServer.address())}/token`;
  introspectUri = `coap://${peerKey(asServer.address())}/introspect`;
  rsServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  // The RS holds no key of the AS: every token is introspected.
  const rs = AceResourceServer.attach(rsServer, {
    audiences: ['rs1'],
    tokenKeys: [],
    scopes: ['read', 'write'],
    issuer: 'as',
    now,
    introspection: { client: newClient(), uri: introspectUri, security: new OscoreClientSecurity(rs1Channel.client) },
  });
  rsServer.resource('/value', rs.guard({ GET: 'read' }, { GET: () => ({ code: ResponseCode.Content, payload: 'introspected' }) }));
  rsOrigin = `coap://${peerKey(rsServer.address())}`;
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await asServer.close();
  await rsServer.close();
});

async function token(audience: string): Promise<Uint8Array> {
  const response = await newClient().request({ method: 'POST', uri: asUri, payload: encodeAceMap([[AceParam.audience, audience]]), contentFormat: ContentFormat.AceCbor, security: new OscoreClientSecurity(client1.client) });
  assert.equal(response.code, ResponseCode.Created);
  return decodeAceMap(response.payload).get(AceParam.access_token) as Uint8Array;
}

async function introspect(bytes: Uint8Array, security = new OscoreClientSecurity(rs1Channel.client)) {
  const response = await newClient().request({ method: 'POST', uri: introspectUri, payload: encodeAceMap([[AceParam.token, bytes]]), contentFormat: ContentFormat.AceCbor, security });
  return { code: response.code, map: decodeAceMap(response.payload) };
}

test('/introspect: an RS learns the claims of its active token; another audience\'s, an expired or a forged one is inactive', async () => {
  const mine = await token('rs1');
  const active = await introspect(mine);
  assert.equal(active.code, ResponseCode.Created);
  assert.equal(active.map.get(AceParam.active), true);
  assert.equal(active.map.get(Claim.aud), 'rs1');
  assert.equal(active.map.get(Claim.scope), 'read');
  assert.ok(active.map.has(Claim.cnf));
  const theirs = await introspect(await token('rs2'));
  assert.deepEqual([...theirs.map], [[AceParam.active, false]], '§5.9.2: an inactive token, nothing else about it');
  const forged = Uint8Array.from(mine);
  forged[forged.length - 1]! ^= 1;
  assert.equal((await introspect(forged)).map.get(AceParam.active), false);
  assert.equal((await introspect(fromHex('00'))).map.get(AceParam.active), false);
  clock += 601;
  assert.equal((await introspect(mine)).map.get(AceParam.active), false, 'expired');
  clock -= 601;
});

test('/introspect: only authenticated resource servers (a client is not one; no OSCORE is no one)', async () => {
  const mine = await token('rs1');
  const byClient = await introspect(mine, new OscoreClientSecurity(client1.client));
  assert.equal(byClient.code, ResponseCode.Unauthorized);
  assert.equal(byClient.map.get(AceParam.error), 2, 'invalid_client');
  const plain = await newClient().request({ method: 'POST', uri: introspectUri, payload: encodeAceMap([[AceParam.token, mine]]), contentFormat: ContentFormat.AceCbor, security: PLAIN });
  assert.equal(plain.code, ResponseCode.Unauthorized);
});

test('an RS without the AS\'s key introspects posted tokens: the client\'s flow works unchanged', async () => {
  const client = newClient();
  const ace = new AceClientSecurity({ client, asUri, asSecurity: new OscoreClientSecurity(client1.client), rsOrigin, now, audience: 'rs1' });
  const response = await client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace });
  assert.equal(response.code, ResponseCode.Content);
  assert.equal(response.text(), 'introspected');
  assert.ok(asLog.some((line) => /introspection by rs1: active/.test(line)));
});

test('an RS introspecting a token the AS calls inactive refuses it with 4.01', async () => {
  const client = newClient();
  const ace = new AceClientSecurity({ client, asUri, asSecurity: new OscoreClientSecurity(client1.client), rsOrigin, now, audience: 'rs2' });
  await assert.rejects(client.request({ method: 'GET', uri: `${rsOrigin}/value`, security: ace }), (e: unknown) => e instanceof AceClientError && /4\.01/.test(e.message));
  const forged = sealToken({ aud: 'rs1', exp: clock + 60, scope: 'read', cnf: { osc: { id: fromHex('77'), ms: fromHex('000102030405060708090a0b0c0d0e0f') } } }, { kid: RS1_KEY.kid, key: fromHex('ffffffffffffffffffffffffffffffff') });
  const post = await newClient().request({ method: 'POST', uri: `${rsOrigin}/authz-info`, payload: encodeAceMap([[AceParam.access_token, forged], [AceParam.nonce1, fromHex('0102030405060708')], [AceParam.ace_client_recipientid, fromHex('07')]]), contentFormat: ContentFormat.AceCbor, security: PLAIN });
  assert.equal(post.code, ResponseCode.Unauthorized);
  assert.match(post.text(), /not active/);
});
