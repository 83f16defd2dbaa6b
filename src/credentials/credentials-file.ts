/**
 * coapsec's JSON credentials file (documented in docs/credentials.md): client OSCORE contexts
 * chosen by request URI, server contexts keyed by Recipient ID with a peer name for authorization,
 * and where Sender Sequence Numbers are kept. Validation is strict — an unknown or misspelt field
 * in a security configuration is an error, not a silent default — and every error names the file
 * and the JSON path of the field, never a secret value.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CredentialsError } from './errors.js';
import {
  type KudosContextConfig,
  type OscoreContextConfig,
  OSCORE_DEFAULTS,
  bytesToHex,
  checkOscoreContext,
  parseHex,
} from './oscore-params.js';
import { readEdhocSection, type EdhocCredentials } from './edhoc-entries.js';
import { JsonFields } from './json-fields.js';
import type { GroupMemberFile } from '../group-oscore/manager.js';
import { checkMemberFile } from '../group-oscore/member-file.js';
import { type UriPattern, parseUriPattern, patternSpecificity, uriMatchesPattern } from './uri-pattern.js';

/** A client context and the request URIs it protects. */
export interface ClientOscoreEntry {
  /** The pattern as written, e.g. "coap://[2001:db8::1]/sensors/*". */
  match: string;
  pattern: UriPattern;
  context: OscoreContextConfig;
}

/** A server-side context, found by the 'kid' (the client's Sender ID = our Recipient ID). */
export interface ServerRecipient {
  recipientId: Uint8Array;
  /** The authenticated peer's name, for authorization decisions. Also in context.name. */
  name: string;
  context: OscoreContextConfig;
}

export interface Credentials {
  /** Absolute path of the file these came from. */
  file: string;
  /** Absolute; where sequence numbers are persisted. Default: "state" next to the file. */
  stateDirectory: string;
  oscore: ClientOscoreEntry[];
  recipients: ServerRecipient[];
  /** EDHOC identity, suites, methods and trusted peers (the "edhoc" section), when given. */
  edhoc?: EdhocCredentials;
  /** Group OSCORE memberships: member files as the Group Manager issued them (docs/group-oscore.md). */
  groups: GroupMemberFile[];
  /** Things that were read but not applied (e.g. the reserved "dtls" section), or that deserve a look. */
  warnings: string[];
}

const TOP_LEVEL_FIELDS = ['$comment', 'stateDirectory', 'oscore', 'recipients', 'groups', 'dtls', 'edhoc'];
const CLIENT_ENTRY_FIELDS = ['$comment', 'match', 'context'];
const RECIPIENT_FIELDS = ['$comment', 'name', 'context'];
const CONTEXT_FIELDS = [
  '$comment',
  'masterSecret',
  'masterSalt',
  'idContext',
  'senderId',
  'recipientId',
  'recipientIds',
  'aead',
  'hkdf',
  'replayWindow',
  'echoOnRestart',
  'rederivation',
  'sequenceSaveInterval',
  'name',
  'kudos',
];
const KUDOS_FIELDS = ['$comment', 'maxMessages', 'maxAgeSeconds'];

/** Reads and validates a credentials file. Throws CredentialsError. */
export function loadCredentials(path: string): Credentials {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CredentialsError(`${path}: cannot read the credentials file: ${(error as Error).message}`, path);
  }
  return parseCredentials(text, file);
}

/** Validates the text of a credentials file; `file` names it in errors and anchors relative paths. */
export function parseCredentials(text: string, file: string): Credentials {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const { where, reason } = describeJsonError(text, error as Error);
    throw new CredentialsError(`${file}:${where}: not valid JSON: ${reason}`, file);
  }
  return new Reader(file).credentials(json);
}

/** The client entry whose pattern matches `uri` most specifically (longest pattern wins). */
export function matchClientContext(credentials: Credentials, uri: string): ClientOscoreEntry | undefined {
  let best: ClientOscoreEntry | undefined;
  for (const entry of credentials.oscore) {
    if (!uriMatchesPattern(uri, entry.pattern)) continue;
    if (best === undefined || patternSpecificity(entry.pattern) > patternSpecificity(best.pattern)) best = entry;
  }
  return best;
}

/** The server context for a request's 'kid', or undefined (the server then answers 4.01). */
export function findServerRecipient(credentials: Credentials, recipientId: Uint8Array): ServerRecipient | undefined {
  const key = bytesToHex(recipientId);
  return credentials.recipients.find((recipient) => bytesToHex(recipient.recipientId) === key);
}

