/**
 * Authorization in handlers (RFC 9200 §5.10.2, RFC 9203 §4.4): a resource declares, per method,
 * the scope token a request needs, and reads the authenticated client's scope from the endpoint
 * context (`context.scope`, set by AceResourceServer for requests its token contexts verified).
 *
 *   no token for the client (no scope in the context)  → 4.01 with AS Request Creation Hints
 *   a token, but no scope token for this resource      → 4.03 Forbidden
 *   a scope token for this resource, not this method   → 4.05 Method Not Allowed
 * (§5.10.2: "If the RS has an access token for the client but it does not cover the action that
 * was requested on the resource, the RS MUST reject the request with a 4.05".) An expired token
 * never reaches a handler: its context answers 4.01 first (resource-server.ts).
 *
 * A method with a handler but no declared scope is refused to everyone: declaring is opting in.
 */
import { ResponseCode, type MethodName } from '../coap/codes.js';
import type { CoapRequest, CoapResponse, Handler, Handlers } from '../server/resource.js';

/** Per method, the scope token that grants it. */
export type ScopeRequirements = Partial<Record<MethodName, string>>;

/** The answer for a request without a token: the RS's AS Request Creation Hints (RFC 9200 §5.3). */
export type UnauthorizedAnswer = (scope: string | undefined) => CoapResponse;

export function guardHandlers(required: ScopeRequirements, handlers: Handlers, unauthorized: UnauthorizedAnswer): Handlers {
  const resourceScopes = new Set(Object.values(required));
  const guarded: Handlers = {};
  for (const [method, handler] of Object.entries(handlers) as Array<[MethodName, Handler]>) {
    const needed = required[method];
    guarded[method] = (request: CoapRequest) => {
      const scope = request.context.scope;
      if (scope === undefined) return unauthorized(needed);
      if (needed !== undefined && scope.includes(needed)) return handler(request);
      if (scope.some((s) => resourceScopes.has(s))) return { code: ResponseCode.MethodNotAllowed, payload: `the token's scope does not cover ${method} here` };
      return { code: ResponseCode.Forbidden, payload: 'the token\'s scope does not cover this resource' };
    };
  }
  return guarded;
}
