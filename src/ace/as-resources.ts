/**
 * The Authorization Server on CoAP: POST /token (RFC 9200 §5.8) and POST /introspect (§5.9) answered by an
 * AuthorizationServer. The client is whoever the OSCORE context that verified the request names
 * (the AS's credentials give each client's context its name); a request without OSCORE gets
 * invalid_client (RFC 9203 §5: the client–AS channel must be secure).
 */
import { ContentFormat } from '../coap/content-format.js';
import { ResponseCode } from '../coap/codes.js';
import type { CoapServer } from '../server/server.js';
import type { AuthorizationServer } from './authorization-server.js';

export const TOKEN_PATH = '/token';
export const INTROSPECT_PATH = '/introspect';

/** POST /token, and POST /introspect for the resource servers (RFC 9200 §5.9), whose names the OSCORE contexts give too. */
export function bindAuthorizationServer(server: CoapServer, as: AuthorizationServer, path = TOKEN_PATH): void {
  server.resource(
    INTROSPECT_PATH,
    {
      POST: (request) => {
        if (request.contentFormat !== ContentFormat.AceCbor) return { code: ResponseCode.UnsupportedContentFormat, payload: 'the introspection endpoint takes application/ace+cbor' };
        const answer = as.introspect(request.context.oscore?.at(-1)?.peer, request.payload);
        return { code: answer.code, payload: answer.payload, contentFormat: ContentFormat.AceCbor };
      },
    },
    { ct: ContentFormat.AceCbor, title: 'ACE introspection endpoint' },
  );
  server.resource(
    path,
    {
      POST: (request) => {
        if (request.contentFormat !== ContentFormat.AceCbor) return { code: ResponseCode.UnsupportedContentFormat, payload: 'the token endpoint takes application/ace+cbor' };
        const client = request.context.oscore?.at(-1)?.peer;
        const answer = as.token(client, request.payload);
        return { code: answer.code, payload: answer.payload, contentFormat: ContentFormat.AceCbor };
      },
    },
    { ct: ContentFormat.AceCbor, title: 'ACE token endpoint' },
  );
}
