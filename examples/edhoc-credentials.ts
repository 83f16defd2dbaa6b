import { CoapClient, CoapServer, loadCredentials, ResponseCode } from 'coapsec';
import { edhocInitiatorConfig, edhocResponderConfig } from 'coapsec/credentials';
import { EdhocClient, EdhocServer } from 'coapsec/edhoc-coap';

// gateway.json and alice.json: identities from `coapsec keygen`, each listing the other in
// edhoc.peers (docs/credentials.md). This is what `coapsec serve` and `coapsec get` do with them.
const gateway = loadCredentials('gateway.json').edhoc!;
const alice = loadCredentials('alice.json').edhoc!;

const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
server.resource('/whoami', { GET: (request) => ({ code: ResponseCode.Content, payload: `hello ${request.context.oscore?.[0]?.peer}` }) }, { requireOscore: true });
EdhocServer.attach(server, { responder: edhocResponderConfig(gateway) });

const uri = `coap://127.0.0.1:${server.address().port}/whoami`;
const client: CoapClient = new CoapClient({ security: (target) => edhoc.securityFor(target) });
// The Initiator accepts only a server whose edhoc.peers entry grants this URI.
const edhoc = new EdhocClient(client, { initiator: edhocInitiatorConfig(alice, uri) });

const response = await client.get(uri);
console.log(response.status, response.text()); // 2.05 Content hello alice
await client.close();
await server.close();
