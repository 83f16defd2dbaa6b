/**
 * The KDC's challenges N_S ('kdcchallenge', RFC 9594 §3.3, §3.3.2), one per client identity, shared
 * by the Group Manager and the pub-sub topic KDC: "the KDC MUST store the 'kdcchallenge' value
 * associated with the Client at least until it receives a Join Request". A client can make us
 * keep one each, so the store is bounded: past MAX_CHALLENGES the oldest is forgotten (that
 * client's Join Request then gets a 4.00 with a new one, §4.3.1.1).
 */
import { TokenTransferParam } from './parameters.js';

const MAX_CHALLENGES = 256;
/** RFC 9594 §3.3.2: "RECOMMENDED to be at least 8 bytes long". */
const CHALLENGE_LENGTH = 8;

export class KdcChallenges {
  readonly #pending = new Map<string, Uint8Array>();

  constructor(private readonly random: (n: number) => Uint8Array) {}

  /** A new N_S for the client, replacing its earlier one. */
  issue(clientId: string): Uint8Array {
    const challenge = Uint8Array.from(this.random(CHALLENGE_LENGTH));
    this.#pending.delete(clientId);
    while (this.#pending.size >= MAX_CHALLENGES) this.#pending.delete(this.#pending.keys().next().value!);
    this.#pending.set(clientId, challenge);
    return challenge;
  }

  /** The client's current N_S, if it still has one. */
  get(clientId: string): Uint8Array | undefined {
    return this.#pending.get(clientId);
  }

  /** The Join Request that used it succeeded. */
  forget(clientId: string): void {
    this.#pending.delete(clientId);
  }
}

/**
 * The Token Transfer Response's additions (RFC 9594 §3.3): 'sign_info' for the token's groups
 * when the client asked for it, and a new N_S when the token grants a role that joins with a
 * credential in one of them.
 */
export function tokenTransferEntries<G>(options: {
  groups: readonly G[];
  wantsSignInfo: boolean;
  signInfoOf: (group: G) => unknown[];
  joinsWithCredential: (group: G) => boolean;
  issueChallenge: () => Uint8Array;
}): Array<readonly [number, unknown]> {
  const entries: Array<readonly [number, unknown]> = [];
  if (options.wantsSignInfo && options.groups.length > 0) entries.push([TokenTransferParam.sign_info, options.groups.flatMap(options.signInfoOf)]);
  if (options.groups.some(options.joinsWithCredential)) entries.push([TokenTransferParam.kdcchallenge, options.issueChallenge()]);
  return entries;
}
