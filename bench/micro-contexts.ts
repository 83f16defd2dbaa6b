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
 * The server holds the contexts as OscoreSecurityContext objects (`objects`), in a ContextTable
 * (`table`, LRU of 1,024 active contexts) or in a ContextTable whose LRU holds every device
 * (`table-all`), the layouts interleaved in each round.
 *
 * `base` and `base-all` (with `--base DIR`): the `table` and `table-all` layouts with the server and
 * table of another tree's dist/.
 *
 * Two floors (issue 21: what Node's crypto costs when the key changes per request), not servers:
 * on the same requests, each child does only the minimal OSCORE work of a GET — read the OSCORE
 * option's Partial IV and kid, look the device's keys up (derived before the measured window), build
 * the nonce and AAD (§5.2, §5.4), open the request and seal a fixed inner 2.05 under the request's
 * nonce into a reply datagram. No CoAP message layer, no replay window, no context objects.
 * `floor-node` does the AEAD as Node's own `aes-128-ccm` (createDecipheriv + createCipheriv per
 * message: a new OpenSSL context and key schedule each time, whatever the device); `floor-ours`
 * through src/oscore's AEAD (src/crypto/aes-ccm.ts), every device's keys kept for the run.
 * `floor-node` at N devices over itself at one device is what Node charges for changing keys.
 *
 * `--from` says which devices the requests come from (issue 21: many active devices, so the LRU
 * is exceeded): `one` (the last device; default), `uniform:N` (uniformly from N devices spread
 * over all of them), `hot:N` (90 % from N hot devices, 10 % uniformly from all). With 1 context
 * every request comes from that one device, the baseline. The requests are made in the parent
 * and handed to the child in a file, so the child holds no client context.
 *
 *   node dist/bench/micro-contexts.js --server [--counts 1,100000] [--layouts objects,table] [--rounds 3] [--requests 300000] [--from one,uniform:10000,hot:1000]
 */
