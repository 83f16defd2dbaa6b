/**
 * One line per KUDOS event for `-v` (coapsec serve, coapsec rekey): state transitions and how an
 * update ended. Never a key: the IDs are the context's (KUDOS keeps them, draft §4), and a new
 * context is named by a digest of its Master Salt, which is built from the two nonces that
 * travelled in the clear (§4.3.1), so it reveals nothing the wire did not.
 */
import { createHash } from 'node:crypto';
import type { KudosSession } from './session.js';
import type { KudosEvent } from './session-types.js';
import { bytesToHex as hex } from '../util/bytes.js';

export function describeKudosEvent(peer: string, event: KudosEvent): string {
  switch (event.type) {
    case 'state':
      return `kudos ${peer}: ${event.from} -> ${event.to}`;
    case 'send-convergent':
      return `kudos ${peer}: next message convergent (CTX_NEW)`;
    case 'completed':
      return `kudos ${peer}: update completed (${event.noForwardSecrecy ? 'no-FS' : 'FS'} mode, observations ${event.preserveObservations ? 'kept' : 'ended'})`;
    case 'aborted':
      return `kudos ${peer}: update aborted, old context kept: ${event.reason}`;
  }
}

/** The context a session is on, as `coapsec rekey` prints it: its IDs and a tag of its Master Salt. */
export function describeKudosContext(session: KudosSession): string {
  const { senderId, recipientId } = session.identity;
  const tag = createHash('sha256').update('coapsec kudos context tag\0').update(session.currentSecrets.masterSalt).digest('hex').slice(0, 12);
  return `Sender ID ${hex(senderId) || '(empty)'}, Recipient ID ${hex(recipientId) || '(empty)'} (unchanged: KUDOS keeps the IDs), context ${tag}`;
}