class Reader extends JsonFields {
  credentials(json: unknown): Credentials {
    const top = this.object(json, '(top level)', TOP_LEVEL_FIELDS);
    const stateDirectory = top.stateDirectory === undefined ? 'state' : this.string(top.stateDirectory, 'stateDirectory');
    if (stateDirectory === '') this.fail('stateDirectory', 'must not be empty');

    const oscore = top.oscore === undefined ? [] : this.array(top.oscore, 'oscore').map((entry, i) => this.clientEntry(entry, `oscore[${i}]`));
    const seenPatterns = new Map<string, string>();
    oscore.forEach((entry, i) => {
      const key = JSON.stringify(entry.pattern);
      const earlier = seenPatterns.get(key);
      if (earlier !== undefined) this.fail(`oscore[${i}].match`, `the same pattern as ${earlier}.match`);
      seenPatterns.set(key, `oscore[${i}]`);
    });

    const recipients: ServerRecipient[] = [];
    if (top.recipients !== undefined) {
      const byId = this.object(top.recipients, 'recipients');
      /** Each recipient ID in lower-case hex → the key that gave it (its path is made only for an error). */
      const seenIds = new Map<string, string>();
      for (const key in byId) {
        if (key === '$comment') continue;
        const path = recipientPath(key);
        const recipient = this.recipient(key, byId[key], path);
        const normalised = key.toLowerCase(); // the ID in hex (recipient() parsed it)
        const earlier = seenIds.get(normalised);
        if (earlier !== undefined) this.fail(path, `the same recipient ID as ${recipientPath(earlier)}`);
        seenIds.set(normalised, key);
        recipients.push(recipient);
      }
    }

    if (top.dtls !== undefined) {
      this.object(top.dtls, 'dtls');
      this.warnings.push(`${this.file}: dtls: reserved for DTLS credentials; this version does not read it yet`);
    }
    const edhoc = top.edhoc === undefined ? undefined : readEdhocSection(this, top.edhoc, dirname(this.file));
    return {
      file: this.file,
      stateDirectory: resolve(dirname(this.file), stateDirectory),
      oscore,
      recipients,
      ...(edhoc !== undefined ? { edhoc } : {}),
      groups: top.groups === undefined ? [] : this.array(top.groups, 'groups').map((entry, i) => checkMemberFile(entry, `groups[${i}]`, (path, message) => this.fail(path, message))),
      warnings: this.warnings,
    };
  }

  private clientEntry(json: unknown, path: string): ClientOscoreEntry {
    const entry = this.object(json, path, CLIENT_ENTRY_FIELDS);
    if (entry.match === undefined) this.fail(`${path}.match`, 'is missing (a URI pattern such as "coap://host/*")');
    const match = this.string(entry.match, `${path}.match`);
    let pattern: UriPattern;
    try {
      pattern = parseUriPattern(match);
    } catch (error) {
      return this.fail(`${path}.match`, (error as Error).message);
    }
    if (entry.context === undefined) this.fail(`${path}.context`, 'is missing');
    return { match, pattern, context: this.context(entry.context, `${path}.context`, undefined) };
  }

  private recipient(key: string, json: unknown, path: string): ServerRecipient {
    const recipientId = this.plainHex(key) ?? parseHex(key);
    if (!(recipientId instanceof Uint8Array)) {
      return this.fail(path, `the key must be the recipient ID in hex ("" for the empty ID): ${recipientId.problem}`);
    }
    const entry = this.object(json, path, RECIPIENT_FIELDS);
    if (entry.name === undefined) this.fail(`${path}.name`, 'is missing (the peer name used for authorization)');
    const name = this.string(entry.name, `${path}.name`);
    if (name === '') this.fail(`${path}.name`, 'must not be empty');
    if (entry.context === undefined) this.fail(`${path}.context`, 'is missing');
    const context = this.context(entry.context, `${path}.context`, recipientId);
    if (context.name !== undefined && context.name !== name) this.fail(`${path}.context.name`, 'differs from the entry\'s "name"; give it once');
    context.name = name;
    return { recipientId, name, context };
  }

