/**
 * Many OSCORE peers (issue 21): for 1, 1k, 10k and 100k server contexts (one per device, each with
 * its own Master Secret and Recipient ID), the CPU per ContextDirectory lookup, the heap the
 * contexts hold (after gc), and the CPU to load them from a credentials file. Each count runs in
 * its own child process (`--expose-gc`), so one count's garbage cannot weigh on the next.
 *
 *   node dist/bench/micro-contexts.js [--counts 1,1000,10000,100000] [--no-load]
 *
 * `--server` instead measures what the idle contexts cost the server per response (issue 21: CPU
 * per response with 100,000 contexts within 5 % of one): a CoapServer with OscoreServerSecurity
 * over `count` device contexts, fed OSCORE GETs from one device (prepared beforehand in one buffer,
 * 32 per macrotask, no sockets), in a child per count and round, the counts alternating: CPU µs per
 * request, and the time V8 spent in scavenges and in mark-compact (PerformanceObserver 'gc').
 *
 * The server holds the contexts as OscoreSecurityContext objects (`objects`) or in a ContextTable
 * (`table`), the layouts interleaved in each round.
 *
 *   node dist/bench/micro-contexts.js --server [--counts 1,100000] [--layouts objects,table] [--rounds 3] [--requests 300000]
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PerformanceObserver } from 'node:perf_hooks';
import { encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { protectRequest } from '../src/oscore/protect.js';
import { ContextTable } from '../src/oscore/context-table.js';
import { ContextDirectory, OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { serverCredentials } from '../src/server/credentials.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from '../src/transport/transport.js';

export interface ContextCountResult {
  count: number;
  /** CPU µs per find, over lookups spread across all contexts. */
  findMicros: number;
  /** heapUsed after gc with the contexts held, minus before, in MB. */
  heapMB: number;
  /** CPU ms to make the contexts in memory. */
  createMs: number;
  /** CPU ms of serverCredentials() on a file of `count` recipients (undefined: not measured). */
  loadMs: number | undefined;
}

/** Device i's Recipient ID: 4 bytes, distinct for every i below 2^32. */
export function deviceKid(i: number): Uint8Array {
  return Uint8Array.of(i >>> 24, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff);
}

function deviceSecret(i: number): Uint8Array {
  const secret = new Uint8Array(16);
  new DataView(secret.buffer).setUint32(12, i);
  secret[0] = 0x5a;
  return secret;
}

const cpuMs = (start: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(start);
  return (u.user + u.system) / 1000;
};

/** The server's contexts, one per device, made in memory. */
export function makeDeviceContexts(count: number): OscoreSecurityContext[] {
  const senderId = new Uint8Array(0);
  const contexts: OscoreSecurityContext[] = [];
  for (let i = 0; i < count; i++) {
    contexts.push(new OscoreSecurityContext({ masterSecret: deviceSecret(i), senderId, recipientIds: [deviceKid(i)], name: `device-${i}` }, new VolatileSequence()));
  }
  return contexts;
}

/** The same contexts as makeDeviceContexts, kept as bytes until used (oscore/context-table.ts). */
export function makeDeviceTable(count: number, active?: number): ContextTable {
  const senderId = new Uint8Array(0);
  const table = new ContextTable(active === undefined ? {} : { active });
  for (let i = 0; i < count; i++) table.add({ masterSecret: deviceSecret(i), senderId, recipientIds: [deviceKid(i)], name: `device-${i}` });
  return table;
}

/** CPU µs per find over `lookups` kids spread evenly across the directory. */
export function findMicros(directory: ContextDirectory, count: number, lookups: number): number {
  const kids = Array.from({ length: 256 }, (_, i) => deviceKid(Math.floor((i * count) / 256)));
  const start = process.cpuUsage();
  let found = 0;
  for (let i = 0; i < lookups; i++) if (directory.find(kids[i & 255]!, undefined)) found++;
  const micros = (cpuMs(start) * 1000) / lookups;
  if (found !== lookups) throw new Error(`only ${found} of ${lookups} lookups found their context`);
  return micros;
}

export function writeCredentialsFile(directory: string, count: number): string {
  const recipients: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) {
    recipients[Buffer.from(deviceKid(i)).toString('hex')] = { name: `device-${i}`, context: { masterSecret: { hex: Buffer.from(deviceSecret(i)).toString('hex') }, senderId: '' } };
  }
  const file = join(directory, 'server.json');
  writeFileSync(file, JSON.stringify({ stateDirectory: 'state', recipients }));
  return file;
}

