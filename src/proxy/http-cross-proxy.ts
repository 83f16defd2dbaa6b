/**
 * HTTP-to-CoAP cross-proxy (RFC 8075) on Node's built-in http module, and the CoAP-to-HTTP
 * direction (RFC 7252 §10.1) a forward proxy uses for Proxy-Scheme http/https.
 *
 * HTTP side: `GET http://proxy/hc/coap://host:port/path?q` (the default mapping, §5.3), or any
 * mapping a `resolveTarget` function implements (the null mapping of §5.2, templates of §5.4).
 * Methods, codes, media types, entity tags and freshness map as http-mapping.ts says. The CoAP
 * side is an ordinary CoapClient, so block-wise transfers, retransmission and OSCORE (through the
 * client's `security` option) all happen below.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type AddressInfo, type LookupFunction } from 'node:net';
import type { LookupAddress } from 'node:dns';
import type { CoapClient } from '../client/client.js';
import { Method, ResponseCode, codeToString, type Code } from '../coap/codes.js';
import { EMPTY_BYTES, bytesEqual, createMessage, encodeUint, getOption, getOptions, getStringOptions, getUintOption, maxAgeOf, sortOptions, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { ResponseCache, conditionalReply, isCacheableMethod } from './cache.js';
import { HttpRequestPolicy } from './http-request-policy.js';
import { DestinationPolicy, DestinationRefusedError } from './destination-policy.js';
import type { PeerAddress } from '../transport/transport.js';
import { UriError, formatCoapUri, parseCoapUri, type CoapUri } from '../coap/uri.js';
import { CoapRequestError, TimeoutError } from '../exchange/errors.js';
import {
  MappingError,
  acceptToCoap,
  cacheControlToMaxAge,
  coapCodeToHttpStatus,
  coapMethodToHttp,
  contentFormatToMediaType,
  etagToHttp,
  extractTargetUri,
  hostingPath,
  httpEtagToCoap,
  httpMethodToCoap,
  httpStatusToCoapCode,
  isMulticastHost,
  maxAgeToHttpHeaders,
  mediaTypeToContentFormat,
  parseEntityTags,
} from './http-mapping.js';

export interface HttpCrossProxyOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  client: CoapClient;
  /** Where the HC Proxy function is anchored (the HC Proxy URI's path). Default "/hc/". */
  prefix?: string;
  /**
   * Another URI mapping: the Target CoAP URI for an HTTP request, or undefined to fall back to
   * the default mapping. Throw MappingError for a client error of your own.
   */
  resolveTarget?: (request: IncomingMessage) => string | undefined;
  /**
   * Called before the CoAP request is made: logging, access control (an open HC proxy is a
   * hazard, RFC 8075 §10). Return an HTTP status (and body) to refuse the request.
   */
  onRequest?: (info: CrossProxyRequestInfo) => void | { status: number; body?: string };
  /** Milliseconds for the whole CoAP exchange (RFC 8075 §8.5); on expiry 504. Default 30 s. */
  timeout?: number;
  /**
   * CoAP destinations besides public addresses (CIDR networks, addresses, host names; see
   * destination-policy.ts): loopback, private, link-local and other special addresses get 403
   * unless named here. Judged on the address the client's request goes to. Not applied when the
   * client sends through a proxy of its own (its `proxy` or `via`): that next hop decides.
   */
  allowDestinations?: readonly string[];
  /**
   * Host names (Host header, without port) this proxy answers to besides IP literals, "localhost"
   * and `host`; other names get 421, so a DNS-rebinding page cannot use it (http-request-policy.ts).
   */
  hostNames?: readonly string[];
  /**
   * Web origins whose pages may send state-changing requests and read answers (CORS). Other
   * browsers' cross-origin POST/PUT/DELETE/... get 403; requests without Origin (not from a browser page) are unaffected.
   */
  allowedOrigins?: readonly string[];
  /** Largest HTTP request body; larger ones get 413. Default 1 MiB. */
  maxBodySize?: number;
  /** Forward "application/coap-payload; cf=N" bodies as Content-Format N (RFC 8075 §6.2). */
  allowCoapPayload?: boolean;
  /** Use the loose media type mapping of RFC 8075 §6.3 for request bodies. Default false. */
  looseMediaTypes?: boolean;
  /**
   * A response cache (RFC 8075 §8.1): GET/QUERY answered from it while fresh, stale entries
   * revalidated with ETags (a 2.03 then gives 200 with the cached body, §7 note 4), and successful
   * unsafe requests invalidate (RFC 7252 §5.9.1).
   */
  cache?: ResponseCache;
}

