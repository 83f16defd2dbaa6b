/**
 * The request's options and method, before anything reads them for routing: RFC 7252 §5.4.1/§5.4.3/
 * §5.4.5 (4.02; in a NON, silent rejection), Proxy-Uri/Proxy-Scheme at an endpoint that is no proxy
 * (§5.7.2: 5.05, unless they name this server, ServerOptions.proxyNames), the method (§5.8: 4.05)
 * and the Block options' syntax (RFC 7959 §2.2: SZX 7 → 4.00).
 */
import { readBlockOption } from '../../coap/block.js';
import { ResponseCode, isRequestCode, type Code } from '../../coap/codes.js';
import { getOption } from '../../coap/message.js';
import { checkOptions } from '../../coap/option-validation.js';
import { OptionNumber, isCritical, optionDefinition } from '../../coap/options.js';
import { consumeOwnProxyOptions } from '../own-proxy-name.js';
import { toMessage } from '../response.js';
import { DONE, PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';
import { refuseBadOption } from './bad-option.js';

const KNOWN_METHODS = new Set<Code>([1, 2, 3, 4, 5, 6, 7]);
const isKnownMethod = (code: Code): boolean => isRequestCode(code) && KNOWN_METHODS.has(code);

export class OptionChecks implements ServerStage {
  readonly name = 'option-checks';

  /**
   * `recognized`: the options this server processes (anything critical outside it gets 4.02);
   * `proxyNames`: the names under which proxied requests are for this server itself.
   */
  constructor(
    private readonly recognized: ReadonlySet<number>,
    private readonly proxyNames: ReadonlySet<string>,
  ) {}

  receive(request: InboundRequest): StageVerdict {
    let message = request.message;
    const check = checkOptions(message.options, (n) => this.recognized.has(n) || (optionDefinition(n) !== undefined && !isCritical(n)));
    if (check.criticalProblem) {
      refuseBadOption(request, check.criticalProblem.reason);
      return DONE;
    }
    message.options = check.options;
    if (getOption(message, OptionNumber.ProxyUri) || getOption(message, OptionNumber.ProxyScheme)) {
      const local = this.proxyNames.size > 0 ? consumeOwnProxyOptions(message, this.proxyNames) : undefined;
      if (!local) {
        // §5.7.2: an endpoint unwilling or unable to act as a forward-proxy answers 5.05.
        request.answer(toMessage({ code: ResponseCode.ProxyingNotSupported, payload: 'this endpoint is not a proxy' }));
        return DONE;
      }
      message = request.message = local;
    }
    if (!isKnownMethod(message.code)) {
      // §5.8: an unrecognized or unsupported method code gets 4.05.
      request.answer(toMessage({ code: ResponseCode.MethodNotAllowed }));
      return DONE;
    }
    try {
      // SZX 7 is a BERT option where the connection allows BERT (RFC 8323 §6), reserved elsewhere.
      const bert = { bert: request.exchange.bertPayloadLimit !== undefined };
      request.block1 = readBlockOption(message, OptionNumber.Block1, bert);
      request.block2 = readBlockOption(message, OptionNumber.Block2, bert);
    } catch (error) {
      // RFC 7959 §2.2: SZX 7 in a request MUST lead to 4.00.
      request.answer(toMessage({ code: ResponseCode.BadRequest, payload: (error as Error).message }));
      return DONE;
    }
    return PASS;
  }
}
