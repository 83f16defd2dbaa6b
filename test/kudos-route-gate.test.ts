/**
 * §4.3.7 of draft-ietf-core-oscore-key-update on routes through proxies (RouteSecurity.admit):
 * while KUDOS runs on the end-to-end context of a route through an untrusted forward proxy, or on
 * the hop context (C–P) of a nested route, a request on that route waits in the peer's gate like a
 * direct one, and goes out once the update ended — so no non-KUDOS message leaves during it and
 * the only divergent message on the wire is the update's own.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMessage } from '../src/coap/codec.js';
import { ResponseCode } from '../src/coap/codes.js';
import { getOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import type { RouteHop } from '../src/client/route.js';
import { KudosClientPeer } from '../src/kudos/client.js';
import { KudosFileStorage, KudosSession } from '../src/kudos/index.js';
import { KudosServerSecurity } from '../src/kudos/server.js';
import { kudosResource } from '../src/kudos/well-known.js';
import { decodeOscoreOption } from '../src/oscore/option.js';
import { requesterFor } from '../src/oscore/requester.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { CoapServer } from '../src/server/server.js';
import { CLIENT_IDENTITY, MASTER_SALT, MASTER_SECRET, NonceLedger, SERVER_IDENTITY, sameContext, tempDirectory } from './kudos-helpers.js';
import { UdpRelay, type Datagram } from './kudos-relay.js';

const CP_SECRET = Uint8Array.from(Buffer.from('c1'.repeat(16), 'hex'));
const CP_CLIENT: typeof CLIENT_IDENTITY = { senderId: Uint8Array.of(0x20), recipientId: Uint8Array.of(0x02), aead: 10, hkdf: -10 };
const CP_PROXY: typeof CLIENT_IDENTITY = { senderId: Uint8Array.of(0x02), recipientId: Uint8Array.of(0x20), aead: 10, hkdf: -10 };

/** The outermost OSCORE option of a datagram from the client: divergent KUDOS messages have 'd' set and z = 0. */
const isDivergent = (d: Datagram): boolean => {
  const value = getOption(decodeMessage(d.data), OptionNumber.Oscore);
  const kudos = value === undefined ? undefined : decodeOscoreOption(value).kudos;
  return kudos !== undefined && (kudos.x & 0x40) === 0;
};

async function world(t: { after: (fn: () => Promise<void>) => void }, hopContext: boolean) {
  const dir = tempDirectory('route-gate');
  const ledger = new NonceLedger();
  const open = (name: string, identity: typeof CLIENT_IDENTITY, secret: Uint8Array, salt?: Uint8Array) =>
    KudosSession.open({ identity, storage: new KudosFileStorage(`${dir.path}/${name}`, identity), onEncrypt: ledger.record }, { masterSecret: secret, ...(salt ? { masterSalt: salt } : {}) });
  const cs = { client: open('cs-client', CLIENT_IDENTITY, MASTER_SECRET, MASTER_SALT), origin: open('cs-origin', SERVER_IDENTITY, MASTER_SECRET, MASTER_SALT) };
  const cp = { client: open('cp-client', CP_CLIENT, CP_SECRET), proxy: open('cp-proxy', CP_PROXY, CP_SECRET) };
  const log: string[] = [];
  const origin = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new KudosServerSecurity([{ name: 'client', session: cs.origin, recipientId: CLIENT_IDENTITY.senderId }]) });
  origin.add(kudosResource());
  origin.resource('/echo', { POST: (r) => (log.push(r.payload.toString()), { code: ResponseCode.Changed, payload: r.payload }) }, { requireOscore: true });
  const proxyServer = await CoapServer.listen({ host: '127.0.0.1', port: 0, ...(hopContext ? { security: new KudosServerSecurity([{ name: 'client', session: cp.proxy, recipientId: CP_CLIENT.senderId }]) } : {}) });
  if (hopContext) proxyServer.add(kudosResource());
  const upstream = new CoapClient();
  new ForwardProxy(proxyServer, { upstream, allowDestinations: ['127.0.0.1'] });
  // The client reaches the proxy through a relay that records what it sends.
  const relay = await UdpRelay.start(proxyServer.address());
  const client = new CoapClient();
  t.after(async () => {
    await client.close();
    relay.close();
    await upstream.close();
    await proxyServer.close();
    await origin.close();
    dir.remove();
  });
  const originUri = `coap://127.0.0.1:${origin.address().port}`;
  const proxyUri = `coap://127.0.0.1:${relay.port}`;
  const cpContext = new OscoreSecurityContext({ masterSecret: CP_SECRET, senderId: CP_CLIENT.senderId, recipientIds: [CP_CLIENT.recipientId], name: 'proxy' }, new VolatileSequence());
  const csContext = new OscoreSecurityContext({ masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, senderId: CLIENT_IDENTITY.senderId, recipientIds: [CLIENT_IDENTITY.recipientId], name: 'origin' }, new VolatileSequence());
  const endToEnd = new OscoreClientSecurity(csContext);
  const via: RouteHop[] = [hopContext ? { uri: proxyUri, context: cpContext } : { uri: proxyUri }];
  const csPeer = new KudosClientPeer(cs.client, endToEnd.requester, { send: (security) => client.request({ method: 'POST', uri: `${originUri}/.well-known/kudos`, security, via }) });
  const cpPeer = new KudosClientPeer(cp.client, requesterFor(cpContext), { send: (security) => client.request({ method: 'POST', uri: `${proxyUri}/.well-known/kudos`, security }) });
  const routed = (payload: string) => client.request({ method: 'POST', uri: `${originUri}/echo`, payload, security: endToEnd, via }).then((r) => r.payload.toString());
  return { cs, cp, csPeer, cpPeer, routed, relay, log, ledger };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

