/**
 * Runs every benchmark, one after another, each in its own process: the CON GET benchmark
 * (run.js), block-wise (blockwise.js), OSCORE (oscore.js), DTLS (dtls.js), the forward proxy
 * (proxy.js), trust-anchor, OSCORE-capable proxy, the CPU budget (cpu-budget.js), the server CPU
 * benchmark under native load (server-cpu.js), the proxy under native load (proxy-cpu.js), the transports (transports.js), many OSCORE
 * contexts (contexts.js through the server, micro-contexts.js for the directory alone), 100k DTLS PSK identities (psk-identities.js), 100k EDHOC-made contexts (edhoc-contexts.js), EDHOC
 * handshakes (edhoc.js) and its time to the first OSCORE response (edhoc-first-response.js), a
 * KUDOS update against a new EDHOC run (kudos.js) and Group OSCORE to 3 servers (group.js). `npm run bench` runs this file. Arguments (--quick, --rounds N) are passed
 * to each; --only run,oscore picks some. Full run about 45 minutes (contexts.js alone about 15);
 * --quick about 8 minutes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ALL = ['run', 'blockwise', 'oscore', 'dtls', 'proxy', 'trust-anchor', 'oscore-proxy', 'cpu-budget', 'server-cpu', 'proxy-cpu', 'transports', 'contexts', 'micro-contexts', 'psk-identities', 'edhoc-contexts', 'edhoc', 'edhoc-first-response', 'kudos', 'group'] as const;
const args = process.argv.slice(2);
let only: string[] = [...ALL];
const i = args.indexOf('--only');
if (i >= 0) {
  only = (args[i + 1] ?? '').split(',').filter(Boolean);
  args.splice(i, 2);
  for (const name of only) if (!(ALL as readonly string[]).includes(name)) throw new Error(`--only: unknown benchmark ${name} (${ALL.join(', ')})`);
}
let child: ChildProcess | undefined;
const stop = (): void => {
  if (child && child.exitCode === null) child.kill('SIGTERM'); // each benchmark kills its own children on SIGTERM
  process.exit(130);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

let failed = 0;
for (const name of only) {
  const script = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  console.log(`\n## ${name}: node dist/bench/${name}.js ${args.join(' ')}\n`);
  const code = await new Promise<number>((resolve) => {
    child = spawn(process.execPath, [...process.execArgv, script, ...args], { stdio: 'inherit' });
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
  if (code !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
