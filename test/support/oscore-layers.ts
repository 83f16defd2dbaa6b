/** Helpers for tests of OSCORE layers through proxies (test/oscore-proxy*.test.ts). */
import assert from 'node:assert/strict';
import { EMPTY_BYTES, MessageType, encodeString, getOption, type CoapMessage, type CoapOption } from '../../src/coap/message.js';
import { OptionNumber } from '../../src/coap/options.js';
import type { EndpointContext } from '../../src/exchange/context.js';
import { decodeOscoreOption } from '../../src/oscore/option.js';
import { unprotectRequest } from '../../src/oscore/protect.js';
import { OscoreSecurityContext, VolatileSequence } from '../../src/oscore/security-context.js';

/** A context pair: `sender` is the side that sends requests (named after its peer), `receiver` the other. */
export function pair(name: string, senderId: number, receiverId: number) {
  const masterSecret = Buffer.from(`secret of ${name}`.padEnd(16, '.'));
  return {
    name,
    sender: new OscoreSecurityContext({ masterSecret, senderId: Buffer.from([senderId]), recipientIds: [Buffer.from([receiverId])], name: `${name} (towards the receiver)` }, new VolatileSequence()),
    receiver: new OscoreSecurityContext({ masterSecret, senderId: Buffer.from([receiverId]), recipientIds: [Buffer.from([senderId])], name }, new VolatileSequence()),
  };
}

export type Pair = ReturnType<typeof pair>;

/**
 * A god's-eye view for assertions only: removes every layer of a request it has a receiver context
 * for and names them, outermost first. Returns the names and the innermost message reached.
 */
export function peel(message: CoapMessage, pairs: Pair[]): { layers: string[]; inner: CoapMessage } {
  const layers: string[] = [];
  let m = message;
  while (getOption(m, OptionNumber.Oscore)) {
    const { kid } = decodeOscoreOption(getOption(m, OptionNumber.Oscore)!);
    const p = pairs.find((x) => kid && x.receiver.recipient(kid));
    if (!p) break;
    const r = unprotectRequest(m, () => p.receiver.recipient(kid!)!.params);
    assert.ok(r.ok, `the ${p.name} layer verifies`);
    layers.push(p.name);
    m = r.message;
  }
  return { layers, inner: m };
}

export const msg = (code: number, options: CoapOption[], payload: Uint8Array = EMPTY_BYTES): CoapMessage => ({
  type: MessageType.CON, code, messageId: 0, token: EMPTY_BYTES, options: options.sort((a, b) => a.number - b.number), payload,
});
export const path = (...segments: string[]): CoapOption[] => segments.map((s) => ({ number: OptionNumber.UriPath, value: encodeString(s) }));
export const names = (context: EndpointContext): string[] => (context.oscore ?? []).map((l) => l.peer);
export const outerNumbers = (m: CoapMessage): number[] => [...new Set(m.options.map((o) => o.number))];
