/**
 * A forward proxy that changes transport (issue 18 item 6; RFC 8323 §8, RFC 7252 §5.7.2): clients
 * on coap+ws:// and coap+tcp:// reach a UDP origin through it, a UDP client reaches stream origins
 * through it (Proxy-Scheme and Proxy-Uri naming coap+tcp / coap+ws), end-to-end OSCORE passes
 * through unread (RFC 8613 works over any CoAP transport), and the proxy can be an OSCORE endpoint
 * on the WebSocket leg (draft-ietf-core-oscore-capable-proxies §2.4). Real sockets on 127.0.0.1;
 * men in the middle (test/support/relays.ts) show what each leg carries.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CoapClient, type ClientOptions } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { ResponseCode } from '../src/coap/codes.js';
import { decodeMessage } from '../src/coap/codec.js';
import { MessageType, encodeString, getOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import type { EndpointContext } from '../src/exchange/context.js';
import { ForwardProxy, type ForwardProxyOptions } from '../src/proxy/forward-proxy.js';
import { allowList } from '../src/proxy/oscore-proxy.js';
import { ReverseProxy } from '../src/proxy/reverse-proxy.js';
import { startHttpCrossProxy } from '../src/proxy/http-cross-proxy.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import type { ServerSecurity } from '../src/server/security.js';
import { decodeWebSocketFrame } from '../src/stream/frame.js';
import type { TransportScheme } from '../src/transport/transport.js';
import { names, pair, peel } from './support/oscore-layers.js';
import { carried, udpRelay, webSocketRelay, type Relay, type Rewrite } from './support/relays.js';

const LOCAL = '127.0.0.1';
const BIG = Buffer.from(Array.from({ length: 1024 }, (_, i) => `blk${String(i).padStart(4, '0')}`).join('')); // 8 KiB
const SECRET_ANSWER = 'the-secret-answer-42';
const SECRET_UPLOAD = 'uploaded-plaintext-body';

interface Origin {
  server: CoapServer;
  port: number;
  state: { stored: string; counter: number; handled: number; layers: string[][] };
  tick(): void;
}

async function origin(scheme: TransportScheme = 'coap', security?: ServerSecurity): Promise<Origin> {
  const server = await CoapServer.listen({ ...(scheme === 'coap' ? {} : { scheme: scheme as 'coap+tcp' }), host: LOCAL, port: 0, ...(security ? { security } : {}) });
  const state = { stored: 'nothing yet', counter: 0, handled: 0, layers: [] as string[][] };
  const seen = (context: EndpointContext): void => {
    state.handled++;
    state.layers.push(names(context));
  };
  server.resource('hello', { GET: (r) => (seen(r.context), { code: ResponseCode.Content, payload: 'hello' }) });
  server.resource('secret', { GET: (r) => (seen(r.context), { code: ResponseCode.Content, payload: SECRET_ANSWER }) });
  server.resource('store', {
    GET: (r) => (seen(r.context), { code: ResponseCode.Content, payload: state.stored }),
    PUT: (r) => {
      seen(r.context);
      state.stored = Buffer.from(r.payload).toString();
      return { code: ResponseCode.Changed };
    },
  });
  server.resource('big', { GET: (r) => (seen(r.context), { code: ResponseCode.Content, payload: BIG }) });
  server.resource('counter', { GET: (r) => (seen(r.context), { code: ResponseCode.Content, payload: `count ${state.counter}` }) }, { observable: true });
  return {
    server,
    port: server.address().port,
    state,
    tick: () => {
      state.counter++;
      server.changed('counter');
    },
  };
}

interface Proxy {
  server: CoapServer;
  port: number;
  proxy: ForwardProxy;
  upstream: CoapClient;
  close(): Promise<void>;
}

async function forwardProxy(scheme: TransportScheme, options: Partial<ForwardProxyOptions> = {}, security?: ServerSecurity, upstreamOptions: ClientOptions = {}): Promise<Proxy> {
  const server = await CoapServer.listen({ ...(scheme === 'coap' ? {} : { scheme: scheme as 'coap+tcp' }), host: LOCAL, port: 0, ...(security ? { security } : {}) });
  const upstream = new CoapClient(upstreamOptions);
  const proxy = new ForwardProxy(server, { upstream, allowDestinations: [LOCAL], upstreamTimeout: 20_000, ...options });
  return {
    server,
    port: server.address().port,
    proxy,
    upstream,
    close: async () => {
      await proxy.close();
      await server.close();
      await upstream.close();
    },
  };
}

/** GET, PUT, Observe (three notifications, then cancelled upstream) and an 8 KiB Block2 GET of `base` through `client`. */
async function exercise(client: CoapClient, base: string, o: Origin, p: Proxy): Promise<void> {
  const hello = await client.get(`${base}/hello`);
  assert.equal(hello.status, '2.05 Content');
  assert.equal(hello.text(), 'hello');

  assert.equal((await client.put(`${base}/store`, SECRET_UPLOAD)).status, '2.04 Changed');
  assert.equal((await client.get(`${base}/store`)).text(), SECRET_UPLOAD);

  const big = await client.get(`${base}/big`, { blockSize: 512 });
  assert.equal(big.status, '2.05 Content');
  assert.ok(big.payload.equals(BIG), `the 8 KiB body arrives whole (${big.payload.length} bytes)`);

  const observation = await client.observe(`${base}/counter`);
  const seen = [(await observation.next()).value!.text()];
  for (let i = 0; i < 3; i++) {
    o.tick();
    seen.push((await observation.next()).value!.text());
  }
  assert.deepEqual(seen, ['count 0', 'count 1', 'count 2', 'count 3']);
  assert.equal(p.proxy.activeUpstreamObservations, 1);
  assert.equal(o.server.observations.count('/counter'), 1, 'the origin has one observer: the proxy');
  await observation.cancel();
  await until(() => o.server.observations.count('/counter') === 0, 'the upstream observation ends with the last client');
}

