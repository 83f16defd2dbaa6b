/**
 * X.509 certificate mode (RFC 7252 §9.1.3.3, RFC 7925 §4.4.2): parsing of PEM bundles and
 * validation of a peer's chain against configured trust anchors with Node's X509Certificate.
 *
 * Validation: the chain (leaf first, as sent) must lead to a configured root, each link checked
 * with `verify(issuerPublicKey)` and `checkIssued`; every certificate on the path must be inside
 * its validity period; every intermediate (and the leaf's issuer, if it was sent) must be a CA
 * (basic constraints cA). The leaf must carry an EC P-256 key, the only one the ECDSA suites use.
 * A client checks the server's leaf for the host of the URI (`checkHost`/`checkIP`).
 * Not checked: revocation (CRL/OCSP), path length constraints, key usage and name constraints.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { AlertDescription, TlsAlertError } from './alerts.js';

export interface X509Credentials {
  /** Our certificate chain, leaf first (intermediates may follow). Optional for a client that only authenticates the server. */
  certificates?: X509Certificate[];
  /** The private key of the leaf (EC P-256). Required with `certificates`. */
  privateKey?: KeyObject;
  /** Trust anchors for the peer's chain. A server without roots does not ask for client certificates. */
  roots: X509Certificate[];
}

export interface ValidatedChain {
  leaf: X509Certificate;
  /** The subject of the leaf, one "attr=value" per RDN joined with ", ". */
  subject: string;
  chain: X509Certificate[];
}

const MAX_CHAIN = 8;

/** Splits a PEM bundle into certificates (or parses one DER certificate). */
export function parseCertificates(data: Buffer | string): X509Certificate[] {
  const text = typeof data === 'string' ? data : data.toString('latin1');
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (blocks) return blocks.map((b) => new X509Certificate(b));
  if (typeof data !== 'string' && data.length > 0 && data[0] === 0x30) return [new X509Certificate(data)];
  throw new Error('no certificate found (expected PEM "BEGIN CERTIFICATE" blocks or DER)');
}

export function subjectOf(cert: X509Certificate): string {
  return cert.subject.split('\n').filter(Boolean).join(', ');
}

function withinValidity(cert: X509Certificate, now: number): boolean {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  return Number.isFinite(from) && Number.isFinite(to) && now >= from && now <= to;
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Validates a received chain (DER, leaf first) against `roots`. Throws TlsAlertError with
 * bad_certificate, unsupported_certificate, certificate_expired or unknown_ca.
 */
export function validateChain(der: readonly Buffer[], roots: readonly X509Certificate[], options: { now: number; host?: string }): ValidatedChain {
  if (der.length === 0) throw new TlsAlertError(AlertDescription.BadCertificate, 'empty certificate chain');
  if (der.length > MAX_CHAIN) throw new TlsAlertError(AlertDescription.BadCertificate, `certificate chain longer than ${MAX_CHAIN}`);
  let chain: X509Certificate[];
  try {
    chain = der.map((d) => new X509Certificate(d));
  } catch {
    throw new TlsAlertError(AlertDescription.BadCertificate, 'unparseable certificate');
  }
  const leaf = chain[0]!;
  const key = leaf.publicKey;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new TlsAlertError(AlertDescription.UnsupportedCertificate, 'leaf certificate key is not EC P-256');
  }
  for (let i = 0; ; i++) {
    const cert = chain[i]!;
    if (!withinValidity(cert, options.now)) {
      throw new TlsAlertError(AlertDescription.CertificateExpired, `certificate "${subjectOf(cert)}" is outside its validity period`);
    }
    // A configured root that is the certificate itself or its issuer ends the path.
    if (roots.some((r) => r.raw.equals(cert.raw))) break;
    const root = roots.find((r) => issuedBy(cert, r));
    if (root) {
      if (!withinValidity(root, options.now)) throw new TlsAlertError(AlertDescription.CertificateExpired, `root "${subjectOf(root)}" is outside its validity period`);
      break;
    }
    const next = chain[i + 1];
    if (!next) throw new TlsAlertError(AlertDescription.UnknownCa, `certificate "${subjectOf(cert)}" does not chain to a trusted root`);
    if (!issuedBy(cert, next)) throw new TlsAlertError(AlertDescription.BadCertificate, `certificate "${subjectOf(cert)}" is not signed by the next certificate in the chain`);
    if (!next.ca) throw new TlsAlertError(AlertDescription.BadCertificate, `intermediate "${subjectOf(next)}" is not a CA (basic constraints)`);
  }
  if (options.host !== undefined && options.host !== '') {
    const host = options.host.replace(/^\[|\]$/g, '');
    const ok = isIP(host) ? leaf.checkIP(host) !== undefined : leaf.checkHost(host) !== undefined;
    if (!ok) throw new TlsAlertError(AlertDescription.BadCertificate, `server certificate does not match host "${host}"`);
  }
  return { leaf, subject: subjectOf(leaf), chain };
}
