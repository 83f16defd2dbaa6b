/**
 * coapsec get|post|... to a CoAP group (draft-ietf-core-groupcomm-bis): the URI names an IP
 * multicast address (coap://224.0.1.187:PORT/..., coap://[ff05::fd]:PORT/...) or a group of the
 * credentials file by name (coap://NAME/...); every server's answer is printed as it arrives,
 * labelled with its origin (and, under Group OSCORE, the member that signed it), until --timeout.
 */
import { isIP } from 'node:net';
import { codeToString, methodFromName } from '../coap/codes.js';
import { type CoapUri, parseCoapUri } from '../coap/uri.js';
import { loadCredentials } from '../credentials/credentials-file.js';
import { defaultStateDirectory } from '../credentials/state-directory.js';
import { CredentialsError } from '../credentials/errors.js';
import type { GroupMemberFile } from '../group-oscore/manager.js';
import { GroupClient, describeOrigin, type GroupResponse } from '../group/group-client.js';
import { openGroupMember, readMemberFile, type OpenedGroupMember } from '../group/member.js';
import { MulticastClientTransport, isMulticastAddress } from '../transport/multicast.js';
import { peerKey } from '../transport/transport.js';
import { parse, parseBind, parseSeconds } from './args.js';
import { DETERMINISTIC_USAGE, asksForDeterministic, deterministicRequestCommand } from './deterministic-command.js';
import { ExitCode, UsageError } from './errors.js';
import { isUtf8 } from './output.js';
import { CoapClient } from '../client/client.js';
import { GroupProxyClient } from '../group/proxy-client.js';
import { clientRoute, VIA_FLAGS } from './via-args.js';

export const GROUP_REQUEST_USAGE = `  CoAP groups (URI host an IP multicast address, or a group name from --credentials):
  coapsec get coap://224.0.1.187:PORT/PATH [--group FILE | --credentials FILE] [--pairwise ID]
    every server's answer as it arrives, labelled with its origin, until --timeout (default 5 s)
  --group FILE            Group OSCORE with this member file (coapsec group issue)
  --pairwise SENDER_ID    protect in the pairwise mode for the member with this Sender ID (hex)
  --observe               Observe the resource at every server (groupcomm-bis §3.7) until --timeout
  --local ADDR[:PORT]     send from this unicast address (its interface carries IPv4 group requests)
  --interface NAME        IPv6: the interface group requests leave on (e.g. eth0)
  --via PROXY[,CREDENTIALS]
                          through a proxy that relays group requests (draft-ietf-core-groupcomm-proxy):
                          one unicast request to PROXY with Multicast-Timeout (--timeout less half a
                          second); each answer is labelled with the server Reply-From names. The
                          OSCORE context for PROXY (in CREDENTIALS or --credentials) authenticates
                          this client to the proxy; Group OSCORE (--group) stays end to end
${DETERMINISTIC_USAGE}`;

/** Whether `argv` (after the method) is a request to a group: a multicast URI, --group, or a URI naming a group in --credentials. */
export function isGroupRequest(argv: readonly string[]): boolean {
  const uri = argv.find((a) => /^coap:\/\//i.test(a));
  if (uri === undefined) return false;
  let host: string;
  try {
    host = parseCoapUri(uri).host;
  } catch {
    return false;
  }
  if (isMulticastAddress(host) || argv.includes('--group') || asksForDeterministic(argv)) return true;
  const at = argv.indexOf('--credentials');
  if (at < 0 || isIP(host) !== 0 || argv[at + 1] === undefined) return false;
  try {
    return loadCredentials(argv[at + 1]!).groups.some((g) => g.group === host);
  } catch {
    return false; // the ordinary request command reports the bad file
  }
}

/** "224.0.1.187:5683" or "[ff05::fd]:5683" as an address and port. */
export function parseGroupAddress(text: string, flag: string, defaultPort = 5683): { address: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([0-9.]+))(?::(\d+))?$/.exec(text);
  const address = m?.[1] ?? m?.[2];
  if (m === null || address === undefined || !isMulticastAddress(address)) throw new UsageError(`${flag} needs an IP multicast ADDR:PORT (224.0.1.187:5683, [ff05::fd]:5683), got "${text}"`);
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (!(port > 0 && port <= 65535)) throw new UsageError(`${flag}: port out of range: ${m[3]}`);
  return { address, port };
}

