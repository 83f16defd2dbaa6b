/**
 * RFC 7252 §4 messaging: Message IDs, CON retransmission with exponential back-off, matching of
 * ACK/RST to what we sent, deduplication of received CON/NON with the cached reply replayed for a
 * duplicate CON, piggybacked versus separate responses, CoAP ping, and rejection (RST) of CON
 * messages with format errors. Tokens and request/response semantics live one layer up.
 *
 * Sans-IO in the sense of the architecture guide: the transport and the scheduler are injected,
 * so lockstep tests drive this class with scripted datagrams and a fake clock.
 */
import { MessageFormatError, decodeMessage, encodeEmpty, encodeMessage } from '../coap/codec.js';
import { isEmptyCode, isReservedCode, isRequestCode, isResponseCode } from '../coap/codes.js';
import { MessageType, bytesEqual, type CoapMessage } from '../coap/message.js';
import type { PeerAddress, TransportSecurity } from '../transport/transport.js';
import { peerKey } from '../transport/transport.js';
import type { RandomSource } from '../util/random.js';
import type { Scheduler, Timer } from '../util/scheduler.js';
import { IntTable } from '../util/int-table.js';
import { AnsweredRecords, MessageIdSlots } from './answered-records.js';
import type { Carrier, CarrierStats, ConfirmableListener, OutgoingHandle } from './carrier.js';
import { exchangeLifetime, nonLifetime, type TransmissionParameters } from './parameters.js';
import { RetransmissionWheel, type WheelEntry } from './retransmission-wheel.js';

export type { ConfirmableListener, OutgoingHandle } from './carrier.js';

export interface MessagingEvents {
  /** A request that is not a duplicate. Answer with respond(); acknowledge() for slow handlers. */
  onRequest(request: CoapMessage, inbound: InboundMessage): void;
  /**
   * A response that arrived in its own CON or NON (a separate response or a notification).
   * Return true to accept it (a CON is then ACKed) or false to reject it (RST, §4.2, §5.3.2).
   */
  onSeparateResponse(response: CoapMessage, inbound: InboundMessage): boolean;
}

/**
 * A received CON or NON (§4.5). An unanswered CON is its peer's deduplication record while it is
 * being processed; once answered (or at once, for a NON) the record moves to the layer's
 * AnsweredRecords and this object lives only as long as whoever answers it holds it.
 */
export class InboundMessage {
  /** Empty ACK or piggybacked response sent (CON only). */
  acknowledged = false;
  responded = false;
  /** In its peer's unanswered records (`PeerState.unanswered`) and the layer's list of them. */
  unanswered = false;
  /**
   * Being handed to the layer above (a CON): most are answered before that call returns, so a CON
   * joins the unanswered records only after it, if still unanswered — a Map entry and a list link
   * made and undone per request saved. No datagram is read meanwhile, so no duplicate can miss it.
   */
  delivering = false;
  /** @internal The layer's list of unanswered CONs, oldest first (one lifetime, so also expiry order). */
  older: InboundMessage | undefined;
  /** @internal */
  newer: InboundMessage | undefined;

  constructor(
    readonly message: CoapMessage,
    readonly peer: PeerAddress,
    readonly peerKey: string,
    readonly security: TransportSecurity | undefined,
    readonly expiresAt: number,
    readonly owner: PeerState,
  ) {}

  get confirmable(): boolean {
    return this.message.type === MessageType.CON;
  }
}

/**
 * A CON we sent, until its ACK, RST or timeout. It waits for its first timeout in the layer's
 * RetransmissionWheel (no timer of its own); only one that outlives ACK_TIMEOUT gets `timer`.
 */
class OutgoingConfirmable implements OutgoingHandle, WheelEntry {
  retransmissions = 0;
  timer: Timer | undefined;
  done = false;
  older: WheelEntry | undefined = undefined;
  newer: WheelEntry | undefined = undefined;
  inWheel = false;

