/**
 * EDHOC and the EDHOC + OSCORE request (RFC 9668) end to end through an untrusted forward proxy
 * (RFC 7252 §5.7), on real UDP sockets: the EDHOC POSTs to the origin's /.well-known/edhoc and
 * the combined request go through the proxy by Proxy-Scheme/Uri-Host, and the proxy forwards the
 * EDHOC option (RFC 9668 §3.1: critical, Safe-to-Forward, NoCacheKey) without reading anything.
 * UDP relays on both legs record what each one carried.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { getOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { EdhocClient, EdhocServer } from '../src/edhoc-coap/index.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { CoapServer } from '../src/server/server.js';
import { edhocPeers } from './support/edhoc-peers.js';
import { carried, requestsCarried, udpRelay } from './support/relays.js';

const closers: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

const SECRET = 'reading 21.5 C, valve open';

describe('EDHOC through an untrusted forward proxy', () => {
  it('EDHOC and the combined request pass the proxy, which forwards the EDHOC option and reads nothing', async () => {
    const peers = edhocPeers(3, 2);
    const origin = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
    closers.push(() => origin.close());
    origin.resource('/reading', { GET: (request) => ({ code: ResponseCode.Content, payload: `${SECRET} for ${request.context.oscore?.[0]?.peer ?? 'stranger'}` }) });
    const edhocServer = EdhocServer.attach(origin, { responder: peers.responder });
    const originLeg = await udpRelay(origin.address().port);
    closers.push(() => originLeg.close());

    const proxyServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
    closers.push(() => proxyServer.close());
    const upstream = new CoapClient({ bindIpv4: '127.0.0.1' });
    closers.push(() => upstream.close());
    new ForwardProxy(proxyServer, { upstream, allowDestinations: ['127.0.0.1'] });
    const clientLeg = await udpRelay(proxyServer.address().port);
    closers.push(() => clientLeg.close());

    const client: CoapClient = new CoapClient({ bindIpv4: '127.0.0.1', proxy: `coap://127.0.0.1:${clientLeg.port}`, security: (uri) => edhoc.securityFor(uri) });
    closers.push(() => client.close());
    const edhoc = new EdhocClient(client, { initiator: peers.initiator });
    const target = `coap://127.0.0.1:${originLeg.port}`;

    const response = await client.get(`${target}/reading`);
    assert.equal(response.text(), `${SECRET} for client`);
    assert.equal(response.context.oscore?.[0]?.peer, 'server', 'the origin authenticated by EDHOC through the proxy');
    assert.equal(edhoc.securityFor(target)!.handshakes, 1);
    assert.equal(edhocServer.contexts.length, 1);

    // Leg client→proxy: message_1 (Proxy-Scheme), then the combined request; the same two upstream.
    const fromClient = requestsCarried(clientLeg);
    const toOrigin = requestsCarried(originLeg);
    assert.equal(fromClient.length, 2, 'message_1, then the EDHOC + OSCORE request: no separate message_3 POST');
    assert.equal(toOrigin.length, 2);
    assert.ok(getOption(fromClient[0]!, OptionNumber.ProxyScheme), 'the EDHOC POST is addressed to the origin through the proxy');
    for (const leg of [fromClient[1]!, toOrigin[1]!]) {
      assert.ok(getOption(leg, OptionNumber.Edhoc), 'the EDHOC option is outer and forwarded (Class U, Safe-to-Forward)');
      assert.ok(getOption(leg, OptionNumber.Oscore));
    }
    assert.equal(getOption(toOrigin[1]!, OptionNumber.ProxyScheme), undefined);
    assert.deepEqual(toOrigin[1]!.payload, fromClient[1]!.payload, 'message_3 and the ciphertext forwarded unchanged');
    for (const leg of [clientLeg, originLeg]) assert.equal(carried(leg, SECRET), false, 'the payload travels encrypted on every leg');
  });
});
