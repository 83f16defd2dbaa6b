/**
 * 1,000 concurrent observations of one resource on one server, over real loopback UDP: every
 * observer receives every state it is due, and the memory per observation is reported.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapClient } from '../src/client/client.js';
import type { Observation } from '../src/client/observe.js';
import { CoapServer } from '../src/server/server.js';

const CLIENTS = 20;
const PER_CLIENT = 50;
const CHANGES = 5;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapUsed = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

test(`${CLIENTS * PER_CLIENT} observers of one resource each receive every state change`, { timeout: 120_000 }, async (t) => {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, receiveBufferSize: 4 << 20 });
  let state = 0;
  server.resource('/counter', { GET: () => ({ code: ResponseCode.Content, maxAge: 600, payload: String(state) }) }, { observable: { notifications: 'con' } });
  const base = `coap://127.0.0.1:${server.address().port}/counter`;
  const clients = Array.from({ length: CLIENTS }, () => new CoapClient());
  t.after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
  });

  const before = heapUsed();
  const observations: Observation[] = [];
  for (const client of clients) {
    for (let i = 0; i < PER_CLIENT; i++) observations.push(await client.observe(base));
  }
  const received = observations.map(() => [] as string[]);
  const readers = observations.map(async (o, i) => {
    for await (const n of o) received[i]!.push(n.text());
  });
  const waitFor = async (predicate: () => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitFor(() => server.observations.count('/counter') === CLIENTS * PER_CLIENT && received.every((r) => r.length === 1), 'all registrations');
  const perObservation = (heapUsed() - before) / observations.length;
  t.diagnostic(`memory per observation (client and server side together, same process): ${Math.round(perObservation)} bytes`);

  for (let change = 1; change <= CHANGES; change++) {
    state = change;
    server.changed('/counter');
    await waitFor(() => received.every((r) => r.at(-1) === String(change)), `state ${change} at every observer`);
  }
  for (const r of received) assert.deepEqual(r, ['0', '1', '2', '3', '4', '5']);
  assert.ok(perObservation < 20_000, `memory per observation ${perObservation} bytes is bounded`);

  await Promise.all(observations.map((o) => o.cancel()));
  await Promise.all(readers);
  await waitFor(() => server.observations.count('/counter') === 0, 'deregistrations');
});