  constructor(
    readonly peer: PeerState,
    readonly messageId: number,
    readonly bytes: Buffer,
    /** Until the next retransmission (§4.2): the initial timeout, doubled at each retransmission. */
    public timeout: number,
    readonly listener: ConfirmableListener,
    private readonly layer: MessageLayer,
    readonly sentAt: number,
  ) {}

  cancel(): void {
    this.layer.stopRetransmission(this);
  }
}

/** A NON we sent whose RST someone wants to hear about within NON_LIFETIME (e.g. an Observe notification). */
class NonListener {
  constructor(
    readonly owner: PeerState,
    readonly messageId: number,
    readonly onReset: () => void,
    readonly expiresAt: number,
  ) {}
}

/**
 * What the messaging layer keeps per peer: Message ID counter, outstanding CONs, received
 * messages (deduplication, §4.5), NON listeners. Exported for the type of InboundMessage.owner only.
 */
export class PeerState {
  nextMessageId: number;
  /** Outstanding CONs by Message ID: an IntTable, since every CON adds and removes one (no garbage per message). */
  readonly outgoing = new IntTable<OutgoingConfirmable>();
  readonly nonListeners = new Map<number, NonListener>();
  /** Received CONs not yet answered (§4.5: a duplicate gets an empty ACK), by Message ID. */
  readonly unanswered = new Map<number, InboundMessage>();
  /** Message ID → slot of its record in the layer's AnsweredRecords. */
  readonly answered = new MessageIdSlots();
  /**
   * Until when the Message IDs sent to this peer may still be in its deduplication records (the
   * latest one's send time + EXCHANGE_LIFETIME): the counter must be kept that long (§4.4).
   */
  idsInUseUntil = 0;
  /** The state is in the expiry queue for idsInUseUntil: it (and its counter) stays until then. */
  idsInUse = false;
  /** When its queued expiry entry is due (idsInUseUntil when queued; later sends move idsInUseUntil only). */
  idsCheckAt = 0;
  /** CONs of this peer being delivered (InboundMessage.delivering): in no record yet, but the state must stay. */
  delivering = 0;

  constructor(
    readonly key: string,
    readonly address: PeerAddress,
    firstMessageId: number,
  ) {
    this.nextMessageId = firstMessageId;
  }

  get idle(): boolean {
    return this.outgoing.size === 0 && this.unanswered.size === 0 && this.answered.size === 0 && this.nonListeners.size === 0 && !this.idsInUse && this.delivering === 0;
  }
}

export interface MessageLayerOptions {
  parameters: TransmissionParameters;
  scheduler: Scheduler;
  random: RandomSource;
  send: (data: Uint8Array, peer: PeerAddress) => void;
  events: MessagingEvents;
  /**
   * Upper bound on remembered received messages, answered ones and (separately) unanswered ones;
   * the oldest are forgotten first. Default 100,000.
   */
  maxTrackedMessages?: number;
}

export type MessageLayerStats = CarrierStats;

/** The carrier for UDP and DTLS (see carrier.ts). */
export class MessageLayer implements Carrier {
  readonly reliable = false;
  private readonly peers = new Map<string, PeerState>();
  /**
   * The peer of the latest lookup: most datagrams come from (and go to) the same peer as the one
   * before, and comparing its address and port costs less than building the key and a Map lookup.
   * Always an entry of `peers` (cleared when that entry goes).
   */
  private lastPeer: PeerState | undefined;
  /**
   * Expiry order of NON listeners (their expiresAt) and Message ID counters (a PeerState, due at
   * idsCheckAt), oldest first; the records themselves are the entries.
   */
  private expiryQueue: Array<NonListener | PeerState> = [];
  private expiryHead = 0;
  private sweepTimer: Timer | undefined;
  /** §4.5 records of answered messages (and of every NON), without a heap object each. */
  private readonly answered: AnsweredRecords<PeerState>;
  /** Unanswered CONs of every peer, oldest first: a list through InboundMessage.older/newer. */
  private oldestUnanswered: InboundMessage | undefined;
  private newestUnanswered: InboundMessage | undefined;
  private unansweredCount = 0;
  /** acknowledgeUnansweredAfter: the delay, and the one timer that serves every unanswered CON request. */
  private emptyAckDelay: number | undefined;
  private emptyAckTimer: Timer | undefined;
  private readonly maxTracked: number;
  /** §4.8.2, from the parameters, which do not change. */
  private readonly exchangeLifetime: number;
  private readonly nonLifetime: number;
  private readonly stats = { retransmissions: 0, duplicates: 0, formatErrors: 0 };
  private closed = false;
  /** Outgoing CONs waiting for their first timeout, one timer for all (retransmission-wheel.ts). */
  private readonly firstTimeouts: RetransmissionWheel<OutgoingConfirmable>;

