/**
 * Issue 26: `coapsec serve --store redis://… --credentials FILE` with an "edhoc" section. Two
 * serve processes share Redis; a client runs EDHOC with node A (through a relay standing in for the
 * balancer), A is SIGKILLed, the relay sends the client to node B, and the client carries on there
 * after one Echo round trip (RFC 8613 Appendix B.1.2) — no second EDHOC run — with B enforcing the
 * grant of the credentials file's peer entry on the context A made. No nonce is used twice.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoapClient } from '../src/client/client.js';
import { edhocInitiatorConfig, loadCredentials } from '../src/credentials/index.js';
import { EdhocClient } from '../src/edhoc-coap/index.js';
import { RedisContextStore } from '../src/store/redis-store.js';
import { children, coapsec, killChildren, startDaemon, type Daemon } from './support/cli-harness.js';
import { TestRedis } from './store-redis-server.js';
import { auditNonces, recordingRelay } from './store-relay.js';

const dir = mkdtempSync(join(tmpdir(), 'coapsec-store-edhoc-cli-'));
process.env['COAPSEC_STATE_DIR'] = join(dir, 'state');
const SERVING = /serving on coap:\/\/127\.0\.0\.1:(\d+)/;
const redisReady = TestRedis.start();
let files: { gateway: string; alice: string };

async function keygen(name: string, kid: string): Promise<void> {
  const r = await coapsec(['keygen', '--name', name, '--out-dir', dir, '--kid', kid, '--suite', '2']);
  assert.equal(r.code, 0, r.stderr);
}

function trust(name: string, peer: string, resources: string[]): string {
  const file = join(dir, `${name}.json`);
  const json = JSON.parse(readFileSync(file, 'utf8')) as { edhoc: { peers: unknown[] } };
  json.edhoc.peers = [{ name: peer, ccs: `${peer}.ccs`, resources }];
  writeFileSync(file, JSON.stringify(json));
  return file;
}

before(async () => {
  await Promise.all([keygen('gateway', '01'), keygen('alice', '02')]);
  files = { gateway: trust('gateway', 'alice', ['/whoami']), alice: trust('alice', 'gateway', ['/*']) };
});
after(async () => {
  killChildren();
  await (await redisReady).stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A `coapsec serve --store` node, and its process (to SIGKILL). */
async function node(store: string): Promise<{ daemon: Daemon; process: ChildProcess }> {
  const before = new Set(children);
  const daemon = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--store', store, '--credentials', files.gateway], SERVING);
  return { daemon, process: [...children].find((c) => !before.has(c))! };
}

test('serve --store with EDHOC credentials: node A dies, the client carries on at node B after one Echo round trip, no second EDHOC run', { timeout: 30_000 }, async (t) => {
  const store = `${(await redisReady).url}/3`;
  const a = await node(store);
  const b = await node(store);
  const relay = await recordingRelay(a.daemon.port);
  const client: CoapClient = new CoapClient({ bindIpv4: '127.0.0.1', security: (uri) => edhoc.securityFor(uri), parameters: { ackTimeout: 500, maxRetransmit: 2 } });
  const uri = `coap://127.0.0.1:${relay.port}/whoami`;
  const edhoc = new EdhocClient(client, { initiator: edhocInitiatorConfig(loadCredentials(files.alice).edhoc!, uri) });
  t.after(async () => {
    await client.close();
    relay.close();
    await b.daemon.stop();
  });

  for (let i = 0; i < 2; i++) assert.equal((await client.get(uri)).text(), 'coap anonymous edhoc alice');
  const security = edhoc.securityFor(uri)!;
  assert.equal(security.handshakes, 1);
  // A writes the context to the store in the background: wait until it is there (bounded).
  const redis = await RedisContextStore.open(store);
  try {
    const deadline = Date.now() + 5000;
    let stored: string[] = [];
    while (stored.length === 0 && Date.now() < deadline) {
      stored = [];
      for await (const record of redis.contexts()) stored.push(record.name);
      if (stored.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(stored, ['edhoc alice'], 'A stored the EDHOC context under its peer\'s grant name');
  } finally {
    await redis.close();
  }

  // Node A dies without a shutdown; the relay (a balancer after its failover) sends the client to B.
  a.process.kill('SIGKILL');
  relay.retarget(b.daemon.port);
  const before = relay.log.length;
  for (let i = 0; i < 2; i++) assert.equal((await client.get(uri)).text(), 'coap anonymous edhoc alice', 'B serves the peer by the context A made');
  assert.equal(security.handshakes, 1, 'no second EDHOC run');
  const atB = relay.log.slice(before);
  assert.equal(auditNonces(atB.filter((e) => !e.fromClient || e.datagram.length >= 4), new Map()), 1, 'one Echo challenge at B');
  // B checks A's context against the grant of the peer entry "alice" (/whoami only).
  const refused = await client.get(`coap://127.0.0.1:${relay.port}/time`);
  assert.equal(refused.status, '4.03 Forbidden');
  assert.equal(refused.text(), 'edhoc alice is not granted this resource');
  assert.equal(security.handshakes, 1);
  auditNonces(relay.log);
  assert.doesNotMatch(b.daemon.stderr(), /EDHOC with/, 'B ran no EDHOC');
});

test('serve --store refuses an OSCORE recipient in --credentials and --kudos-ead, saying why', async () => {
  const store = join(dir, 'file-store');
  const withRecipients = join(dir, 'with-recipients.json');
  writeFileSync(withRecipients, JSON.stringify({ recipients: { '01': { name: 'x', context: { masterSecret: '00112233445566778899aabbccddeeff', senderId: '' } } } }));
  const recipients = await coapsec(['serve', '--bind', '127.0.0.1:0', '--store', store, '--credentials', withRecipients]);
  assert.equal(recipients.code, 2, recipients.stderr);
  assert.match(recipients.stderr, /with --store, --credentials may carry an "edhoc" section only/);
  const kudos = await coapsec(['serve', '--bind', '127.0.0.1:0', '--store', store, '--credentials', files.gateway, '--kudos-ead']);
  assert.equal(kudos.code, 2, kudos.stderr);
  assert.match(kudos.stderr, /--kudos-ead is not combined with --store yet/);
});
