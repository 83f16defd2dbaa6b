/**
 * The `edhoc` section of a credentials file (docs/credentials.md): this endpoint's key and
 * credential (RFC 9528 §3.5: a CCS, RFC 8392, or an X.509 certificate), the ID_CRED_x form it sends,
 * its cipher suites and method preference, and the trusted peers — by CCS, by pinned certificate or
 * by issuer — each with the resources (request URIs) it may take part in. Loaded into the EDHOC
 * core's own objects (OwnCredential, CredentialStore with a PeerGrant per entry). Errors name the
 * entry and field; key material is never quoted.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { coseKeyFromKeyObject, coseKeyToPublicKey, parseCcs, toHex, type CwtClaimsSet } from '../cose/index.js';
import { ownKeyFits } from '../edhoc/auth.js';
import {
  ccsCredential,
  CredentialStore,
  findCipherSuite,
  SUPPORTED_SUITES,
  x509Credential,
  type InitiatorConfig,
  type OwnCredential,
  type PeerGrant,
  type ResponderConfig,
} from '../edhoc/index.js';
import { initiatorUsesStaticDh, isMethod, responderUsesStaticDh, type EdhocMethod } from '../edhoc/state.js';
import type { JsonFields } from './json-fields.js';
import { parseResourcePattern, uriMatchesPattern, type UriPattern } from './uri-pattern.js';

export type IdCredForm = 'kid' | 'kccs' | 'x5t' | 'x5chain';

/** A trusted peer entry as configured (what `coapsec` shows; the store holds the credential). */
export interface EdhocPeerEntry {
  readonly name: string;
  readonly trustedBy: 'ccs' | 'certificate' | 'issuer';
  /** The resource patterns as written. */
  readonly resources: readonly string[];
  /** The same patterns as the CredentialStore's grant for this peer. */
  readonly grant: PeerGrant;
}

export interface EdhocCredentials {
  readonly own: OwnCredential;
  /** Most preferred first. */
  readonly suites: readonly number[];
  /** Most preferred first; an Initiator proposes the first its key fits, a Responder accepts all. */
  readonly methods: readonly EdhocMethod[];
  readonly peers: CredentialStore;
  readonly peerEntries: readonly EdhocPeerEntry[];
  /** `edhoc.maxContexts`: EDHOC-made contexts a server keeps (the oldest dropped first); the library's default when absent. */
  readonly maxContexts?: number;
  /** `edhoc.activeContexts`: how many of them are kept materialised; the rest wait as bytes. */
  readonly activeContexts?: number;
}

const SECTION_FIELDS = ['$comment', 'identity', 'suites', 'methods', 'peers', 'maxContexts', 'activeContexts'];
const IDENTITY_FIELDS = ['$comment', 'privateKey', 'ccs', 'certificate', 'chain', 'idCred', 'kid'];
const PEER_FIELDS = ['$comment', 'name', 'ccs', 'kid', 'certificate', 'issuer', 'resources'];
/** The largest `edhoc.maxContexts` / `activeContexts` a file may ask for (100k contexts take ≈ 29 MiB as bytes). */
const MAX_CONTEXTS_BOUND = 10_000_000;
const ID_CRED_FORMS: readonly IdCredForm[] = ['kid', 'kccs', 'x5t', 'x5chain'];

/**
 * The trusted peers whose resources match `uri`: a client runs EDHOC for a request when one does
 * (the server must then be one of them, edhocInitiatorConfig), and refuses to send it unprotected.
 */
export function edhocPeersFor(edhoc: EdhocCredentials, uri: string): EdhocPeerEntry[] {
  return edhoc.peerEntries.filter((entry) => entry.grant.allows(uri));
}

/** The Initiator's configuration for a request to `uri`: only peers granted that resource are accepted. */
export function edhocInitiatorConfig(edhoc: EdhocCredentials, uri: string): InitiatorConfig {
  const key = edhoc.own.privateKey;
  const method = edhoc.methods.find((m) => edhoc.suites.some((s) => ownKeyFits(findCipherSuite(s)!, initiatorUsesStaticDh(m), key)));
  if (method === undefined) throw new RangeError('no configured method lets this key act as EDHOC Initiator');
  const suites = edhoc.suites.filter((s) => ownKeyFits(findCipherSuite(s)!, initiatorUsesStaticDh(method), key));
  return { method, suites, credential: edhoc.own, peers: edhoc.peers.forResource(uri) };
}

/**
 * The Responder's configuration: the methods in which its key can take the Responder's part. The
 * resource is checked per request with CredentialStore.allows.
 */
