/**
 * KUDOS on each hop of a nested OSCORE route independently (draft-ietf-core-oscore-key-update
 * with draft-ietf-core-oscore-capable-proxies §2.3): the client shares C–P with an OSCORE-capable
 * forward proxy and C–S with the origin; each context runs its own KUDOS (the proxy's own
 * /.well-known/kudos for C–P, the origin's through the proxy for C–S), over loopback UDP, and an
 * update of one leaves the other untouched while routed requests keep working.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import type { RouteHop } from '../src/client/route.js';
import { KudosClientPeer } from '../src/kudos/client.js';
import { KudosFileStorage, KudosSession } from '../src/kudos/index.js';
import { KudosServerSecurity } from '../src/kudos/server.js';
import { kudosResource } from '../src/kudos/well-known.js';
import { requesterFor } from '../src/oscore/requester.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { CoapServer } from '../src/server/server.js';
import { CLIENT_IDENTITY, MASTER_SALT, MASTER_SECRET, SERVER_IDENTITY, NonceLedger, hex, sameContext, tempDirectory } from './kudos-helpers.js';

const CP_SECRET = Uint8Array.from(Buffer.from('c0'.repeat(16), 'hex'));
const CP_CLIENT: typeof CLIENT_IDENTITY = { senderId: Uint8Array.of(0x20), recipientId: Uint8Array.of(0x02), aead: 10, hkdf: -10 };
const CP_PROXY: typeof CLIENT_IDENTITY = { senderId: Uint8Array.of(0x02), recipientId: Uint8Array.of(0x20), aead: 10, hkdf: -10 };

test('C–P and C–S are updated separately, each by its own KUDOS run, with routed requests before, between and after', async (t) => {
  const dir = tempDirectory('nested');
  const ledger = new NonceLedger();
  const open = (name: string, identity: typeof CLIENT_IDENTITY, secret: Uint8Array, salt?: Uint8Array) =>
    KudosSession.open({ identity, storage: new KudosFileStorage(`${dir.path}/${name}`, identity), onEncrypt: ledger.record }, { masterSecret: secret, ...(salt ? { masterSalt: salt } : {}) });
  const cs = { client: open('cs-client', CLIENT_IDENTITY, MASTER_SECRET, MASTER_SALT), origin: open('cs-origin', SERVER_IDENTITY, MASTER_SECRET, MASTER_SALT) };
  const cp = { client: open('cp-client', CP_CLIENT, CP_SECRET), proxy: open('cp-proxy', CP_PROXY, CP_SECRET) };

  const origin = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new KudosServerSecurity([{ name: 'client', session: cs.origin, recipientId: CLIENT_IDENTITY.senderId }]) });
  origin.add(kudosResource());
  origin.resource('/echo', { POST: (r) => ({ code: ResponseCode.Changed, payload: `${r.payload.toString()} via [${(r.context.oscore ?? []).map((l) => l.peer).join(',')}]` }) }, { requireOscore: true });
  const proxyServer = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new KudosServerSecurity([{ name: 'client', session: cp.proxy, recipientId: CP_CLIENT.senderId }]) });
  proxyServer.add(kudosResource());
  const upstream = new CoapClient();
  new ForwardProxy(proxyServer, { upstream, allowDestinations: ['127.0.0.1'] });
  const client = new CoapClient();
  t.after(async () => {
    await client.close();
    await upstream.close();
    await proxyServer.close();
    await origin.close();
    dir.remove();
  });

  const originUri = `coap://127.0.0.1:${origin.address().port}`;
  const proxyUri = `coap://127.0.0.1:${proxyServer.address().port}`;
  const cpContext = new OscoreSecurityContext({ masterSecret: CP_SECRET, senderId: CP_CLIENT.senderId, recipientIds: [CP_CLIENT.recipientId], name: 'proxy' }, new VolatileSequence());
  const csContext = new OscoreSecurityContext({ masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, senderId: CLIENT_IDENTITY.senderId, recipientIds: [CLIENT_IDENTITY.recipientId], name: 'origin' }, new VolatileSequence());
  const endToEnd = new OscoreClientSecurity(csContext);
  const via: RouteHop[] = [{ uri: proxyUri, context: cpContext }];
  const csPeer = new KudosClientPeer(cs.client, endToEnd.requester, { send: (security) => client.request({ method: 'POST', uri: `${originUri}/.well-known/kudos`, security, via }) });
  // The hop's KUDOS request is for the proxy itself: to its own resource, with the C–P layer only.
  const cpPeer = new KudosClientPeer(cp.client, requesterFor(cpContext), { send: (security) => client.request({ method: 'POST', uri: `${proxyUri}/.well-known/kudos`, security }) });

  const routed = async (payload: string): Promise<string> => (await client.request({ method: 'POST', uri: `${originUri}/echo`, payload, security: endToEnd, via })).payload.toString();
  const secrets = () => ({ cs: hex(cs.client.currentSecrets.masterSecret), cp: hex(cp.client.currentSecrets.masterSecret) });

  assert.equal(await routed('one'), 'one via [client]');
  const initial = secrets();

  await cpPeer.rekey();
  assert.equal(await routed('two'), 'two via [client]');
  const afterHop = secrets();
  assert.notEqual(afterHop.cp, initial.cp, 'C–P updated');
  assert.equal(afterHop.cs, initial.cs, 'C–S untouched');
  assert.ok(sameContext(cp.client, cp.proxy));
  assert.equal(cp.proxy.state, 'IDLE', 'the routed request confirmed C–P at the proxy');

  await csPeer.rekey();
  assert.equal(await routed('three'), 'three via [client]');
  const afterEnd = secrets();
  assert.notEqual(afterEnd.cs, afterHop.cs, 'C–S updated');
  assert.equal(afterEnd.cp, afterHop.cp, 'C–P untouched');
  assert.ok(sameContext(cs.client, cs.origin));
  assert.equal(cs.origin.state, 'IDLE');
  assert.deepEqual(ledger.reused, []);
});
