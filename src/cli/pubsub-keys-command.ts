/**
 * coapsec pubsub-keys: the offline key distribution role for protected publications (one topic
 * per state file). A thin shell over src/pubsub-protection/key-distribution.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { CoseAead } from '../cose/algorithms.js';
import { CoseSignAlg } from '../cose/sign.js';
import { writeFileDurably } from '../credentials/durable-file.js';
import {
  addMember,
  createTopicGroup,
  issueKeyMaterial,
  parseKdcState,
  PubSubKeyError,
  rekey,
  removeMember,
  serializeKeyMaterial,
  type KdcState,
} from '../pubsub-protection/index.js';
import { parse, parseCount } from './args.js';
import { ExitCode, UsageError } from './errors.js';

export const PUBSUB_KEYS_USAGE = `usage: coapsec pubsub-keys SUBCOMMAND STATE ...   (offline key distribution for protected publications)
  create STATE --topic NAME [--aead A128GCM|AES-CCM-16-64-128|...] [--sign-alg EdDSA|ES256] [--lifetime SECONDS] [--epoch SECONDS]
                          a new security group for one topic (STATE is written owner-only; keep it secret);
                          --lifetime: each generation expires; --epoch: every SECONDS publishers and
                          subscribers step to a new key derived one way from the last (forward secrecy
                          on a schedule, nothing to redistribute)
  add-publisher STATE NAME   a publisher: a Sender ID and a signing key pair
  add-subscriber STATE NAME  a subscriber
  remove STATE NAME       remove a member and rekey (what follows is unreadable with its old keys)
  rekey STATE             a new group key generation (run on a schedule); the old one is retired
  issue STATE NAME FILE   write NAME's key file (group key, publisher credentials, its own signing key)
  then: coapsec publish --protect FILE ... and coapsec subscribe --protect FILE ...`;

const AEADS: Readonly<Record<string, number>> = {
  A128GCM: CoseAead.A128GCM,
  A256GCM: CoseAead.A256GCM,
  'AES-CCM-16-64-128': CoseAead.AES_CCM_16_64_128,
  'AES-CCM-16-128-128': CoseAead.AES_CCM_16_128_128,
  'CHACHA20-POLY1305': CoseAead.CHACHA20_POLY1305,
};
const SIGN_ALGS: Readonly<Record<string, number>> = { EdDSA: CoseSignAlg.EdDSA, ES256: CoseSignAlg.ES256 };

function named(table: Readonly<Record<string, number>>, text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Object.hasOwn(table, text) ? table[text] : undefined;
  if (value === undefined) throw new UsageError(`${flag}: one of ${Object.keys(table).join(', ')}`);
  return value;
}

function loadState(path: string): KdcState {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return parseKdcState(text);
}

const saveState = (path: string, state: KdcState): void => writeFileDurably(path, JSON.stringify(state, null, 2) + '\n');

export async function pubsubKeysCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    switch (sub) {
      case 'create': {
        const { values, positionals } = parse(rest, { topic: { type: 'string' }, aead: { type: 'string' }, 'sign-alg': { type: 'string' }, lifetime: { type: 'string' }, epoch: { type: 'string' } }, { min: 1, max: 1, names: 'STATE' });
        if (values.topic === undefined) throw new UsageError('create needs --topic NAME');
        const path = positionals[0]!;
        if (existsSync(path)) throw new UsageError(`${path} exists: a new group gets a new state file`);
        const lifetime = parseCount(values.lifetime, '--lifetime');
        const epoch = parseCount(values.epoch, '--epoch');
        const aead = named(AEADS, values.aead, '--aead');
        const signAlg = named(SIGN_ALGS, values['sign-alg'], '--sign-alg');
        saveState(path, createTopicGroup(values.topic, { ...(aead !== undefined ? { aead } : {}), ...(signAlg !== undefined ? { signAlg } : {}), ...(lifetime !== undefined ? { lifetimeSeconds: lifetime } : {}), ...(epoch !== undefined ? { epochSeconds: epoch } : {}) }));
        process.stdout.write(`created the security group of topic "${values.topic}" in ${path}\n`);
        return ExitCode.Ok;
      }
      case 'add-publisher':
      case 'add-subscriber': {
        const { positionals } = parse(rest, {}, { min: 2, max: 2, names: 'STATE NAME' });
        const state = loadState(positionals[0]!);
        addMember(state, positionals[1]!, sub === 'add-publisher' ? 'publisher' : 'subscriber');
        saveState(positionals[0]!, state);
        const senderId = state.members[positionals[1]!]!.sender_id;
        process.stdout.write(`added ${positionals[1]} to "${state.topic}"${sub === 'add-publisher' ? ` as publisher, Sender ID ${senderId}` : ' as subscriber'}; issue its key file (and re-issue the subscribers')\n`);
        return ExitCode.Ok;
      }
      case 'remove':
      case 'rekey': {
        const { positionals } = parse(rest, {}, sub === 'remove' ? { min: 2, max: 2, names: 'STATE NAME' } : { min: 1, max: 1, names: 'STATE' });
        const state = loadState(positionals[0]!);
        if (sub === 'remove') removeMember(state, positionals[1]!);
        else rekey(state);
        saveState(positionals[0]!, state);
        process.stdout.write(`group key generation ${state.num} of "${state.topic}"; re-issue every member's key file\n`);
        return ExitCode.Ok;
      }
      case 'issue': {
        const { positionals } = parse(rest, {}, { min: 3, max: 3, names: 'STATE NAME FILE' });
        const state = loadState(positionals[0]!);
        writeFileDurably(positionals[2]!, serializeKeyMaterial(issueKeyMaterial(state, positionals[1]!)));
        process.stdout.write(`wrote ${positionals[1]}'s key file for "${state.topic}" (generation ${state.num}) to ${positionals[2]}\n`);
        return ExitCode.Ok;
      }
      default:
        throw new UsageError(sub === undefined ? 'missing SUBCOMMAND (create, add-publisher, add-subscriber, remove, rekey, issue)' : `unknown subcommand "${sub}"`);
    }
  } catch (error) {
    if (!(error instanceof PubSubKeyError)) throw error;
    process.stderr.write(`coapsec: ${error.message}\n`);
    return ExitCode.Failure;
  }
}
