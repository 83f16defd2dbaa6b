/** EDHOC (RFC 9528): a sans-IO Initiator and Responder, credentials, and the OSCORE parameters of App. A.1. */
export { EdhocInitiator, InitiatorWaitM2, InitiatorProcessedM2, InitiatorSentM3, type InitiatorConfig } from './initiator.js';
export { EdhocResponder, ResponderProcessedM1, ResponderWaitM3, ResponderProcessedM3, type ResponderConfig } from './responder.js';
export { EdhocSession, type OscoreParameters } from './session.js';
export {
  ccsCredential,
  x509Credential,
  CredentialStore,
  type CredentialResolver,
  type CredentialStoreOptions,
  type OwnCredential,
  type PeerCredential,
  type PeerGrant,
  type TrustAnchor,
} from './credentials.js';
export { EdhocError, EdhocPeerError, EdhocStateError, EdhocConfigError, EdhocErrorCode, parseErrorMessage } from './errors.js';
export { padding, PADDING_LABEL, type EadItem } from './ead.js';
export { idCredKid, idCredKccs, idCredX5t, idCredX5chain, identifierToCbor, identifierFromCbor, IdCredLabel, type IdCred } from './identifiers.js';
export { parseMessage1, parseMessage2, parsePlaintext2, parsePlaintext3 } from './messages.js';
export { edhocKdf, edhocExtract, transcriptHash2, transcriptHashNext, KdfLabel, ExporterLabel } from './key-schedule.js';
export { findCipherSuite, SUPPORTED_SUITES, type CipherSuite } from './suites.js';
export type { EdhocMethod } from './state.js';
