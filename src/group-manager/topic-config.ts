/**
 * The `coapsec kdc` configuration (docs/pubsub.md): the Group Manager's fields (config.ts:
 * audience, AS, issuer, the key the AS seals this KDC's tokens with, the state file) and
 *
 *   "topics": ["kitchen", …]     the topics' security groups, made when the state file does not exist yet
 *
 * The state file (secrets: the topics' group keys) is rewritten after every join, leave and rekey.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFileDurably } from '../credentials/durable-file.js';
import { OscoreConfigError } from '../oscore/errors.js';
import { PubSubKeyError } from '../pubsub-protection/key-material.js';
import { GroupManagerConfigError, loadGroupManagerConfig, type GroupManagerConfig } from './config.js';
import { TopicKdc, type TopicKdcOptions, type TopicKdcState } from './topic-groups.js';

export interface TopicKdcConfig extends Omit<GroupManagerConfig, 'importPaths'> {
  readonly topics: readonly string[];
}

export function loadTopicKdcConfig(file: string): TopicKdcConfig {
  const { importPaths: _, ...common } = loadGroupManagerConfig(file);
  const topics = (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>)['topics'];
  if (!Array.isArray(topics) || topics.length === 0 || topics.some((t) => typeof t !== 'string')) throw new GroupManagerConfigError(`${file}: "topics" must be a non-empty list of topic names`);
  return { ...common, topics: topics as string[] };
}

/** The KDC from its state file, or with new topic groups on the first run; every change written back. */
export function openTopicKdc(config: TopicKdcConfig, options: Omit<TopicKdcOptions, 'onChange'> = {}): TopicKdc {
  const save = (state: TopicKdcState): void => writeFileDurably(config.statePath, `${JSON.stringify(state, null, 2)}\n`);
  try {
    if (existsSync(config.statePath)) return new TopicKdc(JSON.parse(readFileSync(config.statePath, 'utf8')) as TopicKdcState, { ...options, onChange: save });
    const kdc = TopicKdc.create(config.topics, { ...options, onChange: save });
    save(kdc.toJSON());
    return kdc;
  } catch (error) {
    if (error instanceof SyntaxError || error instanceof OscoreConfigError || error instanceof PubSubKeyError) throw new GroupManagerConfigError(`${config.statePath}: ${error.message}`);
    throw error;
  }
}