  constructor(private readonly options: MessageLayerOptions) {
    this.maxTracked = options.maxTrackedMessages ?? 100_000;
    this.answered = new AnsweredRecords(this.maxTracked);
    this.exchangeLifetime = exchangeLifetime(options.parameters);
    this.nonLifetime = nonLifetime(options.parameters);
    this.firstTimeouts = new RetransmissionWheel(options.scheduler, options.parameters.ackTimeout, (out, now) => this.armOwnTimer(out, now));
  }

  get parameters(): TransmissionParameters {
    return this.options.parameters;
  }

  // --- sending ---------------------------------------------------------------------------

  /** Sends a CON with a fresh Message ID and retransmits it until ACK, RST or timeout. */
  sendConfirmable(message: CoapMessage, peer: PeerAddress, listener: ConfirmableListener): OutgoingHandle {
    const state = this.peerState(peer);
    // One clock read per CON: the Message ID's lifetime and the retransmission wheel's send time.
    const now = this.options.scheduler.now();
    message.type = MessageType.CON;
    message.messageId = this.allocateMessageId(state, now);
    return this.sendConfirmableOf(state, now, message.messageId, encodeMessage(message), listener);
  }

  /**
   * sendConfirmable of a datagram already encoded (the client's fast path, client/fast-request.ts):
   * `bytes` is a CON whose Message ID bytes are written here.
   */
  sendConfirmableBytes(bytes: Buffer, peer: PeerAddress, listener: ConfirmableListener): OutgoingHandle {
    const state = this.peerState(peer);
    const now = this.options.scheduler.now();
    const messageId = this.allocateMessageId(state, now);
    bytes[2] = messageId >>> 8;
    bytes[3] = messageId & 0xff;
    return this.sendConfirmableOf(state, now, messageId, bytes, listener);
  }

  /** sendNonConfirmable of a datagram already encoded (a NON whose Message ID bytes are written here), with no RST listener. */
  sendNonConfirmableBytes(bytes: Buffer, peer: PeerAddress): number {
    const state = this.peerState(peer);
    const messageId = this.allocateMessageId(state, this.options.scheduler.now());
    bytes[2] = messageId >>> 8;
    bytes[3] = messageId & 0xff;
    this.options.send(bytes, state.address);
    return messageId;
  }

  private sendConfirmableOf(state: PeerState, now: number, messageId: number, bytes: Buffer, listener: ConfirmableListener): OutgoingHandle {
    const p = this.options.parameters;
    // §4.2: initial timeout random in [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR].
    const timeout = p.ackTimeout * (1 + (p.ackRandomFactor - 1) * this.options.random.float());
    const out = new OutgoingConfirmable(state, messageId, bytes, timeout, listener, this, now);
    state.outgoing.set(out.messageId, out);
    this.options.send(bytes, state.address);
    // Its first timeout is watched by the wheel; a timer of its own only if it outlives ACK_TIMEOUT.
    if (!out.done) this.firstTimeouts.add(out);
    return out;
  }

  /** Sends a NON with a fresh Message ID; `onReset` hears a RST for it within NON_LIFETIME. */
  sendNonConfirmable(message: CoapMessage, peer: PeerAddress, onReset?: () => void): number {
    const state = this.peerState(peer);
    const now = this.options.scheduler.now();
    message.type = MessageType.NON;
    message.messageId = this.allocateMessageId(state, now);
    this.options.send(encodeMessage(message), state.address);
    if (onReset) {
      const listener = new NonListener(state, message.messageId, onReset, now + this.nonLifetime);
      state.nonListeners.set(message.messageId, listener);
      this.track(listener);
    }
    return message.messageId;
  }

