/**
 * Pure HTTP ↔ CoAP mapping functions (RFC 8075; RFC 7252 §10): the Target CoAP URI inside a
 * Hosting HTTP URI (§5.3 default mapping, §5.3.2 encoding caveats), methods, response codes
 * (§7 Table 2, and RFC 7252 §10.1 for the other direction), media types ↔ Content-Formats (§6,
 * with the loose mapping of §6.3 and application/coap-payload of §6.2), entity tags and freshness.
 * No I/O here: http-cross-proxy.ts and coapToHttp use these.
 */
import { createHash } from 'node:crypto';
import { Method, ResponseCode, codeClass, codeToDotted, type Code } from '../coap/codes.js';
import { contentFormatName } from '../coap/content-format.js';
import { parseIpAddress } from '../coap/ip-address.js';
import { UriError, formatCoapUri, parseCoapUri, type CoapUri } from '../coap/uri.js';

export class MappingError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'MappingError';
  }
}

// --- URIs (RFC 8075 §5) ----------------------------------------------------------------------

/**
 * §5.3: the Target CoAP URI appended to the HC Proxy URI (`prefix`, e.g. "/hc/"), from the HTTP
 * request-target (path and query, as Node's `req.url` gives it). Percent-encoded square brackets
 * (and a percent-encoded ":" before the port) in the authority are reverted (§5.3.2); the rest is
 * the CoAP URI verbatim and is decoded once by parseCoapUri. Returns undefined when the path is
 * not below `prefix`; throws MappingError(400) for a missing scheme (§5.3.1) or a bad URI.
 * Besides coap and coaps (§5.3.1), the schemes of CoAP over TCP, TLS and WebSockets (RFC 8323 §8)
 * name targets too: the CoAP client reaches each over its own carrier.
 */
export function extractTargetUri(requestTarget: string, prefix = '/hc/'): CoapUri | undefined {
  if (!requestTarget.startsWith(prefix)) return undefined;
  let text = requestTarget.slice(prefix.length);
  // A client may percent-encode the whole scheme delimiter ("coap%3A//").
  text = text.replace(/^(coaps?(?:\+tcp|\+ws)?)%3a/i, '$1:');
  const scheme = /^(coaps?(?:\+tcp|\+ws)?):\/\//i.exec(text);
  if (!scheme) {
    throw new MappingError(400, `the Target CoAP URI needs a coap, coaps, coap+tcp, coaps+tcp, coap+ws or coaps+ws scheme (RFC 8075 §5.3.1, RFC 8323 §8): ${JSON.stringify(text.slice(0, 100))}`);
  }
  const start = scheme[0].length;
  const end = text.slice(start).search(/[/?]/);
  const authorityEnd = end < 0 ? text.length : start + end;
  const authority = text.slice(start, authorityEnd).replace(/%5b/gi, '[').replace(/%5d/gi, ']').replace(/%3a/gi, ':');
  const uri = `${scheme[1]!.toLowerCase()}://${authority}${text.slice(authorityEnd)}`;
  try {
    return parseCoapUri(uri);
  } catch (e) {
    if (e instanceof UriError) throw new MappingError(400, `bad Target CoAP URI: ${e.message}`);
    throw e;
  }
}

/** §5.3: the Hosting HTTP URI path for a CoAP URI (brackets percent-encoded, §5.3.2). */
export function hostingPath(target: CoapUri | string, prefix = '/hc/'): string {
  const text = typeof target === 'string' ? target : formatCoapUri(target);
  const m = /^(coaps?(?:\+tcp|\+ws)?:\/\/)([^/?]*)(.*)$/i.exec(text);
  if (!m) return `${prefix}${text}`;
  return `${prefix}${m[1]}${m[2]!.replace(/\[/g, '%5B').replace(/\]/g, '%5D')}${m[3]}`;
}

/** RFC 8075 §8.4: multicast targets (IPv4 224.0.0.0/4, IPv6 ff00::/8) are refused with 403. */
export function isMulticastHost(host: string): boolean {
  const ip = parseIpAddress(host);
  if (ip === undefined) return false;
  if (ip.version === 4) {
    const first = Number(ip.address.split('.')[0]);
    return first >= 224 && first <= 239;
  }
  return /^ff/i.test(ip.address);
}

