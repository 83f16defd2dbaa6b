/**
 * The resource server side of the OSCORE profile (RFC 9203): the unprotected /authz-info
 * endpoint that takes an access token with the client's nonce and Recipient ID and answers with
 * its own (§4.1, §4.2), the OSCORE contexts those derive (§4.3), each bound to its token's scope,
 * and their end (§6). It is a ServerSecurity in front of the server's other OSCORE security:
 * requests whose kid names a context made here are unprotected with it, every other request goes
 * to the security the server had.
 *
 * On every request such a context verifies, the token's scope goes into the endpoint context
 * (`context.scope`) for the handlers (§4.4: "the RS retrieves the authorization information using
 * the access token associated to the security context"); `guard` wraps a resource's handlers so
 * that each method demands a scope token (see scope-guard.ts). A request on a context whose token
 * has expired gets an unprotected 4.01 and the token and its contexts are dropped (§4.3: "The RS
 * MUST NOT use the security context after the related token has expired").
 *
 * Reposting a token (§4.1: the client lost its context, or wants fresh keys) derives a new
 * context from new nonces: never the old keys again (§2). The new context replaces the old one
 * only once a request verifies with it — "the client has successfully replaced the current
 * security context with a newer one" (§6) — so an attacker replaying a captured /authz-info post
 * gets a context nobody can use (no Master Secret) and the client's context keeps working.
 *
 * Bounded state: at most `maxTokens` tokens (one per OSCORE Input Material, RFC 9200 §5.10.1
 * "stores only one token per proof-of-possession key"), each with its context and at most one
 * context waiting to replace it; beyond that the least recently posted token goes (its client
 * gets 4.01 and posts it again, §4.1 "an RS may delete a stored access token ... at any time").
 */
