/**
 * Issue 26 item 5, the metrics beyond requests: `serve --store DIR --metrics` counts its context
 * store's reservations (by outcome, with a latency histogram), the OSCORE contexts it holds, Echo
 * challenges and replay refusals; `proxy --metrics` serves the same module with the node's own
 * cache (each proxy node behind a balancer has its own: a second node misses what the first
 * cached).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapServer } from '../src/server/server.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { killChildren, startDaemon } from './support/cli-harness.js';
import { provisionDevices } from './farm-devices.js';
import { recordingRelay } from './store-relay.js';

const directory = mkdtempSync(join(tmpdir(), 'coapsec-metrics-'));
process.env['COAPSEC_STATE_DIR'] = directory;
after(() => {
  killChildren();
  rmSync(directory, { recursive: true, force: true });
});

async function scrape(port: string): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

test('serve --store --metrics: reservations with their latency, contexts resident, Echo challenges, replay refusals', async (t) => {
  const store = join(directory, 'store');
  const [device] = await provisionDevices(directory, store, 1);
  const node = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--store', store, '--metrics', '127.0.0.1:0'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  t.after(() => node.stop());
  const metricsPort = (await node.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/))[1]!;
  assert.match(await scrape(metricsPort), /^coapsec_oscore_contexts_resident 0$/m);

  const relay = await recordingRelay(node.port);
  t.after(() => relay.close());
  const security = new OscoreClientSecurity(new OscoreSecurityContext(device!, new VolatileSequence(0)));
  const client = new CoapClient({ security: () => security });
  t.after(() => client.close());
  for (let i = 0; i < 2; i++) assert.equal((await client.get(`coap://127.0.0.1:${relay.port}/hello`)).status, '2.05 Content');
  const replayed = relay.log.filter((e) => e.fromClient).at(-1)!.datagram;
  await sendRaw(node.port, replayed);

  const text = await scrape(metricsPort);
  assert.match(text, /^coapsec_store_reservations_total\{outcome="ok"\} 1$/m, 'one block reserved (the Echo challenge took a number from it)');
  assert.match(text, /^# TYPE coapsec_store_reservation_seconds histogram$/m);
  assert.match(text, /^coapsec_store_reservation_seconds_count 1$/m);
  assert.match(text, /^coapsec_store_reservation_seconds_bucket\{le="\+Inf"\} 1$/m);
  assert.match(text, /^coapsec_oscore_contexts_resident 1$/m, 'the context fetched from the store is held');
  assert.match(text, /^coapsec_echo_challenges_total 1$/m);
  assert.match(text, /^coapsec_replay_refusals_total 1$/m);
  assert.match(text, /^coapsec_oscore_failures_total\{reason="Replay detected"\} 1$/m);
  assert.match(text, /^coapsec_requests_total\{class="2xx",protection="oscore"\} 2$/m);
});

test('proxy --metrics: requests forwarded and this node\'s cache; a second proxy node has a cache of its own', async (t) => {
  const origin = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => origin.close());
  origin.resource('/hello', { GET: () => ({ code: ResponseCode.Content, maxAge: 60, payload: 'hello' }) });
  const proxyArgs = ['proxy', '--bind', '127.0.0.1:0', '--forward', '--cache-mb', '1', '--allow-destination', '127.0.0.1', '--metrics', '127.0.0.1:0'];
  const proxies = await Promise.all([0, 1].map(() => startDaemon(proxyArgs, /proxy on coap:\/\/127\.0\.0\.1:(\d+)/)));
  t.after(() => Promise.all(proxies.map((p) => p.stop())));
  const ports = await Promise.all(proxies.map(async (p) => (await p.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/))[1]!));
  const target = `coap://127.0.0.1:${origin.address().port}/hello`;
  for (const [i, proxy] of proxies.entries()) {
    const client = new CoapClient({ proxy: `coap://127.0.0.1:${proxy.port}` });
    try {
      for (let n = 0; n < (i === 0 ? 3 : 1); n++) assert.equal((await client.get(target)).status, '2.05 Content');
    } finally {
      await client.close();
    }
  }
  const [first, second] = await Promise.all(ports.map(scrape));
  assert.match(first!, /^coapsec_proxy_forwarded_total 1$/m, 'one request went upstream, two were answered from the cache');
  assert.match(first!, /^coapsec_proxy_cache_entries 1$/m);
  assert.match(first!, /^coapsec_proxy_cache_misses_total 1$/m);
  assert.match(first!, /^coapsec_proxy_cache_hits_total 2$/m);
  assert.match(second!, /^coapsec_proxy_cache_misses_total 1$/m, 'the second node missed what the first had cached: caches are per node');
  assert.match(second!, /^coapsec_proxy_cache_hits_total 0$/m);
  assert.match(second!, /^coapsec_proxy_forwarded_total 1$/m);
});

function sendRaw(port: number, datagram: Buffer): Promise<Buffer> {
  const socket = createSocket('udp4');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no answer from 127.0.0.1:${port} within 3 s`));
    }, 3000);
    socket.on('message', (data) => {
      clearTimeout(timer);
      socket.close();
      resolve(data);
    });
    socket.send(datagram, port, '127.0.0.1');
  });
}
