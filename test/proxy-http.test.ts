/**
 * RFC 8075 HTTP→CoAP cross-proxy and the CoAP→HTTP direction: every mapping as a unit test, then
 * a real CoapServer with the demo resources on loopback behind the cross-proxy, driven by fetch,
 * and coapToHttp against an http.createServer on loopback.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { createSocket, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { CoapClient } from '../src/client/client.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { bytesEqual, decodeString, encodeUint, getOption, getOptions } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { addDemoResources } from '../src/demo/resources.js';
import { CoapServer } from '../src/server/server.js';
import { coapToHttp, startHttpCrossProxy, type HttpCrossProxy } from '../src/proxy/http-cross-proxy.js';
import { ResponseCache } from '../src/proxy/cache.js';
import {
  MappingError,
  acceptToCoap,
  cacheControlToMaxAge,
  coapCodeToHttpStatus,
  coapMethodToHttp,
  contentFormatToMediaType,
  etagToHttp,
  extractTargetUri,
  hostingPath,
  httpEtagToCoap,
  httpMethodToCoap,
  httpStatusToCoapCode,
  isMulticastHost,
  looseMediaType,
  maxAgeToHttpHeaders,
  mediaTypeToContentFormat,
  parseEntityTags,
} from '../src/proxy/http-mapping.js';

// --- unit: URI mapping (§5) ----------------------------------------------------------------

describe('RFC 8075 §5 URI mapping', () => {
  test('default mapping: the Target CoAP URI follows the HC Proxy URI', () => {
    const uri = extractTargetUri('/hc/coap://s.example.com/light?on&level=5');
    assert.deepEqual(
      { scheme: uri?.scheme, host: uri?.host, port: uri?.port, path: uri?.path, query: uri?.query },
      { scheme: 'coap', host: 's.example.com', port: 5683, path: ['light'], query: ['on', 'level=5'] },
    );
    assert.equal(extractTargetUri('/hc/coaps://127.0.0.1:5684/a/b')?.port, 5684);
    assert.equal(extractTargetUri('/other/coap://h/x'), undefined, 'not below the prefix');
    assert.equal(extractTargetUri('/proxy/coap://h/x', '/proxy/')?.host, 'h');
  });

  test('§5.3.2: percent-encoded brackets of an IPv6 authority are reverted; path escapes decode once', () => {
    const uri = extractTargetUri('/hc/coap://%5B2001:db8::1%5D/light?on');
    assert.equal(uri?.host, '2001:db8::1');
    assert.deepEqual(uri?.path, ['light']);
    assert.equal(extractTargetUri('/hc/coap://[::1]:5690/x')?.port, 5690, 'unencoded brackets work too');
    assert.deepEqual(extractTargetUri('/hc/coap://h/a%20b/c%2Fd')?.path, ['a b', 'c/d']);
    assert.equal(extractTargetUri('/hc/coap%3A//h/x')?.host, 'h', 'an encoded scheme delimiter');
    assert.equal(hostingPath('coap://[2001:db8::1]/light?on'), '/hc/coap://%5B2001:db8::1%5D/light?on');
    assert.equal(hostingPath('coap://h:5690/a'), '/hc/coap://h:5690/a');
  });

  test('§5.3.1: no scheme, another scheme or a malformed URI → 400', () => {
    for (const bad of ['/hc/s.example.com/light', '/hc/http://h/x', '/hc/coap://h/x#frag', '/hc/coap://h:99999/x', '/hc/coap://h/%zz', '/hc/coap:///x']) {
      assert.throws(() => extractTargetUri(bad), (e: unknown) => e instanceof MappingError && e.status === 400, bad);
    }
  });

  test('§8.4: multicast targets are recognized', () => {
    assert.equal(isMulticastHost('224.0.1.187'), true);
    assert.equal(isMulticastHost('ff02::fd'), true);
    assert.equal(isMulticastHost('192.0.2.1'), false);
    assert.equal(isMulticastHost('example.com'), false);
  });
});

// --- unit: methods and codes (§7) ----------------------------------------------------------

describe('methods and response codes', () => {
  test('HTTP methods → CoAP; others have none (→ 501)', () => {
    assert.equal(httpMethodToCoap('GET'), Method.GET);
    assert.equal(httpMethodToCoap('HEAD'), Method.GET);
    assert.equal(httpMethodToCoap('post'), Method.POST);
    assert.equal(httpMethodToCoap('PUT'), Method.PUT);
    assert.equal(httpMethodToCoap('DELETE'), Method.DELETE);
    assert.equal(httpMethodToCoap('PATCH'), Method.PATCH);
    assert.equal(httpMethodToCoap('QUERY'), Method.FETCH);
    assert.equal(httpMethodToCoap('FETCH'), Method.FETCH);
    for (const m of ['OPTIONS', 'TRACE', 'CONNECT', 'PROPFIND']) assert.equal(httpMethodToCoap(m), undefined);
    assert.equal(coapMethodToHttp(Method.IPATCH), 'PATCH');
    assert.equal(coapMethodToHttp(Method.FETCH), 'QUERY');
    assert.equal(coapMethodToHttp(Method.DELETE), 'DELETE');
  });

  test('§7 Table 2: CoAP response codes → HTTP status codes, with the notes', () => {
    const s = (code: number, ctx = {}) => coapCodeToHttpStatus(code, ctx).status;
    assert.equal(s(ResponseCode.Created), 201);
    assert.equal(s(ResponseCode.Deleted), 204);
    assert.equal(s(ResponseCode.Deleted, { hasPayload: true }), 200, 'note 2');
    assert.equal(s(ResponseCode.Changed), 204);
    assert.equal(s(ResponseCode.Changed, { hasPayload: true }), 200);
    assert.equal(s(ResponseCode.Valid, { conditional: true }), 304, 'note 3');
    assert.equal(s(ResponseCode.Valid), 200, 'note 4');
    assert.equal(s(ResponseCode.Content), 200);
    assert.equal(s(ResponseCode.BadRequest), 400);
    assert.equal(s(ResponseCode.Unauthorized), 403, 'note 5');
    assert.equal(s(ResponseCode.BadOption), 500, 'note 6');
    assert.equal(s(ResponseCode.BadOption, { badOptionFromHeader: true }), 400);
    assert.equal(s(ResponseCode.Forbidden), 403);
    assert.equal(s(ResponseCode.NotFound), 404);
    assert.deepEqual(coapCodeToHttpStatus(ResponseCode.MethodNotAllowed), { status: 400, reason: 'CoAP server returned 4.05' }, 'note 7');
    assert.equal(s(ResponseCode.NotAcceptable), 406);
    assert.equal(s(ResponseCode.PreconditionFailed), 412);
    assert.equal(s(ResponseCode.RequestEntityTooLarge), 413);
    assert.equal(s(ResponseCode.UnsupportedContentFormat), 415);
    assert.equal(s(ResponseCode.Conflict), 409);
    assert.equal(s(ResponseCode.UnprocessableEntity), 422);
    assert.equal(s(ResponseCode.TooManyRequests), 429);
    assert.equal(s(ResponseCode.InternalServerError), 500);
    assert.equal(s(ResponseCode.NotImplemented), 501);
    assert.equal(s(ResponseCode.BadGateway), 502);
    assert.equal(s(ResponseCode.ServiceUnavailable), 503);
    assert.equal(s(ResponseCode.GatewayTimeout), 504);
    assert.equal(s(ResponseCode.ProxyingNotSupported), 502, 'note 9');
    assert.equal(s((4 << 5) | 30), 400, 'an unlisted 4.xx');
    assert.equal(s((5 << 5) | 20), 500, 'an unlisted 5.xx');
    assert.equal(s(ResponseCode.Continue), 502, 'note 10: never translated');
  });

  test('RFC 7252 §10.1: HTTP status → CoAP code by method', () => {
    assert.equal(httpStatusToCoapCode(200, Method.GET), ResponseCode.Content);
    assert.equal(httpStatusToCoapCode(200, Method.FETCH), ResponseCode.Content);
    assert.equal(httpStatusToCoapCode(201, Method.POST), ResponseCode.Created);
    assert.equal(httpStatusToCoapCode(201, Method.PUT), ResponseCode.Created);
    assert.equal(httpStatusToCoapCode(204, Method.PUT), ResponseCode.Changed);
    assert.equal(httpStatusToCoapCode(200, Method.POST), ResponseCode.Changed);
    assert.equal(httpStatusToCoapCode(204, Method.DELETE), ResponseCode.Deleted);
    assert.equal(httpStatusToCoapCode(304, Method.GET), ResponseCode.Valid);
    assert.equal(httpStatusToCoapCode(404, Method.GET), ResponseCode.NotFound);
    assert.equal(httpStatusToCoapCode(401, Method.GET), ResponseCode.Unauthorized);
    assert.equal(httpStatusToCoapCode(418, Method.GET), ResponseCode.BadRequest);
    assert.equal(httpStatusToCoapCode(503, Method.GET), ResponseCode.ServiceUnavailable);
    assert.equal(httpStatusToCoapCode(599, Method.GET), ResponseCode.InternalServerError);
    assert.equal(httpStatusToCoapCode(302, Method.GET), ResponseCode.BadGateway, 'redirects are not followed');
  });
});

// --- unit: media types (§6) ----------------------------------------------------------------

describe('RFC 8075 §6 media types', () => {
  test('Content-Type → Content-Format', () => {
    assert.equal(mediaTypeToContentFormat('text/plain;charset=utf-8'), 0);
    assert.equal(mediaTypeToContentFormat('text/plain; charset=UTF-8'), 0);
    assert.equal(mediaTypeToContentFormat('text/plain'), 0);
    assert.equal(mediaTypeToContentFormat('TEXT/Plain; charset="us-ascii"'), 0);
    assert.equal(mediaTypeToContentFormat('text/plain; charset=iso-8859-1'), undefined);
    assert.equal(mediaTypeToContentFormat('application/json'), 50);
    assert.equal(mediaTypeToContentFormat('application/json; charset=utf-8'), 50);
    assert.equal(mediaTypeToContentFormat('application/cbor'), 60);
    assert.equal(mediaTypeToContentFormat('application/link-format'), 40);
    assert.equal(mediaTypeToContentFormat('application/octet-stream'), 42);
    assert.equal(mediaTypeToContentFormat('application/xml'), 41);
    assert.equal(mediaTypeToContentFormat('application/merge-patch+json'), 52);
    assert.equal(mediaTypeToContentFormat('application/senml+cbor'), 112);
    assert.equal(mediaTypeToContentFormat('application/cose; cose-type="cose-encrypt0"'), 16);
    assert.equal(mediaTypeToContentFormat('application/json', { contentEncoding: 'deflate' }), 11050);
    assert.equal(mediaTypeToContentFormat('application/json', { contentEncoding: 'gzip' }), undefined);
    assert.equal(mediaTypeToContentFormat('text/html'), undefined, 'unmapped → the proxy answers 415');
    assert.equal(mediaTypeToContentFormat('nonsense'), undefined);
  });

  test('§6.2 application/coap-payload only when allowed; §6.3 loose mapping', () => {
    assert.equal(mediaTypeToContentFormat('application/coap-payload; cf=11542'), undefined);
    assert.equal(mediaTypeToContentFormat('application/coap-payload; cf=11542', { allowCoapPayload: true }), 11542);
    assert.equal(mediaTypeToContentFormat('application/coap-payload; cf=x', { allowCoapPayload: true }), undefined);
    assert.equal(looseMediaType('application', 'soap+xml'), 'application/xml');
    assert.equal(looseMediaType('application', 'problem+json'), 'application/json');
    assert.equal(looseMediaType('application', 'foo+cbor'), 'application/cbor');
    assert.equal(looseMediaType('text', 'xml'), 'application/xml');
    assert.equal(looseMediaType('text', 'html'), 'text/plain');
    assert.equal(looseMediaType('image', 'webp'), 'application/octet-stream');
    assert.equal(mediaTypeToContentFormat('application/problem+json', { loose: true }), 50);
    assert.equal(mediaTypeToContentFormat('text/html; charset=utf-8', { loose: true }), 0);
    assert.equal(mediaTypeToContentFormat('image/webp', { loose: true }), 42);
  });

  test('Content-Format → Content-Type (+ Content-Encoding); unknown → application/coap-payload', () => {
    assert.deepEqual(contentFormatToMediaType(0), { contentType: 'text/plain; charset=utf-8' });
    assert.deepEqual(contentFormatToMediaType(50), { contentType: 'application/json' });
    assert.deepEqual(contentFormatToMediaType(60), { contentType: 'application/cbor' });
    assert.deepEqual(contentFormatToMediaType(40), { contentType: 'application/link-format' });
    assert.deepEqual(contentFormatToMediaType(42), { contentType: 'application/octet-stream' });
    assert.deepEqual(contentFormatToMediaType(11050), { contentType: 'application/json', contentEncoding: 'deflate' });
    assert.deepEqual(contentFormatToMediaType(65000), { contentType: 'application/coap-payload; cf=65000' });
    // round trip for every registered format the table names
    for (const cf of [0, 16, 40, 41, 42, 47, 50, 51, 52, 60, 61, 110, 112, 10001, 11050, 11542]) {
      const m = contentFormatToMediaType(cf);
      assert.equal(mediaTypeToContentFormat(m.contentType, m.contentEncoding ? { contentEncoding: m.contentEncoding } : {}), cf, `cf ${cf}`);
    }
  });

  test('Accept → CoAP Accept: */* and wildcards give none; unmappable ones are ignored; q order', () => {
    assert.equal(acceptToCoap(undefined), undefined);
    assert.equal(acceptToCoap('*/*'), undefined);
    assert.equal(acceptToCoap('application/json'), 50);
    assert.equal(acceptToCoap('text/html, application/xhtml+xml, application/xml;q=0.9, */*;q=0.8'), undefined, 'a browser');
    assert.equal(acceptToCoap('text/html, application/cbor'), 60);
    assert.equal(acceptToCoap('application/json;q=0.5, application/cbor'), 60);
    assert.equal(acceptToCoap('application/cbor;q=0, application/json'), 50);
    assert.equal(acceptToCoap('image/*'), undefined);
    assert.equal(acceptToCoap('text/html'), undefined);
  });
});