  /**
   * Answers a received request: piggybacked in the ACK while the CON is unacknowledged (§5.2.1),
   * otherwise as a separate response (§5.2.2) — CON for a CON request, NON for a NON request
   * (§5.2.3) unless `separateType` says otherwise. The listener hears about the separate CON's fate.
   */
  respond(
    inbound: InboundMessage,
    response: CoapMessage,
    separate?: { type?: MessageType; listener?: ConfirmableListener },
  ): void {
    if (inbound.responded && !inbound.confirmable) return;
    inbound.responded = true;
    if (inbound.confirmable && !inbound.acknowledged) {
      response.type = MessageType.ACK;
      response.messageId = inbound.message.messageId;
      const bytes = encodeMessage(response);
      inbound.acknowledged = true;
      this.options.send(bytes, inbound.peer);
      this.recordAnswer(inbound, bytes);
      return;
    }
    const type = separate?.type ?? (inbound.confirmable ? MessageType.CON : MessageType.NON);
    if (type === MessageType.CON) {
      this.sendConfirmable(response, inbound.peer, separate?.listener ?? IGNORE_CONFIRMABLE);
    } else {
      this.sendNonConfirmable(response, inbound.peer, separate?.listener ? () => separate.listener!.onReset() : undefined);
    }
  }

  /** Sends the empty ACK for a CON whose response will come separately (§5.2.2). */
  acknowledge(inbound: InboundMessage): void {
    if (!inbound.confirmable || inbound.acknowledged) return;
    inbound.acknowledged = true;
    const reply = encodeEmpty(MessageType.ACK, inbound.message.messageId);
    this.options.send(reply, inbound.peer);
    this.recordAnswer(inbound, reply);
  }

  /**
   * §5.2.2: a CON request still unanswered `delayMs` after it arrived gets an empty ACK, so the
   * client stops retransmitting while a slow handler or an upstream exchange works; its response
   * then goes separately. One timer serves all of them (the unanswered list is in arrival order),
   * where a timer per request would cost every request a timer of its own. Undefined turns it off.
   */
  acknowledgeUnansweredAfter(delayMs: number | undefined): void {
    this.emptyAckDelay = delayMs;
    this.emptyAckTimer?.cancel();
    this.emptyAckTimer = undefined;
    this.armEmptyAckTimer();
  }

  private armEmptyAckTimer(): void {
    const oldest = this.oldestUnanswered;
    if (this.emptyAckDelay === undefined || this.emptyAckTimer !== undefined || oldest === undefined || this.closed) return;
    const due = this.arrivalOf(oldest) + this.emptyAckDelay;
    this.emptyAckTimer = this.options.scheduler.schedule(due - this.options.scheduler.now(), () => {
      this.emptyAckTimer = undefined;
      this.acknowledgeOverdue();
    });
  }

  private acknowledgeOverdue(): void {
    const delay = this.emptyAckDelay;
    if (delay === undefined) return;
    const now = this.options.scheduler.now();
    for (let oldest = this.oldestUnanswered; oldest !== undefined && this.arrivalOf(oldest) + delay <= now; oldest = this.oldestUnanswered) {
      this.acknowledge(oldest);
      this.forgetUnanswered(oldest); // acknowledge() records it as answered; this only guarantees progress
    }
    this.armEmptyAckTimer();
  }

  /** Every unanswered record is a CON, whose record lives EXCHANGE_LIFETIME from its arrival. */
  private arrivalOf(inbound: InboundMessage): number {
    return inbound.expiresAt - this.exchangeLifetime;
  }

  /** Rejects a received CON with RST (§4.2); a NON is just ignored (§4.3). */
  reject(inbound: InboundMessage): void {
    if (!inbound.confirmable || inbound.acknowledged) return;
    inbound.acknowledged = true;
    inbound.responded = true;
    const reply = encodeEmpty(MessageType.RST, inbound.message.messageId);
    this.options.send(reply, inbound.peer);
    this.recordAnswer(inbound, reply);
  }

