/**
 * TEST TOOL. The caching scenario of the threat suite under cacheable OSCORE
 * (draft-ietf-core-cacheable-oscore, draft-ietf-core-oscore-capable-proxies §4): group members
 * read /fw (Max-Age 10 s) through a caching forward proxy, and the proxy is the adversary — it
 * holds the responses in its cache and decides what to serve. Each attack runs twice: on plain
 * CoAP through the same cache (the baseline) and with Deterministic Requests, whose protected
 * responses the proxy caches and every client verifies (group-oscore/deterministic-exchange.ts).
 * Judged by what the clients accepted:
 *  - stale replay: the proxy keeps serving a response past its Max-Age, or an older one after a
 *    client already got a newer one;
 *  - stale replay to a client with no history (what cacheable OSCORE cannot tell, §6);
 *  - an altered cached response;
 *  - a cached response served for a different request;
 *  - an older notification relayed again to an observer (cacheable-oscore §3.1: observers of /fw
 *    share one upstream observation at the proxy, which numbers each client's notifications itself).
 *
 * In process on the sans-IO cores — the proxy's real ResponseCache on an injected clock, the
 * origin handling encoded datagrams as the server's group-oscore stage does — no sockets.
 */
import { decodeMessage, encodeMessage } from '../coap/codec.js';
import { Method, ResponseCode } from '../coap/codes.js';
import { type CoapMessage, type CoapOption, MessageType, createMessage, decodeUint, encodeString, encodeUint, getOption, getStringOptions } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { GroupContextStore, type GroupSecurityContext } from '../group-oscore/context.js';
import { unprotectDeterministicRequest } from '../group-oscore/deterministic.js';
import { type DeterministicExchange, DeterministicRequester, deterministicClientFor, protectDeterministicResponse } from '../group-oscore/deterministic-exchange.js';
import { GroupManager, contextFromMemberFile } from '../group-oscore/manager.js';
import { decodeGroupOscoreOption } from '../group-oscore/option.js';
import { ResponseCache } from '../proxy/cache.js';

export type CacheProtection = 'plain' | 'cacheable-oscore';
export const CACHE_PROTECTIONS: readonly CacheProtection[] = ['plain', 'cacheable-oscore'];

export interface CacheThreatOutcome {
  readonly verdict: 'undetected' | 'detected';
  readonly detail: string;
}

export interface CacheThreatRow {
  readonly id: string;
  readonly threat: string;
  readonly attack: string;
  readonly outcomes: Readonly<Record<CacheProtection, CacheThreatOutcome>>;
}

export const CACHEABLE_THREATS_TEST = 'cacheable OSCORE threat rows: a stale, altered or misdirected cached response, or an older notification, is refused; staleness towards a client with no history is not';

const TARGET = 'coap://origin.example/';
const MAX_AGE = 10;
const CLIENTS = ['c1', 'c2', 'c3'] as const;
type ClientName = (typeof CLIENTS)[number];

/** What a client did with one response. */
type Reception = { accepted: true; text: string } | { accepted: false; reason: string };

let nextMessageId = 1;

/** The origin: /fw whose version the test changes, and /config. */
class Origin {
  firmware = 'firmware v1';
  requests = 0;
  readonly #contexts: GroupContextStore | undefined;

  constructor(context: GroupSecurityContext | undefined) {
    if (context === undefined) return;
    this.#contexts = new GroupContextStore();
    this.#contexts.install('fw', context);
  }

