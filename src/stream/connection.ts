/**
 * One RFC 8323 connection, sans-IO: bytes (or WebSocket messages) in, decoded requests and
 * responses out; messages in, frames out. It runs the signalling of §5 — the CSM that must open
 * each direction (§3.3), Ping/Pong (§5.4), Release (§5.5) and Abort (§5.6) — and honours the
 * peer's Max-Message-Size. Time comes from an injected Scheduler, so lockstep tests drive it with
 * a fake clock; the socket is behind `StreamIo`.
 */
import { decodeString, type CoapMessage } from '../coap/message.js';
import type { Scheduler, Timer } from '../util/scheduler.js';
import { FrameDecoder, decodeWebSocketFrame, encodeFrame, type Framing } from './frame.js';
import {
  BASE_MAX_MESSAGE_SIZE,
  SignalCode,
  SignalError,
  abortMessage,
  csmMessage,
  isSignalCode,
  parseAbort,
  parseCsm,
  parsePingOrPong,
  parseRelease,
  pingMessage,
  pongMessage,
  releaseMessage,
} from './signals.js';
import { bytesToHex } from '../util/bytes.js';

/** What the connection needs from its socket. */
export interface StreamIo {
  /** One frame: for WebSockets, exactly one WebSocket binary message (§4.2). */
  write(frame: Uint8Array): void;
  /** Ends the transport connection once queued writes are out. */
  end(): void;
}

export interface StreamConnectionEvents {
  /** A request or response (never a signal or an Empty message). */
  onMessage(message: CoapMessage): void;
  /** The peer's first CSM arrived: messages may flow. */
  onReady?(): void;
  /** The peer asked for an orderly shutdown (§5.5); the owner closes once its answers are out. */
  onRelease?(info: { diagnostic: string; holdOffSeconds?: number; alternativeAddresses: string[] }): void;
  /** The connection ended, once. `error` says why when it was not an orderly close. */
  onClosed(error: Error | undefined): void;
}

export interface StreamSettings {
  /** What we accept, sent in our CSM (§5.3.1). Default 1152 + 7 KiB (room for BERT). */
  maxMessageSize?: number;
  /** Offer block-wise transfer, and BERT when maxMessageSize > 1152 (§5.3.2). Default true. */
  blockWiseTransfer?: boolean;
  /** How long the peer's CSM may take after the connection opened. Default 10 s. */
  csmTimeout?: number;
  /** How long a Ping waits for its Pong. Default 10 s. */
  pingTimeout?: number;
  /** After we sent Release, how long the peer may take to close before we do. Default 5 s. */
  releaseTimeout?: number;
  /** Messages queued before the peer's CSM arrived; beyond this, send throws. Default 256. */
  maxQueuedBeforeCsm?: number;
}

export const DEFAULT_STREAM_SETTINGS: Required<StreamSettings> = {
  maxMessageSize: 8 * 1024 + 1152,
  blockWiseTransfer: true,
  csmTimeout: 10_000,
  pingTimeout: 10_000,
  releaseTimeout: 5_000,
  maxQueuedBeforeCsm: 256,
};

export class StreamClosedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamClosedError';
  }
}

export class MessageTooLargeError extends RangeError {
  constructor(size: number, limit: number) {
    super(`message of ${size} bytes exceeds the peer's Max-Message-Size of ${limit} (RFC 8323 §5.3.1)`);
    this.name = 'MessageTooLargeError';
  }
}

type State = 'awaiting-csm' | 'open' | 'releasing' | 'closed';

interface PendingPing {
  resolve(rtt: number): void;
  reject(error: Error): void;
  sentAt: number;
  timer: Timer;
}

export class StreamConnection {
  private state: State = 'awaiting-csm';
  private readonly settings: Required<StreamSettings>;
  private readonly decoder: FrameDecoder | undefined;
  /** The peer's CSM values so far (cumulative, §5.3), starting at the base values. */
  private peerMaxMessageSize = BASE_MAX_MESSAGE_SIZE;
  private peerBlockWise = false;
  private queued: CoapMessage[] = [];
  private readonly pings = new Map<string, PendingPing>();
  private nextPingToken = 0;
  private csmTimer: Timer | undefined;
  private releaseTimer: Timer | undefined;
  /** Scheduler time of the last frame in either direction (for the owner's idle and keep-alive rules). */
  lastActivity: number;

  constructor(
    private readonly framing: Framing,
    private readonly io: StreamIo,
    private readonly events: StreamConnectionEvents,
    private readonly scheduler: Scheduler,
    settings: StreamSettings = {},
  ) {
    this.settings = { ...DEFAULT_STREAM_SETTINGS, ...settings };
    this.decoder = framing === 'length' ? new FrameDecoder(this.settings.maxMessageSize) : undefined;
    this.lastActivity = scheduler.now();
  }

