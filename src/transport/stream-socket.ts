/**
 * A Node net.Socket (plain TCP or TLS) as a StreamLink: RFC 8323 §3.2 length framing over the
 * byte stream. Shared by tcp.ts and tls.ts, which differ only in how the socket is made.
 */
import type { Socket } from 'node:net';
import type { PeerAddress, StreamLink, TransportSecurity } from './transport.js';

/** How long an ended socket may take to finish closing before it is destroyed. */
const END_GRACE_MS = 2_000;

export class SocketLink implements StreamLink {
  readonly framing = 'length' as const;
  private error: Error | undefined;

  constructor(
    private readonly socket: Socket,
    readonly peer: PeerAddress,
    readonly security: TransportSecurity | undefined,
  ) {
    socket.setNoDelay(true);
    // Until setHandlers: remember a failure, so `closed` can report it.
    socket.on('error', (error) => {
      this.error = error;
    });
  }

  write(data: Uint8Array): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  }

  end(): void {
    if (this.socket.destroyed) return;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), END_GRACE_MS).unref();
  }

  destroy(): void {
    this.socket.destroy();
  }

  setHandlers(handlers: { data(data: Uint8Array): void; closed(error: Error | undefined): void }): void {
    this.socket.on('data', (data: Buffer) => handlers.data(data));
    this.socket.on('close', () => handlers.closed(this.error));
    if (this.socket.destroyed) queueMicrotask(() => handlers.closed(this.error));
  }
}

/** The remote address of a connected socket (undefined once it is gone). */
export function socketPeer(socket: Socket): PeerAddress | undefined {
  const address = socket.remoteAddress;
  const port = socket.remotePort;
  if (address === undefined || port === undefined) return undefined;
  return { address: address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address, port };
}
