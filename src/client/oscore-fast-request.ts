/**
 * The client's fast path for OSCORE (issue 21): a simple request (client/fast-request.ts's
 * conditions) to a URI whose end-to-end security is one OscoreClientSecurity — no route through
 * OSCORE-capable proxies, no Appendix B.2 re-derivation running, no key update (KUDOS) attached,
 * no Observe — is protected from a per-target form (OscoreRequestForm) and written straight into
 * the endpoint's sendSimple: the inner options are encoded once per target and context, the outer
 * options once up to the OSCORE option, whose value (this request's Partial IV, the kid and any
 * 'kid context') is written per request, and the ciphertext is the datagram's payload. No request
 * message, no COSE structures, no OscoreExchange, no layer walk.
 *
 * The wire is the layered path's (client.ts → one-exchange.ts → requester.ts → protect.ts) byte for
 * byte: the Sender Sequence Number comes from the context as there (RFC 8613 §7.2, with its
 * Appendix B.1 persistence), the token from the same random source, and a retransmission is the
 * same datagram, so no nonce is used twice.
 *
 * A response is opened here only when it is the ordinary answer (§8.4): one OSCORE option with an
 * empty value (no Partial IV: the request's nonce, §8.4 step 4; no 'kid context'), no outer Block2.
 * The AAD is built from the request's kid and Partial IV (§5.4), the tag is checked by the AEAD
 * (constant time, crypto/aes-ccm.ts). Anything else — a response with its own Partial IV or a
 * 'kid context' (Appendix B.2), outer Block2 blocks (§8.4.1), an unprotected or forged response,
 * an inner Observe — goes, untouched, through the layered path's own verification and layers
 * (one-exchange.ts protectedResponse), with the OscoreExchange the layered path would have made;
 * a verified 4.01 (an Echo challenge, RFC 9175 §2.4, App. B.1.2) or an inner Block2 goes on through
 * continueExchange as from the layered path.
 * test/client-oscore-fast-path.test.ts compares every datagram and every outcome with and without it.
 */
