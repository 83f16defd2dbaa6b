/**
 * DTLS flags shared by the request, observe and serve commands (RFC 7252 §9 security modes):
 *   --psk-identity ID --psk KEY          PreSharedKey (KEY: 0x-prefixed hex, or text)
 *   --rpk KEYFILE --trusted-rpk PUBFILE  RawPublicKey (PEM; --trusted-rpk repeatable)
 *   --cert FILE --key FILE --ca FILE     Certificate (PEM; --ca repeatable)
 */
import { createPrivateKey, createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseCertificates } from '../dtls/x509.js';
import type { DtlsClientCredentials, DtlsServerCredentials } from '../transport/dtls.js';
import { parseResourceServerAcl, parseTrustAnchorArgument, TrustAnchorConfigError } from '../trust-anchor/config.js';
import { clientCredentialsOf, readTaCredential } from '../trust-anchor/credential-file.js';
import { resourceServerSetup, type ResourceServerSetup } from '../trust-anchor/resource-server-setup.js';
import { UsageError } from './errors.js';
import { parseFlagKey } from '../util/key-text.js';

export const DTLS_FLAGS = {
  'psk-identity': { type: 'string' },
  psk: { type: 'string' },
  rpk: { type: 'string' },
  'trusted-rpk': { type: 'string', multiple: true },
  cert: { type: 'string' },
  key: { type: 'string' },
  ca: { type: 'string', multiple: true },
  'trust-anchor': { type: 'string', multiple: true },
  acl: { type: 'string' },
  'ta-window-file': { type: 'string' },
  'ta-credential': { type: 'string' },
} as const;

/** The DTLS flags a client takes (get, observe, ping, proxy upstream). */
export const DTLS_USAGE = `  DTLS (coaps://):
  --psk-identity ID       PSK identity (with --psk)
  --psk KEY               pre-shared key: 0x-prefixed hex, or text
  --rpk KEYFILE           our EC P-256 private key (PEM) for raw public key mode
  --trusted-rpk PUBFILE   a peer public key (PEM) to accept; repeatable
  --cert FILE             our certificate chain (PEM, leaf first)
  --key FILE              the private key of --cert (PEM; default: taken from --cert)
  --ca FILE               trusted root certificates (PEM); repeatable
  --ta-credential FILE    a credential from coapsec ta-request (DerivedKey or AuthorizedPublicKey)`;

/** The DTLS flags of serve: no --ta-credential, and the trust-anchor ones. */
export const DTLS_SERVE_USAGE = `  DTLS (coaps://):
  --psk-identity ID       PSK identity (with --psk)
  --psk KEY               pre-shared key: 0x-prefixed hex, or text
  --rpk KEYFILE           our EC P-256 private key (PEM) for raw public key mode
  --trusted-rpk PUBFILE   a client public key (PEM) to accept; repeatable (makes client keys mandatory)
  --cert FILE             our certificate chain (PEM, leaf first)
  --key FILE              the private key of --cert (PEM; default: taken from --cert)
  --ca FILE               roots for client certificates (PEM); repeatable (makes them mandatory)
  --trust-anchor ID=KEY[,window=N][,keylen=32]  accept DerivedKey identities and MacCerts of this
                          trust anchor (KEY: 0x-hex K_RS-TA, else text); repeatable; --rpk enables MacCerts
  --acl FILE              the resource server's JSON access control list (PSK, RPK, X.509, trust anchors)
  --ta-window-file FILE   persist the trust anchors' sequence-number windows here
  (docs/trust-anchor-modes.md)`;

export interface DtlsFlagValues {
  'psk-identity'?: string | undefined;
  psk?: string | undefined;
  rpk?: string | undefined;
  'trusted-rpk'?: string[] | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string[] | undefined;
  'trust-anchor'?: string[] | undefined;
  acl?: string | undefined;
  'ta-window-file'?: string | undefined;
  'ta-credential'?: string | undefined;
}

/** --psk: "0x…" as hex, anything else as UTF-8 text (the rule of every key flag, util/key-text.ts). */
export function parsePskKey(text: string): Buffer {
  try {
    return Buffer.from(parseFlagKey(text));
  } catch (error) {
    throw new UsageError(`--psk: ${(error as Error).message}`);
  }
}

function readFlagFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new UsageError(`${flag}: cannot read "${file}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function privateKeyFrom(flag: string, file: string): KeyObject {
  try {
    return createPrivateKey(readFlagFile(flag, file));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${flag}: "${file}" holds no PEM private key`);
  }
}

function p256(flag: string, key: KeyObject): KeyObject {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new UsageError(`${flag}: only EC P-256 keys are supported`);
  return key;
}

function publicKeyFrom(flag: string, file: string): KeyObject {
  try {
    // A public key, or a private key (libcoap's -M files) whose public half is meant.
    return p256(flag, createPublicKey(readFlagFile(flag, file)));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${flag}: "${file}" holds no PEM public key`);
  }
}

function certificatesFrom(flag: string, file: string): X509Certificate[] {
  try {
    return parseCertificates(readFlagFile(flag, file));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${flag}: "${file}": ${(error as Error).message}`);
  }
}

