/** coapsec get|post|put|delete|fetch|patch|ipatch URI [flags] */
import { readFileSync } from 'node:fs';
import { codeClass, codeToString, methodFromName } from '../coap/codes.js';
import { parseContentFormat } from '../coap/content-format.js';
import { CoapClient } from '../client/client.js';
import { checkUri, parse, parseBlockSize, parseSeconds } from './args.js';
import { clientDtlsCredentials, DTLS_FLAGS, DTLS_USAGE } from './dtls-args.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport } from './keylog-args.js';
import { clientOscore, OSCORE_FLAGS, OSCORE_USAGE } from './oscore-args.js';
import { clientRoute, VIA_FLAGS, VIA_USAGE } from './via-args.js';
import { progressBar } from './progress.js';
import { ExitCode, UsageError, noResponse } from './errors.js';
import { printVerbose, responseToJson } from './output.js';

export const REQUEST_USAGE = `usage: coapsec <get|post|put|delete|fetch|patch|ipatch> URI [options]
  --payload TEXT          request body
  --payload-file FILE     request body from a file ("-" for stdin)
  --content-format N|NAME Content-Format of the body (e.g. 0, text, json, cbor, 52)
  --accept N|NAME         preferred Content-Format of the response
  --non                   send a Non-confirmable request
  --timeout SECONDS       give up after this long, retransmissions included (default: the RFC 7252
                          retransmission schedule, then 93 s for a separate response)
  -b, --block-size N      block size for block-wise transfers: 16, 32, ..., 1024
  --json                  print the response as one JSON object
  -v, --verbose           print code and options to stderr
  --proxy URI             send the request through this forward proxy (coap://host:port)
${VIA_USAGE}
${DTLS_USAGE}
${OSCORE_USAGE}
${KEY_EXPORT_USAGE}`;

export async function requestCommand(method: string, argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      payload: { type: 'string' },
      'payload-file': { type: 'string' },
      'content-format': { type: 'string' },
      accept: { type: 'string' },
      non: { type: 'boolean' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
      verbose: { type: 'boolean', short: 'v' },
      'block-size': { type: 'string', short: 'b' },
      ...DTLS_FLAGS,
      ...OSCORE_FLAGS,
      ...KEY_EXPORT_FLAGS,
      proxy: { type: 'string' },
      ...VIA_FLAGS,
    },
    { min: 1, max: 1, names: 'URI' },
  );
  const blockSize = parseBlockSize(values['block-size']);
  const code = methodFromName(method)!;
  const uri = checkUri(positionals[0]!);
  if (values.payload !== undefined && values['payload-file'] !== undefined) throw new UsageError('use either --payload or --payload-file, not both');
  let payload: Uint8Array | string | undefined = values.payload;
  if (values['payload-file'] !== undefined) {
    try {
      payload = readFileSync(values['payload-file'] === '-' ? 0 : values['payload-file']);
    } catch (error) {
      throw new UsageError(`cannot read --payload-file: ${(error as Error).message}`);
    }
  }
  const format = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    try {
      return parseContentFormat(text);
    } catch (error) {
      throw new UsageError(`${flag}: ${(error as Error).message}`);
    }
  };
  const contentFormat = format('--content-format', values['content-format']);
  const accept = format('--accept', values.accept);
  const timeoutSeconds = parseSeconds(values.timeout, '--timeout');

  const dtls = clientDtlsCredentials(values);
  const oscore = clientOscore(values);
  const proxy = values.proxy !== undefined ? checkUri(values.proxy) : undefined;
  if (proxy !== undefined && values.via?.length) throw new UsageError('use either --proxy or --via, not both');
  const route = clientRoute(values);
  const via = route.via;
  const keys = keyExport(values);
  for (const hop of via ?? []) if (hop.context) keys.context(hop.context, 'client');
  const security = keys.clientSecurity(oscore.security);
  const client = new CoapClient({ ...(dtls ? { dtls: { ...dtls, ...keys.dtls } } : {}), ...(security ? { security } : {}), ...(proxy ? { proxy } : {}), ...(via ? { via: () => via } : {}) });
  const progress = progressBar();
  try {
    const response = await client.request({
      ...(blockSize !== undefined ? { blockSize } : {}),
      onProgress: (bytes, total) => progress.update(bytes, total),
      method: code,
      uri,
      ...(payload !== undefined ? { payload } : {}),
      ...(contentFormat !== undefined ? { contentFormat } : {}),
      ...(accept !== undefined ? { accept } : {}),
      confirmable: !values.non,
      ...(timeoutSeconds !== undefined ? { timeout: timeoutSeconds * 1000 } : {}),
    });
    progress.done();
    if (values.verbose) {
      printVerbose(response);
    }
    if (values.json) {
      process.stdout.write(JSON.stringify(responseToJson(response)) + '\n');
    } else if (response.payload.length > 0) {
      process.stdout.write(response.payload);
      if (process.stdout.isTTY && response.payload[response.payload.length - 1] !== 0x0a) process.stdout.write('\n');
    }
    if (!response.ok && !values.verbose && !values.json) process.stderr.write(`${codeToString(response.code)}\n`);
    const cls = codeClass(response.code);
    return cls === 2 ? ExitCode.Ok : cls === 4 ? ExitCode.ClientError : cls === 5 ? ExitCode.ServerError : ExitCode.Failure;
  } catch (error) {
    progress.done();
    return noResponse(error);
  } finally {
    await client.close();
    oscore.close();
    route.close();
  }
}
