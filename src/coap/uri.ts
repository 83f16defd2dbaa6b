/**
 * coap:// and coaps:// URIs (RFC 7252 §6) and their mapping to and from the Uri-Host, Uri-Port,
 * Uri-Path and Uri-Query options (§6.4 decomposing, §6.5 composing). Pure; no name resolution.
 *
 * Percent-encoding is undone exactly once on the way in and applied exactly once on the way out
 * (the implementation note in §6), so a CoapUri holds decoded text: a path segment "a/b" is one
 * segment containing a slash, written "a%2Fb" in the URI.
 */
import { type CoapOption, decodeUint, encodeString, encodeUint } from './message.js';
import { OptionNumber, hasValidLength } from './options.js';
import { isIpv4, parseIpAddress, sameIpAddress } from './ip-address.js';

export class UriError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UriError';
  }
}

/** RFC 7252 §6 and RFC 8323 §8 (CoAP over TCP, TLS and WebSockets). */
export type CoapScheme = 'coap' | 'coaps' | 'coap+tcp' | 'coaps+tcp' | 'coap+ws' | 'coaps+ws';
const COAP_SCHEMES: ReadonlySet<string> = new Set<CoapScheme>(['coap', 'coaps', 'coap+tcp', 'coaps+tcp', 'coap+ws', 'coaps+ws']);

export interface CoapUri {
  scheme: CoapScheme;
  /** Decoded: no brackets around IPv6 (RFC 5952 form, zone after "%"), reg-names in lower case. */
  host: string;
  /** The explicit port, or the scheme's default (5683 coap, 5684 coaps). */
  port: number;
  /** Whether the URI carried a non-empty port ("coap://h:/" counts as no port, §6.1). */
  explicitPort: boolean;
  /** Decoded path segments; "coap://h" and "coap://h/" both have none (§6.4 step 8). */
  path: string[];
  /** Decoded query arguments, split on "&"; "coap://h/?" has one empty argument. */
  query: string[];
}

/** Any hierarchical absolute URI with an authority, as carried in Proxy-Uri (§5.10.2). */
export interface AbsoluteUri {
  /** Lower case. */
  scheme: string;
  host: string;
  /** The explicit port, else the scheme's default; undefined when the scheme has none we know. */
  port: number | undefined;
  explicitPort: boolean;
  path: string[];
  query: string[];
}

const DEFAULT_PORTS: ReadonlyMap<string, number> = new Map([
  ['coap', 5683],
  ['coaps', 5684],
  ['http', 80],
  ['https', 443],
  // RFC 8323 §8: CoAP over TCP/TLS and WebSockets.
  ['coap+tcp', 5683],
  ['coaps+tcp', 5684],
  ['coap+ws', 80],
  ['coaps+ws', 443],
]);

export const defaultPort = (scheme: string): number | undefined => DEFAULT_PORTS.get(scheme.toLowerCase());

// --- character classes (RFC 3986 §2.2, §2.3, §3.3, §3.4) -------------------------------------

function charTable(chars: string): boolean[] {
  const table = new Array<boolean>(128).fill(false);
  for (const c of chars) table[c.charCodeAt(0)] = true;
  return table;
}
const ALPHA_DIGIT = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const UNRESERVED = ALPHA_DIGIT + '-._~';
const SUB_DELIMS = "!$&'()*+,;=";
const UNRESERVED_SET = charTable(UNRESERVED);
const REG_NAME_SET = charTable(UNRESERVED + SUB_DELIMS);
/** pchar without pct-encoded: what may stand unescaped in a path segment (§6.5 step 6). */
const SEGMENT_SET = charTable(UNRESERVED + SUB_DELIMS + ':@');
/** §6.5 step 8: a query argument may hold "/" and "?" unescaped, but not its delimiter "&". */
const QUERY_ARG_SET = charTable(UNRESERVED + SUB_DELIMS.replace('&', '') + ':@/?');
const PATH_SET = charTable(UNRESERVED + SUB_DELIMS + ':@/');
const QUERY_SET = charTable(UNRESERVED + SUB_DELIMS + ':@/?');

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Uppercase hex digits, as §6.5 requires for percent-encoding in CoAP URIs. */
function percentEncode(bytes: Uint8Array, allowed: readonly boolean[]): string {
  let out = '';
  for (const b of bytes) {
    out += b < 128 && allowed[b] ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function encodeText(text: string, what: string): Uint8Array {
  // TextEncoder would silently turn a lone surrogate into U+FFFD; refuse rather than change the value.
  if (LONE_SURROGATE.test(text)) throw new UriError(`${what} is not well-formed Unicode`);
  return encodeString(text);
}

function percentDecode(text: string, what: string): string {
  if (!text.includes('%')) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x25) {
      bytes.push(c); // validated ASCII by the caller
      continue;
    }
    const hex = text.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
      throw new UriError(`invalid percent-encoding "${text.slice(i, i + 3)}" in ${what}`);
    }
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch {
    // §3.2: string option values are UTF-8; bytes that are not cannot become a Uri-* option.
    throw new UriError(`percent-encoded bytes in ${what} are not valid UTF-8`);
  }
}

