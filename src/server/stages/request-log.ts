/** Every answer given past the OSCORE layers, logged with the request as processed (ServerOptions.onRequestLog). */
import type { CoapMessage } from '../../coap/message.js';
import type { RequestLog } from '../request-log.js';
import { PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';

export class RequestLogging implements ServerStage {
  readonly name = 'request-log';

  constructor(private readonly log: RequestLog) {}

  receive(): StageVerdict {
    return PASS;
  }

  receives(): boolean {
    return false;
  }

  // Its response side stays on every path: a logger set while a request is being handled logs
  // that request's answer too (RequestLog.record returns at once without one).

  respond(request: InboundRequest, response: CoapMessage): CoapMessage {
    this.log.record(request.message, request.context, response);
    return response;
  }
}
