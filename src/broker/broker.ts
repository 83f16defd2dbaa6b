/**
 * A publish-subscribe broker (draft-ietf-core-coap-pubsub) on a CoapServer's public resource API.
 *
 *   /ps                 topic collection (rt core.ps core.ps.coll): GET, FETCH, POST (§2.4)
 *   /ps/<id>            topic configuration (rt core.ps.conf): GET, FETCH, POST, iPATCH, DELETE (§2.5)
 *   /ps/data/<id>       topic data (rt core.ps.data): PUT, GET (+ Observe), DELETE (§3.2, §3.3)
 *
 * Publications are opaque: stored as received and returned with the Content-Format they came with,
 * so an end-to-end protected publication (issue 23 item 2) passes through unread. Every operation
 * goes through `authorize` with the requester's authenticated identity (DTLS, OSCORE), the hook
 * for per-topic ACLs (item 3). One broker can serve on several servers (`serveOn`: a plain/OSCORE
 * listener and a DTLS one, say): they share the topics, and a publication reaches the subscribers
 * of every listener. Notifications are Non-confirmable ("mostly NON", §3.2.3): each
 * publication is rendered and sent to every subscriber as it arrives, in order; the registry
 * still sends a CON from time to time (RFC 7641 §4.5).
 */
import { randomBytes } from 'node:crypto';
import { ResponseCode } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import { filterLinks, serializeLinks, type Link } from '../coap/link-format.js';
import { encodeString, encodeUint } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { EndpointContext } from '../exchange/context.js';
import { ObserveRegistry, type Observer } from '../server/observe.js';
import type { CoapRequest, CoapResponse } from '../server/resource.js';
import type { CoapServer } from '../server/server.js';
import type { Scheduler, Timer } from '../util/scheduler.js';
import { clientIdentity, DEFAULT_BROKER_LIMITS, isAuthenticated, PublicationRateLimiter, type BrokerLimits } from './limits.js';
import {
  CBOR_CONTENT_FORMAT,
  decodePropertyKeyList,
  decodeTopicProperties,
  encodedPropertyValue,
  encodeTopicProperties,
  propertyLabel,
  PUBSUB_CONTENT_FORMAT,
  ResourceType,
  TopicPropertyError,
  type PartialTopicProperties,
  type TopicProperties,
} from './topic-properties.js';
import { TopicStore, type Topic, type TopicStateBlob } from './topic-store.js';

export type BrokerOperation = 'list' | 'create' | 'read' | 'update' | 'delete' | 'publish' | 'read-data' | 'subscribe' | 'delete-data';

export interface AuthorizationRequest {
  readonly operation: BrokerOperation;
  /** Undefined for 'list' and 'create'. */
  readonly topic: Topic | undefined;
  /** See clientIdentity: "oscore:<peer>", "dtls:<mode>:<identity>" or "address:<ip>". */
  readonly identity: string;
  readonly context: EndpointContext;
}

/**
 * True to allow. False gets 4.03 (§2.4.3, §2.5.1: "such as 4.03 Forbidden") when the client was
 * authenticated (OSCORE, DTLS), and 4.01 when it was not: RFC 7252 §5.9.2.2, it "SHOULD NOT repeat
 * the request without first improving its authentication status" (ACE's Unauthorized Resource
 * Request, RFC 9200 §5.2, answers the same).
 */
export type BrokerAuthorizer = (request: AuthorizationRequest) => boolean;

export interface BrokerOptions {
  /** Path of the topic collection. Default "/ps". */
  path?: string;
  limits?: Partial<BrokerLimits>;
  /** Keep topics (configuration and latest publication) in this JSON file across restarts. */
  stateFile?: string;
  /**
   * Instead of `stateFile`: the same state as a blob in a context store (openStateBlob,
   * src/store/state-blob.ts), so that a broker started on another node starts from it.
   */
  state?: TopicStateBlob;
  /** Changes are written at most this long after they happen (and on close). Default 50 ms. */
  flushDelayMs?: number;
  authorize?: BrokerAuthorizer;
  /** Wall-clock milliseconds, for expiration-date. Default Date.now. */
  now?: () => number;
}

/** §2.2.1: observer-check defaults to RFC 7641's 24 hours. */
const DEFAULT_OBSERVER_CHECK = 86400;
const IMMUTABLE: ReadonlyArray<keyof TopicProperties> = ['topicName', 'topicData', 'resourceType'];
const SEGMENT = /^[A-Za-z0-9._~-]{1,64}$/;
/** Expiration is checked at least this often even when the nearest expiry is further away. */
const MAX_EXPIRY_TIMER_MS = 3600_000;

