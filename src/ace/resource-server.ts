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
 *
 * With `edhoc`, the same server also takes tokens of the EDHOC and OSCORE profile: `attach` puts
 * an EdhocServer behind this security whose Initiators are authenticated by their tokens
 * (edhoc-tokens.ts), and the contexts EDHOC makes carry their token's scope exactly as above.
 * With `introspection`, a posted token the RS cannot open is described by the AS (RFC 9200 §5.9).
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
import type { EdhocCompletion, ServerSecurity, UnprotectOutcome } from '../server/security.js';
import type { ResponderConfig } from '../edhoc/responder.js';
import { EdhocServer } from '../edhoc-coap/server.js';
import { EdhocTokens } from './edhoc-tokens.js';
import { Introspection, type IntrospectionOptions } from './introspection.js';
import type { CoapServer } from '../server/server.js';
import { ACCESS_TOKEN_EAD_LABEL, AceFormatError, AceParam, CreationHint, decodeAceMap, encodeAceMap, requiredBytes, type AceMap } from './ace-cbor.js';
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
  /**
   * The EDHOC and OSCORE profile too (draft-ietf-ace-edhoc-oscore-profile, edhoc-tokens.ts): the
   * RS's own EDHOC credential (AUTH_CRED_RS), suites and methods; the Initiators' credentials come
   * from tokens. `attach` then serves /.well-known/edhoc.
   */
  readonly edhoc?: AceEdhocOptions;
  /** RFC 9200 §5.9: the AS's introspection endpoint, asked about posted tokens this RS cannot open. */
  readonly introspection?: IntrospectionOptions;
  /**
   * More entries for the Token Transfer Response (the 2.01 to an unprotected POST /authz-info):
   * RFC 9594 §3.3 has a KDC add 'kdcchallenge' and 'sign_info' there. `peer` is the name of the
   * context the client's later requests verify with (their `context.oscore` peer), `scope` the
   * token's scope tokens, `request` the posted map (its 'sign_info' asks for sign_info).
   */
  readonly tokenTransfer?: (peer: string, scope: readonly string[], request: AceMap) => ReadonlyArray<readonly [number, unknown]>;
}

export interface AceEdhocOptions {
  readonly responder: Omit<ResponderConfig, 'peers' | 'understoodEadLabels'>;
  /** EDHOC sessions waiting for message_3 (EdhocServer's default: 64). */
  readonly maxSessions?: number;
  readonly sessionLifetimeMs?: number;
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
  /** The EDHOC profile's tokens, when `fallback` is the EdhocServer `attach` made for it. */
  readonly #edhoc: EdhocTokens | undefined;
  readonly #introspection: Introspection | undefined;
  /** RFC 9668: the combined request goes to the EDHOC server behind this security. */
  readonly completeEdhoc?: (request: CoapMessage, context: EndpointContext) => EdhocCompletion;
  readonly #scopeFormat: ScopeFormat;

