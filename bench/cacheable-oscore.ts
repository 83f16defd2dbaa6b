/**
 * Cacheable OSCORE benchmark (issue 22): what a proxy's cache hit costs when the response stays
 * protected end to end, in one run, at 32 requests in flight, over UDP on loopback:
 *
 *   protected-hit  client ══ Deterministic Request ══▶ ForwardProxy + cache   (every request a hit:
 *                  the cached response is protected with Group OSCORE, group mode; the client
 *                  protects each request — hash, key derivation, AEAD — and verifies the server's
 *                  countersignature on each response: draft-ietf-core-cacheable-oscore §3.4)
 *   plain-hit      client ── GET ──▶ ForwardProxy + cache                      (every request a hit)
 *   direct-oscore  client ══ RFC 8613 OSCORE ══▶ origin                         (no proxy, no cache)
 *
 * Origin and proxy run in one child process (this file, `child STATE`), the client in this one;
 * CPU per request is given for the client and for the child (/proc), whose work is the proxy's
 * for the hits (the origin answers the first request only) and the origin's for direct-oscore.
 * Rounds rotate the contenders; tables show medians.
 *
 *   node dist/bench/cacheable-oscore.js [--quick] [--rounds N] [--duration MS] [--warmup MS] [--concurrency 32]
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CoapClient } from '../src/client/client.js';
import { DeterministicClientSecurity } from '../src/client/deterministic.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { GroupContextStore } from '../src/group-oscore/context.js';
import { GroupManager, contextFromMemberFile, type GroupManagerState } from '../src/group-oscore/manager.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { ResponseCache } from '../src/proxy/cache.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { BENCH_NSTART, OSCORE_MASTER_SALT, OSCORE_MASTER_SECRET, OSCORE_REPLAY_WINDOW, PAYLOAD, median } from './common.js';
import { environment, fmt, forkAndAwait, here, parseCommonArgs, processCpuMicros, ratio, runMain, stopChild, table } from './harness.js';

const HOST = '127.0.0.1';
const USAGE = 'usage: node dist/bench/cacheable-oscore.js [--quick] [--rounds N] [--duration MS] [--warmup MS] [--concurrency 32]';
const LABELS = ['protected-hit', 'plain-hit', 'direct-oscore'] as const;
type Label = (typeof LABELS)[number];
/** Long enough that the one cached entry of each kind stays fresh for the whole run. */
const MAX_AGE = 3600;

interface Ready {
  type: 'ready';
  originPort: number;
  proxyPort: number;
}

/** The child: the origin (Group OSCORE member, RFC 8613 context) and the caching forward proxy. */
async function child(statePath: string): Promise<void> {
  const gm = GroupManager.fromJSON(JSON.parse(readFileSync(statePath, 'utf8')) as GroupManagerState);
  const contexts = new GroupContextStore();
  contexts.install('bench', contextFromMemberFile(gm.memberFile('origin')));
  const security = new OscoreServerSecurity([
    new OscoreSecurityContext({ masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: Buffer.from('01', 'hex'), recipientIds: [Buffer.alloc(0)], replayWindow: OSCORE_REPLAY_WINDOW }, new VolatileSequence()),
  ]);
  const origin = await CoapServer.listen({ host: HOST, port: 0, parameters: { nstart: BENCH_NSTART }, security, group: { contexts } });
  origin.resource('/bench', { GET: () => ({ code: 69 /* 2.05 */, maxAge: MAX_AGE, payload: PAYLOAD }) }, { deterministic: true });
  const proxyServer = await CoapServer.listen({ host: HOST, port: 0, parameters: { nstart: BENCH_NSTART } });
  const upstream = new CoapClient({ parameters: { nstart: BENCH_NSTART } });
  const cache = new ResponseCache({ maxBytes: 1 << 20, now: () => performance.now() });
  new ForwardProxy(proxyServer, { upstream, allowDestinations: [HOST], cache });
  process.send!({ type: 'ready', originPort: origin.address().port, proxyPort: proxyServer.address().port } satisfies Ready);
  process.on('disconnect', () => process.exit(0));
}

interface Result {
  label: Label;
  requests: number;
  errors: number;
  seconds: number;
  clientMicros: number;
  childMicros: number;
}

