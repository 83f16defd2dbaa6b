/**
 * A stored context as text: one `recipients` entry of a credentials file (docs/credentials.md),
 * so a stored context is read back through the same validation as a credentials file and a user
 * can read it (`coapsec store show`). Secrets are in it, as in a credentials file: the store must
 * be as private as one.
 */
import { parseCredentials } from '../credentials/credentials-file.js';
import { CredentialsError } from '../credentials/errors.js';
import { StoreError, type StoredContext } from './types.js';
import { bytesToHex as hex } from '../util/bytes.js';


/** The record as the JSON text of a one-recipient credentials file. */
export function encodeStoredContext(record: StoredContext): string {
  const c = record.context;
  const [kid, ...others] = c.recipientIds;
  if (kid === undefined || others.length > 0) throw new TypeError('a stored context has exactly one recipient ID (the kid of its peer)');
  const context = {
    masterSecret: hex(c.masterSecret),
    masterSalt: hex(c.masterSalt),
    ...(c.idContext !== undefined ? { idContext: hex(c.idContext) } : {}),
    senderId: hex(c.senderId),
    aead: c.aead,
    hkdf: c.hkdf,
    replayWindow: c.replayWindow,
    echoOnRestart: c.echoOnRestart,
    rederivation: c.rederivation,
    sequenceSaveInterval: c.sequenceSaveInterval,
  };
  return JSON.stringify({ recipients: { [hex(kid)]: { name: record.name, context } } });
}

/** Parses what encodeStoredContext wrote; a record that does not validate is the store's error. */
export function decodeStoredContext(store: string, where: string, text: string): StoredContext {
  try {
    const [recipient, ...others] = parseCredentials(text, where).recipients;
    if (recipient === undefined || others.length > 0) throw new StoreError(store, `${where}: not one stored context`);
    return { name: recipient.name, context: recipient.context };
  } catch (error) {
    if (error instanceof CredentialsError) throw new StoreError(store, `corrupt context record: ${error.message}`);
    throw error;
  }
}

/** The record's kid (its one Recipient ID). */
export function storedKid(record: StoredContext): Uint8Array {
  const kid = record.context.recipientIds[0];
  if (kid === undefined || record.context.recipientIds.length !== 1) throw new TypeError('a stored context has exactly one recipient ID (the kid of its peer)');
  return kid;
}

/** The name of a context's slot: kid and ID Context in hex ("-" for no ID Context, distinct from an empty one). */
export function contextSlot(kid: Uint8Array, idContext: Uint8Array | undefined): string {
  return `k${hex(kid)}.${idContext === undefined ? '-' : `i${hex(idContext)}`}`;
}
