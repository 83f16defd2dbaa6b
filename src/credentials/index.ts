/** Credentials: OSCORE context configuration (JSON and libcoap formats) and durable sequence numbers. */
export { CredentialsError } from './errors.js';
export { writeFileDurably } from './durable-file.js';
export {
  type OscoreContextConfig,
  type ContextProblem,
  OSCORE_DEFAULTS,
  aeadAlgorithmId,
  aeadAlgorithmName,
  hkdfAlgorithmId,
  hkdfAlgorithmName,
  maxIdLength,
  checkOscoreContext,
} from './oscore-params.js';
export {
  type LibcoapConfParseResult,
  type OscoreConfArgument,
  parseLibcoapConf,
  loadLibcoapConf,
  formatLibcoapConf,
  parseOscoreConfArgument,
} from './libcoap-conf.js';
export {
  type Credentials,
  type ClientOscoreEntry,
  type ServerRecipient,
  loadCredentials,
  parseCredentials,
  matchClientContext,
  findServerRecipient,
} from './credentials-file.js';
export {
  type SenderContextIdentity,
  type SequenceStoreOptions,
  MAX_SENDER_SEQUENCE_NUMBER,
  SequenceExhaustedError,
  SequenceNumberStore,
  sequenceFileName,
} from './sequence-store.js';
export {
  type EdhocCredentials,
  type EdhocPeerEntry,
  type IdCredForm,
  edhocInitiatorConfig,
  edhocPeersFor,
  edhocResponderConfig,
} from './edhoc-entries.js';
