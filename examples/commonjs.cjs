// coapsec is an ES module: from CommonJS, load it with a dynamic import().
async function main() {
  const { CoapClient, CoapServer, ResponseCode } = await import('coapsec');
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  server.resource('/hello', { GET: () => ({ code: ResponseCode.Content, payload: 'hi' }) });
  const client = new CoapClient();
  const response = await client.get(`coap://127.0.0.1:${server.address().port}/hello`);
  console.log(response.status, response.text()); // 2.05 Content hi
  await client.close();
  await server.close();
}
main();
