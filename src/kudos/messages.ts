/**
 * The message side of KUDOS (draft-ietf-core-oscore-key-update §4.1, §4.3.1): reading the OSCORE
 * option of a message, adding a KUDOS message's 'x' and 'nonce', and the (X, nonce) pair helpers
 * the state machine (session.ts) keys its bookkeeping on.
 */
import { createHash } from 'node:crypto';
import type { CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { MalformedOscoreOption } from '../oscore/errors.js';
import { type OscoreOptionValue, decodeOscoreOption, encodeOscoreOption } from '../oscore/option.js';
import { type ContextMaterial, type NoncePair, X_Z, pairInput, updateCtx } from './update-ctx.js';

/** §4.3.1: CTX_TEMP = updateCtx(X | N, 0x, CTX_IN), from the pair of a divergent message. */
export function temporaryContext(pair: NoncePair, ctxIn: ContextMaterial): ContextMaterial {
  return updateCtx(pairInput(pair), new Uint8Array(0), ctxIn);
}

export const pairKey = (pair: NoncePair): string => `${(pair.x & ~X_Z).toString(16)}:${Buffer.from(pair.nonce).toString('hex')}`;

/** The X byte as it enters updateCtx for CTX_NEW: the z bit cleared (see docs/kudos.md). */
export function normalised(pair: NoncePair): NoncePair {
  return { x: pair.x & ~X_Z, nonce: pair.nonce };
}

export function readOption(message: CoapMessage): { ok: true; value: OscoreOptionValue } | { ok: false; reason: string } {
  const values = message.options.filter((o) => o.number === OptionNumber.Oscore);
  if (values.length !== 1) return { ok: false, reason: values.length === 0 ? 'Missing OSCORE option' : 'Failed to decode COSE: repeated OSCORE option' };
  try {
    return { ok: true, value: decodeOscoreOption(values[0]!.value) };
  } catch (e) {
    if (e instanceof MalformedOscoreOption) return { ok: false, reason: `Failed to decode COSE: ${e.message}` };
    throw e;
  }
}

/** Adds 'x' and 'nonce' to a protected message's OSCORE option (the option is not in the AAD, RFC 8613 §5.4). */
export function withKudosFields(message: CoapMessage, kudos: { x: number; nonce: Uint8Array }): CoapMessage {
  return {
    ...message,
    options: message.options.map((o) => {
      if (o.number !== OptionNumber.Oscore) return o;
      const value = decodeOscoreOption(o.value);
      return { number: o.number, value: encodeOscoreOption({ ...value, kudos }) };
    }),
  };
}

export function fingerprint(key: Uint8Array): string {
  // Not the key: a one-way digest, so accounting never exposes it.
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

export const equal = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;
