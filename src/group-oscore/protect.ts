/**
 * Group OSCORE message protection (draft-ietf-core-oscore-groupcomm §3–§8) as transforms of
 * CoapMessage values, in the style of src/oscore/protect.ts: input messages are never mutated,
 * network input never throws (failures are `{ ok: false }` with the code §7.2/§8.4 suggest), local
 * misuse throws. The only state touched is the context's: the Sender Sequence Number, Recipient
 * Contexts created on the fly (§7.2) and their replay windows (updated atomically here, after
 * verification, §5.3).
 *
 * Group mode (§7): Group Encryption Algorithm with the Sender Key, then a countersignature over
 * ["CounterSignature0", h'', h'', external_aad, ciphertext] encrypted with a keystream from the
 * Signature Encryption Key (§4.2); the payload is ciphertext || encrypted signature. Pairwise
 * mode (§8): the AEAD Algorithm with pairwise keys from static-static ECDH (§2.5).
 */
import { ResponseCode } from '../coap/codes.js';
import { type CoapMessage, type CoapOption, EMPTY_BYTES, encodeUint, getOptions, hasOption, sortOptions } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { CoseError } from '../cose/algorithms.js';
import { concatBytes } from '../cose/cbor.js';
import { signBytes, signatureLength, verifyBytes } from '../cose/sign.js';
import { MalformedOscoreOption, OscoreConfigError, OscoreProtectError } from '../oscore/errors.js';
import { decodePartialIv, encodePartialIv } from '../oscore/option.js';
import { type ClassOf, DECRYPTION_FAILED, decodePlaintext, defaultClassOf, encodePlaintext, mergeOptions, outerRequest, splitOptions, withOscoreOption } from '../oscore/protect.js';
import { aadArray, countersignStructure, encStructure } from './aad.js';
import { groupNonce, signatureKeystream } from './common.js';
import type { GroupRecipientContext, GroupSecurityContext } from './context.js';
import type { AuthCredential } from './credential.js';
import { type GroupOscoreOptionValue, decodeGroupOscoreOption, encodeGroupOscoreOption } from './option.js';

export type GroupMode = 'group' | 'pairwise';

/** What a response is bound to (§3.4 request_kid, request_piv, request_kid_context; §7.1 long exchanges keep them). */
export interface GroupRequestBinding {
  readonly kid: Uint8Array;
  readonly piv: Uint8Array;
  readonly kidContext: Uint8Array;
  readonly mode: GroupMode;
  /** A pairwise request: the Recipient ID of the one server it was protected for (§7.4). */
  readonly pairwiseTo?: Uint8Array;
  readonly observe: boolean;
}

export type GroupRequestTarget = { readonly mode: 'group' } | { readonly mode: 'pairwise'; readonly recipientId: Uint8Array };

export interface ProtectGroupRequestOptions {
  classOf?: ClassOf;
}

export interface ProtectGroupResponseOptions {
  /** Default: the request's mode. */
  mode?: GroupMode;
  /**
   * Use a fresh Partial IV (and include it). §5.3.1/§7.3: required for every response to a request
   * but the first, and whenever this context is not the one that verified the request (forced then).
   */
  freshPartialIv?: boolean;
  /** Include 'kid' in a pairwise-mode response (group-mode responses always carry it, §3.2). */
  includeKid?: boolean;
  /** Option numbers treated as Class I: removed from the message, authenticated through the external_aad (§3.4 'options'). */
  classIOptions?: readonly number[];
  classOf?: ClassOf;
  /** Default 2.04, or 2.05 with Observe (RFC 8613 §4.2); cacheable-oscore §3.4.4 uses 2.05. */
  outerCode?: number;
  /** An Outer Max-Age (RFC 8613 §4.1.3.1; cacheable-oscore §3.4.4 step 9). */
  outerMaxAge?: number;
}