function pskFrom(values: DtlsFlagValues): { identity: string; key: Buffer } | undefined {
  const id = values['psk-identity'];
  const key = values.psk;
  if (id === undefined && key === undefined) return undefined;
  if (id === undefined || key === undefined) throw new UsageError('--psk-identity and --psk go together');
  return { identity: id, key: parsePskKey(key) };
}

function rootsFrom(values: DtlsFlagValues): X509Certificate[] {
  return (values.ca ?? []).flatMap((f) => certificatesFrom('--ca', f));
}

function ownChain(values: DtlsFlagValues): { certificates: X509Certificate[]; privateKey: KeyObject } | undefined {
  if (values.cert === undefined) {
    if (values.key !== undefined) throw new UsageError('--key needs --cert');
    return undefined;
  }
  const certificates = certificatesFrom('--cert', values.cert);
  const privateKey = p256('--key', privateKeyFrom(values.key !== undefined ? '--key' : '--cert', values.key ?? values.cert));
  return { certificates, privateKey };
}

/** Client credentials from the flags, or undefined when none was given. */
export function clientDtlsCredentials(values: DtlsFlagValues): (DtlsClientCredentials & { cipherSuites?: readonly number[] }) | undefined {
  for (const flag of ['trust-anchor', 'acl', 'ta-window-file'] as const) if (values[flag] !== undefined) throw new UsageError(`--${flag} is a serve option`);
  if (values['ta-credential'] !== undefined) {
    if (values.psk !== undefined || values['psk-identity'] !== undefined || values.rpk !== undefined || values.cert !== undefined)
      throw new UsageError('--ta-credential replaces --psk-identity/--psk, --rpk and --cert');
    try {
      return clientCredentialsOf(readTaCredential(values['ta-credential']));
    } catch (error) {
      throw new UsageError(`--ta-credential: ${(error as Error).message}`);
    }
  }
  const creds: DtlsClientCredentials = {};
  const psk = pskFrom(values);
  if (psk) creds.psk = psk;
  const trusted = (values['trusted-rpk'] ?? []).map((f) => publicKeyFrom('--trusted-rpk', f));
  if (values.rpk !== undefined) {
    if (trusted.length === 0) throw new UsageError('--rpk needs at least one --trusted-rpk: the server keys to accept');
    creds.rpk = { privateKey: p256('--rpk', privateKeyFrom('--rpk', values.rpk)), trustedPeerKeys: trusted };
  } else if (trusted.length > 0) throw new UsageError('--trusted-rpk needs --rpk');
  const own = ownChain(values);
  const roots = rootsFrom(values);
  if (own && roots.length === 0) throw new UsageError('--cert needs --ca: the roots to validate the server with');
  if (roots.length > 0) creds.x509 = { roots, ...(own ?? {}) };
  return creds.psk || creds.rpk || creds.x509 ? creds : undefined;
}

/** Server credentials from the flags, or undefined when none was given. */
/** Server credentials including trust anchors (--trust-anchor, --acl), and their verifier. */
export function serverDtlsSetup(values: DtlsFlagValues): ResourceServerSetup {
  if (values['ta-credential'] !== undefined) throw new UsageError('--ta-credential is a client option');
  try {
    const acl = values.acl !== undefined ? parseResourceServerAcl(values.acl) : undefined;
    const anchors = (values['trust-anchor'] ?? []).map(parseTrustAnchorArgument);
    if (values['ta-window-file'] !== undefined && anchors.length === 0 && !acl?.trustAnchors.length) throw new UsageError('--ta-window-file needs --trust-anchor or an --acl with trustAnchors');
    return resourceServerSetup(serverDtlsCredentials(values), acl, anchors, values['ta-window-file'] !== undefined ? { windowFile: values['ta-window-file'] } : {});
  } catch (error) {
    if (error instanceof TrustAnchorConfigError) throw new UsageError(error.message);
    throw error;
  }
}

export function serverDtlsCredentials(values: DtlsFlagValues): DtlsServerCredentials | undefined {
  const creds: DtlsServerCredentials = {};
  const psk = pskFrom(values);
  if (psk) creds.psk = psk;
  const trusted = (values['trusted-rpk'] ?? []).map((f) => publicKeyFrom('--trusted-rpk', f));
  if (values.rpk !== undefined) {
    // Without --trusted-rpk the server authenticates itself only; with it, clients must present a listed key.
    creds.rpk = { privateKey: p256('--rpk', privateKeyFrom('--rpk', values.rpk)), trustedPeerKeys: trusted };
  } else if (trusted.length > 0) throw new UsageError('--trusted-rpk needs --rpk');
  const own = ownChain(values);
  const roots = rootsFrom(values);
  if (roots.length > 0 && !own) throw new UsageError('--ca on serve needs --cert and --key');
  // With --ca, clients must present a certificate issued under one of those roots.
  if (own) creds.x509 = { ...own, roots };
  return creds.psk || creds.rpk || creds.x509 ? creds : undefined;
}
