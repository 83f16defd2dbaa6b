/** `coapsec attack-proxy`: TEST TOOL — an adversarial intermediary (issue 7). Never deploy it. */
import { ATTACKS, createAttack, type Direction } from '../attack/attacks.js';
import { AttackRelay } from '../attack/relay.js';
import { UsageError } from './errors.js';

export const ATTACK_PROXY_USAGE = `usage: coapsec attack-proxy --attack NAME --upstream HOST:PORT [--listen HOST:PORT] [--direction request|response] [--amount N] [--skip N]
       TEST TOOL: a malicious intermediary for security testing; forwards CoAP datagrams to the
       upstream and attacks them. Attacks: ${Object.keys(ATTACKS).join(', ')}`;

function hostPort(text: string | undefined, flag: string): { address: string; port: number } {
  const m = text?.match(/^\[?([^\]]+?)\]?:(\d+)$/);
  if (!m) throw new UsageError(`${flag} needs HOST:PORT`);
  return { address: m[1]!, port: Number(m[2]) };
}

export async function attackProxyCommand(args: string[]): Promise<number> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) {
    if (!args[i]!.startsWith('--') || args[i + 1] === undefined) throw new UsageError(`attack-proxy: unexpected "${args[i]}"\n${ATTACK_PROXY_USAGE}`);
    flags.set(args[i]!.slice(2), args[i + 1]!);
  }
  const name = flags.get('attack');
  if (!name || !ATTACKS[name]) throw new UsageError(`attack-proxy: --attack must be one of ${Object.keys(ATTACKS).join(', ')}`);
  const direction = flags.get('direction');
  if (direction !== undefined && direction !== 'request' && direction !== 'response') throw new UsageError('attack-proxy: --direction is request or response');
  const attack = createAttack(name, {
    ...(direction ? { direction: direction as Direction } : {}),
    ...(flags.has('amount') ? { amount: Number(flags.get('amount')) } : {}),
    ...(flags.has('skip') ? { skip: Number(flags.get('skip')) } : {}),
  });
  const relay = await AttackRelay.start({
    listen: hostPort(flags.get('listen') ?? '127.0.0.1:5684', '--listen'),
    upstream: hostPort(flags.get('upstream'), '--upstream'),
    attack,
    log: (line) => process.stderr.write(line + '\n'),
  });
  process.stderr.write(`attack-proxy (TEST TOOL): ${name} on ${relay.address.address}:${relay.address.port}\n`);
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  relay.close();
  return 0;
}
