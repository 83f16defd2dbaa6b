/** coapsec get|post|put|delete|fetch|patch|ipatch URI [flags] */
import { TLS_CLIENT_USAGE, tlsClientOptions } from './tls-args.js';
import { readFileSync } from 'node:fs';
import { methodFromName } from '../coap/codes.js';
import { parseContentFormat } from '../coap/content-format.js';
import { CoapClient, type ClientResponse } from '../client/client.js';
import { checkUri, parse, parseBlockSize, parseSeconds, requireDtlsFor } from './args.js';
import { clientDtlsCredentials, DTLS_FLAGS, DTLS_USAGE } from './dtls-args.js';
import { CLIENT_OSCORE_FLAGS, CLIENT_OSCORE_USAGE, clientOscore, describeProtection, oscoreRefusal } from './oscore-args.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport } from './keylog-args.js';
import { clientRoute, VIA_FLAGS, VIA_USAGE } from './via-args.js';
import { progressBar } from './progress.js';
import { ExitCode, UsageError, noResponse } from './errors.js';
import { exitCodeOf, openOutput, OUTPUT_FLAGS, OUTPUT_USAGE } from './response-output.js';
import { localBinding, REQUEST_OPTION_FLAGS, REQUEST_OPTION_USAGE, requestOptionSettings } from './request-flags.js';
import { ACE_CLIENT_FLAGS, ACE_CLIENT_USAGE, aceSecurity } from './ace-client-args.js';

export const REQUEST_USAGE = `usage: coapsec <get|post|put|delete|fetch|patch|ipatch> URI [options]
  --payload TEXT          request body
  --payload-file FILE     request body from a file ("-" for stdin)
  --content-format N|NAME Content-Format of the body (e.g. 0, text, json, cbor, 52)
  --accept N|NAME         preferred Content-Format of the response
  --non                   send a Non-confirmable request
  --timeout SECONDS       give up after this long, retransmissions included (default: the RFC 7252
                          retransmission schedule, then 93 s for a separate response)
  -b, --block-size N      block size for block-wise transfers: 16, 32, ..., 1024
  --repeat N              send the request N times, one after the other (exit code: the first failure)
${REQUEST_OPTION_USAGE}
${OUTPUT_USAGE}
  --proxy URI             send the request through this forward proxy (coap://host:port)
${VIA_USAGE}
${DTLS_USAGE}
${TLS_CLIENT_USAGE}
${CLIENT_OSCORE_USAGE}
${ACE_CLIENT_USAGE}
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
      'block-size': { type: 'string', short: 'b' },
      repeat: { type: 'string' },
      ...REQUEST_OPTION_FLAGS,
      ...OUTPUT_FLAGS,
      ...DTLS_FLAGS,
      ...CLIENT_OSCORE_FLAGS,
      ...ACE_CLIENT_FLAGS,
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
  const repeat = values.repeat === undefined ? 1 : Number(values.repeat);
  if (!(Number.isInteger(repeat) && repeat >= 1 && repeat <= 1_000_000)) throw new UsageError(`--repeat needs a whole number 1..1000000, got "${values.repeat}"`);
  const extra = requestOptionSettings(values);

  const dtls = clientDtlsCredentials(values);
  const proxy = values.proxy !== undefined ? checkUri(values.proxy) : undefined;
  if (proxy !== undefined && values.via?.length) throw new UsageError('use either --proxy or --via, not both');
  requireDtlsFor([values.via?.length ? values.via[0]!.split(',')[0] : (proxy ?? uri)], dtls !== undefined);
  const output = openOutput(values);
  const oscore = clientOscore(values);
  const aceFor = aceSecurity(values, uri);
  const route = clientRoute(values);
  const via = route.via;
  const keys = keyExport(values);
  for (const hop of via ?? []) if (hop.context) keys.context(hop.context, 'client');
  const tls = tlsClientOptions(values, dtls?.psk);
  const client = new CoapClient({
    ...keys.clientOptions(dtls, oscore),
    ...(tls ? { tls } : {}),
    ...(proxy ? { proxy } : {}),
    ...(via ? { via: () => via } : {}),
    ...localBinding(extra.local),
  });
  oscore.attach(client);
  const ace = aceFor(client);
  try {
    let exitCode: number = ExitCode.Ok;
    for (let i = 0; i < repeat; i++) {
      const progress = progressBar();
      let response: ClientResponse;
      try {
        response = await client.request({
          ...(blockSize !== undefined ? { blockSize } : {}),
          onProgress: (bytes, total) => progress.update(bytes, total),
          method: code,
          uri,
          ...(payload !== undefined ? { payload } : {}),
          ...(contentFormat !== undefined ? { contentFormat } : {}),
          ...(accept !== undefined ? { accept } : {}),
          ...(extra.options.length > 0 ? { options: extra.options } : {}),
          ...(extra.token ? { token: extra.token } : {}),
          confirmable: !values.non,
          ...(ace ? { security: ace } : {}),
          ...(timeoutSeconds !== undefined ? { timeout: timeoutSeconds * 1000 } : {}),
        });
      } catch (error) {
        progress.done();
        const failed = oscoreRefusal(error) ?? noResponse(error);
        if (exitCode === ExitCode.Ok) exitCode = failed;
        continue;
      }
      progress.done();
      output.verbose(response);
      if (values.verbose) for (const line of describeProtection(response.context, via)) process.stderr.write(`${line}\n`);
      output.response(response);
      const result = exitCodeOf(response.code);
      if (exitCode === ExitCode.Ok) exitCode = result;
    }
    return exitCode;
  } finally {
    output.close();
    await client.close();
    oscore.close();
    route.close();
  }
}