/** A GET with Observe 0 (register, RFC 7641 §2), however the 0 is encoded. */
const registers = (request: CoapRequest): boolean => request.option(OptionNumber.Observe)?.every((byte) => byte === 0) ?? false;

class Refusal extends Error {
  constructor(
    readonly response: CoapResponse,
  ) {
    super(typeof response.payload === 'string' ? response.payload : 'refused');
  }
}
const refuse = (code: number, why: string, extra: Partial<CoapResponse> = {}): never => {
  throw new Refusal({ code, payload: why, contentFormat: ContentFormat.TextPlain, ...extra });
};

export class PubSubBroker {
  readonly limits: BrokerLimits;
  readonly store: TopicStore;
  private readonly base: string;
  private readonly rate: PublicationRateLimiter;
  private readonly authorize: BrokerAuthorizer;
  private readonly now: () => number;
  /** The servers the broker's resources are on; the first one's scheduler runs its timers. */
  private readonly servers: CoapServer[] = [];
  /**
   * Observers told to leave after max-subscribers shrank: their next rendering is a final 4.04.
   * Keyed by observerKey within one server, since two listeners may see the same client address.
   */
  private readonly evicted = new Map<CoapServer, Map<string, string>>();
  private readonly scheduler: Scheduler;
  private expiryTimer: Timer | undefined;
  /** Wall-clock ms of the earliest expiration-date: requests before it skip the expiry scan. */
  private nextExpiry = Infinity;

  constructor(
    server: CoapServer,
    options: BrokerOptions = {},
  ) {
    this.base = '/' + (options.path ?? '/ps').replace(/^\/+|\/+$/g, '');
    this.limits = { ...DEFAULT_BROKER_LIMITS, ...options.limits };
    this.now = options.now ?? Date.now;
    const scheduler = (this.scheduler = server.endpoint.scheduler);
    this.rate = new PublicationRateLimiter(this.limits.publicationsPerSecond, this.limits.publicationBurst, () => scheduler.now());
    this.authorize = options.authorize ?? (() => true);
    const flushDelayMs = options.flushDelayMs ?? 50;
    this.store = new TopicStore(
      options.state ? { blob: options.state, flushDelayMs, scheduler } : options.stateFile ? { file: options.stateFile, flushDelayMs, scheduler } : undefined,
    );
    this.serveOn(server);
    server.onClose(() => this.close());
    this.scheduleExpiry();
  }

  /**
   * Serves the same topics on another server too (a DTLS listener beside the plain/OSCORE one):
   * clients of either may publish and subscribe, and every subscriber gets every publication.
   */
  serveOn(server: CoapServer): void {
    this.servers.push(server);
    this.evicted.set(server, new Map());
    const guard = (handler: (request: CoapRequest) => CoapResponse) => (request: CoapRequest): CoapResponse => {
      try {
        this.expire();
        return handler(request);
      } catch (error) {
        if (error instanceof Refusal) return error.response;
        if (error instanceof TopicPropertyError) return { code: ResponseCode.BadRequest, payload: error.message, contentFormat: ContentFormat.TextPlain };
        throw error;
      }
    };
    server.add({
      path: this.base,
      subtree: true,
      rt: [ResourceType.broker, ResourceType.collection],
      ct: ContentFormat.LinkFormat,
      handlers: {
        GET: guard((r) => (r.subPath.length === 0 ? this.listTopics(r) : this.readTopic(r))),
        FETCH: guard((r) => (r.subPath.length === 0 ? this.filterTopics(r) : this.readTopicPart(r))),
        POST: guard((r) => (r.subPath.length === 0 ? this.createTopic(r) : this.replaceTopic(r))),
        IPATCH: guard((r) => this.patchTopic(r)),
        DELETE: guard((r) => this.deleteTopic(r)),
      },
      listLinks: () => [...this.store.topics()].map((t) => ({ path: this.topicPath(t), rt: ResourceType.topic, ct: PUBSUB_CONTENT_FORMAT })),
    });
    server.add({
      path: `${this.base}/data`,
      subtree: true,
      hidden: true,
      observable: { notifications: 'non' },
      handlers: {
        PUT: guard((r) => this.publish(r)),
        GET: guard((r) => this.readData(r, server)),
        DELETE: guard((r) => this.deleteData(r)),
      },
      listLinks: () => this.dataLinks(),
    });
  }

