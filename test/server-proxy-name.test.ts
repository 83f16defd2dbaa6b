/**
 * ServerOptions.proxyNames (serve --proxy-name): a proxied request naming the server itself is
 * served as if sent directly, with Proxy-Uri or with Proxy-Scheme + Uri-Host (RFC 7252 §5.7.2);
 * any other proxied request still gets 5.05. And onRequestLog sees each response once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { encodeString } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapServer, type RequestLogEntry } from '../src/server/server.js';

let server: CoapServer;
let direct: string;
const logged: RequestLogEntry[] = [];

before(async () => {
  server = await CoapServer.listen({ host: '127.0.0.1', port: 0, proxyNames: ['origin.example', '[2001:db8::1]:7000'], onRequestLog: (entry) => logged.push(entry) });
  server.resource('/hello', { GET: (req) => ({ code: ResponseCode.Content, payload: `hello ${req.query.join('&')}` }) });
  direct = `coap://127.0.0.1:${server.address().port}`;
});

after(async () => {
  await server.close();
});

test('Proxy-Scheme with Uri-Host naming the server: served; another host: 5.05', async () => {
  const viaServer = new CoapClient({ proxy: direct });
  try {
    assert.equal((await viaServer.get('coap://origin.example/hello?a=1', { timeout: 5000 })).text(), 'hello a=1');
    assert.equal((await viaServer.get('coap://ORIGIN.example/hello', { timeout: 5000 })).code, ResponseCode.Content, 'host names are case-insensitive');
    assert.equal((await viaServer.get('coap://other.example/hello', { timeout: 5000 })).code, ResponseCode.ProxyingNotSupported);
    assert.equal((await viaServer.get('coap://[2001:db8::1]:7000/hello', { timeout: 5000 })).code, ResponseCode.Content, 'a name with a port');
    assert.equal((await viaServer.get('coap://[2001:db8::1]:7001/hello', { timeout: 5000 })).code, ResponseCode.ProxyingNotSupported, 'another port');
  } finally {
    await viaServer.close();
  }
});

test('Proxy-Uri naming the server: its path and query are used; a non-CoAP scheme gets 5.05', async () => {
  const client = new CoapClient();
  try {
    const proxyUri = (uri: string) => ({ options: [{ number: OptionNumber.ProxyUri, value: encodeString(uri) }], timeout: 5000 });
    assert.equal((await client.get(direct, proxyUri('coap://origin.example/hello?b=2'))).text(), 'hello b=2');
    assert.equal((await client.get(direct, proxyUri('http://origin.example/hello'))).code, ResponseCode.ProxyingNotSupported);
  } finally {
    await client.close();
  }
});

test('onRequestLog: one entry per response, with the request as served', async () => {
  const client = new CoapClient();
  try {
    const before = logged.length;
    await client.get(`${direct}/hello?x`, { timeout: 5000 });
    assert.equal(logged.length - before, 1);
    const entry = logged.at(-1)!;
    assert.equal(entry.protection, 'none');
    assert.equal(entry.identity, undefined);
    assert.equal(entry.response.code, ResponseCode.Content);
    assert.match(entry.peer, /^127\.0\.0\.1:\d+$/);
  } finally {
    await client.close();
  }
});