// --- methods ---------------------------------------------------------------------------------

/**
 * HTTP method → CoAP method (RFC 7252 §10.2, RFC 8132). HEAD is a GET whose body is dropped.
 * FETCH is not an HTTP method Node's parser accepts; QUERY (the safe method with a body, the
 * HTTP counterpart of FETCH) and a literal FETCH map to CoAP FETCH. Others: undefined (→ 501).
 */
export function httpMethodToCoap(method: string): Code | undefined {
  switch (method.toUpperCase()) {
    case 'GET':
    case 'HEAD':
      return Method.GET;
    case 'POST':
      return Method.POST;
    case 'PUT':
      return Method.PUT;
    case 'DELETE':
      return Method.DELETE;
    case 'PATCH':
      return Method.PATCH;
    case 'QUERY':
    case 'FETCH':
      return Method.FETCH;
    default:
      return undefined;
  }
}

/** CoAP method → HTTP method for CoAP→HTTP proxying (iPATCH → PATCH; FETCH → QUERY). */
export function coapMethodToHttp(code: Code): string | undefined {
  switch (code) {
    case Method.GET:
      return 'GET';
    case Method.POST:
      return 'POST';
    case Method.PUT:
      return 'PUT';
    case Method.DELETE:
      return 'DELETE';
    case Method.PATCH:
    case Method.IPATCH:
      return 'PATCH';
    case Method.FETCH:
      return 'QUERY';
    default:
      return undefined;
  }
}

// --- response codes --------------------------------------------------------------------------

export interface HttpStatus {
  status: number;
  /** A reason phrase to use instead of the default one (never the diagnostic payload, §6.5.3). */
  reason?: string;
}

/**
 * RFC 8075 §7 Table 2. `hasPayload` chooses 200 or 204 for 2.02/2.04 (note 2); `conditional`
 * says the HTTP request was a conditional GET, so 2.03 becomes 304 (note 3), otherwise 200
 * (note 4, a 2.03 refreshing the proxy's own cached copy). 4.02 → 500 unless the proxy knows the
 * option came from a request header (note 6: `badOptionFromHeader`). Codes the table does not
 * list map by class (4.09 → 409, 4.22 → 422, 4.29 → 429, other 4.xx → 400, 5.xx → 500).
 * 2.31 and 4.08 only occur inside block-wise transfers (note 10): 502 if one ever escapes.
 */
export function coapCodeToHttpStatus(
  code: Code,
  context: { hasPayload?: boolean; conditional?: boolean; badOptionFromHeader?: boolean } = {},
): HttpStatus {
  switch (code) {
    case ResponseCode.Created:
      return { status: 201 };
    case ResponseCode.Deleted:
    case ResponseCode.Changed:
      return { status: context.hasPayload ? 200 : 204 };
    case ResponseCode.Valid:
      return { status: context.conditional ? 304 : 200 };
    case ResponseCode.Content:
      return { status: 200 };
    case ResponseCode.BadRequest:
      return { status: 400 };
    case ResponseCode.Unauthorized:
      return { status: 403 }; // note 5: no WWW-Authenticate equivalent
    case ResponseCode.BadOption:
      return context.badOptionFromHeader ? { status: 400 } : { status: 500, reason: 'CoAP server returned 4.02' };
    case ResponseCode.Forbidden:
      return { status: 403 };
    case ResponseCode.NotFound:
      return { status: 404 };
    case ResponseCode.MethodNotAllowed:
      return { status: 400, reason: 'CoAP server returned 4.05' }; // note 7
    case ResponseCode.NotAcceptable:
      return { status: 406 };
    case ResponseCode.Conflict:
      return { status: 409 };
    case ResponseCode.PreconditionFailed:
      return { status: 412 };
    case ResponseCode.RequestEntityTooLarge:
      return { status: 413 };
    case ResponseCode.UnsupportedContentFormat:
      return { status: 415 };
    case ResponseCode.UnprocessableEntity:
      return { status: 422 };
    case ResponseCode.TooManyRequests:
      return { status: 429 };
    case ResponseCode.InternalServerError:
      return { status: 500 };
    case ResponseCode.NotImplemented:
      return { status: 501 };
    case ResponseCode.BadGateway:
      return { status: 502 };
    case ResponseCode.ServiceUnavailable:
      return { status: 503 };
    case ResponseCode.GatewayTimeout:
      return { status: 504 };
    case ResponseCode.ProxyingNotSupported:
      return { status: 502 }; // note 9
    case ResponseCode.HopLimitReached:
      return { status: 508, reason: 'CoAP server returned 5.08' };
    default: {
      const cls = codeClass(code);
      if (cls === 4 && code !== ResponseCode.RequestEntityIncomplete) return { status: 400, reason: `CoAP server returned ${codeToDotted(code)}` };
      if (cls === 5) return { status: 500, reason: `CoAP server returned ${codeToDotted(code)}` };
      return { status: 502, reason: `CoAP server returned ${codeToDotted(code)}` };
    }
  }
}

