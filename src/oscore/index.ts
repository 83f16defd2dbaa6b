/** The sans-IO OSCORE core (RFC 8613): algorithms, context derivation, option codec, protection, replay window. */
export {
  type AeadAlgorithm,
  type HkdfAlgorithm,
  AeadId,
  HkdfId,
  DEFAULT_AEAD,
  DEFAULT_HKDF,
  aeadAlgorithm,
  hkdfAlgorithm,
  findAeadAlgorithm,
  findHkdfAlgorithm,
  allAeadAlgorithms,
  allHkdfAlgorithms,
  aeadName,
  aeadIdFromName,
  hkdfName,
  hkdfIdFromName,
} from './algorithms.js';
export {
  type ContextParams,
  type DerivedContext,
  type SenderParams,
  type RecipientParams,
  deriveContext,
  hkdfInfo,
  nonce,
} from './context.js';
export { OscoreConfigError, MalformedOscoreOption, SequenceNumberExhausted, OscoreProtectError } from './errors.js';
export {
  type OscoreOptionValue,
  type KudosOptionFields,
  KUDOS_X_RESERVED,
  MAX_SEQUENCE_NUMBER,
  encodeOscoreOption,
  decodeOscoreOption,
  encodePartialIv,
  decodePartialIv,
} from './option.js';
export {
  type ClassOf,
  type RequestBinding,
  type ProtectRequestOptions,
  type ProtectResponseOptions,
  type UnprotectOptions,
  type UnprotectResponseOptions,
  type UnprotectRequestResult,
  type UnprotectResponseResult,
  defaultClassOf,
  protectRequest,
  unprotectRequest,
  protectResponse,
  unprotectResponse,
  errorResponseParts,
  externalAad,
  additionalData,
  encodePlaintext,
  decodePlaintext,
} from './protect.js';
export { type ReplayVerdict, ReplayWindow } from './replay.js';
export {
  OscoreSecurityContext,
  ContextDirectory,
  VolatileSequence,
  type SequenceSource,
  type SecurityContextInput,
  type RecipientState,
} from './security-context.js';
export { newB2Nonce, secondIdContext, thirdIdContext, wrapB2KidContext, unwrapB2KidContext, R2Cache } from './rederivation.js';
export { escalate, escalatingClassOf, pathConsumers, isOuterOnly, knowledgeOf, UnrecognizedOptionError, type Escalation, type NodeKind, type OptionKnowledge, type PathView } from './escalation.js';
export { ContextTable, volatileSequences, type ContextTableOptions, type SenderIdentity, type TableSequences } from './context-table.js';
