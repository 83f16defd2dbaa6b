/**
 * The Authorization Server's token endpoint (RFC 9200 §5.8) as a sans-IO core: an authenticated
 * client's request bytes in, the response code and application/ace+cbor bytes out. Who the client
 * is comes from the secure channel it used (the OSCORE context that verified its request: RFC 9203
 * §5, "the requesting entity and the AS are expected to have preestablished security contexts");
 * `bindAuthorizationServer` (as-resources.ts) puts it on CoAP.
 *
 * Grant: client credentials only (§5.8.1: the default when grant_type is absent). Audiences and
 * the scopes each client may get for each come from the configuration. Per audience, a profile:
 *  - coap_oscore (RFC 9203): a new OSCORE_Input_Material per token request (§3.2: "different ... to
 *    different authorized clients"), in the token and in the response's cnf; with req_cnf.kid an
 *    update of access rights bound to Input Material issued to this client before (§3.1, §3.2);
 *  - coap_edhoc_oscore (draft-ietf-ace-edhoc-oscore-profile): the client's EDHOC credential from
 *    the configuration in the token's cnf (kccs), a token series (edhoc_info.session_id) and the
 *    RS's credential in the response (rs_cnf); with edhoc_info an update of access rights (§3.1).
 * Errors: RFC 9200 §5.8.3, 4.00 with {error, error_description}; invalid_client is 4.01.
 */
import { randomBytes } from 'node:crypto';
import { ResponseCode } from '../coap/codes.js';
import { coseAead } from '../cose/algorithms.js';
import { decodeStrict, encodeCbor, isBytes } from '../cose/cbor.js';
import { equalBytes } from '../oscore/context.js';
import {
  AceErrorCode,
  AceFormatError,
  AceParam,
  AceProfile,
  asIntMap,
  Cnf,
  decodeAceMap,
  encodeAceMap,
  GrantType,
  optionalInt,
  optionalScope,
  optionalText,
  requiredBytes,
  type AceErrorName,
  type AceMap,
} from './ace-cbor.js';
import type { AsState } from './as-state.js';
import { describeScope, TEXT_SCOPES, type ScopeFormat } from './scope-format.js';
import { checkClaims, encodeClaims, encodeEdhocInfo, encodeOscoreInput, openToken, parseEdhocInfo, sealToken, TokenError, type AccessTokenClaims, type Confirmation, type EdhocInformation, type TokenKey } from './token.js';

export type AceProfileName = 'coap_oscore' | 'coap_edhoc_oscore';

/** A resource server as the AS knows it. */
export interface AudienceEntry {
  /** The audience name clients ask for and the token's aud. */
  readonly name: string;
  /** The key the AS shares with this RS for its tokens. */
  readonly key: TokenKey;
  /** Every scope token this RS understands. */
  readonly scopes: readonly string[];
  readonly profile: AceProfileName;
  /** Token lifetime; default 3600 s. */
  readonly lifetimeSeconds?: number;
  /** coap_edhoc_oscore: the RS's EDHOC authentication credential (an encoded CCS), sent to clients as rs_cnf. */
  readonly edhocCredential?: Uint8Array;
  /** The OSCORE AEAD for contexts with this RS; default AES-CCM-16-64-128 (sent only when not the default). */
  readonly oscoreAlg?: number;
  /** How this RS writes scopes (scope-format.ts); default text tokens. A Group Manager takes AIF. */
  readonly scopeFormat?: ScopeFormat;
}

export interface ClientEntry {
  readonly name: string;
  /** Per audience, the scope tokens this client may be granted. */
  readonly grants: ReadonlyMap<string, readonly string[]>;
  /** coap_edhoc_oscore: the client's EDHOC authentication credential (an encoded CCS). */
  readonly edhocCredential?: Uint8Array;
}

export interface AuthorizationServerOptions {
  /** The token's iss claim; omitted when undefined. */
  readonly issuer?: string;
  readonly audiences: readonly AudienceEntry[];
  readonly clients: readonly ClientEntry[];
  readonly state: AsState;
  /** Seconds since the epoch; default the system clock. */
  readonly now?: () => number;
  readonly random?: (n: number) => Uint8Array;
}

/** What the endpoint answers: a code and an application/ace+cbor payload. */
export interface AceResponse {
  readonly code: number;
  readonly payload: Uint8Array;
}

const DEFAULT_LIFETIME = 3600;
const DEFAULT_OSCORE_ALG = 10;

