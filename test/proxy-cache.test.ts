/**
 * The proxy cache on a fake clock (RFC 7252 §5.6, §5.9, §5.10.5/6; PR2.1–PR2.5): freshness with
 * Max-Age decremented by time in cache, validation, error caching, OSCORE and Max-Age 0 never
 * cached, the Cache-Key, Accept variants, LRU under a byte budget, invalidation by unsafe methods.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { decodeString, encodeString, encodeUint, getOption, getUintOption, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { ResponseCache, conditionalReply, type LookupResult, invalidatesCache, invalidationTargets, isCacheableResponseCode } from '../src/proxy/cache.js';

const TARGET = 'coap://192.0.2.7/sensor';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function setup(maxBytes = 1 << 20, extra: { serveOnEtagMismatch?: boolean } = {}) {
  const c = clock();
  const cache = new ResponseCache({ maxBytes, now: c.now, ...extra });
  return { cache, ...c };
}

const o = (number: number, value: string | number | Uint8Array): CoapOption => ({
  number,
  value: typeof value === 'string' ? encodeString(value) : typeof value === 'number' ? encodeUint(value) : value,
});

function req(code: number, options: CoapOption[] = [], payload = ''): CoapMessage {
  return { type: 0, code, messageId: 7, token: Uint8Array.of(1, 2), options: [...options].sort((a, b) => a.number - b.number), payload: encodeString(payload) };
}

function res(code: number, options: CoapOption[] = [], payload = ''): CoapMessage {
  return { type: 2, code, messageId: 9, token: Uint8Array.of(3), options: [...options].sort((a, b) => a.number - b.number), payload: encodeString(payload) };
}

const get = (options: CoapOption[] = []) => req(Method.GET, options);
const content = (payload: string, options: CoapOption[] = []) => res(ResponseCode.Content, options, payload);
/** The response of a fresh or valid lookup result. */
function answer(result: LookupResult): CoapMessage {
  assert.ok(result && result.kind !== 'stale', `expected a hit, got ${result?.kind}`);
  return result.response;
}
const etag = (b: number) => o(OptionNumber.ETag, Uint8Array.of(b));
const maxAge = (s: number) => o(OptionNumber.MaxAge, s);

test('PR2.1/PR2.2: a fresh stored response answers a request with the same cache key; a miss is forwarded', () => {
  const { cache } = setup();
  const request = get();
  const key = cache.cacheKey(request, TARGET);
  assert.equal(cache.lookup(request, key), undefined, 'empty cache: forward');
  assert.equal(cache.store(request, key, content('21.5 C', [maxAge(30)])), true);
  const hit = cache.lookup(get(), cache.cacheKey(get(), TARGET));
  assert.equal(hit?.kind, 'fresh');
  assert.equal(decodeString(hit.response.payload), '21.5 C');
  assert.equal(hit.response.code, ResponseCode.Content);
  assert.equal(cache.lookup(get(), cache.cacheKey(get(), 'coap://192.0.2.7/other')), undefined, 'another URI is another key');
  assert.deepEqual({ hits: cache.stats().hits, misses: cache.stats().misses, entries: cache.stats().entries }, { hits: 1, misses: 2, entries: 1 });
});

test('PR2.2: a new response for the same key replaces the old one (the old is no longer served)', () => {
  const { cache } = setup();
  const key = cache.cacheKey(get(), TARGET);
  cache.store(get(), key, content('old', [maxAge(60)]));
  cache.store(get(), key, content('new', [maxAge(60)]));
  const hit = cache.lookup(get(), key);
  assert.equal(hit?.kind === 'fresh' && decodeString(hit.response.payload), 'new');
  assert.equal(cache.stats().entries, 1);
});

test('PR2.4/§5.6.1: Max-Age is decremented by the time spent in the cache; expiry after Max-Age', () => {
  const { cache, advance } = setup();
  const key = cache.cacheKey(get(), TARGET);
  cache.store(get(), key, content('v', [maxAge(60)]));
  advance(10_000);
  let hit = cache.lookup(get(), key);
  assert.equal(hit?.kind, 'fresh');
  assert.equal(getUintOption(hit.response, OptionNumber.MaxAge), 50);
  advance(49_500);
  hit = cache.lookup(get(), key);
  assert.equal(hit?.kind, 'fresh');
  assert.equal(getUintOption(hit.response, OptionNumber.MaxAge), 0, 'less than a second left rounds down');
  advance(500);
  assert.equal(cache.lookup(get(), key), undefined, 'after 60 s it is not fresh and, without ETag, gone');
  assert.equal(cache.stats().entries, 0);
});

