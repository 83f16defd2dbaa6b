/**
 * coapsec group-manager --config FILE: the online Group Manager (RFC 9594 with
 * draft-ietf-ace-key-groupcomm-oscore) as an ACE resource server; and coapsec group join: a
 * member joins a group through it with a token from the AS and gets its member file
 * (docs/group-manager.md). Thin shells over src/group-manager/.
 */
import { AceClientError } from '../ace/client.js';
import { CoapClient } from '../client/client.js';
import { writeFileDurably } from '../credentials/durable-file.js';
import { CredentialsError } from '../credentials/errors.js';
import { PidLock } from '../credentials/pid-lock.js';
import { GroupJoinError, GroupMembership } from '../group-manager/member-client.js';
import { GroupManagerConfigError, loadGroupManagerConfig, openGroupManager } from '../group-manager/config.js';
import { AdminInbox, adminInboxOf, GroupManagerAdminError, requestAdmin, type AdminRequest, type AdminResult } from '../group-manager/admin.js';
import { attachGroupManager } from '../group-manager/resources.js';
import { OscoreConfigError } from '../oscore/errors.js';
import { CoapServer } from '../server/server.js';
import { peerKey } from '../transport/transport.js';
import { checkUri, parse, parseBind, parseSeconds } from './args.js';
import { UsageError } from './errors.js';
import { EXIT_SECURITY_FAILURE, clientOscore } from './oscore-args.js';
import { LOG_FLAGS, LOG_USAGE, serverLog } from './server-log.js';

export const GROUP_MANAGER_USAGE = `usage: coapsec group-manager --config FILE [--bind HOST:PORT] [-v|-vv]
       coapsec group-manager remove --config FILE --group NAME --member NODE [--timeout S]
       coapsec group-manager status --config FILE --group NAME (--active | --inactive) [--timeout S]
  the online Group Manager of Group OSCORE groups (RFC 9594, draft-ietf-ace-key-groupcomm-oscore):
  an ACE resource server (tokens with the groups' AIF scope posted to /authz-info, OSCORE profile)
  serving /ace-group/GROUPNAME: join (POST), keying material (GET, observable: rekeys notify),
  /creds (GET, FETCH), /num, /policies, /active (observable), /kdc-cred, /verif-data, /stale-sids,
  /nodes/NODENAME (GET; PUT or POST for a new Sender ID; DELETE to leave: the group is rekeyed),
  /nodes/NODENAME/cred (POST a new credential), and FETCH /ace-group (group names by Gid)
  --config FILE       audience, AS, token key, state file, offline group states to import
  --bind HOST:PORT    address to listen on (default 127.0.0.1:5689)
${LOG_USAGE}
                          (-v also logs every join, leave and rekey)
  remove: the administrator removes member NODE (its node name, e.g. m2) from group NAME (RFC 9594
  §5) and the group is rekeyed; asks the Group Manager running on the config's state file through
  its admin inbox (STATE.admin, only its own user can write there), or changes the state file
  when none runs. --timeout: seconds to wait for the running Group Manager (default 5)
  status: makes group NAME active or inactive (key-groupcomm-oscore §8.2, §9.9): while inactive,
  joins, Sender ID renewals and credential uploads get 5.03, and members observing /active learn
  of the change; asked the same way as remove`;

export const GROUP_JOIN_USAGE = `usage: coapsec group join GROUP --gm URI --ace-as URI --credentials FILE -o FILE
                         [--roles requester,responder] [--audience NAME] [--name NAME] [-v]
  join GROUP through an online Group Manager: a token from the AS (OSCORE to it from
  --credentials), the Join Request with a new key pair and its proof of possession, and the
  member file written to -o (for serve --group, get --group, or "groups" in --credentials)`;

export async function groupManagerCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'remove') return groupManagerRemoveCommand(argv.slice(1));
  if (argv[0] === 'status') return groupManagerStatusCommand(argv.slice(1));
  const { values } = parse(argv, { config: { type: 'string' }, bind: { type: 'string' }, ...LOG_FLAGS }, { min: 0, max: 0, names: '' });
  if (values.config === undefined) throw new UsageError('group-manager needs --config FILE');
  const bind = parseBind(values.bind ?? '127.0.0.1:5689', { host: '127.0.0.1', port: 5689 });
  const log = serverLog(values);
  let config;
  let manager;
  let lock: PidLock | undefined;
  try {
    config = loadGroupManagerConfig(values.config);
    // One process per state file: two would assign the same Sender IDs.
    lock = PidLock.acquire(`${config.statePath}.lock`);
    manager = openGroupManager(config, log.level > 0 ? { log: (line) => log.event('gm', `group-manager: ${line}`) } : {});
  } catch (error) {
    lock?.release();
    if (error instanceof GroupManagerConfigError || error instanceof OscoreConfigError || error instanceof CredentialsError) throw new UsageError(error.message);
    throw error;
  }
  let server: CoapServer;
  try {
    server = await CoapServer.listen(bind);
  } catch (error) {
    lock.release();
    throw error;
  }
  log.attach(server);
  attachGroupManager(server, manager, {
    audiences: [config.audience],
    tokenKeys: [config.tokenKey],
    ...(config.asUri !== undefined ? { asUri: config.asUri } : {}),
    ...(config.issuer !== undefined ? { issuer: config.issuer } : {}),
    ...(log.level > 0 ? { log: (line: string) => log.event('ace', `ace: ${line}`) } : {}),
  });
  let inbox: AdminInbox;
  try {
    inbox = AdminInbox.open(config.statePath, manager);
  } catch (error) {
    await server.close();
    lock.release();
    throw new UsageError(`cannot open the admin inbox ${adminInboxOf(config.statePath)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  process.stderr.write(`coapsec group manager of ${manager.groupNames.join(', ')} serving on coap://${peerKey(server.address())}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  inbox.close();
  await server.close();
  lock.release();
  return 0;
}

/** coapsec group-manager remove: an administrator's removal (RFC 9594 §5), see admin.ts. */
async function groupManagerRemoveCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string' }, group: { type: 'string' }, member: { type: 'string' }, timeout: { type: 'string' } }, { min: 0, max: 0, names: '' });
  if (values.config === undefined || values.group === undefined || values.member === undefined) throw new UsageError('group-manager remove needs --config FILE, --group NAME and --member NODE');
  const result = await askAdmin(values.config, { op: 'remove', group: values.group, node: values.member }, values.timeout);
  const where = result.running ? 'the running Group Manager rekeyed it' : 'no Group Manager runs: its state file was changed';
  process.stdout.write(`removed ${result.node} from ${result.group}: key generation ${result.keyGeneration}, Gid ${result.gid} (${where})\n`);
  return 0;
}

