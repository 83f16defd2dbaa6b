/**
 * curl through the RFC 8075 HTTP→CoAP cross-proxy, on loopback only: to `coapsec serve` (a
 * separate process) and to libcoap's coap-server-notls. curl is the HTTP client the issue names;
 * the proxy runs in this process with an ordinary CoapClient behind it.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { startHttpCrossProxy, type HttpCrossProxy } from '../src/proxy/http-cross-proxy.js';
import { HOST, run, startCoapsecServer, startLibcoapServer, stopAll, which, type Daemon } from './support.js';

interface CurlResult {
  status: number;
  reason: string;
  headers: Map<string, string>;
  body: string;
}

/** curl -i: parses the status line, headers and body of the last response. */
async function curl(args: readonly string[]): Promise<CurlResult> {
  const result = await run('curl', ['-sS', '-i', '--max-time', '10', ...args]);
  assert.equal(result.code, 0, `curl ${args.join(' ')} failed: ${result.stderr}`);
  const text = result.stdout;
  const split = text.indexOf('\r\n\r\n');
  const head = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? '' : text.slice(split + 4);
  const [statusLine, ...lines] = head.split('\r\n');
  const m = /^HTTP\/[\d.]+ (\d{3}) ?(.*)$/.exec(statusLine ?? '');
  assert.ok(m, `no status line in ${JSON.stringify(text.slice(0, 200))}`);
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(m[1]), reason: m[2]!, headers, body };
}

if (which('curl') === undefined) {
  // Not a skip, like libcoap: CI must provide curl (apt-get install -y curl in .ci/run).
  test('curl is installed', () => {
    assert.fail('curl not found on PATH: install it (apt-get install -y --no-install-recommends curl), as .ci/run must');
  });
} else {
  describe('curl → HTTP cross-proxy → coapsec serve', () => {
    let server: Daemon;
    let client: CoapClient;
    let proxy: HttpCrossProxy;
    let silent: Socket;
    let base: string;
    let origin: string;

    before(async () => {
      server = await startCoapsecServer();
      client = new CoapClient();
      proxy = await startHttpCrossProxy({ host: HOST, port: 0, client, allowDestinations: [HOST], timeout: 2_000 });
      silent = createSocket('udp4');
      await new Promise<void>((resolve) => silent.bind(0, HOST, () => resolve()));
      base = `http://${HOST}:${proxy.address().port}/hc/`;
      origin = `coap://${HOST}:${server.port}`;
    });

    after(async () => {
      await proxy?.close();
      await client?.close();
      silent?.close();
      await stopAll();
    });

    test('GET /hello → 200 text/plain with Cache-Control', async () => {
      const r = await curl([`${base}${origin}/hello`]);
      assert.equal(r.status, 200);
      assert.equal(r.body, 'Hello from coapsec');
      assert.equal(r.headers.get('content-type'), 'text/plain; charset=utf-8');
      assert.equal(r.headers.get('cache-control'), 'max-age=60');
    });

    test('PUT /valve 7 → 204, then GET → 7 with max-age=0', async () => {
      const put = await curl(['-X', 'PUT', '-H', 'Content-Type: text/plain', '--data-binary', '7', `${base}${origin}/valve`]);
      assert.equal(put.status, 204);
      const get = await curl([`${base}${origin}/valve`]);
      assert.equal(get.body, '7');
      assert.equal(get.headers.get('cache-control'), 'max-age=0');
    });

    test('4.04 → 404; DELETE on /hello → 400 "CoAP server returned 4.05"', async () => {
      assert.equal((await curl([`${base}${origin}/no/such/thing`])).status, 404);
      const del = await curl(['-X', 'DELETE', `${base}${origin}/hello`]);
      assert.equal(del.status, 400);
      assert.equal(del.reason, 'CoAP server returned 4.05');
    });

    test('/config: application/json with an ETag; PATCH with If-Match', async () => {
      const get = await curl([`${base}${origin}/config`]);
      assert.equal(get.headers.get('content-type'), 'application/json');
      const etag = get.headers.get('etag');
      assert.match(etag ?? '', /^"[0-9a-f]+"$/);
      const patch = await curl(['-X', 'PATCH', '-H', 'Content-Type: application/merge-patch+json', '-H', `If-Match: ${etag}`, '--data-binary', '{"interval":3}', `${base}${origin}/config`]);
      assert.equal(patch.status, 204);
      const stale = await curl(['-X', 'PATCH', '-H', 'Content-Type: application/merge-patch+json', '-H', `If-Match: ${etag}`, '--data-binary', '{"interval":4}', `${base}${origin}/config`]);
      assert.equal(stale.status, 412);
    });

    test('block-wise /large arrives whole; curl -I gets its length', async () => {
      const r = await curl([`${base}${origin}/large`]);
      assert.equal(r.body.length, 8192);
      const head = await curl(['-I', `${base}${origin}/large`]);
      assert.equal(head.headers.get('content-length'), '8192');
    });

    test('unmappable Content-Type → 415; no scheme → 400; a silent CoAP port → 504', async () => {
      assert.equal((await curl(['-X', 'POST', '-H', 'Content-Type: text/html', '--data-binary', '<p>', `${base}${origin}/echo`])).status, 415);
      assert.equal((await curl([`${base}${HOST}:${server.port}/hello`])).status, 400);
      assert.equal((await curl([`${base}coap://${HOST}:${(silent.address()).port}/x`])).status, 504);
    });
  });

  describe('curl → HTTP cross-proxy → libcoap coap-server-notls', { skip: which('coap-server-notls') === undefined ? 'libcoap missing (libcoap.test.ts reports it)' : false }, () => {
    let server: Daemon;
    let client: CoapClient;
    let proxy: HttpCrossProxy;
    let base: string;

    before(async () => {
      server = await startLibcoapServer();
      client = new CoapClient();
      proxy = await startHttpCrossProxy({ host: HOST, port: 0, client, allowDestinations: [HOST], timeout: 3_000 });
      base = `http://${HOST}:${proxy.address().port}/hc/coap://${HOST}:${server.port}`;
    });

    after(async () => {
      await proxy?.close();
      await client?.close();
      await stopAll();
    });

    test("GET / → libcoap's banner; no Content-Format means no Content-Type", async () => {
      const r = await curl([`${base}/`]);
      assert.equal(r.status, 200);
      assert.match(r.body, /libcoap/i);
      // libcoap 4.3 sends its index without a Content-Format; with one it would be text/plain.
      assert.ok([undefined, 'text/plain; charset=utf-8'].includes(r.headers.get('content-type')), r.headers.get('content-type'));
      assert.equal(r.headers.get('x-coap-response-code'), '2.05 Content');
    });

    test('PUT /example_data then GET returns it; an unknown path → 404', async () => {
      const put = await curl(['-X', 'PUT', '-H', 'Content-Type: text/plain', '--data-binary', 'via curl', `${base}/example_data`]);
      assert.ok(put.status === 201 || put.status === 204, `PUT gave ${put.status}`);
      const get = await curl([`${base}/example_data`]);
      assert.equal(get.status, 200);
      assert.equal(get.body, 'via curl');
      assert.equal((await curl([`${base}/nothing-here`])).status, 404);
    });
  });
}
