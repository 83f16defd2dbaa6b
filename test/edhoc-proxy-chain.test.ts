/**
 * EDHOC with OSCORE-capable proxies (draft-ietf-core-oscore-capable-proxies §5, Appendix B.4/B.5),
 * on real UDP sockets, with no pre-shared secret anywhere: every proxy and the origin are EDHOC
 * Responders; the client runs EDHOC with the first proxy (its /.well-known/edhoc addressed without
 * Proxy-Uri), then with each next one through those before it, and finally with the origin through
 * the whole chain. With the EDHOC + OSCORE request (RFC 9668) each run's message_3 travels with
 * the first protected request through that hop — the message_1 of the next run (B.5), and at the
 * end the first GET — so each run costs one round trip less than the separate runs of B.4.
 * UDP relays in front of every node record each leg.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import type { RouteHop } from '../src/client/route.js';
import { ResponseCode } from '../src/coap/codes.js';
import { getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { parseCoapUri } from '../src/coap/uri.js';
import { coseKeyFromKeyObject, encodeCcs, generatePrivateKey, CoseCurve } from '../src/cose/index.js';
import { ccsCredential, CredentialStore, type InitiatorConfig } from '../src/edhoc/index.js';
import { EdhocClient, EdhocRequestError, EdhocServer } from '../src/edhoc-coap/index.js';
import { decodeOscoreOption } from '../src/oscore/option.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { CoapServer } from '../src/server/server.js';
import { carried, requestsCarried, responsesCarried, udpRelay, type Relay } from './support/relays.js';

const closers: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

const SECRET = 'alarm status: 0, door closed';

/** A P-256 key (method 3: static DH on both sides, suite 2) and its CCS. */
function party(name: string, kid: number) {
  const key = generatePrivateKey(CoseCurve.P256);
  const ccs = encodeCcs({ sub: name, coseKey: coseKeyFromKeyObject(key, { kid: Uint8Array.of(kid) }) });
  return { ccs, credential: ccsCredential(ccs, key) };
}

const kidOf = (m: CoapMessage): string | undefined => {
  const option = getOption(m, OptionNumber.Oscore);
  const kid = option && decodeOscoreOption(option).kid;
  return kid && Buffer.from(kid).toString('hex');
};
const contains = (haystack: Uint8Array, needle: Uint8Array): boolean => Buffer.from(haystack).includes(Buffer.from(needle));

/**
 * Client → relay → proxy 1 → relay → … → proxy n → relay → origin. Nodes are configured with
 * EDHOC credentials only; the client's route names each proxy by its relay, with the layer EDHOC
 * makes for it.
 */
async function chain(proxyCount: number, combined: boolean, options: { maxContexts?: number; distrustAt?: number } = {}) {
  const client = party('client', 0x0a);
  const names = [...Array.from({ length: proxyCount }, (_, i) => `proxy-${i + 1}`), 'server'];
  const nodes = names.map((name, i) => ({ name, ...party(name, i + 1) }));
  const trusted = new CredentialStore();
  for (const node of nodes) trusted.addCcs(node.ccs);
  const initiator: InitiatorConfig = { method: 3, suites: [2], credential: client.credential, peers: trusted };

  // From the origin outwards: each node needs the address of the relay in front of the next.
  const servers: CoapServer[] = [];
  const edhocServers: EdhocServer[] = [];
  const relays: Relay[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
    closers.push(() => server.close());
    const edhoc = EdhocServer.attach(server, { responder: { suites: [2], credentials: [nodes[i]!.credential], peers: i === options.distrustAt ? new CredentialStore() : new CredentialStore().addCcs(client.ccs) }, ...(options.maxContexts !== undefined ? { maxContexts: options.maxContexts } : {}) });
    if (i === nodes.length - 1) {
      server.resource('/alarm_status', { GET: (request) => ({ code: ResponseCode.Content, payload: `${SECRET} (for ${request.context.oscore?.at(-1)?.peer})` }) });
    } else {
      const upstream = new CoapClient({ bindIpv4: '127.0.0.1' });
      closers.push(() => upstream.close());
      new ForwardProxy(server, { upstream, allowDestinations: ['127.0.0.1'] });
    }
    const relay = await udpRelay(server.address().port);
    closers.push(() => relay.close());
    servers.unshift(server);
    edhocServers.unshift(edhoc);
    relays.unshift(relay);
  }
  const uris = relays.map((relay) => `coap://127.0.0.1:${relay.port}`);
  const origin = uris.at(-1)!;

  const coap: CoapClient = new CoapClient({
    bindIpv4: '127.0.0.1',
    // A node's route is the proxies before it: none for the first proxy's own EDHOC resource.
    via: (uri) => {
      const port = parseCoapUri(uri).port;
      const position = uris.findIndex((u) => parseCoapUri(u).port === port);
      return position > 0 ? hops.slice(0, position) : undefined;
    },
    security: (uri) => (uri.startsWith(origin) ? edhocClient.securityFor(uri) : undefined),
  });
  closers.push(() => coap.close());
  const edhocClient = new EdhocClient(coap, { initiator, combined });
  const hops: RouteHop[] = uris.slice(0, -1).map((uri) => ({ uri, security: edhocClient.securityFor(uri)! }));
  return { coap, edhocClient, edhocServers, relays, uris, origin, initiator };
}

