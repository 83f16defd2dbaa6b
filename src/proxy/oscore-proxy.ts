/**
 * OSCORE-capable proxies (draft-ietf-core-oscore-capable-proxies): a proxy that is itself an
 * OSCORE endpoint towards its clients, other proxies and servers.
 *
 * The pieces, and where the §2.4 incoming loop (Appendix D) runs:
 * - The server stage server/stages/oscore-layers.ts removes OSCORE layers for as long as the request carries
 *   no proxy-related options (step 1/2), is not claimed by a reverse proxy (step 3, server/stages/proxy-claim.ts) and still
 *   carries OSCORE (steps 5–6), up to `maxOscoreLayers` (§2.1: 4.01 beyond). Errors, and every
 *   response, are protected with the layers removed, in reverse order (§2.5).
 * - Step 4, "is it acceptable to forward": ForwardProxyOptions.authorize / ReverseProxyOptions.
 *   authorize (reverse-proxy.ts), keyed on the contexts that authenticated the client
 *   (EndpointContext.oscore); `allowList` below is the usual policy. 4.01 otherwise.
 * - Forwarding with one more layer for the next hop (§2.3) and removing exactly that layer from the
 *   response (§2.6): `upstreamLayer`, used by ForwardProxy and by ReverseProxy (reverse-proxy.ts),
 *   which is also the reverse proxy of Appendix B.7/B.8.
 * - Step 5 "no OSCORE and no application": the server's router answers 4.04.
 */
import type { CoapMessage } from '../coap/message.js';
import { OscoreLayer } from '../client/route.js';
import type { EndpointContext } from '../exchange/context.js';
import { escalatingClassOf, pathConsumers } from '../oscore/escalation.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';

/** §2.4 step 4 as a predicate over the authenticated source and the request. */
export type ForwardPolicy = (context: EndpointContext, message: CoapMessage) => boolean;

/**
 * Forward only for clients whose OSCORE layer removed by this proxy was authenticated as one of
 * `peers` (context names / recipient names from the credentials). Use cases of Appendix A: allow-
 * listed clients, an LwM2M server acting as a proxy, access control to a proxy. The layer checked is
 * the last one removed here — the one that revealed the proxy-related options.
 */
export function allowList(peers: Iterable<string>): ForwardPolicy {
  const allowed = new Set(peers);
  return (context) => {
    const layers = context.oscore ?? [];
    const last = layers[layers.length - 1];
    return last !== undefined && allowed.has(last.peer);
  };
}

/** One layer for the next hop, with the §2.2 classes as this proxy knows them. */
export interface UpstreamLayer {
  security: OscoreLayer;
}

/**
 * The layer a proxy adds towards its next hop X (position 1). `nextIsProxy`: X forwards further
 * (Proxy-Scheme/Uri-Host stay in the message, consumed by X: Class E, Appendix B.6). `added`: the
 * option numbers this proxy put into the message itself (step 1). Unrecognised options throw
 * (the callers check first and answer 4.02).
 */
export function upstreamLayer(context: OscoreSecurityContext, nextIsProxy: boolean, added: ReadonlySet<number>): UpstreamLayer {
  const classOf = escalatingClassOf({
    x: 1,
    consumers: pathConsumers(nextIsProxy ? ['forward-proxy', 'origin'] : ['origin']),
    added: (n) => added.has(n),
    strict: true,
  });
  return { security: new OscoreLayer(context, classOf) };
}