export type UnprotectGroupRequestResult =
  | {
      ok: true;
      message: CoapMessage;
      binding: GroupRequestBinding;
      context: GroupSecurityContext;
      recipient: GroupRecipientContext;
      sequenceNumber: number;
      mode: GroupMode;
      /**
       * 'fresh': accepted by the replay window. 'unverified': authentic, but the window is invalid
       * (§2.6.1.2) — do not deliver; challenge with Echo (§9, see acceptEchoedRequest).
       */
      freshness: 'fresh' | 'unverified';
    }
  | { ok: false; code: number; reason: string };

export type UnprotectGroupResponseResult =
  | { ok: true; message: CoapMessage; kid: Uint8Array; mode: GroupMode; sequenceNumber?: number; recipient: GroupRecipientContext }
  | { ok: false; reason: string };

// --- sealing and opening ---------------------------------------------------------------------

interface CryptoInput {
  readonly context: GroupSecurityContext;
  readonly mode: GroupMode;
  readonly key: Uint8Array;
  /** The Sender ID that generated `piv` (nonce and keystream, §3.3, §4.2). */
  readonly id: Uint8Array;
  readonly piv: Uint8Array;
  /** The Gid used to protect this message (keystream info, §4.2). */
  readonly idContext: Uint8Array;
  readonly aad: Uint8Array;
  readonly isRequest: boolean;
}

function seal(input: CryptoInput, plaintext: Uint8Array): Uint8Array {
  const { common } = input.context;
  if (input.mode === 'pairwise') {
    const aead = common.pairwiseAead!;
    return aead.seal(input.key, groupNonce(common, aead.nonceLength, input.id, input.piv), encStructure(input.aad), plaintext);
  }
  const own = input.context.own;
  if (own === undefined) throw new OscoreConfigError('the group mode needs the own private key');
  const aead = common.groupEncryption!;
  const ciphertext = aead.seal(input.key, groupNonce(common, aead.nonceLength, input.id, input.piv), encStructure(input.aad), plaintext);
  const signature = signBytes(common.algorithms.signature!, own.privateKey, countersignStructure(input.aad, ciphertext));
  const keystream = signatureKeystream(common, input.piv, input.id, input.idContext, input.isRequest, signature.length);
  return concatBytes(ciphertext, xor(signature, keystream));
}

/** The plaintext, or undefined when the countersignature or the AEAD does not verify. */
function open(input: CryptoInput, payload: Uint8Array, sender: AuthCredential): Uint8Array | undefined {
  const { common } = input.context;
  if (input.mode === 'pairwise') {
    const aead = common.pairwiseAead!;
    return aead.open(input.key, groupNonce(common, aead.nonceLength, input.id, input.piv), encStructure(input.aad), payload);
  }
  const alg = common.algorithms.signature!;
  let length: number;
  try {
    length = signatureLength(alg, sender.publicKey);
  } catch {
    return undefined;
  }
  const aead = common.groupEncryption!;
  if (payload.length < length + aead.tagLength) return undefined;
  const ciphertext = payload.subarray(0, payload.length - length);
  const keystream = signatureKeystream(common, input.piv, input.id, input.idContext, input.isRequest, length);
  const signature = xor(payload.subarray(payload.length - length), keystream);
  // §7.2/§7.4: the signature is verified before decrypting.
  if (!verifyBytes(alg, sender.publicKey, countersignStructure(input.aad, ciphertext), signature)) return undefined;
  return aead.open(input.key, groupNonce(common, aead.nonceLength, input.id, input.piv), encStructure(input.aad), ciphertext);
}

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i += 1) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** Class I options as the aad's 'options' bstr: encoded as in a plaintext, deltas among themselves (RFC 8613 §5.4). */
export function encodeClassIOptions(options: readonly CoapOption[]): Uint8Array {
  if (options.length === 0) return EMPTY_BYTES;
  return encodePlaintext(1, sortOptions([...options]), EMPTY_BYTES).subarray(1);
}

