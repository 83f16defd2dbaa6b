/**
 * The OSCORE message transforms of RFC 8613 (§4, §5, §6, §8) without the AEAD call: everything
 * protect.ts does before sealing or opening the COSE object and after it, as pure functions over
 * CoapMessage values. protect.ts puts Node's synchronous AEAD between the halves; the browser build
 * (src/browser/) puts WebCrypto's asynchronous one there. No crypto and no Node built-ins here, so
 * both builds share every rule: option classes, Proxy-Uri decomposition, the AAD, the nonce, the
 * OSCORE option, Observe handling.
 *
 * Each transform is a pair: `xToSeal`/`xToOpen` (the AEAD's inputs plus what the second half needs)
 * and `sealedX`/`openedX` (the message from the AEAD's output). Network input never throws: the
 * halves for received messages answer `{ ok: false }`.
 */
import { encode } from 'cbor2';
import { decodeBody, encodeCodeAndBody } from '../coap/codec.js';
import { Method, ResponseCode } from '../coap/codes.js';
import {
  type CoapMessage,
  type CoapOption,
  EMPTY_BYTES,
  decodeString,
  encodeString,
  encodeUint,
  getOptions,
  hasOption,
  sortOptions,
} from '../coap/message.js';
import { OptionNumber, type OscoreClass, oscoreClassOf } from '../coap/options.js';
import { parseAbsoluteUri } from '../coap/uri.js';
import type { RecipientParams, SenderParams } from './context.js';
import { equalBytes, nonce } from './context-rules.js';
import { MalformedOscoreOption, OscoreConfigError, OscoreProtectError } from './errors.js';
import { OscoreOptionLayout, type OscoreOptionValue, decodeOscoreOption, decodePartialIv, encodeOscoreOption, encodePartialIv, parseOscoreOption } from './option.js';

export type ClassOf = (optionNumber: number, message: CoapMessage) => OscoreClass;

/**
 * Figure 5 via the options table, unknown options Class E (§4.1), and — for nesting — the OSCORE
 * option of an inner layer Class E. (The table lists OSCORE as U: that is the option a layer adds
 * itself, which never goes through classOf.)
 */
/** The reason of an unprotect result whose AEAD refused the ciphertext (a forgery, or another key): KUDOS counts these against the integrity limit. */
export const DECRYPTION_FAILED = 'Decryption failed';

export const defaultClassOf: ClassOf = (n) => (n === OptionNumber.Oscore ? 'E' : oscoreClassOf(n));

/** What a response is bound to (§5.4 request_kid / request_piv; §7.1). */
export interface RequestBinding {
  kid: Uint8Array;
  piv: Uint8Array;
  /** Whether the request carried Observe; when false, a response with inner Observe is refused (§4.1.3.5.2). */
  observe?: boolean;
  /**
   * What verifying the request computed and a response reuses when protected with the same
   * context (issue 21: no second AAD encoding or nonce per response): the AAD for `aead` (§5.4:
   * a response's AAD is built from the request's kid and Partial IV), and the request's nonce,
   * built with `commonIv` (§8.3 step 3's first alternative uses exactly that nonce).
   */
  verified?: { readonly aead: number; readonly aad: Uint8Array; readonly commonIv: Uint8Array; readonly nonce: Uint8Array };
}

export interface ProtectRequestOptions {
  /** Send 'kid context' (§5.1): the given bytes, or 'include' for the sender's idContext. */
  kidContext?: Uint8Array | 'include';
  classOf?: ClassOf;
}

export interface ProtectResponseOptions {
  /**
   * Use a fresh Partial IV from this Sender Sequence Number (and include it) instead of the
   * request's nonce. Required for every notification but possibly the first (§4.1.3.5.2, §8.3.1),
   * and for the Echo response of Appendix B.1.2.
   */
  sequenceNumber?: number;
  classOf?: ClassOf;
  /** Add an Outer Max-Age with this value (§4.1.3.1: 0 keeps proxies from caching notifications). */
  outerMaxAge?: number;
}

export interface UnprotectOptions {
  /** Which outer options survive (§8.2/§8.4 step 1 discard all Class E options). Default defaultClassOf. */
  classOf?: ClassOf;
}

export interface UnprotectResponseOptions extends UnprotectOptions {
  /**
   * §4.1.3.5.2: the Inner Observe of a notification is empty; the client "MAY set the Observe option
   * value to the three least significant bytes of the Partial IV". Default true, so the RFC 7641
   * freshness ordering of the decrypted notifications follows the Partial IVs.
   */
  observeFromPartialIv?: boolean;
}