import { ResponseCode, Method, type Code } from '../coap/codes.js';
import { encodeCodeAndBody } from '../coap/codec.js';
import { EMPTY_BYTES, MessageType, getOption, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { withOscoreLayer, type EndpointContext } from '../exchange/context.js';
import type { ReceivedResponse, RequestOptions, ResponseHandler } from '../exchange/endpoint.js';
import { aeadAlgorithm, type AeadAlgorithm } from '../oscore/algorithms.js';
import type { RecipientParams, SenderParams } from '../oscore/context.js';
import { nonce } from '../oscore/context-rules.js';
import { additionalData, decodePlaintext, defaultClassOf, mergeOptions, outerRequest, splitOptions } from '../oscore/protect.js';
import { MAX_SEQUENCE_NUMBER, encodePartialIv } from '../oscore/option.js';
import { OscoreExchange } from '../oscore/requester.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { wholeResponse, type BlockwiseOptions } from './blockwise.js';
import type { SimpleTarget } from './fast-request.js';
import { continueExchange, protectedResponse } from './one-exchange.js';
import { OscoreClientSecurity, OscoreProtectedRequest, layerOf } from './oscore.js';

/** The OSCORE flag bits of a request's option value (§6.1): 'k' always, 'h' with a 'kid context'. */
const FLAG_KID = 0x08;
const FLAG_KID_CONTEXT = 0x10;

/**
 * A target's requests as protected under one security context: what §8.1 makes of the route's
 * options, computed once. Remade when the requester's context changes (Appendix B.2 completed).
 */
export class OscoreRequestForm {
  readonly sender: SenderParams;
  readonly recipient: RecipientParams;
  readonly aead: AeadAlgorithm;
  /** The recipient's AEAD (the context's, as the sender's), which opens responses. */
  readonly openAead: AeadAlgorithm;
  /** The 'kid context' a request carries (§5.1: the ID Context, when the context has one). */
  readonly kidContext: Uint8Array | undefined;
  /** The Class E options (§4.1), sorted and encoded as in the plaintext (§5.3), after its Code. */
  readonly innerOptionBytes: Uint8Array;
  /** The outer options numbered below OSCORE's, encoded (deltas from 0); the number of the last of them. */
  private readonly outerBefore: Uint8Array;
  private readonly lastBefore: number;
  /** The outer options numbered above OSCORE's, encoded with deltas from OSCORE's number. */
  private readonly outerAfter: Uint8Array;
  /** The outer options as splitOptions gives them (for the request message of the layered path, when a response needs it). */
  readonly outer: CoapOption[];
  /** The outer option bytes of the latest request (sendSimple copies them at once): remade only when their length changes. */
  private optionScratch: Uint8Array = EMPTY_BYTES;
  private plaintextScratch: Uint8Array = EMPTY_BYTES;
  /**
   * §5.2: the nonces of this context's kid with Partial IV 0, from the sender's and the
   * recipient's Common IV (the same bytes in one context); a Partial IV is XORed into the last
   * five bytes of a copy (nonceOf).
   */
  private readonly requestNonceBase: Uint8Array;
  private readonly responseNonceBase: Uint8Array;
  private readonly nonceScratch: Uint8Array;
  /** additionalData() of the kid and a Partial IV of 1..5 bytes, the Partial IV's bytes left to write (aadOf); undefined where that layout does not hold. */
  private readonly aadTemplates: Array<Uint8Array | null | undefined> = [];

  constructor(
    readonly context: OscoreSecurityContext,
    routeOptions: readonly CoapOption[],
  ) {
    this.sender = context.sender;
    this.recipient = context.primaryRecipient.params;
    this.aead = aeadAlgorithm(this.sender.aead);
    this.openAead = aeadAlgorithm(this.recipient.aead);
    this.kidContext = context.idContext !== undefined ? this.sender.idContext : undefined;
    // The route's options carry no Observe and no Proxy-Uri (client.ts routes), so the split
    // depends on the option numbers alone: the same for every request to this target.
    const probe: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options: routeOptions as CoapOption[], payload: EMPTY_BYTES };
    const { inner, outer } = splitOptions(probe, defaultClassOf, 'request');
    this.outer = outer;
    this.innerOptionBytes = encodeCodeAndBody(0, inner, EMPTY_BYTES).subarray(1);
    const before = outer.filter((o) => o.number < OptionNumber.Oscore);
    const after = outer.filter((o) => o.number > OptionNumber.Oscore);
    this.outerBefore = encodeCodeAndBody(0, before, EMPTY_BYTES).subarray(1);
    this.lastBefore = before.length > 0 ? before[before.length - 1]!.number : 0;
    // Encoded after a placeholder option numbered as OSCORE, whose one header byte is then dropped.
    this.outerAfter = encodeCodeAndBody(0, [{ number: OptionNumber.Oscore, value: EMPTY_BYTES }, ...after], EMPTY_BYTES).subarray(2);
    const kid = this.sender.senderId;
    this.requestNonceBase = nonce(this.sender.commonIv, kid, EMPTY_BYTES);
    this.responseNonceBase = nonce(this.recipient.commonIv, kid, EMPTY_BYTES);
    this.nonceScratch = new Uint8Array(this.requestNonceBase.length);
  }

  /**
   * The nonce of a request with Sender Sequence Number `sequenceNumber` (`response`: of its
   * response without a Partial IV, §8.4 step 4), as nonce(commonIv, kid, piv) writes it; valid until
   * the next call (the AEAD reads it at once).
   */
  nonceOf(sequenceNumber: number, response: boolean): Uint8Array {
    const base = response ? this.responseNonceBase : this.requestNonceBase;
    const out = this.nonceScratch;
    out.set(base, 0);
    // The Partial IV is the number's big-endian bytes without leading zeros, right-aligned: XOR
    // of all five bytes is the same (the leading ones are zero).
    const end = out.length;
    let v = sequenceNumber;
    for (let i = 1; i <= 5; i++) {
      out[end - i]! ^= v % 256;
      v = Math.floor(v / 256);
    }
    return out;
  }

  /** additionalData(aead, kid, piv) of the request with `sequenceNumber` (also its response's, §5.4); valid until the next call. */
  aadOf(aead: number, sequenceNumber: number): Uint8Array {
    const length = partialIvLength(sequenceNumber);
    let template = aead === this.sender.aead ? this.aadTemplates[length] : null;
    if (template === undefined) template = this.aadTemplates[length] = aadTemplate(aead, this.sender.senderId, length);
    if (template === null) return additionalData(aead, this.sender.senderId, encodePartialIv(sequenceNumber));
    // The Partial IV is the last field but the empty Class I options' 0x40 (§5.4).
    let v = sequenceNumber;
    for (let i = template.length - 2; i >= template.length - 1 - length; i--) {
      template[i] = v % 256;
      v = Math.floor(v / 256);
    }
    return template;
  }

  /** Whether the route's options are what this form was made for (they are, unless a Proxy-Uri or Observe would make splitOptions depend on more). */
  static fits(routeOptions: readonly CoapOption[]): boolean {
    return routeOptions.every((o) => o.number !== OptionNumber.ProxyUri && o.number !== OptionNumber.Observe && o.number !== OptionNumber.Oscore);
  }

  /**
   * The outer options of the request with Partial IV `piv`, as withOscoreOption sorts them and
   * encodeMessage writes them; valid until the next call (sendSimple copies them at once).
   */
  outerOptionBytes(sequenceNumber: number): Uint8Array {
    const kid = this.sender.senderId;
    const kidContext = this.kidContext;
    const pivLength = partialIvLength(sequenceNumber);
    const valueLength = 1 + pivLength + (kidContext !== undefined ? 1 + kidContext.length : 0) + kid.length;
    const delta = OptionNumber.Oscore - this.lastBefore;
    const lengthBytes = valueLength < 13 ? 0 : valueLength < 269 ? 1 : 2;
    const size = this.outerBefore.length + 1 + lengthBytes + valueLength + this.outerAfter.length;
    let out = this.optionScratch;
    if (out.length !== size) out = this.optionScratch = new Uint8Array(size);
    out.set(this.outerBefore, 0);
    let pos = this.outerBefore.length;
    // The delta is at most 9 (never extended); the length as RFC 7252 §3.1 extends it.
    if (lengthBytes === 0) out[pos++] = (delta << 4) | valueLength;
    else if (lengthBytes === 1) {
      out[pos++] = (delta << 4) | 13;
      out[pos++] = valueLength - 13;
    } else {
      out[pos++] = (delta << 4) | 14;
      out[pos++] = (valueLength - 269) >>> 8;
      out[pos++] = (valueLength - 269) & 0xff;
    }
    // §6.1 (encodeOscoreOption): flags, Partial IV, [s, kid context], kid.
    out[pos++] = pivLength | FLAG_KID | (kidContext !== undefined ? FLAG_KID_CONTEXT : 0);
    let v = sequenceNumber;
    for (let i = pivLength - 1; i >= 0; i--) {
      out[pos + i] = v % 256;
      v = Math.floor(v / 256);
    }
    pos += pivLength;
    if (kidContext !== undefined) {
      out[pos++] = kidContext.length;
      out.set(kidContext, pos);
      pos += kidContext.length;
    }
    out.set(kid, pos);
    pos += kid.length;
    out.set(this.outerAfter, pos);
    return out;
  }

  /** The plaintext of a request (§5.3): Code, the inner options, and the payload after its marker; valid until the next call. */
  plaintext(code: Code, payload: Uint8Array): Uint8Array {
    const options = this.innerOptionBytes;
    const size = 1 + options.length + (payload.length > 0 ? 1 + payload.length : 0);
    let out = this.plaintextScratch;
    if (out.length !== size) out = this.plaintextScratch = new Uint8Array(size);
    out[0] = code;
    out.set(options, 1);
    if (payload.length > 0) {
      out[1 + options.length] = 0xff;
      out.set(payload, 2 + options.length);
    }
    return out;
  }

  /** The option value the layered path writes for Partial IV `piv` (encodeOscoreOption's bytes). */
  optionValue(piv: Uint8Array): Uint8Array {
    const kid = this.sender.senderId;
    const kidContext = this.kidContext;
    const out = new Uint8Array(1 + piv.length + (kidContext !== undefined ? 1 + kidContext.length : 0) + kid.length);
    out[0] = piv.length | FLAG_KID | (kidContext !== undefined ? FLAG_KID_CONTEXT : 0);
    out.set(piv, 1);
    let pos = 1 + piv.length;
    if (kidContext !== undefined) {
      out[pos++] = kidContext.length;
      out.set(kidContext, pos);
      pos += kidContext.length;
    }
    out.set(kid, pos);
    return out;
  }
}