function measure(count: number, load: boolean): ContextCountResult {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  gc();
  const before = process.memoryUsage().heapUsed;
  let start = process.cpuUsage();
  const contexts = makeDeviceContexts(count);
  const directory = new ContextDirectory(contexts);
  const createMs = cpuMs(start);
  gc();
  const heapMB = (process.memoryUsage().heapUsed - before) / 2 ** 20;
  findMicros(directory, count, 20_000); // warm-up
  const micros = findMicros(directory, count, 200_000);
  let loadMs: number | undefined;
  if (load) {
    const root = mkdtempSync(join(tmpdir(), 'coapsec-contexts-'));
    try {
      const file = writeCredentialsFile(root, count);
      start = process.cpuUsage();
      const loaded = serverCredentials(file, { registryDirectory: join(root, 'registry') });
      loadMs = cpuMs(start);
      loaded.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
  if (contexts.length !== count) throw new Error('unreachable');
  return { count, findMicros: micros, heapMB, createMs, loadMs };
}

// --- the server's CPU per response with `count` idle contexts (--server) -------------------------

/** How the server holds its contexts: as OscoreSecurityContext objects, or in a ContextTable. */
export type Layout = 'objects' | 'table';

export interface ServerCostResult {
  count: number;
  layout: Layout;
  /** CPU µs per request (the whole process: V8's GC threads included). */
  micros: number;
  /** Milliseconds of GC per 1,000 requests, by kind (PerformanceObserver: main-thread pauses). */
  scavengeMsPerK: number;
  markCompactMsPerK: number;
  markCompacts: number;
  heapMB: number;
}

/** The server side of an in-memory pair: its answers are counted and dropped. */
class DroppingTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  handler: DatagramHandler = () => {};
  answers = 0;
  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }
  send(): void {
    this.answers++;
  }
  localAddress(): PeerAddress {
    return { address: '127.0.0.1', port: 5683 };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** `requests` OSCORE GETs of /hello from device `device`, encoded one after another in one buffer (no object per request). */
function deviceRequests(device: number, requests: number): { bytes: Buffer; ends: Uint32Array } {
  const client = new OscoreSecurityContext({ masterSecret: deviceSecret(device), senderId: deviceKid(device), recipientIds: [new Uint8Array(0)] }, new VolatileSequence());
  const template = { type: MessageType.CON, code: Method.GET, messageId: 0, token: new Uint8Array(8), options: [{ number: OptionNumber.UriPath, value: Buffer.from('hello') }], payload: new Uint8Array(0) };
  const first = encodeMessage(protectRequest(template, client.sender, 0).message);
  const bytes = Buffer.alloc((first.length + 8) * requests);
  const ends = new Uint32Array(requests);
  let at = 0;
  for (let i = 0; i < requests; i++) {
    const d = encodeMessage(protectRequest(template, client.sender, i).message);
    d.writeUInt16BE(i & 0xffff, 2);
    d.writeUInt32BE(i, 4);
    at += d.copy(bytes, at);
    ends[i] = at;
  }
  return { bytes, ends };
}

const macrotask = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function serverCost(count: number, requests: number, layout: Layout): Promise<ServerCostResult> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const transport = new DroppingTransport();
  const security = layout === 'table' ? new OscoreServerSecurity([], { table: makeDeviceTable(count) }) : new OscoreServerSecurity(makeDeviceContexts(count));
  const server = new CoapServer(new CoapEndpoint({ transport, parameters: { nstart: 1024 } }), { security });
  server.resource('/hello', { GET: () => ({ code: ResponseCode.Content, payload: 'Hello from coapsec' }) });
  const { bytes, ends } = deviceRequests(count - 1, requests);
  const warmup = Math.min(20_000, requests >>> 2);
  // Each 65,536 requests come from another port: a Message ID seen again from the same endpoint
  // within EXCHANGE_LIFETIME is a duplicate the message layer answers from its cache.
  const peers = Array.from({ length: Math.ceil(requests / 65_536) }, (_, i) => ({ address: '127.0.0.1', port: 40_000 + i }));
  const feed = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i += 32) {
      const end = Math.min(to, i + 32);
      for (let j = i; j < end; j++) transport.handler(bytes.subarray(j === 0 ? 0 : ends[j - 1]!, ends[j]!), peers[j >>> 16]!, undefined);
      await macrotask();
    }
  };
  await feed(0, warmup);
  gc();
  const heapMB = process.memoryUsage().heapUsed / 2 ** 20;
  let scavenge = 0;
  let markCompact = 0;
  let markCompacts = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === 1) scavenge += entry.duration; // NODE_PERFORMANCE_GC_MINOR
      else if (kind === 2) (markCompact += entry.duration), markCompacts++; // NODE_PERFORMANCE_GC_MAJOR
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  const cpu = process.cpuUsage();
  await feed(warmup, requests);
  const used = process.cpuUsage(cpu);
  await macrotask();
  observer.disconnect();
  const measured = requests - warmup;
  if (transport.answers !== requests) throw new Error(`${transport.answers} answers to ${requests} requests`);
  await server.close();
  return { count, layout, micros: (used.user + used.system) / measured, scavengeMsPerK: (scavenge * 1000) / measured, markCompactMsPerK: (markCompact * 1000) / measured, markCompacts, heapMB };
}

