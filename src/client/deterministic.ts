/**
 * Deterministic Requests on the client as a MessageSecurity (client/security.ts): each request
 * is protected as the group's Deterministic Client (draft-ietf-core-cacheable-oscore §3.4.2), so
 * every member asking for the same thing sends the same bytes and a proxy can answer all of them
 * from one cached response; each response is verified end to end by the rules of
 * group-oscore/deterministic-exchange.ts (the server's signature, the Request-Hash binding, and
 * freshness against what this client already accepted). Observations too (§3.1): an observation's
 * requests carry an Inner Observe 0 and the Outer Observe registers or deregisters, so observers of
 * one resource send one request and a caching proxy keeps one upstream observation for all of them
 * (`innerObserve` gives plain reads the same Inner Observe, hence the same request).
 */
import type { CoapMessage } from '../coap/message.js';
import { toHex } from '../cose/cbor.js';
import { withOscoreLayer, type EndpointContext } from '../exchange/context.js';
import type { GroupSecurityContext } from '../group-oscore/context.js';
import { DeterministicRequester, type DeterministicRequesterOptions } from '../group-oscore/deterministic-exchange.js';
import type { MessageSecurity, ProtectedRequest } from './security.js';

export interface DeterministicSecurityOptions extends DeterministicRequesterOptions {
  /** The Sender ID of the server the requests go to: responses must carry its kid (§3.4.4 step 1). Without it, any member's signature is accepted (§3.4.5). */
  server?: Uint8Array;
}

export class DeterministicClientSecurity implements MessageSecurity {
  readonly requester: DeterministicRequester;
  readonly #server: Uint8Array | undefined;

  constructor(context: GroupSecurityContext, options: DeterministicSecurityOptions = {}) {
    this.requester = new DeterministicRequester(context, options);
    this.#server = options.server;
  }

  protect(request: CoapMessage): ProtectedRequest {
    const exchange = this.requester.protect(request, this.#server);
    const gid = toHex(this.requester.context.gid);
    let signer: Uint8Array | undefined;
    return {
      message: exchange.message,
      // Notifications are verified one by one like any response: the signature, the Request-Hash,
      // and a Partial IV never older than one accepted before (group-oscore/deterministic-exchange.ts).
      verify: (response) => {
        const result = exchange.verify(response);
        if (!result.ok) return new Error(result.reason);
        signer = result.kid;
        return result.message;
      },
      // The layer names the group member whose signature authenticated the response.
      describe: (context: EndpointContext) => withOscoreLayer(context, { peer: 'group member', kid: toHex(signer ?? new Uint8Array(0)), kidContext: gid }),
      ordersNotifications: false,
    };
  }
}
