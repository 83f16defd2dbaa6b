/**
 * The input parameters of one OSCORE Security Context (RFC 8613 §3.2), as both credential formats
 * (our JSON file and libcoap's coap-oscore-conf(5)) produce them, plus coapsec's own persistence
 * and authorization settings. Pure data and pure checks; nothing here derives keys.
 */

/** One OSCORE Security Context's configuration. Byte strings are raw bytes, never hex. */
export interface OscoreContextConfig {
  /** §3.2: SHALL be preestablished. Never log it. */
  masterSecret: Uint8Array;
  /** §3.2: "Default is the empty byte string". */
  masterSalt: Uint8Array;
  /** §3.2 / §5.1: the optional ID Context ('kid context'); absent is not the same as empty. */
  idContext?: Uint8Array;
  senderId: Uint8Array;
  /** At least one. A client has exactly its server's ID; a server may list several (libcoap does). */
  recipientIds: Uint8Array[];
  /** COSE algorithm id of the AEAD; §3.2 default AES-CCM-16-64-128 (10). */
  aead: number;
  /** COSE algorithm id of the HKDF; §3.2 default HKDF SHA-256 (-10). */
  hkdf: number;
  /** §3.2.2: the anti-replay window size, default 32. */
  replayWindow: number;
  /** RFC 8613 Appendix B.1.2: after a restart, answer the first request of each context with Echo. */
  echoOnRestart: boolean;
  /** RFC 8613 Appendix B.2: support re-deriving the context with fresh ID Context nonces. */
  rederivation: boolean;
  /** Appendix B.1.1's K ('ssn_freq'): sequence numbers reserved per durable write. */
  sequenceSaveInterval: number;
  /** A peer name the application authorizes on (e.g. the server's name for a recipient). */
  name?: string;
  /** KUDOS key update (draft-ietf-core-oscore-key-update) for this context, and when to start one on our own. */
  kudos?: KudosContextConfig;
}

/**
 * The `kudos` entry of a context: present means the context is updated with KUDOS (its state then
 * lives in a KUDOS record in the state directory, src/kudos/persistence.ts). The limits start an
 * update on our own; the AEAD's usage limit always applies (src/kudos/policy.ts).
 */
export interface KudosContextConfig {
  /** Start an update after this many messages protected with one context. */
  maxMessages?: number;
  /** Start an update when a context has been in use this many seconds. */
  maxAgeSeconds?: number;
}

export const OSCORE_DEFAULTS = {
  masterSalt: new Uint8Array(0),
  aead: 10,
  hkdf: -10,
  replayWindow: 32,
  echoOnRestart: true,
  rederivation: false,
  sequenceSaveInterval: 64,
} as const;

import { allAeadAlgorithms, allHkdfAlgorithms, findAeadAlgorithm, findHkdfAlgorithm } from '../oscore/algorithms.js';
import { equalBytes } from '../oscore/context.js';
import { bytesToHex } from '../util/bytes.js';

/** Upper bounds we accept; beyond them a value is almost certainly a typo. */
export const MAX_REPLAY_WINDOW = 65536;
export const MAX_SEQUENCE_SAVE_INTERVAL = 1 << 20;

/** The COSE id for an AEAD name or id, or undefined when it is not one OSCORE can use. */
export const aeadAlgorithmId = (value: string | number): number | undefined => findAeadAlgorithm(value)?.id;
export const hkdfAlgorithmId = (value: string | number): number | undefined => findHkdfAlgorithm(value)?.id;
export const aeadAlgorithmName = (id: number): string | undefined => findAeadAlgorithm(id)?.name;
export const hkdfAlgorithmName = (id: number): string | undefined => findHkdfAlgorithm(id)?.name;
export const describeKnownAeadAlgorithms = (): string => allAeadAlgorithms().map((a) => `"${a.name}" (${a.id})`).join(', ');
export const describeKnownHkdfAlgorithms = (): string => allHkdfAlgorithms().map((a) => `"${a.name}" (${a.id})`).join(', ');

/** §3.3, §5.2: the Sender/Recipient ID is at most nonce length − 6 bytes. */
export function maxIdLength(aead: number): number {
  return findAeadAlgorithm(aead)?.maxIdLength ?? 7;
}

