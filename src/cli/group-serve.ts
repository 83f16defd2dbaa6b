/**
 * serve --group FILE / --group-address ADDR: the plain coap:// listener joins an IP multicast
 * group (draft-ietf-core-groupcomm-bis) on the --bind address's interface, answers group requests
 * from that unicast address after a random Leisure, and — with a member file — speaks Group OSCORE.
 */
import { isIP } from 'node:net';
import { defaultStateDirectory } from '../credentials/state-directory.js';
import { CoapEndpoint } from '../exchange/endpoint.js';
import { GroupContextStore } from '../group-oscore/context.js';
import { openGroupMember, readMemberFile, type OpenedGroupMember } from '../group/member.js';
import { CoapServer, type ServerOptions } from '../server/server.js';
import { ALL_COAP_NODES_IPV4, ALL_COAP_NODES_IPV6, MulticastServerTransport } from '../transport/multicast.js';
import { parseSeconds } from './args.js';
import { UsageError } from './errors.js';
import { parseGroupAddress } from './group-request-command.js';

export const GROUP_SERVE_FLAGS = {
  group: { type: 'string' },
  'group-address': { type: 'string' },
  'group-interface': { type: 'string' },
  leisure: { type: 'string' },
  deterministic: { type: 'string', multiple: true },
} as const;

export const GROUP_SERVE_USAGE = `  CoAP groups (groupcomm-bis; --bind must then be this host's unicast address on the group's network):
  --group FILE           join the group of this member file (coapsec group issue) with Group OSCORE
  --group-address ADDR[:PORT]  the group to join (default: the member file's address, else
                         224.0.1.187 or ff05::fd — All CoAP Nodes — at the --bind port)
  --group-interface NAME IPv6: the interface to join on (e.g. eth0)
  --leisure SECONDS      longest random wait before answering a group request (default 5; with
                         Group OSCORE 20, or 13 for a pairwise-only group: groupcomm-bis §3.6.1)
  --deterministic PATH   serve the group's Deterministic Requests (cacheable OSCORE) on the resource
                         PATH, e.g. /hello: only for a resource whose GET has no side effects and that
                         every group member may read; repeatable; needs --group (others answer 4.01)`;

export interface GroupServeValues {
  group?: string | undefined;
  'group-address'?: string | undefined;
  'group-interface'?: string | undefined;
  leisure?: string | undefined;
  deterministic?: string[] | undefined;
}

export const wantsGroup = (values: GroupServeValues): boolean => values.group !== undefined || values['group-address'] !== undefined;

/** A server on `bind` (a unicast address) that joined the group; `onClose` releases the member's sequence counter. */
export async function listenGroup(values: GroupServeValues, bind: { host: string; port: number }, options: ServerOptions): Promise<CoapServer> {
  if (isIP(bind.host) === 0 || bind.host === '0.0.0.0' || bind.host === '::') {
    throw new UsageError('--group needs --bind with this host\'s own unicast address (replies come from it, RFC 7252 §8.1)');
  }
  const file = values.group !== undefined ? readMemberFile(values.group) : undefined;
  const v6 = isIP(bind.host) === 6;
  const addressText = values['group-address'] ?? file?.address;
  const group =
    addressText === undefined
      ? { address: v6 ? ALL_COAP_NODES_IPV6 : ALL_COAP_NODES_IPV4, port: bind.port }
      : isIP(addressText) !== 0
        ? parseGroupAddress(isIP(addressText) === 6 ? `[${addressText}]` : addressText, '--group-address', bind.port)
        : parseGroupAddress(addressText, '--group-address', bind.port);
  if ((isIP(group.address) === 6) !== v6) throw new UsageError(`the group ${group.address} and --bind ${bind.host} are not of one IP version`);
  if (group.port !== bind.port) throw new UsageError(`the group's port ${group.port} differs from the --bind port ${bind.port}: serve on --bind ${v6 ? `[${bind.host}]` : bind.host}:${group.port}`);
  const leisureSeconds = values.leisure === '0' ? 0 : parseSeconds(values.leisure, '--leisure');
  let member: OpenedGroupMember | undefined;
  if (file !== undefined) member = openGroupMember(file, defaultStateDirectory());
  const contexts = member !== undefined ? new GroupContextStore() : undefined;
  if (member !== undefined) contexts!.install(member.file.group, member.context);
  let transport: MulticastServerTransport;
  try {
    transport = await MulticastServerTransport.bind({ group: group.address, port: group.port, unicast: bind.host, ...(values['group-interface'] !== undefined ? { interfaceName: values['group-interface'] } : {}) });
  } catch (error) {
    member?.close();
    throw new UsageError(`cannot join ${group.address} on ${bind.host}:${group.port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const server = new CoapServer(new CoapEndpoint({ transport }), {
    ...options,
    group: { membership: transport, ...(contexts !== undefined ? { contexts } : {}), ...(leisureSeconds !== undefined ? { leisureMs: leisureSeconds * 1000 } : {}) },
  });
  if (member !== undefined) server.onClose(() => member.close());
  process.stderr.write(`coapsec joined group ${group.address}${member !== undefined ? ` (${member.file.group}, Sender ID ${member.file.senderId})` : ''}\n`);
  return server;
}

/**
 * --deterministic PATH: marks the resources at these paths safe for Deterministic Requests
 * (draft-ietf-core-cacheable-oscore §3.4.3, §6: per resource, side-effect free, readable by every
 * member — ResourceDefinition.deterministic). Checked before anything listens.
 */
export function checkDeterministicPaths(values: GroupServeValues): readonly string[] {
  const paths = values.deterministic ?? [];
  if (paths.length > 0 && values.group === undefined) throw new UsageError('--deterministic needs --group FILE: Deterministic Requests come from the members of a Group OSCORE group');
  for (const path of paths) if (!path.startsWith('/')) throw new UsageError(`--deterministic needs a resource path such as /hello, got "${path}"`);
  return paths;
}

/** Marks the resources (served already) at `paths`; one that is not there is a usage error. */
export function markDeterministic(server: CoapServer, paths: readonly string[]): void {
  for (const path of paths) {
    const resource = server.resourceAt(path);
    if (resource === undefined) throw new UsageError(`--deterministic ${path}: no resource at that path here`);
    const unsafe = (['POST', 'PUT', 'DELETE', 'PATCH', 'IPATCH'] as const).filter((method) => resource.handlers[method] !== undefined);
    // Only GET and FETCH reach it as Deterministic Requests (the server refuses the others, §3.4.3).
    if (unsafe.length > 0) process.stderr.write(`coapsec: note: ${path} also accepts ${unsafe.join(', ')}; Deterministic Requests reach only its GET and FETCH\n`);
    resource.deterministic = true;
  }
}