import { fork } from 'node:child_process';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PerformanceObserver } from 'node:perf_hooks';
import { encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { AeadId, aeadAlgorithm } from '../src/oscore/algorithms.js';
import { deriveContext, nonce, type DerivedContext } from '../src/oscore/context.js';
import { additionalData, protectRequest } from '../src/oscore/protect.js';
import { ContextTable } from '../src/oscore/context-table.js';
import { ContextDirectory, OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { serverCredentials } from '../src/server/credentials.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import type { PeerAddress } from '../src/transport/transport.js';
import { DroppingTransport } from './dropping-transport.js';

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
  return fillDeviceTable(new ContextTable(active === undefined ? {} : { active }), count);
}

function fillDeviceTable<T extends Pick<ContextTable, 'add'>>(table: T, count: number): T {
  const senderId = new Uint8Array(0);
  for (let i = 0; i < count; i++) table.add({ masterSecret: deviceSecret(i), senderId, recipientIds: [deviceKid(i)], name: `device-${i}` });
  return table;
}

/** What the `base` layout takes from another tree's dist/ (the same public shapes). */
async function baseLibrary(tree: string): Promise<{ ContextTable: typeof ContextTable; OscoreServerSecurity: typeof OscoreServerSecurity; CoapServer: typeof CoapServer; CoapEndpoint: typeof CoapEndpoint }> {
  const load = (path: string): Promise<Record<string, unknown>> => import(pathToFileURL(join(tree, 'dist', path)).href) as Promise<Record<string, unknown>>;
  const [table, oscore, server, endpoint] = await Promise.all([load('src/oscore/context-table.js'), load('src/server/oscore.js'), load('src/server/server.js'), load('src/exchange/endpoint.js')]);
  return { ContextTable: table.ContextTable, OscoreServerSecurity: oscore.OscoreServerSecurity, CoapServer: server.CoapServer, CoapEndpoint: endpoint.CoapEndpoint } as never;
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

/** How the server holds its contexts: as OscoreSecurityContext objects, or in a ContextTable (LRU of 1,024, or of every device). */
export type Layout = 'objects' | 'table' | 'table-all' | 'base' | 'base-all' | 'floor-node' | 'floor-ours';

export interface ServerCostResult {
  count: number;
  layout: Layout;
  /** Which devices the requests came from (--from). */
  from: string;
  /** CPU µs per request (the whole process: V8's GC threads included). */
  micros: number;
  /** Milliseconds of GC per 1,000 requests, by kind (PerformanceObserver: main-thread pauses). */
  scavengeMsPerK: number;
  markCompactMsPerK: number;
  markCompacts: number;
  heapMB: number;
}


/** The device of each request: `from` as --from describes it, over `count` devices (seeded, the same every run). */
export function requestDevices(from: string, count: number, requests: number): Uint32Array {
  const devices = new Uint32Array(requests);
  if (count === 1 || from === 'one') return devices.fill(count - 1);
  const [kind, n] = from.split(':');
  const spread = Math.min(count, Number(n));
  if (!(spread >= 1) || (kind !== 'uniform' && kind !== 'hot')) throw new Error(`--from: one, uniform:N or hot:N, not ${from}`);
  let seed = 0x2545f491;
  const next = (m: number): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % m);
  // The N devices spread evenly over all of them (kids far apart in the hash as in the file).
  const pick = (k: number): number => Math.floor((k * count) / spread);
  // Each of the N once first, inside the warm-up: what is measured is devices coming back, not their first request.
  for (let i = 0; i < Math.min(spread, requests); i++) devices[i] = pick(i);
  for (let i = spread; i < requests; i++) devices[i] = kind === 'uniform' || next(10) < 9 ? pick(next(spread)) : next(count);
  return devices;
}

/** Requests before the measured window: every spread device once, then 20,000 more (at most half of them all). */
const warmupOf = (from: string, requests: number): number => Math.min(requests >>> 1, 20_000 + (from === 'one' ? 0 : Number(from.split(':')[1])));

/** OSCORE GETs of /hello, request i from device `devices[i]`, each device counting its own Partial IVs, encoded one after another in one buffer (no object per request). */
export function deviceRequests(devices: Uint32Array): { bytes: Buffer; ends: Uint32Array } {
  const clients = new Map<number, { sender: OscoreSecurityContext['sender']; seq: number }>();
  const template = { type: MessageType.CON, code: Method.GET, messageId: 0, token: new Uint8Array(8), options: [{ number: OptionNumber.UriPath, value: Buffer.from('hello') }], payload: new Uint8Array(0) };
  const requests = devices.length;
  const chunks: Buffer[] = [];
  const ends = new Uint32Array(requests);
  let at = 0;
  for (let i = 0; i < requests; i++) {
    const device = devices[i]!;
    let client = clients.get(device);
    if (client === undefined) {
      const context = new OscoreSecurityContext({ masterSecret: deviceSecret(device), senderId: deviceKid(device), recipientIds: [new Uint8Array(0)] }, new VolatileSequence());
      clients.set(device, (client = { sender: context.sender, seq: 0 }));
    }
    const d = encodeMessage(protectRequest(template, client.sender, client.seq++).message);
    d.writeUInt16BE(i & 0xffff, 2);
    d.writeUInt32BE(i, 4);
    chunks.push(d);
    at += d.length;
    ends[i] = at;
  }
  return { bytes: Buffer.concat(chunks), ends };
}

/** The requests in a file for the child: their count, the ends, then the bytes. */
export function writeRequests(file: string, { bytes, ends }: { bytes: Buffer; ends: Uint32Array }): void {
  const head = Buffer.alloc(4);
  head.writeUInt32LE(ends.length);
  writeFileSync(file, Buffer.concat([head, Buffer.from(ends.buffer, ends.byteOffset, ends.byteLength), bytes]));
}

function readRequests(file: string): { bytes: Buffer; ends: Uint32Array } {
  const all = readFileSync(file);
  const n = all.readUInt32LE(0);
  const ends = new Uint32Array(n);
  Buffer.from(ends.buffer).set(all.subarray(4, 4 + 4 * n));
  return { bytes: all.subarray(4 + 4 * n), ends };
}

const macrotask = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** GC pauses by kind while the measured requests run (PerformanceObserver 'gc'). */
class GcPauses {
  scavenge = 0;
  markCompact = 0;
  markCompacts = 0;
  readonly #observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === 1) this.scavenge += entry.duration; // NODE_PERFORMANCE_GC_MINOR
      else if (kind === 2) (this.markCompact += entry.duration), this.markCompacts++; // NODE_PERFORMANCE_GC_MAJOR
    }
  });
  start(): void {
    this.#observer.observe({ entryTypes: ['gc'] });
  }
  stop(): void {
    this.#observer.disconnect();
  }
}

/**
 * The measured window only (not the warm-up, whose key derivations would swamp it), profiled in
 * the child: `MICRO_CONTEXTS_PROFILE=cpu:FILE` writes a .cpuprofile, `heap:FILE` a sampling heap
 * profile that keeps the objects minor and major GCs collected (where a request's garbage comes from).
 */
