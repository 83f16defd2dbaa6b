import { CoapClient, CoapServer, ResponseCode } from 'coapsec';
import { ReverseProxy, allowList } from 'coapsec/proxy';

// An origin (a device) and a reverse proxy in front of it, both on loopback.
const origin = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
origin.resource('/temp', { GET: () => ({ code: ResponseCode.Content, payload: '21.5' }) });
const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
const upstream = new CoapClient();
const proxy = new ReverseProxy(server, {
  upstream,
  mappings: [{ prefix: '/dev1', target: `coap://127.0.0.1:${origin.address().port}/` }], // or { host: 'dev.example', ... }; context: an OSCORE layer to the origin
  ...(process.env.ONLY_ALICE ? { authorize: allowList(['alice']) } : {}), // optional: draft-ietf-core-oscore-capable-proxies §2.4 step 4
});

const client = new CoapClient();
const response = await client.get(`coap://127.0.0.1:${server.address().port}/dev1/temp`);
console.log(response.status, response.text());
await client.close();
await proxy.close();
await upstream.close();
await server.close();
await origin.close();