export type UnprotectRequestResult =
  | {
      ok: true;
      /** The inner request with the surviving outer (Class U) options merged back (§8.2 step 7). */
      message: CoapMessage;
      binding: RequestBinding;
      kid: Uint8Array;
      kidContext: Uint8Array | undefined;
      /** The Partial IV as a number: check and update the replay window with it before acting. */
      sequenceNumber: number;
      recipient: RecipientParams;
    }
  | { ok: false; /** 4.00, 4.01 or 4.02 (§8.2) */ code: number; reason: string };

export type UnprotectResponseResult =
  | { ok: true; message: CoapMessage; /** Present when the response carried a Partial IV. */ sequenceNumber?: number }
  | { ok: false; reason: string };

const BAD_REQUEST = ResponseCode.BadRequest;
const UNAUTHORIZED = ResponseCode.Unauthorized;
const BAD_OPTION = ResponseCode.BadOption;
const CHANGED = ResponseCode.Changed;
const CONTENT = ResponseCode.Content;

// --- COSE pieces ---------------------------------------------------------------------------

/** A plain Uint8Array copy: cbor2 encodes a Buffer as an object, not as a bstr. */
const bstr = (b: Uint8Array): Uint8Array => new Uint8Array(b);

/**
 * §5.4: external_aad = bstr .cbor [ oscore_version: 1, [ alg_aead ], request_kid, request_piv,
 * options ]. `options` holds the Class I options, of which none are defined (§4.1.2): empty.
 * Returned is the encoded aad_array (the bytes the bstr wraps).
 */
export function externalAad(aead: number, requestKid: Uint8Array, requestPiv: Uint8Array, classIOptions: Uint8Array = EMPTY_BYTES): Uint8Array {
  // Every message builds this; a general CBOR encoder costs more than the AEAD itself here.
  // The structure is fixed, so it is written directly in deterministic CBOR (RFC 8949 §4.2);
  // anything outside the small cases goes through cbor2 (test/oscore-aad.test.ts compares both).
  if (aead < 0 || aead > 255 || requestKid.length > 0xffff || requestPiv.length > 0xffff || classIOptions.length > 0xffff) {
    return encode([1, [aead], bstr(requestKid), bstr(requestPiv), bstr(classIOptions)]);
  }
  const out = new Uint8Array(3 + (aead < 24 ? 1 : 2) + bstrSize(requestKid) + bstrSize(requestPiv) + bstrSize(classIOptions));
  out[0] = 0x85; // array(5)
  out[1] = 0x01; // oscore_version 1
  out[2] = 0x81; // array(1)
  let pos = 3;
  if (aead < 24) out[pos++] = aead;
  else {
    out[pos++] = 0x18;
    out[pos++] = aead;
  }
  pos = writeBstr(out, pos, requestKid);
  pos = writeBstr(out, pos, requestPiv);
  writeBstr(out, pos, classIOptions);
  return out;
}

const ENCRYPT0 = Uint8Array.of(0x83, 0x68, 0x45, 0x6e, 0x63, 0x72, 0x79, 0x70, 0x74, 0x30, 0x40); // ["Encrypt0", h'', ...

/** §5.4 / RFC 8152 §5.3: AAD = Enc_structure = [ "Encrypt0", h'', external_aad ]. */
export function additionalData(aead: number, requestKid: Uint8Array, requestPiv: Uint8Array): Uint8Array {
  if (aead >= 0 && aead < 24 && requestKid.length < 24 && requestPiv.length < 24) {
    // The common case, written at once (no external_aad array to wrap): external_aad is then
    // 0x85 0x01 0x81 alg bstr(kid) bstr(piv) 0x40, 7 bytes besides kid and Partial IV.
    const inner = 7 + requestKid.length + requestPiv.length;
    const out = new Uint8Array(ENCRYPT0.length + (inner < 24 ? 1 : 2) + inner);
    out.set(ENCRYPT0, 0);
    let pos = ENCRYPT0.length;
    if (inner < 24) out[pos++] = 0x40 | inner;
    else {
      out[pos++] = 0x58;
      out[pos++] = inner;
    }
    out[pos++] = 0x85; // array(5)
    out[pos++] = 0x01; // oscore_version 1
    out[pos++] = 0x81; // array(1)
    out[pos++] = aead;
    pos = writeBstr(out, pos, requestKid);
    pos = writeBstr(out, pos, requestPiv);
    out[pos] = 0x40; // no Class I options
    return out;
  }
  const aad = externalAad(aead, requestKid, requestPiv);
  if (aad.length > 0xffff) return encode(['Encrypt0', new Uint8Array(0), aad]);
  const out = new Uint8Array(ENCRYPT0.length + bstrSize(aad));
  out.set(ENCRYPT0, 0);
  writeBstr(out, ENCRYPT0.length, aad);
  return out;
}

/** Bytes of a CBOR byte string (major type 2) of up to 65535 bytes. */
const bstrSize = (b: Uint8Array): number => b.length + (b.length < 24 ? 1 : b.length < 256 ? 2 : 3);

