/**
 * The client side of the OSCORE profile (RFC 9203) as a MessageSecurity for one resource server:
 * before its first request it obtains an access token from the AS (§3.1, over the client's own
 * secure channel to the AS), posts it to the RS's /authz-info with a fresh nonce N1 and its
 * Recipient ID (§4.1), derives the OSCORE context from the answer (§4.3) and protects every
 * request with it. It does so again:
 *  - when the token has expired by the client's clock (§6: "the access token associated with the
 *    context becomes invalid due to, for example, expiration"): a new token;
 *  - when the RS answers a protected request with an unprotected 4.01 (its token storage dropped
 *    ours, it restarted, or the token expired by its clock — §4.1, §6): it posts the token again
 *    (new nonces, a new context) or, if the RS refuses that token, gets a new one; then the request
 *    is sent once more;
 *  - when no audience is configured: a GET to the target without protection brings the RS's AS
 *    Request Creation Hints (RFC 9200 §5.3), whose audience it asks for. The hints' AS is only
 *    noted: a client asks no AS it was not told to trust.
 *
 * `updateAccess` asks for new rights on the same Input Material (§3.1 req_cnf.kid) and posts the
 * token over the existing context (§4.1): no new keys.
 */
import { randomBytes } from 'node:crypto';
import { ContentFormat } from '../coap/content-format.js';
import { codeToString, Method, ResponseCode } from '../coap/codes.js';
import { EMPTY_BYTES, getOption, getUintOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { ClientRequest, ClientResponse } from '../client/client.js';
import type { SendRequest } from '../client/blockwise.js';
import { OscoreClientSecurity } from '../client/oscore.js';
import { PLAIN, VerificationError, type MessageSecurity, type ProtectedRequest } from '../client/security.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { AceErrorCode, AceFormatError, AceParam, asIntMap, Cnf, CreationHint, decodeAceMap, encodeAceMap, optionalInt, optionalScope, optionalText, requiredBytes, type AceMap, type Scope } from './ace-cbor.js';
import { describeScope } from './scope-format.js';
import { newNonce, profileContext } from './oscore-profile.js';
import { parseOscoreInput, type OscoreInputMaterial } from './token.js';
import { bytesToHex as hex } from '../util/bytes.js';

/**
 * A token request or post that was refused; the message says which and why (never a key). A
 * security failure like a response that fails verification (the CLI's exit code 6).
 */
export class AceClientError extends VerificationError {}

export interface AceClientOptions {
  /** Carries the token request and the token post (a CoapClient). */
  readonly client: { request(request: ClientRequest): Promise<ClientResponse> };
  /** The AS's token endpoint, e.g. coap://as.example/token. */
  readonly asUri: string;
  /** Protection towards the AS; default the client's own for asUri (its credentials). */
  readonly asSecurity?: MessageSecurity;
  /** The RS, scheme://host:port: /authz-info is posted there. */
  readonly rsOrigin: string;
  /** The audience to ask for; default the one the RS's Creation Hints name. */
  readonly audience?: string;
  /** The scope to ask for (space-separated tokens, or bytes such as an AIF scope); default what the AS grants this client. */
  readonly scope?: Scope;
  /** Seconds since the epoch; default the system clock. */
  readonly now?: () => number;
  /** One line per token obtained and per context made (never a key). */
  readonly log?: (line: string) => void;
  /** More parameters for the Token Transfer Request (RFC 9594 §3.3: a KDC's 'sign_info'). */
  readonly tokenTransferRequest?: ReadonlyArray<readonly [number, unknown]>;
}

interface Token {
  readonly bytes: Uint8Array;
  readonly material: OscoreInputMaterial;
  readonly expiresAt: number;
  readonly scope: Scope | undefined;
}

interface Session {
  readonly token: Token;
  readonly oscore: OscoreClientSecurity;
  /** The Token Transfer Response's map (RFC 9594 §3.3: a KDC's 'kdcchallenge', 'sign_info'). */
  readonly transfer: AceMap;
}

const AUTHZ_INFO = '/authz-info';

export class AceClientSecurity implements MessageSecurity {
  readonly #options: AceClientOptions;
  readonly #now: () => number;
  #audience: string | undefined;
  #scope: Scope | undefined;
  #token: Token | undefined;
  #session: Session | undefined;
  #establishing: Promise<Session> | undefined;
  /** Requests whose answer was an unprotected 4.01 (the RS no longer knows our context). */
  readonly #refused = new WeakSet<CoapMessage>();
  #discovering = false;

  constructor(options: AceClientOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000));
    this.#audience = options.audience;
    this.#scope = options.scope;
  }

  /** The OSCORE context in use with the RS, once established. */
  get context(): OscoreSecurityContext | undefined {
    return this.#session?.oscore.context;
  }

  /**
   * Gets the token and the context now rather than at the first request, and returns the Token
   * Transfer Response's map: a KDC puts 'kdcchallenge' and 'sign_info' there (RFC 9594 §3.3)
   * for the Join Request that follows. Without an audience, an unprotected GET of `targetUri`
   * brings the RS's AS Request Creation Hints first.
   */
  async establish(targetUri: string): Promise<AceMap> {
    await this.#ready(async () => {
      const hints = await this.#options.client.request({ method: 'GET', uri: targetUri, security: PLAIN });
      this.#audience = audienceOfHints(hints.code, hints.contentFormat, hints.payload, this.#options);
    });
    return this.#session!.transfer;
  }

  /** The scope of the current token as the AS granted it (undefined: as requested). */
  get grantedScope(): Scope | undefined {
    return this.#token?.scope;
  }

  protect(request: CoapMessage): ProtectedRequest {
    const session = this.#session;
    if (this.#discovering || session === undefined) return PLAIN.protect(request);
    const inner = session.oscore.protect(request);
    return {
      message: inner.message,
      ordersNotifications: inner.ordersNotifications,
      describe: (context) => inner.describe(context),
      verify: (response, notification) => {
        if (getOption(response, OptionNumber.Oscore) === undefined && response.code === ResponseCode.Unauthorized) this.#refused.add(request);
        return inner.verify(response, notification);
      },
    };
  }

  around(exchange: SendRequest): SendRequest {
    return async (inner) => {
      const discover = (): Promise<void> => this.#discover(exchange, inner);
      await this.#ready(discover);
      try {
        return await exchange(inner);
      } catch (error) {
        if (!this.#refused.has(inner)) throw error;
        this.#refused.delete(inner);
        // §6: the RS refused the context; a new one (from the same token while it is valid), once.
        this.#session = undefined;
        await this.#ready(discover);
        return exchange(inner);
      }
    };
  }

  /** §3.1/§4.1 update of access rights: a new token for `scope` bound to the same Input Material, posted over the context. */
  async updateAccess(scope: string): Promise<void> {
    const session = this.#session;
    if (session === undefined) throw new AceClientError('no context with the RS yet: send a request first');
    const token = await this.#requestToken(scope, session.token.material.id);
    const response = await this.#options.client.request({
      method: 'POST',
      uri: this.#options.rsOrigin + AUTHZ_INFO,
      payload: encodeAceMap([[AceParam.access_token, token.bytes]]),
      contentFormat: ContentFormat.AceCbor,
      security: session.oscore,
    });
    if (response.code !== ResponseCode.Created) throw new AceClientError(`the RS refused the update of access rights: ${describe(response)}`);
    this.#scope = scope;
    this.#token = { ...token, material: session.token.material };
    this.#session = { token: this.#token, oscore: session.oscore, transfer: session.transfer };
  }

  /** `discover` finds the audience when none is known yet. */
  async #ready(discover: () => Promise<void>): Promise<void> {
    if (this.#session !== undefined && this.#session.token.expiresAt > this.#now()) return;
    if (this.#session !== undefined) {
      this.#options.log?.('the access token has expired: a new one');
      this.#session = undefined;
      this.#token = undefined;
    }
    this.#establishing ??= this.#establish(discover).finally(() => (this.#establishing = undefined));
    await this.#establishing;
  }

  async #establish(discover: () => Promise<void>): Promise<Session> {
    if (this.#audience === undefined) await discover();
    let token = this.#token !== undefined && this.#token.expiresAt > this.#now() ? this.#token : undefined;
    const reposting = token !== undefined;
    token ??= await this.#requestToken(this.#scope);
    let session: Session;
    try {
      session = await this.#postToken(token);
    } catch (error) {
      // A token the RS no longer takes (expired by its clock, or from a forgotten key): a new one, once.
      if (!reposting || !(error instanceof AceClientError)) throw error;
      session = await this.#postToken(await this.#requestToken(this.#scope));
    }
    this.#session = session;
    return session;
  }

  async #discover(exchange: SendRequest, inner: CoapMessage): Promise<void> {
    this.#discovering = true;
    try {
      this.#audience = await discoverAudience(exchange, inner, this.#options);
    } finally {
      this.#discovering = false;
    }
  }

  async #requestToken(scope: Scope | undefined, materialId?: Uint8Array): Promise<Token> {
    const request: Array<readonly [number, unknown]> = [[AceParam.audience, this.#audience!]];
    if (scope !== undefined) request.push([AceParam.scope, scope]);
    if (materialId !== undefined) request.push([AceParam.req_cnf, new Map([[Cnf.kid, materialId]])]);
    const map = await postTokenRequest(this.#options, request);
    try {
      const bytes = requiredBytes(map, AceParam.access_token, 'access_token');
      const expiresIn = optionalInt(map, AceParam.expires_in, 'expires_in');
      const cnf = map.get(AceParam.cnf);
      const material = cnf === undefined ? undefined : parseOscoreInput(asIntMap(cnf, 'cnf').get(Cnf.osc));
      if (material === undefined && materialId === undefined) throw new AceFormatError('the response has no OSCORE_Input_Material');
      const granted = optionalScope(map, AceParam.scope) ?? scope;
      const expiresAt = this.#now() + (expiresIn ?? 3600);
      this.#options.log?.(`token from ${this.#options.asUri} for ${this.#audience} (scope "${granted === undefined ? '' : describeScope(granted)}", expires in ${expiresIn ?? 3600} s)`);
      const token: Token = { bytes, material: material ?? this.#token!.material, expiresAt, scope: granted };
      if (materialId === undefined) this.#token = token;
      return token;
    } catch (e) {
      if (e instanceof AceFormatError) throw new AceClientError(`the AS's response: ${e.message}`);
      throw e;
    }
  }

  async #postToken(token: Token): Promise<Session> {
    const nonce1 = newNonce();
    // §4.1: ID1 unique among our Recipient IDs; this security holds one context, so any will do.
    const clientId = Uint8Array.from(randomBytes(1));
    const response = await this.#options.client.request({
      method: 'POST',
      uri: this.#options.rsOrigin + AUTHZ_INFO,
      payload: encodeAceMap([
        [AceParam.access_token, token.bytes],
        [AceParam.nonce1, nonce1],
        [AceParam.ace_client_recipientid, clientId],
        ...(this.#options.tokenTransferRequest ?? []),
      ]),
      contentFormat: ContentFormat.AceCbor,
      security: PLAIN,
    });
    if (response.code !== ResponseCode.Created) throw new AceClientError(`the RS refused the access token: ${describe(response)}`);
    let nonce2: Uint8Array;
    let serverId: Uint8Array;
    let map: AceMap;
    try {
      map = decodeAceMap(response.payload);
      nonce2 = requiredBytes(map, AceParam.nonce2, 'nonce2');
      serverId = requiredBytes(map, AceParam.ace_server_recipientid, 'ace_server_recipientid');
    } catch (e) {
      throw new AceClientError(`the RS's authz-info response: ${(e as Error).message}`);
    }
    // §4.3: equal IDs (or anything missing) stop the exchange; profileContext refuses them.
    let context: OscoreSecurityContext;
    try {
      context = profileContext('client', { material: token.material, nonce1, nonce2, clientRecipientId: clientId, serverRecipientId: serverId }, `ace ${this.#audience}`);
    } catch (e) {
      throw new AceClientError(`no context with the RS: ${(e as Error).message}`);
    }
    this.#options.log?.(`OSCORE context with ${this.#audience}: Sender ID ${hex(serverId)}, Recipient ID ${hex(clientId)}`);
    return { token, oscore: new OscoreClientSecurity(context), transfer: map };
  }
}