import { ContentFormat } from '../coap/content-format.js';
import { ResponseCode } from '../coap/codes.js';
import { getOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { ConnectionIdentifiers } from '../edhoc-coap/oscore-context.js';
import type { EndpointContext } from '../exchange/context.js';
import { aeadAlgorithm } from '../oscore/algorithms.js';
import { decodeOscoreOption } from '../oscore/option.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { OscoreServerSecurity } from '../server/oscore.js';
import type { CoapRequest, CoapResponse, Handlers } from '../server/resource.js';
import { toMessage } from '../server/response.js';
import type { ServerSecurity, UnprotectOutcome } from '../server/security.js';
import type { CoapServer } from '../server/server.js';
import { AceFormatError, AceParam, CreationHint, decodeAceMap, encodeAceMap, requiredBytes } from './ace-cbor.js';
import { TEXT_SCOPES, type ScopeFormat } from './scope-format.js';
import { guardHandlers, type ScopeRequirements } from './scope-guard.js';
import { newNonce, OscoreProfileError, profileContext } from './oscore-profile.js';
import { checkClaims, openToken, TokenError, type AccessTokenClaims, type OscoreInputMaterial, type TokenKey } from './token.js';
import { bytesToHex as hex } from '../util/bytes.js';

export const AUTHZ_INFO_PATH = '/authz-info';

export interface AceResourceServerOptions {
  /** The audiences this RS identifies with (the token's aud must be one). */
  readonly audiences: readonly string[];
  /** The keys of the ASes that may issue tokens for this RS, found by the token's COSE kid. */
  readonly tokenKeys: readonly TokenKey[];
  /** Every scope token this RS understands; a token with another is refused (RFC 9200 §5.10.1.1). */
  readonly scopes: readonly string[];
  /** How tokens write their scope (scope-format.ts); default text tokens. */
  readonly scopeFormat?: ScopeFormat;
  /** The AS's token endpoint, sent in AS Request Creation Hints (RFC 9200 §5.3). */
  readonly asUri?: string;
  /** The iss tokens must carry, when they carry one. */
  readonly issuer?: string;
  /** Tokens (and so clients) held at once. Default 64. */
  readonly maxTokens?: number;
  /** Seconds since the epoch; default the system clock. */
  readonly now?: () => number;
  /** Milliseconds of a monotonic clock for the contexts' Echo values (the server's scheduler). */
  readonly monotonicNow?: () => number;
  /** One line per token accepted or refused and per context made or dropped (never a key). */
  readonly log?: (line: string) => void;
}

/** One OSCORE context made from a token: its RS-side Recipient ID indexes it. */
interface BoundContext {
  readonly context: OscoreSecurityContext;
  readonly security: OscoreServerSecurity;
  readonly recipientKey: string;
  readonly token: StoredToken;
}

/** A token as the RS keeps it: by its Input Material id. */
interface StoredToken {
  readonly materialKey: string;
  readonly material: OscoreInputMaterial;
  claims: AccessTokenClaims;
  scope: string[];
  current: BoundContext | undefined;
  /** A context from a repost, until a request verifies with it (see the module comment). */
  pending: BoundContext | undefined;
}


export class AceResourceServer implements ServerSecurity {
  readonly #options: AceResourceServerOptions;
  readonly #fallback: ServerSecurity;
  readonly #tokens = new Map<string, StoredToken>();
  readonly #byRecipient = new Map<string, BoundContext>();
  readonly #ids: ConnectionIdentifiers;
  readonly #knownScopes: ReadonlySet<string>;
  readonly #now: () => number;
  readonly #scopeFormat: ScopeFormat;

  constructor(options: AceResourceServerOptions, fallback?: ServerSecurity) {
    this.#options = options;
    this.#scopeFormat = options.scopeFormat ?? TEXT_SCOPES;
    this.#fallback = fallback ?? new OscoreServerSecurity([]);
    this.#knownScopes = new Set(options.scopes);
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000));
    const configured = fallback instanceof OscoreServerSecurity ? fallback : undefined;
    // §4.2: "The RS makes sure that ID2 does not collide with any of its Recipient IDs."
    this.#ids = new ConnectionIdentifiers(() => [
      ...[...this.#byRecipient.values()].map((b) => b.context.primaryRecipient.params.recipientId),
      ...(configured?.contexts ?? []).flatMap((c) => c.recipientIds),
    ]);
  }

  /** Serves /authz-info on `server` and puts this security in front of the one it had. */
  static attach(server: CoapServer, options: AceResourceServerOptions): AceResourceServer {
    const rs = new AceResourceServer({ monotonicNow: () => server.endpoint.scheduler.now(), ...options }, server.security);
    server.security = rs;
    // RFC 9200 §5.10.1.2: "it SHOULD NOT be possible to perform GET, DELETE, or PUT on the authz-info endpoint".
    server.resource(AUTHZ_INFO_PATH, { POST: (request) => rs.authzInfo(request) }, { ct: ContentFormat.AceCbor });
    return rs;
  }

  /** Tokens held now. */
  get tokenCount(): number {
    return this.#tokens.size;
  }

  /** The OSCORE contexts made from tokens, in use or waiting to replace one. */
  get contexts(): readonly OscoreSecurityContext[] {
    return [...this.#byRecipient.values()].map((b) => b.context);
  }

  /** AS Request Creation Hints (RFC 9200 §5.3): 4.01 with the AS, the audience and the scope to ask for. */
  creationHints(scope?: string): CoapResponse {
    const hints: Array<readonly [number, unknown]> = [];
    if (this.#options.asUri !== undefined) hints.push([CreationHint.AS, this.#options.asUri]);
    hints.push([CreationHint.audience, this.#options.audiences[0]!]);
    if (scope !== undefined) hints.push([CreationHint.scope, scope]);
    return { code: ResponseCode.Unauthorized, payload: encodeAceMap(hints), contentFormat: ContentFormat.AceCbor, maxAge: 0 };
  }

  /** A resource's handlers, each method demanding its scope token (scope-guard.ts); no token → these hints. */
  guard(required: ScopeRequirements, handlers: Handlers): Handlers {
    return guardHandlers(required, handlers, (scope) => this.creationHints(scope));
  }

  /**
   * Puts the resource already at `path` on `server` under `guard`, keeping its other attributes.
   * False when there is no resource at `path`.
   */
  protectResource(server: CoapServer, path: string, required: ScopeRequirements): boolean {
    const definition = server.resourceAt(path);
    if (definition === undefined) return false;
    server.remove(path);
    server.add({ ...definition, handlers: this.guard(required, definition.handlers) });
    return true;
  }

  /** POST /authz-info: a new token (unprotected, §4.1) or an update of access rights (protected, §4.2). */
  authzInfo(request: CoapRequest): CoapResponse {
    if (request.contentFormat !== ContentFormat.AceCbor) return { code: ResponseCode.UnsupportedContentFormat, payload: 'authz-info takes application/ace+cbor' };
    try {
      const bound = this.#boundOf(request.context);
      if (request.context.oscore !== undefined) return this.#updateRights(bound, request.payload);
      return this.#newToken(request.payload);
    } catch (e) {
      if (e instanceof TokenError) {
        this.#options.log?.(`token refused: ${e.message}`);
        return { code: e.code, payload: e.message };
      }
      if (e instanceof AceFormatError || e instanceof OscoreProfileError) return { code: ResponseCode.BadRequest, payload: e.message };
      throw e;
    }
  }

  unprotect(request: CoapMessage, context: EndpointContext): UnprotectOutcome | undefined {
    const bound = this.#boundByKid(request);
    if (bound === undefined) return this.#fallback.unprotect(request, context);
    const token = bound.token;
    if (token.claims.exp !== undefined && token.claims.exp <= this.#now()) {
      // §4.3 and §6: the context goes with its token; the answer is an unprotected 4.01, with the
      // hints that tell the client where to get a new one.
      this.#forget(token, 'expired');
      return { ok: false, response: toMessage(this.creationHints()) };
    }
    const outcome = bound.security.unprotect(request, context);
    if (outcome === undefined || !outcome.ok) return outcome;
    if (token.pending === bound) this.#promote(token, bound);
    return { ...outcome, context: Object.assign({}, outcome.context, { scope: token.scope }) };
  }

  #newToken(payload: Uint8Array): CoapResponse {
    const map = decodeAceMap(payload);
    const claims = this.#validToken(requiredBytes(map, AceParam.access_token, 'access_token'));
    // §4.1.1, §4.1.2: both MUST be sent with a token that is not an update of access rights.
    const nonce1 = requiredBytes(map, AceParam.nonce1, 'nonce1');
    const clientId = requiredBytes(map, AceParam.ace_client_recipientid, 'ace_client_recipientid');
    if (!('osc' in claims.cnf)) throw new AceFormatError('the token carries no OSCORE_Input_Material (an update of access rights is posted over OSCORE)');
    const material = claims.cnf.osc;
    const longest = aeadAlgorithm(material.alg ?? 10).maxIdLength;
    if (clientId.length > longest) throw new AceFormatError(`ace_client_recipientid is longer than ${longest} bytes`);
    const nonce2 = newNonce();
    // §4.2: "The RS MUST ensure that ID2 is different from the value received in the ace_client_recipientid parameter."
    const serverId = this.#ids.allocate(longest, clientId);
    const name = `ace ${claims.sub ?? hex(material.id)}`;
    let context: OscoreSecurityContext;
    try {
      context = profileContext('server', { material, nonce1, nonce2, clientRecipientId: clientId, serverRecipientId: serverId }, name);
    } catch (e) {
      this.#ids.release(serverId);
      throw e;
    }
    this.#install(claims, material, context);
    return {
      code: ResponseCode.Created,
      contentFormat: ContentFormat.AceCbor,
      payload: encodeAceMap([
        [AceParam.nonce2, nonce2],
        [AceParam.ace_server_recipientid, serverId],
      ]),
    };
  }

  /**
   * §4.2: "The RS MUST check that the kid of the cnf claim of the new access token matches the
   * identifier of the OSCORE Input Material of the context used to protect the message. If that is
   * the case, the RS MUST overwrite the old token ... respond with a 2.01 (Created) response
   * protected with the same security context, with no payload. If any verification fails, the RS
   * MUST respond with a 4.01".
   */
  #updateRights(bound: BoundContext | undefined, payload: Uint8Array): CoapResponse {
    if (bound === undefined) throw new TokenError(ResponseCode.Unauthorized, 'an update of access rights must come over a context made from a token');
    const claims = this.#validToken(requiredBytes(decodeAceMap(payload), AceParam.access_token, 'access_token'));
    if (!('kid' in claims.cnf) || hex(claims.cnf.kid) !== bound.token.materialKey) throw new TokenError(ResponseCode.Unauthorized, 'the new token names another OSCORE Input Material');
    bound.token.claims = claims;
    bound.token.scope = this.#scopeFormat.tokens(claims.scope);
    this.#options.log?.(`access rights of ${bound.context.name} updated: scope "${bound.token.scope.join(' ')}"`);
    return { code: ResponseCode.Created };
  }

  #validToken(token: Uint8Array): AccessTokenClaims {
    const keys = this.#options.tokenKeys;
    const claims = openToken(token, (kid) => keys.find((k) => hex(k.kid) === hex(kid)));
    checkClaims(claims, {
      audiences: this.#options.audiences,
      now: this.#now(),
      knownScopes: this.#knownScopes,
      scopeFormat: this.#scopeFormat,
      ...(this.#options.issuer !== undefined ? { issuer: this.#options.issuer } : {}),
    });
    return claims;
  }

  #install(claims: AccessTokenClaims, material: OscoreInputMaterial, context: OscoreSecurityContext): void {
    const materialKey = hex(material.id);
    let token = this.#tokens.get(materialKey);
    if (token === undefined || !sameMaterial(token.material, material)) {
      if (token !== undefined) this.#forget(token, 'replaced by another token with its id');
      token = { materialKey, material, claims, scope: this.#scopeFormat.tokens(claims.scope), current: undefined, pending: undefined };
      while (this.#tokens.size >= (this.#options.maxTokens ?? 64)) this.#forget(this.#tokens.values().next().value!, 'evicted: token storage full');
    } else {
      this.#tokens.delete(materialKey); // re-inserted below: the most recently posted goes last
      token.claims = claims;
      token.scope = this.#scopeFormat.tokens(claims.scope);
    }
    this.#tokens.set(materialKey, token);
    const monotonicNow = this.#options.monotonicNow;
    const bound: BoundContext = {
      context,
      security: new OscoreServerSecurity([context], monotonicNow ? { now: monotonicNow } : {}),
      recipientKey: hex(context.primaryRecipient.params.recipientId),
      token,
    };
    this.#byRecipient.set(bound.recipientKey, bound);
    if (token.current === undefined) token.current = bound;
    else {
      if (token.pending !== undefined) this.#drop(token.pending);
      token.pending = bound;
    }
    this.#options.log?.(`token for ${claims.aud} accepted (scope "${token.scope.join(' ')}"): context ${context.name}, Recipient ID ${bound.recipientKey}${token.pending === bound ? ' (replaces the current one at its first request)' : ''}`);
  }

  #promote(token: StoredToken, bound: BoundContext): void {
    if (token.current !== undefined) this.#drop(token.current);
    token.current = bound;
    token.pending = undefined;
  }

  #forget(token: StoredToken, why: string): void {
    for (const bound of [token.current, token.pending]) if (bound !== undefined) this.#drop(bound);
    this.#tokens.delete(token.materialKey);
    this.#options.log?.(`token ${token.materialKey} dropped: ${why}`);
  }

  #drop(bound: BoundContext): void {
    this.#byRecipient.delete(bound.recipientKey);
    this.#ids.release(bound.context.primaryRecipient.params.recipientId);
  }

  #boundByKid(request: CoapMessage): BoundContext | undefined {
    const option = getOption(request, OptionNumber.Oscore);
    if (option === undefined) return undefined;
    try {
      const { kid } = decodeOscoreOption(option);
      return kid === undefined ? undefined : this.#byRecipient.get(hex(kid));
    } catch {
      return undefined; // a malformed option: the fallback gives RFC 8613 §8.2's answer
    }
  }

  /** The token context whose layer verified this request (the innermost one), if any. */
  #boundOf(context: EndpointContext): BoundContext | undefined {
    const layer = context.oscore?.at(-1);
    const bound = layer && this.#byRecipient.get(layer.kid);
    return bound !== undefined && bound.context.name === layer!.peer ? bound : undefined;
  }
}

function sameMaterial(a: OscoreInputMaterial, b: OscoreInputMaterial): boolean {
  return hex(a.ms) === hex(b.ms) && a.alg === b.alg && a.hkdf === b.hkdf && hex(a.salt ?? new Uint8Array(0)) === hex(b.salt ?? new Uint8Array(0)) && hex(a.contextId ?? new Uint8Array(0)) === hex(b.contextId ?? new Uint8Array(0));
}
