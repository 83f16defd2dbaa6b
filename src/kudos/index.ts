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
  type OutgoingRequest,
  type UnprotectedRequest,
  type UnprotectedResponse,
  KudosSession,
} from './session.js';
