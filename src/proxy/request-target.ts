/**
 * The target of a proxied request (PR1.1/PR1.2; RFC 7252 §5.7.2, §6.5): from Proxy-Uri, or from
 * Proxy-Scheme with Uri-Host, Uri-Port, Uri-Path and Uri-Query. Pure: no I/O, no clock.
 *
 * `TargetMemo` remembers the targets of recent requests. A client sends the same URI options with
 * every request for a resource, and decoding, parsing and formatting them again cost a forward
 * proxy about as much as answering a cache hit (BENCHMARKS.md, issue 5).
 */
import { ResponseCode } from '../coap/codes.js';
import { decodeString, getOption, getStringOptions, getUintOption, type CoapMessage } from '../coap/message.js';
import { checkOptions } from '../coap/option-validation.js';
import { OptionNumber, isUnsafe, optionDefinition } from '../coap/options.js';
import { defaultPort, formatCoapUri, parseAbsoluteUri, type CoapUri } from '../coap/uri.js';
import { isTransportScheme } from '../transport/schemes.js';

export interface Target {
  /** Absolute URI of the target as far as the request reveals it (OSCORE may hide the path). */
  readonly uri: string;
  readonly scheme: string;
  readonly host: string;
  readonly port: number;
}

export interface TargetError {
  readonly error: string;
  readonly code: number;
}

/** PR1.1 / PR1.2: the target URI from Proxy-Uri, or from Proxy-Scheme with Uri-Host, Uri-Port, Uri-Path, Uri-Query. */
export function targetOf(message: CoapMessage): Target | TargetError {
  const proxyUri = getOption(message, OptionNumber.ProxyUri);
  if (proxyUri !== undefined) {
    try {
      const uri = parseAbsoluteUri(decodeString(proxyUri));
      const port = uri.port ?? defaultPort(uri.scheme);
      if (port === undefined) return { error: `no default port for scheme ${uri.scheme}`, code: ResponseCode.ProxyingNotSupported };
      const canonical = isTransportScheme(uri.scheme)
        ? formatCoapUri({ scheme: uri.scheme, host: uri.host, port, explicitPort: true, path: uri.path, query: uri.query } as CoapUri)
        : decodeString(proxyUri);
      return { uri: canonical, scheme: uri.scheme, host: uri.host, port };
    } catch (error) {
      return { error: `bad Proxy-Uri: ${(error as Error).message}`, code: ResponseCode.BadOption };
    }
  }
  const scheme = decodeString(getOption(message, OptionNumber.ProxyScheme)!).toLowerCase();
  const host = getOption(message, OptionNumber.UriHost);
  if (host === undefined) return { error: 'Proxy-Scheme needs Uri-Host to name the target', code: ResponseCode.BadRequest };
  const port = getUintOption(message, OptionNumber.UriPort) ?? defaultPort(scheme);
  if (port === undefined) return { error: `scheme ${scheme} is not proxied here`, code: ResponseCode.ProxyingNotSupported };
  const hostText = decodeString(host).replace(/^\[(.*)\]$/, '$1');
  const path = getStringOptions(message, OptionNumber.UriPath).map(encodeURIComponent).join('/');
  const query = getStringOptions(message, OptionNumber.UriQuery).map(encodeURIComponent).join('&');
  return { uri: `${scheme}://${bracket(hostText)}:${port}/${path}${query ? `?${query}` : ''}`, scheme, host: hostText, port };
}

/**
 * The option checks a server applies to every request (RFC 7252 §5.4.1, §5.4.3, §5.4.5; one code
 * path, src/coap/option-validation.ts), as they apply at a forward proxy, and §5.10.2 for the
 * naming options. A request that passes has `options` with malformed or supernumerary elective
 * occurrences removed, as the server removes them; one that does not gets 4.02.
 *
 * Every option counts as recognized here: a proxy forwards the unrecognized Safe-to-Forward ones
 * unchanged (§5.7.1), and the unrecognized Unsafe ones are refused by the caller after Hop-Limit
 * (RFC 8768 §3). What is checked is the length and repetition of the options the table knows: a
 * second Proxy-Uri or Uri-Port must not reach the next hop while this proxy (and its cache) read
 * the first, and a Uri-Path longer than 255 bytes is not a Uri-Path.
 */