class WindowProfiler {
  private constructor(
    private readonly session: import('node:inspector/promises').Session,
    private readonly kind: string,
    private readonly file: string,
  ) {}

  static async start(spec: string | undefined): Promise<WindowProfiler | undefined> {
    if (spec === undefined || spec === '') return undefined;
    const [kind, file] = [spec.slice(0, spec.indexOf(':')), spec.slice(spec.indexOf(':') + 1)];
    if ((kind !== 'cpu' && kind !== 'heap') || file === '') throw new Error(`MICRO_CONTEXTS_PROFILE: cpu:FILE or heap:FILE, not ${spec}`);
    const { Session } = await import('node:inspector/promises');
    const session = new Session();
    session.connect();
    if (kind === 'cpu') {
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 100 });
      await session.post('Profiler.start');
    } else {
      await session.post('HeapProfiler.enable');
      await session.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as never);
    }
    return new WindowProfiler(session, kind, file);
  }

  async stop(): Promise<void> {
    const { profile } = this.kind === 'cpu' ? await this.session.post('Profiler.stop') : await this.session.post('HeapProfiler.stopSampling');
    writeFileSync(this.file, JSON.stringify(profile));
    this.session.disconnect();
  }
}

/**
 * Feeds the request file to `receive` (32 per macrotask), the warm-up first, and measures the rest:
 * CPU per request, GC pauses and the heap after the warm-up. `answers()` must count every request.
 */
async function feedAndMeasure(requestFile: string, from: string, receive: (datagram: Buffer, peer: PeerAddress) => void, answers: () => number): Promise<Omit<ServerCostResult, 'count' | 'layout' | 'from'>> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const { bytes, ends } = readRequests(requestFile);
  const requests = ends.length;
  const warmup = warmupOf(from, requests);
  // Each 65,536 requests come from another port: a Message ID seen again from the same endpoint
  // within EXCHANGE_LIFETIME is a duplicate the message layer answers from its cache.
  const peers = Array.from({ length: Math.ceil(requests / 65_536) }, (_, i) => ({ address: '127.0.0.1', port: 40_000 + i }));
  const feed = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i += 32) {
      const end = Math.min(to, i + 32);
      for (let j = i; j < end; j++) receive(bytes.subarray(j === 0 ? 0 : ends[j - 1]!, ends[j]!), peers[j >>> 16]!);
      await macrotask();
    }
  };
  await feed(0, warmup);
  gc();
  const heapMB = process.memoryUsage().heapUsed / 2 ** 20;
  const profiler = await WindowProfiler.start(process.env.MICRO_CONTEXTS_PROFILE);
  const pauses = new GcPauses();
  pauses.start();
  const cpu = process.cpuUsage();
  await feed(warmup, requests);
  const used = process.cpuUsage(cpu);
  await macrotask();
  pauses.stop();
  await profiler?.stop();
  const measured = requests - warmup;
  if (answers() !== requests) throw new Error(`${answers()} answers to ${requests} requests`);
  return { micros: (used.user + used.system) / measured, scavengeMsPerK: (pauses.scavenge * 1000) / measured, markCompactMsPerK: (pauses.markCompact * 1000) / measured, markCompacts: pauses.markCompacts, heapMB };
}

async function serverCost(count: number, requestFile: string, layout: Layout, from: string): Promise<ServerCostResult> {
  const transport = new DroppingTransport();
  // `base`: the server and its table from another tree (--base DIR, its compiled dist/), for an A/B in one run.
  const lib = layout === 'base' || layout === 'base-all' ? await baseLibrary(process.env.COAPSEC_BASE_TREE!) : { ContextTable, OscoreServerSecurity, CoapServer, CoapEndpoint };
  const security =
    layout === 'objects'
      ? new OscoreServerSecurity(makeDeviceContexts(count))
      : new lib.OscoreServerSecurity([], { table: fillDeviceTable(new lib.ContextTable(layout === 'table-all' || layout === 'base-all' ? { active: count } : {}), count) });
  const server = new lib.CoapServer(new lib.CoapEndpoint({ transport, parameters: { nstart: 1024 } }), { security });
  server.resource('/hello', { GET: () => ({ code: ResponseCode.Content, payload: 'Hello from coapsec' }) });
  const result = await feedAndMeasure(requestFile, from, (datagram, peer) => transport.handler(datagram, peer, undefined), () => transport.answers);
  await server.close();
  return { count, layout, from, ...result };
}

// --- the floors (floor-node, floor-ours): the minimal OSCORE work per request, see the module comment ---

