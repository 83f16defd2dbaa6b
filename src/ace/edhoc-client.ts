/**
 * The client side of the EDHOC and OSCORE profile (draft-ietf-ace-edhoc-oscore-profile) as a
 * MessageSecurity for one resource server. Before its first request it asks the AS for a token
 * bound to its EDHOC credential (§3.1: req_cnf with the CCS, kccs), learns the RS's credential
 * from rs_cnf (§3.3.2: the RS is then trusted for this EDHOC run, and only for it) and the token
 * series from edhoc_info, then runs EDHOC as Initiator with the RS (the forward flow, §4.3) with
 * the token in EAD_3 (§4.1, the critical ACE-OAuth Access Token item) and message_3 in the first
 * OSCORE request where RFC 9668 allows it. The OSCORE context is EDHOC's (RFC 9528 App. A.1). It
 * does so again:
 *  - when the token has expired by the client's clock (§4.7: "C MUST discard the current OSCORE
 *    Security Context ... [when] the access token ... becomes invalid"): a new token, a new session;
 *  - when the RS answers an unprotected 4.01 (it dropped the context or the token):
 *    EdhocClientSecurity runs EDHOC again with the same token; if the RS refuses that token with
 *    an EDHOC error (expired by its clock, forgotten), a new token, once.
 * Without an audience, the RS's AS Request Creation Hints name it (client.ts, discoverAudience).
 *
 * `updateAccess` asks for new rights in the same token series (§3.1: edhoc_info with session_id,
 * no req_cnf) and posts the token to /authz-info over the context (§4.6.1): no new EDHOC run.
 */
import { ContentFormat } from '../coap/content-format.js';
import { ResponseCode } from '../coap/codes.js';
import type { CoapMessage } from '../coap/message.js';
import type { CoapClient } from '../client/client.js';
import type { SendRequest } from '../client/blockwise.js';
import { PLAIN, type MessageSecurity, type ProtectedRequest } from '../client/security.js';
import { decodeStrict, encodeCbor, parseCcs } from '../cose/index.js';
import { ccsCredential, CredentialStore, type OwnCredential } from '../edhoc/credentials.js';
import type { EadItem } from '../edhoc/ead.js';
import type { EdhocMethod } from '../edhoc/state.js';
import { EdhocClientSecurity, EdhocRequestError } from '../edhoc-coap/client-security.js';
import { postOverClient } from '../edhoc-coap/handshake.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { bytesToHex as hex } from '../util/bytes.js';
import { ACCESS_TOKEN_EAD_LABEL, AceFormatError, AceParam, AceProfile, asIntMap, Cnf, optionalInt, optionalScope, requiredBytes, type AceMap, type Scope } from './ace-cbor.js';
import { describeScope } from './scope-format.js';
import { AceClientError, describe, discoverAudience, postTokenRequest, type AceClientOptions } from './client.js';
import { encodeEdhocInfo, parseEdhocInfo } from './token.js';

/** This client's EDHOC identity: a CCS credential (AUTH_CRED_C) and its key, the method and suites to propose. */
export interface AceEdhocIdentity {
  readonly credential: OwnCredential;
  readonly method: EdhocMethod;
  readonly suites: readonly number[];
}

export interface AceEdhocClientOptions extends Omit<AceClientOptions, 'client'> {
  /** Carries the token request, the EDHOC messages and the token posts. */
  readonly client: CoapClient;
  readonly identity: AceEdhocIdentity;
  /** Send message_3 with the first OSCORE request (RFC 9668). Default true. */
  readonly combined?: boolean;
}

interface EdhocToken {
  readonly bytes: Uint8Array;
  readonly expiresAt: number;
  readonly scope: Scope | undefined;
}

/** A token series (§3.2) as the client keeps it: its session_id and the RS's credential from the series' first response. */
interface Series {
  readonly sessionId: Uint8Array;
  readonly rsCredential: Uint8Array;
}

interface Session {
  readonly token: EdhocToken;
  readonly edhoc: EdhocClientSecurity;
}

