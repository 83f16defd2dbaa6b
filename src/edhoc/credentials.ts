/**
 * Authentication credentials (RFC 9528 §3.5, App. D): what this endpoint presents, and the store
 * that answers "who is this ID_CRED_x, and is it allowed".
 *
 * CRED_x is always a CBOR data item: a CCS is its own map bytes, an X.509 certificate is the bstr
 * of its DER (§3.5.2). Supported ID_CRED kinds: 'kid' (with the compact encoding), 'kccs' (14, a
 * CCS by value), 'x5chain' (33) and 'x5t' (34, RFC 9360). A credential by value is accepted only if
 * the store already holds it, or is a chain to a configured trust anchor; trust on first use is not
 * offered.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import {
  coseHash,
  coseKeyToPublicKey,
  CoseError,
  CoseHash,
  encodeCbor,
  isBytes,
  isInt,
  parseCcs,
  parseCcsValue,
  toHex,
  type CborValue,
  type CwtClaimsSet,
} from '../cose/index.js';
import { unspecified } from './errors.js';
import { idCredKccs, idCredKid, IdCredLabel, idCredX5chain, idCredX5t, type IdCred } from './identifiers.js';

/** This endpoint's credential and private authentication key (signature or static DH key). */
export interface OwnCredential {
  /** CRED_x: the CBOR data item both sides put into the transcript. */
  readonly cred: Uint8Array;
  readonly idCred: IdCred;
  readonly privateKey: KeyObject;
}

/** A CCS credential, referenced by kid (the default when the CCS key has a kid, or one is given) or sent by value. */
export function ccsCredential(ccs: Uint8Array, privateKey: KeyObject, options: { kid?: Uint8Array; byValue?: boolean } = {}): OwnCredential {
  const claims = parseCcs(ccs);
  const kid = options.kid ?? claims.coseKey.kid;
  if (options.byValue === true || kid === undefined) return { cred: claims.encoded, idCred: idCredKccs(claims.encoded), privateKey };
  return { cred: claims.encoded, idCred: idCredKid(kid), privateKey };
}

/**
 * An X.509 credential: the end-entity certificate first, then any intermediates. Referenced by
 * x5t (SHA-256/64, as RFC 9529 §2 does) or sent by x5chain.
 */
export function x509Credential(chain: readonly Uint8Array[], privateKey: KeyObject, reference: 'x5t' | 'x5chain' = 'x5t'): OwnCredential {
  if (chain.length === 0) throw new RangeError('an X.509 credential needs at least the end-entity certificate');
  const der = chain[0]!;
  const idCred = reference === 'x5t' ? idCredX5t(CoseHash.SHA_256_64, coseHash(CoseHash.SHA_256_64).digest(der)) : idCredX5chain(chain);
  return { cred: encodeCbor(der), idCred, privateKey };
}

/** The peer's authenticated credential, handed to the application to authorize on. */
export interface PeerCredential {
  readonly kind: 'ccs' | 'x509';
  /** CRED_x bytes. */
  readonly cred: Uint8Array;
  readonly publicKey: KeyObject;
  /** The CCS 'sub' claim or the certificate subject. */
  readonly subject?: string;
  readonly claims?: CwtClaimsSet;
  /** End-entity first, up to the certificate issued by the trust anchor. */
  readonly certificates?: readonly X509Certificate[];
  /** What the configuration that trusted this credential (its CCS, pinned certificate or issuer) grants it. */
  readonly grant?: PeerGrant;
}

/**
 * Authorization attached to a trusted credential or issuer: a name the application sees and the
 * resources (request URIs) the peer may be part of. The store does not interpret resources.
 */
export interface PeerGrant {
  readonly name: string;
  allows(resource: string): boolean;
}

/**
 * Answers who an ID_CRED_x names. `undefined` means unknown (error 3 is sent); an EdhocError
 * means known but refused (invalid, untrusted or not allowed).
 */
export interface CredentialResolver {
  resolve(idCred: IdCred): PeerCredential | undefined;
}

/** A trust anchor: a CA certificate, or just its name and key (RFC 5280 §6.1.1 (d)). */
export type TrustAnchor = X509Certificate | { readonly subject: string; readonly publicKey: KeyObject };

export interface CredentialStoreOptions {
  readonly trustAnchors?: readonly TrustAnchor[];
  /** The time certificates are checked at, ms since the epoch (default: now at each check). */
  readonly now?: () => number;
  /** Authorization: a peer that authenticates but is not allowed is refused with error 1. */
  readonly allow?: (peer: PeerCredential) => boolean;
}

