/**
 * Deterministic requests (draft-ietf-core-cacheable-oscore §3): a request protected in the
 * pairwise mode by the group's Deterministic Client, with a key derived from the hash of the
 * request itself, so equal requests give equal bytes a proxy can cache. Responses are protected
 * in group mode with the Request-Hash option as Class I (§3.4.4).
 */
import { timingSafeEqual } from 'node:crypto';
import { Method, ResponseCode } from '../coap/codes.js';
import { type CoapMessage, type CoapOption, EMPTY_BYTES, encodeUint, getOption, getOptions, hasOption, sortOptions } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { coseHash } from '../cose/algorithms.js';
import { concatBytes } from '../cose/cbor.js';
import { MalformedOscoreOption, OscoreConfigError } from '../oscore/errors.js';
import { DECRYPTION_FAILED, decodePlaintext, defaultClassOf, encodePlaintext, mergeOptions, splitOptions, withOscoreOption, type ClassOf } from '../oscore/protect.js';
import { aadArray, encStructure } from './aad.js';
import { deriveEndpointKey, derivePairwiseKey, groupNonce } from './common.js';
import type { GroupSecurityContext } from './context.js';
import { decodeGroupOscoreOption, encodeGroupOscoreOption } from './option.js';
import type { GroupRequestBinding } from './protect.js';

/** Request-Hash: "TBD548" in the draft, its suggested number; experimental until IANA assigns it. */
export const REQUEST_HASH_OPTION = OptionNumber.RequestHash;

/** §3.4.1: what every member knows about the group's Deterministic Client. */
export interface DeterministicClient {
  readonly senderId: Uint8Array;
  /** COSE hash id, e.g. -16 for SHA-256. */
  readonly hash: number;
}

/** Request-Hash is Class U in requests (§3.3): it must be readable before decryption. */
const requestClassOf: ClassOf = (n, m) => (n === REQUEST_HASH_OPTION ? 'U' : defaultClassOf(n, m));

const ZERO_PIV = Uint8Array.of(0);

interface Derived {
  readonly optionValue: Uint8Array;
  readonly aad: Uint8Array;
  readonly senderKey: Uint8Array;
}

function derive(context: GroupSecurityContext, client: DeterministicClient): Derived {
  const { common } = context;
  if (!common.pairwiseMode) throw new OscoreConfigError('deterministic requests need the pairwise mode (§3.4.2)');
  const optionValue = encodeGroupOscoreOption({ group: false, piv: ZERO_PIV, kidContext: context.gid, kid: client.senderId });
  // §3.4.2 step 1: Partial IV 0 and an empty sender_cred.
  const aad = aadArray({
    algorithms: common.algorithms,
    requestKid: client.senderId,
    requestPiv: ZERO_PIV,
    classIOptions: EMPTY_BYTES,
    requestKidContext: context.gid,
    oscoreOption: optionValue,
    senderCredential: EMPTY_BYTES,
    gmCredential: common.gmCredential,
  });
  return { optionValue, aad, senderKey: deriveEndpointKey(common, client.senderId) };
}

/** §3.4.2 step 2: H = Hash(Sender Key || aad_array || plaintext). */
const requestHash = (client: DeterministicClient, d: Derived, plaintext: Uint8Array): Uint8Array =>
  coseHash(client.hash).digest(concatBytes(d.senderKey, d.aad, plaintext));

/**
 * Appendix A: Padding options (Class E, repeatable) that bring `inner` to a COSE plaintext of
 * exactly `length` bytes, so Deterministic Requests of one class have one ciphertext length (§3.1:
 * the length is agreed among the users of the group context). Padding is the highest option
 * number, so the first one costs 3 bytes (1 + 2 of extended delta) and a second one 1 more; a
 * value past 12 (268) bytes costs 1 (2) more for its length.
 */
