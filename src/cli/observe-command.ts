/** coapsec observe URI [--count N] [--duration S] [the request and output flags of get] */
import { TLS_CLIENT_USAGE, tlsClientOptions } from './tls-args.js';
import { codeClass } from '../coap/codes.js';
import { parseContentFormat } from '../coap/content-format.js';
import { CoapClient } from '../client/client.js';
import { checkUri, parse, parseBlockSize, parseCount, parseSeconds, requireDtlsFor } from './args.js';
import { clientDtlsCredentials, DTLS_FLAGS, DTLS_USAGE } from './dtls-args.js';
import { CLIENT_OSCORE_FLAGS, CLIENT_OSCORE_USAGE, clientOscore, describeProtection, oscoreRefusal } from './oscore-args.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport } from './keylog-args.js';
import { clientRoute, VIA_FLAGS, VIA_USAGE } from './via-args.js';
import { ExitCode, UsageError, noResponse } from './errors.js';
import { openOutput, OUTPUT_FLAGS, OUTPUT_USAGE } from './response-output.js';
import { localBinding, REQUEST_OPTION_FLAGS, REQUEST_OPTION_USAGE, requestOptionSettings } from './request-flags.js';

export const OBSERVE_USAGE = `usage: coapsec observe URI [options]     (RFC 7641; stops actively with Observe 1)
  --count N               stop after N notifications (the first response counts)
  --duration SECONDS      stop after this long
  --accept N|NAME         preferred Content-Format
  --timeout SECONDS       give up on the registration (or a renewal) after this long
  -b, --block-size N      block size for notifications larger than one block
${REQUEST_OPTION_USAGE}
${OUTPUT_USAGE}
                          (each notification ends with a line break; -o FILE gets every one)
  --proxy URI             send the request through this forward proxy (coap://host:port)
${VIA_USAGE}
${DTLS_USAGE}
${TLS_CLIENT_USAGE}
${CLIENT_OSCORE_USAGE}
${KEY_EXPORT_USAGE}`;

export async function observeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      count: { type: 'string' },
      duration: { type: 'string' },
      accept: { type: 'string' },
      'block-size': { type: 'string', short: 'b' },
      timeout: { type: 'string' },
      ...REQUEST_OPTION_FLAGS,
      ...OUTPUT_FLAGS,
      ...DTLS_FLAGS,
      ...CLIENT_OSCORE_FLAGS,
      ...KEY_EXPORT_FLAGS,
      proxy: { type: 'string' },
      ...VIA_FLAGS,
    },
    { min: 1, max: 1, names: 'URI' },
  );
  const uri = checkUri(positionals[0]!);
  const count = parseCount(values.count, '--count');
  const duration = parseSeconds(values.duration, '--duration');
  const timeout = parseSeconds(values.timeout, '--timeout');
  const blockSize = parseBlockSize(values['block-size']);
  let accept: number | undefined;
  if (values.accept !== undefined) {
    try {
      accept = parseContentFormat(values.accept);
    } catch (error) {
      throw new UsageError(`--accept: ${(error as Error).message}`);
    }
  }
  const extra = requestOptionSettings(values);

  const dtls = clientDtlsCredentials(values);
  const oscore = clientOscore(values);
  const proxy = values.proxy !== undefined ? checkUri(values.proxy) : undefined;
  if (proxy !== undefined && values.via?.length) throw new UsageError('use either --proxy or --via, not both');
  requireDtlsFor([values.via?.length ? values.via[0]!.split(',')[0] : (proxy ?? uri)], dtls !== undefined);
  const route = clientRoute(values);
  const via = route.via;
  const output = openOutput(values, { linePerResponse: true });
  const keys = keyExport(values);
  for (const hop of via ?? []) if (hop.context) keys.context(hop.context, 'client');
  const tls = tlsClientOptions(values, dtls?.psk);
  const client = new CoapClient({ ...keys.clientOptions(dtls, oscore), ...(tls ? { tls } : {}), ...(proxy ? { proxy } : {}), ...(via ? { via: () => via } : {}), ...localBinding(extra.local) });
  oscore.attach(client);
  let stopTimer: NodeJS.Timeout | undefined;
  const onSignal = (): void => void observation?.cancel();
  let observation: Awaited<ReturnType<CoapClient['observe']>> | undefined;
  try {
    await oscore.establish(uri);
    observation = await client.observe(uri, {
      ...(accept !== undefined ? { accept } : {}),
      ...(blockSize !== undefined ? { blockSize } : {}),
      ...(extra.options.length > 0 ? { options: extra.options } : {}),
      ...(extra.token ? { token: extra.token } : {}),
      ...(timeout !== undefined ? { timeout: timeout * 1000 } : {}),
    });
    if (duration !== undefined) stopTimer = setTimeout(() => void observation?.cancel(), duration * 1000);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let received = 0;
    let lastCode = 0;
    for await (const notification of observation) {
      received++;
      lastCode = notification.code;
      output.verbose(notification);
      if (values.verbose) for (const line of describeProtection(notification.context, via)) process.stderr.write(`${line}\n`);
      output.response(notification);
      if (count !== undefined && received >= count) break;
    }
    if (!observation.registered && codeClass(lastCode) === 2) process.stderr.write('coapsec: the server did not accept the observation (no Observe option in its response)\n');
    const cls = codeClass(lastCode);
    return cls === 4 ? ExitCode.ClientError : cls === 5 ? ExitCode.ServerError : received === 0 ? ExitCode.NoResponse : ExitCode.Ok;
  } catch (error) {
    return oscoreRefusal(error) ?? noResponse(error);
  } finally {
    if (stopTimer) clearTimeout(stopTimer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await observation?.cancel();
    output.close();
    await client.close();
    oscore.close();
    route.close();
  }
}
