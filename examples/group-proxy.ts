import { CoapClient, CoapServer, OscoreSecurityContext, OscoreServerSecurity, ResponseCode, UdpTransport, VolatileSequence } from 'coapsec';
import { GroupClient, GroupProxyClient } from 'coapsec/group';
import { GroupContextStore, GroupManager, contextFromMemberFile } from 'coapsec/group-oscore';
import { GroupForwardProxy, GroupRelay, groupAllowList } from 'coapsec/proxy';

// Three members of the OSCORE group "lights" (the proxy is not one of them).
const gm = GroupManager.create({ name: 'lights' });
for (const name of ['client', 's1', 's2', 's3']) gm.addMember(name);
const servers: CoapServer[] = [];
for (const name of ['s1', 's2', 's3']) {
  const contexts = new GroupContextStore();
  contexts.install('lights', contextFromMemberFile(gm.memberFile(name)));
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, group: { contexts } });
  server.resource('/light', { GET: () => ({ code: ResponseCode.Content, payload: `${name}: on` }) });
  servers.push(server);
}

// The proxy authenticates alice by the OSCORE context it shares with her, and relays for her only.
const secret = Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex');
const toProxy = new OscoreSecurityContext({ masterSecret: secret, senderId: Buffer.from([1]), recipientIds: [Buffer.from([2])] }, new VolatileSequence());
const toAlice = new OscoreSecurityContext({ masterSecret: secret, senderId: Buffer.from([2]), recipientIds: [Buffer.from([1])], name: 'alice' }, new VolatileSequence());
const proxy = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new OscoreServerSecurity([toAlice]) });

// Its group leg: here a socket that copies each group request to every member (no IP multicast on
// loopback); on a real network, a MulticastClientTransport.
const socket = await UdpTransport.bind({ host: '127.0.0.1', port: 0 });
const groups = new GroupClient({
  transport: {
    scheme: 'coap',
    send: (data) => servers.forEach((s) => socket.send(data, s.address())),
    setHandler: (handler) => socket.setHandler(handler),
    localAddress: () => socket.localAddress(),
    close: () => socket.close(),
  },
});
const relay = new GroupRelay(proxy, { groups: () => groups, authorize: groupAllowList(['alice']) });
new GroupForwardProxy(proxy, relay);

// Alice: Group OSCORE end to end with the servers, inside her OSCORE layer for the proxy.
const client = new CoapClient();
const via = new GroupProxyClient({ endpoint: await client.endpoint(4), proxy: { uri: `coap://127.0.0.1:${proxy.address().port}`, context: toProxy } });
const member = contextFromMemberFile(gm.memberFile('client'));
const answers = await via.request({ uri: 'coap://224.0.1.187/light', timeout: 1500, security: { context: member } }).collect();
for (const answer of answers.sort((a, b) => (a.member?.name ?? '').localeCompare(b.member?.name ?? ''))) {
  const server = servers.findIndex((s) => s.address().port === answer.origin.port); // from Reply-From
  console.log(`${Buffer.from(answer.payload).toString()} (signed by ${answer.member?.name}, relayed from server ${server + 1})`);
}
await client.close();
await groups.close();
await Promise.all([proxy, ...servers].map((s) => s.close()));