function paddedInner(code: number, inner: CoapOption[], payload: Uint8Array, length: number): CoapOption[] {
  const unpadded = encodePlaintext(code, inner, payload).length;
  const need = length - unpadded;
  if (need === 0) return inner;
  if (need < 0) throw new OscoreConfigError(`the request needs ${unpadded} bytes of plaintext, more than the agreed padding length ${length} (cacheable-oscore Appendix A)`);
  const cost = (value: number, first: boolean): number => (first ? 3 : 1) + (value < 13 ? 0 : value < 269 ? 1 : 2) + value;
  const fill = (total: number, first: boolean): number | undefined => {
    for (const value of [total - (first ? 3 : 1), total - (first ? 4 : 2), total - (first ? 5 : 3)]) if (value >= 0 && cost(value, first) === total) return value;
    return undefined;
  };
  // One option where a value length fits; else an empty one (3 bytes) and a second one for the rest.
  const single = fill(need, true);
  const second = single === undefined ? fill(need - 3, false) : undefined;
  const values = single !== undefined ? [single] : second !== undefined ? [0, second] : undefined;
  if (values === undefined) throw new OscoreConfigError(`cannot pad ${unpadded} bytes of plaintext to exactly ${length}: a Padding option takes at least 3 (cacheable-oscore Appendix A)`);
  const padded = sortOptions([...inner, ...values.map((n) => ({ number: OptionNumber.Padding, value: new Uint8Array(n) }))]);
  if (encodePlaintext(code, padded, payload).length !== length) throw new OscoreConfigError(`cannot pad the request to exactly ${length} bytes of plaintext (an option above Padding's number)`);
  return padded;
}

export interface DeterministicRequestOptions {
  /** Appendix A: pad the COSE plaintext to exactly this many bytes with Padding options (Class E, all-zero). */
  padTo?: number;
  /**
   * §3.1, §3.4.2 step 5: an Inner Observe 0 even when no observation is intended, so that
   * observations and plain reads of a resource are one request (one cache entry at a proxy).
   */
  innerObserve?: boolean;
}

/**
 * §3.4.2: the Deterministic Request for `request` (a safe request: GET or FETCH). An Observe
 * option in `request` is the Outer Observe (step 7: register 0, deregister 1) and makes the Inner
 * Observe 0 (step 5): the inner one is part of the hash, so it never changes between the
 * registration, its renewals and its deregistration — they are one Deterministic Request, which a
 * proxy aggregates; the Outer value alone says what the client wants of the observation.
 */
export function protectDeterministicRequest(
  request: CoapMessage,
  context: GroupSecurityContext,
  client: DeterministicClient,
  options: DeterministicRequestOptions = {},
): { message: CoapMessage; binding: GroupRequestBinding; requestHash: Uint8Array } {
  const d = derive(context, client);
  const outerObserve = getOption(request, OptionNumber.Observe);
  const withoutObserve: CoapMessage = outerObserve === undefined ? request : { ...request, options: request.options.filter((o) => o.number !== OptionNumber.Observe) };
  const { inner: split, outer } = splitOptions(withoutObserve, requestClassOf, 'request');
  const observe = outerObserve !== undefined || options.innerObserve === true;
  const observed = observe ? sortOptions([...split, { number: OptionNumber.Observe, value: encodeUint(0) }]) : split;
  const inner = options.padTo === undefined ? observed : paddedInner(request.code, observed, request.payload, options.padTo);
  const plaintext = encodePlaintext(request.code, inner, request.payload);
  const hash = requestHash(client, d, plaintext);
  // Step 3: K = HKDF(Sender Key, H, info with the Deterministic Client's Sender ID).
  const key = derivePairwiseKey(context.common, d.senderKey, hash, client.senderId);
  const aead = context.common.pairwiseAead!;
  const ciphertext = aead.seal(key, groupNonce(context.common, aead.nonceLength, client.senderId, ZERO_PIV), encStructure(d.aad), plaintext);
  const extra: CoapOption[] = [{ number: REQUEST_HASH_OPTION, value: hash }];
  if (outerObserve !== undefined) extra.push({ number: OptionNumber.Observe, value: outerObserve });
  return {
    message: {
      type: request.type,
      code: Method.FETCH, // step 8
      messageId: request.messageId,
      token: request.token,
      options: withOscoreOption(outer, d.optionValue, extra),
      payload: ciphertext,
    },
    binding: { kid: Uint8Array.from(client.senderId), piv: ZERO_PIV, kidContext: Uint8Array.from(context.gid), mode: 'pairwise', observe },
    requestHash: hash,
  };
}

