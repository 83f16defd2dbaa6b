/**
 * Issue 26, the balancer as deployed: one farm (Redis, nginx, 2 `coapsec serve --store --metrics`
 * nodes) hashing on deploy/nginx-coap.conf's own key, `$remote_addr`. Each client binds a loopback
 * address of its own (all of 127.0.0.0/8 is loopback on Linux), as devices have one address each.
 * - stickiness: every client of one address lands on one node, whatever its source port, and the
 *   addresses spread over both nodes;
 * - observers (RFC 7641 §3.3.1, §4.5): the node holding an observation is SIGKILLed; the client's
 *   re-registration after Max-Age goes through the balancer to the other node, which challenges it
 *   with Echo (RFC 8613 Appendix B.1.2) and then notifies — within a bounded time.
 * Which node served a request is read from the nodes' own /metrics (requests answered).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { OscoreSecurityContext, VolatileSequence, type SecurityContextInput } from '../src/oscore/security-context.js';
import { provisionDevices, startFarm, type Farm } from './farm-devices.js';

const MAX_ADDRESSES = 16;
const directory = mkdtempSync(join(tmpdir(), 'coapsec-farm-failover-'));
process.env['COAPSEC_STATE_DIR'] = directory;
let farm: Farm;
let devices: SecurityContextInput[];

before(async () => {
  farm = await startFarm({ nodes: 2, metrics: true });
  devices = await provisionDevices(directory, farm.redisUrl, MAX_ADDRESSES + 1);
});
after(async () => {
  await farm?.stop();
  rmSync(directory, { recursive: true, force: true });
});

function securityOf(device: SecurityContextInput): OscoreClientSecurity {
  return new OscoreClientSecurity(new OscoreSecurityContext(device, new VolatileSequence(0)));
}

function clientAt(address: string, security: OscoreClientSecurity, ackTimeout = 1000): CoapClient {
  return new CoapClient({ bindIpv4: address, security: () => security, parameters: { ackTimeout, maxRetransmit: 4 } });
}

/** Requests each node has answered so far (its coapsec_requests_total series, summed). */
async function answeredPerNode(): Promise<number[]> {
  return Promise.all(
    farm.nodes.map(async (node) => {
      if (node.pid === undefined) return 0;
      const text = await (await fetch(`http://127.0.0.1:${node.metricsPort}/metrics`)).text();
      return [...text.matchAll(/^coapsec_requests_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    }),
  );
}

/** The one node whose count grew while `work` ran. */
async function nodeServing(work: () => Promise<unknown>): Promise<number> {
  const before = await answeredPerNode();
  await work();
  const after = await answeredPerNode();
  const grew = after.map((n, i) => n - before[i]!).flatMap((d, i) => (d > 0 ? [i] : []));
  assert.equal(grew.length, 1, `one node served it (counts before ${before}, after ${after})`);
  return grew[0]!;
}

test('$remote_addr: a client address sticks to one node across source ports, and addresses spread over the nodes', async (t) => {
  const nodeOfAddress: number[] = [];
  // Addresses until both nodes were seen, at least 4: with consistent hashing over 2 nodes, 16 all on one node would be a 1 in 2^15 event.
  for (let i = 0; i < MAX_ADDRESSES && (i < 4 || new Set(nodeOfAddress).size < 2); i++) {
    const address = `127.0.0.${i + 2}`;
    const seen: number[] = [];
    const security = securityOf(devices[i]!);
    // Two sockets (two source ports) of one device address, one after the other, one context.
    for (let socket = 0; socket < 2; socket++) {
      const client = clientAt(address, security);
      try {
        seen.push(await nodeServing(async () => assert.equal((await client.get(`coap://127.0.0.1:${farm.port}/hello`)).status, '2.05 Content')));
      } finally {
        await client.close();
      }
    }
    assert.equal(seen[0], seen[1], `both source ports of ${address} reached one node`);
    nodeOfAddress.push(seen[0]!);
  }
  assert.equal(new Set(nodeOfAddress).size, 2, `the addresses spread over both nodes: ${nodeOfAddress}`);
  t.diagnostic(`addresses to nodes: ${nodeOfAddress}`);
});

test('an observer whose node dies re-registers through the balancer and gets notifications from the other node', { timeout: 60_000 }, async (t) => {
  const client = clientAt('127.0.0.200', securityOf(devices[MAX_ADDRESSES]!), 500);
  t.after(() => client.close());
  // /time: a notification every second with Max-Age 1; re-register as soon as Max-Age ran out (instead of RFC 7641's 5–15 s).
  let observation: Awaited<ReturnType<CoapClient['observe']>> | undefined;
  const holder = await nodeServing(async () => {
    observation = await client.observe(`coap://127.0.0.1:${farm.port}/time`, { reregisterDelay: () => 0 });
    const first = await observation.next();
    assert.equal(first.value?.status, '2.05 Content');
  });
  const notifications = observation!;
  t.after(() => notifications.return());
  assert.equal((await notifications.next()).value?.status, '2.05 Content', 'a notification from the first node');

  await farm.nodes[holder]!.kill('SIGKILL');
  const killedAt = Date.now();
  const other = 1 - holder;
  const servedBefore = (await answeredPerNode())[other]!;
  const resumed = await Promise.race([notifications.next(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no notification within 15 s of the kill')), 15_000))]);
  const gap = Date.now() - killedAt;
  assert.equal(resumed.value?.status, '2.05 Content');
  t.diagnostic(`notifications resumed ${gap} ms after the holder was killed`);
  assert.ok((await answeredPerNode())[other]! >= servedBefore + 2, 'the other node answered the re-registration (after its Echo challenge)');
  for (let i = 0; i < 2; i++) assert.equal((await notifications.next()).value?.status, '2.05 Content', 'and keeps notifying');
  await farm.nodes[holder]!.restart();
});
