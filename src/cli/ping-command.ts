/** coapsec ping URI: CoAP ping (RFC 7252 §4.3), an empty CON that a CoAP endpoint answers with RST. */
import { CoapClient } from '../client/client.js';
import { checkUri, parse, parseSeconds, requireDtlsFor } from './args.js';
import { clientDtlsCredentials, DTLS_FLAGS, DTLS_USAGE } from './dtls-args.js';
import { ExitCode } from './errors.js';
import { localBinding, requestOptionSettings } from './request-flags.js';

export const PING_USAGE = `usage: coapsec ping URI [--timeout SECONDS] [--local ADDR:PORT]
  sends an empty Confirmable message (CoAP ping, RFC 7252 §4.3) to the URI's host and port;
  exit 0 when it is answered (RST or ACK), 3 when not
  --timeout SECONDS       give up after this long (default: the retransmission schedule, about 45 s)
  --local ADDR:PORT       send from this local address and port
${DTLS_USAGE}`;

export async function pingCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { timeout: { type: 'string' }, local: { type: 'string' }, ...DTLS_FLAGS }, { min: 1, max: 1, names: 'URI' });
  const uri = checkUri(positionals[0]!);
  const timeout = parseSeconds(values.timeout, '--timeout');
  const dtls = clientDtlsCredentials(values);
  requireDtlsFor([uri], dtls !== undefined);
  const { local } = requestOptionSettings({ local: values.local });
  const client = new CoapClient({ ...(dtls ? { dtls } : {}), ...localBinding(local) });
  let timer: NodeJS.Timeout | undefined;
  try {
    const gaveUp = new Promise<never>((_, reject) => {
      if (timeout !== undefined) timer = setTimeout(() => reject(new Error(`no answer to CoAP ping within ${timeout * 1000} ms`)), timeout * 1000);
    });
    const ms = await Promise.race([client.ping(uri), gaveUp]);
    process.stdout.write(`pong from ${uri} in ${ms.toFixed(1)} ms\n`);
    return ExitCode.Ok;
  } catch (error) {
    process.stderr.write(`coapsec: ${(error as Error).message}\n`);
    return ExitCode.NoResponse;
  } finally {
    if (timer) clearTimeout(timer);
    await client.close();
  }
}
