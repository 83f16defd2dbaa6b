/** KUDOS, key update for OSCORE (draft-ietf-core-oscore-key-update): sans-IO core and its persistence. */
export {
  type ContextMaterial,
  type NoncePair,
  type XBits,
  updateCtx,
  xN,
  kudosExpandLabelInfo,
  xByte,
  parseXByte,
  splitMasterSalt,
  deriveKeys,
} from './update-ctx.js';
export {
  type KudosRecord,
  type KudosStorage,
  type PeerCapability,
  type SecretPair,
  type ContextIdentity,
  KudosFileStorage,
} from './persistence.js';
export {
  type KudosState,
  type KudosEvent,
  type KudosSessionOptions,
  type IncomingRequest,
  type ChallengeHandle,
  type OutgoingRequest,
  type UnprotectedRequest,
  type UnprotectedResponse,
  KudosSession,
} from './session.js';
export { PeerGate, KudosGateError, type PeerGateOptions } from './gate.js';
export { KudosPolicy, type KudosPolicySettings, aeadMessageLimit, aeadIntegrityLimit } from './policy.js';
export { KudosClientPeer, type KudosClientOptions, type SendKudosRequest } from './client.js';
export { KudosServerSecurity, type KudosServerOptions, type KudosServerPeerConfig } from './server.js';
export { kudosResource, KUDOS_RESOURCE_PATH, KUDOS_RESOURCE_TYPE } from './well-known.js';
export { describeKudosEvent, describeKudosContext } from './describe.js';
export { KUDOS_EAD_LABEL, type KudosSupport, kudosEadAsk, kudosEad2, kudosEad2After, kudosEad3, readKudosEad, answerOf, peerCapabilityOf } from './edhoc-ead.js';