// --- unit: entity tags and freshness -------------------------------------------------------

describe('ETag and Max-Age ↔ HTTP headers', () => {
  test('ETag ↔ quoted hex entity-tag; entity-tag lists', () => {
    assert.equal(etagToHttp(Uint8Array.of(0x00, 0x2a)), '"002a"');
    assert.deepEqual(httpEtagToCoap('"002a"'), Uint8Array.of(0x00, 0x2a));
    assert.deepEqual(httpEtagToCoap('W/"ff"'), Uint8Array.of(0xff));
    const hashed = httpEtagToCoap('"33a64df551425fcc55e4d42a148795d9f25f89d4"');
    assert.equal(hashed?.length, 8, 'a long HTTP tag hashes to 8 bytes');
    assert.deepEqual(httpEtagToCoap('"33a64df551425fcc55e4d42a148795d9f25f89d4"'), hashed, 'deterministically');
    assert.equal(httpEtagToCoap('no quotes'), undefined);
    assert.deepEqual(parseEntityTags('"01", W/"0203", "not-hex", "112233445566778899"'), {
      any: false,
      tags: [Uint8Array.of(1), Uint8Array.of(2, 3)],
      unmapped: 2,
    });
    assert.equal(parseEntityTags('*').any, true);
    assert.deepEqual(parseEntityTags(undefined), { any: false, tags: [], unmapped: 0 });
  });

  test('Max-Age ↔ Cache-Control (and Retry-After for 5.03)', () => {
    assert.deepEqual(maxAgeToHttpHeaders(ResponseCode.Content, 30), { 'cache-control': 'max-age=30' });
    assert.deepEqual(maxAgeToHttpHeaders(ResponseCode.NotFound, 60), { 'cache-control': 'max-age=60' });
    assert.deepEqual(maxAgeToHttpHeaders(ResponseCode.ServiceUnavailable, 7), { 'cache-control': 'max-age=7', 'retry-after': '7' });
    assert.deepEqual(maxAgeToHttpHeaders(ResponseCode.Changed, 60), {}, 'not cacheable: no freshness claimed');
    assert.equal(cacheControlToMaxAge('max-age=120'), 120);
    assert.equal(cacheControlToMaxAge('public, max-age=120, s-maxage=30'), 30);
    assert.equal(cacheControlToMaxAge('no-store'), 0);
    assert.equal(cacheControlToMaxAge('max-age=60, private'), 0);
    assert.equal(cacheControlToMaxAge(undefined), 0);
    assert.equal(cacheControlToMaxAge('max-age=abc'), 0);
  });
});

