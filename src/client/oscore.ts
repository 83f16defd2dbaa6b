/**
 * OSCORE on the client as a MessageSecurity (client/security.ts): every request gets a fresh
 * Partial IV and its responses are verified against it. The rules — the binding (RFC 8613 §7.1),
 * the Notification Number of an observation (§7.4.1, §8.4.2), Appendix B.2 re-derivation — are
 * src/oscore/requester.ts's; this adapter and the route's layers (route.ts) only wrap them. An
 * unprotected answer (an OSCORE error from the server, or a forgery) is never accepted as the
 * resource's response; its code and diagnostic become the error message.
 *
 * With `rederivation` set on the context, `rederive()` starts Appendix B.2 (step 1), and a
 * protected 4.01 carrying a 'kid context' R2 (step 3) makes the next request go out under
 * ID3 = R2 || R3; the context switches when a response to it verifies (step 5). `withEchoRetry`
 * (security.ts) repeats the request once, automatically.
 */
import type { CoapMessage } from '../coap/message.js';
import { OscoreRequester, type OscoreExchange, type OscoreRequesterOptions } from '../oscore/requester.js';
import type { ClassOf } from '../oscore/protect.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { withOscoreLayer, type EndpointContext, type OscoreLayerInfo } from '../exchange/context.js';
import type { MessageSecurity, ProtectedRequest } from './security.js';
import { bytesToHex as hex } from '../util/bytes.js';


/** What a verified response's endpoint context says about a context's layer: the same for every response, so made once. */
const layers = new WeakMap<OscoreSecurityContext, OscoreLayerInfo>();
export function layerOf(security: OscoreSecurityContext): OscoreLayerInfo {
  let layer = layers.get(security);
  if (layer === undefined) {
    layer = { peer: security.name, kid: security.primaryRecipient.kidHex, ...(security.idContext ? { kidContext: hex(security.idContext) } : {}) };
    layers.set(security, layer);
  }
  return layer;
}

export type OscoreClientOptions = OscoreRequesterOptions;

/** One protected request as the client layers see it. */
export class OscoreProtectedRequest implements ProtectedRequest {
  readonly ordersNotifications = true;
  readonly message: CoapMessage;
  constructor(private readonly exchange: OscoreExchange) {
    this.message = exchange.message;
  }
  verify(response: CoapMessage, notification: boolean): CoapMessage | Error {
    return this.exchange.verify(response, notification);
  }
  describe(context: EndpointContext): EndpointContext {
    return withOscoreLayer(context, layerOf(this.exchange.security));
  }
}

/** Protects a request with `requester` (and `classOf` for a route's layer): the one OSCORE path of the client. */
export function protectWith(requester: OscoreRequester, request: CoapMessage, classOf?: ClassOf): ProtectedRequest {
  return new OscoreProtectedRequest(requester.protect(request, classOf));
}

export class OscoreClientSecurity implements MessageSecurity {
  readonly requester: OscoreRequester;

  constructor(context: OscoreSecurityContext, options: OscoreClientOptions = {}) {
    this.requester = new OscoreRequester(context, options);
  }

  /** The security context in use with the server (it changes when B.2 completes). */
  get context(): OscoreSecurityContext {
    return this.requester.context;
  }

  /** The ID Context the next request is protected with. */
  get nextIdContext(): Uint8Array | undefined {
    return this.requester.nextIdContext;
  }

  /** Appendix B.2 step 1 (OscoreRequester.rederive). */
  rederive(): void {
    this.requester.rederive();
  }

  protect(request: CoapMessage): ProtectedRequest {
    return protectWith(this.requester, request);
  }

  admit(): Promise<() => void> {
    return this.requester.admit();
  }

  /** No key update holds requests (OscoreRequester.admit then admits at once, with nothing to end). */
  admitsNow(): boolean {
    return this.requester.keyUpdate === undefined;
  }
}
