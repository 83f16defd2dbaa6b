/**
 * Responses to group requests matched by token alone (draft-ietf-core-groupcomm-bis §3.1.4: "the
 * source endpoint of the response is not matched to the destination endpoint of the request,
 * since for a group request these will never match"; RFC 7252 §8.2).
 *
 * This is the one seam between the group client and what carries its messages: give it the
 * responses the messaging layer hands up, and it routes each to the listener of its token, from
 * whichever server it came. A response-stream matcher in the exchange layer can take its place.
 */
import { tokenToHex, type CoapMessage } from '../coap/message.js';
import type { PeerAddress } from '../transport/transport.js';

/** Hears every response carrying its token; returns false to reject one (RST, RFC 7641 §3.6). */
export type GroupResponseListener = (response: CoapMessage, origin: PeerAddress) => boolean;

export class TokenMatcher {
  readonly #listeners = new Map<string, GroupResponseListener>();

  /** Registers `listener` for `token`; returns the function that removes it. */
  listen(token: Uint8Array, listener: GroupResponseListener): () => void {
    const key = tokenToHex(token);
    if (this.#listeners.has(key)) throw new Error(`token ${key} is already in use`);
    this.#listeners.set(key, listener);
    return () => {
      if (this.#listeners.get(key) === listener) this.#listeners.delete(key);
    };
  }

  inUse(token: Uint8Array): boolean {
    return this.#listeners.has(tokenToHex(token));
  }

  get size(): number {
    return this.#listeners.size;
  }

  /** False when no request waits for this token (the messaging layer then rejects the response). */
  match(response: CoapMessage, origin: PeerAddress): boolean {
    const listener = this.#listeners.get(tokenToHex(response.token));
    return listener !== undefined && listener(response, origin);
  }
}
