/**
 * RFC 7252 §4.7: at most NSTART outstanding interactions per peer; further requests wait in a
 * FIFO queue. An interaction stops being outstanding when its ACK or response arrives, or it fails.
 */
/** A request waiting for a slot; `start` runs once it has one. */
export interface Startable {
  start(): void;
}

interface PeerSlots {
  active: number;
  queue: Startable[];
}

export class NstartGate {
  private readonly peers = new Map<string, PeerSlots>();
  /**
   * The peer of the latest acquire or release: a client's requests mostly go to one peer, whose
   * key the endpoint passes as the same string each time (a comparison, not a hash and a lookup).
   * Always an entry of `peers` (cleared when that entry goes).
   */
  private lastKey: string | undefined;
  private lastPeer: PeerSlots | undefined;

  constructor(private readonly limit: number) {}

  private slotsOf(peerKey: string): PeerSlots | undefined {
    if (peerKey === this.lastKey) return this.lastPeer;
    const peer = this.peers.get(peerKey);
    if (peer !== undefined) {
      this.lastKey = peerKey;
      this.lastPeer = peer;
    }
    return peer;
  }

  /** Starts `waiter` now if a slot is free, otherwise when one frees up. */
  acquire(peerKey: string, waiter: Startable): void {
    let peer = this.slotsOf(peerKey);
    if (!peer) {
      peer = { active: 0, queue: [] };
      this.peers.set(peerKey, peer);
      this.lastKey = peerKey;
      this.lastPeer = peer;
    }
    if (peer.active < this.limit) {
      peer.active++;
      waiter.start();
    } else {
      peer.queue.push(waiter);
    }
  }

  /** Removes a waiter that has not started yet (a cancelled request). */
  withdraw(peerKey: string, waiter: Startable): boolean {
    const peer = this.slotsOf(peerKey);
    const i = peer ? peer.queue.indexOf(waiter) : -1;
    if (i < 0) return false;
    peer!.queue.splice(i, 1);
    return true;
  }

  release(peerKey: string): void {
    const peer = this.slotsOf(peerKey);
    if (!peer) return;
    if (peer.queue.length > 0) {
      peer.queue.shift()!.start(); // the slot passes straight to the next request
      return;
    }
    peer.active--;
    if (peer.active <= 0) {
      this.peers.delete(peerKey);
      if (this.lastPeer === peer) this.lastKey = this.lastPeer = undefined;
    }
  }

  outstanding(peerKey: string): number {
    return this.slotsOf(peerKey)?.active ?? 0;
  }

  queued(peerKey: string): number {
    return this.slotsOf(peerKey)?.queue.length ?? 0;
  }
}
