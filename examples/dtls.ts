import { CoapClient, CoapServer, ResponseCode } from 'coapsec';

const psk = { identity: 'client1', key: 'secretPSK' };
const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, dtls: { psk } });
server.resource('/whoami', { GET: (request) => ({ code: ResponseCode.Content, payload: request.context.security?.identity ?? 'anonymous' }) });

const client = new CoapClient({ dtls: { psk } });
const response = await client.get(`coaps://127.0.0.1:${server.address().port}/whoami`); // DTLS 1.2
console.log(response.status, response.text(), response.context.security?.cipherSuite); // 2.05 Content client1 TLS_PSK_WITH_AES_128_CCM_8
await client.close();
await server.close();