  serve(bytes: Uint8Array): Uint8Array {
    this.requests++;
    const request = decodeMessage(bytes);
    if (this.#contexts === undefined) return encodeMessage(this.#answer(request));
    // As the server's group-oscore stage does (§3.4.3), then §3.4.4 for the answer.
    const option = decodeGroupOscoreOption(getOption(request, OptionNumber.Oscore)!);
    const found = deterministicClientFor(request, option, (gid) => this.#contexts!.findByGid(gid))!;
    const opened = unprotectDeterministicRequest(request, found.context, found.client);
    if (!opened.ok) throw new Error(`the origin refused an honest request: ${opened.reason}`);
    return encodeMessage(protectDeterministicResponse(this.#answer(opened.message), found.context, opened.binding, opened.requestHash));
  }

  #answer(request: CoapMessage): CoapMessage {
    const path = getStringOptions(request, OptionNumber.UriPath).join('/');
    const payload = path === 'fw' ? this.firmware : path === 'config' ? 'mode=auto' : '';
    // An observation (Outer Observe 0): each rendering is a notification numbered by the origin.
    const observe = getOption(request, OptionNumber.Observe) !== undefined ? [{ number: OptionNumber.Observe, value: encodeUint(this.requests) }] : [];
    return createMessage({
      type: MessageType.ACK,
      code: payload === '' ? ResponseCode.NotFound : ResponseCode.Content,
      messageId: request.messageId,
      token: request.token,
      options: [...observe, { number: OptionNumber.MaxAge, value: encodeUint(MAX_AGE) }],
      payload: encodeString(payload),
    });
  }
}

/** One client: plain, or a group member sending Deterministic Requests on the shared clock. */
class Client {
  readonly #requester: DeterministicRequester | undefined;
  #pending: DeterministicExchange | undefined;
  /** The Observe number of the newest notification a plain client accepted (RFC 7641 §3.4, without the 128 s wrap). */
  #newestObserve = -1;

  constructor(
    readonly name: ClientName,
    context: GroupSecurityContext | undefined,
    now: () => number,
  ) {
    this.#requester = context === undefined ? undefined : new DeterministicRequester(context, { now });
  }

  request(path: string, observe = false): Uint8Array {
    const options: CoapOption[] = [{ number: OptionNumber.UriPath, value: encodeString(path) }];
    if (observe) options.unshift({ number: OptionNumber.Observe, value: encodeUint(0) });
    const plain = createMessage({ type: MessageType.CON, code: Method.GET, messageId: nextMessageId++, token: Uint8Array.of(nextMessageId & 0xff), options });
    if (this.#requester === undefined) return encodeMessage(plain);
    this.#pending = this.#requester.protect(plain);
    return encodeMessage(this.#pending.message);
  }

  receive(bytes: Uint8Array): Reception {
    const response = decodeMessage(bytes);
    if (this.#pending === undefined) {
      if (response.code !== ResponseCode.Content) return { accepted: false, reason: 'not 2.05' };
      const observe = getOption(response, OptionNumber.Observe);
      if (observe !== undefined) {
        const value = decodeUint(observe);
        if (value <= this.#newestObserve) return { accepted: false, reason: `Observe ${value} is not newer than ${this.#newestObserve}` };
        this.#newestObserve = value;
      }
      return { accepted: true, text: Buffer.from(response.payload).toString() };
    }
    const verified = this.#pending.verify(response);
    return verified.ok ? { accepted: true, text: Buffer.from(verified.message.payload).toString() } : { accepted: false, reason: verified.reason };
  }
}

/** The caching proxy: honest forwarding through the ResponseCache, and what the adversary does with its entries. */
class World {
  now = 0;
  readonly origin: Origin;
  readonly clients: Map<ClientName, Client>;
  readonly cache = new ResponseCache({ maxBytes: 1 << 20, now: () => this.now });
  /** The response bytes the proxy last stored, by the request's path (the adversary reads the payload it caches). */
  readonly recorded = new Map<string, Uint8Array>();

  constructor(readonly protection: CacheProtection) {
    const gm = GroupManager.create({ name: 'fw' });
    gm.addDeterministicClient();
    for (const name of ['origin', ...CLIENTS]) gm.addMember(name);
    const context = (name: string): GroupSecurityContext | undefined => (protection === 'plain' ? undefined : contextFromMemberFile(gm.memberFile(name)));
    this.origin = new Origin(context('origin'));
    this.clients = new Map(CLIENTS.map((name) => [name, new Client(name, context(name), () => this.now)]));
  }

  /** An honest round trip: a fresh cache entry, or the origin (stored, RFC 7252 §5.6). */
  fetch(client: ClientName, path: string): Reception {
    const c = this.clients.get(client)!;
    const bytes = c.request(path);
    const request = decodeMessage(bytes);
    const key = this.cache.cacheKey(request, TARGET);
    const hit = this.cache.lookup(request, key);
    if (hit?.kind === 'fresh') return c.receive(encodeMessage({ ...hit.response, token: request.token, messageId: request.messageId }));
    const answer = this.origin.serve(bytes);
    this.cache.store(request, key, decodeMessage(answer));
    this.recorded.set(path, answer);
    return c.receive(answer);
  }

  /** The adversary answers `client`'s request for `path` with `bytes` of its choosing. */
  serveForged(client: ClientName, path: string, bytes: Uint8Array): Reception {
    const c = this.clients.get(client)!;
    const request = decodeMessage(c.request(path));
    return c.receive(encodeMessage({ ...decodeMessage(bytes), token: request.token, messageId: request.messageId }));
  }
}

const describe = (who: string, r: Reception): string => (r.accepted ? `${who} accepted "${r.text}"` : `${who} refused it (${r.reason})`);
const judged = (receptions: readonly Reception[], detail: string): CacheThreatOutcome => ({ verdict: receptions.every((r) => !r.accepted) ? 'detected' : 'undetected', detail });

function staleReplay(protection: CacheProtection): CacheThreatOutcome {
  const w = new World(protection);
  w.fetch('c1', 'fw');
  const v1 = w.recorded.get('fw')!; // the adversary keeps a copy
  w.now = 5_000;
  w.origin.firmware = 'firmware v2';
  w.now = 12_000;
  w.fetch('c2', 'fw'); // c2 gets v2 honestly: the entry expired at 10 s
  w.now = 13_000;
  // The proxy serves its copy of v1: to c1 past its Max-Age, to c2 after v2.
  const expired = w.serveForged('c1', 'fw', v1);
  const older = w.serveForged('c2', 'fw', v1);
  return judged([expired, older], `at 13 s: ${describe('c1 (v1 first received at 0 s, Max-Age 10 s)', expired)}; ${describe('c2 (got v2 at 12 s)', older)}`);
}

function staleToNewcomer(protection: CacheProtection): CacheThreatOutcome {
  const w = new World(protection);
  w.fetch('c1', 'fw');
  const v1 = w.recorded.get('fw')!;
  w.now = 5_000;
  w.origin.firmware = 'firmware v2';
  w.now = 12_000;
  const newcomer = w.serveForged('c3', 'fw', v1);
  const detail = `at 12 s, v2 at the origin: ${describe('c3 (never read /fw before)', newcomer)}`;
  return { verdict: newcomer.accepted ? 'undetected' : 'detected', detail: protection === 'plain' ? detail : `${detail} — a Deterministic Request carries no freshness (cacheable-oscore §6); a client can only tell a response older than one it already has` };
}

function altered(protection: CacheProtection): CacheThreatOutcome {
  const w = new World(protection);
  w.fetch('c1', 'fw');
  const stored = decodeMessage(w.recorded.get('fw')!);
  const payload = Uint8Array.from(stored.payload);
  if (protection === 'plain') payload.set(encodeString('9'), payload.length - 1); // "firmware v1" → "firmware v9"
  else payload[0]! ^= 0x01; // one ciphertext bit
  w.now = 1_000;
  const reception = w.serveForged('c2', 'fw', encodeMessage({ ...stored, payload }));
  return judged([reception], `the cached response with its payload changed, served at 1 s: ${describe('c2', reception)}`);
}

function wrongRequest(protection: CacheProtection): CacheThreatOutcome {
  const w = new World(protection);
  w.fetch('c1', 'fw');
  w.now = 1_000;
  const reception = w.serveForged('c2', 'config', w.recorded.get('fw')!);
  return judged([reception], `c2 asked for /config and got the cached response to /fw: ${describe('c2', reception)}`);
}

function notificationRollback(protection: CacheProtection): CacheThreatOutcome {
  const w = new World(protection);
  const c1 = w.clients.get('c1')!;
  const registration = c1.request('fw', true);
  const n1 = w.origin.serve(registration);
  w.now = 2_000;
  w.origin.firmware = 'firmware v2';
  const n2 = w.origin.serve(registration);
  for (const honest of [c1.receive(n1), c1.receive(n2)]) if (!honest.accepted) throw new Error(`an honest notification was refused: ${honest.reason}`);
  w.now = 3_000;
  // The proxy relays v1 once more, under the next Observe number of its own (RFC 7641 §5: it numbers each client's notifications).
  const first = decodeMessage(n1);
  const replayed = encodeMessage({ ...first, options: first.options.map((o) => (o.number === OptionNumber.Observe ? { number: o.number, value: encodeUint(3) } : o)) });
  const rolledBack = c1.receive(replayed);
  return judged([rolledBack], `c1 observes /fw and got v1 and v2; at 3 s the proxy relays v1 again as Observe 3: ${describe('c1', rolledBack)}`);
}

const ATTACKS: ReadonlyArray<{ id: string; threat: string; attack: string; run: (p: CacheProtection) => CacheThreatOutcome }> = [
  { id: 'cache-stale-replay', threat: 'Stale replay of a cached response', attack: 'the proxy serves /fw v1 after its Max-Age, and after the client already got v2', run: staleReplay },
  { id: 'cache-stale-newcomer', threat: 'Stale replay to a client with no history', attack: 'the proxy serves an expired /fw to a client that never read it', run: staleToNewcomer },
  { id: 'cache-altered', threat: 'Altered cached response', attack: 'the proxy changes the payload of its cached response', run: altered },
  { id: 'cache-wrong-request', threat: 'Cached response served for a different request', attack: 'the proxy answers a request for /config with its cached /fw', run: wrongRequest },
  { id: 'cache-notification-rollback', threat: 'Older notification relayed to an observer', attack: 'the proxy aggregating the observations of /fw relays an older notification again, newly numbered', run: notificationRollback },
];

export function runCacheableThreats(): CacheThreatRow[] {
  return ATTACKS.map(({ id, threat, attack, run }) => ({ id, threat, attack, outcomes: { plain: run('plain'), 'cacheable-oscore': run('cacheable-oscore') } }));
}

export function renderCacheableThreats(rows: readonly CacheThreatRow[]): string[] {
  const cell = (o: CacheThreatOutcome): string => `${o.verdict}: ${o.detail.replace(/\|/g, '/')}`;
  return [
    '',
    '## Caching proxy (cacheable OSCORE)',
    '',
    `Group members read /fw (Max-Age 10 s) through a caching forward proxy, which is the adversary: it decides what to serve from its cache. Plain CoAP through the same cache is the baseline; under cacheable OSCORE the clients send Deterministic Requests (draft-ietf-core-cacheable-oscore) and the proxy caches the protected responses (draft-ietf-core-oscore-capable-proxies §4). Run in process on the proxy's ResponseCache and the Group OSCORE core (\`src/attack/cacheable-threats.ts\`; test: \`${CACHEABLE_THREATS_TEST}\`). Every cell is computed by a run.`,
    '',
    '| Threat | Attack | plain CoAP, caching proxy (baseline) | cacheable OSCORE (Deterministic Requests) |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.threat} | ${r.attack} | ${cell(r.outcomes.plain)} | ${cell(r.outcomes['cacheable-oscore'])} |`),
  ];
}
