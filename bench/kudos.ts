/**
 * KUDOS benchmark (issue 24): what one key update costs next to a new EDHOC run, in the same process
 * and the same run, both over loopback UDP with the real client and server.
 *
 * - KUDOS: the forward-message flow started by the client (draft-ietf-core-oscore-key-update
 *   §4.3.3.1, App. A.1) — `KudosClientPeer.rekey()`: divergent request #1 to /.well-known/kudos,
 *   convergent response #2; key confirmation rides on the client's next request (measured too).
 *   Both sides persist the new context durably (KudosFileStorage) as they do in service.
 * - EDHOC (RFC 9528 over CoAP, App. A.2) with src/edhoc-coap's EdhocClient/EdhocServer, a new
 *   client-side session each time: `establish()` (message_1/_2, then message_3 and its 2.04), and
 *   the first GET with EDHOC combined into it (RFC 9668: message_3 in the OSCORE request), whose
 *   added latency is its time minus a GET under an established context.
 * - The reference: one OSCORE request on the KUDOS pair, the round trip an update is compared with.
 *
 * Every client talks to its server through a counting UDP relay on 127.0.0.1, so each figure
 * includes one relay hop each way, the same for all; the relay counts the datagrams of each
 * operation. Cases are interleaved per iteration; medians per round, then the median of rounds.
 *
 *   node dist/bench/kudos.js [--quick] [--rounds N] [--runs N]
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { ResponseCode } from '../src/coap/codes.js';
import { EdhocClient, EdhocServer } from '../src/edhoc-coap/index.js';
import type { EdhocMethod } from '../src/edhoc/index.js';
import { KudosClientPeer } from '../src/kudos/client.js';
import { KudosFileStorage, KudosSession, type ContextMaterial } from '../src/kudos/index.js';
import { KudosServerSecurity } from '../src/kudos/server.js';
import { kudosResource } from '../src/kudos/well-known.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { CoapServer } from '../src/server/server.js';
import { median, OSCORE_MASTER_SALT, OSCORE_MASTER_SECRET } from './common.js';
import { countingRelay } from './counting-relay.js';
import { edhocCredentials } from './edhoc-credentials.js';
import { environment, fmt, parseCommonArgs, runMain, table } from './harness.js';

const USAGE = 'usage: node dist/bench/kudos.js [--quick] [--rounds N] [--runs N]';
const WARMUP_RUNS = 3;

type Relay = Awaited<ReturnType<typeof countingRelay>>;
const uriOf = (relay: Relay): string => `coap://127.0.0.1:${relay.port}`;

/** Milliseconds and datagrams of one operation. */
async function measure(relay: Relay, op: () => Promise<unknown>): Promise<{ ms: number; datagrams: number }> {
  const before = relay.count();
  const start = performance.now();
  await op();
  const ms = performance.now() - start;
  // Let a trailing datagram (an ACK) land before the count is read.
  await new Promise((resolve) => setImmediate(resolve));
  return { ms, datagrams: relay.count() - before };
}

type Identity = Omit<ContextMaterial, 'masterSecret' | 'masterSalt'>;
const CLIENT: Identity = { senderId: new Uint8Array(0), recipientId: Uint8Array.of(1), aead: 10, hkdf: -10 };
const SERVER: Identity = { senderId: Uint8Array.of(1), recipientId: new Uint8Array(0), aead: 10, hkdf: -10 };

/** A KUDOS-capable OSCORE client and server, as `coapsec serve`/`rekey` wire them (test/kudos-stack.ts). */
async function kudosPair(directory: string) {
  const initial = { masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT };
  const serverSession = KudosSession.open({ identity: SERVER, storage: new KudosFileStorage(join(directory, 'server'), SERVER) }, initial);
  const clientSession = KudosSession.open({ identity: CLIENT, storage: new KudosFileStorage(join(directory, 'client'), CLIENT) }, initial);
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new KudosServerSecurity([{ name: 'client', session: serverSession, recipientId: CLIENT.senderId }]) });
  server.add(kudosResource());
  server.resource('/echo', { POST: (r) => ({ code: ResponseCode.Changed, payload: r.payload }) }, { requireOscore: true });
  const relay = await countingRelay(server.address().port);
  const origin = uriOf(relay);
  const context = new OscoreSecurityContext({ masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: CLIENT.senderId, recipientIds: [CLIENT.recipientId], name: 'server' }, new VolatileSequence());
  const security = new OscoreClientSecurity(context);
  const client = new CoapClient({ bindIpv4: '127.0.0.1', security: () => security });
  const peer = new KudosClientPeer(clientSession, security.requester, { send: (s) => client.request({ method: 'POST', uri: `${origin}/.well-known/kudos`, security: s }) });
  const echo = () => client.request({ method: 'POST', uri: `${origin}/echo`, payload: 'ping' });
  return {
    relay,
    peer,
    echo,
    sessions: [clientSession, serverSession] as const,
    close: async () => {
      await client.close();
      relay.close();
      await server.close();
    },
  };
}

