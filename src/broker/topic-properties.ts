/**
 * Topic properties of draft-ietf-core-coap-pubsub (§2.2.1) and their CBOR encoding (§4, Table 1):
 * a CBOR map with small integer keys, carried as application/core-pubsub+cbor.
 *
 * The decoder is strict about what a peer sends (known keys only, right CBOR types, no duplicate
 * keys): §2.4.3 says a parameter that is "invalid, unrecognized" MUST get a 4.xx, so every problem
 * becomes a TopicPropertyError whose message goes into the 4.00 diagnostic payload.
 */
import { decode, encode, Tag } from 'cbor2';

/**
 * Content-Format of application/core-pubsub+cbor: "TBD606" in the draft (§6.2), the number it
 * suggests; not yet assigned by IANA, so it is a named constant here rather than in the registry.
 */
export const PUBSUB_CONTENT_FORMAT = 606;
/** application/cbor: the request format of FETCH on a topic (§2.5.2). */
export const CBOR_CONTENT_FORMAT = 60;

/** §4 Table 1. */
export const TopicKey = {
  topicName: 0,
  topicData: 1,
  resourceType: 2,
  topicContentFormat: 3,
  topicType: 4,
  expirationDate: 5,
  maxSubscribers: 6,
  observerCheck: 7,
  initialize: 8,
} as const;

/** §6.3 resource types. */
export const ResourceType = {
  broker: 'core.ps',
  collection: 'core.ps.coll',
  topic: 'core.ps.conf',
  topicData: 'core.ps.data',
} as const;

export interface TopicProperties {
  topicName: string;
  /** URI reference of the topic-data resource (the broker chooses one when the creator does not). */
  topicData?: string;
  resourceType: string;
  topicContentFormat?: number;
  topicType?: string;
  /** Seconds since the epoch (CBOR tag 1). */
  expirationDate?: number;
  maxSubscribers?: number;
  observerCheck?: number;
  initialize?: Uint8Array;
}

export type PartialTopicProperties = Partial<TopicProperties>;

export class TopicPropertyError extends Error {
  override readonly name = 'TopicPropertyError';
}

const KEY_NAMES = new Map<number, keyof TopicProperties>(Object.entries(TopicKey).map(([name, key]) => [key, name as keyof TopicProperties]));

const DECODE_OPTIONS = { preferMap: true, ignoreGlobalTags: true, rejectDuplicateKeys: true, rejectStreaming: true, rejectUndefined: true, maxDepth: 4 } as const;

function decodeItem(bytes: Uint8Array): unknown {
  try {
    return decode(bytes, DECODE_OPTIONS);
  } catch (error) {
    throw new TopicPropertyError(`invalid CBOR: ${(error as Error).message}`);
  }
}

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** One property's value, checked against its CBOR type in Table 1. */
function decodeValue(name: keyof TopicProperties, value: unknown): TopicProperties[keyof TopicProperties] {
  switch (name) {
    case 'topicName':
    case 'topicData':
    case 'resourceType':
    case 'topicType':
      if (typeof value !== 'string') throw new TopicPropertyError(`${propertyLabel(name)} must be a text string`);
      if (value.length === 0) throw new TopicPropertyError(`${propertyLabel(name)} must not be empty`);
      return value;
    case 'topicContentFormat':
      if (!isUint(value) || value > 0xffff) throw new TopicPropertyError('topic-content-format must be an unsigned integer up to 65535');
      return value;
    case 'maxSubscribers':
      if (!isUint(value)) throw new TopicPropertyError('max-subscribers must be an unsigned integer');
      return value;
    case 'observerCheck':
      if (!isUint(value) || value === 0) throw new TopicPropertyError('observer-check must be an unsigned integer greater than 0');
      return value;
    case 'expirationDate': {
      // #6.1(number): epoch-based date/time, RFC 8949 §3.4.2 (integer or float seconds).
      if (!(value instanceof Tag) || Number(value.tag) !== 1) throw new TopicPropertyError('expiration-date must be a CBOR tag 1 (epoch seconds)');
      const seconds = value.contents;
      if (typeof seconds !== 'number' || !Number.isFinite(seconds)) throw new TopicPropertyError('expiration-date must carry a number of seconds');
      return seconds;
    }
    case 'initialize':
      if (!(value instanceof Uint8Array)) throw new TopicPropertyError('initialize must be a byte string');
      return Uint8Array.from(value);
  }
}

/** A CBOR map of topic properties (any subset); unknown keys and wrong types are errors. */
export function decodeTopicProperties(bytes: Uint8Array): PartialTopicProperties {
  const item = decodeItem(bytes);
  if (!(item instanceof Map)) throw new TopicPropertyError('the topic representation must be a CBOR map');
  const properties: Record<string, unknown> = {};
  for (const [key, value] of item as Map<unknown, unknown>) {
    const name = typeof key === 'number' ? KEY_NAMES.get(key) : undefined;
    if (name === undefined) throw new TopicPropertyError(`unrecognized topic property ${String(key)}`);
    properties[name] = decodeValue(name, value);
  }
  return properties as PartialTopicProperties;
}

/** The FETCH filter of §2.5.2: a CBOR array of property keys. */
export function decodePropertyKeyList(bytes: Uint8Array): Array<keyof TopicProperties> {
  const item = decodeItem(bytes);
  if (!Array.isArray(item)) throw new TopicPropertyError('the FETCH payload must be a CBOR array of topic property keys');
  return item.map((key: unknown) => {
    const name = typeof key === 'number' ? KEY_NAMES.get(key) : undefined;
    if (name === undefined) throw new TopicPropertyError(`unrecognized topic property ${String(key)}`);
    return name;
  });
}

function encodedValue(name: keyof TopicProperties, value: unknown): unknown {
  if (name === 'expirationDate') return new Tag(1, value);
  if (name === 'initialize') {
    const bytes = value as Uint8Array;
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  return value;
}

/** The CBOR map of the given properties (only those present), keys in Table 1 order. */
export function encodeTopicProperties(properties: PartialTopicProperties, only?: ReadonlyArray<keyof TopicProperties>): Uint8Array {
  const map = new Map<number, unknown>();
  for (const [name, key] of Object.entries(TopicKey) as Array<[keyof TopicProperties, number]>) {
    if (only && !only.includes(name)) continue;
    const value = properties[name];
    if (value !== undefined) map.set(key, encodedValue(name, value));
  }
  return encode(map, { cde: true });
}

/** The CBOR encoding of one property's value, to compare a filter's value with a topic's (§2.4.2). */
export function encodedPropertyValue(name: keyof TopicProperties, value: unknown): Buffer {
  return Buffer.from(encode(encodedValue(name, value), { cde: true }));
}

/** The property's name as the draft writes it ("topic-content-format"). */
export function propertyLabel(name: keyof TopicProperties): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
