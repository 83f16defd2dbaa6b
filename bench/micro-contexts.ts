/**
 * Many OSCORE peers (issue 21): for 1, 1k, 10k and 100k server contexts (one per device, each with
 * its own Master Secret and Recipient ID), the CPU per ContextDirectory lookup, the heap the
 * contexts hold (after gc), and the CPU to load them from a credentials file. Each count runs in
 * its own child process (`--expose-gc`), so one count's garbage cannot weigh on the next.
 *
 *   node dist/bench/micro-contexts.js [--counts 1,1000,10000,100000] [--no-load]
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ContextDirectory, OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { serverCredentials } from '../src/server/credentials.js';

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

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    process.send!(measure(Number(args[1]), args[2] === 'load'));
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
