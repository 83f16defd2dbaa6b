/**
 * A publisher's protection with a durable Sender Sequence Number: the counter is kept like OSCORE's
 * (RFC 8613 Appendix B.1.1, src/credentials/sequence-store.ts), one per (group key, Gid, Sender ID),
 * so a new generation, and a new epoch of a generation with scheduled rekeying (key-epochs.ts),
 * starts at 0 (profile §6.1), and a restart never reuses a nonce.
 */
import { SequenceNumberStore } from '../credentials/sequence-store.js';
import { EpochKeyHolder } from './key-epochs.js';
import { PubSubKeyError, type TopicKeyMaterial } from './key-material.js';
import { protectPublication, type Publisher, type TopicBinding } from './publication.js';

/** Numbers reserved per durable write (B.1.1's K). */
const SEQUENCE_RESERVE = 32;

export class PublisherSession {
  readonly #material: TopicKeyMaterial;
  readonly #stateDirectory: string;
  readonly #keys: EpochKeyHolder;
  #publisher: Publisher | undefined;
  #sequence: SequenceNumberStore | undefined;

  private constructor(material: TopicKeyMaterial, stateDirectory: string) {
    this.#material = material;
    this.#stateDirectory = stateDirectory;
    this.#keys = new EpochKeyHolder(material.groupKey, material.epochs);
  }

  static open(material: TopicKeyMaterial, stateDirectory: string, now = Date.now()): PublisherSession {
    if (material.senderId === undefined || material.signingKey === undefined) throw new PubSubKeyError(`"${material.member}" is not a publisher of "${material.topic}"`);
    const session = new PublisherSession(material, stateDirectory);
    session.#publisherAt(now);
    return session;
  }

  protect(plaintext: Uint8Array, binding: TopicBinding | undefined, now = Date.now()): Uint8Array {
    const publisher = this.#publisherAt(now);
    return protectPublication(publisher, this.#sequence!.next(), plaintext, binding, now);
  }

  close(): void {
    this.#sequence?.close();
  }

  /** The publisher under the current epoch's key; a new epoch gets its own counter, from 0. */
  #publisherAt(now: number): Publisher {
    const groupKey = this.#keys.current(now);
    if (this.#publisher?.groupKey !== groupKey) {
      const m = this.#material;
      this.#sequence?.close();
      const identity = { masterSecret: groupKey.key, idContext: groupKey.gid, senderId: m.senderId! };
      this.#sequence = SequenceNumberStore.open(this.#stateDirectory, identity, { reserve: SEQUENCE_RESERVE });
      this.#publisher = { groupKey, senderId: m.senderId!, signingKey: m.signingKey!, signAlg: m.signAlg };
    }
    return this.#publisher;
  }
}
