/**
 * The forward proxy applies the server's option checks before forwarding (issue 17 item 3; RFC
 * 7252 §5.4.1, §5.4.3, §5.4.5, §5.10.2, §5.7.1) and caps a client's Hop-Limit (item 10, RFC 8768).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, encodeUint, getOption, getOptions, getUintOption, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { PLAIN, securedSender } from '../src/client/security.js';
import { addDemoResources } from '../src/demo/resources.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { ResponseCache } from '../src/proxy/cache.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';

const ORIGIN = { address: '10.0.0.1', port: 5683 };
const PROXY = { address: '10.0.0.3', port: 5683 };
const PROXY2 = { address: '10.0.0.4', port: 5683 };
const CLIENT = { address: '10.0.0.2', port: 40000 };

function topology(options: { nextHop?: string; cache?: boolean } = {}) {
  const net = new FakeNetwork();
  const origin = new CoapServer(net.endpoint(ORIGIN, {}, 1));
  addDemoResources(origin, { tick: false });
  const proxyServer = new CoapServer(net.endpoint(PROXY, {}, 3));
  const upstreamEndpoint = net.endpoint({ address: PROXY.address, port: 40001 }, {}, 4);
  new ForwardProxy(proxyServer, {
    upstream: { endpoint: async () => upstreamEndpoint },
    // The fake network's origin is on a private range, refused unless allowed (issue 17 item 1).
    allowDestinations: ['10.0.0.0/8'],
    ...(options.nextHop ? { nextHop: options.nextHop } : {}),
    ...(options.cache ? { cache: new ResponseCache({ maxBytes: 1 << 20, now: () => net.clock.now() }) } : {}),
  });
  const client = net.endpoint(CLIENT, {}, 2);
  const send = (options: CoapOption[]) =>
    net.until(securedSender(client, PROXY, PLAIN)({ type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options: options.sort((a, b) => a.number - b.number), payload: EMPTY_BYTES }));
  const upstream = (): CoapMessage[] => net.log.filter((d) => d.from.port === 40001 && d.message.code === Method.GET).map((d) => d.message);
  return { net, send, upstream };
}

const proxyUri = (uri: string): CoapOption => ({ number: OptionNumber.ProxyUri, value: encodeString(uri) });
const str = (number: number, value: string): CoapOption => ({ number, value: encodeString(value) });
const uint = (number: number, value: number): CoapOption => ({ number, value: encodeUint(value) });

test('a repeated Uri-Port gets 4.02 and nothing goes upstream (§5.4.5)', async () => {
  const t = topology();
  const r = await t.send([str(OptionNumber.ProxyScheme, 'coap'), str(OptionNumber.UriHost, '10.0.0.1'), uint(OptionNumber.UriPort, 5683), uint(OptionNumber.UriPort, 5684), str(OptionNumber.UriPath, 'hello')]);
  assert.equal(r.message.code, ResponseCode.BadOption);
  assert.equal(t.upstream().length, 0);
});

test('two Proxy-Uri options get 4.02, also towards a next hop with a cache (no request smuggling past the cache key)', async () => {
  for (const options of [{}, { nextHop: `coap://${PROXY2.address}:${PROXY2.port}`, cache: true }]) {
    const t = topology(options);
    const r = await t.send([proxyUri('coap://10.0.0.1:5683/hello'), proxyUri('coap://10.0.0.1:5683/secret')]);
    assert.equal(r.message.code, ResponseCode.BadOption, JSON.stringify(options));
    assert.equal(t.upstream().length, 0, 'nothing forwarded');
  }
});

test('a 300-byte Uri-Path gets 4.02 (§5.4.3: a value of the wrong length is not that option)', async () => {
  const t = topology();
  const r = await t.send([str(OptionNumber.ProxyScheme, 'coap'), str(OptionNumber.UriHost, '10.0.0.1'), str(OptionNumber.UriPath, 'a'.repeat(300))]);
  assert.equal(r.message.code, ResponseCode.BadOption);
  assert.equal(t.upstream().length, 0);
});

test('Proxy-Uri together with Uri-Path, Uri-Query, Uri-Host or Uri-Port gets 4.02 (§5.10.2 MUST NOT)', async () => {
  for (const extra of [str(OptionNumber.UriPath, 'other'), str(OptionNumber.UriQuery, 'a=1'), str(OptionNumber.UriHost, '10.0.0.1'), uint(OptionNumber.UriPort, 5683)]) {
    const t = topology();
    const r = await t.send([proxyUri('coap://10.0.0.1:5683/hello'), extra]);
    assert.equal(r.message.code, ResponseCode.BadOption, `with option ${extra.number}`);
    assert.equal(t.upstream().length, 0);
  }
});

test('a malformed elective option is removed as the server removes it; a well-formed request still goes through', async () => {
  const t = topology();
  // Content-Format (elective) of 3 bytes: §5.4.3 treats it as unrecognized, i.e. ignored.
  const r = await t.send([proxyUri('coap://10.0.0.1:5683/hello'), { number: OptionNumber.ContentFormat, value: Uint8Array.of(1, 2, 3) }, { number: 65000, value: Uint8Array.of(1) }, { number: 65000, value: Uint8Array.of(2) }]);
  assert.equal(r.message.code, ResponseCode.Content);
  const up = t.upstream()[0]!;
  assert.equal(getOption(up, OptionNumber.ContentFormat), undefined, 'the malformed elective option is not forwarded');
  assert.equal(getOptions(up, 65000).length, 2, 'unknown Safe-to-Forward options go upstream as they came, repeated or not (§5.7.1)');
});

test('§5.7.1: an unrecognized Unsafe option in a request gets 4.02 Bad Option', async () => {
  const t = topology();
  const r = await t.send([proxyUri('coap://10.0.0.1:5683/hello'), { number: 65002, value: Uint8Array.of(1) }]);
  assert.equal(r.message.code, ResponseCode.BadOption);
  assert.equal(t.upstream().length, 0);
});

test('a client Hop-Limit above the proxy default is capped: 255 goes upstream as 15, a low one is decremented (RFC 8768)', async () => {
  const t = topology();
  await t.send([proxyUri('coap://10.0.0.1:5683/hello'), uint(OptionNumber.HopLimit, 255)]);
  await t.send([proxyUri('coap://10.0.0.1:5683/hello'), uint(OptionNumber.HopLimit, 5)]);
  assert.deepEqual(t.upstream().map((m) => getUintOption(m, OptionNumber.HopLimit)), [15, 4]);
});

test('a next-hop loop between two proxies ends within the default Hop-Limit, whatever the client asked for (RFC 8768)', async () => {
  const t = topology({ nextHop: `coap://${PROXY2.address}:${PROXY2.port}` });
  const second = new CoapServer(t.net.endpoint(PROXY2, {}, 5));
  const secondUp = t.net.endpoint({ address: PROXY2.address, port: 40002 }, {}, 6);
  new ForwardProxy(second, { upstream: { endpoint: async () => secondUp }, nextHop: `coap://${PROXY.address}:${PROXY.port}` });
  const r = await t.send([proxyUri('coap://10.0.0.1:5683/hello'), uint(OptionNumber.HopLimit, 255)]);
  assert.equal(r.message.code, ResponseCode.HopLimitReached);
  const forwarded = t.net.log.filter((d) => d.message.code === Method.GET && d.from.port !== CLIENT.port).length;
  // 255 is treated as 16: the legs carry 15, 14, …, 1, and the hop receiving 1 answers 5.08.
  assert.equal(forwarded, 15, 'forwarded requests in the loop (255 would make 254)');
});
