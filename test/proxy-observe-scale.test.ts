/**
 * 10,000 client observations of one resource through the forward proxy, over real loopback UDP:
 * one upstream observation, every client notified of each change (PR4.1, RFC 7641 §5).
 * Reports the fan-out time per change and the memory per observation.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapClient } from '../src/client/client.js';
import type { Observation } from '../src/client/observe.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { CoapServer } from '../src/server/server.js';

const CLIENTS = 20;
const PER_CLIENT = 500;
const CHANGES = 3;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapUsed = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

test(`${CLIENTS * PER_CLIENT} observations through the proxy share one upstream observation`, { timeout: 400_000 }, async (t) => {
  const buffers = { receiveBufferSize: 4 << 20, sendBufferSize: 4 << 20 };
  const origin = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  let state = 0;
  origin.resource('/temp', { GET: () => ({ code: ResponseCode.Content, maxAge: 600, payload: String(state) }) }, { observable: true });
  const proxyServer = await CoapServer.listen({ host: '127.0.0.1', port: 0, ...buffers });
  const upstream = new CoapClient(buffers);
  const proxy = new ForwardProxy(proxyServer, { upstream, allowDestinations: ['127.0.0.1'] });
  const target = `coap://127.0.0.1:${origin.address().port}/temp`;
  const clients = Array.from({ length: CLIENTS }, () => new CoapClient({ proxy: `coap://127.0.0.1:${proxyServer.address().port}`, ...buffers }));
  t.after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await proxy.close();
    await upstream.close();
    await proxyServer.close();
    await origin.close();
  });
  const waitFor = async (predicate: () => boolean, what: string, limitMs = 120_000): Promise<void> => {
    const deadline = Date.now() + limitMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const before = heapUsed();
  const observations: Observation[] = [];
  for (const client of clients) for (let i = 0; i < PER_CLIENT; i++) observations.push(await client.observe(target, { reregisterDelay: () => 3600_000 }));
  const received = observations.map(() => [] as string[]);
  const readers = observations.map(async (o, i) => {
    for await (const n of o) received[i]!.push(n.text());
  });
  await waitFor(() => received.every((r) => r.length === 1), 'every registration answered');
  const perObservation = (heapUsed() - before) / observations.length;
  assert.equal(proxyServer.observations.count(), CLIENTS * PER_CLIENT);
  assert.equal(origin.observations.count('/temp'), 1, 'the origin sees one observer: the proxy');
  assert.equal(proxy.activeUpstreamObservations, 1);

  const fanOut: number[] = [];
  for (let change = 1; change <= CHANGES; change++) {
    state = change;
    const started = performance.now();
    origin.changed('/temp');
    await waitFor(() => received.every((r) => r.at(-1) === String(change)), `state ${change} at every client`);
    fanOut.push(performance.now() - started);
  }
  for (const r of received) assert.deepEqual(r, ['0', '1', '2', '3']);
  t.diagnostic(`fan-out of one change to ${CLIENTS * PER_CLIENT} clients (CON, NSTART 1 per client): ${fanOut.map((ms) => `${ms.toFixed(0)} ms`).join(', ')}`);
  t.diagnostic(`memory per observation, clients, proxy and origin in one process: ${Math.round(perObservation)} bytes`);

  await Promise.all(observations.map((o) => o.cancel()));
  await Promise.all(readers);
  // Active cancellation (RFC 7641 §3.6): every deregistration is processed, so the last one ends
  // the upstream observation. Each is a new message with a Message ID of its own (RFC 7252 §4.4);
  // one reusing its registration's ID (and token) was taken for a duplicate of it (§4.5).
  const upstreamEnded = (): boolean => proxy.activeUpstreamObservations === 0 && origin.observations.count('/temp') === 0;
  await waitFor(upstreamEnded, 'active deregistrations', 20_000).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}: ${proxyServer.observations.count()} of ${CLIENTS * PER_CLIENT} observers left at the proxy`);
  });
  assert.equal(proxyServer.observations.count(), 0);
  t.diagnostic(`duplicate requests at the proxy: ${proxyServer.endpoint.stats().duplicates}`);
});