async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const typesOf = (relay: Relay, direction: 'to-server' | 'to-client'): number[] =>
  relay.passed.filter((m) => m.direction === direction).map((m) => decodeMessage(m.bytes)).filter((m) => m.code !== 0).map((m) => m.type);

for (const scheme of ['coap+ws', 'coap+tcp'] as const) {
  test(`a ${scheme} client reaches a UDP origin through the proxy: GET, PUT, Observe, 8 KiB Block2; the UDP leg is CON`, async () => {
    const o = await origin();
    const relay = await udpRelay(o.port);
    const p = await forwardProxy(scheme);
    const client = new CoapClient({ proxy: `${scheme}://${LOCAL}:${p.port}` });
    try {
      await exercise(client, `coap://${LOCAL}:${relay.port}`, o, p);
      const requests = typesOf(relay, 'to-server');
      assert.ok(requests.length >= 8, `${requests.length} requests went upstream`);
      assert.deepEqual([...new Set(requests)], [MessageType.CON], 'a stream client gets CON semantics on the UDP leg');
    } finally {
      await client.close();
      await p.close();
      await relay.close();
      await o.server.close();
    }
  });
}

test('a UDP upstream leg retransmits: a lost first datagram towards the origin costs a retransmission, not the request', async () => {
  const o = await origin();
  let dropped = 0;
  const relay = await udpRelay(o.port, (_bytes, direction) => direction === 'to-server' && dropped++ === 0);
  const p = await forwardProxy('coap+ws');
  const client = new CoapClient({ proxy: `coap+ws://${LOCAL}:${p.port}` });
  try {
    assert.equal((await client.get(`coap://${LOCAL}:${relay.port}/hello`)).text(), 'hello');
    assert.equal(dropped, 2, 'one datagram dropped, its retransmission passed');
    assert.equal(o.state.handled, 1);
  } finally {
    await client.close();
    await p.close();
    await relay.close();
    await o.server.close();
  }
});

