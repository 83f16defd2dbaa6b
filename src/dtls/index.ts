/**
 * Public API of the sans-IO DTLS 1.2 engine (RFC 6347, RFC 7925 profile).
 *
 *   const client = new DtlsClient({ psk: { identity, key }, now: Date.now });
 *   for (const d of client.start()) socket.send(d);
 *   socket.on('message', (m) => { const r = client.receive(m); ... r.send / r.appData / r.events });
 *   timers: client.nextTimeout() → client.handleTimeout(now)
 *
 *   const server = new DtlsServerEngine({ pskStore: (id) => keys.get(id.toString()), now: Date.now });
 *   socket.on('message', (m, rinfo) => server.receive(m, `${rinfo.address}:${rinfo.port}`));
 */
export {
  DtlsClient,
  DtlsConnection,
  DtlsServerConnection,
  parseP256Spki,
  spkiOf,
  type AuthzClientCredentials,
  type AuthzGrant,
  type AuthzServerCredentials,
  type CommonOptions,
  type PskGrant,
  type PskStore,
  type ConnectionState,
  type DtlsClientOptions,
  type DtlsEvent,
  type DtlsSessionSecret,
  type DtlsOutput,
  type PeerIdentity,
  type PskCredentials,
  type RpkCredentials,
  type ServerConnectionOptions,
} from './connection.js';
export { DtlsServerEngine, type DtlsServerOptions, type PeerDatagrams } from './server.js';
export { parseCertificates, subjectOf, validateChain, type ValidatedChain, type X509Credentials } from './x509.js';
export { AlertDescription, AlertLevel, alertName, TlsAlertError } from './alerts.js';
export {
  CIPHER_SUITES,
  DEFAULT_SUITES,
  suiteById,
  TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
  TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256,
  TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
  TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
  type CipherSuite,
  type KeyExchange,
} from './suites.js';
export { ContentType, decodeRecords, encodeRecord, ReplayWindow, MAX_SEQUENCE, type DtlsRecord } from './record.js';
export { prf, pSha256, masterSecret, extendedMasterSecret, keyBlock, pskPremaster } from './prf.js';
export { createRecordProtection, type RecordProtection, type AeadKind } from './cipher.js';
export { HandshakeReassembler, fragmentHandshake, type HandshakeMessage } from './fragment.js';
export { CookieJar } from './cookie.js';
export * as handshake from './handshake-messages.js';
