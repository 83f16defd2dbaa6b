import { CoapClient, CoapServer, ResponseCode } from 'coapsec';
import { ForwardProxy } from 'coapsec/proxy';
import { SCHEMES } from 'coapsec/transport';

// A UDP origin, and a forward proxy that its clients reach over WebSockets (coap+ws, RFC 8323).
const origin = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
origin.resource('/temp', { GET: () => ({ code: ResponseCode.Content, payload: '21.5' }) });
const server = await CoapServer.listen({ scheme: 'coap+ws', host: '127.0.0.1', port: 0 }); // or coap+tcp, coaps+tcp (tls: ...)
const upstream = new CoapClient(); // each upstream leg takes the transport of the target's scheme
const proxy = new ForwardProxy(server, { upstream, allowDestinations: ['127.0.0.1'] });

const client = new CoapClient({ proxy: `coap+ws://127.0.0.1:${server.address().port}` });
const response = await client.get(`coap://127.0.0.1:${origin.address().port}/temp`);
console.log(response.status, response.text(), `(${SCHEMES.get('coap+ws')!.carrier} → ${SCHEMES.get('coap')!.carrier})`);
await client.close();
await proxy.close();
await server.close();
await upstream.close();
await origin.close();
