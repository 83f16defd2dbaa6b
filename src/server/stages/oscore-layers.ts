/**
 * The incoming loop of draft-ietf-core-oscore-capable-proxies §2.4 (Appendix D), steps 5–6 and
 * §2.1's limit, with §2.5 on the way out. While the request carries an OSCORE option and no proxy
 * here claims it (steps 1–3, ProxyHandlers.claimant: checked before each layer, so a layer meant
 * for the origin behind a proxy is forwarded, not decrypted), remove one layer with the context
 * its kid names (RFC 8613 §8.2) and loop; each layer's protector is kept. Every answer given
 * after this stage — errors included, and the OSCORE errors of this stage itself — is protected
 * with the layers removed, in reverse order (§2.5); notifications get the same layers (§8.3.1).
 *
 * Step 4's way back to step 1 (a proxied request naming this endpoint) re-enters this stage with
 * the consumed request and the layers removed so far (stages/proxy-claim.ts).
 */
import { ResponseCode } from '../../coap/codes.js';
import { encodeUint, getOption, type CoapMessage } from '../../coap/message.js';
import { OptionNumber } from '../../coap/options.js';
import type { RequestLog } from '../request-log.js';
import { oscoreRefusal } from '../request-log.js';
import { answerFailSafe, toMessage } from '../response.js';
import type { EndpointContext } from '../../exchange/context.js';
import type { ResponseProtector, ServerSecurity } from '../security.js';
import { DONE, PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';
import type { FastPath } from '../fast-path.js';
import type { GroupLayerOutcome } from './group-oscore.js';
import type { ProxyHandlers } from './proxy-claim.js';

export interface OscoreLayerSettings {
  readonly security: ServerSecurity | undefined;
  /** §2.1: the most layers removed from one request; a request needing more gets 4.01. */
  readonly maxOscoreLayers: number;
}

export class OscoreLayers implements ServerStage {
  readonly name = 'oscore-layers';
  /**
   * The server's fast path, set by it when it is on: a simple inner request is answered there
   * once the layers are removed (FastPath.takeInner), its answer still protected here (§2.5).
   */
  innerFastPath: FastPath | undefined = undefined;

  /**
   * `nestedGroup`: a Group OSCORE layer inside the layers removed here — a Deterministic Request
   * (or any Group OSCORE request) that an OSCORE-capable proxy protected once more for this server
   * (§2.3) — removed by the group stage's rules and then protected first on the way out (§2.5).
   */
  constructor(
    private readonly settings: OscoreLayerSettings,
    private readonly proxies: ProxyHandlers,
    private readonly log: RequestLog,
    private readonly nestedGroup?: (request: InboundRequest, message: CoapMessage, context: EndpointContext) => GroupLayerOutcome | undefined,
  ) {}

  /** Without security no layer is removed here, and none is put back (StagePlan). */
  receives(): boolean {
    return this.settings.security !== undefined;
  }

  responds(): boolean {
    return this.settings.security !== undefined;
  }

  receive(request: InboundRequest): StageVerdict {
    const security = this.settings.security;
    if (security === undefined || getOption(request.message, OptionNumber.Oscore) === undefined) return PASS;
    const received = request.message;
    let message = received;
    let context = request.context;
    while (getOption(message, OptionNumber.Oscore) && this.proxies.claimant(message, context) === undefined) {
      // `new Array`, not `[]`: see the note at the end of this file.
      const removed = (request.removedLayers ??= new Array<ResponseProtector>());
      if (removed.length >= this.settings.maxOscoreLayers) {
        // §2.1: beyond the limit, no further OSCORE processing; 4.01 over the layers removed.
        request.answer(protectWith(removed, toMessage({ code: ResponseCode.Unauthorized, payload: 'too many OSCORE layers', options: [{ number: OptionNumber.MaxAge, value: encodeUint(0) }] }), 'response'));
        return DONE;
      }
      const grouped = removed.length > 0 ? this.nestedGroup?.(request, message, context) : undefined;
      if (grouped !== undefined && !grouped.ok) {
        if (grouped.response === undefined) return (request.exchange.acknowledge(), DONE);
        request.answer(protectWith(removed, grouped.response, 'response'));
        return DONE;
      }
      if (grouped !== undefined) request.deterministic = grouped.deterministic;
      const waiting = grouped === undefined ? security.prepare?.(message, context) : undefined;
      if (waiting !== undefined) {
        // The layers removed so far stay on the request; this stage resumes with what is left.
        request.message = message;
        request.context = context;
        void waiting.then((answer) => this.resume(request, message, context, answer));
        return DONE;
      }
      const outcome = grouped ?? security.unprotect(message, context);
      if (!outcome) break;
      if (!outcome.ok) {
        this.log.record(message, context, outcome.response, oscoreRefusal(outcome.response));
        // §2.4 step 6: an OSCORE error, protected over the layers already removed (§2.5).
        request.answer(protectWith(removed, outcome.response, 'response'));
        return DONE;
      }
      const inner = outcome.inner;
      // The inner request under the received header. RFC 8613's unprotect (openedRequest) already
      // builds it so: then it is used as it is, with no second object per request (issue 21).
      // A literal of CoapMessage's fields, not a spread (V8's slow path for a spread of a non-literal).
      message =
        inner.type === received.type && inner.messageId === received.messageId && inner.token === received.token
          ? inner
          : { type: received.type, code: inner.code, messageId: received.messageId, token: received.token, options: inner.options, payload: inner.payload };
      context = outcome.context;
      removed.push(outcome.protect);
    }
    const removed = request.removedLayers;
    if (removed !== undefined && removed.length > 0) {
      request.message = message;
      request.context = context;
      // One layer (the usual case) is its own protector: no closure per request (issue 21).
      request.protect = removed.length === 1 ? removed[0] : (response, kind) => protectWith(removed, response, kind);
      if (this.innerFastPath?.takeInner(request) === true) return DONE;
    }
    return PASS;
  }

  /** After ServerSecurity.prepare: answer as told, or run this stage (and those after it) again. */
  private resume(request: InboundRequest, message: CoapMessage, context: EndpointContext, answer: CoapMessage | undefined): void {
    try {
      if (answer === undefined) {
        request.pipeline.run(request, request.stage);
        return;
      }
      this.log.record(message, context, answer, oscoreRefusal(answer));
      request.answer(protectWith(request.removedLayers ?? [], answer, 'response'));
    } catch (error) {
      answerFailSafe(request.exchange, error);
    }
  }

  respond(request: InboundRequest, response: CoapMessage): CoapMessage {
    const removed = request.removedLayers;
    return removed !== undefined && removed.length > 0 ? protectWith(removed, response, 'response') : response;
  }
}

/** §2.5: the layers removed, applied in reverse order (the innermost, removed last, first). */
function protectWith(removed: readonly ResponseProtector[], response: CoapMessage, kind: 'response' | 'notification'): CoapMessage {
  let r = response;
  for (let i = removed.length - 1; i >= 0; i--) r = removed[i]!(r, kind);
  return r;
}

/*
 * The list of removed layers is made by `new Array` rather than an array literal (issue 21): it
 * lives until the response is protected, and V8's allocation-site pretenuring, having seen such
 * lists survive a young-generation GC under load, allocated every later one in the old generation,
 * where each kept its request's young objects (the protectors, the request, the exchange) alive
 * through every scavenge — about 1.4 KB promoted per OSCORE request (see BENCHMARKS.md, issue 21,
 * third pass). oscore/cose-object.ts's UnprotectedRequest says the same of the verified request.
 */
