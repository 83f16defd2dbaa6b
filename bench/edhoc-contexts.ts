/**
 * EDHOC-made OSCORE contexts at scale (issue 21, "the same for … EDHOC sessions"): for 1, 1k, 10k
 * and 100k contexts an EdhocServer holds, the heap they take (after gc), the CPU to install them,
 * and the server's CPU per OSCORE request from one device and from a few devices, against 1
 * context. Each count and round runs in its own child process (`--expose-gc`).
 *
 * A real EDHOC handshake costs about 3 ms of CPU (BENCHMARKS.md, EDHOC handshakes), 5 minutes for
 * 100k: the contexts are installed instead from sessions made without a handshake — an
 * EdhocSession with a random PRK_out, its own C_R (3 bytes, distinct) — through
 * `EdhocServer.installSession`, the method a completed handshake calls (the OSCORE parameters
 * derived from PRK_out by the exporter, App. A.1, the context put in the table, the peer kept).
 * The install time below includes those exporter runs.
 *
 * The requests are OSCORE GETs of /hello made beforehand with each device's client context, fed
 * to a CoapServer (EdhocServer in front of no other security) in one buffer, 32 per macrotask, no
 * sockets. `one`: every request from one device installed early (put away by the LRU of 1,024
 * before its first request: materialised once, in the warm-up), against 1 context; `few:8`: from
 * 8 devices spread over all of them, in turn, against 8 contexts (the same 8 devices alone).
 *
 *   node dist/bench/edhoc-contexts.js [--counts 1,1000,10000,100000] [--rounds 3] [--requests 40000]
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { CoseCurve, generateKeyPairOn } from '../src/cose/index.js';
import { encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CredentialStore, type PeerCredential } from '../src/edhoc/credentials.js';
import { EdhocSession } from '../src/edhoc/session.js';
import { findCipherSuite } from '../src/edhoc/suites.js';
import { EdhocServer } from '../src/edhoc-coap/server.js';
import { oscoreHkdfFor } from '../src/edhoc-coap/oscore-context.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { protectRequest } from '../src/oscore/protect.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { CoapServer } from '../src/server/server.js';
import { DroppingTransport } from './dropping-transport.js';

/** Device i's C_R: 3 bytes, distinct for every i below 2^24. */
export const deviceConnectionId = (i: number): Uint8Array => Uint8Array.of((i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff);

/** One client credential for all devices (the trust store is not what is measured). */
export function devicePeer(subject = 'device'): PeerCredential {
  return { kind: 'ccs', cred: Uint8Array.of(0xa0), publicKey: generateKeyPairOn(CoseCurve.P256).publicKey, subject };
}

/** A Responder's completed session as message_3 would leave it, without the handshake: a random PRK_out (suite 2 unless told). */
export function premadeSession(peer: PeerCredential, connectionIdR: Uint8Array, suite = 2, connectionIdI: Uint8Array = Uint8Array.of(0x0a)): EdhocSession {
  const cipherSuite = findCipherSuite(suite)!;
  return new EdhocSession({ role: 'responder', method: 3, suite: cipherSuite, connectionIdI, connectionIdR, peer, ead: [], prkOut: randomBytes(cipherSuite.hashLength) });
}

/** The Initiator's OSCORE context of the same session (App. A.1: its Sender ID is C_R). */
export function clientContextOf(session: EdhocSession): OscoreSecurityContext {
  const params = session.oscore();
  return new OscoreSecurityContext(
    { masterSecret: params.masterSecret, masterSalt: params.masterSalt, senderId: params.recipientId, recipientIds: [params.senderId], aead: params.aeadAlgorithm, hkdf: oscoreHkdfFor(params.hashAlgorithm) },
    new VolatileSequence(0),
  );
}


export interface EdhocContextsResult {
  count: number;
  from: string;
  /** CPU ms to install all `count` contexts (installSession each). */
  installMs: number;
  /** Heap and external memory (the table's ArrayBuffers) after gc with the contexts installed, minus before the server existed, in MiB. */
  heapMiB: number;
  /** CPU µs per request (the whole process). */
  micros: number;
}

const cpuMs = (start: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
};
const macrotask = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The devices requests come from: one installed early, or `few:N` spread over all of them. */
function requestingDevices(from: string, count: number): number[] {
  if (from === 'one' || count === 1) return [Math.floor(count / 4)];
  const n = Math.min(count, Number(from.split(':')[1]));
  return Array.from({ length: n }, (_, k) => Math.floor(((k + 0.5) * count) / n));
}

async function measure(count: number, from: string, requests: number): Promise<EdhocContextsResult> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  // The table's bytes are ArrayBuffers outside V8's heap: counted too.
  const used = (): number => {
    gc();
    const memory = process.memoryUsage();
    return memory.heapUsed + memory.external;
  };
  const before = used();
  const transport = new DroppingTransport();
  const server = new CoapServer(new CoapEndpoint({ transport, parameters: { nstart: 1024 } }));
  server.resource('/hello', { GET: () => ({ code: ResponseCode.Content, payload: 'Hello from coapsec' }) });
  const edhoc = EdhocServer.attach(server, { responder: { suites: [2], credentials: [], peers: new CredentialStore() }, maxContexts: Math.max(count, 1) });
  const peer = devicePeer();
  const requesting = new Set(requestingDevices(from, count));
  const clients: OscoreSecurityContext[] = [];
  let installMs = 0;
  // Sessions in batches, so that the sessions themselves do not weigh on the heap measured.
  for (let start = 0; start < count; start += 1000) {
    const sessions = Array.from({ length: Math.min(1000, count - start) }, (_, k) => premadeSession(peer, deviceConnectionId(start + k)));
    sessions.forEach((s, k) => requesting.has(start + k) && clients.push(clientContextOf(s)));
    const cpu = process.cpuUsage();
    for (const session of sessions) edhoc.installSession(session);
    installMs += cpuMs(cpu);
  }
  if (edhoc.contextCount !== count) throw new Error(`${edhoc.contextCount} contexts installed, not ${count}`);
  const heapMiB = (used() - before) / 2 ** 20;

  const template = { type: MessageType.CON, code: Method.GET, messageId: 0, token: new Uint8Array(8), options: [{ number: OptionNumber.UriPath, value: Buffer.from('hello') }], payload: new Uint8Array(0) };
  const datagrams: Buffer[] = [];
  for (let i = 0; i < requests; i++) {
    const d = encodeMessage(protectRequest(template, clients[i % clients.length]!.sender, Math.floor(i / clients.length)).message);
    d.writeUInt16BE(i & 0xffff, 2);
    d.writeUInt32BE(i, 4);
    datagrams.push(d);
  }
  clients.length = 0;
  // Each 65,536 requests from another port (a Message ID seen again would be a duplicate).
  const peers = Array.from({ length: Math.ceil(requests / 65_536) }, (_, i) => ({ address: '127.0.0.1', port: 40_000 + i }));
  const feed = async (first: number, end: number): Promise<void> => {
    for (let i = first; i < end; i += 32) {
      for (let j = i; j < Math.min(end, i + 32); j++) transport.handler(datagrams[j]!, peers[j >>> 16]!, undefined);
      await macrotask();
    }
  };
  const warmup = Math.floor(requests / 4);
  await feed(0, warmup);
  gc();
  const cpu = process.cpuUsage();
  await feed(warmup, requests);
  const micros = (cpuMs(cpu) * 1000) / (requests - warmup);
  await macrotask();
  if (transport.answers !== requests) throw new Error(`${transport.answers} answers to ${requests} requests`);
  await server.close();
  return { count, from, installMs, heapMiB, micros };
}