export async function groupRequestCommand(method: string, argv: string[]): Promise<number> {
  // A Deterministic Request goes to one server (or a proxy), as its own command.
  if (asksForDeterministic(argv)) return deterministicRequestCommand(method, argv);
  const { values, positionals } = parse(
    argv,
    {
      payload: { type: 'string' },
      timeout: { type: 'string' },
      group: { type: 'string' },
      credentials: { type: 'string' },
      pairwise: { type: 'string' },
      observe: { type: 'boolean' },
      local: { type: 'string' },
      interface: { type: 'string' },
      json: { type: 'boolean' },
      non: { type: 'boolean' },
      ...VIA_FLAGS,
    },
    { min: 1, max: 1, names: 'URI' },
  );
  const code = methodFromName(method)!;
  if (values.observe && method.toLowerCase() !== 'get' && method.toLowerCase() !== 'fetch') throw new UsageError('--observe needs get or fetch');
  if (values.group !== undefined && values.credentials !== undefined) throw new UsageError('use either --group or --credentials, not both');
  let uri: CoapUri;
  try {
    uri = parseCoapUri(positionals[0]!);
  } catch (error) {
    throw new UsageError(`bad URI "${positionals[0]}": ${(error as Error).message}`);
  }
  if (uri.scheme !== 'coap') throw new UsageError(`group requests go over coap:// (UDP, RFC 7252 §8.1), not ${uri.scheme}://`);
  const file = memberFileFor(uri, values.group, values.credentials);
  if (!isMulticastAddress(uri.host)) {
    // coap://NAME/...: the group's own address (groupcomm-bis §2.2.1.1 group URIs).
    if (file?.address === undefined) throw new UsageError(`${uri.host} is neither an IP multicast address nor a group with an address in the member file`);
    const target = parseGroupAddress(file.address, `the address of group ${file.group}`);
    uri = { ...uri, host: target.address, port: uri.explicitPort ? uri.port : target.port, explicitPort: true };
  }
  const pairwise = values.pairwise;
  if (pairwise !== undefined && (file === undefined || !/^(?:[0-9a-fA-F]{2})*$/.test(pairwise))) throw new UsageError('--pairwise needs a Sender ID in hex and Group OSCORE (--group or --credentials)');
  const seconds = parseSeconds(values.timeout, '--timeout') ?? 5;
  const v6 = isIP(uri.host) === 6;
  const local = values.local !== undefined ? parseBind(values.local, { host: v6 ? '::' : '0.0.0.0', port: 0 }) : { host: v6 ? '::' : '0.0.0.0', port: 0 };
  if ((isIP(local.host) === 6) !== v6) throw new UsageError(`--local ${local.host} is not of the group's IP version`);

  if (values.via !== undefined && (values.via.length !== 1 || values.local !== undefined || values.interface !== undefined)) {
    throw new UsageError('a group request goes through one proxy (--via once), which chooses the interface itself (no --local, --interface)');
  }
  let member: OpenedGroupMember | undefined;
  if (file !== undefined) member = openGroupMember(file, defaultStateDirectory());
  const client = values.via !== undefined ? await proxiedGroupClient(values.via, values.credentials) : await directGroupClient(local, values.interface);
  try {
    const request = {
      uri: formatUri(uri),
      method: code,
      ...(values.payload !== undefined ? { payload: values.payload } : {}),
      ...(member !== undefined ? { security: { context: member.context, target: pairwise !== undefined ? { mode: 'pairwise' as const, recipientId: Uint8Array.from(Buffer.from(pairwise, 'hex')) } : { mode: 'group' as const } } } : {}),
    };
    const stream = values.observe ? client.observe(request) : client.request({ ...request, timeout: seconds * 1000 });
    const stop = setTimeout(() => stream.cancel(), seconds * 1000);
    let best: number = ExitCode.NoResponse;
    for await (const response of stream) {
      print(response, values.json === true);
      const cls = response.code >> 5;
      const result = cls === 2 ? ExitCode.Ok : cls === 4 ? ExitCode.ClientError : ExitCode.ServerError;
      if (best === ExitCode.NoResponse || result === ExitCode.Ok) best = result;
    }
    clearTimeout(stop);
    for (const refusal of stream.refusals) process.stderr.write(`coapsec: refused a response from ${peerKey(refusal.origin)}: ${refusal.reason}\n`);
    if (best === ExitCode.NoResponse) {
      process.stderr.write(`coapsec: no response from the group within ${seconds} s\n`);
      if (stream.refusals.length > 0) return ExitCode.Security;
    }
    return best;
  } finally {
    await client.close();
    member?.close();
  }
}

