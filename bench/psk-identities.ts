/**
 * Many DTLS PSK identities (issue 21, "Many peers": "the same for DTLS PSK identities"): a DTLS
 * server given one PSK identity per device, at 1, 1k, 10k and 100k devices, each count in its own
 * child process (`--expose-gc`):
 *
 * - load: CPU and wall time of `DtlsServerTransport.bind({ psk: [...] })` with that many
 *   identities (the server's identity → key map is built there), on 127.0.0.1 port 0;
 * - heap: heap + external growth after GC with the server holding them (the input list dropped);
 * - per handshake: CPU µs of full PSK handshakes (TLS_PSK_WITH_AES_128_CCM_8, cookie exchange
 *   included) from devices drawn at random, client engine to the bound server's engine in memory,
 *   so the identity lookup is the server's own; compared with 1 identity in the same run.
 *
 *   node dist/bench/psk-identities.js [--counts 1,1000,10000,100000] [--rounds 3] [--handshakes 300]
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DtlsClient } from '../src/dtls/index.js';
import { DtlsServerTransport, type DtlsPsk } from '../src/transport/dtls.js';
import { median, TLS_PSK_WITH_AES_128_CCM_8 } from './common.js';

interface PskResult {
  count: number;
  loadMs: number;
  loadCpuMs: number;
  heapMiB: number;
  handshakeMicros: number;
}

const identity = (i: number): string => `device-${i.toString(16).padStart(8, '0')}`;

function key(i: number): Buffer {
  const k = Buffer.alloc(16, 0x5a);
  k.writeUInt32BE(i, 12);
  return k;
}

const cpuMs = (from: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1000;
};

async function child(count: number, handshakes: number): Promise<PskResult> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  let psk: DtlsPsk[] | undefined = Array.from({ length: count }, (_, i) => ({ identity: identity(i), key: key(i) }));
  gc();
  const before = process.memoryUsage();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const server = await DtlsServerTransport.bind({ host: '127.0.0.1', port: 0, psk, cipherSuites: [TLS_PSK_WITH_AES_128_CCM_8], maxSessions: 4096 });
  const loadCpuMs = cpuMs(cpu0);
  const loadMs = performance.now() - t0;
  psk = undefined; // the caller's list is its own; what the server keeps is measured
  gc();
  const after = process.memoryUsage();
  const heapMiB = (after.heapUsed + after.external - before.heapUsed - before.external) / 2 ** 20;
  // What is kept of the list: the input objects themselves are gone, so growth is the server's map (and the socket).
  const engine = server.engine;
  const now = (): number => performance.now();
  let seed = 0x9e3779b9;
  const next = (): number => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % count;
  const handshake = (n: number): void => {
    const device = next();
    const peer = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}:${5000 + (n % 60000)}`;
    const client = new DtlsClient({ now, psk: { identity: Buffer.from(identity(device)), key: key(device) }, cipherSuites: [TLS_PSK_WITH_AES_128_CCM_8] });
    let toServer = client.start();
    for (let flight = 0; flight < 10 && client.state !== 'connected'; flight++) {
      const toClient: Buffer[] = [];
      for (const d of toServer) toClient.push(...engine.receive(d, peer).send);
      toServer = [];
      for (const d of toClient) toServer.push(...client.receive(d).send);
    }
    for (const d of toServer) engine.receive(d, peer);
    if (client.state !== 'connected') throw new Error(`handshake of ${identity(device)} did not complete (${client.state}: ${client.failureReason ?? ''})`);
    engine.close(peer);
  };
  for (let i = 0; i < 50; i++) handshake(i); // warm-up
  const cpu1 = process.cpuUsage();
  for (let i = 0; i < handshakes; i++) handshake(50 + i);
  const handshakeMicros = (cpuMs(cpu1) * 1000) / handshakes;
  await server.close();
  return { count, loadMs, loadCpuMs, heapMiB, handshakeMicros };
}

function runChild(count: number, handshakes: number): Promise<PskResult> {
  return new Promise((resolve, reject) => {
    const c = fork(fileURLToPath(import.meta.url), ['--child', String(count), String(handshakes)], { execArgv: ['--expose-gc', ...process.execArgv] });
    c.once('message', (m) => resolve(m as PskResult));
    c.once('exit', (code) => code !== 0 && reject(new Error(`child for ${count} identities exited ${code}`)));
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    const result = await child(Number(args[1]), Number(args[2]));
    process.send!(result, () => process.exit(0));
    return;
  }
  const option = (name: string, fallback: string): string => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
  const counts = option('--counts', '1,1000,10000,100000').split(',').map(Number);
  const rounds = Number(option('--rounds', '3'));
  const handshakes = Number(option('--handshakes', '300'));
  const results = new Map<number, PskResult[]>(counts.map((c) => [c, []]));
  for (let round = 0; round < rounds; round++) {
    for (const count of counts) {
      const r = await runChild(count, handshakes);
      results.get(count)!.push(r);
      console.error(`round ${round + 1}/${rounds} ${count} identities: load ${r.loadMs.toFixed(1)} ms (CPU ${r.loadCpuMs.toFixed(1)}), heap +${r.heapMiB.toFixed(1)} MiB, ${r.handshakeMicros.toFixed(0)} µs CPU per handshake`);
    }
  }
  const base = results.get(counts[0]!)!;
  console.log('PSK identities | load ms (CPU ms) | heap MiB | CPU µs per handshake (rounds) | ÷ first count, per round');
  for (const count of counts) {
    const rs = results.get(count)!;
    const ratios = rs.map((r, i) => r.handshakeMicros / base[i]!.handshakeMicros);
    console.log(
      `${count} | ${median(rs.map((r) => r.loadMs)).toFixed(1)} (${median(rs.map((r) => r.loadCpuMs)).toFixed(1)}) | ${median(rs.map((r) => r.heapMiB)).toFixed(1)} | ` +
        `${median(rs.map((r) => r.handshakeMicros)).toFixed(0)} (${rs.map((r) => r.handshakeMicros.toFixed(0)).join(' / ')}) | ${median(ratios).toFixed(2)}× (${ratios.map((x) => x.toFixed(2)).join(' / ')})`,
    );
  }
}

await main();