function child(args: string[]): Promise<EdhocContextsResult> {
  return new Promise((resolve, reject) => {
    const forked = fork(fileURLToPath(import.meta.url), args, { execArgv: ['--expose-gc'] });
    forked.once('message', (m) => resolve(m as EdhocContextsResult));
    forked.once('exit', (code) => code !== 0 && reject(new Error(`child ${args.join(' ')} exited ${code}`)));
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    const result = await measure(Number(args[1]), args[2]!, Number(args[3]));
    process.send!(result, () => process.exit(0));
    return;
  }
  const option = (name: string, fallback: string): string => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
  const counts = option('--counts', '1,1000,10000,100000').split(',').map(Number);
  const rounds = Number(option('--rounds', '3'));
  const requests = Number(option('--requests', '40000'));
  // A few devices cannot come from one context: their baseline is as many contexts as devices.
  const cases = counts.flatMap((count) => ['one', 'few:8'].map((from) => ({ count: from === 'one' ? count : Math.max(count, 8), from })));
  const results = cases.map((): EdhocContextsResult[] => []);
  for (let round = 0; round < rounds; round++) {
    for (const [c, { count, from }] of cases.entries()) {
      const r = await child(['--child', String(count), from, String(requests)]);
      results[c]!.push(r);
      console.error(`round ${round + 1}/${rounds}: ${count} contexts, from ${from}: install ${r.installMs.toFixed(0)} ms, heap ${r.heapMiB.toFixed(1)} MiB, ${r.micros.toFixed(2)} µs/request`);
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log('contexts | requests from | install ms CPU (µs each) | heap MiB (bytes each) | CPU µs per request (rounds) | ÷ the smallest count, per round');
  for (const [c, { count, from }] of cases.entries()) {
    const rs = results[c]!;
    const baseline = results[cases.findIndex((x) => x.from === from)]!;
    const ratios = rs.map((r, i) => r.micros / baseline[i]!.micros);
    const install = median(rs.map((r) => r.installMs));
    const heap = median(rs.map((r) => r.heapMiB));
    console.log(
      `${count} | ${from} | ${install.toFixed(0)} (${((install * 1000) / count).toFixed(1)}) | ${heap.toFixed(1)} (${count >= 1000 ? ((heap * 2 ** 20) / count).toFixed(0) : '-'}) | ` +
        `${median(rs.map((r) => r.micros)).toFixed(2)} (${rs.map((r) => r.micros.toFixed(2)).join(' / ')}) | ${median(ratios).toFixed(3)}× (${ratios.map((x) => x.toFixed(2)).join(' / ')})`,
    );
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
