import { CoapClient, CoapServer, ResponseCode, type RouteHop } from 'coapsec';
import { coseKeyFromKeyObject, encodeCcs, generatePrivateKey, CoseCurve } from 'coapsec/cose';
import { ccsCredential, CredentialStore } from 'coapsec/edhoc';
import { EdhocClient, EdhocServer } from 'coapsec/edhoc-coap';
import { ForwardProxy } from 'coapsec/proxy';

// Static DH keys (method 3, suite 2) and CCSs: the client, two proxies and the origin server.
function party(name: string, kid: number) {
  const key = generatePrivateKey(CoseCurve.P256);
  const ccs = encodeCcs({ sub: name, coseKey: coseKeyFromKeyObject(key, { kid: Uint8Array.of(kid) }) });
  return { ccs, credential: ccsCredential(ccs, key) };
}
const me = party('client', 0x0a);
const names = ['proxy-1', 'proxy-2', 'server'];
const parties = names.map((name, i) => party(name, i + 1));

// Every node is an EDHOC Responder and has no other key; the proxies forward, the last serves.
const nodes: CoapServer[] = [];
const upstreams: CoapClient[] = [];
for (const [i, { credential }] of parties.entries()) {
  const node = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  EdhocServer.attach(node, { responder: { suites: [2], credentials: [credential], peers: new CredentialStore().addCcs(me.ccs) } });
  if (i < 2) {
    const upstream = new CoapClient({ bindIpv4: '127.0.0.1' });
    new ForwardProxy(node, { upstream, allowDestinations: ['127.0.0.1'] });
    upstreams.push(upstream);
  }
  else node.resource('/alarm_status', { GET: () => ({ code: ResponseCode.Content, payload: '0' }) });
  nodes.push(node);
}
const uris = nodes.map((node) => `coap://127.0.0.1:${node.address().port}`);

// The client: one EDHOC-made layer per proxy, the route to each node being the proxies before
// it, and end-to-end OSCORE with the server, also from EDHOC.
const trusted = new CredentialStore();
for (const { ccs } of parties) trusted.addCcs(ccs);
const client: CoapClient = new CoapClient({
  via: (uri) => {
    const position = uris.findIndex((node) => uri.startsWith(`${node}/`));
    return position > 0 ? hops.slice(0, position) : undefined;
  },
  security: (uri) => (uri.startsWith(uris[2]!) ? edhoc.securityFor(uri) : undefined),
});
const edhoc = new EdhocClient(client, { initiator: { method: 3, suites: [2], credential: me.credential, peers: trusted } });
const hops: RouteHop[] = uris.slice(0, 2).map((uri) => ({ uri, security: edhoc.securityFor(uri)! }));

// EDHOC with proxy-1, with proxy-2 through it, with the server through both (each message_3
// travelling with the next run's message_1, RFC 9668), then the GET itself: three OSCORE layers.
const response = await client.get(`${uris[2]}/alarm_status`);
console.log(response.status, response.text());
console.log(response.context.oscore?.map((layer) => layer.peer).join(' > '));
await client.close();
for (const closable of [...upstreams, ...nodes]) await closable.close();