  /** Writes pending state and stops the expiry timer (runs when the server closes). */
  close(): void {
    this.expiryTimer?.cancel();
    this.expiryTimer = undefined;
    this.store.close();
  }

  topicPath(topic: Topic): string {
    return `${this.base}/${topic.id}`;
  }

  dataPath(topic: Topic): string {
    return `${this.base}/data/${topic.dataId}`;
  }

  // --- topic collection (§2.4) -------------------------------------------------------------

  private listTopics(request: CoapRequest): CoapResponse {
    this.check('list', undefined, request);
    // §2.3.4: the collection MUST support the rt=core.ps.data query, which lists topic-data links.
    const links = request.query.length === 0 ? this.configLinks() : filterLinks([...this.configLinks(), ...this.dataLinksAsLinks()], [...request.query]);
    return { code: ResponseCode.Content, contentFormat: ContentFormat.LinkFormat, payload: serializeLinks(links) };
  }

  /** §2.4.2: a topic matches when each property of the filter is present with the same value. */
  private filterTopics(request: CoapRequest): CoapResponse {
    this.check('list', undefined, request);
    this.requireFormat(request, PUBSUB_CONTENT_FORMAT);
    const filter = decodeTopicProperties(request.payload);
    const entries = Object.entries(filter) as Array<[keyof TopicProperties, unknown]>;
    const matching = [...this.store.topics()].filter((topic) =>
      entries.every(([name, value]) => topic.properties[name] !== undefined && encodedPropertyValue(name, topic.properties[name]).equals(encodedPropertyValue(name, value))),
    );
    return { code: ResponseCode.Content, contentFormat: ContentFormat.LinkFormat, payload: serializeLinks(matching.map((t) => ({ href: this.topicPath(t), attributes: [] }))) };
  }

  /** §2.4.3. */
  private createTopic(request: CoapRequest): CoapResponse {
    this.check('create', undefined, request);
    this.requireFormat(request, PUBSUB_CONTENT_FORMAT);
    const requested = decodeTopicProperties(request.payload);
    if (requested.topicName === undefined || requested.resourceType === undefined) refuse(ResponseCode.BadRequest, 'topic-name and resource-type are required');
    if (this.store.byName(requested.topicName!)) refuse(ResponseCode.BadRequest, `topic-name "${requested.topicName}" is already in use`);
    const creator = clientIdentity(request.context);
    if (this.store.size >= this.limits.maxTopics) refuse(ResponseCode.Forbidden, `the broker holds its maximum of ${this.limits.maxTopics} topics`);
    if (this.store.createdByClient(creator) >= this.limits.maxTopicsPerClient) {
      refuse(ResponseCode.Forbidden, `this client has created its maximum of ${this.limits.maxTopicsPerClient} topics`);
    }
    const dataId = requested.topicData === undefined ? this.freshId((id) => this.store.byTopicDataId(id) === undefined) : this.requestedDataId(requested.topicData);
    const id = this.freshId((id) => this.store.byTopicId(id) === undefined && id !== 'data');
    const properties = this.settle({ ...requested, topicName: requested.topicName!, resourceType: requested.resourceType!, topicData: `${this.base}/data/${dataId}` });
    const topic: Topic = { id, dataId, creator, properties, publication: undefined };
    // §2.4.3: "initialize" pre-populates the topic-data resource: the topic is FULLY CREATED at once.
    if (properties.initialize) this.checkedPublication(topic, properties.initialize, properties.topicContentFormat);
    this.store.add(topic);
    this.scheduleExpiry();
    return {
      code: ResponseCode.Created,
      contentFormat: PUBSUB_CONTENT_FORMAT,
      payload: encodeTopicProperties(properties),
      options: [...this.topicPath(topic).split('/').filter(Boolean)].map((segment) => ({ number: OptionNumber.LocationPath, value: encodeString(segment) })),
    };
  }

  // --- topic configuration (§2.5) ----------------------------------------------------------

  private readTopic(request: CoapRequest): CoapResponse {
    const topic = this.topicAt(request);
    this.check('read', topic, request);
    return { code: ResponseCode.Content, contentFormat: PUBSUB_CONTENT_FORMAT, payload: encodeTopicProperties(topic.properties) };
  }