/** A problem with one field of a context, named by its OscoreContextConfig property. */
export interface ContextProblem {
  field: keyof OscoreContextConfig;
  /** For recipientIds: which entry. */
  index?: number;
  message: string;
}

/**
 * The checks both formats share, on a context whose fields are all present. Returns every problem
 * rather than the first, so the caller can report the first with its own notion of position.
 */
export function checkOscoreContext(config: OscoreContextConfig): ContextProblem[] {
  const problems: ContextProblem[] = [];
  if (config.masterSecret.length === 0) {
    problems.push({ field: 'masterSecret', message: 'the master secret is empty' });
  }
  if (aeadAlgorithmId(config.aead) === undefined) {
    problems.push({ field: 'aead', message: `unknown AEAD algorithm ${config.aead}; known: ${describeKnownAeadAlgorithms()}` });
  }
  if (hkdfAlgorithmId(config.hkdf) === undefined) {
    problems.push({ field: 'hkdf', message: `unknown HKDF algorithm ${config.hkdf}; known: ${describeKnownHkdfAlgorithms()}` });
  }
  const idLimit = maxIdLength(config.aead);
  if (config.senderId.length > idLimit) {
    problems.push({
      field: 'senderId',
      message: `the sender ID is ${config.senderId.length} bytes; at most ${idLimit} with this AEAD (RFC 8613 §3.3)`,
    });
  }
  if (config.recipientIds.length === 0) {
    problems.push({ field: 'recipientIds', message: 'at least one recipient ID is required (RFC 8613 §3.2)' });
  }
  // Checked for every recipient of a server with a context per device: no Set or hex for one ID.
  const seen = config.recipientIds.length > 1 ? new Set<string>() : undefined;
  config.recipientIds.forEach((id, index) => {
    if (id.length > idLimit) {
      problems.push({
        field: 'recipientIds',
        index,
        message: `the recipient ID is ${id.length} bytes; at most ${idLimit} with this AEAD (RFC 8613 §3.3)`,
      });
    }
    if (seen !== undefined) {
      const key = bytesToHex(id);
      if (seen.has(key)) problems.push({ field: 'recipientIds', index, message: 'the recipient ID is listed twice' });
      seen.add(key);
    }
    // §3.3: the pair (ID Context, Sender ID) must be unique under one master secret and salt, and
    // our own Recipient ID is the peer's Sender ID: equal IDs would give both directions one key.
    if (equalBytes(id, config.senderId)) {
      problems.push({ field: 'recipientIds', index, message: 'the recipient ID equals the sender ID, so both directions would share one key (RFC 8613 §3.3)' });
    }
  });
  if (!Number.isInteger(config.replayWindow) || config.replayWindow < 1 || config.replayWindow > MAX_REPLAY_WINDOW) {
    problems.push({ field: 'replayWindow', message: `the replay window must be an integer from 1 to ${MAX_REPLAY_WINDOW}` });
  }
  if (
    !Number.isInteger(config.sequenceSaveInterval) ||
    config.sequenceSaveInterval < 1 ||
    config.sequenceSaveInterval > MAX_SEQUENCE_SAVE_INTERVAL
  ) {
    problems.push({
      field: 'sequenceSaveInterval',
      message: `the sequence save interval must be an integer from 1 to ${MAX_SEQUENCE_SAVE_INTERVAL}`,
    });
  }
  return problems;
}

// --- byte strings --------------------------------------------------------------------------------

/**
 * Parses hex digits (either case, even count, no prefix or separators) or says what is wrong.
 * The message names positions only, never the text, because the text may be a secret.
 */
export function parseHex(text: string): Uint8Array | { problem: string } {
  if (text.length % 2 !== 0) return { problem: `hex value has an odd number of digits (${text.length})` };
  const bad = text.search(/[^0-9a-fA-F]/);
  if (bad >= 0) return { problem: `hex value has a non-hex character at position ${bad + 1}` };
  return new Uint8Array(Buffer.from(text, 'hex'));
}

export { bytesToHex };

/** Printable ASCII without the double quote, so it can be written back quoted. */
export function isPrintableAscii(bytes: Uint8Array): boolean {
  return bytes.every((b) => b >= 0x20 && b < 0x7f && b !== 0x22);
}