async function edhocPair(method: EdhocMethod, suite: number) {
  const { initiator, responder } = edhocCredentials(method, suite);
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  server.resource('/hello', { GET: () => ({ code: ResponseCode.Content, payload: 'hello' }) });
  EdhocServer.attach(server, { responder });
  const relay = await countingRelay(server.address().port);
  const origin = uriOf(relay);
  const client = new CoapClient({ bindIpv4: '127.0.0.1' });
  // A new EdhocClient has no session with the server: the next use runs EDHOC from message_1.
  const fresh = () => new EdhocClient(client, { initiator }).securityFor(origin)!;
  const get = (security: ReturnType<typeof fresh>) => client.request({ method: 'GET', uri: `${origin}/hello`, security });
  return {
    relay,
    establish: () => fresh().establish(),
    combinedGet: () => get(fresh()),
    /** A GET under a context already established: the round trip the combined GET is compared with. */
    established: async () => {
      const security = fresh();
      await security.establish();
      return () => get(security);
    },
    close: async () => {
      await client.close();
      relay.close();
      await server.close();
    },
  };
}

interface Samples {
  ms: number[];
  datagrams: number[];
}
type Measured = { ms: number; datagrams: number };

/** Where each KUDOS pair keeps its state: the temp folder on disk, and tmpfs (fsync costs nothing) to show what durability costs. */
function storageLocations(): { label: string; directory: string }[] {
  const locations = [{ label: 'disk', directory: mkdtempSync(join(tmpdir(), 'coapsec-bench-kudos-')) }];
  if (existsSync('/dev/shm')) locations.push({ label: 'tmpfs', directory: mkdtempSync('/dev/shm/coapsec-bench-kudos-') });
  return locations;
}

const REFERENCE = 'OSCORE request (reference)';
const kudosCases = (where: string) => [`${REFERENCE}, ${where}`, `KUDOS rekey(), ${where}`, `key confirmation (next request), ${where}`];
const EDHOC_CASES = ['EDHOC establish()', 'EDHOC + first GET combined', 'GET, established EDHOC context'];

async function round(runs: number, method: EdhocMethod, suite: number, locations: readonly { label: string; directory: string }[], r: number): Promise<Map<string, Samples>> {
  const pairs = await Promise.all(locations.map(async ({ label, directory }) => ({ label, pair: await kudosPair(join(directory, `round-${r}`)) })));
  const edhoc = await edhocPair(method, suite);
  const results = new Map<string, Samples>();
  const record = (name: string, m: Measured, i: number) => {
    if (i < WARMUP_RUNS) return;
    const s = results.get(name) ?? { ms: [], datagrams: [] };
    s.ms.push(m.ms);
    s.datagrams.push(m.datagrams);
    results.set(name, s);
  };
  try {
    const plainGet = await edhoc.established();
    for (let i = 0; i < runs + WARMUP_RUNS; i++) {
      for (const { label, pair } of pairs) {
        const [reference, rekey, confirmation] = kudosCases(label);
        record(reference!, await measure(pair.relay, pair.echo), i);
        record(rekey!, await measure(pair.relay, () => pair.peer.rekey()), i);
        record(confirmation!, await measure(pair.relay, pair.echo), i);
        const [client, server] = pair.sessions;
        if (client.state !== 'IDLE' || server.state !== 'IDLE' || Buffer.compare(client.currentSecrets.masterSecret, server.currentSecrets.masterSecret) !== 0) {
          throw new Error(`KUDOS run ${i} (${label}) did not complete (client ${client.state}, server ${server.state})`);
        }
      }
      const [establish, combined, established] = EDHOC_CASES;
      record(establish!, await measure(edhoc.relay, edhoc.establish), i);
      record(combined!, await measure(edhoc.relay, edhoc.combinedGet), i);
      record(established!, await measure(edhoc.relay, plainGet), i);
    }
  } finally {
    for (const { pair } of pairs) await pair.close();
    await edhoc.close();
  }
  return results;
}

