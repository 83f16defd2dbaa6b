/**
 * The one error type of the credentials layer. Its message always starts with where the problem
 * is — `file:line: ...` for line-based files, `file: json.path: ...` for JSON — so a user can go
 * straight to it. Messages never quote secret values (master secret, salt, IDs): only their
 * position, length or the kind of mistake.
 */
export class CredentialsError extends Error {
  constructor(
    message: string,
    /** The file the problem is in, when there is one. */
    readonly file?: string,
    /** 1-based line number (libcoap conf files). */
    readonly line?: number,
    /** The JSON path or keyword of the offending field, e.g. `oscore[0].context.senderId`. */
    readonly field?: string,
  ) {
    super(message);
    this.name = 'CredentialsError';
  }
}
