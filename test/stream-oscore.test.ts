/**
 * OSCORE end to end over CoAP over TCP and WebSockets (RFC 8613 works over any CoAP transport;
 * RFC 8323): the stream carrier sits below the exchange layer, OSCORE above it, so the same
 * protect/verify path runs unchanged. A relay on the WebSocket leg that flips a ciphertext bit
 * shows that the transport is not what protects the request.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES } from '../src/coap/message.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import type { StreamScheme } from '../src/transport/transport.js';

const COMMON = { masterSecret: Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex'), masterSalt: Buffer.from('9e7ca92223786340', 'hex') };

async function oscoreServer(scheme: StreamScheme) {
  const server = await CoapServer.listen({
    scheme,
    host: '127.0.0.1',
    port: 0,
    security: new OscoreServerSecurity([new OscoreSecurityContext({ ...COMMON, senderId: Buffer.from([1]), recipientIds: [EMPTY_BYTES] }, new VolatileSequence())]),
  });
  let counter = 0;
  server.resource('secret', { GET: (request) => ({ code: ResponseCode.Content, payload: `secret for ${request.context.oscore?.[0]?.kid ?? 'nobody'}` }) }, { requireOscore: true });
  server.resource('big', { GET: () => ({ code: ResponseCode.Content, payload: 'b'.repeat(4000) }) }, { requireOscore: true });
  server.resource('counter', { GET: () => ({ code: ResponseCode.Content, payload: String(counter) }) }, { requireOscore: true, observable: true });
  return {
    server,
    port: server.address().port,
    tick: () => {
      counter++;
      server.changed('counter');
    },
  };
}

const clientSecurity = () => new OscoreClientSecurity(new OscoreSecurityContext({ ...COMMON, senderId: EMPTY_BYTES, recipientIds: [Buffer.from([1])] }, new VolatileSequence()));

for (const scheme of ['coap+tcp', 'coap+ws'] as const) {
  test(`OSCORE over ${scheme}: GET, block-wise GET and Observe are protected end to end; plain CoAP is refused`, async () => {
    const s = await oscoreServer(scheme);
    const oscore = clientSecurity();
    const client = new CoapClient({ security: () => oscore });
    const plain = new CoapClient();
    try {
      const base = `${scheme}://127.0.0.1:${s.port}`;
      const response = await client.get(`${base}/secret`);
      assert.equal(response.text(), 'secret for ');
      assert.ok(response.wire, 'the response came protected');
      const big = await client.get(`${base}/big`, { blockSize: 256 });
      assert.equal(big.payload.length, 4000);
      const observation = await client.observe(`${base}/counter`);
      const seen = [(await observation.next()).value!.text()];
      s.tick();
      seen.push((await observation.next()).value!.text());
      assert.deepEqual(seen, ['0', '1']);
      await observation.cancel();
      assert.equal((await plain.get(`${base}/secret`)).status, '4.01 Unauthorized');
    } finally {
      await client.close();
      await plain.close();
      await s.server.close();
    }
  });
}

test('OSCORE over coap+ws: a relay that flips one ciphertext bit on the WebSocket leg gets the request rejected, not answered', async () => {
  const s = await oscoreServer('coap+ws');
  let tamper = false;
  let tampered = 0;
  // A WebSocket relay between client and server: passes CoAP messages through, and when told to,
  // flips the last payload byte (inside the OSCORE ciphertext) of client → server messages.
  const relay = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/.well-known/coap', handleProtocols: () => 'coap' });
  await new Promise<void>((resolve) => relay.once('listening', () => resolve()));
  relay.on('connection', (downstream) => {
    const upstream = new WebSocket(`ws://127.0.0.1:${s.port}/.well-known/coap`, 'coap');
    const early: Buffer[] = [];
    downstream.on('message', (data: Buffer) => {
      let bytes = Buffer.from(data);
      // The CoAP code is byte 1 (WebSocket framing, Len 0): tamper with requests (class 0), not signals.
      if (tamper && bytes[1]! > 0 && bytes[1]! < 32 && bytes.length > 10) {
        bytes = Buffer.from(bytes);
        bytes[bytes.length - 1]! ^= 0x01;
        tampered++;
      }
      if (upstream.readyState === WebSocket.OPEN) upstream.send(bytes);
      else early.push(bytes);
    });
    upstream.on('open', () => early.splice(0).forEach((b) => upstream.send(b)));
    upstream.on('message', (data: Buffer) => downstream.send(data));
    upstream.on('close', () => downstream.close());
    downstream.on('close', () => upstream.close());
  });
  const relayPort = (relay.address() as { port: number }).port;
  const oscore = clientSecurity();
  const client = new CoapClient({ security: () => oscore });
  try {
    const base = `coap+ws://127.0.0.1:${relayPort}`;
    assert.equal((await client.get(`${base}/secret`)).text(), 'secret for ', 'untouched, the relay is transparent');
    tamper = true;
    const response = await client.get(`${base}/secret`).then(
      (r) => r.status,
      (e: Error) => e.message,
    );
    assert.equal(tampered, 1);
    assert.doesNotMatch(response, /^2\.05/, 'a tampered request is never served');
    assert.match(response, /4\.00|Bad Request|4\.01/);
  } finally {
    await client.close();
    for (const c of relay.clients) c.terminate();
    await new Promise<void>((resolve) => relay.close(() => resolve()));
    await s.server.close();
  }
});
