/**
 * Observe (RFC 7641 §4.1), on the way out: the handler's response to a GET or FETCH with Observe 0
 * registers the requester, with Observe 1 (or a non-2.xx response, or a Block1 request) deregisters
 * it. Also what a notification renders (`renderNotification`).
 */
import { readBlockOption, type BlockValue } from '../../coap/block.js';
import { Method, ResponseCode, codeClass } from '../../coap/codes.js';
import { encodeUint, getOption, getStringOptions, getUintOption, setOption, type CoapMessage } from '../../coap/message.js';
import { OptionNumber } from '../../coap/options.js';
import { operationKey, type BlockwiseServer } from '../blockwise.js';
import type { ObserveRegistry, Observer } from '../observe.js';
import type { CoapResponse } from '../resource.js';
import { buildRequest, handlerFor } from '../resource-request.js';
import { internalError, toMessage, toResponse } from '../response.js';
import { normalizePath, splitPath, type Router } from '../router.js';
import { PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';
import type { VirtualObservables } from './proxy-claim.js';

export class ObserveStage implements ServerStage {
  readonly name = 'observe';

  constructor(private readonly observations: ObserveRegistry) {}

  receive(): StageVerdict {
    return PASS;
  }

  receives(): boolean {
    return false;
  }

  respond(request: InboundRequest, response: CoapMessage): CoapMessage {
    const resource = request.resource;
    if (!request.representation || resource === undefined) return response;
    const { message, exchange } = request;
    const observe = getUintOption(message, OptionNumber.Observe);
    if (observe === undefined || (message.code !== Method.GET && message.code !== Method.FETCH)) return response;
    const path = normalizePath(resource.path, request.subPath);
    if (observe === 1 || request.unobserved || !resource.observable || codeClass(response.code) !== 2 || getOption(message, OptionNumber.Block1)) {
      this.observations.deregister(path, exchange.context.peerKey, message.token);
      return response;
    }
    if (observe !== 0) return response;
    const type = typeof resource.observable === 'object' ? resource.observable.notifications : 'con';
    const observer = this.observations.register(path, exchange.context.peer, exchange.context.peerKey, message, request.context, type, request.protect);
    // Past the observer limits: a plain response, no Observe option — not registered (§4.1).
    if (observer) setOption(response, OptionNumber.Observe, encodeUint(this.observations.currentSequence(path)));
    return response;
  }
}

/** What a GET/FETCH now would return to this observer, first block only when large (RFC 7959 §2.6). */
export async function renderNotification(observer: Observer, router: Router, virtualObservables: VirtualObservables, blockwise: BlockwiseServer): Promise<CoapMessage> {
  const request = observer.request;
  const virtual = virtualObservables.get(observer.path);
  if (virtual) return virtual(observer);
  if (getOption(request, OptionNumber.ProxyUri) || getOption(request, OptionNumber.ProxyScheme)) {
    // A proxied observation whose upstream is gone: the observation ends (RFC 7641 §3.2).
    return toMessage({ code: ResponseCode.ServiceUnavailable, payload: 'upstream observation ended' });
  }
  const match = router.match(getStringOptions(request, OptionNumber.UriPath));
  const handler = match ? handlerFor(match.resource.handlers, request.code) : undefined;
  let spec: CoapResponse;
  if (!match || !handler) spec = { code: ResponseCode.NotFound };
  else {
    try {
      spec = await handler(buildRequest(request, request.payload, observer.path === '/' ? [] : splitPath(observer.path), match.subPath, observer.context, true));
    } catch (error) {
      spec = internalError(error);
    }
  }
  const response = toResponse(request, spec);
  const block2 = optionalBlockOrUndefined(request, OptionNumber.Block2);
  const key = operationKey(observer.peerKey, request, request.code === Method.FETCH);
  return blockwise.sliceBlock2(observer.peerKey, key, response, block2 ? { num: 0, more: false, szx: block2.szx } : undefined);
}

function optionalBlockOrUndefined(message: CoapMessage, number: number): BlockValue | undefined {
  try {
    return readBlockOption(message, number);
  } catch {
    return undefined;
  }
}