function writeBstr(out: Uint8Array, pos: number, b: Uint8Array): number {
  if (b.length < 24) out[pos++] = 0x40 | b.length;
  else if (b.length < 256) {
    out[pos++] = 0x58;
    out[pos++] = b.length;
  } else {
    out[pos++] = 0x59;
    out[pos++] = b.length >> 8;
    out[pos++] = b.length & 0xff;
  }
  out.set(b, pos);
  return pos + b.length;
}

/** §5.3: Code || Class E options (deltas among themselves) || 0xFF || payload, when there is one. */
export function encodePlaintext(code: number, options: CoapOption[], payload: Uint8Array): Uint8Array {
  return encodeCodeAndBody(code, options, payload);
}

/** The inverse of encodePlaintext; undefined when the plaintext is not a well-formed message body. */
export function decodePlaintext(plaintext: Uint8Array): { code: number; options: CoapOption[]; payload: Uint8Array } | undefined {
  const body = decodeInnerBody(plaintext);
  return body === undefined ? undefined : { code: plaintext[0]!, options: body.options, payload: body.payload };
}

/** The options and payload after the plaintext's Code (its first byte); undefined when it is not a well-formed message body. */
function decodeInnerBody(plaintext: Uint8Array): ReturnType<typeof decodeBody> | undefined {
  // Code 0 is an Empty message, which has no body to protect (RFC 7252 §4.1).
  if (plaintext.length < 1 || plaintext[0] === 0) return undefined;
  try {
    // Over a Uint8Array view: the inner values stay Uint8Arrays (not Buffers) whatever AES returned
    // (Node's AEAD path gives one already).
    const bytes = Object.getPrototypeOf(plaintext) === Uint8Array.prototype ? plaintext : new Uint8Array(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
    return decodeBody(bytes, 1);
  } catch {
    return undefined;
  }
}

// --- option split and merge ----------------------------------------------------------------

export type Role = 'request' | 'response';

export interface Split {
  inner: CoapOption[];
  outer: CoapOption[];
}

/** Exported for Group OSCORE (src/group-oscore), which splits options the same way (§4.1). */
export function splitOptions(msg: CoapMessage, classOf: ClassOf, role: Role): Split {
  const inner: CoapOption[] = [];
  const outer: CoapOption[] = [];
  for (const o of msg.options) {
    const cls = classOf(o.number, msg);
    if (o.number === OptionNumber.Oscore && cls === 'U') {
      // Two OSCORE options in one message would not be decodable (it is not repeatable, §2).
      throw new OscoreProtectError('the OSCORE option of an inner layer cannot be Class U: it must be encrypted by the outer layer');
    }
    if (cls === 'U') {
      if (o.number === OptionNumber.ProxyUri && role === 'request') decomposeProxyUri(o.value, inner, outer);
      else outer.push(o);
    } else if (cls === 'E') {
      inner.push(o);
    } else if (o.number === OptionNumber.Observe) {
      // §4.1.3.5: Inner Observe protects the value end to end, Outer Observe lets proxies forward.
      // §4.1.3.5.1: in requests both carry the original value (0 register, 1 cancel).
      // §4.1.3.5.2: in notifications the Inner value MUST be empty; the Outer MAY be the original.
      inner.push(role === 'request' ? o : { number: o.number, value: EMPTY_BYTES });
      outer.push(o);
    } else {
      // The other Class E+U options go Inner when present in the message to protect: Max-Age
      // (§4.1.3.1: the Outer one is only for OSCORE error responses, see outerMaxAge), Block1/2
      // and Size1/2 (§4.1.3.4.1: Outer Block options are added by proxies, or by the caller with
      // classOf → 'U'), No-Response (§4.1.3.6: "If used, No-Response MUST be Inner").
      inner.push(o);
    }
  }
  return { inner: sortOptions(inner), outer };
}

/**
 * §4.1.3.3: Proxy-Uri is decomposed (RFC 7252 §6.4); Uri-Path and Uri-Query go Inner and the
 * Outer Proxy-Uri keeps scheme and authority only: "coap://example.com/resource?q=1" becomes
 * Outer Proxy-Uri "coap://example.com", Inner Uri-Path "resource", Uri-Query "q=1". The authority
 * is kept as written (host and port), which is the same resource as the RFC's §6.5 composition.
 */
function decomposeProxyUri(value: Uint8Array, inner: CoapOption[], outer: CoapOption[]): void {
  const text = decodeString(value);
  let uri;
  try {
    uri = parseAbsoluteUri(text);
  } catch (e) {
    throw new OscoreProtectError(`cannot decompose Proxy-Uri ${JSON.stringify(text)} (RFC 8613 §4.1.3.3): ${(e as Error).message}`);
  }
  const afterScheme = text.indexOf('//') + 2;
  const end = text.slice(afterScheme).search(/[/?]/);
  const base = end < 0 ? text : text.slice(0, afterScheme + end);
  outer.push({ number: OptionNumber.ProxyUri, value: encodeString(base) });
  for (const segment of uri.path) inner.push({ number: OptionNumber.UriPath, value: encodeString(segment) });
  for (const arg of uri.query) inner.push({ number: OptionNumber.UriQuery, value: encodeString(arg) });
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;
const SEGMENT_EXTRA = "!$&'()*+,;=:@";
const QUERY_EXTRA = "!$'()*+,;=:@/?";

function percentEncode(bytes: Uint8Array, extra: string): string {
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    if (b < 0x80 && (UNRESERVED.test(c) || extra.includes(c))) out += c;
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of decomposeProxyUri, so the receiver sees the Proxy-Uri the sender wrote. */
function recomposeProxyUri(base: Uint8Array, path: Uint8Array[], query: Uint8Array[]): Uint8Array {
  let text = decodeString(base);
  for (const segment of path) text += `/${percentEncode(segment, SEGMENT_EXTRA)}`;
  query.forEach((arg, i) => {
    text += `${i === 0 ? '?' : '&'}${percentEncode(arg, QUERY_EXTRA)}`;
  });
  return encodeString(text);
}

/**
 * §8.2/§8.4 steps 1 and 7: the outer options that are not Class E survive (Class U, e.g. Uri-Host,
 * Proxy-Scheme, Hop-Limit); the outer OSCORE option is removed; every Inner option is added. An
 * option number present Inner replaces any Outer instance (only possible with a caller's classOf
 * that made a Class U option Inner, as nested layers do).
 */
export function mergeOptions(outerMsg: CoapMessage, innerOptions: CoapOption[], classOf: ClassOf, role: Role): CoapOption[] {
  // Most protected messages carry no outer option but OSCORE itself: the inner ones, as decoded
  // (in order), are the result.
  const outerOptions = outerMsg.options;
  if (outerOptions.length === 1 && outerOptions[0]!.number === OptionNumber.Oscore) return sortOptions(innerOptions);
  const innerNumbers = new Set(innerOptions.map((o) => o.number));
  const kept = outerMsg.options.filter(
    (o) => o.number !== OptionNumber.Oscore && !innerNumbers.has(o.number) && classOf(o.number, outerMsg) === 'U',
  );
  let inner = innerOptions;
  const proxyUri = kept.find((o) => o.number === OptionNumber.ProxyUri);
  if (role === 'request' && proxyUri !== undefined && (innerNumbers.has(OptionNumber.UriPath) || innerNumbers.has(OptionNumber.UriQuery))) {
    const path = getOptions({ options: innerOptions }, OptionNumber.UriPath);
    const query = getOptions({ options: innerOptions }, OptionNumber.UriQuery);
    const full = recomposeProxyUri(proxyUri.value, path, query);
    inner = innerOptions.filter((o) => o.number !== OptionNumber.UriPath && o.number !== OptionNumber.UriQuery);
    const i = kept.indexOf(proxyUri);
    kept[i] = { number: OptionNumber.ProxyUri, value: full };
  }
  return sortOptions([...kept, ...inner]);
}

/** The outer options and the OSCORE option (and `extra`), sorted; stable, so repeated options keep their order. */
export function withOscoreOption(outer: readonly CoapOption[], value: Uint8Array, extra: readonly CoapOption[] = NO_OPTIONS): CoapOption[] {
  const option = { number: OptionNumber.Oscore, value };
  if (extra.length > 0) return sortOptions([...outer, ...extra, option]);
  // A response with only Class E options (most) has no outer option but this one.
  if (outer.length === 0) return [option];
  // The OSCORE option goes before the first outer option numbered above it, in one pass (the
  // outer options are sorted: sortOptions below only checks, and the option's number is unique).
  const out: CoapOption[] = [];
  let placed = false;
  for (const o of outer) {
    if (!placed && o.number > OptionNumber.Oscore) {
      out.push(option);
      placed = true;
    }
    out.push(o);
  }
  if (!placed) out.push(option);
  return sortOptions(out);
}

const NO_OPTIONS: readonly CoapOption[] = Object.freeze([]);

/**
 * The outer request of an OSCORE message: Outer Code POST (§4.2), FETCH for a request with Observe
 * (§4.1.3.5); the type, Message ID and token of the original; its outer options and the option.
 */
export function outerRequest(request: CoapMessage, outer: CoapOption[], optionValue: Uint8Array, payload: Uint8Array): CoapMessage {
  return {
    type: request.type,
    code: hasOption(request, OptionNumber.Observe) ? Method.FETCH : Method.POST,
    messageId: request.messageId,
    token: request.token,
    options: withOscoreOption(outer, optionValue),
    payload,
  };
}

/**
 * §2: exactly one OSCORE option and a payload: the option's value, else the reason it is not.
 * (One pass over the sorted options and no wrapper object: this runs for every message.)
 */
function oscoreOptionValue(msg: CoapMessage): Uint8Array | string {
  let value: Uint8Array | undefined;
  for (const o of msg.options) {
    if (o.number === OptionNumber.Oscore) {
      if (value !== undefined) return 'Failed to decode COSE: repeated OSCORE option';
      value = o.value;
    } else if (o.number > OptionNumber.Oscore) break;
  }
  if (value === undefined) return 'Missing OSCORE option';
  // §2: "An endpoint receiving a CoAP message without payload that also contains an OSCORE option
  // SHALL treat it as malformed and reject it."
  if (msg.payload.length === 0) return 'Failed to decode COSE: no payload';
  return value;
}

/** The reason a well-placed OSCORE option does not decode (§6). */
function malformed(e: unknown): string {
  if (e instanceof MalformedOscoreOption) return `Failed to decode COSE: ${e.message}`;
  throw e;
}

/** §2 and §6: exactly one OSCORE option, well formed, and a payload; else the reason it is not. */
function decompress(msg: CoapMessage): OscoreOptionValue | string {
  const value = oscoreOptionValue(msg);
  if (typeof value === 'string') return value;
  try {
    return decodeOscoreOption(value);
  } catch (e) {
    return malformed(e);
  }
}

/** A received request's OSCORE option layout: read at once by requestToOpen, which runs to its end before another can. */
const REQUEST_LAYOUT = new OscoreOptionLayout();

/** `length` bytes of `from` at `at`, in an array of their own (a small one on V8's heap, no backing store). */
function copyOf(from: Uint8Array, at: number, length: number): Uint8Array {
  // The empty kid (an empty Sender ID, §3.3) is common: no bytes to keep, no array per request.
  if (length === 0) return EMPTY_BYTES;
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = from[at + i]!;
  return out;
}

// --- the transforms around the AEAD ------------------------------------------------------------

/** What the transforms need to know of an AEAD algorithm besides its key, nonce and tag (oscore/algorithms.ts or a WebCrypto provider's table). */
export interface AeadParameters {
  readonly id: number;
  readonly name: string;
  /** The longest Sender/Recipient ID: nonce length − 6 (§3.3, §5.2). */
  readonly maxIdLength: number;
}

/** One AEAD encryption: ciphertext || tag = seal(key, nonce, aad, plaintext). */
export interface SealInput {
  readonly key: Uint8Array;
  readonly nonce: Uint8Array;
  /** The Partial IV the nonce holds, as a number (§5.2): AES-CCM computes the next ones' keystreams with it (oscore/algorithms.ts). */
  readonly partialIv: number;
  readonly aad: Uint8Array;
  readonly plaintext: Uint8Array;
}

/** One AEAD decryption: plaintext = open(key, nonce, aad, ciphertext || tag), or a failure. */
export interface OpenInput {
  readonly key: Uint8Array;
  readonly nonce: Uint8Array;
  /** As SealInput's. */
  readonly partialIv: number;
  readonly aad: Uint8Array;
  readonly ciphertext: Uint8Array;
}

export interface RequestToSeal extends SealInput {
  readonly request: CoapMessage;
  readonly outer: CoapOption[];
  readonly optionValue: Uint8Array;
  readonly binding: RequestBinding;
}

/** §8.1 up to the AEAD. Throws SequenceNumberExhausted past 2^40-1, OscoreConfigError/OscoreProtectError on misuse. */
export function requestToSeal(request: CoapMessage, sender: SenderParams, sequenceNumber: number, options: ProtectRequestOptions = {}): RequestToSeal {
  const classOf = options.classOf ?? defaultClassOf;
  const piv = encodePartialIv(sequenceNumber);
  // The context's own array (never mutated): the binding keeps it for the response's AAD.
  const kid = sender.senderId;
  let kidContext: Uint8Array | undefined;
  if (options.kidContext === 'include') {
    if (sender.idContext === undefined) throw new OscoreConfigError("kidContext 'include' needs a sender idContext");
    kidContext = bstr(sender.idContext);
  } else if (options.kidContext !== undefined) {
    kidContext = bstr(options.kidContext);
  }
  const { inner, outer } = splitOptions(request, classOf, 'request');
  const observe = hasOption(request, OptionNumber.Observe);
  return {
    request,
    outer,
    optionValue: encodeOscoreOption(kidContext === undefined ? { piv, kid } : { piv, kid, kidContext }),
    binding: { kid, piv, observe },
    key: sender.senderKey,
    nonce: nonce(sender.commonIv, kid, piv),
    partialIv: sequenceNumber,
    aad: additionalData(sender.aead, kid, piv),
    plaintext: encodePlaintext(request.code, inner, request.payload),
  };
}

/** §8.1 after the AEAD: the protected request and the binding its responses are verified against. */
export function sealedRequest(parts: RequestToSeal, ciphertext: Uint8Array): { message: CoapMessage; binding: RequestBinding } {
  return { message: outerRequest(parts.request, parts.outer, parts.optionValue, ciphertext), binding: parts.binding };
}

export type RequestToOpen =
  | ({ ok: true; readonly request: CoapMessage; readonly kid: Uint8Array; readonly piv: Uint8Array; readonly kidContext: Uint8Array | undefined; readonly recipient: RecipientParams; readonly aead: number } & OpenInput)
  | { ok: false; code: number; reason: string };

/** §8.2 steps 1–2 and 4–5 up to the AEAD. `algorithm` gives the parameters of the recipient's AEAD id. */
export function requestToOpen(
  request: CoapMessage,
  findRecipient: (kid: Uint8Array, kidContext: Uint8Array | undefined) => RecipientParams | undefined,
  algorithm: (id: number) => AeadParameters,
): RequestToOpen {
  const value = oscoreOptionValue(request);
  if (typeof value === 'string') return { ok: false, code: BAD_OPTION, reason: value };
  const layout = REQUEST_LAYOUT;
  try {
    parseOscoreOption(value, layout);
  } catch (e) {
    return { ok: false, code: BAD_OPTION, reason: malformed(e) };
  }
  // §5: 'Partial IV' and 'kid' "SHALL be present in requests".
  if (layout.pivLength < 0) return { ok: false, code: BAD_OPTION, reason: 'Failed to decode COSE: request without Partial IV' };
  if (layout.kidLength < 0) return { ok: false, code: BAD_OPTION, reason: 'Failed to decode COSE: request without kid' };
  // Copies, not views: the binding keeps them past this datagram (and no Buffer view per field).
  const kidCopy = copyOf(value, layout.kidAt, layout.kidLength);
  const pivCopy = copyOf(value, layout.pivAt, layout.pivLength);
  const contextCopy = layout.kidContextLength < 0 ? undefined : copyOf(value, layout.kidContextAt, layout.kidContextLength);
  const recipient = findRecipient(kidCopy, contextCopy);
  if (recipient === undefined) return { ok: false, code: UNAUTHORIZED, reason: 'Security context not found' };

  const alg = algorithm(recipient.aead);
  if (recipient.recipientId.length > alg.maxIdLength) {
    throw new OscoreConfigError(`Recipient ID of ${recipient.recipientId.length} bytes is too long for ${alg.name}`);
  }
  return new RequestOpening(
    request,
    kidCopy,
    pivCopy,
    contextCopy,
    recipient,
    alg.id,
    // §8.2 step 5: the nonce from the Recipient ID (= the client's Sender ID), Common IV and Partial IV.
    nonce(recipient.commonIv, recipient.recipientId, pivCopy),
    decodePartialIv(pivCopy),
    additionalData(alg.id, kidCopy, pivCopy),
  );
}

/**
 * requestToOpen's answer for a request it can open: a class, not an object literal, as the
 * verified request's objects below (issue 21: no literal site on the request path for V8 to
 * pretenure, and one shape).
 */
class RequestOpening implements OpenInput {
  readonly ok = true as const;
  readonly key: Uint8Array;
  readonly ciphertext: Uint8Array;
  constructor(
    readonly request: CoapMessage,
    readonly kid: Uint8Array,
    readonly piv: Uint8Array,
    readonly kidContext: Uint8Array | undefined,
    readonly recipient: RecipientParams,
    readonly aead: number,
    readonly nonce: Uint8Array,
    readonly partialIv: number,
    readonly aad: Uint8Array,
  ) {
    this.key = recipient.recipientKey;
    this.ciphertext = request.payload;
  }
}

/** §8.2 steps 6–7 after the AEAD (`plaintext` undefined: it did not authenticate). */
export function openedRequest(parts: RequestToOpen & { ok: true }, plaintext: Uint8Array | undefined, options: UnprotectOptions = {}): UnprotectRequestResult {
  if (plaintext === undefined) return { ok: false, code: BAD_REQUEST, reason: DECRYPTION_FAILED };
  const { request, recipient, kid, piv } = parts;
  // The inner message is built directly from decodePlaintext's checks (no intermediate object).
  const inner = decodeInnerBody(plaintext);
  // Authentic, yet not a message body: only a broken peer sends this. Not a COSE decoding failure.
  if (inner === undefined) return { ok: false, code: BAD_REQUEST, reason: 'Malformed inner message' };
  const classOf = options.classOf ?? defaultClassOf;
  const message: CoapMessage = {
    type: request.type,
    code: plaintext[0]!,
    messageId: request.messageId,
    token: request.token,
    options: mergeOptions(request, inner.options, classOf, 'request'),
    payload: inner.payload,
  };
  // The nonce a response computes from the kid is this one when the kid is the Recipient ID.
  const verified = equalBytes(recipient.recipientId, kid) ? new VerifiedRequestCrypto(parts.aead, parts.aad, recipient.commonIv, parts.nonce) : undefined;
  const binding = new VerifiedBinding(kid, piv, hasOption(inner, OptionNumber.Observe), verified);
  return new UnprotectedRequest(message, binding, kid, parts.kidContext, parts.partialIv, recipient);
}

/*
 * The binding and result of a verified request are class instances, not object literals (issue 21).
 * A server keeps them until the response is protected (its protector closes over them), and V8
 * pretenures the objects of an object- or array-literal site whose objects it sees surviving a
 * young-generation GC ("allocation-site pretenuring"; a class constructor has no such site). Once
 * it did so for these sites under load — seen with --trace-pretenuring, and with
 * %InYoungGeneration on the objects — each request's binding and result were allocated in the old
 * generation, and from there kept the request's young objects alive through every scavenge: about
 * 1.4 KB promoted per request, scavenges 5–10× longer, and the server's CPU per OSCORE request up
 * by a half. (Undefined rather than a conditional spread for `verified`: V8's slow path, ≈ 0.7 µs,
 * see exchange/context.ts.)
 */
class VerifiedRequestCrypto {
  constructor(
    readonly aead: number,
    readonly aad: Uint8Array,
    readonly commonIv: Uint8Array,
    readonly nonce: Uint8Array,
  ) {}
}

class VerifiedBinding implements RequestBinding {
  constructor(
    readonly kid: Uint8Array,
    readonly piv: Uint8Array,
    readonly observe: boolean,
    readonly verified: VerifiedRequestCrypto | undefined,
  ) {}
}

class UnprotectedRequest {
  readonly ok = true as const;
  constructor(
    readonly message: CoapMessage,
    readonly binding: RequestBinding,
    readonly kid: Uint8Array,
    readonly kidContext: Uint8Array | undefined,
    readonly sequenceNumber: number,
    readonly recipient: RecipientParams,
  ) {}
}

export interface ResponseToSeal extends SealInput {
  readonly response: CoapMessage;
  readonly outer: CoapOption[];
  readonly optionValue: Uint8Array;
  readonly extra: readonly CoapOption[];
}

/** §8.3 (with §8.3.1 for Observe) up to the AEAD. Throws SequenceNumberExhausted / OscoreProtectError on misuse. */
export function responseToSeal(response: CoapMessage, sender: SenderParams, binding: RequestBinding, options: ProtectResponseOptions = {}): ResponseToSeal {
  const classOf = options.classOf ?? defaultClassOf;
  // Most responses carry only Class E options (Content-Format, ...): they are the inner options
  // as they are, with no split into new arrays (issue 21).
  let inner: CoapOption[];
  let outer: CoapOption[];
  if (onlyClassE(response, classOf)) {
    inner = sortOptions(response.options);
    outer = [];
  } else {
    ({ inner, outer } = splitOptions(response, classOf, 'response'));
  }
  const plaintext = encodePlaintext(response.code, inner, response.payload);
  const verified = binding.verified;
  const aad = verified !== undefined && verified.aead === sender.aead ? verified.aad : additionalData(sender.aead, binding.kid, binding.piv);
  let aeadNonce: Uint8Array;
  let optionValue: Uint8Array;
  let partialIv: number;
  if (options.sequenceNumber !== undefined) {
    // §8.3 step 3, second alternative: own Partial IV, which "MUST be included in the message".
    const piv = encodePartialIv(options.sequenceNumber);
    aeadNonce = nonce(sender.commonIv, sender.senderId, piv);
    optionValue = encodeOscoreOption({ piv });
    partialIv = options.sequenceNumber;
  } else {
    // §8.3 step 3, first alternative: the request's nonce (built from the request's kid and
    // Partial IV, §5.2); the Partial IV "MUST NOT be included", so the option value is empty.
    aeadNonce = verified !== undefined && equalBytes(verified.commonIv, sender.commonIv) ? verified.nonce : nonce(sender.commonIv, binding.kid, binding.piv);
    optionValue = EMPTY_BYTES;
    partialIv = decodePartialIv(binding.piv);
  }
  let extra = NO_OPTIONS;
  if (options.outerMaxAge !== undefined) {
    if (outer.some((o) => o.number === OptionNumber.MaxAge)) throw new OscoreProtectError('outerMaxAge given and Max-Age classified as Class U');
    extra = [{ number: OptionNumber.MaxAge, value: encodeUint(options.outerMaxAge) }];
  }
  return new ResponseSealing(response, outer, optionValue, extra, sender.senderKey, aeadNonce, partialIv, aad, plaintext);
}

/** Whether splitOptions would put every option of `msg` inner, as it is (Class E, §4.1). */
function onlyClassE(msg: CoapMessage, classOf: ClassOf): boolean {
  for (const o of msg.options) if (classOf(o.number, msg) !== 'E') return false;
  return true;
}

/** responseToSeal's answer: a class, as RequestOpening. */
class ResponseSealing implements ResponseToSeal {
  constructor(
    readonly response: CoapMessage,
    readonly outer: CoapOption[],
    readonly optionValue: Uint8Array,
    readonly extra: readonly CoapOption[],
    readonly key: Uint8Array,
    readonly nonce: Uint8Array,
    readonly partialIv: number,
    readonly aad: Uint8Array,
    readonly plaintext: Uint8Array,
  ) {}
}

/** §8.3 after the AEAD: the protected response. */
export function sealedResponse(parts: ResponseToSeal, ciphertext: Uint8Array): CoapMessage {
  const { response } = parts;
  return {
    type: response.type,
    // §4.2: Outer Code 2.04 (Changed); §4.1.3.5: 2.05 (Content) for a response with Observe.
    code: hasOption(response, OptionNumber.Observe) ? CONTENT : CHANGED,
    messageId: response.messageId,
    token: response.token,
    options: withOscoreOption(parts.outer, parts.optionValue, parts.extra),
    payload: ciphertext,
  };
}

export type ResponseToOpen = ({ ok: true; readonly response: CoapMessage; readonly piv: Uint8Array | undefined } & OpenInput) | { ok: false; reason: string };

/** §8.4 steps 1–5 up to the AEAD: the response is verified against the request's `binding`. */
export function responseToOpen(response: CoapMessage, recipient: RecipientParams, binding: RequestBinding): ResponseToOpen {
  const cose = decompress(response);
  if (typeof cose === 'string') return { ok: false, reason: cose };
  // A 'kid' or 'kid context' in a response (Group OSCORE, Appendix B.2) does not change which
  // context verifies it here: the one bound to the Token, which the caller passed.
  const { piv } = cose;
  return {
    ok: true,
    response,
    piv,
    key: recipient.recipientKey,
    nonce: piv === undefined
      ? nonce(recipient.commonIv, binding.kid, binding.piv) // §8.4 step 4: the request's nonce
      : nonce(recipient.commonIv, recipient.recipientId, piv),
    partialIv: decodePartialIv(piv ?? binding.piv),
    aad: additionalData(recipient.aead, binding.kid, binding.piv),
    ciphertext: response.payload,
  };
}

/** §8.4 steps 6–8 (with §8.4.2's Observe checks that need no state) after the AEAD. Notification-number replay checks are the caller's (§7.4.1). */
export function openedResponse(
  parts: ResponseToOpen & { ok: true },
  plaintext: Uint8Array | undefined,
  binding: RequestBinding,
  options: UnprotectResponseOptions = {},
): UnprotectResponseResult {
  if (plaintext === undefined) return { ok: false, reason: DECRYPTION_FAILED };
  const inner = decodePlaintext(plaintext);
  if (inner === undefined) return { ok: false, reason: 'Malformed inner message' };
  const { response, piv } = parts;
  let innerOptions = inner.options;
  const sequenceNumber = piv === undefined ? undefined : decodePartialIv(piv);
  if (hasOption(inner, OptionNumber.Observe)) {
    // §4.1.3.5.2: "If the client receives a response to a non-Observe request with an Inner
    // Observe option, then it stops processing the message".
    if (binding.observe === false) return { ok: false, reason: 'Inner Observe in a response to a non-Observe request' };
    if (sequenceNumber !== undefined && (options.observeFromPartialIv ?? true)) {
      const value = encodeUint(sequenceNumber % 0x1000000);
      innerOptions = innerOptions.map((o) => (o.number === OptionNumber.Observe ? { number: o.number, value } : o));
    }
  }
  const classOf = options.classOf ?? defaultClassOf;
  const message: CoapMessage = {
    type: response.type,
    code: inner.code,
    messageId: response.messageId,
    token: response.token,
    options: mergeOptions(response, innerOptions, classOf, 'response'),
    payload: inner.payload,
  };
  return sequenceNumber === undefined ? { ok: true, message } : { ok: true, message, sequenceNumber };
}

/**
 * The parts of the unprotected error response to a request that failed verification (§8.2: "sent
 * as simple CoAP responses, without OSCORE processing"): the code, an Outer Max-Age 0 so
 * OSCORE-unaware caches do not keep it (§4.1.3.1), and the reason as diagnostic payload.
 */
export function errorResponseParts(failure: { code: number; reason: string }): Pick<CoapMessage, 'code' | 'options' | 'payload'> {
  return {
    code: failure.code,
    options: [{ number: OptionNumber.MaxAge, value: encodeUint(0) }],
    payload: encodeString(failure.reason),
  };
}