export type UnprotectDeterministicResult =
  | { ok: true; message: CoapMessage; binding: GroupRequestBinding; requestHash: Uint8Array }
  /** `binding` and `requestHash` come with the 4.01 for a request with side effects, which is answered protected (§3.4.3). */
  | { ok: false; code: number; reason: string; binding?: GroupRequestBinding; requestHash?: Uint8Array };

/** §3.4.3, for a request already recognised as deterministic (Request-Hash present, kid = the Deterministic Client's). No replay window: safe requests only. */
export function unprotectDeterministicRequest(request: CoapMessage, context: GroupSecurityContext, client: DeterministicClient): UnprotectDeterministicResult {
  const oscore = getOptions(request, OptionNumber.Oscore);
  const hashes = getOptions(request, REQUEST_HASH_OPTION);
  if (oscore.length !== 1 || hashes.length !== 1 || request.payload.length === 0) return { ok: false, code: ResponseCode.BadOption, reason: 'Not a deterministic request' };
  let cose;
  try {
    cose = decodeGroupOscoreOption(oscore[0]!);
  } catch (e) {
    if (e instanceof MalformedOscoreOption) return { ok: false, code: ResponseCode.BadOption, reason: `Failed to decode COSE: ${e.message}` };
    throw e;
  }
  const isDeterministic = !cose.group && cose.kid !== undefined && Buffer.from(cose.kid).equals(Buffer.from(client.senderId))
    && cose.piv !== undefined && cose.piv.length === 1 && cose.piv[0] === 0
    && cose.kidContext !== undefined && Buffer.from(cose.kidContext).equals(Buffer.from(context.gid));
  if (!isDeterministic) return { ok: false, code: ResponseCode.BadOption, reason: 'Not a deterministic request' };
  const d = derive(context, client);
  if (!Buffer.from(d.optionValue).equals(Buffer.from(oscore[0]!))) return { ok: false, code: ResponseCode.BadOption, reason: 'Not a deterministic request' };
  const hash = hashes[0]!;
  const key = derivePairwiseKey(context.common, d.senderKey, hash, client.senderId);
  const aead = context.common.pairwiseAead!;
  const plaintext = aead.open(key, groupNonce(context.common, aead.nonceLength, client.senderId, ZERO_PIV), encStructure(d.aad), request.payload);
  const inner = plaintext === undefined ? undefined : decodePlaintext(plaintext);
  if (plaintext === undefined || inner === undefined) return { ok: false, code: ResponseCode.BadRequest, reason: DECRYPTION_FAILED };
  // §3.4.3: the hash is recomputed, so a guessed tag cannot poison caches.
  // Compared in constant time: it stands in for the authentication of the request's content.
  const recomputed = requestHash(client, d, plaintext);
  if (recomputed.length !== hash.length || !timingSafeEqual(recomputed, hash)) return { ok: false, code: ResponseCode.BadRequest, reason: DECRYPTION_FAILED };
  // §3.4.3: only requests without side effects; the answer is a protected 4.01.
  const binding: GroupRequestBinding = { kid: Uint8Array.from(client.senderId), piv: ZERO_PIV, kidContext: Uint8Array.from(context.gid), mode: 'pairwise', observe: hasOption({ options: inner.options }, OptionNumber.Observe) };
  if (inner.code !== Method.GET && inner.code !== Method.FETCH) return { ok: false, code: ResponseCode.Unauthorized, reason: 'Deterministic request with side effects', binding, requestHash: Uint8Array.from(hash) };
  // The Inner Observe is 0 whatever the client intends (§3.1): the Outer Observe, when present,
  // says whether this is a registration (0) or a deregistration (1); without one the request is no
  // observation (§3.4.4 step 8) and reaches the handler without Observe.
  const outerObserve = getOption(request, OptionNumber.Observe);
  // Appendix A.2: a Padding option is ignored — dropped here, so no handler sees it.
  const merged = mergeOptions(request, inner.options, requestClassOf, 'request').filter((o) => o.number !== OptionNumber.Observe && o.number !== OptionNumber.Padding);
  const message: CoapMessage = {
    type: request.type,
    code: inner.code,
    messageId: request.messageId,
    token: request.token,
    options: outerObserve === undefined ? merged : sortOptions([...merged, { number: OptionNumber.Observe, value: outerObserve }]),
    payload: inner.payload,
  };
  return {
    ok: true,
    message,
    binding,
    requestHash: Uint8Array.from(hash),
  };
}