test('§5.10.5: without Max-Age a response is fresh for 60 s, and the served copy states the remaining time', () => {
  const { cache, advance } = setup();
  const key = cache.cacheKey(get(), TARGET);
  cache.store(get(), key, content('v'));
  advance(1_000);
  assert.equal(getUintOption(answer(cache.lookup(get(), key)), OptionNumber.MaxAge), 59);
  advance(59_000);
  assert.equal(cache.lookup(get(), key), undefined);
});

test('the served copy carries no Observe option and does not alias the stored one', () => {
  const { cache } = setup();
  const key = cache.cacheKey(get(), TARGET);
  cache.store(get(), key, content('n', [o(OptionNumber.Observe, 12), maxAge(5), o(OptionNumber.ContentFormat, 0)]));
  const a = answer(cache.lookup(get(), key));
  assert.equal(getOption(a, OptionNumber.Observe), undefined);
  a.options.length = 0;
  const b = answer(cache.lookup(get(), key));
  assert.equal(getUintOption(b, OptionNumber.ContentFormat), 0);
});

test('PR2.3: a request whose ETag matches the fresh entry gets 2.03 Valid with that ETag, no payload, the remaining Max-Age', () => {
  const { cache, advance } = setup();
  const key = cache.cacheKey(get(), TARGET);
  cache.store(get(), key, content('representation', [etag(0xa1), maxAge(20)]));
  advance(5_000);
  const withEtag = get([etag(0xa1)]);
  assert.equal(cache.cacheKey(withEtag, TARGET), key, 'ETag is not part of the key (it is interpreted, §5.6)');
  const hit = cache.lookup(withEtag, key);
  assert.equal(hit?.kind, 'valid');
  assert.equal(hit.response.code, ResponseCode.Valid);
  assert.equal(hit.response.payload.length, 0);
  assert.deepEqual(getOption(hit.response, OptionNumber.ETag), Uint8Array.of(0xa1));
  assert.equal(getUintOption(hit.response, OptionNumber.MaxAge), 15);
  // several ETags: one matching suffices (§5.10.6.2)
  assert.equal(cache.lookup(get([etag(0x01), etag(0xa1)]), key)?.kind, 'valid');
});

test('PR2.3: a request with a non-matching ETag is forwarded; with serveOnEtagMismatch the fresh 2.05 is served (§5.6)', () => {
  const strict = setup();
  const key = strict.cache.cacheKey(get(), TARGET);
  strict.cache.store(get(), key, content('r', [etag(0xa1)]));
  assert.equal(strict.cache.lookup(get([etag(0xb2)]), key), undefined);
  const loose = setup(1 << 20, { serveOnEtagMismatch: true });
  loose.cache.store(get(), key, content('r', [etag(0xa1)]));
  const hit = loose.cache.lookup(get([etag(0xb2)]), key);
  assert.equal(hit?.kind, 'fresh');
  assert.equal(decodeString(hit.response.payload), 'r');
});