const FLOOR_AEAD = aeadAlgorithm(AeadId.AES_CCM_16_64_128);
const FLOOR_TAG = 8;
/** The inner response the floors seal (§5.3): 2.05, Content-Format 0, the payload the server's /hello sends. */
const FLOOR_INNER = Buffer.concat([Buffer.of(0x45, 0xc0, 0xff), Buffer.from('Hello from coapsec')]);

/** The kids of the requests in the file, as numbers (4-byte kids: deviceKid), each once. */
function requestKids(requestFile: string): Set<number> {
  const { bytes, ends } = readRequests(requestFile);
  const kids = new Set<number>();
  for (let j = 0; j < ends.length; j++) {
    const fields = oscoreFields(bytes.subarray(j === 0 ? 0 : ends[j - 1]!, ends[j]!));
    if (fields === undefined) throw new Error(`request ${j} is not an OSCORE request of this benchmark`);
    kids.add(fields.kid);
  }
  return kids;
}

/**
 * The OSCORE option of one of deviceRequests' requests (the only outer option, §6.1: flags, the
 * Partial IV, a 4-byte kid) and where the ciphertext starts; undefined for anything else.
 */
function oscoreFields(msg: Buffer): { piv: Buffer; partialIv: number; kid: number; kidBytes: Buffer; ciphertextAt: number } | undefined {
  const tokenLength = msg[0]! & 0x0f;
  let at = 4 + tokenLength;
  const optionByte = msg[at++]!;
  if (optionByte >> 4 !== 9) return undefined;
  const optionLength = optionByte & 0x0f;
  const flags = msg[at]!;
  const pivLength = flags & 0x07;
  if (flags !== (0x08 | pivLength) || optionLength !== 1 + pivLength + 4) return undefined;
  const piv = msg.subarray(at + 1, at + 1 + pivLength);
  const kidBytes = msg.subarray(at + 1 + pivLength, at + optionLength);
  at += optionLength;
  if (msg[at++] !== 0xff) return undefined;
  let partialIv = 0;
  for (const b of piv) partialIv = partialIv * 256 + b;
  return { piv, partialIv, kid: kidBytes.readUInt32BE(0), kidBytes, ciphertextAt: at };
}

async function floorCost(count: number, requestFile: string, layout: 'floor-node' | 'floor-ours', from: string): Promise<ServerCostResult> {
  const serverId = new Uint8Array(0);
  const keys = new Map<number, DerivedContext>();
  for (const kid of requestKids(requestFile)) keys.set(kid, deriveContext({ masterSecret: deviceSecret(kid), senderId: serverId, recipientId: deviceKid(kid) }));
  let answers = 0;
  const reply = (msg: Buffer, sealed: Uint8Array): void => {
    const tokenLength = msg[0]! & 0x0f;
    const out = Buffer.allocUnsafe(4 + tokenLength + 2 + sealed.length);
    out[0] = 0x60 | tokenLength; // ACK
    out[1] = 0x44; // 2.04 outer
    msg.copy(out, 2, 2, 4 + tokenLength);
    out[4 + tokenLength] = 0x90; // an empty OSCORE option
    out[5 + tokenLength] = 0xff;
    out.set(sealed, 6 + tokenLength);
    answers++;
  };
  const receive = (msg: Buffer): void => {
    const fields = oscoreFields(msg);
    if (fields === undefined) return;
    const context = keys.get(fields.kid);
    if (context === undefined) return;
    const requestNonce = nonce(context.commonIv, fields.kidBytes, fields.piv);
    const aad = additionalData(FLOOR_AEAD.id, fields.kidBytes, fields.piv);
    const sealedRequest = msg.subarray(fields.ciphertextAt);
    if (layout === 'floor-ours') {
      if (FLOOR_AEAD.open(context.recipientKey, requestNonce, aad, sealedRequest, fields.partialIv) === undefined) return;
      reply(msg, FLOOR_AEAD.seal(context.senderKey, requestNonce, aad, FLOOR_INNER, fields.partialIv));
      return;
    }
    const n = sealedRequest.length - FLOOR_TAG;
    const decipher = createDecipheriv('aes-128-ccm', context.recipientKey, requestNonce, { authTagLength: FLOOR_TAG });
    decipher.setAuthTag(sealedRequest.subarray(n));
    decipher.setAAD(aad, { plaintextLength: n });
    decipher.update(sealedRequest.subarray(0, n));
    try {
      decipher.final();
    } catch {
      return; // does not authenticate
    }
    const cipher = createCipheriv('aes-128-ccm', context.senderKey, requestNonce, { authTagLength: FLOOR_TAG });
    cipher.setAAD(aad, { plaintextLength: FLOOR_INNER.length });
    const body = cipher.update(FLOOR_INNER);
    cipher.final();
    reply(msg, Buffer.concat([body, cipher.getAuthTag()]));
  };
  return { count, layout, from, ...(await feedAndMeasure(requestFile, from, receive, () => answers)) };
}

