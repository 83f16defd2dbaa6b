/**
 * The sans-IO Group OSCORE core (draft-ietf-core-oscore-groupcomm): contexts, group and pairwise
 * mode protection, deterministic requests (draft-ietf-core-cacheable-oscore), response tracking
 * for requests to many servers, and the offline Group Manager.
 */
export { type AadInput, aadArray, countersignStructure, encStructure } from './aad.js';
export {
  type GroupAlgorithms,
  type GroupCommonContext,
  type GroupCommonInput,
  PairwiseKeyAgreement,
  deriveCommonContext,
  deriveEndpointKey,
  derivePairwiseKey,
  groupNonce,
  pairwiseIkm,
  signatureKeystream,
} from './common.js';
export {
  type GroupContextInput,
  type GroupMemberInfo,
  type GroupRecipientContext,
  GroupContextStore,
  GroupSecurityContext,
} from './context.js';
export { type AuthCredential, type OwnCredential, credentialSubject, ownCredential, parseAuthCredential, staticSharedSecret } from './credential.js';
export { type FieldFailure, checkMemberFile } from './member-file.js';
export {
  type DeterministicClient,
  type UnprotectDeterministicResult,
  REQUEST_HASH_OPTION,
  protectDeterministicRequest,
  unprotectDeterministicRequest,
} from './deterministic.js';
export {
  type DeterministicClientRecord,
  type GroupManagerState,
  type GroupMemberFile,
  type GroupRekey,
  DEFAULT_GROUP_ALGORITHMS,
  GroupManager,
  applyRekey,
  contextFromMemberFile,
} from './manager.js';
export { ed25519PublicToX25519, ed25519SeedToX25519 } from './montgomery.js';
export { type GroupOscoreOptionValue, GROUP_FLAG, decodeGroupOscoreOption, encodeGroupOscoreOption } from './option.js';
export {
  type GroupMode,
  type GroupRequestBinding,
  type GroupRequestTarget,
  type ProtectGroupRequestOptions,
  type ProtectGroupResponseOptions,
  type UnprotectGroupRequestResult,
  type UnprotectGroupResponseOptions,
  type UnprotectGroupResponseResult,
  acceptEchoedRequest,
  encodeClassIOptions,
  protectGroupRequest,
  protectGroupResponse,
  unprotectGroupRequest,
  unprotectGroupResponse,
} from './protect.js';
export { GroupResponseTracker } from './responses.js';
export {
  type DeterministicRequesterOptions,
  type VerifiedDeterministicResponse,
  DeterministicExchange,
  DeterministicRequester,
  deterministicClientFor,
  protectDeterministicResponse,
} from './deterministic-exchange.js';
