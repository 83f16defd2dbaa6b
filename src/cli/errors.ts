/** Exit codes of the CLI; documented in the README. */
export const ExitCode = {
  Ok: 0,
  /** An unexpected failure (a bug, or the OS refused a socket). */
  Failure: 1,
  /** Bad flags, URI or input files. */
  Usage: 2,
  /** No response: timeout, RST or network error. */
  NoResponse: 3,
  ClientError: 4,
  ServerError: 5,
} as const;

import { CoapRequestError } from '../exchange/errors.js';

/** A request that got no usable response: one line on stderr, exit code 3. Anything else is rethrown. */
export function noResponse(error: unknown): number {
  if (!(error instanceof CoapRequestError)) throw error;
  process.stderr.write(`coapsec: ${error.message}\n`);
  return ExitCode.NoResponse;
}

/** A problem with what the user typed: one line on stderr, exit code 2. */
export class UsageError extends Error {}