function forkChild<T>(args: string[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), args, { execArgv: ['--expose-gc', ...process.execArgv] });
    child.once('message', (m) => resolve(m as T));
    child.once('exit', (code) => code !== 0 && reject(new Error(`child ${args.join(' ')} exited ${code}`)));
  });
}

async function serverMain(counts: number[], layouts: Layout[], rounds: number, requests: number): Promise<void> {
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const cases = layouts.flatMap((layout) => counts.map((count) => ({ layout, count })));
  const results: ServerCostResult[][] = cases.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (let c = 0; c < cases.length; c++) {
      const r = await forkChild<ServerCostResult>(['--server-child', String(cases[c]!.count), String(requests), cases[c]!.layout]);
      results[c]!.push(r);
      console.error(`round ${round + 1}/${rounds} ${r.layout} ${r.count} contexts: ${r.micros.toFixed(2)} µs/request, scavenge ${r.scavengeMsPerK.toFixed(2)} ms/1k, mark-compact ${r.markCompactMsPerK.toFixed(2)} ms/1k (${r.markCompacts}), heap ${r.heapMB.toFixed(1)} MB`);
    }
  }
  console.log('layout | contexts | CPU µs per request (median; rounds) | vs the layout’s first count, per round | scavenge ms per 1k requests | mark-compact ms per 1k (count) | heap MB');
  cases.forEach(({ layout, count }, c) => {
    const rs = results[c]!;
    const baseline = results[cases.findIndex((x) => x.layout === layout)]!;
    const ratios = rs.map((r, i) => r.micros / baseline[i]!.micros);
    console.log(
      `${layout} | ${count} | ${median(rs.map((r) => r.micros)).toFixed(2)} (${rs.map((r) => r.micros.toFixed(2)).join(' / ')}) | ${median(ratios).toFixed(3)}× (${ratios.map((x) => x.toFixed(3)).join(' / ')})` +
        ` | ${median(rs.map((r) => r.scavengeMsPerK)).toFixed(2)} | ${median(rs.map((r) => r.markCompactMsPerK)).toFixed(2)} (${median(rs.map((r) => r.markCompacts))}) | ${median(rs.map((r) => r.heapMB)).toFixed(1)}`,
    );
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    process.send!(measure(Number(args[1]), args[2] === 'load'));
    return;
  }
  if (args[0] === '--server-child') {
    const result = await serverCost(Number(args[1]), Number(args[2]), (args[3] ?? 'table') as Layout);
    if (process.send) process.send(result, () => process.exit(0));
    else console.log(JSON.stringify(result)); // run alone, e.g. under --trace-gc-nvp
    return;
  }
  const option = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  if (args.includes('--server')) {
    const layouts = (option('--layouts') ?? 'objects,table').split(',') as Layout[];
    await serverMain((option('--counts') ?? '1,100000').split(',').map(Number), layouts, Number(option('--rounds') ?? 3), Number(option('--requests') ?? 300_000));
    return;
  }
  const countsArg = args.indexOf('--counts');
  const counts = countsArg >= 0 ? args[countsArg + 1]!.split(',').map(Number) : [1, 1000, 10_000, 100_000];
  const load = !args.includes('--no-load');
  console.log('contexts | µs CPU per find | heap MB | create ms CPU | load from credentials ms CPU');
  for (const count of counts) {
    const result = await new Promise<ContextCountResult>((resolve, reject) => {
      const child = fork(fileURLToPath(import.meta.url), ['--child', String(count), load ? 'load' : 'no-load'], { execArgv: ['--expose-gc'] });
      child.once('message', (m) => resolve(m as ContextCountResult));
      child.once('exit', (code) => code !== 0 && reject(new Error(`child for ${count} exited ${code}`)));
    });
    console.log(`${count} | ${result.findMicros.toFixed(3)} | ${result.heapMB.toFixed(1)} | ${result.createMs.toFixed(0)} | ${result.loadMs?.toFixed(0) ?? '-'}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
