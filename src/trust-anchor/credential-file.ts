/**
 * The credential file written by `coapsec ta-request` and read by `--ta-credential FILE`
 * (docs/trust-anchor-modes.md). Written with mode 0600: it holds a key.
 *
 *   {"mode": "DerivedKey", "ta": "ta1", "rs": "rs1", "sequence": 5,
 *    "identity": "DK.ta1.alice.5.<hex>", "key": "<hex K_RS-C>"}
 *   {"mode": "AuthorizedPublicKey", "ta": "ta1", "rs": "rs1", "sequence": 6,
 *    "macCert": "<base64>", "privateKey": "<PEM PKCS#8>", "serverPublicKey": "<PEM SPKI>"}
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileDurably } from '../credentials/durable-file.js';
import { TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 } from '../dtls/suites.js';
import type { DtlsClientCredentials } from '../transport/dtls.js';
import { parseFileKeyString } from '../util/key-text.js';

export type TaCredential =
  | { mode: 'DerivedKey'; ta: string; rs: string; sequence: number; identity: string; key: string }
  | { mode: 'AuthorizedPublicKey'; ta: string; rs: string; sequence: number; macCert: string; privateKey: string; serverPublicKey: string };

export function writeTaCredential(file: string, c: TaCredential): void {
  writeFileDurably(file, JSON.stringify(c, null, 2) + '\n');
}

export function readTaCredential(file: string): TaCredential {
  let c: TaCredential;
  try {
    c = JSON.parse(readFileSync(file, 'utf8')) as TaCredential;
  } catch (e) {
    throw new Error(`${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (c?.mode === 'DerivedKey' && typeof c.identity === 'string' && typeof c.key === 'string') {
    try {
      if (parseFileKeyString(c.key).length > 0) return c;
    } catch (error) {
      throw new Error(`${file}: key: ${(error as Error).message}`);
    }
  }
  if (c?.mode === 'AuthorizedPublicKey' && typeof c.macCert === 'string' && typeof c.privateKey === 'string' && typeof c.serverPublicKey === 'string') return c;
  throw new Error(`${file}: not a trust-anchor credential (mode DerivedKey or AuthorizedPublicKey)`);
}

/** DTLS client credentials for a TA credential. */
export function clientCredentialsOf(c: TaCredential): DtlsClientCredentials & { cipherSuites?: readonly number[] } {
  if (c.mode === 'DerivedKey') return { psk: { identity: c.identity, key: Buffer.from(parseFileKeyString(c.key)) } };
  return {
    authz: { certificate: Buffer.from(c.macCert, 'base64'), privateKey: createPrivateKey(c.privateKey), serverPublicKey: createPublicKey(c.serverPublicKey) },
    // AuthorizedPublicKey needs an ECDHE_ECDSA suite (seed 003 §3.2).
    cipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
  };
}
