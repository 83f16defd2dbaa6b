/**
 * The resource and its method handler: 4.04 without a resource, 4.01 for a resource that requires
 * OSCORE when none was removed (RFC 8613 §12.1), 4.05 without a handler for the method, and the
 * resource's freshness policy (RFC 9175 §2.3: without a fresh Echo, 4.01 with a new Echo value).
 */
import { Method, ResponseCode, type Code, type MethodName } from '../../coap/codes.js';
import { encodeUint, getOption, getStringOptions } from '../../coap/message.js';
import { OptionNumber } from '../../coap/options.js';
import type { EchoFreshness } from '../freshness.js';
import { handlerFor } from '../resource-request.js';
import { toMessage } from '../response.js';
import type { Router } from '../router.js';
import { DONE, PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';

/** The methods a freshness policy covers; by default the unsafe ones (RFC 7252 §5.1, RFC 8132). */
const UNSAFE_METHODS: readonly MethodName[] = ['POST', 'PUT', 'DELETE', 'PATCH', 'IPATCH'];
function freshnessApplies(methods: readonly MethodName[] | undefined, code: Code): boolean {
  return (methods ?? UNSAFE_METHODS).some((name) => Method[name] === code);
}

export class Route implements ServerStage {
  readonly name = 'route';

  constructor(
    private readonly router: Router,
    private readonly echoFreshness: EchoFreshness,
  ) {}

  receive(request: InboundRequest): StageVerdict {
    const message = request.message;
    const path = getStringOptions(message, OptionNumber.UriPath);
    const match = this.router.match(path);
    if (!match) {
      request.answer(toMessage({ code: ResponseCode.NotFound }));
      return DONE;
    }
    const resource = match.resource;
    if (resource.requireOscore && !request.context.oscore?.length) {
      // The resource's policy: only OSCORE-authenticated requests (RFC 8613 §8.2 step 8 ff.).
      request.answer(toMessage({ code: ResponseCode.Unauthorized, payload: 'OSCORE required' }));
      return DONE;
    }
    if (request.deterministic && resource.deterministic !== true) {
      // cacheable-oscore §3.4.3: a resource not marked safe for them refuses, protected.
      request.answer(toMessage({ code: ResponseCode.Unauthorized, payload: 'Deterministic Requests not served here' }));
      return DONE;
    }
    const handler = handlerFor(resource.handlers, message.code);
    if (!handler) {
      request.answer(toMessage({ code: ResponseCode.MethodNotAllowed }));
      return DONE;
    }
    const freshness = resource.freshness;
    if (freshness && freshnessApplies(freshness.methods, message.code)) {
      // RFC 9175 §2.3: without a fresh Echo the request MUST NOT be processed further; 4.01 + Echo.
      const verdict = this.echoFreshness.verify(getOption(message, OptionNumber.Echo), request.context, freshness.maxAgeMs);
      if (verdict !== 'fresh') {
        const challenge = this.echoFreshness.issue(request.context);
        request.answer(toMessage({ code: ResponseCode.Unauthorized, payload: `fresh request required (Echo ${verdict})`, options: [{ number: OptionNumber.MaxAge, value: encodeUint(0) }, { number: OptionNumber.Echo, value: challenge }] }));
        return DONE;
      }
    }
    request.resource = resource;
    request.handler = handler;
    request.path = path;
    request.subPath = match.subPath;
    return PASS;
  }
}
