/** --protect KEYFILE for publish and subscribe: a member key file from `coapsec pubsub-keys issue`. */
import { readFileSync } from 'node:fs';
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
