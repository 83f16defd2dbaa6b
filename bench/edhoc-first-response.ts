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
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { CoapClient, CoapServer, ResponseCode } from '../src/index.js';
import { coseKeyFromKeyObject, encodeCcs } from '../src/cose/index.js';
import { ccsCredential, CredentialStore, type EdhocMethod } from '../src/edhoc/index.js';
import { EdhocClient, EdhocServer } from '../src/edhoc-coap/index.js';
import { median } from './common.js';
import { environment, fmt, runMain, table } from './harness.js';

const CASES: readonly { method: EdhocMethod; suite: number }[] = [
  { method: 3, suite: 2 },
  { method: 0, suite: 0 },
];

function longTermKey(suite: number, staticDh: boolean): KeyObject {
  if (suite === 0) return staticDh ? generateKeyPairSync('x25519').privateKey : generateKeyPairSync('ed25519').privateKey;
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
}

/** A one-client UDP relay that counts the datagrams it passes, both ways. */
async function countingRelay(serverPort: number): Promise<{ port: number; count: () => number; reset: () => void; close: () => void }> {
  const socket: Socket = createSocket('udp4');
  let client: RemoteInfo | undefined;
  let count = 0;
  socket.on('message', (msg, from) => {
    count++;
    if (from.port === serverPort) {
      if (client !== undefined) socket.send(msg, client.port, client.address);
    } else {
      client = from;
      socket.send(msg, serverPort, '127.0.0.1');
    }
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, count: () => count, reset: () => { count = 0; }, close: () => socket.close() };
}

interface Sample {
  readonly ms: number;
  readonly datagrams: number;
}

async function firstResponse(method: EdhocMethod, suite: number, combined: boolean, samples: number): Promise<Sample[]> {
  const keyC = longTermKey(suite, method === 3);
  const keyS = longTermKey(suite, method === 3);
  const ccsC = encodeCcs({ sub: 'client', coseKey: coseKeyFromKeyObject(keyC, { kid: Uint8Array.of(0x0a) }) });
  const ccsS = encodeCcs({ sub: 'server', coseKey: coseKeyFromKeyObject(keyS, { kid: Uint8Array.of(0x0b) }) });
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  server.resource('/temp', { GET: () => ({ code: ResponseCode.Content, payload: '21.5' }) }, { requireOscore: true });
  EdhocServer.attach(server, { responder: { suites: [suite], methods: [method], credentials: [ccsCredential(ccsS, keyS)], peers: new CredentialStore().addCcs(ccsC) } });
  const relay = await countingRelay(server.address().port);
  const origin = `coap://127.0.0.1:${relay.port}`;
  const out: Sample[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const client: CoapClient = new CoapClient({ security: (uri) => edhoc.securityFor(uri) });
      const edhoc = new EdhocClient(client, {
        combined,
        initiator: { method, suites: [suite], credential: ccsCredential(ccsC, keyC), peers: new CredentialStore().addCcs(ccsS) },
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
