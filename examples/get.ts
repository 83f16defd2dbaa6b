import { CoapClient, CoapServer, ResponseCode } from 'coapsec';

const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 }); // port 0: any free port
server.resource('/temp', { GET: () => ({ code: ResponseCode.Content, payload: '21.5', maxAge: 30 }) }, { rt: 'temperature' });
const { port } = server.address();

const client = new CoapClient();
const response = await client.get(`coap://127.0.0.1:${port}/temp`);
console.log(response.status, response.text()); // 2.05 Content 21.5
await client.close();
await server.close();
