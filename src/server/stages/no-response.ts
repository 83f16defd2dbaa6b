/** RFC 7967 No-Response, on the way out: a suppressed answer is not sent (a CON still gets its ACK). */
import { decodeUint, getOption, type CoapMessage } from '../../coap/message.js';
import type { Code } from '../../coap/codes.js';
import { OptionNumber } from '../../coap/options.js';
import { PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';

export class NoResponse implements ServerStage {
  readonly name = 'no-response';

  receive(): StageVerdict {
    return PASS;
  }

  receives(): boolean {
    return false;
  }

  respond(request: InboundRequest, response: CoapMessage): CoapMessage | undefined {
    return suppressedByNoResponse(request.message, response.code) ? undefined : response;
  }
}

/** RFC 7967 §2.1: bit values 2, 8 and 16 suppress 2.xx, 4.xx and 5.xx responses. */
export function suppressedByNoResponse(request: CoapMessage, code: Code): boolean {
  const value = getOption(request, OptionNumber.NoResponse);
  if (value === undefined) return false;
  const bits = decodeUint(value);
  const cls = code >> 5;
  return (cls === 2 && (bits & 2) !== 0) || (cls === 4 && (bits & 8) !== 0) || (cls === 5 && (bits & 16) !== 0);
}