function checkChars(text: string, allowed: readonly boolean[], what: string): void {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x25 && !(c < 128 && allowed[c])) {
      throw new UriError(`character ${JSON.stringify(text[i])} is not allowed in the ${what}; percent-encode it`);
    }
  }
}

const asciiLowerCase = (s: string): string => s.replace(/[A-Z]+/g, (m) => m.toLowerCase());

// --- parsing ---------------------------------------------------------------------------------

function parseHost(authorityHost: string): string {
  if (authorityHost.startsWith('[')) {
    const inner = authorityHost.slice(1, -1);
    if (/^v/i.test(inner)) throw new UriError(`IPvFuture host literals are not supported: ${authorityHost}`);
    // RFC 6874: a zone follows the address as "%25" plus the zone, itself percent-encoded.
    const zoneAt = inner.indexOf('%');
    const address = zoneAt < 0 ? inner : inner.slice(0, zoneAt);
    const ip = parseIpAddress(address);
    if (ip === undefined || ip.version !== 6) throw new UriError(`invalid IPv6 address literal: ${authorityHost}`);
    if (zoneAt < 0) return ip.address;
    const zoneText = inner.slice(zoneAt);
    if (!zoneText.startsWith('%25') || zoneText.length === 3) {
      throw new UriError(`invalid IPv6 zone in ${authorityHost}: write it as %25 followed by the zone`);
    }
    checkChars(zoneText.slice(3), UNRESERVED_SET, 'IPv6 zone');
    return `${ip.address}%${percentDecode(zoneText.slice(3), 'IPv6 zone')}`;
  }
  if (authorityHost === '') throw new UriError('the host is empty (RFC 7252 §6.1: such a URI is invalid)');
  checkChars(authorityHost, REG_NAME_SET, 'host');
  if (isIpv4(authorityHost)) return authorityHost;
  // §6.4 step 5: ASCII lower case, then decode. Lower-casing again after decoding makes "%41" and
  // "a" the same host, which §6.3 says they are (the host is case-insensitive).
  const host = asciiLowerCase(percentDecode(asciiLowerCase(authorityHost), 'host'));
  if (host === '') throw new UriError('the host is empty (RFC 7252 §6.1: such a URI is invalid)');
  return host;
}

function parsePort(text: string | undefined, scheme: string): { port: number | undefined; explicitPort: boolean } {
  // §6.1: "If it is empty or not given, then the default port ... is assumed."
  if (text === undefined || text === '') return { port: defaultPort(scheme), explicitPort: false };
  if (!/^[0-9]+$/.test(text)) throw new UriError(`invalid port "${text}": expected a decimal number`);
  const port = Number(text);
  if (port > 65535) throw new UriError(`port ${text} is out of range 0-65535`);
  return { port, explicitPort: true };
}

/**
 * Splits a path-abempty into decoded segments after removing dot-segments (§6.4 step 2 resolves
 * the reference, RFC 3986 §5.2.4). A percent-encoded dot is the same character as a dot (§6.3),
 * so "%2E%2E" is removed like "..": this keeps "." and ".." out of Uri-Path (§5.10.1).
 */
