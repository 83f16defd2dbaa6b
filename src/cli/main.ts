/** The coapsec command line: a thin shell over the library. */
import { readFileSync } from 'node:fs';
import { ExitCode, UsageError, isSecurityFailure } from './errors.js';
import { tuneForServing } from './long-running.js';

const METHODS = new Set(['get', 'post', 'put', 'delete', 'fetch', 'patch', 'ipatch']);

interface Command {
  /** Printed for `coapsec COMMAND --help`. */
  usage: string;
  run(command: string, args: string[]): Promise<number>;
}

/**
 * Each command's module is imported only when that command runs: importing all of them cost
 * every invocation ≈ 0.5 s of CPU at start-up (the whole library), most of it for commands not
 * asked for. The order is the order of the full usage text.
 */
const COMMANDS: ReadonlyArray<readonly [string, () => Promise<Command>]> = [
  ['get', async () => {
    const [request, group] = await Promise.all([import('./request-command.js'), import('./group-request-command.js')]);
    return { usage: `${request.REQUEST_USAGE}\n${group.GROUP_REQUEST_USAGE}`, run: (method, args) => (group.isGroupRequest(args) ? group.groupRequestCommand(method, args) : request.requestCommand(method, args)) };
  }],
  ['observe', async () => { const m = await import('./observe-command.js'); return { usage: m.OBSERVE_USAGE, run: (_, args) => m.observeCommand(args) }; }],
  ['ping', async () => { const m = await import('./ping-command.js'); return { usage: m.PING_USAGE, run: (_, args) => m.pingCommand(args) }; }],
  ['serve', async () => { const m = await import('./serve-command.js'); return { usage: m.SERVE_USAGE, run: (_, args) => (tuneForServing(), m.serveCommand(args)) }; }],
  ['trust-anchor', async () => { const m = await import('./trust-anchor-command.js'); return { usage: m.TRUST_ANCHOR_USAGE, run: (_, args) => m.trustAnchorCommand(args) }; }],
  ['ta-request', async () => { const m = await import('./ta-request-command.js'); return { usage: m.TA_REQUEST_USAGE, run: (_, args) => m.taRequestCommand(args) }; }],
  ['as', async () => { const m = await import('./as-command.js'); return { usage: m.AS_USAGE, run: (_, args) => m.asCommand(args) }; }],
  ['credentials', async () => { const m = await import('./credentials-command.js'); return { usage: m.CREDENTIALS_USAGE, run: (_, args) => m.credentialsCommand(args) }; }],
  ['store', async () => { const m = await import('./store-command.js'); return { usage: m.STORE_USAGE, run: (_, args) => m.storeCommand(args) }; }],
  ['keygen', async () => { const m = await import('./keygen-command.js'); return { usage: m.KEYGEN_USAGE, run: (_, args) => m.keygenCommand(args) }; }],
  ['proxy', async () => { const m = await import('./proxy-command.js'); return { usage: m.PROXY_USAGE, run: (_, args) => (tuneForServing(), m.proxyCommand(args)) }; }],
  ['attack-proxy', async () => { const m = await import('./attack-proxy-command.js'); return { usage: m.ATTACK_PROXY_USAGE, run: (_, args) => m.attackProxyCommand(args) }; }],
  ['demo', async () => { const m = await import('./demo-command.js'); return { usage: m.DEMO_USAGE, run: (_, args) => m.demoCommand(args) }; }],
  ['trace', async () => { const m = await import('./trace-command.js'); return { usage: m.TRACE_USAGE, run: (_, args) => m.traceCommand(args) }; }],
  ['broker', async () => { const m = await import('./broker-command.js'); return { usage: m.BROKER_USAGE, run: (_, args) => m.brokerCommand(args) }; }],
  ['rekey', async () => { const m = await import('./rekey-command.js'); return { usage: m.REKEY_USAGE, run: (_, args) => m.rekeyCommand(args) }; }],
  ['publish', async () => { const m = await import('./publish-command.js'); return { usage: m.PUBLISH_USAGE, run: (_, args) => m.publishCommand(args) }; }],
  ['subscribe', async () => { const m = await import('./subscribe-command.js'); return { usage: m.SUBSCRIBE_USAGE, run: (_, args) => m.subscribeCommand(args) }; }],
  ['group', async () => { const m = await import('./group-command.js'); return { usage: m.GROUP_USAGE, run: (_, args) => m.groupCommand(args) }; }],
  ['pubsub-keys', async () => { const m = await import('./pubsub-keys-command.js'); return { usage: m.PUBSUB_KEYS_USAGE, run: (_, args) => m.pubsubKeysCommand(args) }; }],
  ['kdc', async () => { const m = await import('./kdc-command.js'); return { usage: m.KDC_USAGE, run: (_, args) => m.kdcCommand(args) }; }],
  ['group-manager', async () => { const m = await import('./group-manager-command.js'); return { usage: m.GROUP_MANAGER_USAGE, run: (_, args) => m.groupManagerCommand(args) }; }],
];

/** The command of that name, loaded; the request methods share one. */
async function commandNamed(name: string): Promise<Command | undefined> {
  const key = METHODS.has(name.toLowerCase()) ? 'get' : name;
  const entry = COMMANDS.find(([commandName]) => commandName === key);
  return entry === undefined ? undefined : entry[1]();
}

async function fullUsage(): Promise<string> {
  const usages = await Promise.all(COMMANDS.map(async ([, load]) => (await load()).usage));
  return `coapsec — end-to-end secure CoAP     (coapsec --version; coapsec COMMAND --help)

${usages.join('\n\n')}

exit codes: 0 2.xx response, 2 bad usage, 3 no response (timeout/RST/unreachable), 4 4.xx, 5 5.xx,
            6 security failure (DTLS alert, OSCORE verification, replay, unknown kid), 1 other failure`;
}

/** The version in the package's package.json (this file runs as dist/src/cli/main.js). */
function packageVersion(): string {
  const json = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return String(json.version);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      process.stdout.write((await fullUsage()) + '\n');
      return command === undefined ? ExitCode.Usage : ExitCode.Ok;
    }
    if (command === '--version' || command === '-V' || command === 'version') {
      process.stdout.write(`coapsec ${packageVersion()}\n`);
      return ExitCode.Ok;
    }
    const named = await commandNamed(command);
    if (!named) throw new UsageError(`unknown command "${command}" (try coapsec --help)`);
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(named.usage + '\n');
      return ExitCode.Ok;
    }
    return await named.run(command, rest);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`coapsec: ${error.message}\n`);
      return ExitCode.Usage;
    }
    if (isSecurityFailure(error)) {
      process.stderr.write(`coapsec: security failure: ${(error as Error).message}\n`);
      return ExitCode.Security;
    }
    process.stderr.write(`coapsec: ${(error as Error).message}\n`);
    return ExitCode.Failure;
  }
}

// `coapsec get ... | head` closes our stdout early: that ends the command, it is not a crash.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? ExitCode.Ok);
  process.stderr.write(`coapsec: cannot write output: ${error.message}\n`);
  process.exit(ExitCode.Failure);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  () => {
    process.exitCode = ExitCode.Failure;
  },
);