/** The bytes of the Partial IV of `sequenceNumber` (§6.1: minimal, at least one; encodePartialIv's length). */
function partialIvLength(sequenceNumber: number): number {
  let length = 1;
  for (let v = sequenceNumber; v >= 256; v = Math.floor(v / 256)) length++;
  return length;
}

/**
 * additionalData() for a Partial IV of `length` bytes, when it ends with that Partial IV and the
 * empty Class I options (0x40), as its layout does for the short ids OSCORE uses; null otherwise.
 */
function aadTemplate(aead: number, kid: Uint8Array, length: number): Uint8Array | null {
  const a = additionalData(aead, kid, new Uint8Array(length).fill(0x5a));
  const b = additionalData(aead, kid, new Uint8Array(length).fill(0xa5));
  if (a.length !== b.length || a[a.length - 1] !== 0x40) return null;
  for (let i = 0; i < a.length; i++) {
    const inPiv = i >= a.length - 1 - length && i < a.length - 1;
    if (inPiv ? a[i] !== 0x5a || b[i] !== 0xa5 : a[i] !== b[i]) return null;
  }
  return a;
}

/** A SimpleTarget's OSCORE state: its security and the form of its current context. */
export class OscoreTargetState {
  private form: OscoreRequestForm | undefined;
  /** The latest response context, the security context that verified it, and its OSCORE-layered copy: responses from one server share one (contexts are read-only). */
  private lastOuterContext: EndpointContext | undefined;
  private lastSecurityContext: OscoreSecurityContext | undefined;
  private lastContext: EndpointContext | undefined;

