/**
 * An A/B of the coapsec *client* under sockets (issue 21): bench/client.js of this tree and of other
 * trees, one child after another (order alternating per round), against one `coap-server-notls`
 * (plain) and one `coapsec serve` with OSCORE of this tree, both pinned to CPU 1, the clients to CPU 0;
 * plus the minimal CoAP client (bench/coap-minimal-client.ts, this tree's) as the floor. Client CPU
 * per request over each child's measurement window, as bench/server-cpu.ts measures it.
 *
 *   node dist/bench/client-trees.js [--rounds 3] [--concurrency 32,256] [--variants floor,plain,oscore] [--warmup MS] [--duration MS] [--port-base P] --tree base=DIR ...
 *
 * DIR: a checkout with `dist/` compiled (its bench/client.js and src).
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { median, type ClientJob, type ClientResult } from './common.js';
import { BENCH_RECIPIENT, HELLO, HELLO_PATH, startCoapsecServe, startLibcoap, writeServerCredentials, type RunningServer } from './cpu-servers.js';
import { clientJobTiming, forkAndAwait, here, labelledDir, parseCommonArgs, runMain } from './harness.js';
import { pinning } from './native-load.js';

type Flavour = 'floor' | 'plain' | 'oscore';

const USAGE = 'usage: node dist/bench/client-trees.js [--rounds N] [--warmup MS] [--duration MS] [--port-base P] [--concurrency 32,256] [--variants floor,plain,oscore] --tree LABEL=DIR ...';

interface Settings {
  rounds: number;
  warmupMs: number;
  durationMs: number;
  portBase: number;
  socketBuffer: number;
  concurrencies: number[];
  flavours: Flavour[];
  trees: Array<{ label: string; dir: string }>;
}

function parseArgs(argv: string[]): Settings {
  const extra = { concurrencies: [32, 256], flavours: ['floor', 'plain', 'oscore'] as Flavour[], trees: [{ label: 'this', dir: resolvePath(here('../..')) }] };
  const common = parseCommonArgs(argv, { quick: false, rounds: 3, warmupMs: 1500, durationMs: 2500, portBase: 47_900, socketBuffer: 1 << 20 }, { rounds: 1 }, USAGE, (arg, value) => {
    if (arg === '--concurrency') extra.concurrencies = value().split(',').map(Number);
    else if (arg === '--variants') extra.flavours = value().split(',') as Flavour[];
    else if (arg === '--tree') extra.trees.push(labelledDir(value(), arg));
    else return false;
    return true;
  });
  return { ...common, ...extra };
}

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const pin = pinning();
  console.error(pin.describe);
  const scratch = mkdtempSync(join(os.tmpdir(), 'coapsec-client-trees-'));
  const libcoap = await startLibcoap(pin, s.portBase);
  let oscore: RunningServer | undefined;
  const results = new Map<string, number[]>();
  // Each OSCORE client starts its Partial IVs above every earlier one's (the server's replay window).
  let sequenceStart = 0;
  try {
    if (s.flavours.includes('oscore')) oscore = await startCoapsecServe(pin, s.portBase + 1, scratch, writeServerCredentials(scratch, [BENCH_RECIPIENT]));
    for (let round = 0; round < s.rounds; round++) {
      for (const concurrency of s.concurrencies) {
        for (const flavour of s.flavours) {
          const trees = flavour === 'floor' ? s.trees.slice(0, 1) : round % 2 === 0 ? s.trees : [...s.trees].reverse();
          for (const tree of trees) {
            const server = flavour === 'oscore' ? oscore! : libcoap;
            const job: ClientJob = {
              impl: 'coapsec',
              port: flavour === 'oscore' ? s.portBase + 1 : s.portBase,
              ...clientJobTiming(s, concurrency),
              variant: flavour === 'oscore' ? 'oscore' : 'plain',
              minimalClient: flavour === 'floor',
              sequenceStart: (sequenceStart += 50_000_000),
              path: HELLO_PATH,
              payloadLength: HELLO.length,
              serverPid: server.pid,
            };
            const limit = s.warmupMs + s.durationMs + job.drainMs + 10_000;
            const { message } = await forkAndAwait<ClientResult>(join(tree.dir, 'dist/bench/client.js'), [JSON.stringify(job)], 'result', limit, false, pin.load);
            const w = message.window;
            const micros = w ? w.clientCpuMicros / w.completed : NaN;
            const label = `${flavour} ${concurrency} ${flavour === 'floor' ? 'minimal client' : tree.label}`;
            results.set(label, [...(results.get(label) ?? []), micros]);
            console.error(`round ${round + 1}/${s.rounds}  ${label.padEnd(24)} client ${micros.toFixed(1)} µs/req  server ${w ? (w.serverCpuMicros / w.completed).toFixed(1) : '-'} µs/req  ${message.rps.toFixed(0)} req/s`);
          }
        }
      }
    }
  } finally {
    await libcoap.stop();
    await oscore?.stop();
  }
  for (const [label, xs] of results) console.log(`${label.padEnd(26)} client CPU ${median(xs).toFixed(1)} µs/request (rounds: ${xs.map((x) => x.toFixed(1)).join(' / ')})`);
}

runMain(main);