function parsePath(rawPath: string): string[] {
  if (rawPath === '' || rawPath === '/') return [];
  checkChars(rawPath, PATH_SET, 'path');
  const raw = rawPath.slice(1).split('/');
  const segments: string[] = [];
  raw.forEach((encoded, i) => {
    const segment = percentDecode(encoded, 'path');
    const last = i === raw.length - 1;
    if (segment === '..') segments.pop();
    if (segment === '.' || segment === '..') {
      // "/a/b/.." resolves to "/a/": the trailing empty segment is kept, as RFC 3986 does.
      if (last) segments.push('');
    } else {
      segments.push(segment);
    }
  });
  // What is left may be just "/" again ("/a/.."), which §6.4 step 8 maps to no segments.
  return segments.length === 1 && segments[0] === '' ? [] : segments;
}

function parseQuery(rawQuery: string | undefined): string[] {
  if (rawQuery === undefined) return [];
  checkChars(rawQuery, QUERY_SET, 'query');
  return rawQuery.split('&').map((arg) => percentDecode(arg, 'query'));
}

/**
 * Parses an absolute URI with an authority, of any scheme (RFC 3986 §4.3). Fragments are refused:
 * an absolute-URI has none, and CoAP never transmits one (§5.10.1, §6.4 step 4). So is userinfo,
 * which neither coap-URI (§6.1) nor a proxied request can use.
 */
export function parseAbsoluteUri(text: string): AbsoluteUri {
  return parseAfterScheme(text, schemeOf(text));
}

/** The lower-cased scheme (RFC 3986 §3.1); its absence means a relative reference (§6.4 step 1). */
function schemeOf(text: string): string {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(text);
  if (!match) throw new UriError(`not an absolute URI (no scheme): ${JSON.stringify(text)}`);
  return match[1]!.toLowerCase();
}

function parseAfterScheme(text: string, scheme: string): AbsoluteUri {
  if (text.includes('#')) throw new UriError('a URI fragment ("#...") is not allowed (RFC 7252 §6.4 step 4)');
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) {
      throw new UriError(`character ${JSON.stringify(text[i])} at offset ${i} is not allowed in a URI; percent-encode it`);
    }
  }
  const rest = text.slice(scheme.length + 1);
  if (!rest.startsWith('//')) throw new UriError(`the URI has no authority ("${scheme}://host" expected)`);
  const authorityEnd = rest.slice(2).search(/[/?]/);
  const authority = authorityEnd < 0 ? rest.slice(2) : rest.slice(2, 2 + authorityEnd);
  const afterAuthority = authorityEnd < 0 ? '' : rest.slice(2 + authorityEnd);
  const queryAt = afterAuthority.indexOf('?');
  const rawPath = queryAt < 0 ? afterAuthority : afterAuthority.slice(0, queryAt);
  const rawQuery = queryAt < 0 ? undefined : afterAuthority.slice(queryAt + 1);

  if (authority.includes('@')) throw new UriError('userinfo ("user@host") is not allowed in the URI');
  let hostText: string;
  let portText: string | undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) throw new UriError(`unterminated IP literal: ${authority}`);
    hostText = authority.slice(0, close + 1);
    const after = authority.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw new UriError(`unexpected text after IP literal: ${after}`);
    portText = after === '' ? undefined : after.slice(1);
  } else {
    const colon = authority.indexOf(':');
    hostText = colon < 0 ? authority : authority.slice(0, colon);
    portText = colon < 0 ? undefined : authority.slice(colon + 1);
  }
  const host = parseHost(hostText);
  const { port, explicitPort } = parsePort(portText, scheme);
  return { scheme, host, port, explicitPort, path: parsePath(rawPath), query: parseQuery(rawQuery) };
}

/** RFC 7252 §6.4 steps 1–4 and the decoding of steps 5, 8 and 9. Throws UriError. */
export function parseCoapUri(text: string): CoapUri {
  const scheme = checkScheme(schemeOf(text));
  const uri = parseAfterScheme(text, scheme);
  return { ...uri, scheme, port: uri.port! };
}

