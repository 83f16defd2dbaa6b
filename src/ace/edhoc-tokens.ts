/**
 * The resource server side of the EDHOC and OSCORE profile (draft-ietf-ace-edhoc-oscore-profile
 * §4): the access tokens of EDHOC token series and the EDHOC sessions bound to them. The RS runs
 * EDHOC as Responder (the forward message flow, §4.3; the reverse flow of §4.4 is not offered):
 *
 *  - the Initiator's credential comes from a token, never from a list of trusted peers. A CCS by
 *    value (ID_CRED_I = kccs) is taken tentatively to verify Signature_or_MAC_3 — the proof of
 *    possession — and `authorize` then demands a valid token that names exactly that credential
 *    (§4.2: "RS MUST verify that the authentication credential AUTH_CRED_C ... is the same one that
 *    is bound to the access token"); a CCS by reference (kid) is found among tokens posted to
 *    /authz-info beforehand (RFC 9200 §5.10.1);
 *  - the token travels in EAD_3 (§4.1, §4.3.3: exactly one ACE-OAuth Access Token item) or, posted
 *    to /authz-info before EDHOC, is found by the credential. No valid token: the session ends with
 *    EDHOC error 1 (§4.3.3) and no context is made;
 *  - the context EDHOC derives (RFC 9528 App. A.1, §4.5) is bound to the token; a new EDHOC
 *    session of the same series (session_id, AUTH_CRED_C) replaces the context of the last one
 *    (§4.2: "Any previous EDHOC session associated with the same access token and with the same
 *    pair (SESSION_ID, AUTH_CRED_C) MUST be deleted");
 *  - an update of access rights (§4.6) is a token of the same series posted to /authz-info over
 *    that context; the context stays;
 *  - an expired token takes its context with it (§4.10).
 *
 * Bounded: at most `maxTokens` series, the least recently used dropped first with its context.
 */
import { encodeCbor, parseCcs } from '../cose/index.js';
import { CredentialStore, type CredentialResolver, type PeerCredential } from '../edhoc/credentials.js';
import type { EadItem } from '../edhoc/ead.js';
import { EdhocError } from '../edhoc/errors.js';
import { IdCredLabel } from '../edhoc/identifiers.js';
import type { EdhocSession } from '../edhoc/session.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { ResponseCode } from '../coap/codes.js';
import { bytesToHex as hex } from '../util/bytes.js';
import { ACCESS_TOKEN_EAD_LABEL } from './ace-cbor.js';
import type { ScopeFormat } from './scope-format.js';
import { TokenError, type AccessTokenClaims } from './token.js';

/** One token series as the RS keeps it: the latest token and the context of the latest EDHOC session. */
export interface SeriesToken {
  readonly key: string;
  /** AUTH_CRED_C, the CCS as CRED_I carries it. */
  readonly credential: Uint8Array;
  claims: AccessTokenClaims;
  scope: string[];
  context: OscoreSecurityContext | undefined;
}

export interface EdhocTokensOptions {
  /** Opens and checks a token (key, iss, exp, aud, scope) or throws TokenError. */
  readonly validToken: (token: Uint8Array) => AccessTokenClaims;
  /** Whether a stored token has expired by the RS's clock. */
  readonly expired: (claims: AccessTokenClaims) => boolean;
  readonly maxTokens: number;
  /** How tokens write their scope (the RS's scope-format.ts entry). */
  readonly scopeFormat: ScopeFormat;
  /** Forgets a context this table no longer binds (EdhocServer.dropContext). */
  readonly dropContext: (context: OscoreSecurityContext) => void;
  readonly log?: (line: string) => void;
}

/** AUTH_CRED_C in one form whatever way it was written: the CCS's deterministic encoding. */
const canonicalCcs = (ccs: Uint8Array): string => hex(parseCcs(ccs).encoded);

export class EdhocTokens {
  readonly #options: EdhocTokensOptions;
  readonly #series = new Map<string, SeriesToken>();
  readonly #byRecipient = new Map<string, SeriesToken>();
  /** From `authorize` to `established`: the token each just-verified credential presented. */
  readonly #authorized = new WeakMap<PeerCredential, AccessTokenClaims>();

  constructor(options: EdhocTokensOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#series.size;
  }

  /** ID_CRED_I → CRED_I for the EDHOC Responder: any CCS by value (tentatively, see the module comment), or one a stored token names by its kid. */
  readonly resolver: CredentialResolver = {
    resolve: (idCred) => {
      const store = new CredentialStore();
      const byValue = idCred.map.get(IdCredLabel.kccs);
      if (byValue !== undefined) store.addCcs(encodeCbor(byValue));
      for (const series of this.#series.values()) {
        try {
          store.addCcs(series.credential);
        } catch {
          // Two stored credentials with one kid: neither is found by that kid (the client sends its CCS by value).
        }
      }
      return store.resolve(idCred);
    },
  };

