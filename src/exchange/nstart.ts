/**
 * RFC 7252 §4.7: at most NSTART outstanding interactions per peer; further requests wait in a
 * FIFO queue. An interaction stops being outstanding when its ACK or response arrives, or it fails.
 */
/** A request waiting for a slot; `start` runs once it has one. */
export interface Startable {
  start(): void;
}

export class NstartGate {
  private readonly peers = new Map<string, { active: number; queue: Startable[] }>();

  constructor(private readonly limit: number) {}

  /** Starts `waiter` now if a slot is free, otherwise when one frees up. */
  acquire(peerKey: string, waiter: Startable): void {
    let peer = this.peers.get(peerKey);
    if (!peer) {
      peer = { active: 0, queue: [] };
      this.peers.set(peerKey, peer);
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
    const peer = this.peers.get(peerKey);
    const i = peer ? peer.queue.indexOf(waiter) : -1;
    if (i < 0) return false;
    peer!.queue.splice(i, 1);
    return true;
  }

  release(peerKey: string): void {
    const peer = this.peers.get(peerKey);
    if (!peer) return;
    const next = peer.queue.shift();
    if (next) {
      next.start(); // the slot passes straight to the next request
      return;
    }
    peer.active--;
    if (peer.active <= 0) this.peers.delete(peerKey);
  }

  outstanding(peerKey: string): number {
    return this.peers.get(peerKey)?.active ?? 0;
  }

  queued(peerKey: string): number {
    return this.peers.get(peerKey)?.queue.length ?? 0;
  }
}