// --- formatting ------------------------------------------------------------------------------

/** "[2001:db8::1]", "192.0.2.1" or an encoded reg-name: the host as it stands in a URI. */
function formatHost(host: string): string {
  const ip = parseIpAddress(host);
  if (ip !== undefined) {
    if (ip.version === 4) return ip.address;
    const zone = ip.zone === undefined ? '' : `%25${percentEncode(encodeText(ip.zone, 'IPv6 zone'), UNRESERVED_SET)}`;
    return `[${ip.address}${zone}]`;
  }
  if (host === '') throw new UriError('the host is empty (RFC 7252 §6.1: such a URI is invalid)');
  return percentEncode(encodeText(asciiLowerCase(host), 'host'), REG_NAME_SET);
}

function isDotSegment(segment: Uint8Array): boolean {
  return (segment.length === 1 && segment[0] === 0x2e) || (segment.length === 2 && segment[0] === 0x2e && segment[1] === 0x2e);
}

function composeUri(
  scheme: CoapScheme,
  formattedHost: string,
  portSuffix: string,
  path: readonly Uint8Array[],
  query: readonly Uint8Array[],
): string {
  let resource = '';
  for (const segment of path) {
    if (isDotSegment(segment)) {
      throw new UriError('a Uri-Path segment must not be "." or ".." (RFC 7252 §5.10.1)');
    }
    resource += `/${percentEncode(segment, SEGMENT_SET)}`;
  }
  if (resource === '') resource = '/';
  query.forEach((arg, i) => {
    resource += `${i === 0 ? '?' : '&'}${percentEncode(arg, QUERY_ARG_SET)}`;
  });
  return `${scheme}://${formattedHost}${portSuffix}${resource}`;
}

function checkScheme(scheme: string): CoapScheme {
  if (!COAP_SCHEMES.has(scheme)) throw new UriError(`unsupported URI scheme "${scheme}": expected coap, coaps, coap+tcp, coaps+tcp, coap+ws or coaps+ws`);
  return scheme as CoapScheme;
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UriError(`port ${port} is out of range 0-65535`);
  return port;
}

/**
 * The inverse of parseCoapUri: parseCoapUri(formatCoapUri(u)) deep-equals u for every u that
 * parseCoapUri returns. The port is written when it was explicit or is not the default.
 * A path of exactly one empty segment cannot be written: "/" means no segments (§6.4 step 8).
 */
export function formatCoapUri(uri: CoapUri): string {
  const scheme = checkScheme(uri.scheme);
  const port = checkPort(uri.port);
  const showPort = uri.explicitPort || port !== defaultPort(scheme);
  return composeUri(
    scheme,
    formatHost(uri.host),
    showPort ? `:${port}` : '',
    uri.path.map((s) => encodeText(s, 'path segment')),
    uri.query.map((q) => encodeText(q, 'query argument')),
  );
}

// --- options ---------------------------------------------------------------------------------

function checkOptionLength(number: number, value: Uint8Array, name: string): Uint8Array {
  if (!hasValidLength(number, value.length)) {
    throw new UriError(`${name} value of ${value.length} bytes does not fit the option (RFC 7252 §5.10)`);
  }
  return value;
}

/**
 * RFC 7252 §6.4 steps 5–9: the Uri-* options for a request to `uri`, sorted by number.
 *
 * Uri-Host is left out when the host is an IP literal naming the destination (step 5). Without a
 * destinationAddress the destination is taken to be the URI's own host, so an IP-literal host is
 * never sent and a reg-name always is (the step's NOTE: the usual case). An IPv6 Uri-Host is the
 * <host> component, brackets included, without a zone (zones are local to this node, RFC 6874).
 *
 * Uri-Port is left out when the port equals destinationPort (step 7). Without a destinationPort
 * it is left out only when it is the scheme's default: sending a port the server already sees is
 * harmless, leaving out one it does not see is wrong.
 */