  /**
   * EdhocServerOptions.authorize: message_3 verified with `peer`; its access token is the one in
   * EAD_3, or else one posted before for this credential. Anything else is EDHOC error 1.
   */
  authorize(peer: PeerCredential, ead3: readonly EadItem[]): void {
    const items = ead3.filter((item) => Math.abs(item.label) === ACCESS_TOKEN_EAD_LABEL);
    // §4.3.3: "If zero or more than one EAD items specifying the access token are included ... RS MUST abort".
    if (items.length > 1) throw refused('more than one access token in EAD_3');
    const credential = canonicalCcs(peer.cred);
    let claims: AccessTokenClaims;
    if (items.length === 1) {
      const value = items[0]!.value;
      if (value === undefined) throw refused('the access token EAD item has no value');
      try {
        claims = this.#options.validToken(value);
      } catch (e) {
        if (e instanceof TokenError) throw refused(`access token refused: ${e.message}`);
        throw e;
      }
      const named = tokenCredential(claims);
      if (named === undefined) throw refused('the access token is not of the EDHOC and OSCORE profile');
      if (named !== credential) throw refused('the access token is bound to another credential than the one EDHOC authenticated');
    } else {
      const stored = this.#storedFor(credential);
      if (stored === undefined) throw refused('no valid access token for this credential');
      claims = stored.claims;
    }
    this.#authorized.set(peer, claims);
  }

  /** The most recently stored valid token for AUTH_CRED_C; expired ones met on the way are dropped (§4.10). */
  #storedFor(credential: string): SeriesToken | undefined {
    let found: SeriesToken | undefined;
    for (const series of [...this.#series.values()]) {
      if (canonicalCcs(series.credential) !== credential) continue;
      if (this.#options.expired(series.claims)) this.forget(series, 'expired');
      else found = series;
    }
    return found;
  }

  /** EdhocServerOptions.onEstablished: binds the new context to its token (§4.5). */
  established(session: EdhocSession, context: OscoreSecurityContext): void {
    const claims = this.#authorized.get(session.peer);
    if (claims === undefined) return; // authorize refused it: EdhocServer made no context
    this.#authorized.delete(session.peer);
    const series = this.#store(claims, session.peer.cred);
    if (series.context !== undefined) this.#unbind(series, 'replaced by a new EDHOC session of its series');
    series.context = context;
    this.#byRecipient.set(hex(context.primaryRecipient.params.recipientId), series);
    this.#options.log?.(`EDHOC token for ${claims.aud} accepted (scope "${series.scope.join(' ')}"): context ${context.name}, Recipient ID ${hex(context.primaryRecipient.params.recipientId)}`);
  }

  /** RFC 9200 §5.10.1: a token posted to /authz-info without protection, waiting for its EDHOC session. */
  upload(claims: AccessTokenClaims): void {
    const credential = tokenCredential(claims);
    if (credential === undefined) throw new TokenError(ResponseCode.BadRequest, 'the token is not of the EDHOC and OSCORE profile');
    const series = this.#store(claims, Buffer.from(credential, 'hex'));
    this.#options.log?.(`EDHOC token for ${claims.aud} stored (scope "${series.scope.join(' ')}"), waiting for its EDHOC session`);
  }

  /**
   * §4.6.1: a new token posted over `context`. Accepted when it is of the context's series (same
   * session_id, same AUTH_CRED_C); it then replaces the old one's rights, and the context stays.
   */
  update(series: SeriesToken, claims: AccessTokenClaims): void {
    if (tokenCredential(claims) !== canonicalCcs(series.credential) || seriesKey(claims, series.credential) !== series.key) {
      throw new TokenError(ResponseCode.Unauthorized, 'the new token is not of this context\'s token series');
    }
    series.claims = claims;
    series.scope = this.#options.scopeFormat.tokens(claims.scope);
    this.#options.log?.(`access rights of ${series.context?.name ?? series.key} updated: scope "${series.scope.join(' ')}"`);
  }

  /** The series whose context has this Recipient ID (the request's kid). */
  byRecipient(kid: string): SeriesToken | undefined {
    return this.#byRecipient.get(kid);
  }

  /** §4.10: the token is gone, and its context with it. */
  forget(series: SeriesToken, why: string): void {
    if (series.context !== undefined) this.#unbind(series, why);
    this.#series.delete(series.key);
    this.#options.log?.(`EDHOC token ${series.key} dropped: ${why}`);
  }

  #store(claims: AccessTokenClaims, credential: Uint8Array): SeriesToken {
    const key = seriesKey(claims, credential);
    let series = this.#series.get(key);
    if (series === undefined) {
      while (this.#series.size >= this.#options.maxTokens) this.forget(this.#series.values().next().value!, 'evicted: token storage full');
      series = { key, credential, claims, scope: this.#options.scopeFormat.tokens(claims.scope), context: undefined };
    } else {
      this.#series.delete(key); // re-inserted below: the most recently used goes last
      series.claims = claims;
      series.scope = this.#options.scopeFormat.tokens(claims.scope);
    }
    this.#series.set(key, series);
    return series;
  }

  #unbind(series: SeriesToken, why: string): void {
    const context = series.context!;
    this.#byRecipient.delete(hex(context.primaryRecipient.params.recipientId));
    this.#options.dropContext(context);
    series.context = undefined;
    this.#options.log?.(`context ${context.name} dropped: ${why}`);
  }
}

const refused = (why: string): EdhocError => new EdhocError(1, why);

/** The hex of the token's AUTH_CRED_C (cnf.kccs), undefined for a token of another profile. */
function tokenCredential(claims: AccessTokenClaims): string | undefined {
  if (!('kccs' in claims.cnf) || claims.edhocInfo === undefined) return undefined;
  return canonicalCcs(claims.cnf.kccs);
}

/** §4.2, §4.6.2: a series is (SESSION_ID, AUTH_CRED_C). */
function seriesKey(claims: AccessTokenClaims, credential: Uint8Array): string {
  return `${hex(claims.edhocInfo?.sessionId ?? new Uint8Array(0))}:${canonicalCcs(credential)}`;
}
