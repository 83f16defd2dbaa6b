/** Exit codes of the CLI; documented in the README's exit-code table. */
import { CoapRequestError, SessionError } from '../exchange/errors.js';
import { VerificationError } from '../client/security.js';

export const ExitCode = {
  Ok: 0,
  /** An unexpected failure (a bug, or the OS refused a socket). */
  Failure: 1,
  /** Bad flags, URI or input files; a port already in use. */
  Usage: 2,
  /** No response: timeout, RST, unreachable or unresolvable peer. */
  NoResponse: 3,
  ClientError: 4,
  ServerError: 5,
  /** A security failure: DTLS alert, OSCORE verification, replay, unknown kid, no matching context. */
  Security: 6,
} as const;

/**
 * Errors that mean "the peer (or we) refused on security grounds" rather than "nothing answered".
 * A DTLS session that failed by timing out is a missing answer, not a refusal. The library's error
 * for a URI with no matching OSCORE context is recognised by its name, so it needs no import here.
 */
export function isSecurityFailure(error: unknown): boolean {
  if (error instanceof VerificationError) return true;
  if (error instanceof SessionError) return !/timed out/.test(error.message);
  return error instanceof Error && /^No\w*(Oscore|Security)?\w*Context\w*Error$|^OscoreContextNotFound/.test(error.name);
}

/** Socket errors that mean the peer cannot be reached (an ICMP error surfaced by the OS). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * A request that got no usable response: one line on stderr, exit code 6 for a security failure,
 * 3 for anything else that kept the response away. Any other error is rethrown.
 */
export function noResponse(error: unknown): number {
  if (isSecurityFailure(error)) {
    process.stderr.write(`coapsec: security failure: ${(error as Error).message}\n`);
    return ExitCode.Security;
  }
  if (!(error instanceof CoapRequestError) && !UNREACHABLE.has(String((error as NodeJS.ErrnoException | undefined)?.code))) throw error;
  process.stderr.write(`coapsec: ${(error as Error).message}\n`);
  return ExitCode.NoResponse;
}

/** A problem with what the user typed: one line on stderr, exit code 2. */
export class UsageError extends Error {}