  /** §2.5.2: the request is a CBOR array of property keys (application/cbor). */
  private readTopicPart(request: CoapRequest): CoapResponse {
    const topic = this.topicAt(request);
    this.check('read', topic, request);
    this.requireFormat(request, CBOR_CONTENT_FORMAT);
    const keys = decodePropertyKeyList(request.payload);
    return { code: ResponseCode.Content, contentFormat: PUBSUB_CONTENT_FORMAT, payload: encodeTopicProperties(topic.properties, keys) };
  }

  /** §2.5.3: POST replaces the configuration; optional properties left out return to defaults. */
  private replaceTopic(request: CoapRequest): CoapResponse {
    const topic = this.topicAt(request);
    this.check('update', topic, request);
    this.requireFormat(request, PUBSUB_CONTENT_FORMAT);
    const requested = decodeTopicProperties(request.payload);
    this.checkImmutable(topic, requested);
    const { topicName, topicData, resourceType } = topic.properties;
    return this.reconfigure(topic, this.settle({ ...requested, topicName, topicData, resourceType }));
  }

  /** §2.5.4: iPATCH changes only the properties it names. */
  private patchTopic(request: CoapRequest): CoapResponse {
    if (request.subPath.length === 0) refuse(ResponseCode.MethodNotAllowed, 'iPATCH applies to a topic, not to the collection');
    const topic = this.topicAt(request);
    this.check('update', topic, request);
    this.requireFormat(request, PUBSUB_CONTENT_FORMAT);
    const requested = decodeTopicProperties(request.payload);
    this.checkImmutable(topic, requested);
    return this.reconfigure(topic, this.settle({ ...topic.properties, ...requested }));
  }

  /** §2.5.5: the topic and its topic-data go; subscribers get a final 4.04. */
  private deleteTopic(request: CoapRequest): CoapResponse {
    if (request.subPath.length === 0) refuse(ResponseCode.MethodNotAllowed, 'DELETE applies to a topic, not to the collection');
    const topic = this.topicAt(request);
    this.check('delete', topic, request);
    this.removeTopic(topic);
    return { code: ResponseCode.Deleted };
  }

  // --- topic data (§3.2, §3.3) -------------------------------------------------------------

  /** §3.2.1: 2.01 for the first publication (HALF → FULLY CREATED), 2.04 afterwards. */
  private publish(request: CoapRequest): CoapResponse {
    const topic = this.dataTopicAt(request);
    this.check('publish', topic, request);
    const wait = this.rate.take(clientIdentity(request.context));
    // §3.4 / RFC 8516: Max-Age says when the publisher may try again.
    if (wait > 0) refuse(ResponseCode.TooManyRequests, 'publishing too fast', { maxAge: wait });
    const first = topic.publication === undefined;
    this.checkedPublication(topic, request.payload, request.contentFormat);
    this.store.changed();
    for (const server of this.servers) server.changed(this.dataPath(topic));
    return { code: first ? ResponseCode.Created : ResponseCode.Changed };
  }

  /** §3.3 read and §3.2.2 subscribe: 4.04 until the topic is FULLY CREATED. */
  private readData(request: CoapRequest, server: CoapServer): CoapResponse {
    const topic = this.store.byTopicDataId(request.subPath.length === 1 ? request.subPath[0]! : '');
    const observerKey = ObserveRegistry.observerKey(request.context.peerKey, request.message.token);
    if (request.notification) {
      if (this.evicted.get(server)!.delete(observerKey)) return { code: ResponseCode.NotFound, payload: 'unsubscribed: the topic allows fewer subscribers now' };
    } else {
      if (!topic) refuse(ResponseCode.NotFound, 'no such topic-data resource');
      this.check(registers(request) ? 'subscribe' : 'read-data', topic, request);
    }
    if (!topic?.publication) return { code: ResponseCode.NotFound, payload: topic ? 'nothing published yet (topic half created)' : 'no such topic-data resource' };
    const response: CoapResponse = { code: ResponseCode.Content, payload: topic.publication.payload };
    if (topic.publication.contentFormat !== undefined) response.contentFormat = topic.publication.contentFormat;
    if (!request.notification && registers(request) && this.atSubscriberLimit(topic, server, observerKey)) {
      // §3.2.2 / RFC 7641 §4.1: served, but not registered; no Observe option tells the client so.
      response.unobserved = true;
    }
    return response;
  }