/**
 * RFC 9200 §5.2/§5.3: an unprotected GET of the target (the caller's security sends it plain) for
 * the RS's AS Request Creation Hints; their audience. The hints' AS is only noted: a client asks
 * no AS it was not told to trust.
 */
export async function discoverAudience(exchange: SendRequest, inner: CoapMessage, options: Pick<AceClientOptions, 'asUri' | 'log'>): Promise<string> {
  const probe: CoapMessage = { ...inner, code: Method.GET, payload: EMPTY_BYTES, options: inner.options.filter((o) => o.number === OptionNumber.UriHost || o.number === OptionNumber.UriPort || o.number === OptionNumber.UriPath || o.number === OptionNumber.UriQuery) };
  const response = (await exchange(probe)).message;
  return audienceOfHints(response.code, getUintOption(response, OptionNumber.ContentFormat), response.payload, options);
}

/** The audience an RS's AS Request Creation Hints (RFC 9200 §5.3) name; AceClientError for any other answer. */
function audienceOfHints(code: number, contentFormat: number | undefined, payload: Uint8Array, options: Pick<AceClientOptions, 'asUri' | 'log'>): string {
  if (code !== ResponseCode.Unauthorized || contentFormat !== ContentFormat.AceCbor) {
    throw new AceClientError(`the RS sent no AS Request Creation Hints (${codeToString(code)}): name the audience`);
  }
  const hints = decodeAceMap(payload);
  const as = optionalText(hints, CreationHint.AS, 'AS');
  if (as !== undefined && as !== options.asUri) options.log?.(`the RS names the AS ${as}; asking the configured ${options.asUri}`);
  const audience = optionalText(hints, CreationHint.audience, 'audience');
  if (audience === undefined) throw new AceClientError('the RS\'s AS Request Creation Hints name no audience');
  // The hints' scope is what this one request needs (the probe's: a GET); a token should serve
  // the requests that follow too, so without a configured scope the client asks for what the
  // AS grants it (RFC 9200 §5.3: the scope element is only "suggested").
  return audience;
}