/**
 * HTTP status → CoAP response code for CoAP→HTTP proxying (RFC 7252 §10.1.1–§10.1.4: 2.01 for
 * 201, 2.02 for a successful DELETE, 2.04 for a successful POST/PUT/PATCH, 2.05 for a GET/FETCH,
 * 2.03 for 304; client and server errors by their nearest CoAP code). Redirects are not followed:
 * 5.02.
 */
export function httpStatusToCoapCode(status: number, method: Code): Code {
  if (status >= 200 && status < 300) {
    if (status === 201 && (method === Method.POST || method === Method.PUT)) return ResponseCode.Created;
    if (method === Method.GET || method === Method.FETCH) return ResponseCode.Content;
    if (method === Method.DELETE) return ResponseCode.Deleted;
    return ResponseCode.Changed;
  }
  if (status === 304) return ResponseCode.Valid;
  const table: Record<number, Code> = {
    400: ResponseCode.BadRequest,
    401: ResponseCode.Unauthorized,
    403: ResponseCode.Forbidden,
    404: ResponseCode.NotFound,
    405: ResponseCode.MethodNotAllowed,
    406: ResponseCode.NotAcceptable,
    409: ResponseCode.Conflict,
    410: ResponseCode.NotFound,
    412: ResponseCode.PreconditionFailed,
    413: ResponseCode.RequestEntityTooLarge,
    415: ResponseCode.UnsupportedContentFormat,
    422: ResponseCode.UnprocessableEntity,
    429: ResponseCode.TooManyRequests,
    500: ResponseCode.InternalServerError,
    501: ResponseCode.NotImplemented,
    502: ResponseCode.BadGateway,
    503: ResponseCode.ServiceUnavailable,
    504: ResponseCode.GatewayTimeout,
  };
  const mapped = table[status];
  if (mapped !== undefined) return mapped;
  if (status >= 400 && status < 500) return ResponseCode.BadRequest;
  if (status >= 500 && status < 600) return ResponseCode.InternalServerError;
  return ResponseCode.BadGateway;
}

// --- media types (RFC 8075 §6) ---------------------------------------------------------------

interface MediaType {
  type: string;
  subtype: string;
  params: Map<string, string>;
}