test('§5.6.2: a stale entry with an ETag is revalidated upstream; 2.03 refreshes Max-Age and safe options', () => {
  const { cache, advance } = setup();
  const key = cache.cacheKey(get(), TARGET);
  cache.store(get(), key, content('big representation', [etag(0xe1), maxAge(10), o(OptionNumber.ContentFormat, ContentFormat.TextPlain), o(OptionNumber.Size2, 18)]));
  advance(10_000);
  const clientRequest = get([etag(0x77)]);
  const stale = cache.lookup(clientRequest, key);
  assert.equal(stale?.kind, 'stale');
  assert.deepEqual(stale.etags, [Uint8Array.of(0xe1), Uint8Array.of(0x77)], "the entry's ETag, then the requester's");
  assert.equal(stale.entry.target, TARGET);
  assert.equal(stale.entry.staleFor, 0);
  // upstream answers 2.03 with the entry's ETag, a new Max-Age and a new Size2
  const refreshed = cache.revalidated(key, res(ResponseCode.Valid, [etag(0xe1), maxAge(30), o(OptionNumber.Size2, 99)]), clientRequest);
  assert.ok(refreshed);
  assert.equal(refreshed.code, ResponseCode.Content);
  assert.equal(decodeString(refreshed.payload), 'big representation');
  assert.equal(getUintOption(refreshed, OptionNumber.MaxAge), 30);
  assert.equal(getUintOption(refreshed, OptionNumber.Size2), 99, '§5.9.1.3: safe options in the 2.03 replace the stored ones');
  assert.equal(getUintOption(refreshed, OptionNumber.ContentFormat), ContentFormat.TextPlain, 'options absent from the 2.03 stay');
  // the client's own ETag did not match: it gets the 2.05
  assert.equal(conditionalReply(clientRequest, refreshed).code, ResponseCode.Content);
  // fresh again, for 30 s
  advance(29_000);
  assert.equal(cache.lookup(get(), key)?.kind, 'fresh');
  assert.equal(cache.stats().revalidations, 1);
  // a requester holding the same ETag would get 2.03 from conditionalReply
  assert.equal(conditionalReply(get([etag(0xe1)]), refreshed).code, ResponseCode.Valid);
  // a 2.03 for an ETag nobody stored changes nothing
  assert.equal(cache.revalidated(key, res(ResponseCode.Valid, [etag(0x55)])), undefined);
});

test('§5.6.2: store() of a 2.03 is a revalidation; a 2.05 instead of 2.03 replaces the stale entry', () => {
  const { cache, advance } = setup();
  const key = cache.cacheKey(get(), TARGET);
  cache.store(get(), key, content('v1', [etag(1), maxAge(1)]));
  advance(2_000);
  assert.equal(cache.lookup(get(), key)?.kind, 'stale');
  assert.equal(cache.store(get(), key, res(ResponseCode.Valid, [etag(1), maxAge(5)])), true);
  assert.equal(cache.lookup(get(), key)?.kind, 'fresh');
  advance(6_000);
  assert.equal(cache.lookup(get(), key)?.kind, 'stale');
  cache.store(get(), key, content('v2', [etag(2), maxAge(5)]));
  const hit = cache.lookup(get(), key);
  assert.equal(hit?.kind === 'fresh' && decodeString(hit.response.payload), 'v2');
});

test('§5.9.2/§5.9.3: 4.xx and 5.xx responses are cached with their Max-Age (default 60 s) and never validated', () => {
  const { cache, advance } = setup();
  for (const code of [ResponseCode.NotFound, ResponseCode.BadRequest, ResponseCode.Unauthorized, ResponseCode.InternalServerError, ResponseCode.ServiceUnavailable]) {
    assert.equal(isCacheableResponseCode(code), true);
  }
  const k404 = cache.cacheKey(get(), 'coap://192.0.2.7/missing');
  assert.equal(cache.store(get(), k404, res(ResponseCode.NotFound, [], 'no such resource')), true);
  const k503 = cache.cacheKey(get(), 'coap://192.0.2.7/busy');
  assert.equal(cache.store(get(), k503, res(ResponseCode.ServiceUnavailable, [maxAge(5), etag(9)])), true);
  advance(4_000);
  const hit = cache.lookup(get(), k404);
  assert.equal(hit?.kind, 'fresh');
  assert.equal(hit.response.code, ResponseCode.NotFound);
  assert.equal(getUintOption(hit.response, OptionNumber.MaxAge), 56);
  assert.equal(cache.lookup(get(), k503)?.kind, 'fresh');
  assert.equal(cache.lookup(get([etag(9)]), k503)?.kind, 'fresh', 'an error is not validated: no 2.03 for it');
  advance(2_000);
  assert.equal(cache.lookup(get(), k503), undefined, 'an expired error is not offered for revalidation');
  advance(54_000);
  assert.equal(cache.lookup(get(), k404), undefined);
});

