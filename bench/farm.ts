/**
 * The farm (issue 26), in one run: OSCORE GET req/s and CPU per request for 1 node without the
 * balancer, 1 node behind nginx's stream module, and 2 nodes behind it (scripts/farm.mjs:
 * Redis, nginx, `serve --store` nodes). CPU is the nodes' and nginx's (workers included) user +
 * system time from /proc, divided by the requests answered; the clients' own CPU is left out.
 *
 *   node dist/bench/farm.js [SECONDS] [CLIENTS]      (default 10 s, 20 clients)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { provisionDevices, startFarm, type Farm } from '../test/farm-devices.js';

const SECONDS = Number(process.argv[2] ?? 10);
const CLIENTS = Number(process.argv[3] ?? 20);
const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);

function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {
      // gone: counted up to its last reading only
    }
  }
  return ticks / TICKS_PER_SECOND;
}

function withChildren(pid: number): number[] {
  const children = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.trim() !== '').map(Number);
  return [pid, ...children];
}

/** The same clients (and so the same Sender Sequence Numbers, never restarted at 0) for every setup of one farm. */
async function measure(label: string, farm: Farm, target: (farm: Farm) => number, throughBalancer: boolean, clients: CoapClient[]): Promise<string> {
  const uri = `coap://127.0.0.1:${target(farm)}/hello`;
  await Promise.all(clients.map((c) => c.get(uri))); // Echo round trips and connections warm
  const pids = [...farm.nodes.map((n) => n.pid!), ...(throughBalancer ? withChildren(farm.balancer.pid!) : [])];
  const cpuBefore = cpuSeconds(pids);
  const end = Date.now() + SECONDS * 1000;
  let answered = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (Date.now() < end) if ((await c.get(uri)).status === '2.05 Content') answered++;
    }),
  );
  const cpu = cpuSeconds(pids) - cpuBefore;
  return `| ${label} | ${Math.round(answered / SECONDS)} | ${((cpu * 1e6) / answered).toFixed(0)} |`;
}

async function main(): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), 'coapsec-farm-bench-'));
  process.env['COAPSEC_STATE_DIR'] = directory;
  const rows = ['| setup | req/s | server CPU µs per request |', '|---|---|---|'];
  try {
    for (const nodes of [1, 2]) {
      const farm = await startFarm({ nodes, hashKey: '$remote_addr:$remote_port' });
      try {
        const clients = (await provisionDevices(directory, farm.redisUrl, CLIENTS)).map((context) => {
          const security = new OscoreClientSecurity(new OscoreSecurityContext(context, new VolatileSequence(0)));
          return new CoapClient({ security: () => security });
        });
        try {
          if (nodes === 1) rows.push(await measure('1 node, no balancer', farm, (f) => f.nodes[0]!.port, false, clients));
          rows.push(await measure(`${nodes} node${nodes > 1 ? 's' : ''} behind nginx`, farm, (f) => f.port, true, clients));
        } finally {
          await Promise.all(clients.map((c) => c.close()));
        }
      } finally {
        await farm.stop();
      }
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
  process.stdout.write(`farm: ${CLIENTS} OSCORE clients (sequential GETs each), ${SECONDS} s per setup\n${rows.join('\n')}\n`);
}

await main();