async function main(): Promise<void> {
  let runs = 40;
  let method: EdhocMethod = 3;
  let suite = 0;
  const settings = parseCommonArgs(
    process.argv.slice(2),
    { quick: false, rounds: 3, warmupMs: 0, durationMs: 1000, portBase: 0, socketBuffer: 0 },
    { rounds: 1 },
    USAGE,
    (arg, value) => {
      if (arg === '--runs') runs = Number(value());
      else if (arg === '--edhoc') [method, suite] = value().split('/').map(Number) as [EdhocMethod, number];
      else return false;
      return true;
    },
  );
  if (settings.quick) runs = Math.min(runs, 10);
  if (!Number.isInteger(runs) || runs < 1 || runs > 1000) throw new Error(`--runs must be an integer in 1..1000\n${USAGE}`);
  if (![0, 3].includes(method) || ![0, 2].includes(suite)) throw new Error(`--edhoc must be METHOD/SUITE with method 0 or 3 and suite 0 or 2\n${USAGE}`);
  console.log(`# KUDOS update vs new EDHOC run (method ${method}, suite ${suite}), loopback UDP through a counting relay, ${settings.rounds} round(s) × ${runs} runs\n${environment()}\n`);
  const locations = storageLocations();
  const perRound: Map<string, Measured>[] = [];
  try {
    for (let r = 0; r < settings.rounds; r++) {
      const results = await round(runs, method, suite, locations, r);
      const medians = new Map([...results].map(([name, s]) => [name, { ms: median(s.ms), datagrams: median(s.datagrams) }]));
      perRound.push(medians);
      console.log(`round ${r + 1}: ${[...medians].map(([name, m]) => `${name} ${fmt(m.ms, 2)} ms`).join('; ')}`);
    }
  } finally {
    for (const { directory } of locations) rmSync(directory, { recursive: true, force: true });
  }
  const over = (name: string, field: keyof Measured) => median(perRound.map((m) => m.get(name)![field]));
  const rows = [['operation', 'median ms', 'added ms', 'datagrams', 'added ÷ KUDOS rekey (same storage) / (disk)']];
  const diskRekey = over(kudosCases('disk')[1]!, 'ms');
  for (const { label } of locations) {
    const [reference, rekey, confirmation] = kudosCases(label);
    const rekeyMs = over(rekey!, 'ms');
    rows.push([reference!, fmt(over(reference!, 'ms'), 2), '–', fmt(over(reference!, 'datagrams')), '–']);
    rows.push([rekey!, fmt(rekeyMs, 2), fmt(rekeyMs, 2), fmt(over(rekey!, 'datagrams')), '1.00×']);
    const confirmationAdded = over(confirmation!, 'ms') - over(reference!, 'ms');
    rows.push([confirmation!, fmt(over(confirmation!, 'ms'), 2), fmt(confirmationAdded, 2), `${fmt(over(confirmation!, 'datagrams'))} (0 added)`, `${(confirmationAdded / rekeyMs).toFixed(2)}×`]);
  }
  const tmpfsRekey = locations.length > 1 ? over(kudosCases('tmpfs')[1]!, 'ms') : NaN;
  const [establish, combined, established] = EDHOC_CASES;
  const edhocAdded: [string, number][] = [
    [establish!, over(establish!, 'ms')],
    [combined!, over(combined!, 'ms') - over(established!, 'ms')],
  ];
  for (const [name, addedMs] of edhocAdded) {
    rows.push([name, fmt(over(name, 'ms'), 2), fmt(addedMs, 2), fmt(over(name, 'datagrams')), `${(addedMs / tmpfsRekey).toFixed(2)}× (tmpfs) / ${(addedMs / diskRekey).toFixed(2)}× (disk)`]);
  }
  rows.push([established!, fmt(over(established!, 'ms'), 2), '–', fmt(over(established!, 'datagrams')), '–']);
  console.log(`\n${table(rows)}`);
}

runMain(main);