export function edhocResponderConfig(edhoc: EdhocCredentials): ResponderConfig {
  const key = edhoc.own.privateKey;
  const methods = edhoc.methods.filter((m) => edhoc.suites.some((s) => ownKeyFits(findCipherSuite(s)!, responderUsesStaticDh(m), key)));
  if (methods.length === 0) throw new RangeError('no configured method lets this key act as EDHOC Responder');
  return { suites: edhoc.suites, methods, credentials: [edhoc.own], peers: edhoc.peers };
}

/** Reads the `edhoc` section; `directory` anchors relative file names. */
export function readEdhocSection(fields: JsonFields, json: unknown, directory: string): EdhocCredentials {
  return new EdhocSectionReader(fields, directory).section(json);
}

class EdhocSectionReader {
  constructor(
    private readonly fields: JsonFields,
    private readonly directory: string,
  ) {}

  section(json: unknown): EdhocCredentials {
    const f = this.fields;
    const top = f.object(json, 'edhoc', SECTION_FIELDS);
    if (top.identity === undefined) f.fail('edhoc.identity', 'is missing (this endpoint\'s private key and its CCS or certificate)');
    const { own, key } = this.identity(top.identity);
    const methods = top.methods === undefined ? defaultMethods(key) : this.methods(top.methods);
    const suites = top.suites === undefined ? SUPPORTED_SUITES.filter((s) => fitsSomeRole(s, methods, key)) : this.suites(top.suites, methods, key);
    if (suites.length === 0) f.fail('edhoc.suites', `no supported cipher suite fits the ${describeKey(key)} key`);
    for (const [i, method] of methods.entries()) {
      if (!suites.some((s) => fitsSomeRole(s, [method], key))) {
        f.fail(top.methods === undefined ? 'edhoc.methods' : `edhoc.methods[${i}]`, `method ${method} cannot use the ${describeKey(key)} key in either role with suites ${suites.join(', ')}`);
      }
    }
    const peers = new CredentialStore();
    const peerEntries = top.peers === undefined ? [] : f.array(top.peers, 'edhoc.peers').map((p, i) => this.peer(p, `edhoc.peers[${i}]`, peers));
    const names = new Map<string, number>();
    peerEntries.forEach((entry, i) => {
      const earlier = names.get(entry.name);
      if (earlier !== undefined) f.fail(`edhoc.peers[${i}].name`, `the same name as edhoc.peers[${earlier}]`);
      names.set(entry.name, i);
    });
    const maxContexts = top.maxContexts === undefined ? undefined : this.count(top.maxContexts, 'edhoc.maxContexts');
    const activeContexts = top.activeContexts === undefined ? undefined : this.count(top.activeContexts, 'edhoc.activeContexts');
    return { own, suites, methods, peers, peerEntries, ...(maxContexts !== undefined ? { maxContexts } : {}), ...(activeContexts !== undefined ? { activeContexts } : {}) };
  }

  /** A bound on what peers make us keep: a positive integer, so no file silently means "none" or "unbounded". */
  private count(json: unknown, path: string): number {
    const n = this.fields.integer(json, path);
    return n >= 1 && n <= MAX_CONTEXTS_BOUND ? n : this.fields.fail(path, `expected 1 to ${MAX_CONTEXTS_BOUND}, not ${n}`);
  }

  private identity(json: unknown): { own: OwnCredential; key: KeyObject } {
    const f = this.fields;
    const path = 'edhoc.identity';
    const id = f.object(json, path, IDENTITY_FIELDS);
    if (id.privateKey === undefined) f.fail(`${path}.privateKey`, 'is missing (a PKCS#8 PEM or DER private key file)');
    const key = this.privateKey(id.privateKey, `${path}.privateKey`);
    if ((id.ccs === undefined) === (id.certificate === undefined)) f.fail(path, 'give exactly one of "ccs" and "certificate"');
    const form = id.idCred === undefined ? undefined : this.idCredForm(id.idCred, `${path}.idCred`);
    if (id.ccs !== undefined) {
      if (id.chain !== undefined) f.fail(`${path}.chain`, 'only with "certificate"');
      const claims = this.ccs(id.ccs, `${path}.ccs`);
      if (!samePublicKey(claims, key)) f.fail(`${path}.ccs`, `does not hold the public key of ${path}.privateKey`);
      const kid = id.kid === undefined ? undefined : f.bytes(id.kid, `${path}.kid`);
      if (form === 'x5t' || form === 'x5chain') f.fail(`${path}.idCred`, `"${form}" names a certificate; a CCS is sent as "kid" or "kccs"`);
      if (form === 'kid' && kid === undefined && claims.coseKey.kid === undefined) f.fail(`${path}.kid`, 'is missing: "idCred": "kid" needs a kid, and the CCS\'s COSE_Key has none');
      const byValue = form === 'kccs';
      return { own: ccsCredential(claims.encoded, key, { ...(kid !== undefined ? { kid } : {}), byValue }), key };
    }
    if (id.kid !== undefined) f.fail(`${path}.kid`, 'only with "ccs" (a certificate is referenced by x5t or sent by x5chain)');
    if (form === 'kid' || form === 'kccs') return f.fail(`${path}.idCred`, `"${form}" names a CCS; a certificate is sent as "x5t" or "x5chain"`);
    const leaf = this.certificate(id.certificate, `${path}.certificate`);
    if (!leaf.checkPrivateKey(key)) f.fail(`${path}.certificate`, `does not hold the public key of ${path}.privateKey`);
    const chain = id.chain === undefined ? [] : f.array(id.chain, `${path}.chain`).map((c, i) => this.certificate(c, `${path}.chain[${i}]`));
    return { own: x509Credential([leaf, ...chain].map((c) => new Uint8Array(c.raw)), key, form ?? 'x5t'), key };
  }

