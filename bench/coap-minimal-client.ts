/**
 * A bench-only floor for the client side of bench/server-cpu.ts, NOT a CoAP client: the cheapest
 * closed loop of confirmable GETs Node can run on coapsec's own client socket layer
 * (src/transport/udp-client.ts: a connected socket per peer, 1 MiB buffers), as bench/coap-minimal.ts
 * is for the server. One pre-built CON GET per slot (the coapsec client's request: Uri-Path
 * segments, an 8-byte token); per request only the Message ID and the token's sequence half are
 * patched in place. A reply is matched by the 4-byte header and the token alone: an ACK with 2.05,
 * the slot's Message ID and token, and a payload of the expected length after the marker. No
 * options are read, no message object is made, nothing is deduplicated.
 *
 * The gap between it and the coapsec client (bench/client.ts) against the same server is what
 * coapsec's client layers cost per request above Node's per-datagram work.
 *
 * A slot unanswered for RETRANSMIT_AFTER_TICKS ticks of a 100 ms interval (no clock read per
 * request) sends the same bytes again (the server may have dropped it at 256 in flight);
 * retransmissions() counts them.
 *
 * `extras` add, one at a time, work coapsec's client does per request, so the gap between the floor
 * and the client can be attributed under sockets (issue 21): `codec` builds a message object per
 * request and encodes it (src/coap/codec.ts) and decodes each reply to match it; `pending` draws a
 * random token per request (RFC 9175 §4.2, src/util/random.ts) and keeps a pending-request object in
 * a Map by the token's key until its reply, as the exchange layer does. The promise per request is
 * the driver's (bench/client.ts).
 */
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { Method } from '../src/coap/codes.js';
import { bytesEqual, EMPTY_BYTES, MessageType, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { UdpClientTransport } from '../src/transport/udp-client.js';
import type { PeerAddress } from '../src/transport/transport.js';
import { defaultRandom } from '../src/util/random.js';

const TOKEN_LENGTH = 8;
const ACK_2_05_FIRST_BYTE = 0x60 | TOKEN_LENGTH; // version 1, ACK, TKL 8
const CONTENT = 0x45;
const PAYLOAD_MARKER = 0xff;
const TICK_MS = 100;
const RETRANSMIT_AFTER_TICKS = 10;

/** Per-request work of coapsec's client added to the floor (see above). */
export interface FloorExtras {
  codec?: boolean;
  pending?: boolean;
}

/** What `pending` keeps per request, as the exchange layer's PendingRequest does. */
interface PendingSlot {
  readonly slot: number;
  readonly token: Uint8Array;
  readonly messageId: number;
}

/** A token's Map key: one flat string of its 8 bytes, two to a unit (as src/exchange/endpoint.ts makes it). */
const tokenKey = (t: Uint8Array): string => String.fromCharCode(8, t[0]! | (t[1]! << 8), t[2]! | (t[3]! << 8), t[4]! | (t[5]! << 8), t[6]! | (t[7]! << 8));

export interface MinimalClient {
  /** Starts one request; done(ok) once, when its reply came (ok: a good 2.05) — never for a lost one. */
  send(done: (ok: boolean) => void): void;
  retransmissions(): number;
  close(): Promise<void>;
}

export async function minimalCoapClient(port: number, concurrency: number, socketBuffer: number, path: string, payloadLength: number, extras: FloorExtras = {}): Promise<MinimalClient> {
  const peer: PeerAddress = { address: '127.0.0.1', port };
  const buffers = socketBuffer > 0 ? { receiveBufferSize: socketBuffer, sendBufferSize: socketBuffer } : {};
  const transport = await UdpClientTransport.bind({ host: '127.0.0.1', ...buffers });
  transport.setBusy(true);
  const uriPath: CoapOption[] = path
    .split('/')
    .filter((s) => s.length > 0)
    .map((segment) => ({ number: OptionNumber.UriPath, value: Buffer.from(segment, 'utf8') }));
  const template = encodeMessage({ type: MessageType.CON, code: Method.GET, messageId: 0, token: new Uint8Array(TOKEN_LENGTH), options: uriPath, payload: EMPTY_BYTES });
  // Token bytes 0–3: the slot; 4–7: its request count. Message IDs: one counter for all slots.
  const requests: Buffer[] = Array.from({ length: concurrency }, (_, slot) => {
    const bytes = Buffer.from(template);
    bytes.writeUInt32BE(slot, 4);
    return bytes;
  });
  const callbacks: Array<((ok: boolean) => void) | undefined> = new Array(concurrency).fill(undefined);
  const sentAt = new Uint32Array(concurrency);
  let tick = 0;
  const free: number[] = [];
  for (let slot = concurrency - 1; slot >= 0; slot--) free.push(slot);
  let nextMessageId = 0;
  let resent = 0;
  const pendings = new Map<string, PendingSlot>();

  const complete = (slot: number, ok: boolean): void => {
    const done = callbacks[slot]!;
    callbacks[slot] = undefined;
    free.push(slot);
    done(ok);
  };
  // With extras: the reply decoded (codec) and/or found by its token's key (pending).
  const receiveWithExtras = (reply: Buffer): void => {
    let token: Uint8Array;
    let messageId: number;
    let ok: boolean;
    if (extras.codec) {
      const m = decodeMessage(reply);
      if (m.type !== MessageType.ACK) return;
      token = m.token;
      messageId = m.messageId;
      ok = m.code === CONTENT && m.payload.length === payloadLength;
    } else {
      if (reply.length < 4 + TOKEN_LENGTH || reply[0] !== ACK_2_05_FIRST_BYTE) return;
      token = reply.subarray(4, 4 + TOKEN_LENGTH);
      messageId = reply.readUInt16BE(2);
      ok = reply.length > payloadLength && reply[reply.length - payloadLength - 1] === PAYLOAD_MARKER;
    }
    if (token.length !== TOKEN_LENGTH) return;
    let slot: number;
    if (extras.pending) {
      const key = tokenKey(token);
      const pending = pendings.get(key);
      if (pending === undefined || pending.messageId !== messageId) return;
      pendings.delete(key);
      slot = pending.slot;
    } else {
      slot = ((token[0]! << 24) | (token[1]! << 16) | (token[2]! << 8) | token[3]!) >>> 0;
      const request = requests[slot];
      if (request === undefined || callbacks[slot] === undefined || messageId !== request.readUInt16BE(2) || !bytesEqual(token, request.subarray(4, 4 + TOKEN_LENGTH))) return;
    }
    complete(slot, ok);
  };
  // The bytes of a slot's next request, with the extras' per-request work.
  const nextRequest = (slot: number, messageId: number): Buffer => {
    let token: Uint8Array;
    if (extras.pending) {
      token = defaultRandom.bytes(TOKEN_LENGTH);
      const pending: PendingSlot = { slot, token, messageId };
      pendings.set(tokenKey(token), pending);
    } else {
      const previous = requests[slot]!;
      token = Buffer.alloc(TOKEN_LENGTH);
      previous.copy(token as Buffer, 0, 4, 4 + TOKEN_LENGTH);
      (token as Buffer).writeUInt32BE(((token as Buffer).readUInt32BE(4) + 1) >>> 0, 4);
    }
    if (extras.codec) return encodeMessage({ type: MessageType.CON, code: Method.GET, messageId, token, options: uriPath, payload: EMPTY_BYTES });
    const request = requests[slot]!;
    request.writeUInt16BE(messageId, 2);
    request.set(token, 4);
    return request;
  };

  if (extras.codec || extras.pending) transport.setHandler(receiveWithExtras);
  else transport.setHandler((reply) => {
    if (reply.length < 4 + TOKEN_LENGTH || reply[0] !== ACK_2_05_FIRST_BYTE) return;
    const slot = reply.readUInt32BE(4);
    const request = requests[slot];
    const done = callbacks[slot];
    // A reply to an earlier request of the slot (a retransmission answered twice) is stale.
    if (request === undefined || done === undefined || reply.readUInt32BE(2) !== request.readUInt32BE(2) || reply.readUInt32BE(8) !== request.readUInt32BE(8)) return;
    callbacks[slot] = undefined;
    free.push(slot);
    done(reply[1] === CONTENT && reply.length > payloadLength && reply[reply.length - payloadLength - 1] === PAYLOAD_MARKER);
  });
  const watchdog = setInterval(() => {
    tick++;
    for (let slot = 0; slot < concurrency; slot++) {
      if (callbacks[slot] !== undefined && tick - sentAt[slot]! > RETRANSMIT_AFTER_TICKS) {
        resent++;
        sentAt[slot] = tick;
        transport.send(requests[slot]!, peer);
      }
    }
  }, TICK_MS);

  return {
    send(done) {
      const slot = free.pop();
      if (slot === undefined) return done(false);
      if (extras.codec || extras.pending) {
        const request = (requests[slot] = nextRequest(slot, nextMessageId));
        nextMessageId = (nextMessageId + 1) & 0xffff;
        callbacks[slot] = done;
        sentAt[slot] = tick;
        transport.send(request, peer);
        return;
      }
      const request = requests[slot]!;
      request.writeUInt16BE(nextMessageId, 2);
      nextMessageId = (nextMessageId + 1) & 0xffff;
      request.writeUInt32BE((request.readUInt32BE(8) + 1) >>> 0, 8);
      callbacks[slot] = done;
      sentAt[slot] = tick;
      transport.send(request, peer);
    },
    retransmissions: () => resent,
    close: async () => {
      clearInterval(watchdog);
      await transport.close();
    },
  };
}