const AUTHZ_INFO = '/authz-info';

export class AceEdhocClientSecurity implements MessageSecurity {
  readonly #options: AceEdhocClientOptions;
  readonly #now: () => number;
  readonly #ownCcs: Uint8Array;
  #audience: string | undefined;
  #scope: Scope | undefined;
  #series: Series | undefined;
  #session: Session | undefined;
  #establishing: Promise<Session> | undefined;
  #discovering = false;

  constructor(options: AceEdhocClientOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000));
    this.#audience = options.audience;
    this.#scope = options.scope;
    try {
      this.#ownCcs = parseCcs(options.identity.credential.cred).encoded;
    } catch {
      throw new TypeError('the EDHOC and OSCORE profile needs a CCS credential (an X.509 one cannot go in req_cnf as kccs)');
    }
  }

  /** The OSCORE context EDHOC made with the RS, once established. */
  get context(): OscoreSecurityContext | undefined {
    return this.#session?.edhoc.context;
  }

  /** The scope of the current token as the AS granted it (undefined: as requested). */
  get grantedScope(): Scope | undefined {
    return this.#session?.token.scope;
  }

  /** EDHOC sessions run with the RS so far, over all tokens. */
  get handshakes(): number {
    return this.#handshakes + (this.#session?.edhoc.handshakes ?? 0);
  }
  #handshakes = 0;

  protect(request: CoapMessage): ProtectedRequest {
    if (this.#discovering || this.#session === undefined) return PLAIN.protect(request);
    return this.#session.edhoc.protect(request);
  }

  around(exchange: SendRequest): SendRequest {
    return async (inner) => {
      let session = await this.#ready(exchange, inner);
      try {
        return await session.edhoc.around(exchange)(inner);
      } catch (error) {
        // An EDHOC error from the RS (the first run, or the rerun after an unprotected 4.01): it no
        // longer takes this token. A new one, once; a fresh token refused is the answer.
        if (!(error instanceof EdhocRequestError) || error.peerError === undefined || session.token.expiresAt <= this.#now()) throw error;
        this.#options.log?.(`the RS refused EDHOC with this token (${error.peerError.message}): a new token`);
        this.#retire(session);
        session = await this.#ready(exchange, inner);
        return session.edhoc.around(exchange)(inner);
      }
    };
  }

  /** §3.1/§4.6: a new token for `scope` in the same series, posted to /authz-info over the context; the context stays. */
  async updateAccess(scope: Scope): Promise<void> {
    const session = this.#session;
    const series = this.#series;
    if (session === undefined || series === undefined || session.edhoc.context === undefined) throw new AceClientError('no context with the RS yet: send a request first');
    const token = await this.#requestToken(scope, series);
    const response = await this.#options.client.request({
      method: 'POST',
      uri: this.#options.rsOrigin + AUTHZ_INFO,
      payload: token.bytes,
      contentFormat: ContentFormat.Cwt, // §4.6.1: "the Content-Format of the POST request MUST be application/cwt"
      security: session.edhoc,
    });
    if (response.code !== ResponseCode.Created) throw new AceClientError(`the RS refused the update of access rights: ${describe(response)}`);
    this.#scope = scope;
    this.#session = { token, edhoc: session.edhoc };
  }

  async #ready(exchange: SendRequest, inner: CoapMessage): Promise<Session> {
    const current = this.#session;
    if (current !== undefined && current.token.expiresAt > this.#now()) return current;
    if (current !== undefined) {
      this.#options.log?.('the access token has expired: a new one, and a new EDHOC session');
      this.#retire(current);
    }
    this.#establishing ??= this.#establish(exchange, inner).finally(() => (this.#establishing = undefined));
    return this.#establishing;
  }

  async #establish(exchange: SendRequest, inner: CoapMessage): Promise<Session> {
    if (this.#audience === undefined) {
      this.#discovering = true;
      try {
        this.#audience = await discoverAudience(exchange, inner, this.#options);
      } finally {
        this.#discovering = false;
      }
    }
    const token = await this.#requestToken(this.#scope);
    const series = this.#series!;
    const own = this.#options.identity;
    // AUTH_CRED_C by value: the RS may not hold it yet (the token in EAD_3 is what binds it, §4.2).
    const credential = ccsCredential(this.#ownCcs, own.credential.privateKey, { byValue: true });
    const edhoc: EdhocClientSecurity = new EdhocClientSecurity({
      initiator: { method: own.method, suites: own.suites, credential, peers: new CredentialStore().addCcs(series.rsCredential) },
      post: postOverClient(this.#options.client, this.#options.rsOrigin),
      combined: this.#options.combined ?? true,
      // The session's current token: after an update of access rights, a rerun of EDHOC (the RS
      // lost the context) presents the latest token of the series, not the first.
      ead3: (): EadItem[] => {
        const current = this.#session;
        return [{ label: -ACCESS_TOKEN_EAD_LABEL, value: (current !== undefined && current.edhoc === edhoc ? current.token : token).bytes }];
      },
    });
    const session = { token, edhoc };
    this.#session = session;
    return session;
  }

  #retire(session: Session): void {
    this.#handshakes += session.edhoc.handshakes;
    if (this.#session === session) this.#session = undefined;
  }

  /**
   * A token: the first of a new series (req_cnf with our CCS; the response's edhoc_info and
   * rs_cnf start the series), or with `series` the next of that one (§3.1: edhoc_info, no req_cnf).
   */
  async #requestToken(scope: Scope | undefined, series?: Series): Promise<EdhocToken> {
    const request: Array<readonly [number, unknown]> = [[AceParam.audience, this.#audience!]];
    if (scope !== undefined) request.push([AceParam.scope, scope]);
    request.push(series !== undefined ? [AceParam.edhoc_info, encodeEdhocInfo({ sessionId: series.sessionId })] : [AceParam.req_cnf, new Map([[Cnf.kccs, decodeStrict(this.#ownCcs)]])]);
    const map = await postTokenRequest(this.#options, request);
    try {
      const bytes = requiredBytes(map, AceParam.access_token, 'access_token');
      const profile = map.get(AceParam.ace_profile);
      if (profile !== undefined && profile !== AceProfile.coap_edhoc_oscore) throw new AceFormatError(`the AS issued a token of another profile (${String(profile)})`);
      if (series === undefined) this.#series = this.#newSeries(map);
      const expiresIn = optionalInt(map, AceParam.expires_in, 'expires_in') ?? 3600;
      const granted = optionalScope(map, AceParam.scope) ?? scope;
      this.#options.log?.(`token from ${this.#options.asUri} for ${this.#audience} (scope "${granted === undefined ? '' : describeScope(granted)}", series ${hex(this.#series!.sessionId)}, expires in ${expiresIn} s)`);
      return { bytes, expiresAt: this.#now() + expiresIn, scope: granted };
    } catch (e) {
      if (e instanceof AceFormatError) throw new AceClientError(`the AS's response: ${e.message}`);
      throw e;
    }
  }

  /** §3.3: "When issuing the first access token of a token series, AS MUST include" edhoc_info and rs_cnf. */
  #newSeries(map: AceMap): Series {
    const { sessionId } = parseEdhocInfo(map.get(AceParam.edhoc_info), 'edhoc_info');
    const rsCnf = asIntMap(map.get(AceParam.rs_cnf), 'rs_cnf');
    const kccs = rsCnf.get(Cnf.kccs);
    if (kccs === undefined) throw new AceFormatError('rs_cnf carries no CCS (kccs): the RS\'s credential is needed by value');
    // §3.3.2: C "validates the actual AUTH_CRED_RS"; a CCS is valid when it holds a usable COSE_Key.
    let rsCredential: Uint8Array;
    try {
      rsCredential = parseCcs(encodeCbor(kccs)).encoded;
      new CredentialStore().addCcs(rsCredential);
    } catch (e) {
      throw new AceFormatError(`rs_cnf: ${(e as Error).message}`);
    }
    return { sessionId, rsCredential };
  }
}
