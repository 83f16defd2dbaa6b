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
import { decodeMessage, encodeMessage } from '../coap/codec.js';
import { MessageType, encodeUint, setOption, sortOptions, tokenToHex, type CoapMessage } from '../coap/message.js';
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
  /**
   * Observers kept at once, all resources and peers together. A registration past it is answered
   * without being kept — the response carries no Observe option (RFC 7641 §4.1). Default 10,000.
   */
  maxObservers: number;
  /** Observers of one peer (endpoint: address and port), likewise. Default 256. */
  maxObserversPerPeer: number;
}

export const DEFAULT_OBSERVE_SETTINGS: ObserveSettings = {
  conInterval: 24 * 3600_000,
  maxNonInRow: 20,
  confirmDelay: 5_000,
  maxObservers: 10_000,
  maxObserversPerPeer: 256,
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
  /**
   * The registration request as one small encoded buffer: a decoded message is an object per
   * option plus a view per value, token and payload — and the views keep the whole datagram they
   * came from alive. Decoding it again per notification costs less than keeping it decoded for
   * every observer (issue 17 item 7: an observer is held for a 20-byte request).
   */
  private encodedRequest: Buffer;
  readonly token: Uint8Array;

  constructor(
    readonly key: string,
    readonly path: string,
    readonly peer: PeerAddress,
    readonly peerKey: string,
    request: CoapMessage,
    public context: EndpointContext,
    public type: 'con' | 'non',
    now: number,
    /** Applies the registration's end-to-end protection to each notification (RFC 8613 §8.3.1). */
    public protect: ResponseProtector | undefined,
  ) {
    this.lastConAt = now;
    this.encodedRequest = encodeRequest(request);
    this.token = Uint8Array.from(request.token);
  }

  /** The registration request, re-rendered on every change (a fresh copy on each read). */
  get request(): CoapMessage {
    return decodeMessage(this.encodedRequest);
  }

  set request(request: CoapMessage) {
    this.encodedRequest = encodeRequest(request);
  }
}

function encodeRequest(request: CoapMessage): Buffer {
  return encodeMessage({ ...request, options: sortOptions([...request.options]) });
}

/** Renders the current state for an observer: the response a GET now would get (Block2-sliced). */
export type Renderer = (observer: Observer) => CoapMessage | Promise<CoapMessage>;

export class ObserveRegistry {
  private readonly byPath = new Map<string, Map<string, Observer>>();
  private readonly sequence = new Map<string, number>();
  private readonly peers = new Map<string, { outstanding: number; waiting: Observer[] }>();
  /** Observers per peer key, for maxObserversPerPeer; peers with none have no entry. */
  private readonly perPeer = new Map<string, number>();
  private total = 0;

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

  /**
   * Adds or replaces (§4.1: same endpoint and token) an observer. Undefined when a new one would
   * pass maxObservers or maxObserversPerPeer: a server "unable or unwilling to add a new entry ...
   * MAY silently ignore the registration request and process the GET request as usual. The
   * resulting response MUST NOT include an Observe Option" (§4.1). `unlimited` skips the
   * limits (a proxy's observers, whose ProxiedRequest.observe cannot refuse); they still count.
   */
  register(
    path: string,
    peer: PeerAddress,
    peerKey: string,
    request: CoapMessage,
    context: EndpointContext,
    type: 'con' | 'non',
    protect?: ResponseProtector,
    unlimited = false,
  ): Observer | undefined {
    const key = ObserveRegistry.observerKey(peerKey, request.token);
    const existing = this.byPath.get(path)?.get(key);
    if (existing) {
      existing.request = request;
      existing.context = context;
      existing.type = type;
      existing.protect = protect;
      return existing;
    }
    const ofPeer = this.perPeer.get(peerKey) ?? 0;
    if (!unlimited && (this.total >= this.settings.maxObservers || ofPeer >= this.settings.maxObserversPerPeer)) return undefined;
    let observers = this.byPath.get(path);
    if (!observers) {
      observers = new Map();
      this.byPath.set(path, observers);
    }
    const observer = new Observer(key, path, peer, peerKey, request, context, type, this.scheduler.now(), protect);
    observers.set(key, observer);
    this.perPeer.set(peerKey, ofPeer + 1);
    this.total++;
    return observer;
  }

  /** Whether `peerKey` observes anything (a stream connection to it is then kept, not idled out). */
  observes(peerKey: string): boolean {
    return this.perPeer.has(peerKey);
  }

  /** Ends every observation of `peerKey`: its connection closed (RFC 8323 §7.4), so no notification can reach it. */
  removePeer(peerKey: string): void {
    if (!this.perPeer.has(peerKey)) return;
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
    return this.total;
  }

  /** Observers of one peer (its endpoint key). */
  countOf(peerKey: string): number {
    return this.perPeer.get(peerKey) ?? 0;
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
    const observers = this.byPath.get(observer.path);
    if (observers?.get(observer.key) === observer) {
      observers.delete(observer.key);
      this.total--;
      const ofPeer = (this.perPeer.get(observer.peerKey) ?? 1) - 1;
      if (ofPeer > 0) this.perPeer.set(observer.peerKey, ofPeer);
      else this.perPeer.delete(observer.peerKey);
    }
    if (observers?.size === 0) {
      this.byPath.delete(observer.path);
      this.onPathEmpty?.(observer.path);
    }
    if (observer.waitingForSlot) {
      const state = this.peers.get(observer.peerKey);
      if (state) state.waiting = state.waiting.filter((o) => o !== observer);
    }
  }

  /**
   * Sends this observer the current state now, as CON: when the resource renders a final non-2.xx
   * for it (a pub-sub topic shedding subscribers past its max-subscribers), that ends it (§3.2).
   */
  renotify(observer: Observer): void {
    void this.notify(observer, true);
  }

  /** Ends every observation of `path` with the given final response (e.g. 4.04 when it is removed). */
  endAll(path: string): void {
    for (const observer of this.observers(path)) void this.notify(observer, true);
  }

  clear(): void {
    for (const observers of this.byPath.values()) for (const o of observers.values()) o.confirmTimer?.cancel();
    this.byPath.clear();
    this.peers.clear();
    this.perPeer.clear();
    this.total = 0;
  }
}