const MAX_CHAIN = 8;

export class CredentialStore implements CredentialResolver {
  readonly #byKid = new Map<string, CwtClaimsSet>();
  readonly #ccs = new Set<string>();
  readonly #certificatesByHash = new Map<string, Uint8Array>();
  readonly #anchors: TrustAnchor[];
  /** By hex of the CCS or certificate DER, and by trust anchor. */
  readonly #grants = new Map<string, PeerGrant>();
  readonly #anchorGrants = new Map<TrustAnchor, PeerGrant>();
  readonly #now: () => number;
  readonly #allow: (peer: PeerCredential) => boolean;

  constructor(options: CredentialStoreOptions = {}) {
    this.#anchors = [...(options.trustAnchors ?? [])];
    this.#now = options.now ?? Date.now;
    this.#allow = options.allow ?? (() => true);
  }

  /** Trusts a CCS; referenced by `kid` (default: its COSE_Key kid) or by value. kids must be unique here. */
  addCcs(ccs: Uint8Array, kid?: Uint8Array, grant?: PeerGrant): this {
    const claims = parseCcs(ccs);
    this.#ccs.add(toHex(claims.encoded));
    if (grant !== undefined) this.#grants.set(toHex(claims.encoded), grant);
    const k = kid ?? claims.coseKey.kid;
    if (k !== undefined) {
      const key = toHex(k);
      const existing = this.#byKid.get(key);
      if (existing !== undefined && toHex(existing.encoded) !== toHex(claims.encoded)) throw new RangeError(`kid ${key} already names another credential`);
      this.#byKid.set(key, claims);
    }
    return this;
  }

  /** Makes an end-entity certificate findable by x5t; it must still chain to a trust anchor. */
  addCertificate(der: Uint8Array): this {
    this.#certificatesByHash.set(toHex(der), der);
    return this;
  }

  /** Trusts exactly this certificate (found by x5t or sent in x5chain), whoever issued it. */
  pinCertificate(der: Uint8Array, grant?: PeerGrant): this {
    const certificate = new X509Certificate(Buffer.from(der));
    this.addCertificate(der);
    if (grant !== undefined) this.#grants.set(toHex(der), grant);
    return this.addTrustAnchor(certificate);
  }

  /** Trusts every certificate chain this anchor issued; `grant` applies to all of them. */
  addTrustAnchor(anchor: TrustAnchor, grant?: PeerGrant): this {
    this.#anchors.push(anchor);
    if (grant !== undefined) this.#anchorGrants.set(anchor, grant);
    return this;
  }

  resolve(idCred: IdCred): PeerCredential | undefined {
    const peer = this.#find(idCred);
    if (peer !== undefined && !this.#allow(peer)) throw unspecified('credential not authorized');
    return peer;
  }

  /**
   * A resolver for a run that is about `resource` (the request URI it protects): a known peer
   * whose grant does not allow the resource is refused with error 1, as `allow` refusals are.
   */
  forResource(resource: string): CredentialResolver {
    return {
      resolve: (idCred) => {
        const peer = this.resolve(idCred);
        if (peer !== undefined && !CredentialStore.allows(peer, resource)) throw unspecified('credential not authorized for this resource');
        return peer;
      },
    };
  }

  /** Whether an authenticated peer may take part in a request for `resource`; a peer without a grant may not. */
  static allows(peer: PeerCredential, resource: string): boolean {
    return peer.grant !== undefined && peer.grant.allows(resource);
  }

  #find(idCred: IdCred): PeerCredential | undefined {
    const { map } = idCred;
    const kid = map.get(IdCredLabel.kid);
    const kccs = map.get(IdCredLabel.kccs);
    const x5t = map.get(IdCredLabel.x5t);
    const x5chain = map.get(IdCredLabel.x5chain);
    if (kccs !== undefined) return this.#ccsByValue(kccs);
    if (x5chain !== undefined) return this.#x509(parseX5chain(x5chain));
    if (x5t !== undefined) {
      const der = this.#byThumbprint(x5t);
      return der === undefined ? undefined : this.#x509([der]);
    }
    if (kid !== undefined) {
      if (!isBytes(kid)) throw unspecified('kid must be a byte string');
      const claims = this.#byKid.get(toHex(kid));
      return claims === undefined ? undefined : this.#ccsPeer(claims);
    }
    // §6.4: error 3 is for unknown credentials of a supported kind, not for unsupported kinds.
    throw unspecified('unsupported ID_CRED type');
  }

