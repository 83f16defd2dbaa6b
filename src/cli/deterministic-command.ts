/**
 * coapsec get|fetch --deterministic --group FILE URI: one Deterministic Request
 * (draft-ietf-core-cacheable-oscore §3.4.2) as the group's Deterministic Client, to one server,
 * directly or through a forward proxy (--proxy) that may answer it from its cache; the response is
 * verified end to end (the server's signature, the Request-Hash binding) before it is printed.
 */
import { CoapClient } from '../client/client.js';
import { parseCoapUri } from '../coap/uri.js';
import { DeterministicClientSecurity } from '../client/deterministic.js';
import { CredentialsError } from '../credentials/errors.js';
import type { GroupMemberFile } from '../group-oscore/manager.js';
import { contextFromMemberFile } from '../group-oscore/manager.js';
import { readMemberFile } from '../group/member.js';
import { parse, parseSeconds } from './args.js';
import { UsageError, noResponse } from './errors.js';
import { exitCodeOf, openOutput, OUTPUT_FLAGS } from './response-output.js';

export const DETERMINISTIC_USAGE = `  Cacheable OSCORE (Deterministic Requests, for a proxy's cache):
  coapsec get URI --deterministic --group FILE [--proxy URI] [--server-id HEX]
  --deterministic         send as the group's Deterministic Client: members asking for the same
                          resource send the same bytes, and a caching proxy answers them all;
                          only for resources the server marks as safe for it
  --server-id HEX         the Sender ID of the server: responses signed by another member are refused`;

/** Whether `argv` (after the method) asks for a Deterministic Request. */
export const asksForDeterministic = (argv: readonly string[]): boolean => argv.includes('--deterministic');

export async function deterministicRequestCommand(method: string, argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      deterministic: { type: 'boolean' },
      group: { type: 'string' },
      proxy: { type: 'string' },
      'server-id': { type: 'string' },
      timeout: { type: 'string' },
      ...OUTPUT_FLAGS,
    },
    { min: 1, max: 1, names: 'URI' },
  );
  const name = method.toUpperCase();
  if (name !== 'GET' && name !== 'FETCH') throw new UsageError('--deterministic is for get and fetch: a Deterministic Request must be safe (cacheable-oscore §3.4.3)');
  if (values.group === undefined) throw new UsageError('--deterministic needs --group FILE, a member file of a group with a Deterministic Client');
  const serverId = values['server-id'];
  if (serverId !== undefined && !/^(?:[0-9a-fA-F]{2})*$/.test(serverId)) throw new UsageError(`--server-id needs a Sender ID in hex, got "${serverId}"`);
  const file = memberFile(values.group);
  if (file.deterministicClient === undefined) {
    throw new UsageError(`${values.group}: group ${file.group} has no Deterministic Client; name one with "coapsec group deterministic STATE" and issue the member file again`);
  }
  for (const [what, uri] of [['URI', positionals[0]!], ['--proxy', values.proxy]] as const) {
    if (uri === undefined) continue;
    try {
      parseCoapUri(uri);
    } catch (error) {
      throw new UsageError(`bad ${what} "${uri}": ${(error as Error).message}`);
    }
  }
  const seconds = parseSeconds(values.timeout, '--timeout');
  const security = new DeterministicClientSecurity(contextFromMemberFile(file), serverId !== undefined ? { server: Uint8Array.from(Buffer.from(serverId, 'hex')) } : {});
  const output = openOutput(values);
  const client = new CoapClient(values.proxy !== undefined ? { proxy: values.proxy } : {});
  try {
    const response = await client.request({ method: name, uri: positionals[0]!, security, ...(seconds !== undefined ? { timeout: seconds * 1000 } : {}) });
    output.verbose(response);
    output.response(response);
    return exitCodeOf(response.code);
  } catch (error) {
    return noResponse(error);
  } finally {
    output.close();
    await client.close();
  }
}

function memberFile(path: string): GroupMemberFile {
  try {
    return readMemberFile(path);
  } catch (error) {
    if (error instanceof CredentialsError) throw new UsageError(error.message);
    throw error;
  }
}