class TokenRequestError extends Error {
  constructor(
    readonly error: AceErrorName,
    message: string,
  ) {
    super(message);
  }
}

export class AuthorizationServer {
  readonly #audiences: Map<string, AudienceEntry>;
  readonly #clients: Map<string, ClientEntry>;
  readonly #options: AuthorizationServerOptions;
  readonly #now: () => number;
  readonly #random: (n: number) => Uint8Array;
  /** One line per decision (never a key): the `as` command's -v output and the tests read it. */
  onDecision: ((line: string) => void) | undefined;

  constructor(options: AuthorizationServerOptions) {
    this.#options = options;
    this.#audiences = new Map(options.audiences.map((a) => [a.name, a]));
    this.#clients = new Map(options.clients.map((c) => [c.name, c]));
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000));
    this.#random = options.random ?? randomBytes;
  }

  /**
   * POST /token. `client`: the name the secure channel authenticated, undefined when the request
   * came without one (then invalid_client, RFC 9200 §5.8.3 / RFC 6749 §5.2, with 4.01).
   */
  token(client: string | undefined, payload: Uint8Array): AceResponse {
    try {
      const response = this.#token(client, payload);
      return { code: ResponseCode.Created, payload: response };
    } catch (e) {
      if (e instanceof TokenRequestError) {
        this.onDecision?.(`refused ${client ?? '(unauthenticated)'}: ${e.error}: ${e.message}`);
        return errorResponse(e.error, e.message);
      }
      if (e instanceof AceFormatError) return errorResponse('invalid_request', e.message);
      throw e;
    }
  }

  /**
   * POST /introspect (RFC 9200 §5.9). `rs`: the name the secure channel authenticated, which must
   * be an audience of this AS ("The AS MUST verify that the RS is authorized to perform
   * introspection", §5.9.1: an RS may introspect the tokens issued for it, and no others). A token
   * that does not open with that audience's key, is expired or names another audience is inactive
   * (§5.9.2: {active: false}, nothing else about it); an active one comes with its claims.
   */
  introspect(rs: string | undefined, payload: Uint8Array): AceResponse {
    const audience = rs === undefined ? undefined : this.#audiences.get(rs);
    if (audience === undefined) return errorResponse('invalid_client', rs === undefined ? 'introspection needs an authenticated resource server' : `"${rs}" is no resource server of this AS`);
    let token: Uint8Array;
    try {
      token = requiredBytes(decodeAceMap(payload), AceParam.token, 'token');
    } catch (e) {
      if (e instanceof AceFormatError) return errorResponse('invalid_request', e.message);
      throw e;
    }
    const inactive = { code: ResponseCode.Created, payload: encodeAceMap([[AceParam.active, false]]) };
    let claims: AccessTokenClaims;
    try {
      claims = openToken(token, (kid) => (equalBytes(kid, audience.key.kid) ? audience.key : undefined));
      checkClaims(claims, { audiences: [audience.name], now: this.#now(), ...(this.#options.issuer !== undefined ? { issuer: this.#options.issuer } : {}) });
    } catch (e) {
      if (!(e instanceof TokenError)) throw e;
      this.onDecision?.(`introspection by ${audience.name}: inactive (${e.message})`);
      return inactive;
    }
    this.onDecision?.(`introspection by ${audience.name}: active (scope "${describeScope(claims.scope)}")`);
    // §5.9.2: the response "MAY contain" the token's claims, with the claims' CBOR abbreviations.
    const response = asIntMap(decodeStrict(encodeClaims(claims)), 'the claims');
    response.set(AceParam.active, true);
    return { code: ResponseCode.Created, payload: encodeCbor(response) };
  }

  #token(clientName: string | undefined, payload: Uint8Array): Uint8Array {
    const client = clientName === undefined ? undefined : this.#clients.get(clientName);
    if (client === undefined) throw new TokenRequestError('invalid_client', clientName === undefined ? 'the token endpoint needs an authenticated client' : `unknown client "${clientName}"`);
    const request = decodeAceMap(payload);
    const grantType = optionalInt(request, AceParam.grant_type, 'grant_type');
    if (grantType !== undefined && grantType !== GrantType.client_credentials) throw new TokenRequestError('unsupported_grant_type', 'only the client credentials grant is supported');
    const audienceName = optionalText(request, AceParam.audience, 'audience');
    if (audienceName === undefined) throw new TokenRequestError('invalid_request', 'the request names no audience');
    const audience = this.#audiences.get(audienceName);
    if (audience === undefined) throw new TokenRequestError('invalid_request', `unknown audience "${audienceName}"`);
    const allowed = client.grants.get(audience.name);
    if (allowed === undefined || allowed.length === 0) throw new TokenRequestError('unauthorized_client', `${client.name} may not access ${audience.name}`);
    const profile = request.get(AceParam.ace_profile);
    // §5.8.4.3: null asks the AS to name the profile; a number must be the audience's.
    if (profile !== undefined && profile !== null && profile !== AceProfile[audience.profile]) throw new TokenRequestError('incompatible_ace_profiles', `${audience.name} uses ${audience.profile}`);
    const format = audience.scopeFormat ?? TEXT_SCOPES;
    const scope = this.#grantedScope(request, audience, allowed, format);
    const confirmation = this.#confirmation(request, client, audience);

    const number = this.#options.state.nextTokenNumber();
    const now = this.#now();
    const lifetime = audience.lifetimeSeconds ?? DEFAULT_LIFETIME;
    const claims: AccessTokenClaims = {
      ...(this.#options.issuer !== undefined ? { iss: this.#options.issuer } : {}),
      aud: audience.name,
      iat: now,
      exp: now + lifetime,
      scope: format.encode(scope),
      cti: uintBytes(number),
      cnf: confirmation.token,
      ...(confirmation.edhocInfo !== undefined ? { edhocInfo: confirmation.edhocInfo } : {}),
    };
    const accessToken = sealToken(claims, audience.key, this.#random);
    this.onDecision?.(`issued token ${number} to ${client.name} for ${audience.name} (scope "${scope.join(' ')}" as ${describeScope(claims.scope)}, ${audience.profile}, expires in ${lifetime} s)`);
    const requested = optionalScope(request, AceParam.scope);
    return encodeAceMap([
      [AceParam.access_token, accessToken],
      [AceParam.expires_in, lifetime],
      [AceParam.ace_profile, AceProfile[audience.profile]],
      // RFC 6749 §5.1: scope is returned when it differs from the one requested.
      ...(requested === undefined || format.tokens(requested).join(' ') !== scope.join(' ') ? [[AceParam.scope, claims.scope] as const] : []),
      ...confirmation.response,
    ]);
  }

  /**
   * The scope tokens granted: those requested that the client may have, or all it may have when
   * none were requested (RFC 6749 §3.3: the AS may fall back to a default). A requested token
   * this audience does not know, or a request granting nothing, is invalid_scope.
   */
  #grantedScope(request: AceMap, audience: AudienceEntry, allowed: readonly string[], format: ScopeFormat): string[] {
    const requested = optionalScope(request, AceParam.scope);
    if (requested === undefined) return [...allowed];
    const tokens = format.tokens(requested);
    const unknown = tokens.filter((t) => !audience.scopes.includes(t));
    if (unknown.length > 0) throw new TokenRequestError('invalid_scope', `${audience.name} has no scope ${unknown.join(' ')}`);
    const granted = tokens.filter((t) => allowed.includes(t));
    if (granted.length === 0) throw new TokenRequestError('invalid_scope', `none of the requested scope is granted to this client`);
    return granted;
  }

  /**
   * The token's cnf (and, EDHOC profile, its edhoc_info) and what the response carries besides the
   * token: cnf.osc (RFC 9203 §3.2; absent for an update of access rights), or edhoc_info and
   * rs_cnf for the first token of an EDHOC token series (draft-ietf-ace-edhoc-oscore-profile §3.3).
   */
  #confirmation(request: AceMap, client: ClientEntry, audience: AudienceEntry): { token: Confirmation; edhocInfo?: EdhocInformation; response: Array<readonly [number, unknown]> } {
    const reqCnf = request.get(AceParam.req_cnf);
    if (audience.profile === 'coap_edhoc_oscore') return this.#edhocConfirmation(request, client, audience);
    if (request.has(AceParam.edhoc_info)) throw new TokenRequestError('invalid_request', 'edhoc_info belongs to the EDHOC and OSCORE profile');
    if (reqCnf !== undefined) {
      const map = asIntMap(reqCnf, 'req_cnf');
      const kid = map.get(Cnf.kid);
      if (map.size !== 1 || !isBytes(kid)) throw new TokenRequestError('unsupported_pop_key', 'coap_oscore takes req_cnf with kid only');
      const owner = this.#options.state.materialOwner(kid);
      // RFC 9203 §3.1: "If that is not the case, the client-to-AS request MUST be declined with the error code invalid_request".
      if (owner === undefined || owner.client !== client.name || owner.audience !== audience.name) throw new TokenRequestError('invalid_request', 'req_cnf.kid names no OSCORE Input Material issued to this client for this audience');
      return { token: { kid }, response: [] };
    }
    const alg = audience.oscoreAlg ?? DEFAULT_OSCORE_ALG;
    const id = uintBytes(this.#options.state.nextTokenNumber());
    this.#options.state.recordMaterial(id, { client: client.name, audience: audience.name });
    const material = {
      id,
      ms: Uint8Array.from(this.#random(Math.max(16, coseAead(alg).keyLength))),
      ...(alg !== DEFAULT_OSCORE_ALG ? { alg } : {}),
    };
    return { token: { osc: material }, response: [[AceParam.cnf, new Map([[Cnf.osc, encodeOscoreInput(material)]])]] };
  }

  /**
   * draft-ietf-ace-edhoc-oscore-profile §3.1–§3.3. The first token of a series: cnf is the client's
   * registered credential (a req_cnf must name that one: the AS has its proof of possession from the
   * registration, §3.1), a new session_id, and in the response edhoc_info and the RS's credential
   * (rs_cnf, by value). An update of access rights names the series' session_id in edhoc_info and
   * no req_cnf; its response has neither edhoc_info nor rs_cnf (§3.3.3), and never a cnf (§3.3).
   */
  #edhocConfirmation(request: AceMap, client: ClientEntry, audience: AudienceEntry): { token: Confirmation; edhocInfo: EdhocInformation; response: Array<readonly [number, unknown]> } {
    if (client.edhocCredential === undefined) throw new TokenRequestError('unsupported_pop_key', `no EDHOC credential is registered for ${client.name}`);
    const reqCnf = request.get(AceParam.req_cnf);
    if (request.has(AceParam.edhoc_info)) {
      // §3.1: "This POST request MUST NOT include the "req_cnf" parameter."
      if (reqCnf !== undefined) throw new TokenRequestError('invalid_request', 'an update of access rights has edhoc_info and no req_cnf');
      const { sessionId } = parseEdhocInfo(request.get(AceParam.edhoc_info), 'edhoc_info');
      const owner = this.#options.state.materialOwner(sessionId);
      // §3.1: "If that is not the case, the Client-to-AS request MUST be declined with the error code invalid_request".
      if (owner === undefined || owner.client !== client.name || owner.audience !== audience.name) throw new TokenRequestError('invalid_request', 'edhoc_info.session_id names no token series of this client for this audience');
      return { token: { kccs: client.edhocCredential }, edhocInfo: { sessionId }, response: [] };
    }
    if (reqCnf !== undefined) {
      const kccs = asIntMap(reqCnf, 'req_cnf').get(Cnf.kccs);
      if (kccs === undefined) throw new TokenRequestError('unsupported_pop_key', 'coap_edhoc_oscore takes req_cnf with kccs only');
      if (!equalBytes(encodeCbor(kccs), client.edhocCredential)) throw new TokenRequestError('unsupported_pop_key', 'req_cnf names another credential than the one registered for this client');
    }
    const sessionId = uintBytes(this.#options.state.nextTokenNumber());
    this.#options.state.recordMaterial(sessionId, { client: client.name, audience: audience.name });
    const edhocInfo = { sessionId };
    const response: Array<readonly [number, unknown]> = [[AceParam.edhoc_info, encodeEdhocInfo(edhocInfo)]];
    if (audience.edhocCredential !== undefined) response.push([AceParam.rs_cnf, new Map([[Cnf.kccs, decodeStrict(audience.edhocCredential)]])]);
    return { token: { kccs: client.edhocCredential }, edhocInfo, response };
  }
}

/** RFC 9200 §5.8.3: 4.00 with the error code, 4.01 for invalid_client. */
export function errorResponse(error: AceErrorName, description: string): AceResponse {
  return {
    code: error === 'invalid_client' ? ResponseCode.Unauthorized : ResponseCode.BadRequest,
    payload: encodeAceMap([
      [AceParam.error, AceErrorCode[error]],
      [AceParam.error_description, description],
    ]),
  };
}

/** A counter as the shortest big-endian byte string (at least one byte): cti and Input Material ids. */
export function uintBytes(n: number): Uint8Array {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Uint8Array.from(bytes.length === 0 ? [0] : bytes);
}