function requireSender(context: GroupSecurityContext): { senderId: Uint8Array; senderKey: Uint8Array; credential: Uint8Array } {
  if (context.senderId === undefined || context.senderKey === undefined || context.own === undefined) {
    throw new OscoreConfigError('a silent server cannot protect messages (§1.1)');
  }
  return { senderId: context.senderId, senderKey: context.senderKey, credential: context.own.bytes };
}

function requireMode(context: GroupSecurityContext, mode: GroupMode): void {
  if (mode === 'group' ? !context.common.groupMode : !context.common.pairwiseMode) {
    throw new OscoreConfigError(`the ${mode} mode is not set up in group ${Buffer.from(context.gid).toString('hex')}`);
  }
}

// --- requests --------------------------------------------------------------------------------

/** §7.1 (group mode) and §8.3 (pairwise mode). Throws on local misuse (unknown pairwise peer, no sender). */
export function protectGroupRequest(
  request: CoapMessage,
  context: GroupSecurityContext,
  target: GroupRequestTarget,
  options: ProtectGroupRequestOptions = {},
): { message: CoapMessage; binding: GroupRequestBinding } {
  requireMode(context, target.mode);
  const sender = requireSender(context);
  let key = sender.senderKey;
  if (target.mode === 'pairwise') {
    const peer = context.recipient(target.recipientId);
    if (peer === undefined) throw new OscoreConfigError(`no credential for Recipient ID ${Buffer.from(target.recipientId).toString('hex')} (§8.1)`);
    key = context.pairwiseKeys(peer).senderKey;
  }
  const piv = encodePartialIv(context.nextSequenceNumber());
  const kid = sender.senderId;
  const kidContext = context.gid;
  const optionValue = encodeGroupOscoreOption({ group: target.mode === 'group', piv, kidContext, kid });
  const { inner, outer } = splitOptions(request, options.classOf ?? defaultClassOf, 'request');
  const observe = hasOption(request, OptionNumber.Observe);
  const aad = aadArray({
    algorithms: context.common.algorithms,
    requestKid: kid,
    requestPiv: piv,
    classIOptions: EMPTY_BYTES,
    requestKidContext: kidContext,
    oscoreOption: optionValue,
    senderCredential: sender.credential,
    gmCredential: context.common.gmCredential,
  });
  const payload = seal({ context, mode: target.mode, key, id: kid, piv, idContext: kidContext, aad, isRequest: true }, encodePlaintext(request.code, inner, request.payload));
  return {
    message: outerRequest(request, outer, optionValue, payload),
    binding: { kid, piv, kidContext, mode: target.mode, observe, ...(target.mode === 'pairwise' ? { pairwiseTo: Uint8Array.from(target.recipientId) } : {}) },
  };
}

type Decompressed = { ok: true; cose: GroupOscoreOptionValue; optionValue: Uint8Array } | { ok: false; reason: string };

function decompress(msg: CoapMessage): Decompressed {
  const values = getOptions(msg, OptionNumber.Oscore);
  if (values.length !== 1) return { ok: false, reason: values.length === 0 ? 'Missing OSCORE option' : 'Failed to decode COSE: repeated OSCORE option' };
  if (msg.payload.length === 0) return { ok: false, reason: 'Failed to decode COSE: no payload' };
  try {
    return { ok: true, cose: decodeGroupOscoreOption(values[0]!), optionValue: Uint8Array.from(values[0]!) };
  } catch (e) {
    if (e instanceof MalformedOscoreOption) return { ok: false, reason: `Failed to decode COSE: ${e.message}` };
    throw e;
  }
}

/**
 * §7.2 (group mode) and §8.4 (pairwise mode), with §6's choice of mode by the Group Flag. The
 * context is found by the request's 'kid context' (the Gid, always present, §3.2).
 */
