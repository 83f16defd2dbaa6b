/**
 * The KUDOS session of an EDHOC-derived OSCORE context (draft-ietf-core-oscore-key-update §4.8):
 * here, above both, so that KUDOS does not depend on EDHOC over CoAP and EDHOC over CoAP only on
 * KUDOS's EAD items.
 */
import type { EdhocSession } from '../edhoc/session.js';
import { peerCapabilityOf, type KudosSupport } from '../kudos/edhoc-ead.js';
import type { KudosStorage } from '../kudos/persistence.js';
import { KudosSession } from '../kudos/session.js';
import type { KudosSessionOptions } from '../kudos/session-types.js';
import { oscoreHkdfFor } from './oscore-context.js';

/**
 * The KUDOS session of the OSCORE context EDHOC `session` established (the same Master Secret,
 * Salt, IDs and algorithms as edhocOscoreContext), provisioned with the capability the peer
 * signalled (§4.4.2, §4.8). Undefined when the peer said NONE: KUDOS is not run with that peer,
 * by policy — it would answer a KUDOS request as an ordinary one it cannot process.
 */
export function kudosSessionForEdhoc(
  session: EdhocSession,
  peer: KudosSupport,
  options: Omit<KudosSessionOptions, 'identity' | 'storage'> & { storage: (identity: KudosSessionOptions['identity']) => KudosStorage },
): KudosSession | undefined {
  const peerCapability = peerCapabilityOf(peer);
  if (peerCapability === undefined) return undefined;
  const params = session.oscore();
  const identity = { senderId: params.senderId, recipientId: params.recipientId, aead: params.aeadAlgorithm, hkdf: oscoreHkdfFor(params.hashAlgorithm) };
  return KudosSession.open({ ...options, identity, storage: options.storage(identity) }, { masterSecret: params.masterSecret, masterSalt: params.masterSalt, peerCapability });
}
