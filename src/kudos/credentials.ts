/**
 * KUDOS for contexts configured with a `kudos` entry (docs/credentials.md): the session of such a
 * context lives in a KUDOS record in the credentials' state directory, next to the context's
 * Sender Sequence Number file. The first time, it is provisioned from the configured Master
 * Secret and Salt and resumes that context's numbering; from then on the record is the context
 * (the configured secret is only its origin) and every message goes through the session.
 */
import { join } from 'node:path';
import type { OscoreContextConfig } from '../credentials/oscore-params.js';
import type { OscoreRequester } from '../oscore/requester.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { KudosClientPeer, type SendKudosRequest } from './client.js';
import { KudosFileStorage } from './persistence.js';
import type { KudosPolicySettings } from './policy.js';
import type { KudosServerPeerConfig } from './server.js';
import { KudosSession } from './session.js';
import type { KudosEvent } from './session-types.js';
import type { ContextMaterial } from './update-ctx.js';

/** Where the KUDOS records of a credentials file's contexts are kept. */
export const kudosDirectory = (stateDirectory: string): string => join(stateDirectory, 'kudos');

type Identity = Omit<ContextMaterial, 'masterSecret' | 'masterSalt'>;

/**
 * §4.6: CTX_OLD stays usable for incoming non-KUDOS messages this long after an update — as long
 * as the server's gate holds a request sent under it before the client learnt of the update.
 */
const RETAIN_OLD_MS = 10_000;

function identityOf(config: OscoreContextConfig, recipientId: Uint8Array): Identity {
  return { senderId: config.senderId, recipientId, aead: config.aead, hkdf: config.hkdf, ...(config.idContext ? { idContext: config.idContext } : {}) };
}

/**
 * The session of one configured context with one peer. `context` is the context opened from the
 * same configuration: the session's first Sender Sequence Number is its next one, so no number the
 * context used before KUDOS took over is used again under the same key.
 */
export function openKudosSession(config: OscoreContextConfig, recipientId: Uint8Array, stateDirectory: string, context: OscoreSecurityContext): KudosSession {
  const identity = identityOf(config, recipientId);
  return KudosSession.open(
    { identity, storage: new KudosFileStorage(kudosDirectory(stateDirectory), identity), reserve: config.sequenceSaveInterval, replayWindow: config.replayWindow, peerKeepsQuiet: true, retainOldMs: RETAIN_OLD_MS },
    // `restarted`: the context's own sequence file existed, so an earlier process used it (B.1.2).
    { masterSecret: config.masterSecret, masterSalt: config.masterSalt, firstSequenceNumber: context.nextSequenceNumber(), restarted: context.restarted },
  );
}

/** A client context's KUDOS peer on its requester. */
export function attachKudosClient(
  config: OscoreContextConfig,
  stateDirectory: string,
  requester: OscoreRequester,
  options: { send: SendKudosRequest; onEvent?: (event: KudosEvent) => void },
): KudosClientPeer {
  const session = openKudosSession(config, config.recipientIds[0]!, stateDirectory, requester.context);
  return new KudosClientPeer(session, requester, {
    send: options.send,
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    policy: policyOf(config),
  });
}

/** A server recipient's KUDOS peer. */
export function kudosServerPeer(config: OscoreContextConfig, recipientId: Uint8Array, name: string, stateDirectory: string, context: OscoreSecurityContext): KudosServerPeerConfig {
  return {
    name,
    recipientId,
    aead: config.aead,
    session: openKudosSession(config, recipientId, stateDirectory, context),
    policy: policyOf(config),
  };
}

function policyOf(config: OscoreContextConfig): KudosPolicySettings {
  const kudos = config.kudos ?? {};
  return {
    ...(kudos.maxMessages !== undefined ? { maxMessages: kudos.maxMessages } : {}),
    ...(kudos.maxAgeSeconds !== undefined ? { maxAgeMs: kudos.maxAgeSeconds * 1000 } : {}),
  };
}
