import { CoapClient, CoapServer, ResponseCode } from 'coapsec';
import { DeterministicClientSecurity } from 'coapsec/group';
import { GroupContextStore, GroupManager, contextFromMemberFile } from 'coapsec/group-oscore';
import { ForwardProxy, ResponseCache } from 'coapsec/proxy';

// The Group Manager names the group's Deterministic Client before issuing the member files.
const gm = GroupManager.create({ name: 'firmware' });
gm.addDeterministicClient();
for (const name of ['origin', 'c1', 'c2', 'c3']) gm.addMember(name);

// The origin serves /fw to Deterministic Requests: a safe resource every member may read.
const contexts = new GroupContextStore();
contexts.install('firmware', contextFromMemberFile(gm.memberFile('origin')));
const origin = await CoapServer.listen({ host: '127.0.0.1', port: 0, group: { contexts } });
let served = 0;
origin.resource('/fw', { GET: () => ({ code: ResponseCode.Content, maxAge: 60, payload: `firmware v1 (request ${++served})` }) }, { deterministic: true });

// A caching forward proxy that holds no key of the group.
const proxyServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
const upstream = new CoapClient();
const proxy = new ForwardProxy(proxyServer, { upstream, cache: new ResponseCache({ maxBytes: 1 << 20, now: () => performance.now() }), allowDestinations: ['127.0.0.1'] });

// Three members ask through the proxy; each verifies the one cached response end to end.
const client = new CoapClient({ proxy: `coap://127.0.0.1:${proxyServer.address().port}` });
for (const name of ['c1', 'c2', 'c3']) {
  const security = new DeterministicClientSecurity(contextFromMemberFile(gm.memberFile(name)), { server: Buffer.from(gm.memberFile('origin').senderId, 'hex') });
  const response = await client.get(`coap://127.0.0.1:${origin.address().port}/fw`, { security });
  console.log(`${name}: ${response.text()}`);
}
console.log(`origin requests: ${served}, cache hits: ${proxy.stats.cacheHits}`);
await client.close();
await upstream.close();
await proxyServer.close();
await origin.close();