describe('EDHOC with OSCORE-capable proxies', () => {
  it('B.5: EDHOC with the proxy, then with the server through it, each message_3 combined with the next request', async () => {
    const t = await chain(1, true);
    const response = await t.coap.get(`${t.origin}/alarm_status`);
    assert.equal(response.code, ResponseCode.Content);
    assert.equal(response.text(), `${SECRET} (for client)`);
    assert.deepEqual(
      response.context.oscore?.map((layer) => layer.peer),
      ['proxy-1', 'server'],
      'two layers, each made by EDHOC',
    );
    assert.deepEqual(
      t.edhocServers.map((s) => s.contexts.length),
      [1, 1],
    );
    const [toProxy, toServer] = t.relays.map(requestsCarried) as [CoapMessage[], CoapMessage[]];
    assert.equal(toProxy.length, 3, 'B.5: message_1, COMB_REQ for P carrying message_1 for S, COMB_REQ for S');
    assert.equal(toServer.length, 2, 'message_1 for S, then the COMB_REQ for S');
    assert.equal(getOption(toProxy[0]!, OptionNumber.ProxyScheme), undefined, "the proxy's own EDHOC resource: no proxy options");
    assert.ok(getOption(toProxy[1]!, OptionNumber.Edhoc), 'B.5: EDHOC option outer for the proxy, which consumes it');
    assert.equal(getOption(toProxy[2]!, OptionNumber.Edhoc), undefined, "B.5: the server's EDHOC option is inside the C–P layer (Class E)");
    assert.ok(getOption(toServer[1]!, OptionNumber.Edhoc), 'and outer on the last leg');
    assert.equal(t.relays.some((r) => carried(r, SECRET)), false);
  });

  it('B.4: the same with separate EDHOC runs (message_3 in its own POST) costs one round trip per run more', async () => {
    const t = await chain(1, false);
    const response = await t.coap.get(`${t.origin}/alarm_status`);
    assert.equal(response.text(), `${SECRET} (for client)`);
    const [toProxy, toServer] = t.relays.map(requestsCarried) as [CoapMessage[], CoapMessage[]];
    assert.equal(toProxy.length, 5, 'B.4: message_1, message_3, then message_1, message_3 for S and the GET under C–P');
    assert.equal(toServer.length, 3);
    assert.equal(
      [...toProxy, ...toServer].some((m) => getOption(m, OptionNumber.Edhoc) !== undefined),
      false,
    );
  });

  it('the chain of proxies: EDHOC with P1, with P2 through P1, with S through both, then a GET with three OSCORE layers', async () => {
    const t = await chain(2, true);
    const first = await t.coap.get(`${t.origin}/alarm_status`);
    assert.equal(first.text(), `${SECRET} (for client)`);
    // Leg C–P1: message_1 for P1; COMB_REQ for P1 + message_1 for P2; COMB_REQ for P2 + message_1
    // for S; COMB_REQ for S (the GET). Each run is completed in the message that starts the next,
    // and the EDHOC option is outer exactly on the leg to the node that consumes it.
    const edhocOuter = t.relays.map((r) => requestsCarried(r).map((m) => getOption(m, OptionNumber.Edhoc) !== undefined));
    assert.deepEqual(edhocOuter, [
      [false, true, false, false],
      [false, true, false],
      [false, true],
    ]);
    for (const relay of t.relays) relay.passed.length = 0;

    const response = await t.coap.get(`${t.origin}/alarm_status`);
    assert.equal(response.text(), `${SECRET} (for client)`);
    assert.deepEqual(
      response.context.oscore?.map((layer) => layer.peer),
      ['proxy-1', 'proxy-2', 'server'],
      'three layers, each made by EDHOC',
    );
    assert.deepEqual(
      t.edhocServers.map((s) => s.contexts.length),
      [1, 1, 1],
      'one context per node, all from EDHOC',
    );

    // What each leg may see.
    const requests = t.relays.map(requestsCarried);
    const responses = t.relays.map(responsesCarried);
    const kids = t.uris.map((uri) => Buffer.from(t.edhocClient.securityFor(uri)!.context!.sender.senderId).toString('hex'));
    for (let leg = 0; leg < 3; leg++) {
      assert.equal(requests[leg]!.length, 1);
      assert.equal(responses[leg]!.length, 1);
      const request = requests[leg]![0]!;
      assert.equal(kidOf(request), kids[leg], `leg ${leg + 1} carries only the layer of the node it reaches`);
      assert.equal(getOption(request, OptionNumber.UriPath), undefined, 'the path is inside the end-to-end layer');
      assert.equal(getOption(request, OptionNumber.ProxyScheme), undefined, 'the next hop is named inside each layer');
      assert.equal(carried(t.relays[leg]!, SECRET), false, `leg ${leg + 1}: no plaintext`);
    }
    // The end-to-end ciphertext is the only payload on the last leg and appears on no other leg:
    // each proxy's layer was removed on its own leg and encrypted it on the legs before.
    const lastRequest = requests[2]![0]!;
    const lastResponse = responses[2]![0]!;
    for (let leg = 0; leg < 2; leg++) {
      assert.equal(contains(requests[leg]![0]!.payload, lastRequest.payload), false);
      assert.equal(contains(responses[leg]![0]!.payload, lastResponse.payload), false);
      assert.equal(contains(requests[leg]![0]!.payload, requests[leg + 1]![0]!.payload), false, `leg ${leg + 1} hides what leg ${leg + 2} carries`);
    }
    const visible = lastRequest.options.map((o) => o.number).filter((n) => n !== OptionNumber.UriHost && n !== OptionNumber.UriPort);
    assert.deepEqual(visible, [OptionNumber.Oscore, OptionNumber.HopLimit], 'last leg: the OSCORE option, the Hop-Limit the proxies count down (RFC 8768) and the ciphertext');
  });

  it('a proxy that lost the C–P context: the client runs EDHOC with it again and repeats the request once', async () => {
    // One context per node: another client's EDHOC run with the proxy evicts ours.
    const t = await chain(1, true, { maxContexts: 1 });
    assert.equal((await t.coap.get(`${t.origin}/alarm_status`)).text(), `${SECRET} (for client)`);
    const proxySecurity = t.edhocClient.securityFor(t.uris[0]!)!;
    const before = proxySecurity.context!;
    const other = new CoapClient({ bindIpv4: '127.0.0.1' });
    closers.push(() => other.close());
    await new EdhocClient(other, { initiator: t.initiator }).securityFor(t.uris[0]!)!.establish();

    const response = await t.coap.get(`${t.origin}/alarm_status`);
    assert.equal(response.text(), `${SECRET} (for client)`);
    assert.equal(proxySecurity.handshakes, 2, 'a second EDHOC run with the proxy');
    assert.notEqual(proxySecurity.context, before);
    assert.equal(t.edhocClient.securityFor(t.origin)!.handshakes, 1, 'the end-to-end context with the server is kept');
  });

  it("a proxy in the middle refuses the client's credential: its EDHOC error comes back through the first proxy's layer", async () => {
    const t = await chain(2, true, { distrustAt: 1 });
    await assert.rejects(t.coap.get(`${t.origin}/alarm_status`), (e: unknown) => {
      assert.ok(e instanceof EdhocRequestError, String(e));
      assert.ok(e.peerError !== undefined, "proxy-2's EDHOC error message, read by the client");
      return true;
    });
    assert.deepEqual(
      t.edhocServers.map((s) => s.contexts.length),
      [1, 0, 0],
      'no context with proxy-2, and the server never reached',
    );
    assert.equal(requestsCarried(t.relays[2]!).length, 0);
  });
});
