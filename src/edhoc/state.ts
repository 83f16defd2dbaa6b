/**
 * Typestate support: every protocol state is an object that one step consumes. Using it again
 * (a replayed message against the same state, or a retried step after an error) throws
 * EdhocStateError, so a session can never, for instance, derive a second message_3 with the same
 * K_3/IV_3 (RFC 9528 §7).
 */
import { EdhocStateError } from './errors.js';

export abstract class SingleUseState {
  #spent = false;

  /** Whether a step has already consumed this state. */
  get spent(): boolean {
    return this.#spent;
  }

  protected consume(step: string): void {
    if (this.#spent) throw new EdhocStateError(`${this.constructor.name} already used; ${step} needs a fresh state`);
    this.#spent = true;
  }
}

/** The four authentication methods (§3.2): who signs and who uses a static DH key. */
export type EdhocMethod = 0 | 1 | 2 | 3;

export const isMethod = (m: unknown): m is EdhocMethod => m === 0 || m === 1 || m === 2 || m === 3;

/** Methods 2 and 3: the Initiator authenticates with a static DH key. */
export const initiatorUsesStaticDh = (m: EdhocMethod): boolean => m === 2 || m === 3;

/** Methods 1 and 3: the Responder authenticates with a static DH key. */
export const responderUsesStaticDh = (m: EdhocMethod): boolean => m === 1 || m === 3;
