/**
 * The order rules for the responses to one Observe registration (RFC 8613 §4.1.3.5.2, §7.4.1,
 * §8.4.2), crypto-free so the Node requester (requester.ts) and the browser build share them.
 */
export class NotificationOrder {
  /** §4.1.3.5.2: the largest Partial IV of the notifications accepted so far. */
  #notificationNumber: number | undefined;
  /** §8.4.2: "the AEAD nonce from the request was already used once". */
  #requestNonceUsed = false;

  /** Undefined when a verified response with this Partial IV (or none) may be delivered, else why not. */
  accept(sequenceNumber: number | undefined): Error | undefined {
    if (sequenceNumber === undefined) {
      if (this.#requestNonceUsed) return new Error('a second response without Partial IV');
      // §4.1.3.5.2: "the notification without Partial IV is considered the oldest" — once a
      // notification with a Partial IV was accepted, it can only be a delayed first response.
      if (this.#notificationNumber !== undefined) return new Error('a response without Partial IV after newer notifications (the oldest, RFC 8613 §4.1.3.5.2)');
      this.#requestNonceUsed = true;
      return undefined;
    }
    if (this.#notificationNumber !== undefined && sequenceNumber <= this.#notificationNumber) {
      return new Error(`notification replayed or reordered (Partial IV ${sequenceNumber})`); // §7.4.1
    }
    this.#notificationNumber = sequenceNumber;
    return undefined;
  }
}
