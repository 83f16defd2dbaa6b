/**
 * Issue 28: DTLS (PSK) hops for the lockstep threat runs. The sans-IO DTLS engine (src/dtls) runs
 * over an in-memory wire on the fake clock, so a run is as deterministic as the plain ones and the
 * threat report can put "hop-by-hop DTLS" next to OSCORE. The wire carries records, not CoAP; an
 * on-path attacker outside the proxy taps it (src/attack/record-attacks.ts).
 */
import { DtlsClient, DtlsServerEngine, type DtlsOutput, type DtlsSessionSecret } from '../src/dtls/index.js';
import type { DatagramHandler, DatagramTransport, PeerAddress, TransportSecurity } from '../src/transport/transport.js';
import { peerKey } from '../src/transport/transport.js';
import type { FakeScheduler } from '../src/util/scheduler.js';

export interface WireDatagram {
  from: PeerAddress;
  to: PeerAddress;
  bytes: Buffer;
}

/** Records between DTLS endpoints, 1 ms latency; `tap` may replace what is delivered. */
export class DtlsWire {
  private readonly nodes = new Map<string, DtlsLinkTransport>();
  /** Everything sent on the wire, before any tampering (what a passive observer sees). */
  readonly log: WireDatagram[] = [];
  tap: (d: WireDatagram) => { bytes: Buffer; delayMs: number }[] | undefined = () => undefined;

  constructor(readonly clock: FakeScheduler) {}

  attach(t: DtlsLinkTransport): void {
    this.nodes.set(peerKey(t.localAddress()), t);
  }

  carry(from: PeerAddress, to: PeerAddress, bytes: Buffer): void {
    const d = { from, to, bytes: Buffer.from(bytes) };
    this.log.push(d);
    const out = this.tap(d) ?? [{ bytes: d.bytes, delayMs: 0 }];
    for (const e of out) this.clock.schedule(1 + e.delayMs, () => this.nodes.get(peerKey(to))?.receive(e.bytes, from));
  }
}

const psk = { identity: Buffer.from('threat-hop'), key: Buffer.from('hop-by-hop dtls psk!') };
const securityOf = (identity: string): TransportSecurity => ({ kind: 'dtls', identity, mode: 'psk', cipherSuite: 'TLS_PSK_WITH_AES_128_CCM_8' });

/**
 * A DatagramTransport over DtlsWire: a DTLS client towards every peer it sends to, or a DTLS
 * server (cookie exchange included) for every peer that connects. Records that arrive on an
 * established session and yield nothing (bad MAC, replayed, not a record) are counted in
 * `refused`: that is the DTLS layer detecting an attack.
 */
export class DtlsLinkTransport implements DatagramTransport {
  readonly scheme = 'coaps' as const;
  private handler: DatagramHandler = () => {};
  private readonly clients = new Map<string, { conn: DtlsClient; queue: Buffer[] }>();
  private readonly server: DtlsServerEngine | undefined;
  private readonly timers = new Set<string>();
  /** Records refused on an established session. */
  refused = 0;

  constructor(
    private readonly wire: DtlsWire,
    private readonly address: PeerAddress,
    role: 'client' | 'server',
    private readonly onSecret?: (s: DtlsSessionSecret) => void,
  ) {
    const now = () => wire.clock.now();
    if (role === 'server') this.server = new DtlsServerEngine({ now, pskStore: (id) => (id.equals(psk.identity) ? psk.key : undefined), ...(onSecret ? { onSecret } : {}) });
    wire.attach(this);
  }

  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }

  localAddress(): PeerAddress {
    return this.address;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  send(data: Uint8Array, peer: PeerAddress): void {
    const key = peerKey(peer);
    if (this.server) {
      const conn = this.server.connection(key);
      if (conn?.state === 'connected') for (const r of conn.send(data)) this.wire.carry(this.address, peer, r);
      return;
    }
    let session = this.clients.get(key);
    if (!session) {
      const conn = new DtlsClient({ now: () => this.wire.clock.now(), psk, ...(this.onSecret ? { onSecret: this.onSecret } : {}) });
      session = { conn, queue: [] };
      this.clients.set(key, session);
      for (const r of conn.start()) this.wire.carry(this.address, peer, r);
      this.arm(key, peer);
    }
    if (session.conn.state === 'connected') for (const r of session.conn.send(data)) this.wire.carry(this.address, peer, r);
    else if (session.queue.length < 32) session.queue.push(Buffer.from(data));
  }

  /** @internal from the wire */
  receive(bytes: Buffer, from: PeerAddress): void {
    const key = peerKey(from);
    if (this.server) {
      const established = this.server.connection(key)?.state === 'connected';
      const out = this.server.receive(bytes, key);
      this.emit(out, from, established, securityOf(psk.identity.toString()));
      this.arm(key, from);
      return;
    }
    const session = this.clients.get(key);
    if (!session) return;
    const established = session.conn.state === 'connected';
    const out = session.conn.receive(bytes);
    this.emit(out, from, established, securityOf('server'));
    if (session.conn.state === 'connected') for (const q of session.queue.splice(0)) for (const r of session.conn.send(q)) this.wire.carry(this.address, from, r);
    this.arm(key, from);
  }

  private emit(out: DtlsOutput, from: PeerAddress, established: boolean, security: TransportSecurity): void {
    for (const r of out.send) this.wire.carry(this.address, from, r);
    if (established && out.appData.length === 0 && out.send.length === 0 && out.events.length === 0) this.refused++;
    for (const app of out.appData) this.handler(app, from, security);
  }

  /** Handshake retransmission timers, on the fake clock (one pending per peer). */
  private arm(key: string, peer: PeerAddress): void {
    const conn = this.server ? this.server.connection(key) : this.clients.get(key)?.conn;
    const at = conn?.nextTimeout();
    if (!conn || at === undefined || this.timers.has(key)) return;
    this.timers.add(key);
    this.wire.clock.schedule(at - this.wire.clock.now(), () => {
      this.timers.delete(key);
      for (const r of conn.handleTimeout(this.wire.clock.now())) this.wire.carry(this.address, peer, r);
      this.arm(key, peer);
    });
  }
}
