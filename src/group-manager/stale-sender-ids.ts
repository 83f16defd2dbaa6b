/**
 * The stale Sender IDs of a group (draft-ietf-ace-key-groupcomm-oscore §7.1): one set per version
 * of the keying material, holding the Sender IDs that stopped being used under that version (a
 * member left, was removed or re-joined), at most MAX_STALE_SETS of them, the oldest dropped
 * first. A member that missed rekeyings asks with the version it has (§11.3.1) and deletes the
 * Recipient Contexts and credentials of those Sender IDs (Group OSCORE §12.2). Pure data; the
 * online manager keeps it in its state.
 */

/** One version's set; Sender IDs in hex. */
export interface StaleSet {
  num: number;
  senderIds: string[];
}

/** §7.1's N (> 1): sets kept per group. */
export const MAX_STALE_SETS = 16;

/**
 * §7.1 at a rekey from `from` to `to`: the Sender IDs that went stale under `from` join its set,
 * the oldest set goes if N are kept, and `to` starts with an empty set.
 */
export function recordRekey(sets: StaleSet[], from: number, staleSenderIds: readonly string[], to: number): void {
  let current = sets.find((s) => s.num === from);
  if (current === undefined) {
    current = { num: from, senderIds: [] };
    sets.push(current);
  }
  for (const id of staleSenderIds) if (!current.senderIds.includes(id)) current.senderIds.push(id);
  sets.sort((a, b) => a.num - b.num);
  while (sets.length >= MAX_STALE_SETS) sets.shift();
  sets.push({ num: to, senderIds: [] });
}

/**
 * §11.3.1 for a client at version `v` (< `current`): the Sender IDs of the SKEW = current - v + 1
 * most recent sets without duplicates, or undefined when fewer sets are kept (the response then
 * has no payload, and the client must start over).
 */
export function staleSince(sets: readonly StaleSet[], v: number, current: number): string[] | undefined {
  const skew = current - v + 1;
  if (skew > sets.length) return undefined;
  return [...new Set(sets.slice(-skew).flatMap((s) => s.senderIds))];
}

/**
 * §9.2: a member's relinquished Sender ID (it got a new one without a rekey) joins "the most recent
 * set of stale Sender IDs", the one of the current version `current`.
 */
export function recordStale(sets: StaleSet[], current: number, senderId: string): void {
  let set = sets.find((s) => s.num === current);
  if (set === undefined) {
    set = { num: current, senderIds: [] };
    sets.push(set);
    sets.sort((a, b) => a.num - b.num);
    while (sets.length > MAX_STALE_SETS) sets.shift();
  }
  if (!set.senderIds.includes(senderId)) set.senderIds.push(senderId);
}