  constructor(
    readonly security: OscoreClientSecurity,
    private readonly routeOptions: readonly CoapOption[],
  ) {}

  /** The form for requests now, or undefined when a request must take the layered path (KUDOS attached, B.2 running). */
  formNow(): OscoreRequestForm | undefined {
    const requester = this.security.requester;
    if (requester.keyUpdate !== undefined || requester.rederiving) return undefined;
    const context = requester.context;
    let form = this.form;
    if (form === undefined || form.context !== context) {
      try {
        form = this.form = new OscoreRequestForm(context, this.routeOptions);
      } catch {
        // A context the form cannot be made for (an ID too long for its nonce): the layered path reports it.
        return undefined;
      }
    }
    return form;
  }

  /** withOscoreLayer of a verified response's context (what OscoreProtectedRequest.describe gives). */
  describe(outer: EndpointContext, context: OscoreSecurityContext): EndpointContext {
    if (outer === this.lastOuterContext && context === this.lastSecurityContext) return this.lastContext!;
    const described = withOscoreLayer(outer, layerOf(context));
    this.lastOuterContext = outer;
    this.lastSecurityContext = context;
    this.lastContext = described;
    return described;
  }
}

/**
 * Sends a simple request to an OSCORE target and resolves with `finish` of its response, as
 * exchangeOnce (one-exchange.ts) would for the request the layered path builds and protects.
 * Undefined when the request cannot take this path now (OscoreTargetState.formNow).
 */
export function requestOscoreSimple<T>(
  target: SimpleTarget,
  state: OscoreTargetState,
  code: Code,
  payload: Uint8Array,
  options: RequestOptions,
  blockwise: BlockwiseOptions,
  finish: (received: ReceivedResponse) => T,
): Promise<T> | undefined {
  const form = state.formNow();
  if (form === undefined) return undefined;
  return new Promise<T>((resolve, reject) => {
    // As requester.protect: the sequence number first (§7.2.1; it throws past 2^40 − 1 as there).
    const sequenceNumber = form.context.nextSequenceNumber();
    // encodePartialIv's refusal of a number past 2^40 − 1 (SequenceNumberExhausted), as there.
    if (!(sequenceNumber >= 0 && sequenceNumber <= MAX_SEQUENCE_NUMBER && Number.isInteger(sequenceNumber))) encodePartialIv(sequenceNumber);
    const sender = form.sender;
    const ciphertext = form.aead.seal(sender.senderKey, form.nonceOf(sequenceNumber, false), form.aadOf(sender.aead, sequenceNumber), form.plaintext(code, payload), sequenceNumber);
    const exchange = new OscoreSimpleExchange(target, state, form, sequenceNumber, code, payload, ciphertext, options, blockwise, finish, resolve, reject);
    // §4.2: Outer Code POST (no Observe here).
    target.endpoint.sendSimple(Method.POST, form.outerOptionBytes(sequenceNumber), ciphertext, target.peer, options, exchange);
  });
}