  constructor(options: AceResourceServerOptions, fallback?: ServerSecurity) {
    this.#options = options;
    this.#scopeFormat = options.scopeFormat ?? TEXT_SCOPES;
    this.#fallback = fallback ?? new OscoreServerSecurity([]);
    this.#knownScopes = new Set(options.scopes);
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000));
    const configured = fallback instanceof OscoreServerSecurity ? fallback : undefined;
    const edhocServer = fallback instanceof EdhocServer ? fallback : undefined;
    // §4.2: "The RS makes sure that ID2 does not collide with any of its Recipient IDs."
    // Asked per candidate: the configured and EDHOC contexts may be one per device (issue 21), idle as bytes.
    this.#ids = new ConnectionIdentifiers(
      () => this.#tokenRecipientIds(),
      (id) => (configured?.hasKid(id) ?? false) || (edhocServer?.hasKid(id) ?? false),
    );
    this.#introspection = options.introspection && new Introspection(options.introspection);
    const complete = fallback?.completeEdhoc;
    if (complete !== undefined) this.completeEdhoc = (request, context) => complete.call(fallback, request, context);
    this.#edhoc =
      options.edhoc !== undefined && edhocServer !== undefined
        ? new EdhocTokens({
            validToken: (token) => this.#validToken(token),
            expired: (claims) => claims.exp !== undefined && claims.exp <= this.#now(),
            maxTokens: options.maxTokens ?? 64,
            scopeFormat: this.#scopeFormat,
            dropContext: (context) => edhocServer.dropContext(context),
            ...(options.log ? { log: options.log } : {}),
          })
        : undefined;
  }

  /**
   * Serves /authz-info on `server` and puts this security in front of the one it had; with
   * `edhoc`, also EDHOC on /.well-known/edhoc, its Initiators authenticated by their tokens.
   */
  static attach(server: CoapServer, options: AceResourceServerOptions): AceResourceServer {
    if (options.edhoc !== undefined) {
      const tokens = (): EdhocTokens => rs.#edhoc!;
      EdhocServer.attach(server, {
        responder: { ...options.edhoc.responder, peers: { resolve: (idCred) => tokens().resolver.resolve(idCred) }, understoodEadLabels: [ACCESS_TOKEN_EAD_LABEL] },
        authorize: (peer, ead3) => tokens().authorize(peer, ead3),
        onEstablished: (session, context) => tokens().established(session, context),
        alsoInUse: () => rs.#tokenRecipientIds(),
        ...(options.edhoc.maxSessions !== undefined ? { maxSessions: options.edhoc.maxSessions } : {}),
        ...(options.edhoc.sessionLifetimeMs !== undefined ? { sessionLifetimeMs: options.edhoc.sessionLifetimeMs } : {}),
      });
    }
    const rs: AceResourceServer = new AceResourceServer({ monotonicNow: () => server.endpoint.scheduler.now(), ...options }, server.security);
    server.security = rs;
    // RFC 9200 §5.10.1.2: "it SHOULD NOT be possible to perform GET, DELETE, or PUT on the authz-info endpoint".
    server.resource(AUTHZ_INFO_PATH, { POST: (request) => rs.authzInfo(request) }, { ct: ContentFormat.AceCbor });
    return rs;
  }

  /** Tokens held now (both profiles). */
  get tokenCount(): number {
    return this.#tokens.size + (this.#edhoc?.size ?? 0);
  }

  #tokenRecipientIds(): Uint8Array[] {
    return [...this.#byRecipient.values()].map((b) => b.context.primaryRecipient.params.recipientId);
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

  /**
   * POST /authz-info: a new token (unprotected, §4.1) or an update of access rights (protected,
   * §4.2) in application/ace+cbor; with the EDHOC profile, a bare token in application/cwt — posted
   * before EDHOC (RFC 9200 §5.10.1) or, over its context, an update of access rights
   * (draft-ietf-ace-edhoc-oscore-profile §4.6.1).
   */
  async authzInfo(request: CoapRequest): Promise<CoapResponse> {
    const edhoc = this.#edhoc !== undefined && request.contentFormat === ContentFormat.Cwt;
    if (request.contentFormat !== ContentFormat.AceCbor && !edhoc) return { code: ResponseCode.UnsupportedContentFormat, payload: this.#edhoc ? 'authz-info takes application/ace+cbor or application/cwt' : 'authz-info takes application/ace+cbor' };
    try {
      if (edhoc) return await this.#edhocToken(request);
      const bound = this.#boundOf(request.context);
      if (request.context.oscore !== undefined) return await this.#updateRights(bound, request.payload);
      return await this.#newToken(request.payload);
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
    const kid = requestKid(request);
    const bound = kid === undefined ? undefined : this.#byRecipient.get(kid);
    if (bound === undefined) return this.#unprotectEdhoc(kid, request, context);
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

  /** A request on an EDHOC profile context: checked against its token like the RFC 9203 ones (§4.9, §4.10). */
  #unprotectEdhoc(kid: string | undefined, request: CoapMessage, context: EndpointContext): UnprotectOutcome | undefined {
    const series = kid === undefined ? undefined : this.#edhoc?.byRecipient(kid);
    if (series === undefined) return this.#fallback.unprotect(request, context);
    if (series.claims.exp !== undefined && series.claims.exp <= this.#now()) {
      this.#edhoc!.forget(series, 'expired');
      return { ok: false, response: toMessage(this.creationHints()) };
    }
    const outcome = this.#fallback.unprotect(request, context);
    if (outcome === undefined || !outcome.ok) return outcome;
    return { ...outcome, context: Object.assign({}, outcome.context, { scope: series.scope }) };
  }

  async #edhocToken(request: CoapRequest): Promise<CoapResponse> {
    const claims = await this.#claimsOf(request.payload);
    if (request.context.oscore === undefined) {
      this.#edhoc!.upload(claims);
      return { code: ResponseCode.Created };
    }
    const layer = request.context.oscore.at(-1)!;
    const series = this.#edhoc!.byRecipient(layer.kid);
    // §4.6.2: "if any validation fails, RS MUST respond with a 4.01 (Unauthorized) error response".
    if (series === undefined || series.context?.name !== layer.peer) throw new TokenError(ResponseCode.Unauthorized, 'an update of access rights must come over a context made by EDHOC with a token');
    this.#edhoc!.update(series, claims);
    return { code: ResponseCode.Created };
  }

  async #newToken(payload: Uint8Array): Promise<CoapResponse> {
    const map = decodeAceMap(payload);
    const claims = await this.#claimsOf(requiredBytes(map, AceParam.access_token, 'access_token'));
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
    const extra = this.#options.tokenTransfer?.(name, this.#scopeFormat.tokens(claims.scope), map) ?? [];
    return {
      code: ResponseCode.Created,
      contentFormat: ContentFormat.AceCbor,
      payload: encodeAceMap([
        // The profile's own parameters win: a hook cannot replace the nonce or the Recipient ID.
        ...extra.filter(([label]) => label !== AceParam.nonce2 && label !== AceParam.ace_server_recipientid),
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
  async #updateRights(bound: BoundContext | undefined, payload: Uint8Array): Promise<CoapResponse> {
    if (bound === undefined) throw new TokenError(ResponseCode.Unauthorized, 'an update of access rights must come over a context made from a token');
    const claims = await this.#claimsOf(requiredBytes(decodeAceMap(payload), AceParam.access_token, 'access_token'));
    if (!('kid' in claims.cnf) || hex(claims.cnf.kid) !== bound.token.materialKey) throw new TokenError(ResponseCode.Unauthorized, 'the new token names another OSCORE Input Material');
    bound.token.claims = claims;
    bound.token.scope = this.#scopeFormat.tokens(claims.scope);
    this.#options.log?.(`access rights of ${bound.context.name} updated: scope "${bound.token.scope.join(' ')}"`);
    return { code: ResponseCode.Created };
  }

  /** A token's claims, opened with the RS's own keys (the EDHOC profile's EAD_3 tokens: no introspection there, EDHOC cannot wait). */
  #validToken(token: Uint8Array): AccessTokenClaims {
    return this.#checked(openToken(token, (kid) => this.#keyFor(kid)));
  }

  /**
   * A posted token's claims: opened with the RS's keys or, when it cannot open it (no key for its
   * kid, or it does not decrypt: 4.01) and introspection is configured, as the AS describes it
   * (RFC 9200 §5.9, §5.10.1.1: "the RS ... can use introspection"). Then checked as ever.
   */
  async #claimsOf(token: Uint8Array): Promise<AccessTokenClaims> {
    let claims: AccessTokenClaims;
    try {
      claims = openToken(token, (kid) => this.#keyFor(kid));
    } catch (e) {
      if (this.#introspection === undefined || !(e instanceof TokenError) || e.code !== ResponseCode.Unauthorized) throw e;
      claims = await this.#introspection.claims(token);
    }
    return this.#checked(claims);
  }

  #keyFor(kid: Uint8Array): TokenKey | undefined {
    return this.#options.tokenKeys.find((k) => hex(k.kid) === hex(kid));
  }

  #checked(claims: AccessTokenClaims): AccessTokenClaims {
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

  /** The token context whose layer verified this request (the innermost one), if any. */
  #boundOf(context: EndpointContext): BoundContext | undefined {
    const layer = context.oscore?.at(-1);
    const bound = layer && this.#byRecipient.get(layer.kid);
    return bound !== undefined && bound.context.name === layer!.peer ? bound : undefined;
  }
}

/** The kid (hex) of a request's OSCORE option; undefined without one, or for a malformed option (the fallback gives RFC 8613 §8.2's answer). */
function requestKid(request: CoapMessage): string | undefined {
  const option = getOption(request, OptionNumber.Oscore);
  if (option === undefined) return undefined;
  try {
    const { kid } = decodeOscoreOption(option);
    return kid === undefined ? undefined : hex(kid);
  } catch {
    return undefined;
  }
}

function sameMaterial(a: OscoreInputMaterial, b: OscoreInputMaterial): boolean {
  return hex(a.ms) === hex(b.ms) && a.alg === b.alg && a.hkdf === b.hkdf && hex(a.salt ?? new Uint8Array(0)) === hex(b.salt ?? new Uint8Array(0)) && hex(a.contextId ?? new Uint8Array(0)) === hex(b.contextId ?? new Uint8Array(0));
}
