import { CoapClient, CoapServer, ResponseCode } from 'coapsec';

// server.json and client.json: a matching pair of credentials files (docs/credentials.md). The
// client's context is chosen by its "match" URI pattern, which names host and port.
const port = Number(process.env.COAP_PORT ?? 5683);
const server = await CoapServer.listen({ host: '127.0.0.1', port, credentials: 'server.json' });
server.resource('/secret', { GET: (request) => ({ code: ResponseCode.Content, payload: `hello ${request.context.oscore?.[0]?.peer ?? 'nobody'}` }) }, { requireOscore: true });

const client = new CoapClient({ credentials: 'client.json' });
const response = await client.get(`coap://127.0.0.1:${port}/secret`); // OSCORE-protected (RFC 8613)
console.log(response.status, response.text()); // 2.05 Content hello alice
await client.close();
await server.close();
