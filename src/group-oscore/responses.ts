/**
 * Responses from many servers to one request (draft-ietf-core-oscore-groupcomm §5.1, §5.3.1): for
 * one long exchange (a group request, or an Observe request) the client keeps, per server kid,
 * which Partial IVs it accepted — a sliding window like a server's replay window — and at most one
 * response without Partial IV, which counts as that server's oldest. Bounded: a request sent to a
 * group gets responses from at most `maxServers` servers (only verified responses reach here, so
 * only members can fill it).
 */
import { toHex } from '../cose/cbor.js';
import { ReplayWindow } from '../oscore/replay.js';

interface ServerState {
  readonly window: ReplayWindow;
  sawResponseWithoutPiv: boolean;
}

export class GroupResponseTracker {
  readonly #servers = new Map<string, ServerState>();

  constructor(private readonly maxServers = 256, private readonly windowSize = 32) {}

  /**
   * Call after a response verified; true when it is new for its server and may be delivered.
   * `sequenceNumber` is the response's Partial IV, undefined when it carried none.
   */
  accept(kid: Uint8Array, sequenceNumber: number | undefined): boolean {
    const key = toHex(kid);
    let state = this.#servers.get(key);
    if (state === undefined) {
      if (this.#servers.size >= this.maxServers) return false;
      state = { window: new ReplayWindow(this.windowSize), sawResponseWithoutPiv: false };
      this.#servers.set(key, state);
    }
    if (sequenceNumber === undefined) {
      // §5.3.1: "a client MUST only accept at most one response without Partial IV from each server".
      if (state.sawResponseWithoutPiv) return false;
      state.sawResponseWithoutPiv = true;
      return true;
    }
    return state.window.accept(sequenceNumber);
  }

  /** §2.6.3.2: after a new security context, Response Numbers start again. */
  resetForNewContext(): void {
    this.#servers.clear();
  }

  /** The servers that answered, by kid (hex). */
  get servers(): string[] {
    return [...this.#servers.keys()];
  }
}
