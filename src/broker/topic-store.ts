/**
 * The broker's topics and their state, and their persistence across a restart.
 *
 * A topic is HALF CREATED until its first publication and FULLY CREATED from then on
 * (draft-ietf-core-coap-pubsub §3.1); DELETED topics are simply gone. A publication is opaque
 * bytes plus the Content-Format it was published with: the broker stores and fans them out and
 * never interprets them, so a publication protected end to end (issue 23 item 2) passes unchanged.
 *
 * Persistence: the whole state as one JSON file, replaced atomically (write a temporary file,
 * fsync, rename, fsync the folder: credentials/durable-file.ts). Changes are coalesced for
 * `flushDelayMs` so a busy topic does not cost an fsync per publication; close() writes what is
 * pending. A crash can thus lose at most the last `flushDelayMs` of changes, never corrupt the file.
 * Or the same JSON as a state blob in a context store (src/store/state-blob.ts, issue 26), so that a
 * broker started on another node starts from it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFileDurably } from '../credentials/durable-file.js';
import type { Scheduler, Timer } from '../util/scheduler.js';
import type { TopicProperties } from './topic-properties.js';

export interface Publication {
  readonly payload: Uint8Array;
  readonly contentFormat: number | undefined;
}

export interface Topic {
  /** The last segment of the topic (configuration) resource's path. */
  readonly id: string;
  /** The last segment of the topic-data resource's path. */
  readonly dataId: string;
  properties: TopicProperties;
  /** Who created it (see clientIdentity): for the per-client topic limit and later ACLs. */
  readonly creator: string;
  /** The latest publication; undefined while HALF CREATED. */
  publication: Publication | undefined;
}

export type TopicState = 'half-created' | 'fully-created';

export const topicState = (topic: Topic): TopicState => (topic.publication ? 'fully-created' : 'half-created');

export class BrokerStateError extends Error {
  override readonly name = 'BrokerStateError';
}

interface StoredTopic {
  id: string;
  dataId: string;
  creator: string;
  properties: Omit<TopicProperties, 'initialize'> & { initialize?: string };
  publication?: { payload: string; contentFormat?: number };
}

const STATE_VERSION = 1;

/** The state as a blob in a context store (StateBlob, src/store/state-blob.ts): read when opened, written in the background. */
export interface TopicStateBlob {
  readonly description: string;
  readonly initial: Uint8Array | undefined;
  write(data: Uint8Array): void;
}

/** Where the state goes: a file, or a blob in a context store. */
export type TopicPersistence = ({ file: string } | { blob: TopicStateBlob }) & {
  flushDelayMs: number;
  scheduler: Scheduler;
};

export class TopicStore {
  private readonly byId = new Map<string, Topic>();
  private readonly byDataId = new Map<string, Topic>();
  private readonly createdBy = new Map<string, number>();
  private flushTimer: Timer | undefined;

  constructor(
    private readonly persistence: TopicPersistence | undefined,
  ) {
    let saved: { text: string; where: string } | undefined;
    if (persistence && 'blob' in persistence) {
      const initial = persistence.blob.initial;
      if (initial !== undefined) saved = { text: Buffer.from(initial).toString('utf8'), where: persistence.blob.description };
    } else if (persistence && existsSync(persistence.file)) {
      saved = { text: readText(persistence.file), where: persistence.file };
    }
    if (saved) for (const topic of parseState(saved.text, saved.where)) this.insert(topic);
  }

  get size(): number {
    return this.byId.size;
  }

  topics(): IterableIterator<Topic> {
    return this.byId.values();
  }

  byTopicId(id: string): Topic | undefined {
    return this.byId.get(id);
  }

  byTopicDataId(dataId: string): Topic | undefined {
    return this.byDataId.get(dataId);
  }

  byName(name: string): Topic | undefined {
    for (const topic of this.byId.values()) if (topic.properties.topicName === name) return topic;
    return undefined;
  }

  createdByClient(identity: string): number {
    return this.createdBy.get(identity) ?? 0;
  }

  add(topic: Topic): void {
    this.insert(topic);
    this.changed();
  }

  remove(topic: Topic): void {
    if (this.byId.get(topic.id) !== topic) return;
    this.byId.delete(topic.id);
    this.byDataId.delete(topic.dataId);
    const count = (this.createdBy.get(topic.creator) ?? 1) - 1;
    if (count > 0) this.createdBy.set(topic.creator, count);
    else this.createdBy.delete(topic.creator);
    this.changed();
  }

