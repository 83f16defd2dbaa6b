/**
 * The options table: one row per registered option, used by every layer (codec validation,
 * server option checks, proxies' forwarding decisions, caches, OSCORE's class E/I/U split).
 *
 * Critical, Unsafe and NoCacheKey are properties of the option number itself (RFC 7252 §5.4.6):
 * bit 0 = Critical, bit 1 = UnSafe, bits 2..4 all set = NoCacheKey (only meaningful when safe).
 */

export type OptionFormat = 'empty' | 'opaque' | 'uint' | 'string';
/**
 * How OSCORE (RFC 8613 §4.1, Figure 5) treats the option: 'E' inner only, 'U' outer only,
 * 'EU' both an inner and a possibly different outer value. Unknown options are class E (§4.1).
 */
export type OscoreClass = 'E' | 'U' | 'EU';

export interface OptionDefinition {
  readonly number: number;
  readonly name: string;
  readonly format: OptionFormat;
  readonly minLength: number;
  readonly maxLength: number;
  readonly repeatable: boolean;
  readonly oscoreClass: OscoreClass;
  /** The RFC that registers it. */
  readonly reference: string;
}

export const OptionNumber = {
  IfMatch: 1,
  /** draft-ietf-core-groupcomm-proxy §2 (TBD2, suggested 2): experimental until IANA assigns it. */
  MulticastTimeout: 2,
  UriHost: 3,
  ETag: 4,
  IfNoneMatch: 5,
  Observe: 6,
  UriPort: 7,
  LocationPath: 8,
  Oscore: 9,
  UriPath: 11,
  ContentFormat: 12,
  MaxAge: 14,
  UriQuery: 15,
  HopLimit: 16,
  Accept: 17,
  QBlock1: 19,
  LocationQuery: 20,
  Edhoc: 21,
  Block2: 23,
  /** draft-ietf-core-groupcomm-proxy §7.3 (TBD24, suggested 24): experimental. */
  GroupETag: 24,
  Block1: 27,
  Size2: 28,
  QBlock2: 31,
  ProxyUri: 35,
  ProxyScheme: 39,
  Size1: 60,
  /** draft-ietf-core-groupcomm-proxy §3 (TBD248, suggested 248): experimental. */
  ReplyFrom: 248,
  Echo: 252,
  NoResponse: 258,
  RequestTag: 292,
  /** draft-ietf-core-cacheable-oscore §3.3 (TBD548, suggested 548): experimental. */
  RequestHash: 548,
  /** draft-ietf-core-cacheable-oscore Appendix A.1 (TBD64988, suggested 64988): experimental. */
  Padding: 64988,
} as const;

const def = (
  number: number,
  name: string,
  format: OptionFormat,
  minLength: number,
  maxLength: number,
  repeatable: boolean,
  oscoreClass: OscoreClass,
  reference: string,
): OptionDefinition => ({ number, name, format, minLength, maxLength, repeatable, oscoreClass, reference });