/** A closed loop of `concurrency` requests for `durationMs` after `warmupMs`. */
async function measure(label: Label, send: () => Promise<unknown>, server: ChildProcess, concurrency: number, warmupMs: number, durationMs: number): Promise<Result> {
  let counting = false;
  let stop = false;
  let requests = 0;
  let errors = 0;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (!stop) {
      try {
        await send();
        if (counting) requests++;
      } catch (error) {
        errors++;
        firstError ??= error;
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  await new Promise((r) => setTimeout(r, warmupMs));
  const cpu0 = process.cpuUsage();
  const child0 = processCpuMicros(server.pid);
  const t0 = performance.now();
  counting = true;
  await new Promise((r) => setTimeout(r, durationMs));
  counting = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const childMicros = processCpuMicros(server.pid) - child0;
  stop = true;
  await Promise.all(workers);
  if (firstError !== undefined) console.error(`  ${label}: ${errors} errors, first: ${(firstError as Error).message}`);
  return { label, requests, errors, seconds, clientMicros: cpu.user + cpu.system, childMicros };
}

async function main(): Promise<void> {
  let concurrency = 32;
  const s = parseCommonArgs(process.argv.slice(2), { quick: false, rounds: 5, warmupMs: 1000, durationMs: 5000, portBase: 0, socketBuffer: 0 }, { rounds: 1, warmupMs: 300, durationMs: 2000 }, USAGE, (arg, value) => {
    if (arg !== '--concurrency') return false;
    concurrency = Number(value());
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) throw new Error('--concurrency must be 1..1024');
    return true;
  });
  console.log(`# cacheable OSCORE: ${environment()}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'coapsec-bench-cacheable-'));
  const gm = GroupManager.create({ name: 'bench' });
  gm.addDeterministicClient();
  gm.addMember('origin');
  gm.addMember('client');
  const statePath = path.join(dir, 'group.json');
  writeFileSync(statePath, JSON.stringify(gm.toJSON()));
  const { child: server, message } = await forkAndAwait<Ready>(here('./cacheable-oscore.js'), ['child', statePath], 'ready', 20_000, true);
  const originSender = Buffer.from(gm.memberFile('origin').senderId, 'hex');
  const deterministic = new DeterministicClientSecurity(contextFromMemberFile(gm.memberFile('client')), { server: originSender });
  const oscore = new OscoreClientSecurity(new OscoreSecurityContext({ masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: Buffer.alloc(0), recipientIds: [Buffer.from('01', 'hex')] }, new VolatileSequence()));
  const proxied = new CoapClient({ parameters: { nstart: BENCH_NSTART }, proxy: `coap://${HOST}:${message.proxyPort}` });
  const direct = new CoapClient({ parameters: { nstart: BENCH_NSTART } });
  const uri = `coap://${HOST}:${message.originPort}/bench`;
  const senders: Record<Label, () => Promise<unknown>> = {
    'protected-hit': () => proxied.get(uri, { security: deterministic }),
    'plain-hit': () => proxied.get(uri),
    'direct-oscore': () => direct.get(uri, { security: oscore }),
  };
  const results: Result[] = [];
  try {
    for (let round = 0; round < s.rounds; round++) {
      const order = LABELS.map((_, i) => LABELS[(i + round) % LABELS.length]!);
      for (const label of order) {
        const r = await measure(label, senders[label], server, concurrency, s.warmupMs, s.durationMs);
        console.log(`round ${round + 1}/${s.rounds} ${label}: ${fmt(r.requests / r.seconds)} req/s, client ${fmt(r.clientMicros / r.requests, 1)} µs/req, proxy/origin ${fmt(r.childMicros / r.requests, 1)} µs/req${r.errors ? `, ${r.errors} errors` : ''}`);
        results.push(r);
      }
    }
  } finally {
    await proxied.close();
    await direct.close();
    await stopChild(server);
    rmSync(dir, { recursive: true, force: true });
  }
  const summary = (label: Label) => {
    const mine = results.filter((r) => r.label === label);
    return {
      rps: median(mine.map((r) => r.requests / r.seconds)),
      client: median(mine.map((r) => r.clientMicros / r.requests)),
      child: median(mine.map((r) => r.childMicros / r.requests)),
      errors: mine.reduce((n, r) => n + r.errors, 0),
    };
  };
  const plain = summary('plain-hit');
  const rows = [['contender', 'req/s', 'vs plain-hit', 'client CPU µs/req', 'proxy or origin CPU µs/req', 'total CPU µs/req', 'errors']];
  for (const label of LABELS) {
    const x = summary(label);
    rows.push([label, fmt(x.rps), ratio(x.rps, plain.rps), fmt(x.client, 1), fmt(x.child, 1), fmt(x.client + x.child, 1), String(x.errors)]);
  }
  console.log(`\n${concurrency} in flight, ${s.rounds} round(s) of ${s.durationMs} ms, medians:\n`);
  console.log(table(rows));
}

if (process.argv[2] === 'child') {
  child(process.argv[3]!).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
} else {
  runMain(main);
}