function forkChild<T>(args: string[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), args, { execArgv: ['--expose-gc', ...process.execArgv] });
    child.once('message', (m) => resolve(m as T));
    child.once('exit', (code) => code !== 0 && reject(new Error(`child ${args.join(' ')} exited ${code}`)));
  });
}

async function serverMain(counts: number[], layouts: Layout[], rounds: number, requests: number, spreads: string[]): Promise<void> {
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  // The 1-context baseline once per layout; every spread at every other count.
  const cases = layouts.flatMap((layout) => counts.flatMap((count) => (count === 1 ? [{ layout, count, from: 'one' }] : spreads.map((from) => ({ layout, count, from })))));
  const scratch = mkdtempSync(join(tmpdir(), 'coapsec-micro-contexts-'));
  const files = new Map<string, string>();
  try {
    for (const { count, from } of cases) {
      const key = `${count}-${from}`;
      if (files.has(key)) continue;
      const file = join(scratch, `${key.replace(':', '_')}.req`);
      writeRequests(file, deviceRequests(requestDevices(from, count, requests)));
      files.set(key, file);
    }
    const results: ServerCostResult[][] = cases.map(() => []);
    for (let round = 0; round < rounds; round++) {
      for (let c = 0; c < cases.length; c++) {
        const { count, layout, from } = cases[c]!;
        const r = await forkChild<ServerCostResult>(['--server-child', String(count), files.get(`${count}-${from}`)!, layout, from]);
        results[c]!.push(r);
        console.error(`round ${round + 1}/${rounds} ${r.layout} ${r.count} contexts from ${r.from}: ${r.micros.toFixed(2)} µs/request, scavenge ${r.scavengeMsPerK.toFixed(2)} ms/1k, mark-compact ${r.markCompactMsPerK.toFixed(2)} ms/1k (${r.markCompacts}), heap ${r.heapMB.toFixed(1)} MB`);
      }
    }
    console.log('layout | contexts | requests from | CPU µs per request (median; rounds) | vs the layout’s first count, per round | scavenge ms per 1k requests | mark-compact ms per 1k (count) | heap MB');
    cases.forEach(({ layout, count, from }, c) => {
      const rs = results[c]!;
      const baseline = results[cases.findIndex((x) => x.layout === layout)]!;
      const ratios = rs.map((r, i) => r.micros / baseline[i]!.micros);
      console.log(
        `${layout} | ${count} | ${from} | ${median(rs.map((r) => r.micros)).toFixed(2)} (${rs.map((r) => r.micros.toFixed(2)).join(' / ')}) | ${median(ratios).toFixed(3)}× (${ratios.map((x) => x.toFixed(3)).join(' / ')})` +
          ` | ${median(rs.map((r) => r.scavengeMsPerK)).toFixed(2)} | ${median(rs.map((r) => r.markCompactMsPerK)).toFixed(2)} (${median(rs.map((r) => r.markCompacts))}) | ${median(rs.map((r) => r.heapMB)).toFixed(1)}`,
      );
    });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    process.send!(measure(Number(args[1]), args[2] === 'load'));
    return;
  }
  if (args[0] === '--server-child') {
    const layout = (args[3] ?? 'table') as Layout;
    const cost = layout === 'floor-node' || layout === 'floor-ours' ? floorCost : serverCost;
    const result = await cost(Number(args[1]), args[2]!, layout as never, args[4] ?? 'one');
    if (process.send) process.send(result, () => process.exit(0));
    else console.log(JSON.stringify(result)); // run alone, e.g. under --trace-gc-nvp
    return;
  }
  const option = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  if (args.includes('--server')) {
    const layouts = (option('--layouts') ?? 'objects,table').split(',') as Layout[];
    const spreads = (option('--from') ?? 'one').split(',');
    const base = option('--base');
    if (layouts.includes('base') || layouts.includes('base-all')) {
      if (base === undefined) throw new Error('the base layout needs --base DIR (a tree with a compiled dist/)');
      process.env.COAPSEC_BASE_TREE = base; // the children inherit it
    }
    await serverMain((option('--counts') ?? '1,100000').split(',').map(Number), layouts, Number(option('--rounds') ?? 3), Number(option('--requests') ?? 300_000), spreads);
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