const N = OptionNumber;
const DEFINITIONS: OptionDefinition[] = [
  def(N.IfMatch, 'If-Match', 'opaque', 0, 8, true, 'E', 'RFC 7252'),
  // draft-ietf-core-groupcomm-proxy §2: elective, unsafe, uint 0–4 bytes, class U (a proxy reads
  // and removes it even under Group OSCORE; the client–proxy layer encrypts it, §10.2).
  def(N.MulticastTimeout, 'Multicast-Timeout', 'uint', 0, 4, false, 'U', 'draft-ietf-core-groupcomm-proxy'),
  def(N.UriHost, 'Uri-Host', 'string', 1, 255, false, 'U', 'RFC 7252'),
  def(N.ETag, 'ETag', 'opaque', 1, 8, true, 'E', 'RFC 7252'),
  def(N.IfNoneMatch, 'If-None-Match', 'empty', 0, 0, false, 'E', 'RFC 7252'),
  def(N.Observe, 'Observe', 'uint', 0, 3, false, 'EU', 'RFC 7641'),
  def(N.UriPort, 'Uri-Port', 'uint', 0, 2, false, 'U', 'RFC 7252'),
  def(N.LocationPath, 'Location-Path', 'string', 0, 255, true, 'E', 'RFC 7252'),
  def(N.Oscore, 'OSCORE', 'opaque', 0, 255, false, 'U', 'RFC 8613'),
  def(N.UriPath, 'Uri-Path', 'string', 0, 255, true, 'E', 'RFC 7252'),
  def(N.ContentFormat, 'Content-Format', 'uint', 0, 2, false, 'E', 'RFC 7252'),
  def(N.MaxAge, 'Max-Age', 'uint', 0, 4, false, 'EU', 'RFC 7252'),
  def(N.UriQuery, 'Uri-Query', 'string', 0, 255, true, 'E', 'RFC 7252'),
  def(N.HopLimit, 'Hop-Limit', 'uint', 1, 1, false, 'U', 'RFC 8768'),
  def(N.Accept, 'Accept', 'uint', 0, 2, false, 'E', 'RFC 7252'),
  def(N.QBlock1, 'Q-Block1', 'uint', 0, 3, false, 'EU', 'RFC 9177'),
  def(N.LocationQuery, 'Location-Query', 'string', 0, 255, true, 'E', 'RFC 7252'),
  // RFC 9668 §3.1: "MUST be empty. If any value is sent, the recipient MUST ignore it" — so a
  // value is no reason to refuse the option (no length check beyond the codec's).
  def(N.Edhoc, 'EDHOC', 'empty', 0, 65535, false, 'U', 'RFC 9668'),
  def(N.Block2, 'Block2', 'uint', 0, 3, false, 'EU', 'RFC 7959'),
  // §7.3: "the same properties of the ETag Option" (1–8 bytes, repeatable), safe, part of the
  // cache key, class U (the proxy answers it).
  def(N.GroupETag, 'Group-ETag', 'opaque', 1, 8, true, 'U', 'draft-ietf-core-groupcomm-proxy'),
  def(N.Block1, 'Block1', 'uint', 0, 3, false, 'EU', 'RFC 7959'),
  def(N.Size2, 'Size2', 'uint', 0, 4, false, 'EU', 'RFC 7959'),
  def(N.QBlock2, 'Q-Block2', 'uint', 0, 3, false, 'EU', 'RFC 9177'),
  def(N.ProxyUri, 'Proxy-Uri', 'string', 1, 1034, false, 'U', 'RFC 7252'),
  def(N.ProxyScheme, 'Proxy-Scheme', 'string', 1, 255, false, 'U', 'RFC 7252'),
  def(N.Size1, 'Size1', 'uint', 0, 4, false, 'EU', 'RFC 7252'),
  // RFC 9175 §2.2.1/§3.2.1: Echo and Request-Tag are class E between endpoints; an outer copy exists
  // only when a proxy uses them on its own hop, which the protecting layer decides.
  // §3: responses only, safe, not repeatable, a CBOR sequence of one or two CRIs (5–1034 bytes;
  // src/group/reply-from.ts), class U (the proxy adds it to a response protected end to end).
  def(N.ReplyFrom, 'Reply-From', 'opaque', 5, 1034, false, 'U', 'draft-ietf-core-groupcomm-proxy'),
  def(N.Echo, 'Echo', 'opaque', 1, 40, false, 'E', 'RFC 9175'),
  def(N.NoResponse, 'No-Response', 'uint', 0, 1, false, 'EU', 'RFC 7967'),
  def(N.RequestTag, 'Request-Tag', 'opaque', 0, 8, true, 'E', 'RFC 9175'),
  // cacheable-oscore §3.3: elective, safe, part of the cache key, not repeatable, any length (here
  // up to the longest hash supported, SHA-512's 64 bytes). Class U in requests (read before the
  // Deterministic Request is decrypted); in responses Class I, which the group layer handles itself.
  def(N.RequestHash, 'Request-Hash', 'opaque', 0, 64, false, 'U', 'draft-ietf-core-cacheable-oscore'),
  // Appendix A.1: elective, safe, NoCacheKey, repeatable, any length, Class E.
  def(N.Padding, 'Padding', 'opaque', 0, 65535, true, 'E', 'draft-ietf-core-cacheable-oscore'),
];

const BY_NUMBER = new Map<number, OptionDefinition>(DEFINITIONS.map((d) => [d.number, d]));
const BY_NAME = new Map<string, OptionDefinition>(DEFINITIONS.map((d) => [d.name.toLowerCase(), d]));

export const allOptionDefinitions = (): readonly OptionDefinition[] => DEFINITIONS;
export const optionDefinition = (number: number): OptionDefinition | undefined => BY_NUMBER.get(number);
export const optionByName = (name: string): OptionDefinition | undefined => BY_NAME.get(name.toLowerCase());
export const optionName = (number: number): string => BY_NUMBER.get(number)?.name ?? `Option ${number}`;

export const isCritical = (number: number): boolean => (number & 1) === 1;
export const isUnsafe = (number: number): boolean => (number & 2) === 2;
/** RFC 7252 §5.4.6: NoCacheKey is only defined for safe-to-forward options. */
export const isNoCacheKey = (number: number): boolean => (number & 0x1e) === 0x1c;
export const isElective = (number: number): boolean => !isCritical(number);

/** The OSCORE class; options this table does not know are class E (RFC 8613 §4.1). */
export const oscoreClassOf = (number: number): OscoreClass => BY_NUMBER.get(number)?.oscoreClass ?? 'E';

/** RFC 7252 §5.4.3: a value of the wrong length is treated like an unrecognized option. */
export function hasValidLength(number: number, length: number): boolean {
  const d = BY_NUMBER.get(number);
  return d === undefined || (length >= d.minLength && length <= d.maxLength);
}