for (const scheme of ['coap+tcp', 'coap+ws'] as const) {
  test(`a UDP client reaches a ${scheme} origin through the proxy (Proxy-Scheme and Proxy-Uri); one connection per origin, closed with the proxy`, async () => {
    const o = await origin(scheme);
    const p = await forwardProxy('coap');
    const client = new CoapClient({ proxy: `coap://${LOCAL}:${p.port}` });
    const direct = new CoapClient();
    try {
      await exercise(client, `${scheme}://${LOCAL}:${o.port}`, o, p);
      const many = await Promise.all(Array.from({ length: 8 }, () => client.get(`${scheme}://${LOCAL}:${o.port}/hello`)));
      assert.deepEqual([...new Set(many.map((r) => r.text()))], ['hello']);
      const byProxyUri = await direct.get(`coap://${LOCAL}:${p.port}`, { options: [{ number: OptionNumber.ProxyUri, value: encodeString(`${scheme}://${LOCAL}:${o.port}/hello`) }] });
      assert.equal(byProxyUri.text(), 'hello', 'Proxy-Uri naming a stream scheme');
      assert.equal(o.server.endpoint.carrier.getStats().peers, 1, 'every exchange shared one connection');
      await p.close();
      await until(() => o.server.endpoint.carrier.getStats().peers === 0, 'the proxy closed its connection to the origin');
    } finally {
      await client.close();
      await direct.close();
      await p.close();
      await o.server.close();
    }
  });
}

test('a coaps+tcp origin (TLS, certificate checked against the target host) through a coap+ws proxy', async () => {
  const pem = (name: string): Buffer => readFileSync(new URL(`../../test/fixtures/tls/${name}`, import.meta.url));
  const server = await CoapServer.listen({ scheme: 'coaps+tcp', host: LOCAL, port: 0, tls: { cert: pem('server.pem'), key: pem('server.key') } });
  server.resource('hello', { GET: (r) => ({ code: ResponseCode.Content, payload: `hello from ${r.context.peer.address}` }) });
  const p = await forwardProxy('coap+ws', {}, undefined, { tls: { ca: pem('ca.pem') } });
  const client = new CoapClient({ proxy: `coap+ws://${LOCAL}:${p.port}` });
  try {
    assert.equal((await client.get(`coaps+tcp://${LOCAL}:${server.address().port}/hello`)).text(), `hello from ${LOCAL}`, 'the proxy trusted the certificate for 127.0.0.1');
  } finally {
    await client.close();
    await p.close();
    await server.close();
  }
});

test('a chain that changes transport twice: coap+ws client → proxy A → next hop B on coap+tcp → UDP origin', async () => {
  const o = await origin();
  const b = await forwardProxy('coap+tcp');
  const a = await forwardProxy('coap+ws', { nextHop: `coap+tcp://${LOCAL}:${b.port}` });
  const client = new CoapClient({ proxy: `coap+ws://${LOCAL}:${a.port}` });
  try {
    assert.equal((await client.get(`coap://${LOCAL}:${o.port}/hello`)).text(), 'hello');
    const big = await client.get(`coap://${LOCAL}:${o.port}/big`, { blockSize: 1024 });
    assert.ok(big.payload.equals(BIG));
    assert.equal(b.proxy.stats.forwarded, a.proxy.stats.forwarded, 'everything A forwarded went through B');
    assert.ok(a.proxy.stats.forwarded >= 2);
  } finally {
    await client.close();
    await a.close();
    await b.close();
    await o.server.close();
  }
});

test('coaps+tcp as a Proxy-Scheme is refused with 5.02 when the proxy has no TLS trust for it, not a crash', async () => {
  const o = await origin('coap+tcp');
  const p = await forwardProxy('coap');
  const client = new CoapClient({ proxy: `coap://${LOCAL}:${p.port}` });
  try {
    // A coap+tcp server spoken to with TLS: the handshake fails, the client gets the proxy's 5.02.
    const response = await client.get(`coaps+tcp://${LOCAL}:${o.port}/hello`);
    assert.equal(response.status, '5.02 Bad Gateway');
    assert.equal(o.state.handled, 0);
  } finally {
    await client.close();
    await p.close();
    await o.server.close();
  }
});