  private peer(json: unknown, path: string, store: CredentialStore): EdhocPeerEntry {
    const f = this.fields;
    const entry = f.object(json, path, PEER_FIELDS);
    if (entry.name === undefined) f.fail(`${path}.name`, 'is missing (the name authorization and logs use)');
    const name = f.string(entry.name, `${path}.name`);
    if (name === '') f.fail(`${path}.name`, 'must not be empty');
    const given = (['ccs', 'certificate', 'issuer'] as const).filter((k) => entry[k] !== undefined);
    if (given.length !== 1) f.fail(path, 'give exactly one of "ccs" (a trusted CCS), "certificate" (a pinned certificate) and "issuer" (a trust anchor)');
    if (entry.resources === undefined) f.fail(`${path}.resources`, 'is missing (URI patterns such as "coap://host/*" or "/sensors/*")');
    const written = f.array(entry.resources, `${path}.resources`).map((r, i) => f.string(r, `${path}.resources[${i}]`));
    if (written.length === 0) f.fail(`${path}.resources`, 'must list at least one pattern');
    const patterns = written.map((r, i) => this.resourcePattern(r, `${path}.resources[${i}]`));
    const grant: PeerGrant = { name, allows: (uri) => patterns.some((p) => uriMatchesPattern(uri, p)) };
    const trustedBy = given[0]!;
    if (trustedBy !== 'ccs' && entry.kid !== undefined) f.fail(`${path}.kid`, 'only with "ccs"');
    if (trustedBy === 'ccs') {
      const claims = this.ccs(entry.ccs, `${path}.ccs`);
      try {
        coseKeyToPublicKey(claims.coseKey);
      } catch (error) {
        f.fail(`${path}.ccs`, `its COSE_Key is not a usable public key: ${(error as Error).message}`);
      }
      const kid = entry.kid === undefined ? undefined : f.bytes(entry.kid, `${path}.kid`);
      try {
        store.addCcs(claims.encoded, kid, grant);
      } catch (error) {
        f.fail(entry.kid === undefined ? `${path}.ccs` : `${path}.kid`, (error as Error).message);
      }
    } else if (trustedBy === 'certificate') {
      store.pinCertificate(new Uint8Array(this.certificate(entry.certificate, `${path}.certificate`).raw), grant);
    } else {
      const anchor = this.certificate(entry.issuer, `${path}.issuer`);
      if (!anchor.ca) f.fail(`${path}.issuer`, 'is not a CA certificate (basicConstraints cA is not set); trust a single peer with "certificate" instead');
      store.addTrustAnchor(anchor, grant);
    }
    return { name, trustedBy, resources: written, grant };
  }

  private suites(json: unknown, methods: readonly EdhocMethod[], key: KeyObject): number[] {
    const f = this.fields;
    const suites = f.array(json, 'edhoc.suites').map((s, i) => f.integer(s, `edhoc.suites[${i}]`));
    if (suites.length === 0) f.fail('edhoc.suites', 'must list at least one cipher suite');
    suites.forEach((s, i) => {
      const path = `edhoc.suites[${i}]`;
      if (findCipherSuite(s) === undefined) f.fail(path, `cipher suite ${s} is not supported; supported: ${SUPPORTED_SUITES.join(', ')}`);
      if (suites.indexOf(s) !== i) f.fail(path, `suite ${s} is listed twice`);
      if (!fitsSomeRole(s, methods, key)) f.fail(path, `suite ${s} does not fit the ${describeKey(key)} key with methods ${methods.join(', ')}`);
    });
    return suites;
  }

  private methods(json: unknown): EdhocMethod[] {
    const f = this.fields;
    const methods = f.array(json, 'edhoc.methods').map((m, i) => f.integer(m, `edhoc.methods[${i}]`));
    if (methods.length === 0) f.fail('edhoc.methods', 'must list at least one method');
    methods.forEach((m, i) => {
      if (!isMethod(m)) f.fail(`edhoc.methods[${i}]`, `method ${m} does not exist; EDHOC has methods 0 to 3`);
      if (methods.indexOf(m) !== i) f.fail(`edhoc.methods[${i}]`, `method ${m} is listed twice`);
    });
    return methods as EdhocMethod[];
  }

