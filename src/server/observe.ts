/**
 * Server side of Observe (RFC 7641 §4). Observers are keyed by client endpoint and token (§4.1).
 * Each change renders the resource anew for every observer; a 2.xx notification carries the
 * resource's 24-bit sequence number (§4.4), anything else ends the observation (§4.2).
 *
 * Transmission (§4.5): the resource chooses CON or NON notifications; NON ones are upgraded to CON
 * at least every `conInterval` (24 h at most, §4.5) and every `maxNonInRow`-th time, and when no
 * newer notification follows a NON within `confirmDelay`, the current state is repeated as CON so
 * the client eventually sees the latest state even if that NON was lost. At most NSTART CON
 * notifications are outstanding per client (§4.5.1); a change while one is outstanding is not
 * queued as a copy — the observer is marked and gets the then-newest state (§4.5.2). RST or a
 * timed-out CON removes the observer (§3.6, §4.5).
 */
import { ResponseCode, codeClass } from '../coap/codes.js';
import { MessageType, encodeUint, setOption, tokenToHex, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { EndpointContext } from '../exchange/context.js';
import type { ResponseProtector } from './security.js';
import type { Carrier } from '../messaging/carrier.js';
import type { PeerAddress } from '../transport/transport.js';
import type { Scheduler, Timer } from '../util/scheduler.js';

export interface ObserveSettings {
  conInterval: number;
  maxNonInRow: number;
  confirmDelay: number;
}

export const DEFAULT_OBSERVE_SETTINGS: ObserveSettings = {
  conInterval: 24 * 3600_000,
  maxNonInRow: 20,
  confirmDelay: 5_000,
};

export class Observer {
  removed = false;
  /** A CON notification is awaiting its ACK. */
  inFlight = false;
  /** A newer state arrived while busy: send the newest when free. */
  pending = false;
  rendering = false;
  waitingForSlot = false;
  nonInRow = 0;
  lastConAt: number;
  lastSentSequence = -1;
  confirmTimer: Timer | undefined;

  constructor(
    readonly key: string,
    readonly path: string,
    readonly peer: PeerAddress,
    readonly peerKey: string,
    readonly token: Uint8Array,
    /** The registration request, re-rendered on every change. */
    public request: CoapMessage,
    public context: EndpointContext,
    public type: 'con' | 'non',
    now: number,
    /** Applies the registration's end-to-end protection to each notification (RFC 8613 §8.3.1). */
    public protect: ResponseProtector | undefined,
  ) {
    this.lastConAt = now;
  }
}

/** Renders the current state for an observer: the response a GET now would get (Block2-sliced). */
export type Renderer = (observer: Observer) => CoapMessage | Promise<CoapMessage>;

export class ObserveRegistry {
  private readonly byPath = new Map<string, Map<string, Observer>>();
  /** Observations per peer, for `observes` (stream connections are kept while a peer observes). */
  private readonly observerCounts = new Map<string, number>();
  private readonly sequence = new Map<string, number>();
  private readonly peers = new Map<string, { outstanding: number; waiting: Observer[] }>();

  /** Called when the last observer of a path leaves (a proxy then ends its upstream observation). */
  onPathEmpty: ((path: string) => void) | undefined;

  constructor(
    private readonly messaging: Carrier,
    private readonly scheduler: Scheduler,
    private readonly settings: ObserveSettings,
    private readonly render: Renderer,
  ) {}

  static observerKey(peerKey: string, token: Uint8Array): string {
    return `${peerKey}#${tokenToHex(token)}`;
  }

  /** The value for the Observe option of a response sent now for `path`. */
  currentSequence(path: string): number {
    return this.sequence.get(path) ?? 0;
  }

  /** Adds or replaces (§4.1: same endpoint and token) an observer. */
  register(
    path: string,
    peer: PeerAddress,
    peerKey: string,
    request: CoapMessage,
    context: EndpointContext,
    type: 'con' | 'non',
    protect?: ResponseProtector,
  ): Observer {
    const key = ObserveRegistry.observerKey(peerKey, request.token);
    let observers = this.byPath.get(path);
    if (!observers) {
      observers = new Map();
      this.byPath.set(path, observers);
    }
    const existing = observers.get(key);
    if (existing) {
      existing.request = request;
      existing.context = context;
      existing.type = type;
      existing.protect = protect;
      return existing;
    }
    const observer = new Observer(key, path, peer, peerKey, request.token, request, context, type, this.scheduler.now(), protect);
    observers.set(key, observer);
    this.observerCounts.set(peerKey, (this.observerCounts.get(peerKey) ?? 0) + 1);
    return observer;
  }

  /** Whether `peerKey` observes anything (a stream connection to it is then kept, not idled out). */
  observes(peerKey: string): boolean {
    return this.observerCounts.has(peerKey);
  }

  /** Ends every observation of `peerKey`: its connection closed (RFC 8323 §7.4), so no notification can reach it. */
  removePeer(peerKey: string): void {
    if (!this.observerCounts.has(peerKey)) return;
    for (const observers of [...this.byPath.values()]) {
      for (const observer of [...observers.values()]) if (observer.peerKey === peerKey) this.remove(observer);
    }
  }

  /** Removes the observer of `path` with this endpoint and token, if any (Observe 1, §3.6). */

  deregister(path: string, peerKey: string, token: Uint8Array): boolean {
    const observer = this.byPath.get(path)?.get(ObserveRegistry.observerKey(peerKey, token));
    if (!observer) return false;
    this.remove(observer);
    return true;
  }

  observers(path: string): Observer[] {
    return [...(this.byPath.get(path)?.values() ?? [])];
  }

  count(path?: string): number {
    if (path !== undefined) return this.byPath.get(path)?.size ?? 0;
    let n = 0;
    for (const m of this.byPath.values()) n += m.size;
    return n;
  }

  /** The resource changed: every observer gets the new state (or the newest, if busy). */
  changed(path: string): void {
    const observers = this.byPath.get(path);
    // 24 bits, strictly increasing per change (§4.4).
    this.sequence.set(path, ((this.sequence.get(path) ?? 0) + 1) & 0xffffff);
    if (!observers) return;
    for (const observer of observers.values()) void this.notify(observer, false);
  }

  private async notify(observer: Observer, forceConfirmable: boolean): Promise<void> {
    if (observer.removed) return;
    if (observer.inFlight || observer.rendering || observer.waitingForSlot) {
      observer.pending = true;
      return;
    }
    observer.pending = false;
    const now = this.scheduler.now();
    // RFC 8323 §7.2: over a reliable carrier there is no CON or NON; every notification is sent
    // the one way the carrier has, and it reports delivery at once.
    const confirmable =
      this.messaging.reliable ||
      forceConfirmable ||
      observer.type === 'con' ||
      observer.nonInRow >= this.settings.maxNonInRow ||
      now - observer.lastConAt >= this.settings.conInterval;
    const peer = this.peerState(observer.peerKey);
    if (confirmable) {
      if (peer.outstanding >= this.messaging.parameters.nstart) {
        observer.waitingForSlot = true;
        peer.waiting.push(observer);
        return;
      }
      peer.outstanding++; // reserved before rendering, which may take a while
    }
    observer.rendering = true;
    let message: CoapMessage;
    try {
      message = await this.render(observer);
    } catch {
      message = { type: MessageType.CON, code: ResponseCode.InternalServerError, messageId: 0, token: observer.token, options: [], payload: new Uint8Array(0) };
    } finally {
      observer.rendering = false;
    }
    if (observer.removed) {
      if (confirmable) this.releaseSlot(observer.peerKey);
      return;
    }
    message.token = observer.token;
    const success = codeClass(message.code) === 2;
    const sequence = this.currentSequence(observer.path);
    if (success) setOption(message, OptionNumber.Observe, encodeUint(sequence));
    else this.remove(observer); // §4.2: a non-2.xx notification ends the observation
    if (observer.protect) message = observer.protect(message, 'notification');
    message.token = observer.token;

    observer.confirmTimer?.cancel();
    observer.lastSentSequence = sequence;
    if (confirmable) {
      observer.inFlight = success;
      this.messaging.sendConfirmable(message, observer.peer, {
        onAck: () => {
          this.releaseSlot(observer.peerKey);
          observer.inFlight = false;
          observer.lastConAt = this.scheduler.now();
          observer.nonInRow = 0;
          if (observer.pending) void this.notify(observer, false);
        },
        onReset: () => {
          this.releaseSlot(observer.peerKey);
          this.remove(observer);
        },
        onTimeout: () => {
          this.releaseSlot(observer.peerKey);
          this.remove(observer);
        },
      });
      return;
    }
    message.type = MessageType.NON;
    this.messaging.sendNonConfirmable(message, observer.peer, () => this.remove(observer));
    observer.nonInRow++;
    observer.confirmTimer = this.scheduler.schedule(this.settings.confirmDelay, () => {
      // Nothing newer went out since this NON: repeat the state as CON in case it was lost.
      if (!observer.removed && observer.lastSentSequence === sequence) void this.notify(observer, true);
    });
    if (observer.pending) void this.notify(observer, false);
  }

  private peerState(peerKey: string): { outstanding: number; waiting: Observer[] } {
    let state = this.peers.get(peerKey);
    if (!state) {
      state = { outstanding: 0, waiting: [] };
      this.peers.set(peerKey, state);
    }
    return state;
  }

  private releaseSlot(peerKey: string): void {
    const state = this.peers.get(peerKey);
    if (!state) return;
    state.outstanding--;
    const next = state.waiting.shift();
    if (next) {
      next.waitingForSlot = false;
      // Rendered now, so the waiting observer gets the newest state, not a stale copy.
      void this.notify(next, true);
    } else if (state.outstanding <= 0) {
      this.peers.delete(peerKey);
    }
  }

  remove(observer: Observer): void {
    if (observer.removed) return;
    observer.removed = true;
    observer.confirmTimer?.cancel();
    const count = (this.observerCounts.get(observer.peerKey) ?? 1) - 1;
    if (count > 0) this.observerCounts.set(observer.peerKey, count);
    else this.observerCounts.delete(observer.peerKey);
    const observers = this.byPath.get(observer.path);
    observers?.delete(observer.key);
    if (observers?.size === 0) {
      this.byPath.delete(observer.path);
      this.onPathEmpty?.(observer.path);
    }
    if (observer.waitingForSlot) {
      const state = this.peers.get(observer.peerKey);
      if (state) state.waiting = state.waiting.filter((o) => o !== observer);
    }
  }

  /** Ends every observation of `path` with the given final response (e.g. 4.04 when it is removed). */
  endAll(path: string): void {
    for (const observer of this.observers(path)) void this.notify(observer, true);
  }

  clear(): void {
    for (const observers of this.byPath.values()) for (const o of observers.values()) o.confirmTimer?.cancel();
    this.byPath.clear();
    this.peers.clear();
  }
}
