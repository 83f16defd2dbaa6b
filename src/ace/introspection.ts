/**
 * The resource server's side of token introspection (RFC 9200 §5.9): a token the RS cannot open
 * itself is sent to the AS's /introspect endpoint over the RS's secure channel with the AS (an
 * OSCORE context whose name at the AS is the RS's audience); an active token comes back with its
 * claims, which the RS then checks like its own. Any other answer refuses the token with 4.01.
 *
 * Bounded: a client makes the RS send one introspection request per token it posts, so at most
 * `maxInFlight` (default 8) wait at once; beyond that the post gets 5.03 and may be repeated.
 */
import { ContentFormat } from '../coap/content-format.js';
import { ResponseCode } from '../coap/codes.js';
import type { ClientRequest, ClientResponse } from '../client/client.js';
import type { MessageSecurity } from '../client/security.js';
import { encodeCbor } from '../cose/cbor.js';
import { AceFormatError, AceParam, decodeAceMap, encodeAceMap } from './ace-cbor.js';
import { parseClaims, TokenError, type AccessTokenClaims } from './token.js';

export interface IntrospectionOptions {
  /** Carries the introspection request (a CoapClient). */
  readonly client: { request(request: ClientRequest): Promise<ClientResponse> };
  /** The AS's introspection endpoint, e.g. coap://as.example/introspect. */
  readonly uri: string;
  /** Protection towards the AS; default the client's own for `uri`. */
  readonly security?: MessageSecurity;
  readonly maxInFlight?: number;
}

export class Introspection {
  #inFlight = 0;

  constructor(private readonly options: IntrospectionOptions) {}

  /** The claims of an active token, or TokenError (4.01 inactive or unanswered, 5.03 too many at once). */
  async claims(token: Uint8Array): Promise<AccessTokenClaims> {
    if (this.#inFlight >= (this.options.maxInFlight ?? 8)) throw new TokenError(ResponseCode.ServiceUnavailable, 'too many tokens being introspected: try again');
    this.#inFlight++;
    let response: ClientResponse;
    try {
      response = await this.options.client.request({
        method: 'POST',
        uri: this.options.uri,
        payload: encodeAceMap([[AceParam.token, token]]),
        contentFormat: ContentFormat.AceCbor,
        ...(this.options.security ? { security: this.options.security } : {}),
      });
    } catch (e) {
      throw new TokenError(ResponseCode.Unauthorized, `the token could not be introspected: ${(e as Error).message}`);
    } finally {
      this.#inFlight--;
    }
    if (response.code !== ResponseCode.Created) throw new TokenError(ResponseCode.Unauthorized, `the AS refused to introspect the token (${response.status})`);
    try {
      const map = decodeAceMap(response.payload);
      // §5.9.2: "active ... REQUIRED"; only true makes the token usable.
      if (map.get(AceParam.active) !== true) throw new TokenError(ResponseCode.Unauthorized, 'the AS says the token is not active');
      map.delete(AceParam.active);
      // The response's parameters are the claims' CBOR abbreviations (§5.9.2).
      return parseClaims(encodeCbor(map));
    } catch (e) {
      if (e instanceof AceFormatError) throw new TokenError(ResponseCode.Unauthorized, `the AS's introspection response: ${e.message}`);
      throw e;
    }
  }
}
