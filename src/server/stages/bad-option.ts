/**
 * RFC 7252 §5.4.1: an unrecognized critical option — or one §5.4.3 (wrong length) and §5.4.5
 * (repeated) say to treat like one — gets 4.02 in a Confirmable request, but "that occur in a
 * Non-confirmable message MUST cause the message to be rejected (Section 4.3)": silently ignored
 * (§4.3 allows an RST, which this server does not send, as for its other rejected NONs).
 */
import { ResponseCode } from '../../coap/codes.js';
import { MessageType } from '../../coap/message.js';
import { toMessage } from '../response.js';
import type { InboundRequest } from '../stage.js';

export function refuseBadOption(request: InboundRequest, reason: string): void {
  if (request.message.type !== MessageType.CON) {
    request.exchange.reject();
    return;
  }
  request.answer(toMessage({ code: ResponseCode.BadOption, payload: reason }));
}