test('a reverse proxy on coap+ws mounting a UDP origin and a coap+tcp origin: block-wise and Observe on both', async () => {
  const udp = await origin();
  const tcp = await origin('coap+tcp');
  const server = await CoapServer.listen({ scheme: 'coap+ws', host: LOCAL, port: 0 });
  const upstream = new CoapClient();
  const proxy = new ReverseProxy(server, {
    upstream,
    mappings: [
      { prefix: '/udp', target: `coap://${LOCAL}:${udp.port}/` },
      { prefix: '/tcp', target: `coap+tcp://${LOCAL}:${tcp.port}/` },
    ],
  });
  const client = new CoapClient();
  try {
    for (const [prefix, o] of [['udp', udp], ['tcp', tcp]] as const) {
      const base = `coap+ws://${LOCAL}:${server.address().port}/${prefix}`;
      const big = await client.get(`${base}/big`, { blockSize: 256 });
      assert.ok(big.payload.equals(BIG), `${prefix}: 8 KiB whole`);
      assert.equal((await client.put(`${base}/store`, `via ${prefix}`)).status, '2.04 Changed');
      assert.equal(o.state.stored, `via ${prefix}`);
      const observation = await client.observe(`${base}/counter`);
      const first = (await observation.next()).value!.text();
      o.tick();
      assert.deepEqual([first, (await observation.next()).value!.text()], ['count 0', 'count 1']);
      await observation.cancel();
      await until(() => o.server.observations.count('/counter') === 0, `${prefix}: the origin's observation ends`);
    }
    assert.equal(tcp.server.endpoint.carrier.getStats().peers, 1, 'one connection to the coap+tcp origin');
  } finally {
    await client.close();
    await proxy.close();
    await server.close();
    await upstream.close();
    await udp.server.close();
    await tcp.server.close();
  }
});

test('the HTTP→CoAP cross-proxy reaches coap+tcp and coap+ws origins (RFC 8075 §5.3 with the RFC 8323 §8 schemes); coap still works', async () => {
  const tcp = await origin('coap+tcp');
  const ws = await origin('coap+ws');
  const udp = await origin();
  const client = new CoapClient();
  const http = await startHttpCrossProxy({ client, allowDestinations: [LOCAL] });
  try {
    for (const [scheme, o] of [['coap+tcp', tcp], ['coap+ws', ws], ['coap', udp]] as const) {
      const reply = await fetch(`http://${LOCAL}:${http.address().port}/hc/${scheme}://${LOCAL}:${o.port}/hello`);
      assert.equal(reply.status, 200, scheme);
      assert.equal(await reply.text(), 'hello', scheme);
    }
    const big = await fetch(`http://${LOCAL}:${http.address().port}/hc/coap+tcp://${LOCAL}:${tcp.port}/big`);
    assert.ok(Buffer.from(await big.arrayBuffer()).equals(BIG));
  } finally {
    await http.close();
    await client.close();
    await tcp.server.close();
    await ws.server.close();
    await udp.server.close();
  }
});

// --- OSCORE ------------------------------------------------------------------------------------