  /** §3.2.4: back to HALF CREATED; subscribers get a final 4.04; the configuration stays. */
  private deleteData(request: CoapRequest): CoapResponse {
    const topic = this.dataTopicAt(request);
    this.check('delete-data', topic, request);
    if (!topic.publication) refuse(ResponseCode.NotFound, 'nothing published (topic half created)');
    topic.publication = undefined;
    this.store.changed();
    for (const server of this.servers) server.observations.endAll(this.dataPath(topic));
    return { code: ResponseCode.Deleted };
  }

  // --- helpers ---------------------------------------------------------------------------------

  private check(operation: BrokerOperation, topic: Topic | undefined, request: CoapRequest): void {
    const identity = clientIdentity(request.context);
    if (this.authorize({ operation, topic, identity, context: request.context })) return;
    const why = `${identity} may not ${operation}${topic ? ` on topic "${topic.properties.topicName}"` : ''}`;
    if (isAuthenticated(request.context)) refuse(ResponseCode.Forbidden, why);
    refuse(ResponseCode.Unauthorized, `${why}: authenticate (OSCORE or DTLS) first`);
  }

  private requireFormat(request: CoapRequest, format: number): void {
    if (request.contentFormat !== format) refuse(ResponseCode.UnsupportedContentFormat, `expected Content-Format ${format}`);
  }

  private topicAt(request: CoapRequest): Topic {
    const topic = request.subPath.length === 1 ? this.store.byTopicId(request.subPath[0]!) : undefined;
    return topic ?? refuse(ResponseCode.NotFound, 'no such topic');
  }

  private dataTopicAt(request: CoapRequest): Topic {
    const topic = request.subPath.length === 1 ? this.store.byTopicDataId(request.subPath[0]!) : undefined;
    return topic ?? refuse(ResponseCode.NotFound, 'no such topic-data resource');
  }

  /** §2.5.3/§2.5.4: topic-name, topic-data and resource-type are immutable after creation. */
  private checkImmutable(topic: Topic, requested: PartialTopicProperties): void {
    for (const name of IMMUTABLE) {
      if (requested[name] !== undefined && requested[name] !== topic.properties[name]) refuse(ResponseCode.BadRequest, `${propertyLabel(name)} cannot be changed`);
    }
  }

  /** Checks a configuration and applies the broker's own values (max-subscribers cap, defaults). */
  private settle(properties: TopicProperties): TopicProperties {
    if (properties.initialize !== undefined && properties.topicContentFormat === undefined) refuse(ResponseCode.BadRequest, 'initialize needs topic-content-format');
    if (properties.initialize !== undefined && properties.initialize.length > this.limits.maxPublicationSize) refuse(ResponseCode.RequestEntityTooLarge, `initialize is larger than ${this.limits.maxPublicationSize} bytes`);
    if (properties.expirationDate !== undefined && properties.expirationDate * 1000 <= this.now()) refuse(ResponseCode.BadRequest, 'expiration-date is in the past');
    return {
      ...properties,
      // §2.2.1: max-subscribers is a hint; "the broker MAY store a different value".
      maxSubscribers: Math.min(properties.maxSubscribers ?? this.limits.maxSubscribersPerTopic, this.limits.maxSubscribersPerTopic),
      observerCheck: properties.observerCheck ?? DEFAULT_OBSERVER_CHECK,
    };
  }

  private reconfigure(topic: Topic, properties: TopicProperties): CoapResponse {
    topic.properties = properties;
    this.store.changed();
    this.scheduleExpiry();
    this.shedSubscribers(topic);
    return { code: ResponseCode.Changed, contentFormat: PUBSUB_CONTENT_FORMAT, payload: encodeTopicProperties(properties) };
  }

  /** §2.5.3: decreasing max-subscribers unsubscribes the newest subscribers with a final 4.04. */
  private shedSubscribers(topic: Topic): void {
    const path = this.dataPath(topic);
    const subscribers: Array<{ server: CoapServer; observer: Observer }> = [];
    for (const server of this.servers) {
      const evicted = this.evicted.get(server)!;
      // Forget evictions whose observers left before their final 4.04 was rendered (RST, timeout).
      for (const [key, evictedFrom] of evicted) {
        if (!server.observations.observers(evictedFrom).some((o) => o.key === key)) evicted.delete(key);
      }
      for (const observer of server.observations.observers(path)) if (!evicted.has(observer.key)) subscribers.push({ server, observer });
    }
    const excess = subscribers.length - (topic.properties.maxSubscribers ?? Infinity);
    if (excess <= 0) return;
    // Newest within each listener's registration order; the last listener's count as newest.
    for (const { server, observer } of subscribers.slice(subscribers.length - excess)) {
      this.evicted.get(server)!.set(observer.key, path);
      server.observations.renotify(observer);
    }
  }