export interface CrossProxyRequestInfo {
  httpMethod: string;
  method: Code;
  target: string;
  remoteAddress: string | undefined;
  headers: IncomingMessage['headers'];
}

export interface HttpCrossProxy {
  address(): AddressInfo;
  close(): Promise<void>;
  readonly server: Server;
}

const DEFAULT_MAX_BODY = 1 << 20;

export async function startHttpCrossProxy(options: HttpCrossProxyOptions): Promise<HttpCrossProxy> {
  const prefix = options.prefix ?? '/hc/';
  const bound = options.host ?? '127.0.0.1';
  const policy = new HttpRequestPolicy({ hostNames: [...(isIP(bound) === 0 ? [bound] : []), ...(options.hostNames ?? [])], allowedOrigins: options.allowedOrigins ?? [] });
  const destinations = new DestinationPolicy({ allow: options.allowDestinations ?? [] });
  const admit = (host: string, peer: PeerAddress): void => {
    if (!destinations.permits('coap', host, peer.address)) throw new DestinationRefusedError();
  };
  const server = createServer((req, res) => {
    handle(req, res, options, prefix, policy, admit).catch((e: unknown) => {
      if (!res.headersSent) reply(res, 500, `internal error: ${e instanceof Error ? e.message : String(e)}`);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    address: () => server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function reply(res: ServerResponse, status: number, body: string, headers: OutgoingHttpHeaders = {}): void {
  const bytes = Buffer.from(body, 'utf8');
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': bytes.length, ...headers });
  res.end(bytes);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
};

async function handle(req: IncomingMessage, res: ServerResponse, options: HttpCrossProxyOptions, prefix: string, policy: HttpRequestPolicy, admit: (host: string, peer: PeerAddress) => void): Promise<void> {
  const httpMethod = (req.method ?? 'GET').toUpperCase();
  // Before anything else: which page may make this proxy act (RFC 8075 §10.1 on open HC proxies).
  const verdict = policy.judge(httpMethod, req.headers);
  if (verdict.kind === 'refuse') {
    req.resume();
    return reply(res, verdict.status, verdict.body, { vary: 'Origin' });
  }
  if (verdict.kind === 'preflight') {
    req.resume();
    res.writeHead(204, verdict.headers);
    res.end();
    return;
  }
  for (const [name, value] of Object.entries(verdict.headers)) if (value !== undefined) res.setHeader(name, value);
  const method = httpMethodToCoap(httpMethod);
  if (method === undefined) {
    req.resume();
    reply(res, 501, `method ${httpMethod} has no CoAP equivalent`);
    return;
  }

  // --- target URI (§5) ---
  let target: CoapUri | undefined;
  try {
    const resolved = options.resolveTarget?.(req);
    target = resolved !== undefined ? parseCoapUri(resolved) : extractTargetUri(req.url ?? '/', prefix);
  } catch (e) {
    req.resume();
    if (e instanceof MappingError) return reply(res, e.status, e.message);
    if (e instanceof UriError) return reply(res, 400, `bad Target CoAP URI: ${e.message}`);
    throw e;
  }
  if (target === undefined) {
    req.resume();
    reply(res, 404, `not an HC proxy URI: use ${prefix}coap://host[:port]/path`);
    return;
  }
  if (isMulticastHost(target.host)) {
    req.resume();
    reply(res, 403, 'CoAP multicast is not supported through this proxy (RFC 8075 §8.4)');
    return;
  }
  const targetText = formatCoapUri(target);
  const refusal = options.onRequest?.({ httpMethod, method, target: targetText, remoteAddress: req.socket.remoteAddress, headers: req.headers });
  if (refusal) {
    req.resume();
    reply(res, refusal.status, refusal.body ?? '');
    return;
  }

  // --- body and media type (§6) ---
  const body = await readBody(req, options.maxBodySize ?? DEFAULT_MAX_BODY);
  if (body === undefined) {
    reply(res, 413, `request body larger than ${options.maxBodySize ?? DEFAULT_MAX_BODY} bytes`, { connection: 'close' });
    return;
  }
  const carriesBody = method !== Method.GET && method !== Method.DELETE;
  let contentFormat: number | undefined;
  const contentType = header(req, 'content-type');
  if (carriesBody && contentType !== undefined) {
    contentFormat = mediaTypeToContentFormat(contentType, {
      ...(header(req, 'content-encoding') !== undefined ? { contentEncoding: header(req, 'content-encoding')! } : {}),
      ...(options.allowCoapPayload ? { allowCoapPayload: true } : {}),
      ...(options.looseMediaTypes ? { loose: true } : {}),
    });
    if (contentFormat === undefined) {
      reply(res, 415, `cannot map Content-Type ${JSON.stringify(contentType)} to a CoAP Content-Format (RFC 8075 §6)`);
      return;
    }
  } else if (carriesBody && body.length > 0 && header(req, 'content-encoding') !== undefined) {
    reply(res, 415, 'a Content-Encoding without a Content-Type cannot be mapped');
    return;
  }
  const accept = acceptToCoap(header(req, 'accept'));

  // --- conditional requests ---
  const coapOptions: CoapOption[] = [];
  const ifMatch = parseEntityTags(header(req, 'if-match'));
  if (ifMatch.any) coapOptions.push({ number: OptionNumber.IfMatch, value: EMPTY_BYTES });
  for (const tag of ifMatch.tags) coapOptions.push({ number: OptionNumber.IfMatch, value: tag });
  if (!ifMatch.any && ifMatch.tags.length === 0 && ifMatch.unmapped > 0) {
    // None of these can be a tag this proxy issued, so none can match (RFC 7232 §3.1).
    reply(res, 412, 'If-Match names no entity-tag of the CoAP resource');
    return;
  }
  const ifNoneMatch = parseEntityTags(header(req, 'if-none-match'));
  let conditional = false;
  if (method === Method.GET || method === Method.FETCH) {
    // A conditional GET is a CoAP validation request: its entity-tags go in ETag options (§5.10.6.2).
    for (const tag of ifNoneMatch.tags) coapOptions.push({ number: OptionNumber.ETag, value: tag });
    conditional = ifNoneMatch.tags.length > 0;
  } else if (ifNoneMatch.any) {
    coapOptions.push({ number: OptionNumber.IfNoneMatch, value: EMPTY_BYTES });
  } else if (ifNoneMatch.tags.length > 0 || ifNoneMatch.unmapped > 0) {
    reply(res, 400, 'If-None-Match with entity-tags has no CoAP equivalent for this method (only "*")');
    return;
  }

  // --- the cache (RFC 8075 §8.1) ---
  const payload = carriesBody && body.length > 0 ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength) : EMPTY_BYTES;
  const cache = options.cache;
  const keyed = createMessage({
    code: method,
    options: [
      ...coapOptions,
      ...(contentFormat !== undefined ? [{ number: OptionNumber.ContentFormat, value: encodeUint(contentFormat) }] : []),
      ...(accept !== undefined ? [{ number: OptionNumber.Accept, value: encodeUint(accept) }] : []),
    ],
    payload,
  });
  const key = cache && isCacheableMethod(method) ? cache.cacheKey(keyed, targetText) : undefined;
  let upstreamOptions = coapOptions;
  let revalidating = false;
  if (cache && key !== undefined) {
    const found = cache.lookup(keyed, key);
    if (found?.kind === 'fresh' || found?.kind === 'valid') {
      sendCoapResponse(res, found.response, { conditional, head: httpMethod === 'HEAD', target, prefix, cached: true });
      return;
    }
    if (found?.kind === 'stale') {
      // §5.6.2: validate the stored response (and the requester's own tags) upstream.
      upstreamOptions = [...coapOptions.filter((o) => o.number !== OptionNumber.ETag), ...found.etags.map((value) => ({ number: OptionNumber.ETag, value }))];
      revalidating = true;
    }
  }

  // --- the CoAP request ---
  let response: CoapMessage;
  try {
    const answer = await options.client.request({
      method,
      uri: targetText,
      ...(payload.length > 0 ? { payload } : {}),
      ...(contentFormat !== undefined ? { contentFormat } : {}),
      ...(accept !== undefined ? { accept } : {}),
      options: upstreamOptions,
      timeout: options.timeout ?? 30_000,
      admit,
    });
    response = answer.message;
  } catch (e) {
    if (e instanceof DestinationRefusedError) return reply(res, 403, e.message);
    if (e instanceof TimeoutError) return reply(res, 504, `no response from ${targetText}`);
    if (e instanceof CoapRequestError) return reply(res, 502, `CoAP request to ${targetText} failed: ${e.message}`);
    if (e instanceof UriError) return reply(res, 400, e.message);
    throw e;
  }
  if (cache && key !== undefined) {
    if (response.code === ResponseCode.Valid && revalidating) {
      const refreshed = cache.revalidated(key, response, keyed);
      // The stored copy is valid again: the requester gets it, or a 304 if it holds that tag.
      if (refreshed) response = conditionalReply(keyed, refreshed);
    } else {
      cache.store(keyed, key, response);
    }
  } else if (cache) {
    cache.afterUnsafe(keyed, targetText, response);
  }
  sendCoapResponse(res, response, { conditional, head: httpMethod === 'HEAD', target, prefix, cached: cache && key !== undefined ? false : undefined });
}

function sendCoapResponse(
  res: ServerResponse,
  response: CoapMessage,
  context: { conditional: boolean; head: boolean; target: CoapUri; prefix: string; cached: boolean | undefined },
): void {
  const payload = response.payload;
  const { status, reason } = coapCodeToHttpStatus(response.code, { hasPayload: payload.length > 0, conditional: context.conditional });
  const headers: OutgoingHttpHeaders = { 'x-coap-response-code': codeToString(response.code) };
  if (context.cached !== undefined) headers['x-cache'] = context.cached ? 'HIT' : 'MISS';
  const cf = getUintOption(response, OptionNumber.ContentFormat);
  if (cf !== undefined) {
    const mapped = contentFormatToMediaType(cf);
    headers['content-type'] = mapped.contentType;
    if (mapped.contentEncoding) headers['content-encoding'] = mapped.contentEncoding;
  } else if (payload.length > 0 && response.code >= ResponseCode.BadRequest) {
    // A diagnostic payload (RFC 7252 §5.5.2) is UTF-8 text; it goes in the body (RFC 8075 §6.5.3).
    headers['content-type'] = 'text/plain; charset=utf-8';
  }
  const etag = getOption(response, OptionNumber.ETag);
  if (etag !== undefined) headers['etag'] = etagToHttp(etag);
  Object.assign(headers, maxAgeToHttpHeaders(response.code, maxAgeOf(response)));
  if (response.code === ResponseCode.Created) {
    const path = getStringOptions(response, OptionNumber.LocationPath);
    const query = getStringOptions(response, OptionNumber.LocationQuery);
    if (path.length > 0 || query.length > 0) headers['location'] = hostingPath({ ...context.target, path, query }, context.prefix);
  }
  const body = status === 304 || status === 204 || context.head ? EMPTY_BYTES : payload;
  if (status !== 304 && status !== 204) headers['content-length'] = payload.length;
  if (status === 304) delete headers['content-type'];
  if (reason !== undefined) res.writeHead(status, reason, headers);
  else res.writeHead(status, headers);
  res.end(body.length > 0 ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : undefined);
}

// --- CoAP → HTTP (RFC 7252 §10.1) ------------------------------------------------------------

export interface CoapToHttpRequest {
  method: Code;
  /** http:// or https:// */
  uri: string;
  /** The request's options other than the URI ones (Content-Format, Accept, ETag, If-*). */
  options?: readonly CoapOption[];
  payload?: Uint8Array;
  /** Milliseconds until 5.04. Default 30 s. */
  timeout?: number;
  /** Largest HTTP response body accepted; larger ones give 5.02. Default 16 MiB. */
  maxBodySize?: number;
  /**
   * Connect to this IP address instead of resolving the URI's host again: the address a
   * destination policy approved (src/proxy/destination-policy.ts). A second lookup could answer
   * differently (DNS rebinding). The URI's host still goes in the Host header and TLS SNI.
   */
  address?: string;
}

export interface CoapToHttpResponse {
  code: Code;
  payload: Uint8Array;
  contentFormat: number | undefined;
  maxAge: number;
  etag: Uint8Array | undefined;
  /** Content-Format, ETag and Max-Age as CoAP options, sorted. */
  options: CoapOption[];
  /** The HTTP status, when there was an HTTP response. */
  httpStatus?: number;
}

function coapResponse(code: Code, payload: Uint8Array, extra: { contentFormat?: number; maxAge?: number; etag?: Uint8Array; httpStatus?: number } = {}): CoapToHttpResponse {
  const options: CoapOption[] = [];
  if (extra.etag) options.push({ number: OptionNumber.ETag, value: extra.etag });
  if (extra.contentFormat !== undefined) options.push({ number: OptionNumber.ContentFormat, value: encodeUint(extra.contentFormat) });
  const maxAge = extra.maxAge ?? 0;
  options.push({ number: OptionNumber.MaxAge, value: encodeUint(maxAge) });
  return {
    code,
    payload,
    contentFormat: extra.contentFormat,
    maxAge,
    etag: extra.etag,
    options: sortOptions(options),
    ...(extra.httpStatus !== undefined ? { httpStatus: extra.httpStatus } : {}),
  };
}

const diagnostic = (code: Code, text: string): CoapToHttpResponse => coapResponse(code, Buffer.from(text, 'utf8'));

/** A `lookup` for net.connect that answers every name with `address` (Node may ask for one or all addresses). */
function pinnedLookup(address: string): LookupFunction {
  const family = isIP(address) === 6 ? 6 : 4;
  return ((_host: string, options: { all?: boolean }, callback: (error: Error | null, address: string | LookupAddress[], family?: number) => void) => {
    if (options?.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  }) as unknown as LookupFunction;
}

/**
 * Performs a CoAP request against an HTTP origin and returns the CoAP response for it. Never
 * throws for network trouble: 5.02 (connection failed, bad response), 5.04 (timeout), 5.05
 * (not an http/https URI), 4.05 (a CoAP method without HTTP counterpart).
 */
export function coapToHttp(request: CoapToHttpRequest): Promise<CoapToHttpResponse> {
  let url: URL;
  try {
    url = new URL(request.uri);
  } catch {
    return Promise.resolve(diagnostic(ResponseCode.BadRequest, `bad URI ${request.uri}`));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return Promise.resolve(diagnostic(ResponseCode.ProxyingNotSupported, `scheme ${url.protocol} is not proxied to HTTP`));
  }
  const httpMethod = coapMethodToHttp(request.method);
  if (httpMethod === undefined) return Promise.resolve(diagnostic(ResponseCode.MethodNotAllowed, 'no HTTP method for this CoAP method'));
  const options = request.options ?? [];
  // getOption stops at the first larger number: sort a copy, callers may pass them in any order.
  const msg = { options: sortOptions([...options]) };
  const headers: OutgoingHttpHeaders = {};
  const cf = getUintOption(msg, OptionNumber.ContentFormat);
  const payload = request.payload ?? EMPTY_BYTES;
  if (cf !== undefined) {
    const mapped = contentFormatToMediaType(cf);
    headers['content-type'] = mapped.contentType;
    if (mapped.contentEncoding) headers['content-encoding'] = mapped.contentEncoding;
  }
  const accept = getUintOption(msg, OptionNumber.Accept);
  if (accept !== undefined) headers['accept'] = contentFormatToMediaType(accept).contentType;
  const requestEtags = getOptions(msg, OptionNumber.ETag);
  const safe = request.method === Method.GET || request.method === Method.FETCH;
  if (safe && requestEtags.length > 0) headers['if-none-match'] = requestEtags.map(etagToHttp).join(', ');
  const ifMatch = getOptions(msg, OptionNumber.IfMatch);
  if (ifMatch.length > 0) headers['if-match'] = ifMatch.some((v) => v.length === 0) ? '*' : ifMatch.map(etagToHttp).join(', ');
  if (getOption(msg, OptionNumber.IfNoneMatch) !== undefined) headers['if-none-match'] = '*';
  const sendsBody = payload.length > 0 && request.method !== Method.GET && request.method !== Method.DELETE;
  if (sendsBody) headers['content-length'] = payload.length;
  const timeout = request.timeout ?? 30_000;
  const limit = request.maxBodySize ?? 16 << 20;

  return new Promise((resolve) => {
    let settled = false;
    const done = (r: CoapToHttpResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const pinned = request.address;
    const req = send(url, { method: httpMethod, headers, ...(pinned !== undefined ? { lookup: pinnedLookup(pinned) } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          req.destroy();
          done(diagnostic(ResponseCode.BadGateway, `HTTP response body larger than ${limit} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', () => done(diagnostic(ResponseCode.BadGateway, 'HTTP response was cut off')));
      res.on('end', () => {
        const status = res.statusCode ?? 502;
        let code = httpStatusToCoapCode(status, request.method);
        const body = Buffer.concat(chunks);
        const contentType = res.headers['content-type'];
        const contentEncoding = res.headers['content-encoding'];
        const contentFormat =
          contentType === undefined || code === ResponseCode.Valid
            ? undefined
            : mediaTypeToContentFormat(contentType, { loose: true, ...(contentEncoding !== undefined ? { contentEncoding } : {}) });
        const etagHeader = res.headers['etag'];
        const etag = httpEtagToCoap(Array.isArray(etagHeader) ? etagHeader[0] : etagHeader);
        const cacheable = code === ResponseCode.Content || code === ResponseCode.Valid || code >= ResponseCode.BadRequest;
        const maxAge = cacheable ? cacheControlToMaxAge(res.headers['cache-control']) : 0;
        let payloadOut: Uint8Array = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
        // An origin that ignored If-None-Match: the same validation answer a CoAP server gives.
        if (code === ResponseCode.Content && etag !== undefined && requestEtags.some((e) => bytesEqual(e, etag))) {
          code = ResponseCode.Valid;
          payloadOut = EMPTY_BYTES;
        }
        done(
          coapResponse(code, code === ResponseCode.Valid ? EMPTY_BYTES : payloadOut, {
            ...(contentFormat !== undefined && code !== ResponseCode.Valid ? { contentFormat } : {}),
            maxAge,
            ...(etag !== undefined ? { etag } : {}),
            httpStatus: status,
          }),
        );
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      done(diagnostic(ResponseCode.GatewayTimeout, `no HTTP response from ${url.host} within ${timeout} ms`));
    }, timeout);
    req.on('error', (e) => done(diagnostic(ResponseCode.BadGateway, `HTTP request to ${url.host} failed: ${e.message}`)));
    req.end(sendsBody ? Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) : undefined);
  });
}