/** Client C, proxy P on coap+ws behind a WebSocket relay, origin S on UDP behind a UDP relay. */
async function oscoreSetup(options: { hopLayer?: boolean; rewrite?: Rewrite } = {}) {
  const cs = pair('C-S', 0x5f, 0x01);
  const cp = pair('C-P', 0x20, 0x02);
  const o = await origin('coap', new OscoreServerSecurity([cs.receiver]));
  const udp = await udpRelay(o.port);
  const atProxy: Array<{ layers: string[]; bytes: Buffer }> = [];
  const p = await forwardProxy(
    'coap+ws',
    {
      authorize: (context, message) => {
        atProxy.push({ layers: names(context), bytes: Buffer.concat([...message.options.map((x) => Buffer.from(x.value)), Buffer.from(message.payload)]) });
        return options.hopLayer ? allowList(['C-P'])(context, message) : true;
      },
    },
    options.hopLayer ? new OscoreServerSecurity([cp.receiver]) : undefined,
  );
  const ws = await webSocketRelay(p.port, options.rewrite);
  const proxyUri = `coap+ws://${LOCAL}:${ws.port}`;
  const e2e = new OscoreClientSecurity(cs.sender);
  const clientOptions: ClientOptions = options.hopLayer
    ? { security: () => e2e, via: () => [{ uri: proxyUri, context: cp.sender }] }
    : { security: () => e2e, proxy: proxyUri };
  const client = new CoapClient(clientOptions);
  return {
    cs, cp, o, p, ws, udp, atProxy, client,
    base: `coap://${LOCAL}:${udp.port}`,
    close: async () => {
      await client.close();
      await ws.close();
      await p.close();
      await udp.close();
      await o.server.close();
    },
  };
}

test('end-to-end OSCORE from a coap+ws client to a UDP origin through the proxy: the proxy never sees the plaintext, on either leg', async () => {
  const t = await oscoreSetup();
  try {
    assert.equal((await t.client.get(`${t.base}/secret`)).text(), SECRET_ANSWER);
    await exercise(t.client, t.base, t.o, t.p);
    assert.ok(t.o.state.layers.every((l) => l.join() === 'C-S'), 'the origin removed the end-to-end layer of every request');
    for (const text of [SECRET_ANSWER, SECRET_UPLOAD, 'secret', 'blk0001', 'count 2', 'store']) {
      assert.ok(!carried(t.ws, text), `the WebSocket leg does not carry "${text}"`);
      assert.ok(!carried(t.udp, text), `the UDP leg does not carry "${text}"`);
      assert.ok(!t.atProxy.some((m) => m.bytes.includes(Buffer.from(text))), `the proxy is never handed "${text}"`);
    }
    assert.ok(t.atProxy.length >= 8 && t.atProxy.every((m) => m.layers.length === 0), 'the proxy removed no layer: it has none');
  } finally {
    await t.close();
  }
});

test('the proxy as an OSCORE endpoint on the WebSocket leg, nested with end-to-end OSCORE to the UDP origin', async () => {
  const t = await oscoreSetup({ hopLayer: true });
  const withoutHop = new CoapClient({ security: () => new OscoreClientSecurity(t.cs.sender), proxy: `coap+ws://${LOCAL}:${t.ws.port}` });
  try {
    assert.equal((await t.client.get(`${t.base}/secret`)).text(), SECRET_ANSWER);
    await exercise(t.client, t.base, t.o, t.p);
    // C→P over WebSockets: two layers, C–P outside; P→S over UDP: the end-to-end layer only.
    const toProxy = t.ws.passed.filter((m) => m.direction === 'to-server').map((m) => decodeWebSocketFrame(m.bytes)).filter((m) => m.code > 0 && m.code < 32);
    assert.ok(toProxy.length >= 8);
    for (const m of toProxy) assert.deepEqual(peel(m, [t.cs, t.cp]).layers, ['C-P', 'C-S']);
    const toOrigin = t.udp.passed.filter((m) => m.direction === 'to-server').map((m) => decodeMessage(m.bytes)).filter((m) => m.code > 0 && m.code < 32);
    for (const m of toOrigin) assert.deepEqual(peel(m, [t.cs, t.cp]).layers, ['C-S']);
    assert.ok(t.atProxy.every((m) => m.layers.join() === 'C-P'), 'the proxy removed its own layer, and only that');
    for (const text of [SECRET_ANSWER, SECRET_UPLOAD, 'secret', 'blk0001']) {
      assert.ok(!carried(t.ws, text) && !carried(t.udp, text), `no leg carries "${text}"`);
      assert.ok(!t.atProxy.some((m) => m.bytes.includes(Buffer.from(text))), `the proxy is never handed "${text}"`);
    }
    // Without the C–P layer the proxy refuses to forward (§2.4 step 4), protected by nothing.
    const handled = t.o.state.handled;
    const refused = await withoutHop.get(`${t.base}/secret`).then((r) => r.status, (e: Error) => e.message);
    assert.match(refused, /unprotected 4\.01 Unauthorized: "not authorized to use this proxy"/);
    assert.equal(t.o.state.handled, handled);
  } finally {
    await withoutHop.close();
    await t.close();
  }
});

