/** coapsec publish URI (--payload TEXT | --payload-file FILE) [--content-format N] [--create-topic NAME] */
import { readFileSync } from 'node:fs';
import { defaultStateDirectory } from '../credentials/state-directory.js';
import { PublisherSession } from '../pubsub-protection/publisher-session.js';
import { TopicMembership } from '../group-manager/topic-member.js';
import { kdcRefusal, kdcTopic, loadKeyFile, protectionRefusal } from './protect-args.js';
import { decodeTopicProperties, encodeTopicProperties, PUBSUB_CONTENT_FORMAT, TopicPropertyError } from '../broker/topic-properties.js';
import { CoapClient } from '../client/client.js';
import { codeToString } from '../coap/codes.js';
import { parseContentFormat } from '../coap/content-format.js';
import { checkUri, parse, parseSeconds, requireDtlsFor } from './args.js';
import { clientDtlsCredentials, DTLS_FLAGS, DTLS_USAGE } from './dtls-args.js';
import { ExitCode, noResponse, UsageError } from './errors.js';
import { KEY_EXPORT_FLAGS, KEY_EXPORT_USAGE, keyExport } from './keylog-args.js';
import { CLIENT_OSCORE_FLAGS, CLIENT_OSCORE_USAGE, clientOscore, oscoreRefusal } from './oscore-args.js';
import { exitCodeOf } from './response-output.js';

export const PUBLISH_USAGE = `usage: coapsec publish URI (--payload TEXT | --payload-file FILE) [options]   (pub-sub, PUT to topic-data)
  URI                     the topic-data URI (with --create-topic: the broker's topic collection, e.g. coap://host/ps)
  --content-format N|NAME Content-Format of the publication
  --create-topic NAME     first create topic NAME in the collection URI, then publish to its topic-data
                          (its URI is printed on stderr)
  --timeout SECONDS       give up on each request after this long
  --protect KEYFILE       publish end-to-end protected (encrypted with the topic's group key, signed with
                          this publisher's key; see coapsec pubsub-keys); the broker cannot read or forge it
  --kdc URI --ace-as URI  publish end-to-end protected with the topic's keys from the KDC instead: a token
                          from the AS (OSCORE to it from --credentials), then a join of the topic's group
                          URI (coap://HOST:PORT/ace-group/TOPIC) as publisher with a new key pair
${DTLS_USAGE}
${CLIENT_OSCORE_USAGE}
${KEY_EXPORT_USAGE}`;

export async function publishCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      payload: { type: 'string' },
      'payload-file': { type: 'string' },
      'content-format': { type: 'string' },
      'create-topic': { type: 'string' },
      timeout: { type: 'string' },
      protect: { type: 'string' },
      kdc: { type: 'string' },
      'ace-as': { type: 'string' },
      ...DTLS_FLAGS,
      ...CLIENT_OSCORE_FLAGS,
      ...KEY_EXPORT_FLAGS,
    },
    { min: 1, max: 1, names: 'URI' },
  );
  const uri = checkUri(positionals[0]!);
  if ((values.payload === undefined) === (values['payload-file'] === undefined)) throw new UsageError('give the publication with --payload or --payload-file (one of them)');
  let payload: Uint8Array;
  if (values.payload !== undefined) payload = Buffer.from(values.payload, 'utf8');
  else {
    try {
      payload = readFileSync(values['payload-file']!);
    } catch (error) {
      throw new UsageError(`--payload-file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
  let contentFormat: number | undefined;
  if (values['content-format'] !== undefined) {
    try {
      contentFormat = parseContentFormat(values['content-format']);
    } catch (error) {
      throw new UsageError(`--content-format: ${(error as Error).message}`);
    }
  }
  const timeout = parseSeconds(values.timeout, '--timeout');
  const dtls = clientDtlsCredentials(values);
  requireDtlsFor([uri], dtls !== undefined);
  const keys = keyExport(values);
  if (values.protect !== undefined && values.kdc !== undefined) throw new UsageError('use either --protect KEYFILE or --kdc URI, not both');
  if (values['ace-as'] !== undefined && values.kdc === undefined) throw new UsageError('--ace-as goes with --kdc URI');
  const keyMaterial = values.protect === undefined ? undefined : loadKeyFile(values.protect, 'publisher');
  const kdc = values.kdc === undefined ? undefined : kdcTopic(values.kdc, values['ace-as']);
  let protection: PublisherSession | undefined;
  let membership: TopicMembership | undefined;
  const oscore = clientOscore(values);
  const client = new CoapClient(keys.clientOptions(dtls, oscore));
  oscore.attach(client);
  const common = timeout !== undefined ? { timeout: timeout * 1000 } : {};
  try {
    let target = uri;
    if (values['create-topic'] !== undefined) {
      const properties = { topicName: values['create-topic'], resourceType: 'core.ps.data', ...(contentFormat !== undefined ? { topicContentFormat: contentFormat } : {}) };
      const created = await client.post(uri, encodeTopicProperties(properties), { ...common, contentFormat: PUBSUB_CONTENT_FORMAT });
      if (!created.ok) {
        process.stderr.write(`coapsec: creating topic "${properties.topicName}": ${codeToString(created.code)}${created.payload.length ? ` (${created.text()})` : ''}\n`);
        return exitCodeOf(created.code);
      }
      let topicData: string | undefined;
      try {
        topicData = decodeTopicProperties(created.payload).topicData;
      } catch (error) {
        if (!(error instanceof TopicPropertyError)) throw error;
      }
      if (topicData === undefined) {
        process.stderr.write('coapsec: the broker created the topic but named no topic-data resource\n');
        return ExitCode.Failure;
      }
      target = new URL(topicData, uri).toString();
      process.stderr.write(`topic-data: ${target}\n`);
    }
    // The topic-data path and the Content-Format are bound into the object (R5.2, R5.3).
    // Opened only now: its counter is locked against a concurrent publisher with the same key file.
    if (keyMaterial !== undefined) protection = PublisherSession.open(keyMaterial, defaultStateDirectory());
    if (kdc !== undefined) membership = await TopicMembership.join({ client, ...kdc, roles: ['publisher'], stateDirectory: defaultStateDirectory() });
    const binding = { topicDataPath: new URL(target).pathname, contentFormat };
    const body = protection?.protect(payload, binding) ?? membership?.protect(payload, binding) ?? payload;
    const response = await client.put(target, body, { ...common, ...(contentFormat !== undefined ? { contentFormat } : {}) });
    process.stdout.write(`${codeToString(response.code)}\n`);
    if (!response.ok && response.payload.length > 0) process.stderr.write(`coapsec: ${response.text()}\n`);
    return exitCodeOf(response.code);
  } catch (error) {
    return protectionRefusal(error) ?? kdcRefusal(error) ?? oscoreRefusal(error) ?? noResponse(error);
  } finally {
    await client.close();
    oscore.close();
    protection?.close();
    membership?.close();
  }
}
