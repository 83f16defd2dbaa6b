/**
 * TLS settings for coaps+tcp:// and coaps+ws:// (RFC 8323 §9) from the flags the DTLS options
 * already define: --cert/--key/--ca as PEM files, --psk-identity/--psk for TLS-PSK (TLS 1.2).
 */
import { readFileSync } from 'node:fs';
import type { TransportOptions } from '../transport/schemes.js';
import { UsageError } from './errors.js';

/** How a client's DTLS flags serve TLS too: shown in get's and observe's usage. */
export const TLS_CLIENT_USAGE = `  TLS (coaps+tcp://, coaps+ws://): the same flags; --ca roots for the server certificate,
                          --cert/--key to present one, --psk-identity/--psk for TLS-PSK (TLS 1.2)`;

type TlsFlagValues = { cert?: string | undefined; key?: string | undefined; ca?: string[] | undefined };
type Psk = { identity: string | Uint8Array; key: string | Uint8Array };

const read = (flag: string, file: string): Buffer => {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new UsageError(`${flag}: cannot read "${file}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
};
const text = (v: string | Uint8Array): string => (typeof v === 'string' ? v : Buffer.from(v).toString('utf8'));
const bytes = (v: string | Uint8Array): Uint8Array => (typeof v === 'string' ? Buffer.from(v) : v);

/** --tls: the PEM files of --cert/--key/--ca as Node's TLS takes them, and/or the TLS-PSK of --psk-identity/--psk. */
export function tlsServerOptions(values: TlsFlagValues, psk: Psk | undefined): NonNullable<TransportOptions['tls']> {
  const tls: NonNullable<TransportOptions['tls']> = {};
  if (values.cert !== undefined) {
    tls.cert = read('--cert', values.cert);
    tls.key = read('--key', values.key ?? values.cert);
  }
  if (values.ca !== undefined && values.ca.length > 0) {
    tls.ca = values.ca.map((f) => read('--ca', f));
    tls.requireClientCertificate = true;
  }
  if (psk) {
    tls.psk = new Map([[text(psk.identity), bytes(psk.key)]]);
  }
  if (tls.cert === undefined && tls.psk === undefined) throw new UsageError('--tls needs --cert/--key or --psk-identity/--psk');
  return tls;
}

/** A client's TLS settings: --ca roots for the server certificate, --cert/--key to present, or a TLS-PSK; undefined when none. */
export function tlsClientOptions(values: TlsFlagValues, psk: Psk | undefined): NonNullable<TransportOptions['tls']> | undefined {
  const tls: NonNullable<TransportOptions['tls']> = {};
  if (values.ca !== undefined && values.ca.length > 0) tls.ca = values.ca.map((f) => read('--ca', f));
  if (values.cert !== undefined) {
    tls.cert = read('--cert', values.cert);
    tls.key = read('--key', values.key ?? values.cert);
  }
  if (psk) tls.psk = { identity: text(psk.identity), key: bytes(psk.key) };
  return Object.keys(tls).length > 0 ? tls : undefined;
}