/** Flips the last byte (in the OSCORE ciphertext) of the next request (or response) on the WebSocket leg, when armed. */
function tamperer(direction: 'to-server' | 'to-client') {
  const state = { armed: false, tampered: 0 };
  const rewrite: Rewrite = (bytes, d) => {
    if (!state.armed || d !== direction) return undefined;
    const message = decodeWebSocketFrame(bytes);
    const wanted = direction === 'to-server' ? message.code > 0 && message.code < 32 : message.code >= 64 && message.code < 224;
    if (!wanted || getOption(message, OptionNumber.Oscore) === undefined || bytes.length < 12) return undefined;
    state.armed = false;
    state.tampered++;
    const changed = Buffer.from(bytes);
    changed[changed.length - 1]! ^= 0x01;
    return changed;
  };
  return { state, rewrite };
}

test('tampering on the WebSocket leg: a flipped ciphertext byte in a request gets 4.00 from the origin, never an answer', async () => {
  const tamper = tamperer('to-server');
  const t = await oscoreSetup({ rewrite: tamper.rewrite });
  try {
    assert.equal((await t.client.get(`${t.base}/secret`)).text(), SECRET_ANSWER, 'untouched, the relay is transparent');
    const handled = t.o.state.handled;
    tamper.state.armed = true;
    const outcome = await t.client.get(`${t.base}/secret`).then((r) => r.status, (e: Error) => e.message);
    assert.equal(tamper.state.tampered, 1);
    // RFC 8613 §8.2 step 6: decryption fails → 4.00 Bad Request, unprotected; the client reports
    // it and accepts nothing from it (an unprotected answer to a protected request, §8.4).
    assert.match(outcome, /unprotected 4\.00 Bad Request: "Decryption failed"/);
    assert.equal(t.o.state.handled, handled, 'the origin application never saw the tampered request');
  } finally {
    await t.close();
  }
});

test('tampering on the WebSocket leg: a flipped ciphertext byte in a response is refused by the client, no plaintext accepted', async () => {
  const tamper = tamperer('to-client');
  const t = await oscoreSetup({ rewrite: tamper.rewrite });
  try {
    tamper.state.armed = true;
    const outcome = await t.client.get(`${t.base}/secret`).then((r) => `accepted ${r.status} ${r.text()}`, (e: Error) => `${e.name}: ${e.message}`);
    assert.equal(tamper.state.tampered, 1);
    assert.match(outcome, /^VerificationError: /, outcome);
    assert.doesNotMatch(outcome, new RegExp(SECRET_ANSWER));
  } finally {
    await t.close();
  }
});

test('tampering on the WebSocket leg with the proxy as OSCORE endpoint: the proxy answers 4.00 itself, nothing reaches the origin', async () => {
  const tamper = tamperer('to-server');
  const t = await oscoreSetup({ hopLayer: true, rewrite: tamper.rewrite });
  try {
    tamper.state.armed = true;
    const outcome = await t.client.get(`${t.base}/secret`).then((r) => r.status, (e: Error) => e.message);
    assert.equal(tamper.state.tampered, 1);
    assert.match(outcome, /unprotected 4\.00 Bad Request: "Decryption failed"/);
    assert.equal(t.atProxy.length, 0, 'the request was refused before the forwarding decision');
    assert.equal(t.o.state.handled, 0);
  } finally {
    await t.close();
  }
});