// --- integration: HTTP client → cross-proxy → CoAP server ----------------------------------

describe('HTTP→CoAP cross-proxy on loopback', () => {
  let coapServer: CoapServer;
  let client: CoapClient;
  let proxy: HttpCrossProxy;
  let silent: Socket;
  let base: string;
  let origin: string;
  const seen: string[] = [];

  before(async () => {
    coapServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
    addDemoResources(coapServer, { tick: false });
    // A validating resource: 2.03 when the request's ETag is the current one.
    coapServer.resource('/tagged', {
      GET: (req) => {
        const current = Uint8Array.of(0xbe, 0xef);
        const matches = req.options.some((o) => o.number === OptionNumber.ETag && bytesEqual(o.value, current));
        return matches ? { code: ResponseCode.Valid, etag: current, maxAge: 40 } : { code: ResponseCode.Content, etag: current, maxAge: 40, contentFormat: ContentFormat.TextPlain, payload: 'tagged' };
      },
    });
    coapServer.resource('/items', {
      POST: (req) => ({ code: ResponseCode.Created, options: [{ number: OptionNumber.LocationPath, value: Buffer.from('items') }, { number: OptionNumber.LocationPath, value: Buffer.from(`n${req.payload.length}`) }] }),
    });
    coapServer.resource('/busy', { GET: () => ({ code: ResponseCode.ServiceUnavailable, maxAge: 7, payload: 'try later' }) });
    coapServer.resource('/cbor', { GET: (req) => (req.accept === undefined || req.accept === ContentFormat.Cbor ? { code: ResponseCode.Content, contentFormat: ContentFormat.Cbor, payload: Uint8Array.of(0xa0) } : { code: ResponseCode.NotAcceptable }) });
    coapServer.resource('/q', { GET: (req) => ({ code: ResponseCode.Content, payload: req.query.join('|') }) });
    client = new CoapClient();
    // The CoAP origins here are on loopback, refused unless allowed (issue 17).
    proxy = await startHttpCrossProxy({ host: '127.0.0.1', port: 0, client, allowDestinations: ['127.0.0.1'], timeout: 1_500, maxBodySize: 2048, onRequest: (info) => void seen.push(info.target) });
    silent = createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()));
    base = `http://127.0.0.1:${proxy.address().port}/hc/`;
    origin = `coap://127.0.0.1:${coapServer.address().port}`;
  });

  after(async () => {
    await proxy.close();
    await client.close();
    await coapServer.close();
    silent.close();
  });

  test('GET /hello: 200, text/plain, Cache-Control from the default Max-Age, X-CoAP-Response-Code', async () => {
    const res = await fetch(`${base}${origin}/hello`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'Hello from coapsec');
    assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(res.headers.get('cache-control'), 'max-age=60');
    assert.equal(res.headers.get('x-coap-response-code'), '2.05 Content');
    assert.ok(seen.includes(`${origin}/hello`), 'onRequest saw the normalized target');
  });

  test('PUT /valve 5 then GET: 204 then 200 "5" with max-age=0; a bad level → 400 with the diagnostic body', async () => {
    const put = await fetch(`${base}${origin}/valve`, { method: 'PUT', body: '5', headers: { 'content-type': 'text/plain' } });
    assert.equal(put.status, 204);
    const get = await fetch(`${base}${origin}/valve`);
    assert.equal(await get.text(), '5');
    assert.equal(get.headers.get('cache-control'), 'max-age=0');
    const bad = await fetch(`${base}${origin}/valve`, { method: 'PUT', body: '11', headers: { 'content-type': 'text/plain' } });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /level must be an integer/);
    assert.equal(bad.headers.get('content-type'), 'text/plain; charset=utf-8');
    const wrongType = await fetch(`${base}${origin}/valve`, { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } });
    assert.equal(wrongType.status, 415, 'the CoAP server answered 4.15');
  });

  test('4.04 → 404; 4.05 → 400 "CoAP server returned 4.05"; 5.03 → 503 with Retry-After', async () => {
    const missing = await fetch(`${base}${origin}/nope`);
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('cache-control'), 'max-age=60', '§5.9.2: errors are cacheable');
    const notAllowed = await new Promise<{ status: number; message: string }>((resolve, reject) => {
      const r = httpRequest(`${base}${origin}/hello`, { method: 'DELETE' }, (res) => {
        res.resume();
        resolve({ status: res.statusCode!, message: res.statusMessage! });
      });
      r.on('error', reject);
      r.end();
    });
    assert.deepEqual(notAllowed, { status: 400, message: 'CoAP server returned 4.05' });
    const busy = await fetch(`${base}${origin}/busy`);
    assert.equal(busy.status, 503);
    assert.equal(busy.headers.get('retry-after'), '7');
  });

  test('ETag header; If-None-Match becomes a CoAP validation request and 2.03 becomes 304', async () => {
    const first = await fetch(`${base}${origin}/tagged`);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('etag'), '"beef"');
    assert.equal(first.headers.get('cache-control'), 'max-age=40');
    const again = await fetch(`${base}${origin}/tagged`, { headers: { 'if-none-match': '"beef"' } });
    assert.equal(again.status, 304);
    assert.equal(again.headers.get('etag'), '"beef"');
    assert.equal(again.headers.get('cache-control'), 'max-age=40');
    const other = await fetch(`${base}${origin}/tagged`, { headers: { 'if-none-match': '"0001"' } });
    assert.equal(other.status, 200);
    const config = await fetch(`${base}${origin}/config`);
    assert.equal(config.headers.get('content-type'), 'application/json');
    assert.equal(config.headers.get('etag'), '"0001"');
  });

  test('If-Match maps to CoAP If-Match (4.12 → 412); PATCH with merge-patch+json', async () => {
    const stale = await fetch(`${base}${origin}/config`, { method: 'PATCH', body: '{"interval":5}', headers: { 'content-type': 'application/merge-patch+json', 'if-match': '"0099"' } });
    assert.equal(stale.status, 412);
    const current = (await fetch(`${base}${origin}/config`)).headers.get('etag')!;
    const ok = await fetch(`${base}${origin}/config`, { method: 'PATCH', body: '{"interval":5}', headers: { 'content-type': 'application/merge-patch+json', 'if-match': current } });
    assert.equal(ok.status, 204);
    assert.notEqual(ok.headers.get('etag'), current, 'the 2.04 carried the new ETag');
    const unmappable = await fetch(`${base}${origin}/config`, { method: 'PATCH', body: '{}', headers: { 'content-type': 'application/merge-patch+json', 'if-match': '"not-ours"' } });
    assert.equal(unmappable.status, 412, 'a tag the proxy never issued cannot match');
  });

  test('QUERY → FETCH with the body; POST → 201 with a Location in the hosting URI form', async () => {
    const fetched = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = httpRequest(`${base}${origin}/config`, { method: 'QUERY', headers: { 'content-type': 'application/json' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      r.on('error', reject);
      r.end('["unit"]');
    });
    assert.deepEqual(fetched, { status: 200, body: '{"unit":"celsius"}' });
    const created = await fetch(`${base}${origin}/items`, { method: 'POST', body: 'abc', headers: { 'content-type': 'text/plain' } });
    assert.equal(created.status, 201);
    assert.equal(created.headers.get('location'), `/hc/${origin}/items/n3`);
  });

  test('Accept → CoAP Accept; the response Content-Format → Content-Type; query strings pass through', async () => {
    const cbor = await fetch(`${base}${origin}/cbor`, { headers: { accept: 'application/cbor' } });
    assert.equal(cbor.headers.get('content-type'), 'application/cbor');
    assert.deepEqual(new Uint8Array(await cbor.arrayBuffer()), Uint8Array.of(0xa0));
    const json = await fetch(`${base}${origin}/cbor`, { headers: { accept: 'application/json' } });
    assert.equal(json.status, 406);
    const any = await fetch(`${base}${origin}/cbor`, { headers: { accept: '*/*' } });
    assert.equal(any.status, 200);
    const q = await fetch(`${base}${origin}/q?a=1&b=x%20y`);
    assert.equal(await q.text(), 'a=1|b=x y');
  });

  test('block-wise behind the proxy: /large arrives whole; HEAD gets headers only', async () => {
    const large = await fetch(`${base}${origin}/large`);
    assert.equal((await large.text()).length, 8192);
    const head = await fetch(`${base}${origin}/large`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '8192');
    assert.equal((await head.arrayBuffer()).byteLength, 0);
  });

  test('proxy errors: 504 for a silent CoAP port, 400 for a bad target, 404 outside the prefix, 501 for OPTIONS, 415, 413, 403 multicast', async () => {
    const started = Date.now();
    const timeout = await fetch(`${base}coap://127.0.0.1:${(silent.address() as AddressInfo).port}/x`);
    assert.equal(timeout.status, 504);
    assert.ok(Date.now() - started < 5_000);
    assert.equal((await fetch(`${base}s.example.com/light`)).status, 400, 'no scheme (§5.3.1)');
    assert.equal((await fetch(`${base}coap://h:99999/x`)).status, 400);
    assert.equal((await fetch(`http://127.0.0.1:${proxy.address().port}/elsewhere`)).status, 404);
    assert.equal((await fetch(`${base}${origin}/hello`, { method: 'OPTIONS' })).status, 501);
    const html = await fetch(`${base}${origin}/echo`, { method: 'POST', body: '<p>', headers: { 'content-type': 'text/html' } });
    assert.equal(html.status, 415);
    const big = await fetch(`${base}${origin}/echo`, { method: 'POST', body: 'x'.repeat(4096), headers: { 'content-type': 'text/plain' } });
    assert.equal(big.status, 413);
    assert.equal((await fetch(`${base}coap://224.0.1.187/x`)).status, 403);
    assert.equal((await fetch(`${base}coap://no-such-host.invalid/x`)).status, 502, 'name resolution failure');
  });

  test('the echo resource round-trips bodies and Content-Format both ways (POST → 2.04 with payload → 200)', async () => {
    const res = await fetch(`${base}${origin}/echo`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.equal(await res.text(), '{"a":1}');
  });

  test('onRequest can refuse (access control)', async () => {
    const guarded = await startHttpCrossProxy({ client, allowDestinations: ['127.0.0.1'], onRequest: (info) => (info.target.includes('/alarm') ? { status: 403, body: 'no' } : undefined) });
    try {
      const port = guarded.address().port;
      assert.equal((await fetch(`http://127.0.0.1:${port}/hc/${origin}/alarm`)).status, 403);
      assert.equal((await fetch(`http://127.0.0.1:${port}/hc/${origin}/hello`)).status, 200);
    } finally {
      await guarded.close();
    }
  });

  test('resolveTarget: a null mapping (§5.2) for a reverse-proxy style path', async () => {
    const reverse = await startHttpCrossProxy({ client, allowDestinations: ['127.0.0.1'], resolveTarget: (req) => (req.url?.startsWith('/dev1/') ? `${origin}/${req.url.slice(6)}` : undefined) });
    try {
      const res = await fetch(`http://127.0.0.1:${reverse.address().port}/dev1/hello`);
      assert.equal(await res.text(), 'Hello from coapsec');
    } finally {
      await reverse.close();
    }
  });
});