export function unprotectGroupRequest(
  request: CoapMessage,
  findContext: (gid: Uint8Array) => GroupSecurityContext | undefined,
  options: { classOf?: ClassOf } = {},
): UnprotectGroupRequestResult {
  const d = decompress(request);
  if (!d.ok) return { ok: false, code: ResponseCode.BadOption, reason: d.reason };
  const { piv, kid, kidContext, group } = d.cose;
  if (piv === undefined || kid === undefined) return { ok: false, code: ResponseCode.BadOption, reason: 'Failed to decode COSE: request without Partial IV or kid' };
  if (kidContext === undefined) return { ok: false, code: ResponseCode.Unauthorized, reason: 'Security context not found' };
  const context = findContext(kidContext);
  if (context === undefined) return { ok: false, code: ResponseCode.Unauthorized, reason: 'Security context not found' };
  const mode: GroupMode = group ? 'group' : 'pairwise';
  // §6: a message in a mode the group does not use is discarded (§8.4: 4.02 for the pairwise mode).
  if (group ? !context.common.groupMode : !context.common.pairwiseMode) return { ok: false, code: ResponseCode.BadOption, reason: `${mode} mode not supported` };
  if (context.senderId !== undefined && Buffer.from(kid).equals(Buffer.from(context.senderId))) {
    return { ok: false, code: ResponseCode.Unauthorized, reason: 'Request from our own Sender ID' };
  }
  const recipient = context.recipient(kid);
  // §7.2: no public key for this client yet → stop; 5.03 lets it retry later.
  if (recipient === undefined) return { ok: false, code: ResponseCode.ServiceUnavailable, reason: 'No authentication credential for this Sender ID' };
  const sequenceNumber = decodePartialIv(piv);
  const verdict = recipient.replay.verdict(sequenceNumber);
  if (verdict === 'replayed' || verdict === 'too-old' || verdict === 'invalid') {
    return { ok: false, code: ResponseCode.Unauthorized, reason: 'Replay detected' };
  }
  const fail = (): UnprotectGroupRequestResult => {
    context.discardIfUnverified(recipient);
    return { ok: false, code: ResponseCode.BadRequest, reason: DECRYPTION_FAILED };
  };
  let key = recipient.recipientKey;
  if (mode === 'pairwise') {
    try {
      key = context.pairwiseKeys(recipient).recipientKey;
    } catch (e) {
      if (e instanceof CoseError) return fail();
      throw e;
    }
  }
  const aad = aadArray({
    algorithms: context.common.algorithms,
    requestKid: kid,
    requestPiv: piv,
    classIOptions: EMPTY_BYTES,
    requestKidContext: kidContext,
    oscoreOption: d.optionValue,
    senderCredential: recipient.credential.bytes,
    gmCredential: context.common.gmCredential,
  });
  const plaintext = open({ context, mode, key, id: kid, piv, idContext: kidContext, aad, isRequest: true }, request.payload, recipient.credential);
  if (plaintext === undefined) return fail();
  const inner = decodePlaintext(plaintext);
  if (inner === undefined) return fail();
  recipient.verified = true;
  let freshness: 'fresh' | 'unverified' = 'fresh';
  if (verdict === 'uninitialised') freshness = 'unverified';
  else if (!recipient.replay.accept(sequenceNumber)) return { ok: false, code: ResponseCode.Unauthorized, reason: 'Replay detected' };
  const message: CoapMessage = {
    type: request.type,
    code: inner.code,
    messageId: request.messageId,
    token: request.token,
    options: mergeOptions(request, inner.options, options.classOf ?? defaultClassOf, 'request'),
    payload: inner.payload,
  };
  const binding: GroupRequestBinding = {
    kid: Uint8Array.from(kid),
    piv: Uint8Array.from(piv),
    kidContext: Uint8Array.from(kidContext),
    mode,
    observe: hasOption({ options: inner.options }, OptionNumber.Observe),
    ...(mode === 'pairwise' && context.senderId !== undefined ? { pairwiseTo: context.senderId } : {}),
  };
  return { ok: true, message, binding, context, recipient, sequenceNumber, mode, freshness };
}

