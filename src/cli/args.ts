/** Flag parsing shared by the commands: node:util parseArgs with our own clear messages. */
import { parseArgs, type ParseArgsConfig } from "node:util";

type Parsed<T extends OptionSpec> = ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>>;
import { UsageError } from './errors.js';
import { UriError, parseCoapUri } from '../coap/uri.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export function parse<T extends OptionSpec>(argv: string[], options: T, positionals: { min: number; max: number; names: string }): Parsed<T> {
  let parsed;
  try {
    parsed = parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    // parseArgs' messages name the flag but carry a hint to "--" that does not apply here.
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const count = parsed.positionals.length;
  if (count < positionals.min) throw new UsageError(`missing ${positionals.names}`);
  if (count > positionals.max) throw new UsageError(`unexpected argument "${parsed.positionals[positionals.max]}"`);
  return parsed;
}

export function parseSeconds(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`${flag} needs a positive number of seconds, got "${text}"`);
  return value;
}

export function parseCount(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!(Number.isInteger(value) && value > 0)) throw new UsageError(`${flag} needs a positive whole number, got "${text}"`);
  return value;
}

/** "HOST:PORT", "[v6]:PORT", "HOST" or ":PORT". */
export function parseBind(text: string, defaults: { host: string; port: number }): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d+))?$/.exec(text);
  if (!m) throw new UsageError(`--bind needs HOST:PORT (IPv6 as [ADDR]:PORT), got "${text}"`);
  const host = m[1] ?? (m[2] || defaults.host);
  const port = m[3] === undefined ? defaults.port : Number(m[3]);
  if (!(port >= 0 && port <= 65535)) throw new UsageError(`port out of range in --bind: ${m[3]}`);
  return { host, port };
}

/** --block-size: a power of two from 16 to 1024 (RFC 7959 §2.2). */
export function parseBlockSize(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const size = Number(text);
  if (![16, 32, 64, 128, 256, 512, 1024].includes(size)) throw new UsageError(`--block-size must be 16, 32, 64, 128, 256, 512 or 1024, got "${text}"`);
  return size;
}

/** The URI argument, checked up front so a typo is a usage error (exit 2), not a network failure. */
export function checkUri(uri: string): string {
  try {
    parseCoapUri(uri);
    return uri;
  } catch (error) {
    if (error instanceof UriError) throw new UsageError(`bad URI "${uri}": ${error.message}`);
    throw error;
  }
}

/** coaps:// without DTLS credentials can never work: say so before touching the network (exit 2). */
export function requireDtlsFor(uris: ReadonlyArray<string | undefined>, hasDtls: boolean): void {
  if (hasDtls) return;
  const secure = uris.find((u) => u !== undefined && /^coaps:/i.test(u));
  if (secure !== undefined) throw new UsageError(`${secure} needs DTLS credentials (--psk-identity/--psk, --rpk, --cert or --ta-credential)`);
}