test('§5.6/§5.9.1: 2.01, 2.02, 2.04, 2.31 and unrecognized 2.xx are not stored; 2.03 alone creates nothing', () => {
  const { cache } = setup();
  const key = cache.cacheKey(get(), TARGET);
  for (const code of [ResponseCode.Created, ResponseCode.Deleted, ResponseCode.Changed, ResponseCode.Continue, (2 << 5) | 9, ResponseCode.Valid]) {
    assert.equal(cache.store(get(), key, res(code, [etag(1)], 'x')), false);
  }
  assert.equal(cache.stats().entries, 0);
});

test('only responses to GET and FETCH are stored; other methods always go upstream', () => {
  const { cache } = setup();
  for (const method of [Method.POST, Method.PUT, Method.DELETE, Method.PATCH, Method.IPATCH]) {
    const r = req(method, [], 'body');
    const key = cache.cacheKey(r, TARGET);
    assert.equal(cache.store(r, key, res(ResponseCode.BadRequest, [], 'bad')), false);
    assert.equal(cache.lookup(r, key), undefined);
  }
});

test('Max-Age 0 is never cached, and it removes the entry it answers for (§5.6.1)', () => {
  const { cache } = setup();
  const key = cache.cacheKey(get(), TARGET);
  assert.equal(cache.store(get(), key, content('alarm', [maxAge(0)])), false);
  assert.equal(cache.stats().entries, 0);
  cache.store(get(), key, content('old', [maxAge(60)]));
  cache.store(get(), key, content('now uncacheable', [maxAge(0)]));
  assert.equal(cache.lookup(get(), key), undefined);
});

test('OSCORE: protected requests and responses are never cached nor served from cache to another client', () => {
  const { cache } = setup();
  const oscoreOption = o(OptionNumber.Oscore, Uint8Array.of(0x09, 0x14));
  const protectedReq = req(Method.FETCH, [oscoreOption], '\u00aa\u00bb');
  const key = cache.cacheKey(protectedReq, TARGET);
  // even if an origin forgot the outer Max-Age 0, the OSCORE option alone keeps it out
  assert.equal(cache.store(protectedReq, key, res(ResponseCode.Changed, [o(OptionNumber.Oscore, EMPTY)], 'ciphertext')), false);
  assert.equal(cache.store(protectedReq, key, res(ResponseCode.Content, [o(OptionNumber.Oscore, EMPTY), maxAge(60)], 'ciphertext')), false);
  assert.equal(cache.store(protectedReq, key, res(ResponseCode.Content, [o(OptionNumber.Oscore, EMPTY), maxAge(0)], 'ciphertext')), false);
  // a plain request answered by an OSCORE-protected response is not stored either
  const plainKey = cache.cacheKey(get(), TARGET);
  assert.equal(cache.store(get(), plainKey, res(ResponseCode.Content, [o(OptionNumber.Oscore, EMPTY)], 'c')), false);
  // and an entry a plain request stored is not served to a protected one
  cache.store(get(), plainKey, content('plain'));
  const protectedGet = get([oscoreOption]);
  assert.equal(cache.lookup(protectedGet, cache.cacheKey(protectedGet, TARGET)), undefined);
  assert.equal(cache.lookup(protectedGet, plainKey), undefined, 'even under a key that matches');
  assert.equal(cache.stats().entries, 1);
});
const EMPTY = new Uint8Array(0);

test('FETCH: the payload and its Content-Format are part of the cache key (RFC 8132 §2.2)', () => {
  const { cache } = setup();
  const cf = o(OptionNumber.ContentFormat, ContentFormat.Json);
  const a = req(Method.FETCH, [cf], '["id"]');
  const b = req(Method.FETCH, [cf], '["unit"]');
  const c = req(Method.FETCH, [o(OptionNumber.ContentFormat, ContentFormat.Cbor)], '["id"]');
  const ka = cache.cacheKey(a, TARGET);
  assert.notEqual(ka, cache.cacheKey(b, TARGET));
  assert.notEqual(ka, cache.cacheKey(c, TARGET));
  assert.notEqual(ka, cache.cacheKey(get([cf]), TARGET), 'the method is part of the key');
  cache.store(a, ka, content('{"id":"x"}'));
  assert.equal(cache.lookup(b, cache.cacheKey(b, TARGET)), undefined);
  assert.equal(cache.lookup(req(Method.FETCH, [cf], '["id"]'), ka)?.kind, 'fresh');
  // GET's payload (there should be none) is not part of its key
  assert.equal(cache.cacheKey(req(Method.GET, [], 'junk'), TARGET), cache.cacheKey(get(), TARGET));
});

