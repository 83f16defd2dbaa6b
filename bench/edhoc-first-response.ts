/**
 * EDHOC benchmark, second half (issue 19): time to the first OSCORE response from a client that
 * has no context yet, over loopback UDP, with the EDHOC + OSCORE combined request of RFC 9668
 * (message_3 inside the first OSCORE request) and without it (message_3 in its own POST first).
 *
 * Each sample is a fresh client (a new EdhocClient: nothing cached) against one long-lived server;
 * the time runs from the GET call to its verified 2.05. Datagrams are counted by a UDP relay in
 * front of the server, both directions, per sample, so the saved round trip shows as a count, not only as time. Cases alternate
 * sample by sample so load on the machine falls on both alike; medians are printed.
 *
 *   node dist/bench/edhoc-first-response.js [--quick] [--rounds N]
 */
import { CoapClient, CoapServer, ResponseCode } from '../src/index.js';
import type { EdhocMethod } from '../src/edhoc/index.js';
import { EdhocClient, EdhocServer } from '../src/edhoc-coap/index.js';
import { median } from './common.js';
import { countingRelay } from './counting-relay.js';
import { edhocCredentials } from './edhoc-credentials.js';
import { environment, fmt, runMain, table } from './harness.js';

const CASES: readonly { method: EdhocMethod; suite: number }[] = [
  { method: 3, suite: 2 },
  { method: 0, suite: 0 },
];

interface Sample {
  readonly ms: number;
  readonly datagrams: number;
}

async function firstResponse(method: EdhocMethod, suite: number, combined: boolean, samples: number): Promise<Sample[]> {
  const { initiator, responder } = edhocCredentials(method, suite);
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  server.resource('/temp', { GET: () => ({ code: ResponseCode.Content, payload: '21.5' }) }, { requireOscore: true });
  EdhocServer.attach(server, { responder });
  const relay = await countingRelay(server.address().port);
  const origin = `coap://127.0.0.1:${relay.port}`;
  const out: Sample[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const client: CoapClient = new CoapClient({ security: (uri) => edhoc.securityFor(uri) });
      const edhoc = new EdhocClient(client, {
        combined,
        initiator,
      });
      relay.reset();
      const start = process.hrtime.bigint();
      const response = await client.get(`${origin}/temp`);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (response.code !== ResponseCode.Content) throw new Error(`unexpected ${response.status}`);
      out.push({ ms, datagrams: relay.count() });
      await client.close();
    }
  } finally {
    relay.close();
    await server.close();
  }
  return out;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const roundsAt = args.indexOf('--rounds');
  const rounds = roundsAt >= 0 ? Number(args[roundsAt + 1]) : quick ? 10 : 40;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 10_000) throw new Error('--rounds takes an integer from 1 to 10000');
  console.log(`# EDHOC: time to the first OSCORE response over loopback UDP, ${rounds} fresh clients per case\n${environment()}\n`);
  const rows: string[][] = [['EDHOC', 'message_3', 'ms to first response (median)', 'min–max', 'datagrams (both ways)', 'combined ÷ separate']];
  for (const { method, suite } of CASES) {
    const separate: Sample[] = [];
    const combinedSamples: Sample[] = [];
    // Alternate in small batches so both see the same machine load.
    for (let done = 0; done < rounds; done += 5) {
      const n = Math.min(5, rounds - done);
      separate.push(...(await firstResponse(method, suite, false, n)));
      combinedSamples.push(...(await firstResponse(method, suite, true, n)));
    }
    const medSeparate = median(separate.map((s) => s.ms));
    const medCombined = median(combinedSamples.map((s) => s.ms));
    for (const [label, samples] of [['own POST', separate], ['inside the first OSCORE request', combinedSamples]] as const) {
      const ms = samples.map((s) => s.ms);
      rows.push([
        `method ${method}, suite ${suite}`,
        label,
        fmt(median(ms), 2),
        `${fmt(Math.min(...ms), 2)}–${fmt(Math.max(...ms), 2)}`,
        fmt(median(samples.map((s) => s.datagrams))),
        samples === combinedSamples ? `${(medCombined / medSeparate).toFixed(2)}×` : '',
      ]);
    }
  }
  console.log(table(rows));
}

runMain(main);
