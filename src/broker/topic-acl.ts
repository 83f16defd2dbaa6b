/**
 * Topic-level access control on the authenticated identity (issue 23 item 3, draft §5: access
 * control "SHOULD be enforced in a fine-grained fashion" for topic administration, publication and
 * subscription). A JSON document, default deny:
 *
 *   {
 *     "create": ["dtls:psk:admin"],             who may create topics
 *     "list":   ["*"],                          who may list and filter the collection
 *     "topics": {
 *       "kitchen": { "publish": ["oscore:sensor-1"], "subscribe": ["*"], "manage": ["dtls:psk:admin"] },
 *       "*":       { "subscribe": ["oscore:display"] }
 *     }
 *   }
 *
 * Identities are clientIdentity() strings ("oscore:PEER", "dtls:MODE:IDENTITY", "address:IP");
 * "*" is anyone. "publish" covers PUT and DELETE of the topic-data, "subscribe" covers GET with and
 * without Observe, "manage" covers reading, updating and deleting the configuration. The creator of
 * a topic may always manage it. A topic's rules come from its name's entry, else from "*".
 */
import { readFileSync } from 'node:fs';
import type { BrokerAuthorizer, BrokerOperation } from './broker.js';

type Permission = 'publish' | 'subscribe' | 'manage';
type TopicRules = Partial<Record<Permission, readonly string[]>>;

export interface TopicAcl {
  create?: readonly string[];
  list?: readonly string[];
  topics?: Readonly<Record<string, TopicRules>>;
}

export class TopicAclError extends Error {
  override readonly name = 'TopicAclError';
}

const PERMISSION_OF: Record<Exclude<BrokerOperation, 'create' | 'list'>, Permission> = {
  publish: 'publish',
  'delete-data': 'publish',
  subscribe: 'subscribe',
  'read-data': 'subscribe',
  read: 'manage',
  update: 'manage',
  delete: 'manage',
};

const allows = (list: readonly string[] | undefined, identity: string): boolean => list !== undefined && (list.includes('*') || list.includes(identity));

export function topicAclAuthorizer(acl: TopicAcl): BrokerAuthorizer {
  return ({ operation, topic, identity }) => {
    if (operation === 'create' || operation === 'list') return allows(acl[operation], identity);
    if (!topic) return false;
    const permission = PERMISSION_OF[operation];
    if (permission === 'manage' && topic.creator === identity) return true;
    const name = topic.properties.topicName;
    const rules = acl.topics && Object.hasOwn(acl.topics, name) ? acl.topics[name] : acl.topics?.['*'];
    return allows(rules?.[permission], identity);
  };
}

/** Reads and checks an ACL file; a mistake is a TopicAclError naming the file and the place. */
export function loadTopicAcl(file: string): TopicAcl {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new TopicAclError(`topic ACL ${file}: ${(error as Error).message}`);
  }
  const fail = (why: string): never => {
    throw new TopicAclError(`topic ACL ${file}: ${why}`);
  };
  const identities = (value: unknown, where: string): readonly string[] => {
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v !== '')) return fail(`${where} must be a list of identities`);
    return value as string[];
  };
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fail('must be a JSON object');
  const root = parsed as Record<string, unknown>;
  for (const key of Object.keys(root)) if (!['create', 'list', 'topics'].includes(key)) fail(`unknown key "${key}"`);
  const acl: { create?: readonly string[]; list?: readonly string[]; topics?: Record<string, TopicRules> } = {};
  if (root['create'] !== undefined) acl.create = identities(root['create'], 'create');
  if (root['list'] !== undefined) acl.list = identities(root['list'], 'list');
  if (root['topics'] !== undefined) {
    const topics = root['topics'];
    if (typeof topics !== 'object' || topics === null || Array.isArray(topics)) return fail('topics must be an object of topic names');
    acl.topics = Object.create(null) as Record<string, TopicRules>;
    for (const [name, rules] of Object.entries(topics)) {
      if (typeof rules !== 'object' || rules === null || Array.isArray(rules)) return fail(`topics.${name} must be an object`);
      const checked: TopicRules = {};
      for (const [permission, list] of Object.entries(rules)) {
        if (permission !== 'publish' && permission !== 'subscribe' && permission !== 'manage') return fail(`topics.${name}: unknown permission "${permission}" (publish, subscribe, manage)`);
        checked[permission] = identities(list, `topics.${name}.${permission}`);
      }
      acl.topics[name] = checked;
    }
  }
  return acl;
}
