/** TLS alert protocol (RFC 5246 §7.2, RFC 4279 §2 unknown_psk_identity, RFC 6347 §4.2.7). */

export const AlertLevel = { Warning: 1, Fatal: 2 } as const;

export const AlertDescription = {
  CloseNotify: 0,
  UnexpectedMessage: 10,
  BadRecordMac: 20,
  RecordOverflow: 22,
  HandshakeFailure: 40,
  BadCertificate: 42,
  UnsupportedCertificate: 43,
  CertificateRevoked: 44,
  CertificateExpired: 45,
  CertificateUnknown: 46,
  IllegalParameter: 47,
  UnknownCa: 48,
  AccessDenied: 49,
  DecodeError: 50,
  DecryptError: 51,
  ProtocolVersion: 70,
  InsufficientSecurity: 71,
  InternalError: 80,
  NoRenegotiation: 100,
  UnsupportedExtension: 110,
  UnknownPskIdentity: 115,
} as const;

const NAMES = new Map<number, string>([
  [0, 'close_notify'],
  [10, 'unexpected_message'],
  [20, 'bad_record_mac'],
  [22, 'record_overflow'],
  [40, 'handshake_failure'],
  [42, 'bad_certificate'],
  [43, 'unsupported_certificate'],
  [44, 'certificate_revoked'],
  [45, 'certificate_expired'],
  [46, 'certificate_unknown'],
  [47, 'illegal_parameter'],
  [48, 'unknown_ca'],
  [49, 'access_denied'],
  [50, 'decode_error'],
  [51, 'decrypt_error'],
  [70, 'protocol_version'],
  [71, 'insufficient_security'],
  [80, 'internal_error'],
  [100, 'no_renegotiation'],
  [110, 'unsupported_extension'],
  [115, 'unknown_psk_identity'],
]);

export function alertName(description: number): string {
  return NAMES.get(description) ?? `alert_${description}`;
}

/** Thrown inside the engine to abort the handshake with a fatal alert of the given description. */
export class TlsAlertError extends Error {
  constructor(
    readonly description: number,
    message: string,
  ) {
    super(`${alertName(description)}: ${message}`);
    this.name = 'TlsAlertError';
  }
}
