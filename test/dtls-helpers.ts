/** Shared helpers for the DTLS tests: a fake clock and an in-memory datagram pump. */
import { type KeyObject } from 'node:crypto';
import type { DtlsClient, DtlsEvent, DtlsServerEngine } from '../src/dtls/index.js';
import { generateKeyPairOn, CoseCurve } from '../src/cose/index.js';

export class FakeClock {
  t = 1_000_000;
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

export const PEER = '192.0.2.1:40000';

export interface PumpResult {
  clientEvents: DtlsEvent[];
  serverEvents: DtlsEvent[];
  clientAppData: Buffer[];
  serverAppData: Buffer[];
  toServer: number;
  toClient: number;
}

export interface PumpOptions {
  /** Return true to drop the n-th datagram (0-based) travelling to the server. */
  dropToServer?: (n: number, d: Buffer) => boolean;
  dropToClient?: (n: number, d: Buffer) => boolean;
  /** Rewrite datagrams to the server (tampering). */
  mutateToServer?: (n: number, d: Buffer) => Buffer;
  mutateToClient?: (n: number, d: Buffer) => Buffer;
  peer?: string;
}

/**
 * Delivers datagrams between a client and a server engine until both queues are empty. Bounded:
 * at most 500 deliveries.
 */
export function pump(client: DtlsClient, server: DtlsServerEngine, initial: readonly Buffer[], opts: PumpOptions = {}, acc?: PumpResult): PumpResult {
  const peer = opts.peer ?? PEER;
  const r: PumpResult = acc ?? { clientEvents: [], serverEvents: [], clientAppData: [], serverAppData: [], toServer: 0, toClient: 0 };
  const queue: Array<{ to: 'server' | 'client'; d: Buffer }> = initial.map((d) => ({ to: 'server' as const, d }));
  let steps = 0;
  while (queue.length > 0) {
    if (++steps > 500) throw new Error('pump did not converge');
    const { to, d } = queue.shift()!;
    if (to === 'server') {
      const n = r.toServer++;
      if (opts.dropToServer?.(n, d)) continue;
      const data = opts.mutateToServer ? opts.mutateToServer(n, d) : d;
      const o = server.receive(data, peer);
      r.serverEvents.push(...o.events);
      r.serverAppData.push(...o.appData);
      for (const s of o.send) queue.push({ to: 'client', d: s });
    } else {
      const n = r.toClient++;
      if (opts.dropToClient?.(n, d)) continue;
      const o = client.receive(opts.mutateToClient ? opts.mutateToClient(n, d) : d);
      r.clientEvents.push(...o.events);
      r.clientAppData.push(...o.appData);
      for (const s of o.send) queue.push({ to: 'server', d: s });
    }
  }
  return r;
}

export function p256(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairOn(CoseCurve.P256);
}

export function hasEvent(events: readonly DtlsEvent[], type: DtlsEvent['type']): boolean {
  return events.some((e) => e.type === type);
}

export function alertsOf(events: DtlsEvent[], origin?: 'local' | 'remote'): number[] {
  return events.flatMap((e) => (e.type === 'alert' && (!origin || e.origin === origin) ? [e.description] : []));
}