function parseMediaType(text: string): MediaType | undefined {
  const [essence, ...rest] = text.split(';');
  const m = /^\s*([a-z0-9!#$&^_.+*-]+)\/([a-z0-9!#$&^_.+*-]+)\s*$/i.exec(essence ?? '');
  if (!m) return undefined;
  const params = new Map<string, string>();
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    const name = p.slice(0, eq).trim().toLowerCase();
    let value = p.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    params.set(name, value);
  }
  return { type: m[1]!.toLowerCase(), subtype: m[2]!.toLowerCase(), params };
}

/** The registry, keyed by a canonical "type/subtype;name=value;..." (params sorted, unquoted). */
const CF_BY_MEDIA_TYPE: ReadonlyMap<string, number> = (() => {
  const map = new Map<string, number>();
  for (let n = 0; n <= 0xffff; n++) {
    const name = contentFormatName(n);
    if (name === undefined) continue;
    const mt = parseMediaType(name);
    if (mt) map.set(canonical(mt), n);
  }
  return map;
})();

function canonical(mt: MediaType): string {
  const params = [...mt.params].filter(([k]) => k !== 'charset' || mt.type === 'text').sort(([a], [b]) => a.localeCompare(b));
  return `${mt.type}/${mt.subtype}${params.map(([k, v]) => `;${k}=${v.toLowerCase()}`).join('')}`;
}

/** RFC 8075 §6.3 Table 1: the generalized media type for the loose mapping. */
export function looseMediaType(type: string, subtype: string): string {
  if (type === 'application' && subtype.endsWith('+xml')) return 'application/xml';
  if (type === 'application' && subtype.endsWith('+json')) return 'application/json';
  if (type === 'application' && subtype.endsWith('+cbor')) return 'application/cbor';
  if (type === 'text' && subtype === 'xml') return 'application/xml';
  if (type === 'text') return 'text/plain';
  return 'application/octet-stream';
}

const IDENTITY_ENCODINGS = new Set(['', 'identity']);

/**
 * RFC 8075 §6.4 mt2cf: Content-Type (+ Content-Encoding) → Content-Format, or undefined when it
 * cannot be mapped (the caller answers 415). text/* in UTF-8 or US-ASCII is text/plain;charset=
 * utf-8 (0) only for text/plain; a charset parameter other than UTF-8/US-ASCII does not map.
 * `application/coap-payload; cf=N` maps to N only when `allowCoapPayload` (§6.2 SHOULD NOT
 * otherwise). `loose` applies Table 1 of §6.3 when the exact type is not registered.
 */
export function mediaTypeToContentFormat(
  contentType: string,
  options: { contentEncoding?: string; allowCoapPayload?: boolean; loose?: boolean } = {},
): number | undefined {
  const mt = parseMediaType(contentType);
  if (!mt) return undefined;
  const encoding = (options.contentEncoding ?? '').trim().toLowerCase();
  if (mt.type === 'application' && mt.subtype === 'coap-payload') {
    if (!options.allowCoapPayload || !IDENTITY_ENCODINGS.has(encoding)) return undefined;
    const cf = mt.params.get('cf');
    return cf !== undefined && /^\d{1,5}$/.test(cf) && Number(cf) <= 0xffff ? Number(cf) : undefined;
  }
  const charset = mt.params.get('charset')?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'us-ascii') return undefined;
  if (mt.type === 'text') mt.params.set('charset', 'utf-8');
  if (!IDENTITY_ENCODINGS.has(encoding)) mt.params.set('content-coding', encoding);
  const exact = CF_BY_MEDIA_TYPE.get(canonical(mt));
  if (exact !== undefined || !options.loose) return exact;
  const general = parseMediaType(looseMediaType(mt.type, mt.subtype))!;
  if (mt.type === 'text' || general.type === 'text') general.params.set('charset', 'utf-8');
  if (!IDENTITY_ENCODINGS.has(encoding)) general.params.set('content-coding', encoding);
  return CF_BY_MEDIA_TYPE.get(canonical(general));
}

/**
 * Content-Format → Content-Type and Content-Encoding (RFC 8075 §6.1): a registered format's media
 * type, its content-coding parameter moved into Content-Encoding; an unknown one becomes
 * "application/coap-payload; cf=N" (§6.2).
 */
export function contentFormatToMediaType(cf: number): { contentType: string; contentEncoding?: string } {
  const name = contentFormatName(cf);
  if (name === undefined) return { contentType: `application/coap-payload; cf=${cf}` };
  const coding = /;\s*content-coding=([^;\s]+)/i.exec(name);
  if (!coding) return { contentType: name };
  return { contentType: name.replace(/;\s*content-coding=[^;\s]+/i, ''), contentEncoding: coding[1]! };
}

/**
 * HTTP Accept → CoAP Accept (RFC 8075 §6.1): undefined (no Accept option) when the header is
 * absent, contains any wildcard ("*\/*" MUST map to none), or nothing in it maps — failures to
 * map are silently ignored. Otherwise the mappable type with the highest q (first on ties).
 */
