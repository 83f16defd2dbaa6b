/**
 * A publisher's protection with a durable Sender Sequence Number: the counter is kept like OSCORE's
 * (RFC 8613 Appendix B.1.1, src/credentials/sequence-store.ts), one per (group key, Gid, Sender ID),
 * so a new generation starts at 0 (profile §6.1) and a restart never reuses a nonce.
 */
import { SequenceNumberStore } from '../credentials/sequence-store.js';
import { PubSubKeyError, type TopicKeyMaterial } from './key-material.js';
import { protectPublication, type Publisher, type TopicBinding } from './publication.js';

/** Numbers reserved per durable write (B.1.1's K). */
const SEQUENCE_RESERVE = 32;

export class PublisherSession {
  readonly #publisher: Publisher;
  readonly #sequence: SequenceNumberStore;

  private constructor(publisher: Publisher, sequence: SequenceNumberStore) {
    this.#publisher = publisher;
    this.#sequence = sequence;
  }

  static open(material: TopicKeyMaterial, stateDirectory: string): PublisherSession {
    if (material.senderId === undefined || material.signingKey === undefined) throw new PubSubKeyError(`"${material.member}" is not a publisher of "${material.topic}"`);
    const publisher: Publisher = { groupKey: material.groupKey, senderId: material.senderId, signingKey: material.signingKey, signAlg: material.signAlg };
    const identity = { masterSecret: material.groupKey.key, idContext: material.groupKey.gid, senderId: material.senderId };
    return new PublisherSession(publisher, SequenceNumberStore.open(stateDirectory, identity, { reserve: SEQUENCE_RESERVE }));
  }

  protect(plaintext: Uint8Array, binding: TopicBinding | undefined, now = Date.now()): Uint8Array {
    return protectPublication(this.#publisher, this.#sequence.next(), plaintext, binding, now);
  }

  close(): void {
    this.#sequence.close();
  }
}
