import { CoapClient, CoapServer, OscoreServerSecurity, ResponseCode } from 'coapsec';
import { loadCredentials } from 'coapsec/credentials';
import { StoreContexts, openContextStore } from 'coapsec/store';

// A folder here (the file store); redis://HOST:PORT when several servers share it (docs/scale-out.md).
const store = await openContextStore(process.env.COAPSEC_STORE ?? 'store');
// Provisioning: one write per device, seen by every server on the store at the device's next request.
for (const { name, context } of loadCredentials('server.json').recipients) await store.putContext({ name, context });

const port = Number(process.env.COAP_PORT ?? 5683);
const security = new OscoreServerSecurity([], { contextSource: new StoreContexts(store) });
const server = await CoapServer.listen({ host: '127.0.0.1', port, security });
server.resource('/secret', { GET: (request) => ({ code: ResponseCode.Content, payload: `hello ${request.context.oscore?.[0]?.peer ?? 'nobody'}` }) }, { requireOscore: true });

// The server fetches alice's context on her first request and challenges it with Echo (RFC 8613
// Appendix B.1.2); the client answers the challenge on its own.
const client = new CoapClient({ credentials: 'client.json' });
const response = await client.get(`coap://127.0.0.1:${port}/secret`);
console.log(response.status, response.text()); // 2.05 Content hello alice
await client.close();
await server.close();
await store.close();
