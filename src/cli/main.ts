/** The coapsec command line: a thin shell over the library. */
import { ATTACK_PROXY_USAGE, attackProxyCommand } from './attack-proxy-command.js';
import { demoCommand } from './demo-command.js';
import { ExitCode, UsageError } from './errors.js';
import { OBSERVE_USAGE, observeCommand } from './observe-command.js';
import { PROXY_USAGE, proxyCommand } from './proxy-command.js';
import { REQUEST_USAGE, requestCommand } from './request-command.js';
import { SERVE_USAGE, serveCommand } from './serve-command.js';
import { TA_REQUEST_USAGE, taRequestCommand } from './ta-request-command.js';
import { TRUST_ANCHOR_USAGE, trustAnchorCommand } from './trust-anchor-command.js';

const METHODS = new Set(['get', 'post', 'put', 'delete', 'fetch', 'patch', 'ipatch']);

const DEMO_USAGE = 'usage: coapsec demo      run a server and a client on loopback and show their exchanges';

/** Each command's own usage, for `coapsec COMMAND --help`. */
function commandUsage(command: string): string | undefined {
  if (METHODS.has(command.toLowerCase())) return REQUEST_USAGE;
  const usages: Record<string, string> = {
    observe: OBSERVE_USAGE,
    serve: SERVE_USAGE,
    proxy: PROXY_USAGE,
    'attack-proxy': ATTACK_PROXY_USAGE,
    demo: DEMO_USAGE,
    'trust-anchor': TRUST_ANCHOR_USAGE,
    'ta-request': TA_REQUEST_USAGE,
  };
  return Object.hasOwn(usages, command) ? usages[command] : undefined;
}

const USAGE = `coapsec — end-to-end secure CoAP

${REQUEST_USAGE}

${OBSERVE_USAGE}

${SERVE_USAGE}

${TRUST_ANCHOR_USAGE}

${TA_REQUEST_USAGE}

${PROXY_USAGE}

${ATTACK_PROXY_USAGE}

${DEMO_USAGE}

exit codes: 0 2.xx response, 2 bad usage, 3 no response (timeout/RST), 4 4.xx, 5 5.xx, 1 other failure`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      process.stdout.write(USAGE + '\n');
      return command === undefined ? ExitCode.Usage : ExitCode.Ok;
    }
    const usage = commandUsage(command);
    if (usage !== undefined && (rest.includes('--help') || rest.includes('-h'))) {
      process.stdout.write(usage + '\n');
      return ExitCode.Ok;
    }
    if (METHODS.has(command.toLowerCase())) return await requestCommand(command, rest);
    if (command === 'observe') return await observeCommand(rest);
    if (command === 'serve') return await serveCommand(rest);
    if (command === 'proxy') return await proxyCommand(rest);
    if (command === 'attack-proxy') return await attackProxyCommand(rest);
    if (command === 'demo') return await demoCommand(rest);
    if (command === 'trust-anchor') return await trustAnchorCommand(rest);
    if (command === 'ta-request') return await taRequestCommand(rest);
    throw new UsageError(`unknown command "${command}" (try coapsec --help)`);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`coapsec: ${error.message}\n`);
      return ExitCode.Usage;
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