  /** `recipientIdFromKey`: on the server side the ID is the entry's key and must not be repeated. */
  private context(json: unknown, path: string, recipientIdFromKey: Uint8Array | undefined): OscoreContextConfig {
    const ctx = this.object(json, path, CONTEXT_FIELDS);
    const required = (field: string): unknown => (ctx[field] === undefined ? this.fail(`${path}.${field}`, 'is missing') : ctx[field]);

    let recipientIds: Uint8Array[];
    if (recipientIdFromKey !== undefined) {
      for (const field of ['recipientId', 'recipientIds']) {
        if (ctx[field] !== undefined) this.fail(`${path}.${field}`, 'not allowed here: the recipient ID is the key of this entry');
      }
      recipientIds = [recipientIdFromKey];
    } else if (ctx.recipientId !== undefined && ctx.recipientIds !== undefined) {
      return this.fail(`${path}.recipientIds`, 'give either "recipientId" or "recipientIds", not both');
    } else if (ctx.recipientIds !== undefined) {
      recipientIds = this.array(ctx.recipientIds, `${path}.recipientIds`).map((id, i) => this.bytes(id, `${path}.recipientIds[${i}]`));
    } else {
      recipientIds = [this.bytes(required('recipientId'), `${path}.recipientId`)];
    }

    const config: OscoreContextConfig = {
      masterSecret: this.bytes(required('masterSecret'), `${path}.masterSecret`),
      masterSalt: ctx.masterSalt === undefined ? OSCORE_DEFAULTS.masterSalt : this.bytes(ctx.masterSalt, `${path}.masterSalt`),
      senderId: this.bytes(required('senderId'), `${path}.senderId`),
      recipientIds,
      aead: ctx.aead === undefined ? OSCORE_DEFAULTS.aead : this.algorithm(ctx.aead, `${path}.aead`, 'aead'),
      hkdf: ctx.hkdf === undefined ? OSCORE_DEFAULTS.hkdf : this.algorithm(ctx.hkdf, `${path}.hkdf`, 'hkdf'),
      replayWindow: ctx.replayWindow === undefined ? OSCORE_DEFAULTS.replayWindow : this.integer(ctx.replayWindow, `${path}.replayWindow`),
      echoOnRestart: ctx.echoOnRestart === undefined ? OSCORE_DEFAULTS.echoOnRestart : this.boolean(ctx.echoOnRestart, `${path}.echoOnRestart`),
      rederivation: ctx.rederivation === undefined ? OSCORE_DEFAULTS.rederivation : this.boolean(ctx.rederivation, `${path}.rederivation`),
      sequenceSaveInterval:
        ctx.sequenceSaveInterval === undefined
          ? OSCORE_DEFAULTS.sequenceSaveInterval
          : this.integer(ctx.sequenceSaveInterval, `${path}.sequenceSaveInterval`),
    };
    if (ctx.idContext !== undefined) config.idContext = this.bytes(ctx.idContext, `${path}.idContext`);
    if (ctx.name !== undefined) config.name = this.string(ctx.name, `${path}.name`);
    if (ctx.kudos !== undefined) config.kudos = this.kudos(ctx.kudos, `${path}.kudos`);

    const [problem] = checkOscoreContext(config);
    if (problem !== undefined) {
      let field: string = problem.field;
      if (problem.field === 'recipientIds') {
        if (recipientIdFromKey !== undefined) field = '';
        else if (ctx.recipientIds === undefined) field = 'recipientId';
        else field = problem.index === undefined ? 'recipientIds' : `recipientIds[${problem.index}]`;
      }
      this.fail(field === '' ? path.slice(0, path.lastIndexOf('.')) : `${path}.${field}`, problem.message);
    }
    return config;
  }

  private kudos(json: unknown, path: string): KudosContextConfig {
    const entry = this.object(json, path, KUDOS_FIELDS);
    const config: KudosContextConfig = {};
    for (const field of ['maxMessages', 'maxAgeSeconds'] as const) {
      if (entry[field] === undefined) continue;
      const value = this.integer(entry[field], `${path}.${field}`);
      if (value < 1) this.fail(`${path}.${field}`, 'must be at least 1');
      config[field] = value;
    }
    return config;
  }
}

const recipientPath = (key: string): string => `recipients[${JSON.stringify(key)}]`;

/**
 * Where JSON.parse failed, as "line:column", and why, without quoting the text: V8's message can
 * carry an excerpt of the input, which here may be a master secret. V8 does not always say the
 * position, so it is found by bisection: a prefix up to the error parses or fails only for being
 * incomplete; every longer prefix fails for a real reason.
 */
function describeJsonError(text: string, error: Error): { where: string; reason: string } {
  const reason = error.message
    .replace(/ in JSON at position \d+.*$/s, '')
    .replace(/, \.\.\.".*$/s, '')
    .replace(/, ".*$/s, '')
    .replace(/ at position \d+.*$/s, '');
  const failsForReal = (length: number): boolean => {
    try {
      JSON.parse(text.slice(0, length));
      return false;
    } catch (prefixError) {
      const message = (prefixError as Error).message;
      if (message.includes('end of JSON input')) return false;
      const position = /at position (\d+)/.exec(message);
      return !(position && Number(position[1]) >= length);
    }
  };
  let low = 0;
  let high = text.length; // invariant: failsForReal(high) or high = text.length
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if (failsForReal(middle)) high = middle;
    else low = middle + 1;
  }
  const offset = Math.max(0, Math.min(low, text.length) - 1);
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { where: `${line}:${offset - before.lastIndexOf('\n')}`, reason };
}