test('a route through an untrusted forward proxy: a request made while the end-to-end context updates waits for the update', async (t) => {
  const w = await world(t, false);
  assert.equal(await w.routed('before'), 'before');
  const rekey = w.csPeer.rekey();
  const during = w.routed('during');
  await tick();
  assert.equal(w.csPeer.gate.held, 1, 'the routed request waits in the end-to-end peer\'s gate');
  await rekey;
  assert.equal(await during, 'during');
  assert.deepEqual(w.log, ['before', 'during']);
  assert.equal(w.relay.datagrams.filter((d) => d.from === 'client' && isDivergent(d)).length, 1, 'the update\'s own divergent request is the only one');
  assert.ok(sameContext(w.cs.client, w.cs.origin));
  assert.equal(w.cs.origin.state, 'IDLE', 'the held request, under CTX_NEW, confirmed the key');
  assert.deepEqual(w.ledger.reused, []);
});

test('a nested route: a request made while the hop context (C–P) updates waits for that update, and one made while C–S updates waits for that one', async (t) => {
  const w = await world(t, true);
  assert.equal(await w.routed('before'), 'before');
  const hopUpdate = w.cpPeer.rekey();
  const duringHop = w.routed('during C–P');
  await tick();
  assert.equal(w.cpPeer.gate.held, 1, 'held by the C–P peer\'s gate');
  await hopUpdate;
  assert.equal(await duringHop, 'during C–P');
  assert.ok(sameContext(w.cp.client, w.cp.proxy));
  assert.equal(w.cp.proxy.state, 'IDLE');

  const endUpdate = w.csPeer.rekey();
  const duringEnd = w.routed('during C–S');
  await tick();
  assert.equal(w.csPeer.gate.held, 1, 'held by the C–S peer\'s gate');
  await endUpdate;
  assert.equal(await duringEnd, 'during C–S');
  assert.ok(sameContext(w.cs.client, w.cs.origin));
  assert.deepEqual(w.log, ['before', 'during C–P', 'during C–S']);
  // On the client–proxy wire the only divergent outer layer is C–P's own update (C–S's travels inside the C–P layer).
  assert.equal(w.relay.datagrams.filter((d) => d.from === 'client' && isDivergent(d)).length, 1);
  assert.deepEqual(w.ledger.reused, []);
});