  /** CoAP ping (§4.3): an Empty CON, answered by RST. Resolves with the round-trip time. */
  ping(peer: PeerAddress): Promise<number> {
    const started = this.options.scheduler.now();
    return new Promise((resolve, reject) => {
      const done = (): void => resolve(this.options.scheduler.now() - started);
      this.sendConfirmable(
        { type: MessageType.CON, code: 0, messageId: 0, token: new Uint8Array(0), options: [], payload: new Uint8Array(0) },
        peer,
        { onAck: done, onReset: done, onTimeout: () => reject(new Error(`no answer to CoAP ping from ${peerKey(peer)}`)) },
      );
    });
  }

  // --- receiving -------------------------------------------------------------------------

  /** Entry point for every datagram. Never throws. */
  receive(data: Uint8Array, peer: PeerAddress, security?: TransportSecurity): void {
    if (this.closed) return;
    let message: CoapMessage;
    try {
      message = decodeMessage(data);
    } catch (error) {
      this.stats.formatErrors++;
      if (error instanceof MessageFormatError && error.kind === 'format' && error.header?.type === MessageType.CON) {
        // §4.2: a CON that cannot be processed is rejected with RST; NON, ACK and RST are dropped.
        this.options.send(encodeEmpty(MessageType.RST, error.header.messageId), peer);
      }
      return;
    }
    switch (message.type) {
      case MessageType.ACK:
        this.onAck(message, peer, security);
        return;
      case MessageType.RST:
        this.onReset(message, peer);
        return;
      default:
        this.onConOrNon(message, peer, security);
    }
  }

  private onAck(message: CoapMessage, peer: PeerAddress, security: TransportSecurity | undefined): void {
    // §4.2: an ACK carries a response or is Empty; anything else is rejected, i.e. ignored.
    if (!isEmptyCode(message.code) && !isResponseCode(message.code)) return;
    const out = this.knownPeer(peer)?.outgoing.get(message.messageId);
    if (!out) return;
    this.finish(out);
    out.listener.onAck(message, security);
  }

  private onReset(message: CoapMessage, peer: PeerAddress): void {
    // §4.1: RST must be Empty; a non-empty one is a format error and silently ignored.
    if (!isEmptyCode(message.code)) return;
    const state = this.knownPeer(peer);
    if (!state) return;
    const out = state.outgoing.get(message.messageId);
    if (out) {
      this.finish(out);
      out.listener.onReset();
      return;
    }
    const non = state.nonListeners.get(message.messageId);
    if (non) {
      state.nonListeners.delete(message.messageId);
      non.onReset();
    }
  }

  private onConOrNon(message: CoapMessage, peer: PeerAddress, security: TransportSecurity | undefined): void {
    const confirmable = message.type === MessageType.CON;
    if (isEmptyCode(message.code)) {
      // §4.3: an Empty CON is a ping, answered with RST; an Empty NON is not allowed and ignored.
      if (confirmable) this.options.send(encodeEmpty(MessageType.RST, message.messageId), peer);
      return;
    }
    if (isReservedCode(message.code)) {
      if (confirmable) this.options.send(encodeEmpty(MessageType.RST, message.messageId), peer);
      return;
    }
    const state = this.peerState(peer);
    const messageId = message.messageId;
    // §4.5: a duplicate repeats Message ID, token, code and type of a message still remembered.
    const unanswered = state.unanswered.get(messageId);
    if (unanswered !== undefined && isSameMessage(unanswered.message, message)) {
      this.stats.duplicates++;
      // Still being processed: acknowledge now so the peer stops retransmitting; the response
      // will follow as a separate CON.
      this.acknowledge(unanswered);
      return;
    }
    const slot = this.answered.find(state, messageId, message.code, message.type, message.token);
    if (slot >= 0) {
      this.stats.duplicates++;
      // A duplicate CON gets the same ACK or RST again; a duplicate NON is silently ignored.
      const reply = confirmable ? this.answered.reply(slot) : undefined;
      if (reply) this.options.send(reply, state.address);
      return;
    }
    // A Message ID reused with other content (a peer that wrapped around within EXCHANGE_LIFETIME)
    // is a new message, not a duplicate; its record replaces the older one.
    if (unanswered !== undefined) this.forgetUnanswered(unanswered);
    const expiresAt = this.options.scheduler.now() + (confirmable ? this.exchangeLifetime : this.nonLifetime);
    const inbound = new InboundMessage(message, state.address, state.key, security, expiresAt, state);
    if (!this.sweepTimer) this.scheduleSweep();
    // A NON is never acknowledged, and its duplicates are ignored whatever became of it: its
    // record is complete on arrival. A CON's waits for its ACK or RST.
    if (!confirmable) this.recordAnswer(inbound, undefined);
    else {
      inbound.delivering = true;
      state.delivering++;
    }
    try {
      this.deliver(message, inbound, confirmable);
    } finally {
      if (confirmable) {
        inbound.delivering = false;
        state.delivering--;
        if (!inbound.acknowledged) this.rememberUnanswered(inbound);
      }
    }
  }

