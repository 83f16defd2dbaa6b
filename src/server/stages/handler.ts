/**
 * The resource's method handler, last on the way in. Its response (with the §5.10.4 Accept check)
 * goes back down through Block1, Observe, Block2 and the rest; a handler that throws or rejects is
 * answered 5.00 with a one-line diagnostic. A slow handler's CON is acknowledged by the messaging
 * layer after the server's emptyAckDelay (§5.2.2).
 */
import type { CoapResponse } from '../resource.js';
import { buildRequest } from '../resource-request.js';
import { answerFailSafe, internalError, isPromise, toMessage, toResponse } from '../response.js';
import { DONE, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';

export class HandlerStage implements ServerStage {
  readonly name = 'handler';

  receive(request: InboundRequest): StageVerdict {
    const message = request.message;
    const handler = request.handler!;
    const coapRequest = buildRequest(message, request.payload ?? message.payload, request.path, request.subPath, request.context);
    let result: CoapResponse | Promise<CoapResponse>;
    try {
      result = handler(coapRequest);
    } catch (error) {
      request.answer(toMessage(internalError(error)));
      return DONE;
    }
    if (!isPromise(result)) finishHandler(request, result);
    else answerWhenSettled(request, result);
    return DONE;
  }
}

/** The handler's response through the stages before this one (the server's fast path shares it, fast-path.ts). */
export function finishHandler(request: InboundRequest, spec: CoapResponse): void {
  const response = toResponse(request.message, spec);
  request.representation = true;
  request.unobserved = spec.unobserved === true;
  request.answer(response);
}

/** An async handler's response (or its rejection, as 5.00) once it settles. */
export function answerWhenSettled(request: InboundRequest, result: Promise<CoapResponse>): void {
  result.then(
    (spec) => finishHandler(request, spec),
    (error: unknown) => request.answer(toMessage(internalError(error))),
  ).catch((error: unknown) => answerFailSafe(request.exchange, error));
}
