/** Trust-anchor security modes (DerivedKey, AuthorizedPublicKey), docs/trust-anchor-modes.md. */
export { SlidingWindow, DEFAULT_WINDOW, MIN_WINDOW, MAX_SEQUENCE_NUMBER, type WindowState, type WindowVerdict } from './window.js';
export { deriveKey, formatNonce, parseNonce, isDkIdentity, type DkNonce } from './derive.js';
export { MacAlgorithm, encodeMacCert, decodeMacCert, issueMacCert, macMatches, computeMac, MacCertError, type MacCert } from './maccert.js';
export { encodeRevocation, decodeRevocation, revocationMacValid, REVOCATION_PATH } from './revocation.js';
export { TrustAnchorVerifier, type TrustAnchorEntry, type TrustAnchorVerifierOptions, type RejectReason } from './resource-server.js';
export { parseResourceServerAcl, parseTrustAnchorConfig, parseTrustAnchorArgument, TrustAnchorConfigError, type ResourceServerAcl, type TrustAnchorConfig } from './config.js';
export { CounterBlocks, StateFileCounters, StoreCounters, SequenceExhaustedError, keyId, type CounterReservations } from './counters.js';
export { TrustAnchorService, TrustAnchorError, addTrustAnchorResources, type TrustAnchorServiceOptions, type DerivedKeyCredential, type AuthzCredential } from './service.js';
export { resourceServerSetup, addRevocationResource } from './resource-server-setup.js';
export { readTaCredential, writeTaCredential, clientCredentialsOf, type TaCredential } from './credential-file.js';