  private atSubscriberLimit(topic: Topic, server: CoapServer, observerKey: string): boolean {
    const path = this.dataPath(topic);
    if (server.observations.observers(path).some((o) => o.key === observerKey)) return false; // a re-registration (RFC 7641 §4.1)
    const subscribers = this.servers.reduce((n, s) => n + s.observations.observers(path).length, 0);
    return subscribers >= (topic.properties.maxSubscribers ?? Infinity);
  }

  /** Sets a topic's publication after the topic's checks: size (4.13) and Content-Format (4.15). */
  private checkedPublication(topic: Topic, payload: Uint8Array, contentFormat: number | undefined): void {
    if (payload.length > this.limits.maxPublicationSize) {
      refuse(ResponseCode.RequestEntityTooLarge, `a publication may be at most ${this.limits.maxPublicationSize} bytes`, {
        options: [{ number: OptionNumber.Size1, value: encodeUint(this.limits.maxPublicationSize) }],
      });
    }
    const expected = topic.properties.topicContentFormat;
    if (expected !== undefined && contentFormat !== expected) refuse(ResponseCode.UnsupportedContentFormat, `this topic takes Content-Format ${expected}`);
    topic.publication = { payload: Uint8Array.from(payload), contentFormat };
  }

  private requestedDataId(uri: string): string {
    const prefix = `${this.base}/data/`;
    const id = uri.startsWith(prefix) ? uri.slice(prefix.length) : '';
    if (!SEGMENT.test(id)) refuse(ResponseCode.BadRequest, `topic-data must be a path ${prefix}NAME on this broker`);
    if (this.store.byTopicDataId(id)) refuse(ResponseCode.BadRequest, `topic-data ${uri} is already in use`);
    return id;
  }

  private freshId(free: (id: string) => boolean): string {
    for (;;) {
      const id = randomBytes(4).toString('hex');
      if (free(id)) return id;
    }
  }

  private removeTopic(topic: Topic): void {
    this.store.remove(topic);
    // The topic is gone, so the rendering each subscriber now gets is a final 4.04 (§2.5.5).
    for (const server of this.servers) server.observations.endAll(this.dataPath(topic));
  }

  /** §2.2.1: a topic past its expiration-date is deleted as by DELETE (§2.5.5). */
  private expire(): void {
    const now = this.now();
    if (now < this.nextExpiry) return;
    for (const topic of [...this.store.topics()]) {
      if (topic.properties.expirationDate !== undefined && topic.properties.expirationDate * 1000 <= now) this.removeTopic(topic);
    }
    this.scheduleExpiry();
  }

  private scheduleExpiry(): void {
    this.expiryTimer?.cancel();
    this.expiryTimer = undefined;
    let next = Infinity;
    for (const topic of this.store.topics()) if (topic.properties.expirationDate !== undefined) next = Math.min(next, topic.properties.expirationDate * 1000);
    this.nextExpiry = next;
    if (next === Infinity) return;
    const delay = Math.min(Math.max(0, next - this.now()), MAX_EXPIRY_TIMER_MS);
    this.expiryTimer = this.scheduler.schedule(delay, () => {
      this.expiryTimer = undefined;
      this.nextExpiry = -Infinity; // a timer past MAX_EXPIRY_TIMER_MS fires early: scan anyway
      this.expire();
    });
  }

  private configLinks(): Link[] {
    return [...this.store.topics()].map((t) => ({ href: this.topicPath(t), attributes: [['rt', ResourceType.topic]] }));
  }

  /** Topic-data resources exist only once FULLY CREATED (§3). */
  private dataLinks(): Array<{ path: string; rt: string; obs: boolean; ct?: number }> {
    return [...this.store.topics()]
      .filter((t) => t.publication !== undefined)
      .map((t) => ({ path: this.dataPath(t), rt: ResourceType.topicData, obs: true, ...(t.properties.topicContentFormat !== undefined ? { ct: t.properties.topicContentFormat } : {}) }));
  }

  private dataLinksAsLinks(): Link[] {
    return this.dataLinks().map((l) => ({ href: l.path, attributes: [['rt', l.rt]] }));
  }
}
