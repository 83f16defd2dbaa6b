/** coapsec subscribe URI [--count N] [--duration S] [--json]: prints each publication as it arrives. */
import { codeClass, codeToString } from '../coap/codes.js';
import { getUintOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { CoapClient } from '../client/client.js';
import { checkUri, parse, parseCount, parseSeconds, requireDtlsFor } from './args.js';
import { clientDtlsCredentials, DTLS_FLAGS, DTLS_USAGE } from './dtls-args.js';
import { ExitCode, noResponse, UsageError } from './errors.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport } from './keylog-args.js';
import { CLIENT_OSCORE_FLAGS, CLIENT_OSCORE_USAGE, clientOscore, oscoreRefusal } from './oscore-args.js';
import { responseToJson } from './output.js';
import { PublicationVerifier } from '../pubsub-protection/publication.js';
import { kdcRefusal, kdcTopic, loadKeyFile } from './protect-args.js';
import { TopicMembership } from '../group-manager/topic-member.js';

export const SUBSCRIBE_USAGE = `usage: coapsec subscribe URI [options]   (pub-sub: Observe the topic-data URI; one line per publication)
  --count N               stop after N publications (the current one counts)
  --duration SECONDS      stop after this long
  --json                  one JSON object per publication (payload, contentFormat, observe)
  --protect KEYFILE       verify and decrypt each publication with this subscriber's key file (coapsec
                          pubsub-keys): authorized publisher, this topic and Content-Format, never older
                          than one already shown; a refused one is reported on stderr with the reason
  --kdc URI --ace-as URI  the same with the topic's keys from the KDC: a token from the AS (OSCORE to it
                          from --credentials), a join of the topic's group URI (coap://HOST:PORT/ace-group/
                          TOPIC) as subscriber, and its keying material observed: each rekey is followed
${DTLS_USAGE}
${CLIENT_OSCORE_USAGE}
${KEY_EXPORT_USAGE}`;

export async function subscribeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { count: { type: 'string' }, duration: { type: 'string' }, json: { type: 'boolean' }, protect: { type: 'string' }, kdc: { type: 'string' }, 'ace-as': { type: 'string' }, timeout: { type: 'string' }, ...DTLS_FLAGS, ...CLIENT_OSCORE_FLAGS, ...KEY_EXPORT_FLAGS },
    { min: 1, max: 1, names: 'URI' },
  );
  const uri = checkUri(positionals[0]!);
  const count = parseCount(values.count, '--count');
  const duration = parseSeconds(values.duration, '--duration');
  const timeout = parseSeconds(values.timeout, '--timeout');
  if (values.protect !== undefined && values.kdc !== undefined) throw new UsageError('use either --protect KEYFILE or --kdc URI, not both');
  if (values['ace-as'] !== undefined && values.kdc === undefined) throw new UsageError('--ace-as goes with --kdc URI');
  const verifier = values.protect === undefined ? undefined : new PublicationVerifier(loadKeyFile(values.protect, 'subscriber'));
  const kdc = values.kdc === undefined ? undefined : kdcTopic(values.kdc, values['ace-as']);
  const topicDataPath = new URL(uri).pathname;
  const dtls = clientDtlsCredentials(values);
  requireDtlsFor([uri], dtls !== undefined);
  const keys = keyExport(values);
  const oscore = clientOscore(values);
  const client = new CoapClient(keys.clientOptions(dtls, oscore));
  oscore.attach(client);
  let observation: Awaited<ReturnType<CoapClient['observe']>> | undefined;
  let keyWatch: Awaited<ReturnType<CoapClient['observe']>> | undefined;
  let membership: TopicMembership | undefined;
  const stop = (): void => void observation?.cancel();
  let stopTimer: NodeJS.Timeout | undefined;
  try {
    await oscore.establish(uri);
    if (kdc !== undefined) {
      membership = await TopicMembership.join({ client, ...kdc, roles: ['subscriber'] });
      // RFC 9594 §6: follow each rekey; the end (removed from the group: 4.03) is said once.
      keyWatch = await membership.watch(undefined, (why) => void process.stderr.write(`coapsec: no longer a member of topic group ${kdc.topic}: ${why}\n`));
    }
    observation = await client.observe(uri, timeout !== undefined ? { timeout: timeout * 1000 } : {});
    if (duration !== undefined) stopTimer = setTimeout(stop, duration * 1000);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    let received = 0;
    let refused = 0;
    for await (const n of observation) {
      if (codeClass(n.code) !== 2) {
        // §3.2.2/§3.2.4: 4.04 before the first publication, or as the last word when the topic-data goes.
        process.stderr.write(`coapsec: ${received === 0 ? 'cannot subscribe' : 'subscription ended'}: ${codeToString(n.code)}${n.payload.length ? ` (${n.text()})` : ''}\n`);
        return codeClass(n.code) === 4 ? ExitCode.ClientError : ExitCode.ServerError;
      }
      if (received === 0 && !observation.registered) process.stderr.write('coapsec: the broker did not accept the subscription (no Observe option; max-subscribers?)\n');
      let payload = n.payload;
      let origin: { publisher: string; sequenceNumber: number } | undefined;
      if (verifier !== undefined || membership !== undefined) {
        const binding = { topicDataPath, contentFormat: n.contentFormat };
        const verdict = verifier?.verify(n.payload, binding) ?? (await membership!.verify(n.payload, binding));
        if (!verdict.ok) {
          refused++;
          process.stderr.write(`coapsec: refused a publication (${verdict.reason}): ${verdict.detail}\n`);
          if (!observation.registered) break;
          continue;
        }
        payload = Buffer.from(verdict.plaintext.buffer, verdict.plaintext.byteOffset, verdict.plaintext.byteLength);
        origin = { publisher: Buffer.from(verdict.publisher).toString('hex'), sequenceNumber: verdict.sequenceNumber };
      }
      received++;
      if (values.json) {
        const observe = getUintOption(n.message, OptionNumber.Observe);
        const plain = { code: n.code, options: n.options, payload, contentFormat: n.contentFormat, text: () => payload.toString('utf8') };
        const shown = { ...responseToJson(plain), contentFormat: n.contentFormat ?? null, observe: observe ?? null, ...(origin !== undefined ? { verified: origin } : {}) };
        process.stdout.write(JSON.stringify(shown) + '\n');
      } else process.stdout.write(payload.toString('utf8') + '\n');
      if (count !== undefined && received >= count) break;
      if (!observation.registered) break;
    }
    if (refused > 0) return ExitCode.Security;
    return received > 0 ? ExitCode.Ok : ExitCode.NoResponse;
  } catch (error) {
    return kdcRefusal(error) ?? oscoreRefusal(error) ?? noResponse(error);
  } finally {
    if (stopTimer) clearTimeout(stopTimer);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await observation?.cancel();
    await keyWatch?.cancel();
    await client.close();
    oscore.close();
  }
}