test('Cache-Key: NoCacheKey options (Size1, Size2, Echo, unknown 0x1c-pattern numbers) are ignored; other options count', () => {
  const { cache } = setup();
  const base = cache.cacheKey(get(), TARGET);
  assert.equal(cache.cacheKey(get([o(OptionNumber.Size2, 0)]), TARGET), base);
  assert.equal(cache.cacheKey(get([o(OptionNumber.Size1, 100)]), TARGET), base);
  assert.equal(cache.cacheKey(get([o(OptionNumber.Echo, Uint8Array.of(1, 2, 3))]), TARGET), base);
  assert.equal(cache.cacheKey(get([o(0x7c, 'x')]), TARGET), base, 'an unknown safe option with all NoCacheKey bits set');
  assert.equal(cache.cacheKey(get([o(OptionNumber.Observe, 0)]), TARGET), base, 'Observe (RFC 7641 §2)');
  assert.equal(cache.cacheKey(get([o(OptionNumber.HopLimit, 16)]), TARGET), base, 'Hop-Limit is interpreted by the proxy');
  assert.equal(cache.cacheKey(get([o(OptionNumber.Accept, 50)]), TARGET), base, 'Accept is interpreted (PR2.5 variants)');
  assert.equal(cache.cacheKey(get([o(OptionNumber.UriPath, 'sensor'), o(OptionNumber.UriHost, 'h')]), TARGET), base, 'the URI is compared as `target`');
  assert.notEqual(cache.cacheKey(get([o(0x78, 'x')]), TARGET), base, 'an unknown safe option without the NoCacheKey pattern');
  assert.notEqual(cache.cacheKey(get([o(OptionNumber.Block2, 0x12)]), TARGET), base, 'Block2: each block is its own entry');
  assert.notEqual(cache.cacheKey(get([o(OptionNumber.IfNoneMatch, EMPTY)]), TARGET), base);
  assert.notEqual(cache.cacheKey(get([o(OptionNumber.RequestTag, 'x')]), TARGET), base);
  // and a lookup with a NoCacheKey option hits what was stored without it
  cache.store(get(), base, content('v'));
  const withEcho = get([o(OptionNumber.Echo, Uint8Array.of(9)), o(OptionNumber.Size2, 0)]);
  assert.equal(cache.lookup(withEcho, cache.cacheKey(withEcho, TARGET))?.kind, 'fresh');
});

test('Cache-Key: no target text can collide with the option part', () => {
  const { cache } = setup();
  const a = cache.cacheKey(get([o(0x78, 'x')]), 'coap://h/a');
  const b = cache.cacheKey(get(), 'coap://h/a|120=78;');
  assert.notEqual(a, b);
  assert.equal(ResponseCache.targetOf(b), 'coap://h/a|120=78;');
});

test('PR2.5: a request with Accept is served a fresh response whose Content-Format matches, even if obtained without Accept', () => {
  const { cache } = setup();
  const key = cache.cacheKey(get(), TARGET);
  cache.store(get(), key, content('{"t":21}', [o(OptionNumber.ContentFormat, ContentFormat.Json)]));
  const json = get([o(OptionNumber.Accept, ContentFormat.Json)]);
  const hit = cache.lookup(json, cache.cacheKey(json, TARGET));
  assert.equal(hit?.kind, 'fresh');
  assert.equal(getUintOption(hit.response, OptionNumber.ContentFormat), ContentFormat.Json);
  // Accept CBOR: the JSON entry does not match → forwarded
  const cbor = get([o(OptionNumber.Accept, ContentFormat.Cbor)]);
  assert.equal(cache.lookup(cbor, key), undefined);
  // the CBOR answer is stored as a variant next to the JSON one
  cache.store(cbor, key, content('\u00a1at\u0015', [o(OptionNumber.ContentFormat, ContentFormat.Cbor)]));
  assert.equal(getUintOption(answer(cache.lookup(cbor, key)), OptionNumber.ContentFormat), ContentFormat.Cbor);
  assert.equal(getUintOption(answer(cache.lookup(get(), key)), OptionNumber.ContentFormat), ContentFormat.Json, 'no Accept: the variant obtained without Accept');
  assert.equal(cache.stats().entries, 2);
});

