/**
 * The HTTP→CoAP cross-proxy refuses what a hostile web page in a local browser could make it do
 * (issue 17 item 2): a Host outside its names (DNS rebinding) gets 421, a cross-origin
 * state-changing request 403, and only allowed origins get CORS headers and preflight answers.
 */
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { startHttpCrossProxy, type HttpCrossProxy } from '../src/proxy/http-cross-proxy.js';
import { CoapServer } from '../src/server/server.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

describe('HTTP→CoAP cross-proxy: Host and Origin', () => {
  let coapServer: CoapServer;
  let client: CoapClient;
  let proxy: HttpCrossProxy;
  let port: number;
  let target: string;
  const writes: string[] = [];

  before(async () => {
    coapServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
    coapServer.resource('/state', {
      GET: () => ({ code: ResponseCode.Content, payload: writes.join(',') }),
      PUT: (r) => (writes.push(r.text()), { code: ResponseCode.Changed }),
      POST: (r) => (writes.push(r.text()), { code: ResponseCode.Changed }),
    });
    client = new CoapClient();
    proxy = await startHttpCrossProxy({ host: '127.0.0.1', port: 0, client, allowDestinations: ['127.0.0.1'], timeout: 2000, hostNames: ['proxy.lan'], allowedOrigins: ['https://app.example'] });
    port = proxy.address().port;
    target = `/hc/coap://127.0.0.1:${coapServer.address().port}/state`;
  });

  after(async () => {
    await proxy.close();
    await client.close();
    await coapServer.close();
  });

  /** An HTTP request with exactly these headers (fetch would not let a test set Host or Origin). */
  function send(method: string, headers: Record<string, string>, body?: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method, path: target, headers: { ...(body !== undefined ? { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) } : {}), ...headers }, timeout: 5000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
      req.end(body);
    });
  }

  test('a Host that is not one of the proxy\'s names gets 421 (DNS rebinding), and nothing reaches CoAP', async () => {
    const before = writes.length;
    const rebound = await send('PUT', { host: `evil.example:${port}` }, 'rebound');
    assert.equal(rebound.status, 421);
    assert.equal((await send('GET', { host: 'evil.example' })).status, 421);
    assert.equal(writes.length, before);
  });

  test('IP literals, localhost, the configured names: served', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'proxy.lan', `PROXY.LAN.:${port}`, `[::1]:${port}`]) {
      assert.equal((await send('GET', { host })).status, 200, host);
    }
  });

  test('a cross-origin PUT or POST from a page of another origin gets 403; nothing is written', async () => {
    const before = writes.length;
    for (const method of ['PUT', 'POST']) {
      const r = await send(method, { host: `127.0.0.1:${port}`, origin: 'https://evil.example' }, 'forged');
      assert.equal(r.status, 403, method);
      assert.equal(r.headers['access-control-allow-origin'], undefined);
    }
    assert.equal((await send('POST', { host: `127.0.0.1:${port}`, origin: 'null' }, 'sandboxed')).status, 403, 'Origin null (sandboxed frame, file:)');
    assert.equal((await send('POST', { host: `127.0.0.1:${port}`, 'sec-fetch-site': 'cross-site' }, 'no origin')).status, 403, 'Fetch Metadata without Origin');
    assert.equal(writes.length, before);
  });

  test('same-origin, allowed-origin and non-browser (no Origin) writes are served; only the allowed origin gets CORS headers', async () => {
    const same = await send('PUT', { host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}` }, 'same');
    assert.equal(same.status, 204);
    assert.equal(same.headers['access-control-allow-origin'], undefined);
    const allowed = await send('PUT', { host: `127.0.0.1:${port}`, origin: 'https://app.example' }, 'allowed');
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal((await send('POST', { host: `localhost:${port}` }, 'curl')).status, 204);
    assert.deepEqual(writes.slice(-3), ['same', 'allowed', 'curl']);
    const read = await send('GET', { host: `127.0.0.1:${port}`, origin: 'https://evil.example' });
    assert.equal(read.status, 200, 'a GET is safe: it is served…');
    assert.equal(read.headers['access-control-allow-origin'], undefined, '…but another origin\'s page cannot read it');
  });

  test('CORS preflight: answered for an allowed origin, 403 for another', async () => {
    const ok = await send('OPTIONS', { host: `127.0.0.1:${port}`, origin: 'https://app.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type' });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example');
    assert.match(String(ok.headers['access-control-allow-methods']), /\bPUT\b/);
    assert.match(String(ok.headers['access-control-allow-headers']), /content-type/);
    const refused = await send('OPTIONS', { host: `127.0.0.1:${port}`, origin: 'https://evil.example', 'access-control-request-method': 'PUT' });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers['access-control-allow-origin'], undefined);
  });
});
