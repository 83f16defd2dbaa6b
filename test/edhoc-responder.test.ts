/**
 * The EDHOC responder as a library user gets it (coapsec/edhoc-coap attachEdhocResponder, what
 * `coapsec serve` runs): EDHOC on /.well-known/edhoc, each request of an EDHOC-made context checked
 * against its peer's grant (a protected 4.03 outside it, the handler sees `edhoc NAME` inside), and
 * with `kudos` the KUDOS offer in EDHOC's EAD (draft-ietf-core-oscore-key-update §4.8) and the
 * /.well-known/kudos resource.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { CredentialStore } from '../src/edhoc/index.js';
import { attachEdhocResponder, EdhocClientSecurity, postOverClient } from '../src/edhoc-coap/index.js';
import { CoapServer } from '../src/server/server.js';
import { edhocPeers } from './support/edhoc-peers.js';

const directory = mkdtempSync(join(tmpdir(), 'coapsec-edhoc-responder-'));
after(() => rmSync(directory, { recursive: true, force: true }));

test('attachEdhocResponder: grants checked per peer, the peer named "edhoc NAME", KUDOS offered in EDHOC', async (t) => {
  const peers = edhocPeers(3, 2);
  const granted = new CredentialStore().addCcs(peers.initiator.credential.cred, undefined, { name: 'alice', allows: (uri) => uri.endsWith('/hello') });
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  const handled: string[] = [];
  for (const path of ['/hello', '/secret']) {
    server.resource(path, { GET: (request) => (handled.push(path), { code: ResponseCode.Content, payload: `${path} for ${request.context.oscore?.[0]?.peer}` }) }, { requireOscore: true });
  }
  const lines: string[] = [];
  attachEdhocResponder(server, { responder: { ...peers.responder, peers: granted }, log: (line) => lines.push(line), kudos: { stateDirectory: directory } });
  const origin = `coap://127.0.0.1:${server.address().port}`;
  const coap = new CoapClient({ bindIpv4: '127.0.0.1' });
  const security = new EdhocClientSecurity({ initiator: peers.initiator, post: postOverClient(coap, origin), kudos: 'full' });
  const client = new CoapClient({ bindIpv4: '127.0.0.1', security: () => security });
  t.after(async () => {
    await client.close();
    await coap.close();
    await server.close();
  });

  assert.equal((await client.get(`${origin}/hello`)).text(), '/hello for edhoc alice');
  const refused = await client.get(`${origin}/secret`);
  assert.equal(refused.status, '4.03 Forbidden');
  assert.equal(refused.text(), 'edhoc alice is not granted this resource');
  assert.deepEqual(handled, ['/hello'], 'the handler outside the grant never ran');
  assert.equal(security.peerKudos, 'full', 'the responder offered KUDOS in message_2');
  assert.match(lines.join('\n'), /^EDHOC with alice: method 3, cipher suite 2, .*; KUDOS support of the peer: FULL$/m);
  assert.equal((await coap.get(`${origin}/.well-known/core`)).text().includes('</.well-known/kudos>'), true, 'the KUDOS resource is served');
});
