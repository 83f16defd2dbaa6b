/**
 * --protect KEYFILE for publish and subscribe: a member key file from `coapsec pubsub-keys issue`;
 * or --kdc URI --ace-as URI: the topic's keys from the online KDC (src/group-manager/topic-member.ts).
 */
import { readFileSync } from 'node:fs';
import { AceClientError } from '../ace/client.js';
import { GroupJoinError } from '../group-manager/member-client.js';
import { checkUri } from './args.js';
import { PubSubKeyError, parseKeyMaterial, type TopicKeyMaterial } from '../pubsub-protection/key-material.js';
import { CredentialsError } from '../credentials/errors.js';
import { PublicationError } from '../pubsub-protection/publication.js';
import { ExitCode, UsageError } from './errors.js';

export function loadKeyFile(path: string, role: 'publisher' | 'subscriber'): TopicKeyMaterial {
  let material: TopicKeyMaterial;
  try {
    material = parseKeyMaterial(readFileSync(path, 'utf8'));
  } catch (error) {
    const reason = error instanceof PubSubKeyError ? error.message : ((error as NodeJS.ErrnoException).code ?? (error as Error).message);
    throw new UsageError(`--protect ${path}: ${reason}`);
  }
  if (!material.roles.includes(role)) throw new UsageError(`--protect ${path}: ${material.member} is not a ${role} of "${material.topic}"`);
  return material;
}

/** A publisher that cannot protect (key generation expired, key file too many epochs old, counter exhausted or locked): one line, exit 6. */
export function protectionRefusal(error: unknown): number | undefined {
  if (!(error instanceof PublicationError || error instanceof CredentialsError || error instanceof PubSubKeyError)) return undefined;
  process.stderr.write(`coapsec: cannot protect the publication: ${error.message}\n`);
  return ExitCode.Security;
}

/** --kdc URI: the topic's group-membership resource at the KDC, scheme://host:port/ace-group/TOPIC. */
export function kdcTopic(uri: string, asUri: string | undefined): { kdcOrigin: string; topic: string; asUri: string } {
  if (asUri === undefined) throw new UsageError('--kdc goes with --ace-as URI (the AS that issues the token for the KDC)');
  const url = new URL(checkUri(uri));
  checkUri(asUri);
  const segments = url.pathname.split('/').filter((s) => s !== '');
  if (segments.length !== 2 || segments[0] !== 'ace-group') throw new UsageError(`--kdc ${uri}: give the topic's group resource, e.g. coap://kdc.example/ace-group/TOPIC`);
  return { kdcOrigin: `${url.protocol}//${url.host}`, topic: decodeURIComponent(segments[1]!), asUri };
}

/** A join the KDC or the AS refused: one line, exit 6. */
export function kdcRefusal(error: unknown): number | undefined {
  if (!(error instanceof GroupJoinError || error instanceof AceClientError)) return undefined;
  process.stderr.write(`coapsec: topic keys from the KDC: ${error.message}\n`);
  return ExitCode.Security;
}