export function uriToOptions(uri: CoapUri | string, destinationAddress?: string, destinationPort?: number): CoapOption[] {
  const u = typeof uri === 'string' ? parseCoapUri(uri) : uri;
  const scheme = checkScheme(u.scheme);
  const port = checkPort(u.port);
  const options: CoapOption[] = [];

  const ip = parseIpAddress(u.host);
  if (ip === undefined) {
    if (u.host === '') throw new UriError('the host is empty (RFC 7252 §6.1: such a URI is invalid)');
    const value = encodeText(asciiLowerCase(u.host), 'host');
    options.push({ number: OptionNumber.UriHost, value: checkOptionLength(OptionNumber.UriHost, value, 'Uri-Host') });
  } else if (destinationAddress !== undefined && !sameIpAddress(u.host, destinationAddress)) {
    const literal = ip.version === 4 ? ip.address : `[${ip.address}]`;
    options.push({ number: OptionNumber.UriHost, value: encodeString(literal) });
  }

  const portIsImplied = destinationPort === undefined ? port === defaultPort(scheme) : port === destinationPort;
  if (!portIsImplied) options.push({ number: OptionNumber.UriPort, value: encodeUint(port) });

  for (const segment of u.path) {
    const value = encodeText(segment, 'path segment');
    if (isDotSegment(value)) throw new UriError('a Uri-Path segment must not be "." or ".." (RFC 7252 §5.10.1)');
    options.push({ number: OptionNumber.UriPath, value: checkOptionLength(OptionNumber.UriPath, value, 'Uri-Path') });
  }
  for (const arg of u.query) {
    const value = encodeText(arg, 'query argument');
    options.push({ number: OptionNumber.UriQuery, value: checkOptionLength(OptionNumber.UriQuery, value, 'Uri-Query') });
  }
  return options;
}

/** The host part of a URI for a Uri-Host option value (§6.5 step 2). */
function hostFromOption(value: Uint8Array): string {
  if (value.length === 0) throw new UriError('empty Uri-Host option');
  // One char per byte: only an all-ASCII value can be an IP literal.
  const ip = parseIpAddress(String.fromCharCode(...value));
  if (ip !== undefined) {
    // "[2001:db8::1]" is what §6.4 step 5 puts here; a bare IPv6 address is not a valid <host>
    // and §6.5 step 2 would fail, but its meaning is clear, so it is accepted too.
    return formatHost(ip.zone === undefined ? ip.address : `${ip.address}%${ip.zone}`);
  }
  // Anything else is a reg-name. §6.5 step 2 fails on characters a reg-name cannot hold; encoding
  // them instead gives a URI that parses back to exactly this Uri-Host, which is at least as safe.
  const lowered = value.map((b) => (b >= 0x41 && b <= 0x5a ? b + 0x20 : b));
  return percentEncode(lowered, REG_NAME_SET);
}

/**
 * RFC 7252 §6.5: the request URI from the Uri-* options, in normal form (§6.3). `defaults` are the
 * scheme of the transport (coaps when DTLS secures the request) and the request's destination
 * address and port, used when Uri-Host or Uri-Port is absent. Option order among different
 * numbers does not matter; repeated Uri-Path and Uri-Query keep theirs. Throws UriError.
 */
export function optionsToUri(
  options: readonly CoapOption[],
  defaults: { scheme: CoapScheme; host: string; port: number },
): string {
  const scheme = checkScheme(defaults.scheme);
  const valuesOf = (number: number): Uint8Array[] => options.filter((o) => o.number === number).map((o) => o.value);
  const uriHost = valuesOf(OptionNumber.UriHost)[0];
  const uriPort = valuesOf(OptionNumber.UriPort)[0];
  const host = uriHost === undefined ? formatHost(defaults.host) : hostFromOption(uriHost);
  if (uriPort !== undefined && uriPort.length > 2) throw new UriError(`Uri-Port value of ${uriPort.length} bytes is too long`);
  const port = uriPort === undefined ? checkPort(defaults.port) : decodeUint(uriPort);
  const portSuffix = port === defaultPort(scheme) ? '' : `:${port}`;
  return composeUri(scheme, host, portSuffix, valuesOf(OptionNumber.UriPath), valuesOf(OptionNumber.UriQuery));
}