  private deliver(message: CoapMessage, inbound: InboundMessage, confirmable: boolean): void {
    if (isRequestCode(message.code)) {
      this.options.events.onRequest(message, inbound);
      return;
    }
    // A response in its own CON/NON: accept (ACK a CON) or reject (RST).
    const accepted = this.options.events.onSeparateResponse(message, inbound);
    if (accepted) this.acknowledge(inbound);
    else if (confirmable) this.reject(inbound);
    else {
      // §4.3: a NON may be rejected with RST too; RFC 7641 §3.6 relies on it for unwanted notifications.
      this.options.send(encodeEmpty(MessageType.RST, message.messageId), inbound.peer);
    }
  }

  /** Adds a received CON to the unanswered records; beyond the bound, the oldest is forgotten. */
  private rememberUnanswered(inbound: InboundMessage): void {
    if (this.unansweredCount >= this.maxTracked) this.forgetUnanswered(this.oldestUnanswered!);
    inbound.owner.unanswered.set(inbound.message.messageId, inbound);
    inbound.unanswered = true;
    inbound.older = this.newestUnanswered;
    if (this.newestUnanswered) this.newestUnanswered.newer = inbound;
    else this.oldestUnanswered = inbound;
    this.newestUnanswered = inbound;
    this.unansweredCount++;
    if (this.emptyAckDelay !== undefined && this.emptyAckTimer === undefined) this.armEmptyAckTimer();
  }

  private forgetUnanswered(inbound: InboundMessage): void {
    if (!inbound.unanswered) return;
    inbound.unanswered = false;
    const peer = inbound.owner;
    if (peer.unanswered.get(inbound.message.messageId) === inbound) peer.unanswered.delete(inbound.message.messageId);
    if (inbound.older) inbound.older.newer = inbound.newer;
    else this.oldestUnanswered = inbound.newer;
    if (inbound.newer) inbound.newer.older = inbound.older;
    else this.newestUnanswered = inbound.older;
    inbound.older = inbound.newer = undefined;
    this.unansweredCount--;
  }

  /**
   * The message's record becomes an answered one, with the reply a duplicate gets (none for a
   * NON). A CON forgotten meanwhile (its lifetime or the bound passed, or its Message ID was
   * reused) stays forgotten.
   */
  private recordAnswer(inbound: InboundMessage, reply: Uint8Array | undefined): void {
    const m = inbound.message;
    if (m.type === MessageType.CON) {
      if (inbound.unanswered) this.forgetUnanswered(inbound);
      else if (!inbound.delivering) return;
    }
    const evicted = this.answered.add(inbound.owner, m.messageId, m.code, m.type, m.token, reply, inbound.expiresAt);
    if (evicted) this.forgetIfIdle(evicted);
  }

  // --- retransmission --------------------------------------------------------------------