/** One simple OSCORE request's outcome: the endpoint's response handler, settling its promise. */
class OscoreSimpleExchange<T> implements ResponseHandler {
  constructor(
    private readonly target: SimpleTarget,
    private readonly state: OscoreTargetState,
    private readonly form: OscoreRequestForm,
    private readonly sequenceNumber: number,
    private readonly code: Code,
    private readonly payload: Uint8Array,
    private readonly ciphertext: Uint8Array,
    private readonly options: RequestOptions,
    private readonly blockwise: BlockwiseOptions,
    private readonly finish: (received: ReceivedResponse) => T,
    private readonly resolve: (value: T | Promise<T>) => void,
    private readonly reject: (error: unknown) => void,
  ) {}

  onResponse(received: ReceivedResponse): void {
    try {
      const first = this.opened(received);
      if (first !== undefined) {
        // As continueExchange: a whole response that poses no challenge (4.01) is the answer.
        if (first.message.code !== ResponseCode.Unauthorized) {
          const whole = wholeResponse(first);
          if (whole !== undefined) {
            this.resolve(this.finish(whole));
            return;
          }
        }
        const template = this.template();
        this.settle(continueExchange(this.target.endpoint, this.target.peer, this.state.security, this.options, template, template, this.blockwise, first));
        return;
      }
      // Anything unusual: the layered path's own verification and layers, from this response.
      const template = this.template();
      this.settle(protectedResponse(this.target.endpoint, this.target.peer, this.state.security, this.options, template, template, this.blockwise, this.protectedRequest(template), received));
    } catch (error) {
      this.reject(error);
    }
  }

  onError(error: Error): void {
    this.reject(error);
  }

  private settle(response: ReceivedResponse | Promise<ReceivedResponse>): void {
    this.resolve(response instanceof Promise ? response.then(this.finish) : this.finish(response));
  }

  /**
   * The verified response when it is the ordinary answer to this request (see the module
   * comment); undefined for the layered path to judge (it is not, or it does not verify).
   */
  private opened(received: ReceivedResponse): ReceivedResponse | undefined {
    const response = received.message;
    const form = this.form;
    // §2: exactly one OSCORE option, here with an empty value (no Partial IV, no kid, no 'kid
    // context'), and a payload; no outer Block2 (§8.4.1). Options are sorted (decodeMessage).
    let oscoreOptions = 0;
    for (const o of response.options) {
      if (o.number === OptionNumber.Oscore) {
        if (o.value.length !== 0) return undefined;
        oscoreOptions++;
      } else if (o.number === OptionNumber.Block2) return undefined;
    }
    // (An empty value carries no 'kid context': never Appendix B.2 response #1.)
    if (oscoreOptions !== 1 || response.payload.length === 0) return undefined;
    // §8.4 steps 3–5: the recipient's key, the request's nonce (no Partial IV in the response,
    // the Common IV is the context's) and the AAD of the request's kid and Partial IV (§5.4).
    const recipient = form.recipient;
    const plaintext = form.openAead.open(recipient.recipientKey, form.nonceOf(this.sequenceNumber, true), form.aadOf(recipient.aead, this.sequenceNumber), response.payload, this.sequenceNumber);
    if (plaintext === undefined) return undefined;
    const inner = decodePlaintext(plaintext);
    // §4.1.3.5.2: an inner Observe in a response to a non-Observe request is refused (by the layers).
    if (inner === undefined || getOption(inner, OptionNumber.Observe) !== undefined) return undefined;
    const message: CoapMessage = {
      type: response.type,
      code: inner.code,
      messageId: response.messageId,
      token: response.token,
      options: mergeOptions(response, inner.options, defaultClassOf, 'response'),
      payload: inner.payload,
    };
    return { message, context: this.state.describe(received.context, form.context), wire: response };
  }

  /** The request message the layered path would have protected (client.ts requestMessage). */
  private template(): CoapMessage {
    return this.target.templateOf(this.code, this.payload, this.options.confirmable !== false);
  }

  /** What the layered path's OscoreClientSecurity.protect would have returned for this request. */
  private protectedRequest(template: CoapMessage): OscoreProtectedRequest {
    const form = this.form;
    const piv = encodePartialIv(this.sequenceNumber);
    const message = outerRequest(template, form.outer, form.optionValue(piv), this.ciphertext);
    return new OscoreProtectedRequest(new OscoreExchange(this.state.security.requester, form.context, message, { kid: form.sender.senderId, piv, observe: false }));
  }
}
