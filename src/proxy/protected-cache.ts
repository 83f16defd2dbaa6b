/**
 * Which OSCORE-protected messages a proxy's cache may hold (draft-ietf-core-oscore-capable-proxies
 * §4, draft-ietf-core-cacheable-oscore §3.4): responses to Deterministic Requests, and nothing
 * else that carries OSCORE. A Deterministic Request is one every member of the group composes
 * identically — outer FETCH, the Request-Hash option — so the cache keys it like any FETCH (code,
 * target, the OSCORE and Request-Hash options, the ciphertext as payload) and serves the one
 * protected response to every client that sends it; each client verifies that response end to
 * end (the server's countersignature, bound to the request by its Request-Hash). The proxy reads
 * nothing: it recognises the request by its outer options alone.
 *
 * Which message is keyed and which is stored (§4) follows from where the cache sits: the forward
 * proxy consults it after the server removed the proxy's own OSCORE layer (the §2.4 loop), and
 * stores the response after its upstream layer was removed and before the client's is added.
 */
import { Method } from '../coap/codes.js';
import { getOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { REQUEST_HASH_OPTION } from '../group-oscore/deterministic.js';

/** cacheable-oscore §3.4.2 steps 4 and 8: FETCH with OSCORE and Request-Hash. */
export function isDeterministicRequest(request: CoapMessage): boolean {
  return request.code === Method.FETCH && getOption(request, OptionNumber.Oscore) !== undefined && getOption(request, REQUEST_HASH_OPTION) !== undefined;
}

/**
 * Whether a cache may look `request` up and store its response as far as OSCORE goes: a request
 * without OSCORE, or a Deterministic Request. Any other protected request (RFC 8613 §4.1.3.1:
 * its response is for one client alone) passes uncached.
 */
export const cacheableProtection = (request: CoapMessage): boolean => getOption(request, OptionNumber.Oscore) === undefined || isDeterministicRequest(request);

/** Whether `response` may be stored for `request`: a plain response to a plain request, or any response to a Deterministic Request. */
export function storableProtection(request: CoapMessage, response: CoapMessage): boolean {
  if (getOption(request, OptionNumber.Oscore) === undefined) return getOption(response, OptionNumber.Oscore) === undefined;
  return isDeterministicRequest(request);
}