  /** A CON the wheel saw outlive ACK_TIMEOUT: its first retransmission at its exact time (§4.2). */
  private armOwnTimer(out: OutgoingConfirmable, now: number): void {
    out.timer = this.options.scheduler.schedule(out.sentAt + out.timeout - now, () => this.onRetransmitTimer(out));
  }

  private onRetransmitTimer(out: OutgoingConfirmable): void {
    if (out.done) return;
    if (out.retransmissions >= this.options.parameters.maxRetransmit) {
      this.finish(out);
      out.listener.onTimeout();
      return;
    }
    out.retransmissions++;
    this.stats.retransmissions++;
    out.listener.onRetransmit?.();
    out.timeout *= 2; // §4.2: the timeout doubles with each retransmission.
    this.options.send(out.bytes, out.peer.address);
    out.timer = this.options.scheduler.schedule(out.timeout, () => this.onRetransmitTimer(out));
  }

  /** @internal used by OutgoingHandle.cancel */
  stopRetransmission(out: OutgoingConfirmable): void {
    if (!out.done) this.finish(out);
  }

  private finish(out: OutgoingConfirmable): void {
    out.done = true;
    this.firstTimeouts.remove(out);
    out.timer?.cancel();
    out.peer.outgoing.delete(out.messageId);
    this.forgetIfIdle(out.peer);
  }

  // --- bookkeeping -----------------------------------------------------------------------

  private peerState(peer: PeerAddress): PeerState {
    const known = this.knownPeer(peer);
    if (known) return known;
    const key = peerKey(peer);
    const r = this.options.random.bytes(2);
    const state = new PeerState(key, { address: peer.address, port: peer.port }, (r[0]! << 8) | r[1]!);
    this.peers.set(key, state);
    this.lastPeer = state;
    return state;
  }

  private knownPeer(peer: PeerAddress): PeerState | undefined {
    const last = this.lastPeer;
    if (last !== undefined && last.address.port === peer.port && last.address.address === peer.address) return last;
    const state = this.peers.get(peerKey(peer));
    if (state) this.lastPeer = state;
    return state;
  }

  /** `now`: the scheduler's time of the send, which the caller has read anyway. */
  private allocateMessageId(state: PeerState, now: number): number {
    // Sequential per peer from a random start (§4.4); skip IDs still awaiting an ACK.
    for (let attempts = 0; attempts < 0x10000; attempts++) {
      const id = state.nextMessageId;
      state.nextMessageId = (id + 1) & 0xffff;
      if (!state.outgoing.has(id)) {
        this.keepCounter(state, now);
        return id;
      }
    }
    throw new Error(`all 65536 Message IDs towards ${state.key} are awaiting acknowledgement`);
  }

  /**
   * §4.4: a Message ID MUST NOT be reused towards the same endpoint within EXCHANGE_LIFETIME, and
   * the peer deduplicates by Message ID that long (§4.5) — a request reusing the ID and token of
   * an earlier one (an Observe deregistration after its registration, RFC 7641 §3.6) would get
   * that one's reply replayed and never be processed. So the peer's state, with its counter, stays
   * until EXCHANGE_LIFETIME after the latest ID sent; a counter started afresh could repeat one.
   */
  private keepCounter(state: PeerState, now: number): void {
    state.idsInUseUntil = now + this.exchangeLifetime;
    if (state.idsInUse) return; // its expiry entry is queued; the sweep re-queues it until then
    state.idsInUse = true;
    state.idsCheckAt = state.idsInUseUntil;
    this.track(state);
  }

  private track(entry: NonListener | PeerState): void {
    this.expiryQueue.push(entry);
    // Entries go stale when a Message ID is reused (a fast peer wraps within NON_LIFETIME);
    // sweeping drops them, so the queue stays near the number of live entries.
    if (this.expiryQueue.length - this.expiryHead > 2 * this.maxTracked) this.sweep(true);
    if (!this.sweepTimer) this.scheduleSweep();
  }

  private scheduleSweep(): void {
    const interval = Math.max(10, Math.min(5000, this.nonLifetime / 20));
    this.sweepTimer = this.options.scheduler.schedule(interval, () => {
      this.sweepTimer = undefined;
      this.sweep(false);
      if (this.expiryHead < this.expiryQueue.length || this.answered.size > 0 || this.unansweredCount > 0) this.scheduleSweep();
    });
  }