/** POST /token (RFC 9200 §5.8.1) over the client's channel to the AS; the 2.01's ace+cbor map, or AceClientError naming the AS's error. */
export async function postTokenRequest(options: Pick<AceClientOptions, 'client' | 'asUri' | 'asSecurity'>, request: ReadonlyArray<readonly [number, unknown]>): Promise<AceMap> {
  const response = await options.client.request({
    method: 'POST',
    uri: options.asUri,
    payload: encodeAceMap(request),
    contentFormat: ContentFormat.AceCbor,
    ...(options.asSecurity ? { security: options.asSecurity } : {}),
  });
  if (response.code !== ResponseCode.Created) throw new AceClientError(`the AS refused the token request: ${describeAceError(response)}`);
  try {
    return decodeAceMap(response.payload);
  } catch (e) {
    throw new AceClientError(`the AS's response: ${(e as Error).message}`);
  }
}

const ERROR_NAMES = new Map<number, string>(Object.entries(AceErrorCode).map(([name, code]) => [code, name]));

/** An RFC 9200 §5.8.3 error as "4.00 Bad Request: invalid_scope (description)". */
function describeAceError(response: ClientResponse): string {
  if (response.contentFormat !== ContentFormat.AceCbor) return describe(response);
  try {
    const map = decodeAceMap(response.payload);
    const code = optionalInt(map, AceParam.error, 'error');
    const description = optionalText(map, AceParam.error_description, 'error_description');
    return `${response.status}: ${code !== undefined ? (ERROR_NAMES.get(code) ?? `error ${code}`) : 'no error code'}${description ? ` (${description})` : ''}`;
  } catch {
    return describe(response);
  }
}

export function describe(response: ClientResponse): string {
  const text = response.payload.length > 0 && response.contentFormat !== ContentFormat.AceCbor ? `: ${response.text()}` : '';
  return `${response.status}${text}`;
}