  /**
   * Sends our CSM (§3.3: the first message on the connection, and the initiator must not wait for
   * the acceptor's; we do not wait on either side) and starts waiting for the peer's.
   */
  start(): void {
    this.writeMessage(csmMessage({ maxMessageSize: this.settings.maxMessageSize, blockWiseTransfer: this.settings.blockWiseTransfer }));
    this.csmTimer = this.scheduler.schedule(this.settings.csmTimeout, () => this.abort('no CSM received (RFC 8323 §3.3)'));
  }

  get open(): boolean {
    return this.state === 'open' || this.state === 'awaiting-csm';
  }

  get ready(): boolean {
    return this.state === 'open';
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  /** The peer's current Max-Message-Size (§5.3.1). */
  get peerMaxMessage(): number {
    return this.peerMaxMessageSize;
  }

  /** Both sides offered Block-Wise-Transfer with a Max-Message-Size above 1152 (§5.3.2), so BERT may be used. */
  get bertAllowed(): boolean {
    return (
      this.peerBlockWise && this.peerMaxMessageSize > BASE_MAX_MESSAGE_SIZE && this.settings.blockWiseTransfer && this.settings.maxMessageSize > BASE_MAX_MESSAGE_SIZE
    );
  }

  /**
   * Sends a request or response. Before the peer's CSM it waits in a bounded queue, because that
   * CSM may lower the size limit (§3.3); then a message beyond the peer's Max-Message-Size throws.
   */
  send(message: CoapMessage): void {
    if (this.state === 'closed' || this.state === 'releasing') throw new StreamClosedError('the connection is closed');
    if (this.state === 'awaiting-csm') {
      if (this.queued.length >= this.settings.maxQueuedBeforeCsm) throw new StreamClosedError('too many messages waiting for the peer\'s CSM');
      this.queued.push(message);
      return;
    }
    this.writeChecked(message);
  }

  /** Ping (§5.4); resolves with the round-trip time in ms when the Pong arrives. */
  ping(custody = false): Promise<number> {
    if (this.state === 'closed') return Promise.reject(new StreamClosedError('the connection is closed'));
    const sequence = this.nextPingToken++ & 0xffff;
    const token = Uint8Array.of(sequence >> 8, sequence & 0xff);
    const key = bytesToHex(token);
    return new Promise<number>((resolve, reject) => {
      const timer = this.scheduler.schedule(this.settings.pingTimeout, () => {
        this.pings.delete(key);
        reject(new StreamClosedError(`no Pong within ${this.settings.pingTimeout} ms`));
      });
      this.pings.set(key, { resolve, reject, sentAt: this.scheduler.now(), timer });
      this.writeMessage(pingMessage(token, custody));
    });
  }

  /** Orderly shutdown (§5.5): tells the peer, which closes; we close anyway after releaseTimeout. */
  release(diagnostic = ''): void {
    if (this.state === 'closed' || this.state === 'releasing') return;
    this.writeMessage(releaseMessage(diagnostic));
    this.state = 'releasing';
    this.releaseTimer = this.scheduler.schedule(this.settings.releaseTimeout, () => this.finish(undefined, true));
  }

  /** Abort (§5.6): tells the peer why, and closes at once. */
  abort(diagnostic: string, badCsmOption?: number): void {
    if (this.state === 'closed') return;
    this.writeMessage(abortMessage(diagnostic, badCsmOption));
    this.finish(new StreamClosedError(`aborted: ${diagnostic}`), true);
  }

  /** Closes without signalling (our side is done: the peer released, or everything went quiet). */
  end(): void {
    this.finish(undefined, true);
  }

  /** The socket closed under us (peer closed, reset, or our own end completing). */
  transportClosed(error?: Error): void {
    const orderly = this.state === 'releasing' || this.state === 'open';
    this.finish(error ?? (orderly ? undefined : new StreamClosedError('connection closed before the peer\'s CSM')), false);
  }

  /** Bytes from a TCP or TLS stream. */
  receiveBytes(data: Uint8Array): void {
    if (this.state === 'closed') return;
    let messages: CoapMessage[];
    try {
      messages = this.decoder!.push(data);
    } catch (error) {
      this.abort(`bad frame: ${(error as Error).message}`);
      return;
    }
    for (const message of messages) {
      if (this.closed) return; // an earlier message in this chunk ended the connection
      this.dispatch(message);
    }
  }

  /** One WebSocket binary message (§4.2). */
  receiveFrame(data: Uint8Array): void {
    if (this.state === 'closed') return;
    if (data.length > this.settings.maxMessageSize) {
      this.abort(`message of ${data.length} bytes exceeds the Max-Message-Size of ${this.settings.maxMessageSize}`);
      return;
    }
    let message: CoapMessage;
    try {
      message = decodeWebSocketFrame(data);
    } catch (error) {
      this.abort(`bad frame: ${(error as Error).message}`);
      return;
    }
    this.dispatch(message);
  }

  private dispatch(message: CoapMessage): void {
    this.lastActivity = this.scheduler.now();
    if (this.state === 'awaiting-csm' && message.code !== SignalCode.Csm) {
      this.abort('the first message was not a CSM (RFC 8323 §3.3)');
      return;
    }
    if (message.code === 0) return; // §3.4: Empty messages are keep-alives, ignored.
    if (!isSignalCode(message.code)) {
      this.events.onMessage(message);
      return;
    }
    try {
      this.onSignal(message);
    } catch (error) {
      if (!(error instanceof SignalError)) throw error;
      this.abort(error.message, error.badCsmOption);
    }
  }

  private onSignal(message: CoapMessage): void {
    switch (message.code) {
      case SignalCode.Csm: {
        const csm = parseCsm(message);
        if (csm.maxMessageSize !== undefined) this.peerMaxMessageSize = csm.maxMessageSize;
        if (csm.blockWiseTransfer) this.peerBlockWise = true;
        if (this.state === 'awaiting-csm') {
          this.state = 'open';
          this.csmTimer?.cancel();
          this.flushQueue();
          if (this.state === 'open') this.events.onReady?.();
        }
        return;
      }
      case SignalCode.Ping: {
        // Custody (§5.4.1): every request and response received before this Ping has been handed
        // to the application synchronously, in order, so the Pong can carry it at once.
        const { custody } = parsePingOrPong(message);
        this.writeMessage(pongMessage(message.token, custody));
        return;
      }
      case SignalCode.Pong: {
        parsePingOrPong(message);
        // §5.4 says the Pong repeats the Ping's token. libcoap 4.3.1 sends its Pong with no token;
        // the stream is ordered and Pings are answered in order, so such a Pong answers the oldest.
        let key = bytesToHex(message.token);
        if (message.token.length === 0 && !this.pings.has(key)) key = this.pings.keys().next().value ?? key;
        const ping = this.pings.get(key);
        if (!ping) return;
        this.pings.delete(key);
        ping.timer.cancel();
        ping.resolve(this.scheduler.now() - ping.sentAt);
        return;
      }
      case SignalCode.Release: {
        const release = parseRelease(message);
        const info = { diagnostic: decodeString(message.payload), alternativeAddresses: release.alternativeAddresses };
        if (this.events.onRelease) this.events.onRelease(release.holdOffSeconds === undefined ? info : { ...info, holdOffSeconds: release.holdOffSeconds });
        else this.end();
        return;
      }
      case SignalCode.Abort: {
        parseAbort(message);
        const diagnostic = decodeString(message.payload);
        this.finish(new StreamClosedError(`the peer aborted the connection${diagnostic ? `: ${diagnostic}` : ''}`), true);
        return;
      }
      default:
        // Signal codes nobody registered: nothing to do, and no rule says to abort.
        return;
    }
  }

  private flushQueue(): void {
    const queued = this.queued;
    this.queued = [];
    for (const message of queued) {
      if (this.state !== 'open') return;
      try {
        this.writeChecked(message);
      } catch (error) {
        // The peer's CSM forbids a message we had already accepted: the connection cannot carry it.
        this.abort(`cannot send a queued message: ${(error as Error).message}`);
      }
    }
  }

  private writeChecked(message: CoapMessage): void {
    const frame = encodeFrame(message, this.framing);
    if (frame.length > this.peerMaxMessageSize) throw new MessageTooLargeError(frame.length, this.peerMaxMessageSize);
    this.lastActivity = this.scheduler.now();
    this.io.write(frame);
  }

  private writeMessage(message: CoapMessage): void {
    this.lastActivity = this.scheduler.now();
    this.io.write(encodeFrame(message, this.framing));
  }

  private finish(error: Error | undefined, endTransport: boolean): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.csmTimer?.cancel();
    this.releaseTimer?.cancel();
    this.queued = [];
    const why = error ?? new StreamClosedError('the connection closed');
    for (const ping of this.pings.values()) {
      ping.timer.cancel();
      ping.reject(why);
    }
    this.pings.clear();
    if (endTransport) this.io.end();
    this.events.onClosed(error);
  }
}