test('PR2.5: a request without Accept is not served a variant obtained with Accept; a 4.06 for an Accept is cached for that Accept only', () => {
  const { cache } = setup();
  const key = cache.cacheKey(get(), TARGET);
  const xml = get([o(OptionNumber.Accept, ContentFormat.Xml)]);
  cache.store(xml, key, res(ResponseCode.NotAcceptable, [maxAge(30)]));
  cache.store(get([o(OptionNumber.Accept, ContentFormat.Cbor)]), key, content('c', [o(OptionNumber.ContentFormat, ContentFormat.Cbor)]));
  assert.equal(cache.lookup(get(), key), undefined);
  assert.equal(answer(cache.lookup(xml, key)).code, ResponseCode.NotAcceptable);
  const text = get([o(OptionNumber.Accept, ContentFormat.TextPlain)]);
  assert.equal(cache.lookup(text, key), undefined);
});

test('LRU: a byte budget bounds the cache; the least recently used entries are evicted first', () => {
  const { cache } = setup(4_000);
  const keys: string[] = [];
  const payload = 'x'.repeat(500);
  for (let i = 0; i < 5; i++) {
    const target = `coap://192.0.2.7/r${i}`;
    keys.push(cache.cacheKey(get(), target));
    cache.store(get(), keys[i]!, content(payload));
  }
  const before = cache.stats();
  assert.equal(before.entries, 5);
  assert.ok(before.bytes <= 4_000 && before.bytes > 5 * 500, `bytes ${before.bytes} counts payloads and overhead`);
  // use r0 so r1 becomes the least recently used
  assert.equal(cache.lookup(get(), keys[0]!)?.kind, 'fresh');
  for (let i = 5; i < 8; i++) {
    const target = `coap://192.0.2.7/r${i}`;
    keys.push(cache.cacheKey(get(), target));
    cache.store(get(), keys[i]!, content(payload));
  }
  const after = cache.stats();
  assert.ok(after.bytes <= 4_000);
  assert.ok(after.evictions >= 3);
  assert.equal(cache.lookup(get(), keys[1]!), undefined, 'r1 (least recently used) went first');
  assert.equal(cache.lookup(get(), keys[0]!)?.kind, 'fresh', 'r0 was used, so it stayed');
  assert.equal(cache.lookup(get(), keys[7]!)?.kind, 'fresh');
  // a response larger than the whole budget is not stored and evicts nothing
  const evictions = cache.stats().evictions;
  assert.equal(cache.store(get(), cache.cacheKey(get(), 'coap://h/huge'), content('y'.repeat(5_000))), false);
  assert.equal(cache.stats().evictions, evictions);
});

test('§5.9.1.1/2/4: 2.01, 2.02 and 2.04 to PUT/POST/DELETE mark the resource not fresh; errors and GET do not', () => {
  const { cache } = setup();
  assert.equal(invalidatesCache(Method.PUT, ResponseCode.Changed), true);
  assert.equal(invalidatesCache(Method.POST, ResponseCode.Created), true);
  assert.equal(invalidatesCache(Method.DELETE, ResponseCode.Deleted), true);
  assert.equal(invalidatesCache(Method.PUT, ResponseCode.BadRequest), false);
  assert.equal(invalidatesCache(Method.GET, ResponseCode.Content), false);
  const key = cache.cacheKey(get(), TARGET);
  const withEtagTarget = 'coap://192.0.2.7/etagged';
  const k2 = cache.cacheKey(get(), withEtagTarget);
  for (const [method, code] of [[Method.PUT, ResponseCode.Changed], [Method.POST, ResponseCode.Changed], [Method.DELETE, ResponseCode.Deleted]] as const) {
    cache.store(get(), key, content('v'));
    cache.store(get(), k2, content('v', [etag(4)]));
    assert.equal(cache.afterUnsafe(req(method), TARGET, res(ResponseCode.BadRequest)), 0);
    assert.equal(cache.lookup(get(), key)?.kind, 'fresh');
    assert.equal(cache.afterUnsafe(req(method), TARGET, res(code)), 1);
    assert.equal(cache.lookup(get(), key), undefined, 'without ETag: removed');
    cache.afterUnsafe(req(method), withEtagTarget, res(code));
    assert.equal(cache.lookup(get(), k2)?.kind, 'stale', 'with ETag: kept for revalidation');
  }
  // FETCH variants of the same resource go too
  const fetch = req(Method.FETCH, [], '["a"]');
  cache.store(fetch, cache.cacheKey(fetch, TARGET), content('a'));
  cache.invalidate(TARGET);
  assert.equal(cache.lookup(fetch, cache.cacheKey(fetch, TARGET)), undefined);
});

