/**
 * The EDHOC + OSCORE request of RFC 9668 §3.3.1 (steps 1–7), after outer Block1 reassembly
 * (§3.3.2, stages/outer-blockwise.ts) and before the OSCORE layer loop: the security's
 * `completeEdhoc` finishes the EDHOC session from message_3 at the head of the payload, installs
 * the new OSCORE context and hands back the OSCORE request with the EDHOC option removed, which
 * the next stage decrypts (step 8) with that context — one request, one round trip. An EDHOC
 * failure is answered here, unprotected (an EDHOC error message, §3.3.1). An EDHOC option left
 * inside the decrypted request is refused by the option checks as an unprocessed critical option
 * (step 8). A request a proxy here claims keeps its EDHOC option: the option is safe to forward
 * and belongs to the origin (as oscore-layers.ts leaves a layer meant for the origin).
 */
import { ResponseCode } from '../../coap/codes.js';
import { getOption } from '../../coap/message.js';
import { OptionNumber } from '../../coap/options.js';
import { toMessage } from '../response.js';
import type { ServerSecurity } from '../security.js';
import { DONE, PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';
import type { ProxyHandlers } from './proxy-claim.js';

export class EdhocCombined implements ServerStage {
  readonly name = 'edhoc-combined';

  constructor(
    private readonly settings: { readonly security: ServerSecurity | undefined },
    private readonly proxies: ProxyHandlers,
  ) {}

  receive(request: InboundRequest): StageVerdict {
    if (getOption(request.message, OptionNumber.Edhoc) === undefined) return PASS;
    if (this.proxies.claimant(request.message, request.context) !== undefined) return PASS;
    const security = this.settings.security;
    if (security?.completeEdhoc === undefined) {
      // RFC 7252 §5.4.1: a critical option this server does not process.
      request.answer(toMessage({ code: ResponseCode.BadOption, payload: 'EDHOC option not supported' }));
      return DONE;
    }
    const outcome = security.completeEdhoc(request.message, request.context);
    if (!outcome.ok) {
      request.answer(outcome.response);
      return DONE;
    }
    request.message = outcome.request;
    return PASS;
  }
}