/**
 * §9: the request that echoes the Echo value this client was challenged with makes its invalid
 * replay window valid, with the request's Partial IV as the lower limit. True when accepted.
 */
export function acceptEchoedRequest(result: Extract<UnprotectGroupRequestResult, { ok: true }>): boolean {
  const { recipient } = result;
  const echo = getOptions(result.message, OptionNumber.Echo)[0];
  if (recipient.echoChallenge === undefined || echo === undefined || !Buffer.from(echo).equals(Buffer.from(recipient.echoChallenge))) return false;
  recipient.echoChallenge = undefined;
  // §9: with a valid window, unprotectGroupRequest already decided fresh or replay by it.
  if (result.freshness === 'fresh') return true;
  recipient.replay.initialiseAt(result.sequenceNumber);
  return true;
}

// --- responses -------------------------------------------------------------------------------

/** §7.3 (group mode) and §8.5 (pairwise mode). */
export function protectGroupResponse(
  response: CoapMessage,
  context: GroupSecurityContext,
  binding: GroupRequestBinding,
  options: ProtectGroupResponseOptions = {},
): CoapMessage {
  const mode = options.mode ?? binding.mode;
  requireMode(context, mode);
  const sender = requireSender(context);
  const sameContext = Buffer.from(binding.kidContext).equals(Buffer.from(context.gid));
  // §7.3 step 3: a response from another security context than the request's must not reuse its nonce.
  const fresh = options.freshPartialIv === true || !sameContext;
  const piv = fresh ? encodePartialIv(context.nextSequenceNumber()) : undefined;
  let key = sender.senderKey;
  if (mode === 'pairwise') {
    const client = context.recipient(binding.kid);
    if (client === undefined) throw new OscoreProtectError('no Recipient Context for the client of this request');
    key = context.pairwiseKeys(client).senderKey;
  }
  const optionValue = encodeGroupOscoreOption({
    group: mode === 'group',
    ...(piv !== undefined ? { piv } : {}),
    // §7.3: the new Gid goes in 'kid context' when the response uses another context than the request.
    ...(!sameContext ? { kidContext: context.gid } : {}),
    ...(mode === 'group' || options.includeKid === true ? { kid: sender.senderId } : {}),
  });
  const classINumbers = new Set(options.classIOptions ?? []);
  const classI = response.options.filter((o) => classINumbers.has(o.number));
  const rest: CoapMessage = { ...response, options: response.options.filter((o) => !classINumbers.has(o.number)) };
  const { inner, outer } = splitOptions(rest, options.classOf ?? defaultClassOf, 'response');
  const observe = hasOption(response, OptionNumber.Observe);
  const aad = aadArray({
    algorithms: context.common.algorithms,
    requestKid: binding.kid,
    requestPiv: binding.piv,
    classIOptions: encodeClassIOptions(classI),
    requestKidContext: binding.kidContext,
    oscoreOption: optionValue,
    senderCredential: sender.credential,
    gmCredential: context.common.gmCredential,
  });
  const id = piv !== undefined ? sender.senderId : binding.kid;
  const payload = seal(
    { context, mode, key, id, piv: piv ?? binding.piv, idContext: context.gid, aad, isRequest: false },
    encodePlaintext(response.code, inner, response.payload),
  );
  const extra: CoapOption[] = [];
  if (options.outerMaxAge !== undefined) extra.push({ number: OptionNumber.MaxAge, value: encodeUint(options.outerMaxAge) });
  return {
    type: response.type,
    code: options.outerCode ?? (observe ? ResponseCode.Content : ResponseCode.Changed),
    messageId: response.messageId,
    token: response.token,
    options: withOscoreOption(outer, optionValue, extra),
    payload,
  };
}

export interface UnprotectGroupResponseOptions {
  /** The Class I options of the request's exchange, reconstructed (e.g. Request-Hash); added to the result. */
  classIOptions?: readonly CoapOption[];
  classOf?: ClassOf;
  /** cacheable-oscore §3.4.4 step 4: ignore an Inner Observe in a response to a non-Observe request. */
  ignoreInnerObserve?: boolean;
}

