/**
 * An in-memory stream network for RFC 8323 lockstep tests: links carry WebSocket-framed CoAP
 * messages, and nothing moves until the test calls deliver(), so a test decides exactly when
 * frames arrive and connections close.
 */
import type { CoapMessage } from '../../src/coap/message.js';
import { decodeWebSocketFrame } from '../../src/stream/frame.js';
import type { PeerAddress, StreamLink, StreamTransport } from '../../src/transport/transport.js';

/** One side of an in-memory connection; frames go to the other side when the test delivers them. */
export class MemoryLink implements StreamLink {
  readonly framing = 'websocket' as const;
  readonly security = undefined;
  other!: MemoryLink;
  handlers: { data(d: Uint8Array): void; closed(e: Error | undefined): void } | undefined;
  inbox: Uint8Array[] = [];
  /** Every frame this side wrote, decoded. */
  wrote: CoapMessage[] = [];
  ended = false;

  constructor(
    readonly peer: PeerAddress,
    private readonly net: MemoryNet,
  ) {}

  write(data: Uint8Array): void {
    if (this.ended) return;
    this.wrote.push(decodeWebSocketFrame(data));
    this.other.inbox.push(data);
    this.net.dirty.add(this.other);
  }
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.net.closing.add(this);
  }
  setHandlers(handlers: { data(d: Uint8Array): void; closed(e: Error | undefined): void }): void {
    this.handlers = handlers;
  }
}

export class MemoryNet {
  dirty = new Set<MemoryLink>();
  closing = new Set<MemoryLink>();
  links: MemoryLink[] = [];
  listeners = new Map<string, MemoryTransport>();

  /** Moves frames and closes until nothing moves (bounded). */
  deliver(): void {
    for (let round = 0; round < 50 && (this.dirty.size || this.closing.size); round++) {
      for (const link of [...this.dirty]) {
        // A link whose owner has not attached yet (its connect promise is still settling) keeps its frames.
        if (!link.handlers && !link.ended) continue;
        this.dirty.delete(link);
        for (const frame of link.inbox.splice(0)) if (!link.ended) link.handlers?.data(frame);
      }
      for (const link of [...this.closing]) {
        this.closing.delete(link);
        link.handlers?.closed(undefined);
        if (!link.other.ended) {
          link.other.ended = true;
          link.other.handlers?.closed(undefined);
        }
      }
    }
  }
}

export class MemoryTransport implements StreamTransport {
  readonly scheme = 'coap+ws' as const;
  accept: ((link: StreamLink) => void) | undefined;
  connects = 0;

  constructor(
    readonly address: PeerAddress,
    private readonly net: MemoryNet,
  ) {
    net.listeners.set(`${address.address}:${address.port}`, this);
  }

  async connect(peer: PeerAddress): Promise<StreamLink> {
    this.connects++;
    const server = this.net.listeners.get(`${peer.address}:${peer.port}`);
    if (!server?.accept) throw new Error('connection refused');
    const ours = new MemoryLink(peer, this.net);
    const theirs = new MemoryLink(this.address, this.net);
    ours.other = theirs;
    theirs.other = ours;
    this.net.links.push(ours, theirs);
    server.accept(theirs);
    return ours;
  }
  setAcceptHandler(handler: (link: StreamLink) => void): void {
    this.accept = handler;
  }
  localAddress(): PeerAddress {
    return this.address;
  }
  async close(): Promise<void> {}
}