describe('HTTP→CoAP cross-proxy with a cache (RFC 8075 §8.1)', () => {
  let coapServer: CoapServer;
  let client: CoapClient;
  let proxy: HttpCrossProxy;
  let url: string;
  let now = 0;
  const cache = new ResponseCache({ maxBytes: 1 << 20, now: () => now });
  const originSaw: Array<{ method: string; etags: string[] }> = [];
  let version = 1;

  before(async () => {
    coapServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
    coapServer.resource('/counted', {
      GET: (req) => {
        const etags = req.options.filter((o) => o.number === OptionNumber.ETag).map((o) => Buffer.from(o.value).toString('hex'));
        originSaw.push({ method: 'GET', etags });
        const current = Uint8Array.of(version);
        if (etags.includes(Buffer.from(current).toString('hex'))) return { code: ResponseCode.Valid, etag: current, maxAge: 20 };
        return { code: ResponseCode.Content, etag: current, maxAge: 20, contentFormat: ContentFormat.TextPlain, payload: `version ${version}` };
      },
      PUT: () => {
        originSaw.push({ method: 'PUT', etags: [] });
        version++;
        return { code: ResponseCode.Changed };
      },
    });
    client = new CoapClient();
    proxy = await startHttpCrossProxy({ client, allowDestinations: ['127.0.0.1'], cache, timeout: 2_000 });
    url = `http://127.0.0.1:${proxy.address().port}/hc/coap://127.0.0.1:${coapServer.address().port}/counted`;
  });

  after(async () => {
    await proxy.close();
    await client.close();
    await coapServer.close();
  });

  test('fresh hits, Max-Age decrement, 304 from the cache, revalidation, invalidation by PUT', async () => {
    const first = await fetch(url);
    assert.deepEqual([first.status, first.headers.get('x-cache'), await first.text()], [200, 'MISS', 'version 1']);
    now += 5_000;
    const second = await fetch(url);
    assert.deepEqual([second.status, second.headers.get('x-cache'), await second.text()], [200, 'HIT', 'version 1']);
    assert.equal(second.headers.get('cache-control'), 'max-age=15', 'PR2.4 through the HTTP side');
    const conditional = await fetch(url, { headers: { 'if-none-match': '"01"' } });
    assert.deepEqual([conditional.status, conditional.headers.get('x-cache')], [304, 'HIT'], 'PR2.3 answered by the proxy');
    assert.equal(originSaw.length, 1, 'the origin saw one request so far');
    now += 20_000; // stale
    const revalidated = await fetch(url);
    assert.deepEqual([revalidated.status, await revalidated.text()], [200, 'version 1'], '§7 note 4: 2.03 → 200 with the cached body');
    assert.deepEqual(originSaw.at(-1), { method: 'GET', etags: ['01'] }, 'the stale entry was validated with its ETag');
    assert.equal(revalidated.headers.get('cache-control'), 'max-age=20');
    assert.equal((await fetch(url)).headers.get('x-cache'), 'HIT', 'fresh again');
    const put = await fetch(url, { method: 'PUT', body: 'x', headers: { 'content-type': 'text/plain' } });
    assert.equal(put.status, 204);
    const after = await fetch(url);
    assert.equal(await after.text(), 'version 2', 'the PUT invalidated the entry (§5.9.1.4)');
    assert.deepEqual(originSaw.at(-1), { method: 'GET', etags: ['01'] }, 'revalidated with the old tag, got the new representation');
    assert.equal(cache.stats().revalidations, 1);
  });
});