export function checkProxyRequest(message: CoapMessage): { readonly options: CoapMessage['options'] } | TargetError {
  const check = checkOptions(message.options, EVERY_OPTION);
  if (check.criticalProblem) return { error: check.criticalProblem.reason, code: ResponseCode.BadOption };
  // §5.10.2: Uri-Host, Uri-Port, Uri-Path and Uri-Query "MUST NOT be included in a request
  // containing the Proxy-Uri Option". A proxy that took Proxy-Uri and dropped them would answer
  // for a URI that the next hop (which may read them) or a cache (which may key on them) does not.
  if (getOption(message, OptionNumber.ProxyUri) !== undefined) {
    const conflicting = check.options.find((o) => o.number === OptionNumber.UriHost || o.number === OptionNumber.UriPort || o.number === OptionNumber.UriPath || o.number === OptionNumber.UriQuery);
    if (conflicting) return { error: `Proxy-Uri must not come with ${optionDefinition(conflicting.number)!.name} (RFC 7252 §5.10.2)`, code: ResponseCode.BadOption };
  }
  // The check itself: no second object per forwarded request.
  return check;
}

/** Every option counts as recognized at a proxy (checkProxyRequest); one function, not one per request. */
const EVERY_OPTION = (): boolean => true;

/** §5.7.1: the first option the table does not know that is marked Unsafe to forward. */
export function unrecognizedUnsafe(message: CoapMessage): number | undefined {
  for (const o of message.options) if (isUnsafe(o.number) && optionDefinition(o.number) === undefined) return o.number;
  return undefined;
}

export const bracket = (host: string): string => (host.includes(':') ? `[${host}]` : host);

/** The options `targetOf` reads: everything a target depends on. */
/** The options that name a request's target (PR1.1/PR1.2): what TargetMemo compares. */
export const isNamingOption = (n: number): boolean =>
  n === OptionNumber.UriHost || n === OptionNumber.UriPort || n === OptionNumber.UriPath || n === OptionNumber.UriQuery || n === OptionNumber.ProxyUri || n === OptionNumber.ProxyScheme;

/** Naming options longer than this in all (numbers and lengths included) are not remembered. */
const MAX_NAMING = 1100;

/**
 * Targets of recent requests, found by the naming options' numbers and bytes. A hash finds the
 * candidate and an exact comparison with a copy of those options confirms it, so a remembered
 * target is always the one `targetOf` would compute. Errors are not remembered, nor targets named
 * by more than MAX_NAMING elements (a Proxy-Uri is at most 1034 bytes, RFC 7252 §5.10), which
 * bounds the memo's memory. At `capacity` entries the memo starts over: many different targets
 * make it useless, never wrong.
 */
export class TargetMemo {
  private readonly byHash = new Map<number, { naming: Uint16Array; target: Target }>();

  constructor(private readonly capacity = 256) {}

  resolve(message: CoapMessage): Target | TargetError {
    const hash = namingHash(message);
    const known = this.byHash.get(hash);
    if (known !== undefined && namesSame(message, known.naming)) return known.target;
    const target = targetOf(message);
    const naming = 'error' in target ? undefined : namingCopy(message);
    if (naming !== undefined) {
      if (this.byHash.size >= this.capacity) this.byHash.clear();
      this.byHash.set(hash, { naming, target: target as Target });
    }
    return target;
  }
}

/** FNV-1a over number, length and bytes of each naming option, in message order. */
function namingHash(message: CoapMessage): number {
  let h = 0x811c9dc5;
  for (const o of message.options) {
    if (!isNamingOption(o.number)) continue;
    const v = o.value;
    h = Math.imul(h ^ o.number, 0x01000193);
    h = Math.imul(h ^ v.length, 0x01000193);
    for (let i = 0; i < v.length; i++) h = Math.imul(h ^ v[i]!, 0x01000193);
  }
  return h >>> 0;
}

/** The naming options flattened to number, length, bytes... (a length needs more than 8 bits); undefined beyond MAX_NAMING. */
function namingCopy(message: CoapMessage): Uint16Array | undefined {
  let size = 0;
  for (const o of message.options) if (isNamingOption(o.number)) size += 2 + o.value.length;
  if (size > MAX_NAMING) return undefined;
  const copy = new Uint16Array(size);
  let j = 0;
  for (const o of message.options) {
    if (!isNamingOption(o.number)) continue;
    copy[j++] = o.number;
    copy[j++] = o.value.length;
    for (const b of o.value) copy[j++] = b;
  }
  return copy;
}

function namesSame(message: CoapMessage, naming: Uint16Array): boolean {
  let j = 0;
  for (const o of message.options) {
    if (!isNamingOption(o.number)) continue;
    const v = o.value;
    if (j + 2 + v.length > naming.length || naming[j] !== o.number || naming[j + 1] !== v.length) return false;
    j += 2;
    for (let i = 0; i < v.length; i++) if (naming[j++] !== v[i]) return false;
  }
  return j === naming.length;
}
