/** RFC 7252 §4.8 transmission parameters and the §4.8.2 derived times, all in milliseconds. */

export interface TransmissionParameters {
  ackTimeout: number;
  ackRandomFactor: number;
  maxRetransmit: number;
  /** §4.7: outstanding interactions per peer. */
  nstart: number;
  defaultLeisure: number;
  probingRate: number;
  maxLatency: number;
  processingDelay: number;
}

export const DEFAULT_PARAMETERS: Readonly<TransmissionParameters> = Object.freeze({
  ackTimeout: 2000,
  ackRandomFactor: 1.5,
  maxRetransmit: 4,
  nstart: 1,
  defaultLeisure: 5000,
  probingRate: 1,
  maxLatency: 100_000,
  processingDelay: 2000,
});

export function withDefaults(partial: Partial<TransmissionParameters> = {}): TransmissionParameters {
  const p = { ...DEFAULT_PARAMETERS, ...partial };
  if (!(p.ackTimeout > 0)) throw new RangeError('ackTimeout must be positive');
  if (!(p.ackRandomFactor >= 1)) throw new RangeError('ackRandomFactor must be at least 1 (RFC 7252 §4.8)');
  if (!Number.isInteger(p.maxRetransmit) || p.maxRetransmit < 0) throw new RangeError('maxRetransmit must be a non-negative integer');
  if (!Number.isInteger(p.nstart) || p.nstart < 1) throw new RangeError('nstart must be a positive integer');
  return p;
}

/** §4.8.2 */
export const maxTransmitSpan = (p: TransmissionParameters): number =>
  p.ackTimeout * (2 ** p.maxRetransmit - 1) * p.ackRandomFactor;
export const maxTransmitWait = (p: TransmissionParameters): number =>
  p.ackTimeout * (2 ** (p.maxRetransmit + 1) - 1) * p.ackRandomFactor;
export const exchangeLifetime = (p: TransmissionParameters): number =>
  maxTransmitSpan(p) + 2 * p.maxLatency + p.processingDelay;
export const nonLifetime = (p: TransmissionParameters): number => maxTransmitSpan(p) + p.maxLatency;
