/**
 * EDHOC errors (RFC 9528 §6).
 *
 * - EdhocError: this endpoint aborts the session; `message` is the error message to send back
 *   (ERR_CODE, ERR_INFO) as a CBOR sequence. Diagnostics never hold key material.
 * - EdhocPeerError: the peer sent an error message; the session is over (SUITES_R is kept for a
 *   retry after code 2).
 * - EdhocStateError: a state object was used twice (each step consumes its state).
 * - EdhocConfigError: a local misconfiguration (a key that does not fit the method or suite).
 */
import { CborError, decodeSequenceStrict, encodeSequence, isInt } from '../cose/cbor.js';

export const EdhocErrorCode = {
  /** Reserved for success; never sent (§6.1). */
  SUCCESS: 0,
  UNSPECIFIED: 1,
  WRONG_SELECTED_SUITE: 2,
  UNKNOWN_CREDENTIAL: 3,
} as const;

/** Suites are an int when there is one, else an array (§5.2.1). */
export const encodeSuites = (suites: readonly number[]): number | number[] => (suites.length === 1 ? suites[0]! : [...suites]);

export class EdhocError extends Error {
  override readonly name = 'EdhocError';
  readonly code: number;
  /** For code 2: SUITES_R. */
  readonly suitesR?: readonly number[];

  constructor(code: 1 | 2 | 3, diagnostic: string, suitesR?: readonly number[]) {
    super(diagnostic);
    this.code = code;
    if (suitesR !== undefined) this.suitesR = suitesR;
  }

  /** The error message to send (§6): code 1 → the diagnostic text, 2 → SUITES_R, 3 → true. */
  get errorMessage(): Uint8Array {
    if (this.code === EdhocErrorCode.WRONG_SELECTED_SUITE) return encodeSequence(this.code, encodeSuites(this.suitesR ?? []));
    if (this.code === EdhocErrorCode.UNKNOWN_CREDENTIAL) return encodeSequence(this.code, true);
    return encodeSequence(this.code, this.message);
  }
}

export const unspecified = (diagnostic: string): EdhocError => new EdhocError(1, diagnostic);

export class EdhocPeerError extends Error {
  override readonly name = 'EdhocPeerError';
  readonly code: number;
  readonly diagnostic?: string;
  readonly suitesR?: readonly number[];

  constructor(code: number, details: { diagnostic?: string; suitesR?: readonly number[] }) {
    super(
      code === 2
        ? `peer rejected the selected cipher suite; it supports ${details.suitesR?.join(', ') ?? '?'}`
        : code === 3
          ? 'peer does not know the credential referenced'
          : `peer sent EDHOC error ${code}${details.diagnostic !== undefined ? `: ${details.diagnostic}` : ''}`,
    );
    this.code = code;
    if (details.diagnostic !== undefined) this.diagnostic = details.diagnostic;
    if (details.suitesR !== undefined) this.suitesR = details.suitesR;
  }
}

export class EdhocStateError extends Error {
  override readonly name = 'EdhocStateError';
}

export class EdhocConfigError extends Error {
  override readonly name = 'EdhocConfigError';
}

/** Parses SUITES_I or SUITES_R: an int, or an array of at least two ints (§5.2.1). */
export function parseSuites(value: unknown, what: string): number[] {
  if (isInt(value)) return [value];
  if (Array.isArray(value) && value.length >= 2 && value.every(isInt)) return value as number[];
  throw unspecified(`${what} must be an int or an array of two or more ints`);
}

/**
 * Parses an error message (ERR_CODE, ERR_INFO). A malformed one is still an error from the peer:
 * it is reported as code 1 with no diagnostic, never answered.
 */
export function parseErrorMessage(bytes: Uint8Array): EdhocPeerError {
  let items;
  try {
    items = decodeSequenceStrict(bytes);
  } catch (e) {
    if (e instanceof CborError) return new EdhocPeerError(1, {});
    throw e;
  }
  const [code, info] = items;
  if (items.length !== 2 || !isInt(code)) return new EdhocPeerError(1, {});
  if (code === EdhocErrorCode.WRONG_SELECTED_SUITE) {
    try {
      return new EdhocPeerError(code, { suitesR: parseSuites(info, 'SUITES_R') });
    } catch {
      return new EdhocPeerError(code, {});
    }
  }
  if (code === EdhocErrorCode.UNSPECIFIED && typeof info === 'string') return new EdhocPeerError(code, { diagnostic: info });
  return new EdhocPeerError(code, {});
}
