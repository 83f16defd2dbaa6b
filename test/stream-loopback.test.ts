/** GET, PUT, Observe and block-wise between our client and server over real loopback TCP and WebSockets (RFC 8323). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapServer } from '../src/server/server.js';
import type { StreamScheme } from '../src/transport/transport.js';

const BIG = Buffer.alloc(5000, 0).map((_, i) => 0x41 + (i % 26));

async function serve(scheme: StreamScheme) {
  let stored = 'initial';
  let counter = 0;
  const server = await CoapServer.listen({ scheme, host: '127.0.0.1', port: 0 });
  server.resource('hello', { GET: () => ({ code: ResponseCode.Content, payload: 'world' }) });
  server.resource('store', {
    GET: () => ({ code: ResponseCode.Content, payload: stored }),
    PUT: (request) => {
      stored = Buffer.from(request.payload).toString();
      return { code: ResponseCode.Changed };
    },
  });
  server.resource('big', { GET: () => ({ code: ResponseCode.Content, payload: BIG }) });
  server.resource('counter', { GET: () => ({ code: ResponseCode.Content, payload: String(counter) }) }, { observable: true });
  const base = `${scheme}://127.0.0.1:${server.address().port}`;
  return {
    server,
    base,
    tick: () => {
      counter++;
      server.changed('counter');
    },
  };
}

for (const scheme of ['coap+tcp', 'coap+ws'] as const) {
  test(`${scheme}: GET and PUT reuse one connection`, async () => {
    const s = await serve(scheme);
    const client = new CoapClient();
    try {
      const hello = await client.get(`${s.base}/hello`);
      assert.equal(hello.status, '2.05 Content');
      assert.equal(hello.text(), 'world');
      assert.equal(hello.context.scheme, scheme);
      const put = await client.put(`${s.base}/store`, 'updated');
      assert.equal(put.status, '2.04 Changed');
      assert.equal((await client.get(`${s.base}/store`)).text(), 'updated');
      assert.equal(s.server.endpoint.stats().peers, 1, 'one connection for all three exchanges');
    } finally {
      await client.close();
      await s.server.close();
    }
  });

  test(`${scheme}: a 5000-byte body arrives whole (block-wise and whole-message)`, async () => {
    const s = await serve(scheme);
    const client = new CoapClient();
    try {
      const whole = await client.get(`${s.base}/big`, { blockSize: 256 });
      assert.equal(whole.payload.length, BIG.length);
      assert.deepEqual(whole.payload, Buffer.from(BIG));
      const put = await client.put(`${s.base}/store`, 'p'.repeat(3000), { blockSize: 512 });
      assert.equal(put.status, '2.04 Changed');
      assert.equal((await client.get(`${s.base}/store`)).text(), 'p'.repeat(3000));
    } finally {
      await client.close();
      await s.server.close();
    }
  });

  test(`${scheme}: Observe delivers notifications, and the observation ends on the server with the connection (§7.4)`, async () => {
    const s = await serve(scheme);
    const client = new CoapClient();
    try {
      const observation = await client.observe(`${s.base}/counter`);
      const seen: string[] = [(await observation.next()).value!.text()];
      for (let i = 0; i < 3; i++) {
        s.tick();
        seen.push((await observation.next()).value!.text());
      }
      assert.deepEqual(seen, ['0', '1', '2', '3']);
      assert.equal(s.server.observations.observers('/counter').length, 1);
      await client.close();
      for (let i = 0; i < 100 && s.server.observations.observers('/counter').length > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(s.server.observations.observers('/counter').length, 0, 'closing the connection removed the observer');
    } finally {
      await client.close();
      await s.server.close();
    }
  });

  test(`${scheme}: CoAP Ping over the connection (§5.4)`, async () => {
    const s = await serve(scheme);
    const client = new CoapClient();
    try {
      const rtt = await client.ping(s.base);
      assert.ok(rtt >= 0 && rtt < 5000);
    } finally {
      await client.close();
      await s.server.close();
    }
  });
}

const fixture = (name: string): Buffer => readFileSync(new URL(`../../test/fixtures/tls/${name}`, import.meta.url));

test('coaps+tcp with certificates: the client checks the server certificate and the context names it', async () => {
  const server = await CoapServer.listen({ scheme: 'coaps+tcp', host: '127.0.0.1', port: 0, tls: { cert: fixture('server.pem'), key: fixture('server.key') } });
  server.resource('hello', { GET: () => ({ code: ResponseCode.Content, payload: 'secure' }) });
  const trusting = new CoapClient({ tls: { ca: fixture('ca.pem') } });
  const untrusting = new CoapClient();
  try {
    const response = await trusting.get(`coaps+tcp://127.0.0.1:${server.address().port}/hello`);
    assert.equal(response.text(), 'secure');
    assert.equal(response.context.security?.kind, 'tls');
    assert.equal(response.context.security?.identity, 'CN=localhost');
    await assert.rejects(untrusting.get(`coaps+tcp://127.0.0.1:${server.address().port}/hello`), /certificate/);
  } finally {
    await trusting.close();
    await untrusting.close();
    await server.close();
  }
});

test('coaps+tcp with TLS-PSK: the handler sees the PSK identity; a wrong key gets no answer', async () => {
  const key = Buffer.from('0123456789abcdef');
  const server = await CoapServer.listen({ scheme: 'coaps+tcp', host: '127.0.0.1', port: 0, tls: { psk: new Map([['client-1', key]]) } });
  server.resource('whoami', { GET: (request) => ({ code: ResponseCode.Content, payload: `${request.context.security?.mode}:${request.context.security?.identity}` }) });
  const good = new CoapClient({ tls: { psk: { identity: 'client-1', key } } });
  const bad = new CoapClient({ tls: { psk: { identity: 'client-1', key: Buffer.from('not the right key') } } });
  try {
    assert.equal((await good.get(`coaps+tcp://127.0.0.1:${server.address().port}/whoami`)).text(), 'psk:client-1');
    await assert.rejects(bad.get(`coaps+tcp://127.0.0.1:${server.address().port}/whoami`));
  } finally {
    await good.close();
    await bad.close();
    await server.close();
  }
});

test('coaps+ws: WebSockets over TLS with certificates', async () => {
  const server = await CoapServer.listen({ scheme: 'coaps+ws', host: '127.0.0.1', port: 0, tls: { cert: fixture('server.pem'), key: fixture('server.key') } });
  server.resource('hello', { GET: () => ({ code: ResponseCode.Content, payload: 'wss' }) });
  const client = new CoapClient({ tls: { ca: fixture('ca.pem') } });
  try {
    const response = await client.get(`coaps+ws://127.0.0.1:${server.address().port}/hello`);
    assert.equal(response.text(), 'wss');
    assert.equal(response.context.scheme, 'coaps+ws');
  } finally {
    await client.close();
    await server.close();
  }
});