  /** Call after changing a topic's properties or publication in place. */
  changed(): void {
    if (!this.persistence || this.flushTimer) return;
    this.flushTimer = this.persistence.scheduler.schedule(this.persistence.flushDelayMs, () => {
      this.flushTimer = undefined;
      this.flush();
    });
  }

  /** Writes the state now if anything changed since the last write. */
  flush(): void {
    if (!this.persistence) return;
    this.flushTimer?.cancel();
    this.flushTimer = undefined;
    const stored: StoredTopic[] = [...this.byId.values()].map(toStored);
    const text = JSON.stringify({ version: STATE_VERSION, topics: stored }) + '\n';
    if ('blob' in this.persistence) this.persistence.blob.write(new TextEncoder().encode(text));
    else writeFileDurably(this.persistence.file, text);
  }

  close(): void {
    if (this.flushTimer) this.flush();
  }

  private insert(topic: Topic): void {
    this.byId.set(topic.id, topic);
    this.byDataId.set(topic.dataId, topic);
    this.createdBy.set(topic.creator, (this.createdBy.get(topic.creator) ?? 0) + 1);
  }
}

function toStored(topic: Topic): StoredTopic {
  const { initialize, ...rest } = topic.properties;
  return {
    id: topic.id,
    dataId: topic.dataId,
    creator: topic.creator,
    properties: { ...rest, ...(initialize ? { initialize: Buffer.from(initialize).toString('base64') } : {}) },
    ...(topic.publication
      ? {
          publication: {
            payload: Buffer.from(topic.publication.payload).toString('base64'),
            ...(topic.publication.contentFormat !== undefined ? { contentFormat: topic.publication.contentFormat } : {}),
          },
        }
      : {}),
  };
}

const SEGMENT = /^[A-Za-z0-9._~-]{1,64}$/;

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new BrokerStateError(`broker state ${file}: cannot read it (${(error as Error).message})`);
  }
}

/** Checks a saved state; anything malformed is a BrokerStateError naming where it came from. */
function parseState(text: string, where: string): Topic[] {
  const fail = (why: string): never => {
    throw new BrokerStateError(`broker state ${where}: ${why}`);
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return fail(`cannot read it (${(error as Error).message})`);
  }
  const root = parsed as { version?: unknown; topics?: unknown };
  if (typeof root !== 'object' || root === null || root.version !== STATE_VERSION || !Array.isArray(root.topics)) return fail(`not a version ${STATE_VERSION} broker state file`);
  const ids = new Set<string>();
  return root.topics.map((entry: unknown, index: number): Topic => {
    const t = entry as Partial<StoredTopic>;
    const where = `topic ${index}`;
    if (typeof t !== 'object' || t === null) return fail(`${where} is not an object`);
    if (typeof t.id !== 'string' || !SEGMENT.test(t.id) || typeof t.dataId !== 'string' || !SEGMENT.test(t.dataId)) return fail(`${where} has a bad id`);
    if (ids.has(t.id) || ids.has(`data/${t.dataId}`)) return fail(`${where} repeats an id`);
    ids.add(t.id).add(`data/${t.dataId}`);
    if (typeof t.creator !== 'string') return fail(`${where} has no creator`);
    const p = t.properties;
    if (typeof p !== 'object' || p === null || typeof p.topicName !== 'string' || typeof p.resourceType !== 'string' || typeof p.topicData !== 'string') return fail(`${where} lacks topic-name, topic-data or resource-type`);
    for (const field of ['topicContentFormat', 'maxSubscribers', 'observerCheck', 'expirationDate'] as const) {
      if (p[field] !== undefined && typeof p[field] !== 'number') return fail(`${where}: ${field} must be a number`);
    }
    if (p.topicType !== undefined && typeof p.topicType !== 'string') return fail(`${where}: topicType must be a string`);
    if (p.initialize !== undefined && typeof p.initialize !== 'string') return fail(`${where}: initialize must be base64`);
    const { initialize, ...rest } = p;
    const properties: TopicProperties = { ...rest, ...(initialize !== undefined ? { initialize: new Uint8Array(Buffer.from(initialize, 'base64')) } : {}) };
    let publication: Publication | undefined;
    if (t.publication !== undefined) {
      const pub = t.publication;
      if (typeof pub !== 'object' || pub === null || typeof pub.payload !== 'string' || (pub.contentFormat !== undefined && typeof pub.contentFormat !== 'number')) return fail(`${where} has a bad publication`);
      publication = { payload: new Uint8Array(Buffer.from(pub.payload, 'base64')), contentFormat: pub.contentFormat };
    }
    return { id: t.id, dataId: t.dataId, creator: t.creator, properties, publication };
  });
}
