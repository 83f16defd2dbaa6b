import { CoapClient, CoapServer, ResponseCode } from 'coapsec';
import { coseKeyFromKeyObject, encodeCcs, generatePrivateKey, CoseCurve } from 'coapsec/cose';
import { ccsCredential, CredentialStore } from 'coapsec/edhoc';
import { EdhocClient, EdhocServer } from 'coapsec/edhoc-coap';

// Each side: a static DH key (method 3, suite 2 = P-256) and a CCS naming it with a kid.
const keyC = generatePrivateKey(CoseCurve.P256);
const keyS = generatePrivateKey(CoseCurve.P256);
const ccsC = encodeCcs({ sub: 'client', coseKey: coseKeyFromKeyObject(keyC, { kid: Uint8Array.of(0x0a) }) });
const ccsS = encodeCcs({ sub: 'server', coseKey: coseKeyFromKeyObject(keyS, { kid: Uint8Array.of(0x0b) }) });

// The server: /.well-known/edhoc, and every context EDHOC makes is one its OSCORE layer knows.
const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
server.resource('/secret', { GET: (request) => ({ code: ResponseCode.Content, payload: `hello ${request.context.oscore?.[0]?.peer}` }) }, { requireOscore: true });
const edhocServer = EdhocServer.attach(server, {
  responder: { suites: [2], credentials: [ccsCredential(ccsS, keyS)], peers: new CredentialStore().addCcs(ccsC) },
});

// The client: EDHOC runs by itself before the first request to a server, and message_3 travels
// inside that first OSCORE request (RFC 9668); again after the server lost the context.
const client: CoapClient = new CoapClient({ security: (uri) => edhoc.securityFor(uri) });
const edhoc = new EdhocClient(client, {
  initiator: { method: 3, suites: [2], credential: ccsCredential(ccsC, keyC), peers: new CredentialStore().addCcs(ccsS) },
});

const origin = `coap://127.0.0.1:${server.address().port}`;
const response = await client.get(`${origin}/secret`);
console.log(response.status, response.text()); // 2.05 Content hello client
console.log(`EDHOC sessions: ${edhoc.securityFor(origin)?.handshakes}, server contexts: ${edhocServer.contexts.length}`);
await client.close();
await server.close();