  /**
   * Forgets expired records; with `overCapacity`, also the oldest NON listeners until the queue is
   * within the limit again.
   */
  private sweep(overCapacity: boolean): void {
    const now = this.options.scheduler.now();
    this.answered.expire(now, this.forgetIfIdleCallback);
    for (let oldest = this.oldestUnanswered; oldest !== undefined && oldest.expiresAt <= now; oldest = this.oldestUnanswered) {
      this.forgetUnanswered(oldest);
      this.forgetIfIdle(oldest.owner);
    }
    const queue = this.expiryQueue;
    // Entries re-queued below (Message ID counters still in use) wait for a later sweep.
    const end = queue.length;
    while (this.expiryHead < end) {
      const entry = queue[this.expiryHead]!;
      const evict = overCapacity && queue.length - this.expiryHead > this.maxTracked;
      if (entry instanceof PeerState) {
        // Never evicted for capacity: forgetting a counter early could reuse a Message ID (§4.4).
        if (entry.idsCheckAt > now && !evict) break;
        this.expiryHead++;
        if (entry.idsInUseUntil > now) {
          entry.idsCheckAt = entry.idsInUseUntil;
          queue.push(entry);
          continue;
        }
        entry.idsInUse = false;
        this.forgetIfIdle(entry);
        continue;
      }
      const peer = entry.owner;
      const live = peer.nonListeners.get(entry.messageId) === entry;
      if (live && entry.expiresAt > now && !evict) break;
      this.expiryHead++;
      if (!live) continue; // its listener was replaced by a newer NON with the same ID
      peer.nonListeners.delete(entry.messageId);
      this.forgetIfIdle(peer);
    }
    if (this.expiryHead > 1024 && this.expiryHead * 2 > queue.length) {
      this.expiryQueue = queue.slice(this.expiryHead);
      this.expiryHead = 0;
    }
  }

  private readonly forgetIfIdleCallback = (peer: PeerState): void => this.forgetIfIdle(peer);

  private forgetIfIdle(peer: PeerState): void {
    // Its Message ID counter goes with it only once no ID sent may still be remembered (keepCounter).
    // Only the current state for the key is removed, should a caller hold one already replaced.
    if (!peer.idle || this.peers.get(peer.key) !== peer) return;
    this.peers.delete(peer.key);
    if (this.lastPeer === peer) this.lastPeer = undefined;
  }

  getStats(): MessageLayerStats {
    let outstanding = 0;
    for (const p of this.peers.values()) outstanding += p.outgoing.size;
    return { peers: this.peers.size, outstandingConfirmables: outstanding, trackedMessages: this.unansweredCount + this.answered.live, ...this.stats };
  }

  /** Stops every retransmission; outstanding CONs hear onTimeout. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sweepTimer?.cancel();
    this.emptyAckTimer?.cancel();
    this.firstTimeouts.clear();
    for (const peer of this.peers.values()) {
      // In the order they were sent: Message IDs are allocated in sequence from nextMessageId (§4.4).
      const sent = (out: OutgoingConfirmable): number => (out.messageId - peer.nextMessageId) & 0xffff;
      for (const out of peer.outgoing.valuesSnapshot().sort((x, y) => sent(x) - sent(y))) {
        this.finish(out);
        out.listener.onTimeout();
      }
    }
    this.peers.clear();
    this.lastPeer = undefined;
    this.answered.clear();
    while (this.oldestUnanswered) this.forgetUnanswered(this.oldestUnanswered);
  }
}

const IGNORE_CONFIRMABLE: ConfirmableListener = { onAck() {}, onReset() {}, onTimeout() {} };

/** A true retransmission repeats the same message; same MID with another token or code is a new one. */
function isSameMessage(a: CoapMessage, b: CoapMessage): boolean {
  return a.code === b.code && a.type === b.type && bytesEqual(a.token, b.token);
}
