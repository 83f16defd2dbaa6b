/** The error types of the OSCORE core. Network input never throws; these are local conditions. */

/** A security context that cannot be used as configured (RFC 8613 §3.2, §3.3). */
export class OscoreConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OscoreConfigError';
  }
}

/** An OSCORE option value that does not decode (RFC 8613 §6.1; §8.2 step 2: 4.02 Bad Option). */
export class MalformedOscoreOption extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedOscoreOption';
  }
}

/**
 * RFC 8613 §7.2.1: "If the Sender Sequence Number exceeds the maximum, the endpoint MUST NOT
 * process any more messages with the given Sender Context." The context needs replacing.
 */
export class SequenceNumberExhausted extends Error {
  constructor(readonly sequenceNumber: number) {
    super(`OSCORE Sender Sequence Number ${sequenceNumber} exceeds the maximum 2^40-1; a new security context is needed`);
    this.name = 'SequenceNumberExhausted';
  }
}

/** A message that this layer cannot protect as given (a local bug, not network input). */
export class OscoreProtectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OscoreProtectError';
  }
}