type GroupSender = Pick<GroupClient, 'request' | 'observe' | 'close'>;

async function directGroupClient(local: { host: string; port: number }, interfaceName: string | undefined): Promise<GroupSender> {
  const transport = await MulticastClientTransport.bind({ host: local.host, port: local.port, ...(interfaceName !== undefined ? { interfaceName } : {}) });
  return new GroupClient({ transport });
}

/** --via: the group's answers relayed by a proxy, over the OSCORE context this client shares with it. */
async function proxiedGroupClient(via: string[], credentials: string | undefined): Promise<GroupSender> {
  const route = clientRoute({ via, credentials });
  const hop = route.via![0]!;
  const proxy = parseCoapUri(hop.uri);
  const unicast = new CoapClient();
  try {
    const endpoint = await unicast.endpoint(isIP(proxy.host) === 6 ? 6 : 4, proxy.scheme);
    const client = new GroupProxyClient({ endpoint, proxy: hop });
    return {
      request: (request) => client.request(request),
      observe: (request) => client.observe(request),
      close: async () => {
        await unicast.close();
        route.close();
      },
    };
  } catch (error) {
    route.close();
    await unicast.close();
    throw error;
  }
}

function memberFileFor(uri: CoapUri, groupFile: string | undefined, credentialsFile: string | undefined): GroupMemberFile | undefined {
  try {
    return findMemberFile(uri, groupFile, credentialsFile);
  } catch (error) {
    if (error instanceof CredentialsError) throw new UsageError(error.message);
    throw error;
  }
}

function findMemberFile(uri: CoapUri, groupFile: string | undefined, credentialsFile: string | undefined): GroupMemberFile | undefined {
  if (groupFile !== undefined) return readMemberFile(groupFile);
  if (credentialsFile === undefined) return undefined;
  const groups = loadCredentials(credentialsFile).groups;
  const here = `${uri.host.includes(':') ? `[${uri.host}]` : uri.host}:${uri.port}`;
  const found = groups.find((g) => g.group === uri.host) ?? groups.find((g) => g.address !== undefined && sameAddress(g.address, here));
  if (found === undefined) throw new UsageError(`${credentialsFile}: no group named ${uri.host} or at ${here} under "groups"`);
  return found;
}

function sameAddress(a: string, b: string): boolean {
  const pa = parseGroupAddress(a, 'groups[].address');
  const pb = parseGroupAddress(b, 'the URI');
  return pa.port === pb.port && pa.address.toLowerCase() === pb.address.toLowerCase();
}

function formatUri(uri: CoapUri): string {
  const host = uri.host.includes(':') ? `[${uri.host}]` : uri.host;
  const path = uri.path.map(encodeURIComponent).join('/');
  const query = uri.query.length > 0 ? `?${uri.query.map(encodeURIComponent).join('&')}` : '';
  return `coap://${host}:${uri.port}/${path}${query}`;
}

function print(response: GroupResponse, json: boolean): void {
  const text = isUtf8(response.payload) ? Buffer.from(response.payload).toString('utf8') : Buffer.from(response.payload).toString('hex');
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ origin: peerKey(response.origin), ...(response.member !== undefined ? { member: response.member } : {}), code: codeToString(response.code), payload: text })}\n`,
    );
  } else {
    process.stdout.write(`${describeOrigin(response)}: ${codeToString(response.code)}${text !== '' ? ` ${text}` : ''}\n`);
  }
}