export function acceptToCoap(accept: string | undefined): number | undefined {
  if (accept === undefined || accept.trim() === '') return undefined;
  const ranges: Array<{ cf: number | undefined; q: number; i: number }> = [];
  const parts = accept.split(',');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!.trim();
    if (part === '') continue;
    const mt = parseMediaType(part);
    const q = mt?.params.has('q') ? Number(mt.params.get('q')) : 1;
    if (!(q > 0)) continue;
    if (!mt) continue;
    if (mt.type === '*' || mt.subtype === '*') return undefined;
    mt.params.delete('q');
    ranges.push({ cf: mediaTypeToContentFormat(part.replace(/;\s*q=[^;]*/i, '')), q, i });
  }
  const best = ranges.filter((r) => r.cf !== undefined).sort((a, b) => b.q - a.q || a.i - b.i)[0];
  return best?.cf;
}

// --- entity tags and freshness ---------------------------------------------------------------

/** A CoAP ETag as an HTTP strong entity-tag: lower-case hex in quotes. */
export const etagToHttp = (etag: Uint8Array): string => `"${Buffer.from(etag).toString('hex')}"`;

/**
 * An HTTP entity-tag list (If-Match, If-None-Match) → CoAP ETag values: `"hex"` (or W/"hex")
 * of 1–8 bytes maps back; anything else cannot be one we issued and is reported in `unmapped`.
 * `any` is true for "*".
 */
export function parseEntityTags(header: string | undefined): { any: boolean; tags: Uint8Array[]; unmapped: number } {
  const result = { any: false, tags: [] as Uint8Array[], unmapped: 0 };
  if (header === undefined) return result;
  if (header.trim() === '*') return { ...result, any: true };
  for (const m of header.matchAll(/(W\/)?"([^"]*)"/g)) {
    const text = m[2]!;
    if (/^([0-9a-f]{2}){1,8}$/i.test(text)) result.tags.push(Uint8Array.from(Buffer.from(text, 'hex')));
    else result.unmapped++;
  }
  return result;
}

/**
 * An HTTP ETag response header → a CoAP ETag (1–8 bytes): a tag of up to 8 hex bytes maps back
 * as is (round trip with etagToHttp); any other tag maps to the first 8 bytes of its SHA-256, so
 * the same HTTP representation always gets the same CoAP ETag. Weak tags map like strong ones
 * (a CoAP client only uses them to validate, which weak comparison permits for GET).
 */
export function httpEtagToCoap(header: string | undefined): Uint8Array | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*(W\/)?"([^"]*)"\s*$/.exec(header);
  if (!m) return undefined;
  const text = m[2]!;
  if (/^([0-9a-f]{2}){1,8}$/i.test(text)) return Uint8Array.from(Buffer.from(text, 'hex'));
  return Uint8Array.from(createHash('sha256').update(header.trim()).digest().subarray(0, 8));
}

/**
 * Cache-Control → Max-Age (RFC 7252 §10.1.1 / RFC 8075 §8.1): s-maxage (a proxy is a shared
 * cache) else max-age; no-store, no-cache and private give 0; absent freshness information gives
 * 0 too, since a CoAP client would otherwise assume 60 s the origin never granted.
 */
export function cacheControlToMaxAge(cacheControl: string | undefined): number {
  if (cacheControl === undefined) return 0;
  const directives = new Map<string, string | undefined>();
  for (const part of cacheControl.split(',')) {
    const [name, value] = part.split('=', 2) as [string, string | undefined];
    directives.set(name.trim().toLowerCase(), value?.trim().replace(/^"|"$/g, ''));
  }
  if (directives.has('no-store') || directives.has('no-cache') || directives.has('private')) return 0;
  const value = directives.get('s-maxage') ?? directives.get('max-age');
  if (value === undefined || !/^\d+$/.test(value)) return 0;
  return Math.min(Number(value), 0xffffffff);
}

/**
 * Max-Age → HTTP headers (RFC 8075 §7 note 8): Cache-Control max-age for cacheable responses
 * (2.05 and errors; 2.03's refreshed freshness), and Retry-After for 5.03.
 */
export function maxAgeToHttpHeaders(code: Code, maxAge: number): Record<string, string> {
  const headers: Record<string, string> = {};
  const cls = codeClass(code);
  if (code === ResponseCode.Content || code === ResponseCode.Valid || cls === 4 || cls === 5) {
    headers['cache-control'] = `max-age=${maxAge}`;
  }
  if (code === ResponseCode.ServiceUnavailable) headers['retry-after'] = String(maxAge);
  return headers;
}