test('§5.9.1.1: 2.01 with Location-Path also invalidates the created resource', () => {
  const created = res(ResponseCode.Created, [o(OptionNumber.LocationPath, 'items'), o(OptionNumber.LocationPath, '42')]);
  assert.deepEqual(invalidationTargets('coap://192.0.2.7:5683/items', created), ['coap://192.0.2.7:5683/items', 'coap://192.0.2.7:5683/items/42']);
  const { cache } = setup();
  const key = cache.cacheKey(get(), 'coap://192.0.2.7:5683/items/42');
  cache.store(get(), key, res(ResponseCode.NotFound));
  cache.afterUnsafe(req(Method.POST), 'coap://192.0.2.7:5683/items', created);
  assert.equal(cache.lookup(get(), key), undefined, 'the cached 4.04 for the new resource is gone');
});

test('N clients, one origin request per freshness period (a counting origin on the fake clock)', () => {
  const { cache, advance } = setup();
  let originRequests = 0;
  const origin = (): CoapMessage => {
    originRequests++;
    return content(`reading ${originRequests}`, [maxAge(10), etag(originRequests)]);
  };
  /** A caching forwarder in a dozen lines: what the proxy does with lookup/store/revalidated. */
  const proxy = (request: CoapMessage): CoapMessage => {
    const key = cache.cacheKey(request, TARGET);
    const found = cache.lookup(request, key);
    if (found?.kind === 'fresh' || found?.kind === 'valid') return found.response;
    const upstream = origin();
    cache.store(request, key, upstream);
    return upstream;
  };
  const seen = new Set<string>();
  for (let second = 0; second < 60; second++) {
    for (let client = 0; client < 50; client++) seen.add(decodeString(proxy(get()).payload));
    advance(1_000);
  }
  assert.equal(originRequests, 6, '60 s of 50 requests per second, Max-Age 10: six origin requests');
  assert.equal(seen.size, 6);
  assert.equal(cache.stats().hits, 60 * 50 - 6);
});

test('lookupFresh answers exactly what lookup answers from a fresh entry (PR2.3, PR2.4, PR2.5)', () => {
  const { cache, advance } = setup();
  const key = cache.cacheKey(get(), TARGET);
  cache.store(get(), key, content('21.5 C', [etag(0xa1), maxAge(20), o(OptionNumber.ContentFormat, ContentFormat.Json)]));
  advance(5_000);
  const requests = [get(), get([etag(0xa1)]), get([etag(0x01), etag(0xa1)]), get([o(OptionNumber.Accept, ContentFormat.Json)])];
  for (const request of requests) {
    const fresh = cache.lookupFresh(request, key);
    const full = cache.lookup(request, key);
    assert.ok(fresh && full && full.kind !== 'stale');
    assert.equal(fresh.kind, full.kind);
    assert.deepEqual(fresh.response, full.response);
  }
  assert.equal(cache.lookupFresh(get(), key)?.kind, 'fresh');
  assert.equal(getUintOption(answer(cache.lookupFresh(get(), key)), OptionNumber.MaxAge), 15, 'PR2.4: the remaining freshness');
  assert.equal(cache.lookupFresh(get([etag(0xa1)]), key)?.kind, 'valid', 'PR2.3: 2.03 for a matching ETag');
  assert.equal(cache.stats().hits, 2 * requests.length + 3);
});

