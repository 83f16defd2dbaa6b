/**
 * Issue 26: two `coapsec serve --store redis://…` processes serving the same client context never
 * use the same (key, nonce) pair. The device is provisioned with `coapsec store put` (one
 * command). Every datagram to and from each node passes a recording relay; from them, each
 * response's nonce under the server's Sender Key is worked out (RFC 8613 §5.2): its own Partial
 * IV (Echo challenges, Observe notifications: numbers from the node's reserved blocks), or the
 * request's Partial IV with the client's Sender ID when it has none. No nonce may protect two
 * different ciphertexts. Reservations are small (K = 8) so the nodes' blocks interleave.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { loadCredentials } from '../src/credentials/credentials-file.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { coapsec, killChildren, startDaemon } from './support/cli-harness.js';
import { TestRedis } from './store-redis-server.js';
import { auditNonces, recordingRelay } from './store-relay.js';

const directory = mkdtempSync(join(tmpdir(), 'coapsec-two-nodes-'));
const redisReady = TestRedis.start();
after(async () => {
  killChildren();
  await (await redisReady).stop();
  rmSync(directory, { recursive: true, force: true });
});

test('two serve --store processes on one Redis never reuse a (key, nonce) pair for one client context', async (t) => {
  const redis = await redisReady;
  const made = await coapsec(['credentials', 'new', '--peer', 'sensor-1', '--out-dir', directory]);
  assert.equal(made.code, 0, made.stderr);
  const serverFile = join(directory, 'server.json');
  const server = JSON.parse(readFileSync(serverFile, 'utf8')) as { recipients: Record<string, { context: Record<string, unknown> }> };
  for (const entry of Object.values(server.recipients)) entry.context['sequenceSaveInterval'] = 8;
  writeFileSync(serverFile, JSON.stringify(server));
  const put = await coapsec(['store', 'put', '--store', redis.url, '--credentials', serverFile]);
  assert.equal(put.code, 0, put.stderr);
  assert.match(put.stdout, /^stored sensor-1 \(kid [0-9a-f]+\) in redis:\/\/127\.0\.0\.1:\d+\n$/);

  const nodes = await Promise.all([0, 1].map(() => startDaemon(['serve', '--bind', '127.0.0.1:0', '--store', redis.url], /serving on coap:\/\/127\.0\.0\.1:(\d+)/)));
  const relays = await Promise.all(nodes.map((n) => recordingRelay(n.port)));
  t.after(async () => {
    relays.forEach((r) => r.close());
    await Promise.all(nodes.map((n) => n.stop()));
  });

  const entry = loadCredentials(join(directory, 'client.json')).oscore[0]!;
  const security = new OscoreClientSecurity(new OscoreSecurityContext(entry.context, new VolatileSequence(0)));
  const client = new CoapClient({ security: () => security, parameters: { ackTimeout: 1000, maxRetransmit: 2 } });
  t.after(() => client.close());
  const uris = relays.map((r) => `coap://127.0.0.1:${r.port}`);

  // Observations on both nodes: every notification takes a number from the node's blocks.
  const observations = await Promise.all(uris.flatMap((uri) => Array.from({ length: 4 }, () => client.observe(`${uri}/time`))));
  for (let round = 0; round < 12; round++) {
    for (const uri of uris) assert.equal((await client.get(`${uri}/hello`)).status, '2.05 Content');
  }
  await new Promise((r) => setTimeout(r, 3500));
  await Promise.all(observations.map((o) => o.cancel()));

  // One context on both nodes: one map of nonces across both relays, each walked in its own arrival order.
  const ciphertextByNonce = new Map<string, string>();
  let ownPartialIvs = 0;
  for (const relay of relays) ownPartialIvs += auditNonces(relay.log, ciphertextByNonce);
  assert.ok(ownPartialIvs >= 24, `the nodes used ${ownPartialIvs} Partial IVs of their own: more than one block of 8 each`);
  for (const node of nodes) assert.doesNotMatch(node.stderr(), /context store|Error/);
  assert.deepEqual(await Promise.all(nodes.map((n) => n.stop())), [0, 0], 'SIGTERM ends both nodes cleanly, their store connections closed');
});
