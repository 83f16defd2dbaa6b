/**
 * EDHOC over CoAP on real UDP sockets (127.0.0.1, port 0): a CoapClient given EDHOC credentials
 * runs EDHOC by itself before its first request to a server (combined with that request, RFC
 * 9668), for method 0 and method 3, and an observation after `establish()`.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { EdhocClient, EdhocServer } from '../src/edhoc-coap/index.js';
import { CoapServer } from '../src/server/server.js';
import { edhocPeers } from './support/edhoc-peers.js';

const closers: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

async function serve(peers: ReturnType<typeof edhocPeers>) {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  closers.push(() => server.close());
  let count = 0;
  server.resource('/hello', { GET: (request) => ({ code: ResponseCode.Content, payload: `hello ${request.context.oscore?.[0]?.peer ?? 'stranger'}` }) });
  server.resource('/counter', { GET: () => ({ code: ResponseCode.Content, payload: String(count) }) }, { observable: true });
  const edhoc = EdhocServer.attach(server, { responder: peers.responder });
  const origin = `coap://127.0.0.1:${server.address().port}`;
  return { server, edhoc, origin, bump: () => (count++, server.changed('/counter')) };
}

describe('EDHOC over CoAP on UDP sockets', () => {
  for (const method of [0, 3] as const) {
    it(`method ${method}: the client runs EDHOC by itself before its first GET, combined with it`, async () => {
      const peers = edhocPeers(method, 2);
      const { edhoc: server, origin } = await serve(peers);
      const client: CoapClient = new CoapClient({ bindIpv4: '127.0.0.1', security: (uri) => edhoc.securityFor(uri) });
      closers.push(() => client.close());
      const edhoc = new EdhocClient(client, { initiator: peers.initiator });
      const [first, second] = await Promise.all([client.get(`${origin}/hello`), client.get(`${origin}/hello`)]);
      assert.equal(first.text(), 'hello client');
      assert.equal(second.text(), 'hello client');
      assert.equal(first.context.oscore?.[0]?.peer, 'server');
      assert.equal(edhoc.securityFor(origin)!.handshakes, 1);
      assert.equal(server.contexts.length, 1);
    });
  }

  it('an observation over an EDHOC-made context (establish() first)', async () => {
    const peers = edhocPeers(3, 2);
    const { origin, bump } = await serve(peers);
    const client = new CoapClient({ bindIpv4: '127.0.0.1' });
    closers.push(() => client.close());
    const edhoc = new EdhocClient(client, { initiator: peers.initiator });
    const security = edhoc.securityFor(origin)!;
    await security.establish();
    const observation = await client.observe(`${origin}/counter`, { security });
    const seen: string[] = [];
    for await (const notification of observation) {
      seen.push(notification.text());
      if (seen.length === 2) break;
      bump();
    }
    assert.deepEqual(seen, ['0', '1']);
  });
});
