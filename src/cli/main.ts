/** The coapsec command line: a thin shell over the library. */
import { readFileSync } from 'node:fs';
import { AS_USAGE, asCommand } from './as-command.js';
import { GROUP_MANAGER_USAGE, groupManagerCommand } from './group-manager-command.js';
import { KDC_USAGE, kdcCommand } from './kdc-command.js';
import { ATTACK_PROXY_USAGE, attackProxyCommand } from './attack-proxy-command.js';
import { BROKER_USAGE, brokerCommand } from './broker-command.js';
import { PUBLISH_USAGE, publishCommand } from './publish-command.js';
import { PUBSUB_KEYS_USAGE, pubsubKeysCommand } from './pubsub-keys-command.js';
import { SUBSCRIBE_USAGE, subscribeCommand } from './subscribe-command.js';
import { CREDENTIALS_USAGE, credentialsCommand } from './credentials-command.js';
import { DEMO_USAGE, demoCommand } from './demo-command.js';
import { KEYGEN_USAGE, keygenCommand } from './keygen-command.js';
import { ExitCode, UsageError, isSecurityFailure } from './errors.js';
import { OBSERVE_USAGE, observeCommand } from './observe-command.js';
import { PING_USAGE, pingCommand } from './ping-command.js';
import { PROXY_USAGE, proxyCommand } from './proxy-command.js';
import { REQUEST_USAGE, requestCommand } from './request-command.js';
import { REKEY_USAGE, rekeyCommand } from './rekey-command.js';
import { SERVE_USAGE, serveCommand } from './serve-command.js';
import { tuneForServing } from './long-running.js';
import { STORE_USAGE, storeCommand } from './store-command.js';
import { TA_REQUEST_USAGE, taRequestCommand } from './ta-request-command.js';
import { TRUST_ANCHOR_USAGE, trustAnchorCommand } from './trust-anchor-command.js';
import { TRACE_USAGE, traceCommand } from './trace-command.js';
import { GROUP_USAGE, groupCommand } from './group-command.js';
import { GROUP_REQUEST_USAGE, groupRequestCommand, isGroupRequest } from './group-request-command.js';

const METHODS = new Set(['get', 'post', 'put', 'delete', 'fetch', 'patch', 'ipatch']);


interface Command {
  /** Printed for `coapsec COMMAND --help`. */
  usage: string;
  run(command: string, args: string[]): Promise<number>;
}

/** The commands by name; the request methods share one. */
function commandNamed(name: string): Command | undefined {
  if (METHODS.has(name.toLowerCase())) return { usage: `${REQUEST_USAGE}\n${GROUP_REQUEST_USAGE}`, run: (method, args) => (isGroupRequest(args) ? groupRequestCommand(method, args) : requestCommand(method, args)) };
  const commands: Record<string, Command> = {
    observe: { usage: OBSERVE_USAGE, run: (_, args) => observeCommand(args) },
    ping: { usage: PING_USAGE, run: (_, args) => pingCommand(args) },
    serve: { usage: SERVE_USAGE, run: (_, args) => (tuneForServing(), serveCommand(args)) },
    proxy: { usage: PROXY_USAGE, run: (_, args) => (tuneForServing(), proxyCommand(args)) },
    'attack-proxy': { usage: ATTACK_PROXY_USAGE, run: (_, args) => attackProxyCommand(args) },
    demo: { usage: DEMO_USAGE, run: (_, args) => demoCommand(args) },
    'trust-anchor': { usage: TRUST_ANCHOR_USAGE, run: (_, args) => trustAnchorCommand(args) },
    'ta-request': { usage: TA_REQUEST_USAGE, run: (_, args) => taRequestCommand(args) },
    as: { usage: AS_USAGE, run: (_, args) => asCommand(args) },
    credentials: { usage: CREDENTIALS_USAGE, run: (_, args) => credentialsCommand(args) },
    store: { usage: STORE_USAGE, run: (_, args) => storeCommand(args) },
    keygen: { usage: KEYGEN_USAGE, run: (_, args) => keygenCommand(args) },
    trace: { usage: TRACE_USAGE, run: (_, args) => traceCommand(args) },
    broker: { usage: BROKER_USAGE, run: (_, args) => brokerCommand(args) },
    publish: { usage: PUBLISH_USAGE, run: (_, args) => publishCommand(args) },
    subscribe: { usage: SUBSCRIBE_USAGE, run: (_, args) => subscribeCommand(args) },
    group: { usage: GROUP_USAGE, run: (_, args) => groupCommand(args) },
    'group-manager': { usage: GROUP_MANAGER_USAGE, run: (_, args) => groupManagerCommand(args) },
    kdc: { usage: KDC_USAGE, run: (_, args) => kdcCommand(args) },
    rekey: { usage: REKEY_USAGE, run: (_, args) => rekeyCommand(args) },
    'pubsub-keys': { usage: PUBSUB_KEYS_USAGE, run: (_, args) => pubsubKeysCommand(args) },
  };
  return Object.hasOwn(commands, name) ? commands[name] : undefined;
}

const USAGE = `coapsec — end-to-end secure CoAP     (coapsec --version; coapsec COMMAND --help)

${REQUEST_USAGE}
${GROUP_REQUEST_USAGE}

${OBSERVE_USAGE}

${PING_USAGE}

${SERVE_USAGE}

${TRUST_ANCHOR_USAGE}

${TA_REQUEST_USAGE}

${AS_USAGE}

${CREDENTIALS_USAGE}

${STORE_USAGE}

${KEYGEN_USAGE}

${PROXY_USAGE}

${ATTACK_PROXY_USAGE}

${DEMO_USAGE}

${TRACE_USAGE}

${BROKER_USAGE}

${REKEY_USAGE}

${PUBLISH_USAGE}

${SUBSCRIBE_USAGE}

${GROUP_USAGE}

${PUBSUB_KEYS_USAGE}

${KDC_USAGE}

exit codes: 0 2.xx response, 2 bad usage, 3 no response (timeout/RST/unreachable), 4 4.xx, 5 5.xx,
            6 security failure (DTLS alert, OSCORE verification, replay, unknown kid), 1 other failure`;

/** The version in the package's package.json (this file runs as dist/src/cli/main.js). */
function packageVersion(): string {
  const json = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return String(json.version);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      process.stdout.write(USAGE + '\n');
      return command === undefined ? ExitCode.Usage : ExitCode.Ok;
    }
    if (command === '--version' || command === '-V' || command === 'version') {
      process.stdout.write(`coapsec ${packageVersion()}\n`);
      return ExitCode.Ok;
    }
    const named = commandNamed(command);
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