test('lookupFresh leaves the cache as it was when it cannot answer: no miss counted, nothing dropped', () => {
  const { cache, advance } = setup();
  const key = cache.cacheKey(get(), TARGET);
  const errorKey = cache.cacheKey(get(), 'coap://192.0.2.7/missing');
  cache.store(get(), key, content('v1', [etag(1), maxAge(10)]));
  cache.store(get(), errorKey, res(ResponseCode.NotFound, [maxAge(10)]));
  const cbor = get([o(OptionNumber.Accept, ContentFormat.Cbor)]);
  const unanswerable = [
    [get([etag(0xb2)]), key], // PR2.3: another ETag goes upstream
    [cbor, key], // PR2.5: no variant in that Content-Format
    [get(), cache.cacheKey(get(), 'coap://192.0.2.7/other')], // no entry
    [req(Method.POST), key], // unsafe methods never come from the cache
  ] as const;
  const before = cache.stats();
  for (const [request, k] of unanswerable) assert.equal(cache.lookupFresh(request, k), undefined);
  advance(10_000);
  // Expired: the 2.05 with an ETag awaits revalidation, the 4.04 is to be dropped — by lookup only.
  assert.equal(cache.lookupFresh(get(), key), undefined);
  assert.equal(cache.lookupFresh(get(), errorKey), undefined);
  assert.deepEqual(cache.stats(), before, 'no counter moved, no entry dropped');
  // lookup then does what it always did with the same requests.
  assert.equal(cache.lookup(get(), key)?.kind, 'stale');
  assert.equal(cache.lookup(get(), errorKey), undefined);
  assert.deepEqual({ entries: cache.stats().entries, misses: cache.stats().misses }, { entries: 1, misses: before.misses + 2 });
});

test('hits keep the LRU order whichever lookup served them; consecutive hits on one entry share nothing mutable', () => {
  const { cache, advance } = setup(3_000);
  const payload = 'x'.repeat(500);
  const keys = [0, 1, 2, 3].map((i) => cache.cacheKey(get(), `coap://192.0.2.7/r${i}`));
  for (const k of keys.slice(0, 3)) cache.store(get(), k, content(payload, [maxAge(60)]));
  // r0 used (through lookupFresh) twice in a row, so r1 is the least recently used.
  const a = answer(cache.lookupFresh(get(), keys[0]!));
  const b = answer(cache.lookupFresh(get(), keys[0]!));
  assert.notEqual(a, b);
  assert.notEqual(a.options, b.options);
  a.options.length = 0;
  a.type = 2;
  assert.equal(getUintOption(b, OptionNumber.MaxAge), 60, 'what a caller does to its copy is not seen by the next');
  assert.equal(getUintOption(answer(cache.lookup(get(), keys[0]!)), OptionNumber.MaxAge), 60);
  cache.store(get(), keys[3]!, content(payload, [maxAge(60)]));
  assert.ok(cache.stats().evictions >= 1);
  assert.equal(cache.lookupFresh(get(), keys[1]!), undefined, 'r1 (least recently used) went first');
  assert.equal(cache.lookupFresh(get(), keys[0]!)?.kind, 'fresh', 'r0 was used, so it stayed');
  // The served Max-Age follows the clock, also for an entry served many times within one second.
  advance(1_500);
  assert.equal(getUintOption(answer(cache.lookupFresh(get(), keys[0]!)), OptionNumber.MaxAge), 58);
});

test('Cache-Key: a GET keyed by its target alone gets the same key however many targets came before', () => {
  const { cache } = setup();
  const first = cache.cacheKey(get(), TARGET);
  for (let i = 0; i < 1500; i++) {
    const target = `coap://192.0.2.7/r${i}`;
    const key = cache.cacheKey(get(), target);
    assert.equal(ResponseCache.targetOf(key), target);
    assert.equal(cache.cacheKey(get([o(OptionNumber.Size2, 0)]), target), key, 'NoCacheKey options leave the key as it is');
    assert.notEqual(cache.cacheKey(get([o(OptionNumber.IfNoneMatch, '')]), target), key, 'other options enter the key');
    assert.notEqual(cache.cacheKey(req(Method.FETCH), target), key, 'the method is part of the key');
  }
  assert.equal(cache.cacheKey(get(), TARGET), first);
  // A response stored under the key of one request is found with the key of another.
  cache.store(get(), cache.cacheKey(get(), TARGET), content('v'));
  assert.equal(cache.lookupFresh(get([o(OptionNumber.Size2, 0)]), cache.cacheKey(get([o(OptionNumber.Size2, 0)]), TARGET))?.kind, 'fresh');
});
