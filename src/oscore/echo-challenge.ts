/**
 * The Echo challenge of RFC 9175 as the requester answers it: crypto-free, so the browser build
 * (src/browser/) answers it by the same rule as requester.ts.
 */
import { ResponseCode } from '../coap/codes.js';
import { getOption, setOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';

/**
 * RFC 9175 §2.3–§2.4: a verified 4.01 carrying Echo asks for the request again with that Echo
 * value, to prove freshness or, after a server restart, to re-initialise its replay window (RFC
 * 8613 Appendix B.1.2). Returns that request, or undefined when `response` is no such challenge or
 * `request` already answered one (one retry).
 */
export function echoChallengeRetry(request: CoapMessage, response: CoapMessage): CoapMessage | undefined {
  if (response.code !== ResponseCode.Unauthorized) return undefined;
  const echo = getOption(response, OptionNumber.Echo);
  if (echo === undefined || getOption(request, OptionNumber.Echo) !== undefined) return undefined;
  const again: CoapMessage = { ...request, options: request.options.slice() };
  setOption(again, OptionNumber.Echo, echo);
  return again;
}
