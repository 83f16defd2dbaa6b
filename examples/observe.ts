import { CoapClient, CoapServer, ResponseCode } from 'coapsec';

let temperature = 20;
const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
server.resource('/temp', { GET: () => ({ code: ResponseCode.Content, payload: String(temperature) }) }, { observable: true });

const client = new CoapClient();
const observation = await client.observe(`coap://127.0.0.1:${server.address().port}/temp`);
let received = 0;
for await (const notification of observation) {
  console.log(notification.text()); // 20, then 21, 22
  if (++received === 3) break; // leaving the loop deregisters (RFC 7641 §3.6)
  temperature++;
  server.changed('/temp'); // notifies every observer (RFC 7641 §4.2)
}
await client.close();
await server.close();