/** coapsec group-manager status: a group made active or inactive (key-groupcomm-oscore §8.2), see admin.ts. */
async function groupManagerStatusCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string' }, group: { type: 'string' }, active: { type: 'boolean' }, inactive: { type: 'boolean' }, timeout: { type: 'string' } }, { min: 0, max: 0, names: '' });
  if (values.config === undefined || values.group === undefined || values.active === values.inactive) throw new UsageError('group-manager status needs --config FILE, --group NAME and one of --active, --inactive');
  const result = await askAdmin(values.config, { op: 'status', group: values.group, active: values.active === true }, values.timeout);
  const where = result.running ? 'the running Group Manager notified its observers' : 'no Group Manager runs: its state file was changed';
  process.stdout.write(`${result.group} is ${result.active ? 'active' : 'inactive'} (${where})\n`);
  return 0;
}

async function askAdmin(configPath: string, request: AdminRequest, timeout: string | undefined): Promise<Extract<AdminResult, { ok: true }> & { running: boolean }> {
  const timeoutMs = timeout === undefined ? undefined : parseSeconds(timeout, '--timeout')! * 1000;
  let result;
  try {
    const config = loadGroupManagerConfig(configPath);
    result = await requestAdmin(config, request, timeoutMs !== undefined ? { timeoutMs } : {});
  } catch (error) {
    if (error instanceof GroupManagerConfigError || error instanceof GroupManagerAdminError || error instanceof OscoreConfigError || error instanceof CredentialsError) throw new UsageError(error.message);
    throw error;
  }
  // No such group or node: a wrong argument, said in one line.
  if (!result.ok) throw new UsageError(result.error);
  return result;
}

export async function groupJoinCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      gm: { type: 'string' },
      'ace-as': { type: 'string' },
      credentials: { type: 'string' },
      output: { type: 'string', short: 'o' },
      roles: { type: 'string' },
      audience: { type: 'string' },
      name: { type: 'string' },
      verbose: { type: 'boolean', short: 'v', multiple: true },
    },
    { min: 1, max: 1, names: 'the GROUP name' },
  );
  const group = positionals[0]!;
  if (values.gm === undefined || values['ace-as'] === undefined) throw new UsageError('group join needs --gm URI and --ace-as URI');
  if (values.credentials === undefined) throw new UsageError('group join needs --credentials FILE (the OSCORE context with the AS)');
  if (values.output === undefined) throw new UsageError('group join needs -o FILE for the member file');
  const gm = new URL(checkUri(values.gm));
  checkUri(values['ace-as']);
  const oscore = clientOscore({ credentials: values.credentials });
  const client = new CoapClient(oscore.options);
  oscore.attach(client);
  try {
    const membership = await GroupMembership.join({
      client,
      gmOrigin: `${gm.protocol}//${gm.host}`,
      asUri: values['ace-as'],
      group,
      ...(values.roles !== undefined ? { roles: values.roles.split(',').map((r) => r.trim()) } : {}),
      ...(values.audience !== undefined ? { audience: values.audience } : {}),
      ...(values.name !== undefined ? { name: values.name } : {}),
      ...(values.verbose ? { log: (line: string) => void process.stderr.write(`group join: ${line}\n`) } : {}),
    });
    const file = membership.file;
    writeFileDurably(values.output, `${JSON.stringify(file, null, 2)}\n`);
    process.stdout.write(`joined ${group} as ${membership.node}: Sender ID ${file.senderId || '(empty)'}, key generation ${file.keyGeneration}; member file written to ${values.output}\n`);
    return 0;
  } catch (error) {
    if (error instanceof GroupJoinError || error instanceof AceClientError) {
      process.stderr.write(`coapsec: ${(error as Error).message}\n`);
      return EXIT_SECURITY_FAILURE;
    }
    throw error;
  } finally {
    await client.close();
    oscore.close();
  }
}
