/**
 * Signalling KUDOS support in EDHOC (draft-ietf-core-oscore-key-update §4.8): the EAD item
 * KUDOS_EAD, always non-critical (a positive label), whose value is ASK (h'', message_1 only),
 * NONE (h'00'), FULL (h'01': FS and no-FS modes) or PART (h'02': no-FS mode only), the last three
 * in message_2 and message_3 only. Pure functions over the EDHOC core's EAD items (src/edhoc):
 * what to put in each message, and what the peer said — with §4.8's cases in which a received
 * item is silently ignored. The peer's answer gives the capability a KUDOS session is provisioned
 * with (§4.4.2): FULL → CAPABLE, PART → not CAPABLE (no-FS mode only).
 *
 * The label is "TBD1" in -14 (§8.3). Until IANA assigns one we use 65536, just outside the range
 * of the EDHOC EAD registry (0–65535, RFC 9528 §10.5), so it collides with no registered item.
 */
import type { EadItem } from '../edhoc/ead.js';
import type { PeerCapability } from './persistence.js';

export const KUDOS_EAD_LABEL = 65536;

/** What a peer supports (Table 2 of §4.8). */
export type KudosSupport = 'full' | 'part' | 'none';

const VALUE: Record<KudosSupport, number> = { none: 0x00, full: 0x01, part: 0x02 };

/** message_1: ASK — the Responder must then say in message_2 whether it supports KUDOS. */
export function kudosEadAsk(): EadItem {
  return { label: KUDOS_EAD_LABEL, value: new Uint8Array(0) };
}

/** message_2: our support, whether asked ("MUST") or not ("MAY"). */
export function kudosEad2(own: KudosSupport): EadItem[] {
  return [{ label: KUDOS_EAD_LABEL, value: Uint8Array.of(VALUE[own]) }];
}

/**
 * message_2 after message_1's `ead1`: our support, unless message_1 carried a KUDOS_EAD other than
 * ASK — §4.8: such an item is silently ignored "and does not include a KUDOS_EAD item in the next
 * EDHOC message".
 */
export function kudosEad2After(ead1: readonly EadItem[], own: KudosSupport): EadItem[] {
  const malformed = ead1.some((i) => i.label === KUDOS_EAD_LABEL) && readKudosEad(ead1, 1) === undefined;
  return malformed ? [] : kudosEad2(own);
}

/**
 * message_3: our support when message_2 said FULL or PART ("SHOULD"); nothing after NONE ("MUST
 * NOT") or when message_2 said nothing.
 */
export function kudosEad3(own: KudosSupport, peer: KudosSupport | undefined): EadItem[] {
  return peer === 'full' || peer === 'part' ? kudosEad2(own) : [];
}

/**
 * What the peer's KUDOS_EAD in EDHOC message `message` says: 'ask' (message_1), its support
 * (message_2, message_3), or undefined when there is none or §4.8 says to ignore it (a value
 * other than ASK in message_1, ASK in message_2 or message_3, anything in message_4, an unknown
 * value).
 */
export function readKudosEad(items: readonly EadItem[], message: 1 | 2 | 3 | 4): 'ask' | KudosSupport | undefined {
  const item = items.find((i) => i.label === KUDOS_EAD_LABEL);
  if (item === undefined || item.value === undefined || message === 4) return undefined;
  if (message === 1) return item.value.length === 0 ? 'ask' : undefined;
  if (item.value.length !== 1) return undefined;
  const byte = item.value[0];
  return (Object.keys(VALUE) as KudosSupport[]).find((s) => VALUE[s] === byte);
}

/** §4.4.2: the capability to provision the KUDOS session of an EDHOC-derived context with; undefined for NONE (no KUDOS with this peer). */
export function peerCapabilityOf(support: KudosSupport): PeerCapability | undefined {
  return support === 'full' ? 'capable' : support === 'part' ? 'non-capable' : undefined;
}

/**
 * What a peer that signals its own support records from the other's message_2 or message_3: the
 * answer, and NONE when there was none (a peer that does not know KUDOS_EAD ignores the
 * non-critical item, §4.8; an Initiator says nothing after NONE).
 */
export const answerOf = (items: readonly EadItem[], message: 2 | 3): KudosSupport => (readKudosEad(items, message) as KudosSupport | undefined) ?? 'none';
