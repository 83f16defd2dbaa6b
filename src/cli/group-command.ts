/**
 * coapsec group create|add|remove|rekey|issue|deterministic|show: the offline Group Manager
 * (draft-ietf-core-oscore-groupcomm §12 lets "some tool performing the tasks of the Group Manager"
 * configure the members), over src/group-oscore/manager.ts. The state file holds every secret of
 * the group and is written readable by its owner only.
 */
import { readFileSync } from 'node:fs';
import { CoseSignAlg } from '../cose/sign.js';
import { writeFileDurably } from '../credentials/durable-file.js';
import { DEFAULT_GROUP_ALGORITHMS, GroupManager, type GroupManagerState } from '../group-oscore/manager.js';
import { OscoreConfigError } from '../oscore/errors.js';
import { parse } from './args.js';
import { UsageError } from './errors.js';
import { parseGroupAddress } from './group-request-command.js';
import { GROUP_JOIN_USAGE, groupJoinCommand } from './group-manager-command.js';

export const GROUP_USAGE = `usage: coapsec group create STATE --name NAME [--address ADDR:PORT] [--signature eddsa|es256]
       coapsec group add STATE MEMBER        add a member: fresh Sender ID, key pair and CCS
       coapsec group remove STATE MEMBER     remove a member and rekey the group (new Gid and keys)
       coapsec group rekey STATE             new Gid, Master Secret and Salt, Key Generation Number + 1
       coapsec group issue STATE MEMBER [-o FILE]  the member's file (its context, the Group
                                             Manager's credential, the other members): for
                                             serve --group, get --group, or "groups" in --credentials
       coapsec group deterministic STATE     name the group's Deterministic Client (cacheable
                                             OSCORE): its own Sender ID, in every member file
                                             issued after; for get --deterministic
       coapsec group show STATE              name, address, Gid, key generation, members
  STATE is the Group Manager's JSON state (secrets: keep it like a key file); the offline Group
  Manager of Group OSCORE §12. After remove or rekey, issue the members' files again.
  --address ADDR:PORT   the group's IP multicast address (e.g. 224.0.1.187:5683, [ff05::fd]:5683)
${GROUP_JOIN_USAGE.replace('usage: ', '       ')}`;

export async function groupCommand(argv: string[]): Promise<number> {
  // join talks to an online Group Manager instead of editing a STATE file (group-manager-command.ts).
  if (argv[0] === 'join') return groupJoinCommand(argv.slice(1));
  const { values, positionals } = parse(
    argv,
    {
      name: { type: 'string' },
      address: { type: 'string' },
      signature: { type: 'string' },
      output: { type: 'string', short: 'o' },
    },
    { min: 2, max: 3, names: 'a subcommand and the STATE file' },
  );
  const [sub, statePath, member] = positionals as [string, string, string | undefined];
  const needMember = (): string => {
    if (member === undefined) throw new UsageError(`group ${sub} needs a MEMBER name`);
    return member;
  };
  if (sub !== 'create' && values.name !== undefined) throw new UsageError('--name is for group create');
  try {
    return run(sub, statePath, member, values, needMember);
  } catch (error) {
    // The Group Manager's refusals (a duplicate or unknown member, Sender IDs used up) are the user's to fix.
    if (error instanceof OscoreConfigError) throw new UsageError(error.message);
    throw error;
  }
}

function run(sub: string, statePath: string, member: string | undefined, values: { name?: string | undefined; address?: string | undefined; signature?: string | undefined; output?: string | undefined }, needMember: () => string): number {
  switch (sub) {
    case 'create': {
      if (member !== undefined) throw new UsageError(`unexpected argument "${member}"`);
      if (values.name === undefined || values.name === '') throw new UsageError('group create needs --name NAME');
      const address = values.address !== undefined ? values.address : undefined;
      if (address !== undefined) parseGroupAddress(address, '--address');
      const gm = GroupManager.create({ name: values.name, algorithms: { ...DEFAULT_GROUP_ALGORITHMS, signature: signatureAlgorithm(values.signature) }, ...(address !== undefined ? { address } : {}) });
      save(statePath, gm);
      process.stdout.write(`group ${gm.name} created: Gid ${gm.gid}, key generation ${gm.keyGeneration}\n`);
      return 0;
    }
    case 'add': {
      const gm = load(statePath);
      const file = gm.addMember(needMember());
      save(statePath, gm);
      process.stdout.write(`${file.group}: ${needMember()} added with Sender ID ${file.senderId || '(empty)'}\n`);
      return 0;
    }
    case 'remove': {
      const gm = load(statePath);
      const rekey = gm.removeMember(needMember());
      save(statePath, gm);
      process.stdout.write(`${rekey.group}: ${needMember()} removed; rekeyed to Gid ${rekey.gid}, key generation ${rekey.keyGeneration}; issue the members' files again\n`);
      return 0;
    }
    case 'rekey': {
      const gm = load(statePath);
      const rekey = gm.rekey();
      save(statePath, gm);
      process.stdout.write(`${rekey.group}: rekeyed to Gid ${rekey.gid}, key generation ${rekey.keyGeneration}; issue the members' files again\n`);
      return 0;
    }
    case 'issue': {
      const gm = load(statePath);
      const text = `${JSON.stringify(gm.memberFile(needMember()), null, 2)}\n`;
      if (values.output !== undefined) {
        writeFileDurably(values.output, text);
        process.stderr.write(`${gm.name}: member file of ${needMember()} written to ${values.output}\n`);
      } else {
        process.stdout.write(text);
      }
      return 0;
    }
    case 'deterministic': {
      if (member !== undefined) throw new UsageError(`unexpected argument "${member}"`);
      const gm = load(statePath);
      const client = gm.addDeterministicClient();
      save(statePath, gm);
      process.stdout.write(`${gm.name}: Deterministic Client with Sender ID ${client.senderId || '(empty)'}, hash SHA-256; issue the members' files again\n`);
      return 0;
    }
    case 'show': {
      const state = load(statePath).toJSON();
      process.stdout.write(`group ${state.name}${state.address !== undefined ? ` at ${state.address}` : ''}: Gid ${state.gid}, key generation ${state.keyGeneration}\n`);
      if (state.deterministicClient !== undefined) process.stdout.write(`  (Deterministic Client): Sender ID ${state.deterministicClient.senderId || '(empty)'}\n`);
      for (const m of state.members) process.stdout.write(`  ${m.name}: Sender ID ${m.senderId || '(empty)'}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown group subcommand "${sub}" (create, add, remove, rekey, issue, deterministic, show)`);
  }
}

function signatureAlgorithm(text: string | undefined): number {
  if (text === undefined || text.toLowerCase() === 'eddsa') return CoseSignAlg.EdDSA;
  if (text.toLowerCase() === 'es256') return CoseSignAlg.ES256;
  throw new UsageError(`--signature must be eddsa or es256, got "${text}"`);
}

function load(path: string): GroupManager {
  let state: GroupManagerState;
  try {
    state = JSON.parse(readFileSync(path, 'utf8')) as GroupManagerState;
  } catch (error) {
    throw new UsageError(`cannot read the group state ${path}: ${(error as Error).message}`);
  }
  if (typeof state !== 'object' || state === null || !Array.isArray(state.members)) throw new UsageError(`${path} is not a Group Manager state file`);
  return GroupManager.fromJSON(state);
}

function save(path: string, gm: GroupManager): void {
  writeFileDurably(path, `${JSON.stringify(gm.toJSON(), null, 2)}\n`);
}