/**
 * §7.4 (group mode) and §8.6 (pairwise mode). The replying server is the one named by the
 * response's 'kid' — for a pairwise request without 'kid', the server it was protected for — and
 * is authenticated by its countersignature (group mode) or its pairwise key (pairwise mode).
 * Ordering within a long exchange is GroupResponseTracker's.
 */
export function unprotectGroupResponse(
  response: CoapMessage,
  context: GroupSecurityContext,
  binding: GroupRequestBinding,
  options: UnprotectGroupResponseOptions = {},
): UnprotectGroupResponseResult {
  const d = decompress(response);
  if (!d.ok) return { ok: false, reason: d.reason };
  const { piv, kidContext, group } = d.cose;
  const mode: GroupMode = group ? 'group' : 'pairwise';
  if (group ? !context.common.groupMode : !context.common.pairwiseMode) return { ok: false, reason: `${mode} mode not supported` };
  if (kidContext !== undefined && !Buffer.from(kidContext).equals(Buffer.from(context.gid))) {
    return { ok: false, reason: 'Response protected with another ID Context than this one' };
  }
  const kid = d.cose.kid ?? binding.pairwiseTo;
  if (kid === undefined) return { ok: false, reason: 'Response without kid to a group request' };
  // §7.4: a response to a pairwise request must come from the server it was meant for.
  if (binding.pairwiseTo !== undefined && !Buffer.from(kid).equals(Buffer.from(binding.pairwiseTo))) {
    return { ok: false, reason: 'Response from another server than the request was protected for' };
  }
  const recipient = context.recipient(kid);
  if (recipient === undefined) return { ok: false, reason: 'Unknown server (no authentication credential for its kid)' };
  let key = recipient.recipientKey;
  if (mode === 'pairwise') {
    try {
      key = context.pairwiseKeys(recipient).recipientKey;
    } catch (e) {
      if (e instanceof CoseError) return { ok: false, reason: DECRYPTION_FAILED };
      throw e;
    }
  }
  const classI = options.classIOptions ?? [];
  const aad = aadArray({
    algorithms: context.common.algorithms,
    requestKid: binding.kid,
    requestPiv: binding.piv,
    classIOptions: encodeClassIOptions(classI),
    requestKidContext: binding.kidContext,
    oscoreOption: d.optionValue,
    senderCredential: recipient.credential.bytes,
    gmCredential: context.common.gmCredential,
  });
  const plaintext = open(
    { context, mode, key, id: piv !== undefined ? kid : binding.kid, piv: piv ?? binding.piv, idContext: context.gid, aad, isRequest: false },
    response.payload,
    recipient.credential,
  );
  const inner = plaintext === undefined ? undefined : decodePlaintext(plaintext);
  if (inner === undefined) {
    context.discardIfUnverified(recipient);
    return { ok: false, reason: DECRYPTION_FAILED };
  }
  recipient.verified = true;
  let innerOptions = inner.options;
  if (hasOption({ options: innerOptions }, OptionNumber.Observe) && !binding.observe) {
    if (options.ignoreInnerObserve !== true) return { ok: false, reason: 'Inner Observe in a response to a non-Observe request' };
    innerOptions = innerOptions.filter((o) => o.number !== OptionNumber.Observe);
  }
  const message: CoapMessage = {
    type: response.type,
    code: inner.code,
    messageId: response.messageId,
    token: response.token,
    options: sortOptions([...mergeOptions(response, innerOptions, options.classOf ?? defaultClassOf, 'response'), ...classI]),
    payload: inner.payload,
  };
  const base = { ok: true as const, message, kid: Uint8Array.from(kid), mode, recipient };
  return piv === undefined ? base : { ...base, sequenceNumber: decodePartialIv(piv) };
}