  private idCredForm(json: unknown, path: string): IdCredForm {
    const form = this.fields.string(json, path);
    return ID_CRED_FORMS.includes(form as IdCredForm) ? (form as IdCredForm) : this.fields.fail(path, `expected one of ${ID_CRED_FORMS.join(', ')}`);
  }

  private resourcePattern(text: string, path: string): UriPattern {
    try {
      return parseResourcePattern(text);
    } catch (error) {
      return this.fields.fail(path, (error as Error).message);
    }
  }

  /** A CCS: a file of its CBOR bytes, or inline as {"hex": ...}. */
  private ccs(json: unknown, path: string): CwtClaimsSet {
    const bytes = typeof json === 'string' ? this.file(json, path) : this.fields.bytes(json, path);
    try {
      return parseCcs(bytes);
    } catch (error) {
      return this.fields.fail(path, `not a CWT Claims Set with a COSE_Key in cnf: ${(error as Error).message}`);
    }
  }

  private certificate(json: unknown, path: string): X509Certificate {
    const bytes = this.file(this.fields.string(json, path), path);
    try {
      return new X509Certificate(Buffer.from(bytes));
    } catch {
      return this.fields.fail(path, 'not an X.509 certificate (PEM or DER)');
    }
  }

  private privateKey(json: unknown, path: string): KeyObject {
    const name = this.fields.string(json, path);
    const bytes = Buffer.from(this.file(name, path));
    let key: KeyObject;
    try {
      key = isPem(bytes) ? createPrivateKey(bytes.toString('latin1')) : createPrivateKey({ key: bytes, format: 'der', type: 'pkcs8' });
    } catch {
      return this.fields.fail(path, 'not a private key (PKCS#8 PEM or DER; encrypted keys are not supported)');
    }
    try {
      coseKeyFromKeyObject(key);
    } catch {
      this.fields.fail(path, `a ${key.asymmetricKeyType ?? 'unknown'} key; EDHOC needs Ed25519, Ed448, X25519, X448, P-256 or P-384`);
    }
    const mode = statSync(resolve(this.directory, name)).mode & 0o077;
    if (mode !== 0) this.fields.warnings.push(`${this.fields.file}: ${path}: the key file can be read by others (mode ${(mode | 0o600).toString(8)}); chmod 600 it`);
    return key;
  }

  private file(name: string, path: string): Uint8Array {
    if (name === '') this.fields.fail(path, 'must not be empty');
    try {
      return new Uint8Array(readFileSync(resolve(this.directory, name)));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return this.fields.fail(path, `cannot read ${name}${code !== undefined ? ` (${code})` : ''}`);
    }
  }
}

const isPem = (bytes: Buffer): boolean => bytes.subarray(0, 64).toString('latin1').includes('-----BEGIN');

/** Compares the public parts only (the CCS never holds 'd'); an EC2 y, when the CCS gives it, must match too. */
function samePublicKey(claims: CwtClaimsSet, key: KeyObject): boolean {
  const own = coseKeyFromKeyObject(key);
  const { y } = claims.coseKey;
  const sameY = !(y instanceof Uint8Array) || (own.y instanceof Uint8Array && toHex(own.y) === toHex(y));
  return own.crv === claims.coseKey.crv && toHex(own.x) === toHex(claims.coseKey.x) && sameY;
}

/** Whether the key can act as Initiator or Responder in one of the methods with this suite. */
function fitsSomeRole(suiteId: number, methods: readonly EdhocMethod[], key: KeyObject): boolean {
  const suite = findCipherSuite(suiteId);
  return suite !== undefined && methods.some((m) => ownKeyFits(suite, initiatorUsesStaticDh(m), key) || ownKeyFits(suite, responderUsesStaticDh(m), key));
}

/** A DH-only key authenticates by static DH (method 3), a signature-only key by signing (method 0); a P-256/P-384 key can do both. */
function defaultMethods(key: KeyObject): EdhocMethod[] {
  const type = key.asymmetricKeyType;
  if (type === 'x25519' || type === 'x448') return [3];
  if (type === 'ec') return [3, 0];
  return [0];
}

function describeKey(key: KeyObject): string {
  const type = key.asymmetricKeyType ?? 'unknown';
  if (type === 'ec') return `EC ${key.asymmetricKeyDetails?.namedCurve ?? ''}`.trim();
  const names: Record<string, string> = { ed25519: 'Ed25519', ed448: 'Ed448', x25519: 'X25519', x448: 'X448' };
  return names[type] ?? type;
}