  #ccsByValue(value: CborValue): PeerCredential | undefined {
    let claims: CwtClaimsSet;
    try {
      claims = parseCcsValue(value);
    } catch (e) {
      if (e instanceof CoseError) throw unspecified(`invalid CCS: ${e.message}`);
      throw e;
    }
    return this.#ccs.has(toHex(claims.encoded)) ? this.#ccsPeer(claims) : undefined;
  }

  #byThumbprint(x5t: CborValue): Uint8Array | undefined {
    if (!Array.isArray(x5t) || x5t.length !== 2 || !isInt(x5t[0]) || !isBytes(x5t[1])) throw unspecified('x5t must be [alg, hash]');
    const [alg, hash] = x5t as [number, Uint8Array];
    let digest: (d: Uint8Array) => Uint8Array;
    try {
      digest = coseHash(alg).digest;
    } catch {
      throw unspecified(`unsupported x5t hash algorithm ${alg}`);
    }
    const wanted = toHex(hash);
    for (const der of this.#certificatesByHash.values()) if (toHex(digest(der)) === wanted) return der;
    return undefined;
  }

  #x509(chainDer: readonly Uint8Array[]): PeerCredential {
    let certs: X509Certificate[];
    try {
      certs = chainDer.map((d) => new X509Certificate(Buffer.from(d)));
    } catch {
      throw unspecified('invalid X.509 certificate');
    }
    const anchor = this.#validateChain(certs);
    const leaf = certs[0]!;
    const grant = this.#grants.get(toHex(chainDer[0]!)) ?? this.#anchorGrants.get(anchor);
    return { kind: 'x509', cred: encodeCbor(chainDer[0]!), publicKey: leaf.publicKey, subject: leaf.subject, certificates: certs, ...(grant !== undefined ? { grant } : {}) };
  }

  #ccsPeer(claims: CwtClaimsSet): PeerCredential {
    const peer = ccsPeer(claims);
    const grant = this.#grants.get(toHex(claims.encoded));
    return grant === undefined ? peer : { ...peer, grant };
  }

  /**
   * Each certificate valid now and issued (name and signature) by the next; intermediates must be
   * CAs; the last issued by a trust anchor (itself valid now) or byte-equal to one. Returns the anchor.
   */
  #validateChain(certs: readonly X509Certificate[]): TrustAnchor {
    const now = this.#now();
    const validNow = (c: X509Certificate): boolean => now >= Date.parse(c.validFrom) && now <= Date.parse(c.validTo);
    for (const [i, cert] of certs.entries()) {
      if (!validNow(cert)) throw unspecified('certificate not valid at this time');
      const issuer = certs[i + 1];
      if (issuer !== undefined && !(issuer.ca && issuedBy(cert, issuer))) throw unspecified('certificate chain does not verify');
    }
    const last = certs[certs.length - 1]!;
    // A pinned certificate (byte-equal) is preferred over an issuer, so its own grant applies.
    const anchor =
      this.#anchors.find((a) => a instanceof X509Certificate && a.raw.equals(last.raw)) ??
      this.#anchors.find((a) =>
        a instanceof X509Certificate ? a.ca && validNow(a) && issuedBy(last, a) : last.issuer === a.subject && verifiesWith(last, a.publicKey),
      );
    if (anchor === undefined) throw unspecified('certificate chain does not end at a trust anchor');
    return anchor;
  }
}

/** Node's verify() throws for a key of another type; here that is simply "not signed by". */
function verifiesWith(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.verify(key);
  } catch {
    return false;
  }
}

const issuedBy = (cert: X509Certificate, issuer: X509Certificate): boolean => cert.checkIssued(issuer) && verifiesWith(cert, issuer.publicKey);

function parseX5chain(value: CborValue): Uint8Array[] {
  if (isBytes(value)) return [value];
  if (Array.isArray(value) && value.length >= 2 && value.length <= MAX_CHAIN && value.every(isBytes)) return value as Uint8Array[];
  throw unspecified('x5chain must be a certificate or an array of 2 to 8 certificates');
}

function ccsPeer(claims: CwtClaimsSet): PeerCredential {
  let publicKey: KeyObject;
  try {
    publicKey = coseKeyToPublicKey(claims.coseKey);
  } catch (e) {
    if (e instanceof CoseError) throw unspecified(`invalid key in CCS: ${e.message}`);
    throw e;
  }
  return { kind: 'ccs', cred: claims.encoded, publicKey, claims, ...(claims.sub !== undefined ? { subject: claims.sub } : {}) };
}