// --- integration: CoAP → HTTP --------------------------------------------------------------

describe('coapToHttp against an HTTP origin on loopback', () => {
  let server: Server;
  let url: string;
  const requests: Array<{ method: string; url: string; headers: Record<string, unknown>; body: string }> = [];

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        requests.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        if (req.url === '/doc') {
          if (req.headers['if-none-match'] === '"0a0b"') {
            res.writeHead(304, { etag: '"0a0b"', 'cache-control': 'max-age=90' });
            return res.end();
          }
          res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', etag: '"0a0b"', 'cache-control': 'max-age=90' });
          return res.end('{"doc":true}');
        }
        if (req.url === '/ignores-conditionals') {
          res.writeHead(200, { 'content-type': 'text/plain', etag: '"0c"', 'cache-control': 'max-age=5' });
          return res.end('same');
        }
        if (req.url === '/html') {
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', etag: '"a-long-opaque-http-etag"' });
          return res.end('<p>hi</p>');
        }
        if (req.url === '/slow') return setTimeout(() => res.end('late'), 2_000);
        if (req.url === '/huge') {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          return res.end(Buffer.alloc(5_000));
        }
        if (req.url?.startsWith('/put')) {
          res.writeHead(req.method === 'DELETE' ? 204 : 201);
          return res.end();
        }
        if (req.url === '/moved') {
          res.writeHead(302, { location: '/doc' });
          return res.end();
        }
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not here');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('GET → 200 → 2.05 with Content-Format, ETag and Max-Age from the HTTP headers', async () => {
    const r = await coapToHttp({ method: Method.GET, uri: `${url}/doc`, options: [{ number: OptionNumber.Accept, value: encodeUint(50) }] });
    assert.equal(r.code, ResponseCode.Content);
    assert.equal(r.httpStatus, 200);
    assert.equal(decodeString(r.payload), '{"doc":true}');
    assert.equal(r.contentFormat, ContentFormat.Json);
    assert.deepEqual(r.etag, Uint8Array.of(0x0a, 0x0b));
    assert.equal(r.maxAge, 90);
    assert.deepEqual(getOptions(r, OptionNumber.ETag), [Uint8Array.of(0x0a, 0x0b)]);
    assert.equal(requests.at(-1)!.headers['accept'], 'application/json');
  });

  test('CoAP ETag → If-None-Match; 304 → 2.03; an origin ignoring it still yields 2.03 on a match', async () => {
    const r = await coapToHttp({ method: Method.GET, uri: `${url}/doc`, options: [{ number: OptionNumber.ETag, value: Uint8Array.of(0x0a, 0x0b) }] });
    assert.equal(requests.at(-1)!.headers['if-none-match'], '"0a0b"');
    assert.equal(r.code, ResponseCode.Valid);
    assert.equal(r.payload.length, 0);
    assert.equal(r.maxAge, 90);
    assert.deepEqual(r.etag, Uint8Array.of(0x0a, 0x0b));
    const s = await coapToHttp({ method: Method.GET, uri: `${url}/ignores-conditionals`, options: [{ number: OptionNumber.ETag, value: Uint8Array.of(0x0c) }] });
    assert.equal(s.code, ResponseCode.Valid);
    assert.equal(s.maxAge, 5);
  });

  test('loose media type, hashed long ETag, no Cache-Control → Max-Age 0', async () => {
    const r = await coapToHttp({ method: Method.GET, uri: `${url}/html` });
    assert.equal(r.contentFormat, ContentFormat.TextPlain);
    assert.equal(r.etag?.length, 8);
    assert.equal(r.maxAge, 0);
    assert.equal(getOption(r, OptionNumber.MaxAge)?.length, 0, 'an explicit Max-Age 0 option');
  });

  test('PUT with Content-Format and If-Match → 201 → 2.01; DELETE → 204 → 2.02; POST 404 → 4.04 with its body', async () => {
    const put = await coapToHttp({
      method: Method.PUT,
      uri: `${url}/put/a`,
      payload: Buffer.from('{"x":1}'),
      options: [{ number: OptionNumber.ContentFormat, value: encodeUint(ContentFormat.Json) }, { number: OptionNumber.IfMatch, value: Uint8Array.of(7) }, { number: OptionNumber.IfNoneMatch, value: new Uint8Array(0) }],
    });
    assert.equal(put.code, ResponseCode.Created);
    const seen = requests.at(-1)!;
    assert.deepEqual([seen.method, seen.body, seen.headers['content-type'], seen.headers['if-match'], seen.headers['if-none-match']], ['PUT', '{"x":1}', 'application/json', '"07"', '*']);
    assert.equal((await coapToHttp({ method: Method.DELETE, uri: `${url}/put/a` })).code, ResponseCode.Deleted);
    const missing = await coapToHttp({ method: Method.POST, uri: `${url}/none`, payload: Buffer.from('x') });
    assert.equal(missing.code, ResponseCode.NotFound);
    assert.equal(decodeString(missing.payload), 'not here');
    const fetched = await coapToHttp({ method: Method.FETCH, uri: `${url}/none`, payload: Buffer.from('q') });
    assert.equal(requests.at(-1)!.method, 'QUERY');
    assert.equal(fetched.code, ResponseCode.NotFound);
  });

  test('failures: 5.04 on timeout, 5.02 on connection refused, too large or redirect, 5.05 for another scheme', async () => {
    assert.equal((await coapToHttp({ method: Method.GET, uri: `${url}/slow`, timeout: 200 })).code, ResponseCode.GatewayTimeout);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    assert.equal((await coapToHttp({ method: Method.GET, uri: `http://127.0.0.1:${port}/` })).code, ResponseCode.BadGateway);
    assert.equal((await coapToHttp({ method: Method.GET, uri: `${url}/huge`, maxBodySize: 1_000 })).code, ResponseCode.BadGateway);
    assert.equal((await coapToHttp({ method: Method.GET, uri: `${url}/moved` })).code, ResponseCode.BadGateway);
    assert.equal((await coapToHttp({ method: Method.GET, uri: 'ftp://127.0.0.1/x' })).code, ResponseCode.ProxyingNotSupported);
  });
});
