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
import { decodeMessage, encodeCodeAndBody, encodeMessage } from '../src/coap/codec.js';
import { Method } from '../src/coap/codes.js';
import { bytesEqual, EMPTY_BYTES, MessageType, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { UdpClientTransport } from '../src/transport/udp-client.js';
import type { PeerAddress } from '../src/transport/transport.js';
import { defaultRandom } from '../src/util/random.js';
import { AeadId, aeadAlgorithm } from '../src/oscore/algorithms.js';
import { deriveContext } from '../src/oscore/context.js';
import { additionalData } from '../src/oscore/protect.js';
import { OSCORE_MASTER_SALT, OSCORE_MASTER_SECRET } from './common.js';

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

/**
 * The OSCORE floor of the client side (issue 21): minimalCoapClient's closed loop with real OSCORE
 * requests (RFC 8613, AES-CCM-16-64-128, the benchmark's context: empty Sender ID, Recipient ID
 * 0x01) and nothing of OSCORE but its AEAD work. One datagram per slot, its layout fixed once: CON
 * POST, the token, the OSCORE option (flags, Partial IV, empty kid) and the ciphertext of the
 * constant inner GET (Uri-Path segments). Per request: the Message ID, the token's count and the
 * Partial IV are patched in place, the nonce (§5.2) and AAD (§5.4) patched from the sequence number,
 * and the plaintext sealed into the datagram, through the same AEAD as src/oscore (with the Partial
 * IV, so AES-CCM batches the keystreams of the next nonces as src/oscore does). A reply is matched
 * by header and token as minimalCoapClient does, and its ciphertext (after the options, not read)
 * opened with the request's nonce and AAD: a good reply is an authentic 2.05 whose payload has the
 * expected length. No message objects, no option classes, no COSE structures.
 *
 * Its gap to the coapsec OSCORE client against the same `coapsec serve` is what coapsec's OSCORE
 * client costs above Node's per-datagram and AEAD work.
 */
export async function minimalOscoreClient(port: number, concurrency: number, socketBuffer: number, path: string, payloadLength: number, sequenceStart: number): Promise<MinimalClient> {
  const peer: PeerAddress = { address: '127.0.0.1', port };
  const buffers = socketBuffer > 0 ? { receiveBufferSize: socketBuffer, sendBufferSize: socketBuffer } : {};
  const transport = await UdpClientTransport.bind({ host: '127.0.0.1', ...buffers });
  transport.setBusy(true);
  const derived = deriveContext({ masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: EMPTY_BYTES, recipientId: Uint8Array.of(0x01) });
  const aead = aeadAlgorithm(AeadId.AES_CCM_16_64_128);
  const uriPath: CoapOption[] = path
    .split('/')
    .filter((s) => s.length > 0)
    .map((segment) => ({ number: OptionNumber.UriPath, value: Buffer.from(segment, 'utf8') }));
  const plaintext = encodeCodeAndBody(Method.GET, uriPath, EMPTY_BYTES);
  const pivLengthOf = (seq: number): number => (seq < 0x100 ? 1 : seq < 0x10000 ? 2 : seq < 0x1000000 ? 3 : 4);
  if (sequenceStart + 50_000_000 >= 2 ** 32) throw new Error('minimalOscoreClient: sequence numbers past 2^32');
  let sequence = sequenceStart;
  const OPTION_AT = 4 + TOKEN_LENGTH;
  const PIV_AT = OPTION_AT + 2;
  /** A slot's datagram for a Partial IV of `pivLength` bytes: header, token, OSCORE option (flags 'k' and n, the Partial IV, empty kid), marker, ciphertext. */
  const datagram = (slot: number, pivLength: number, previous: Buffer | undefined): Buffer => {
    const bytes = Buffer.alloc(PIV_AT + pivLength + 1 + plaintext.length + aead.tagLength);
    if (previous !== undefined) previous.copy(bytes, 0, 0, OPTION_AT);
    else {
      bytes[0] = 0x40 | (MessageType.CON << 4) | TOKEN_LENGTH;
      bytes[1] = Method.POST;
      bytes.writeUInt32BE(slot, 4);
    }
    bytes[OPTION_AT] = (OptionNumber.Oscore << 4) | (1 + pivLength);
    bytes[OPTION_AT + 1] = 0x08 | pivLength;
    bytes[PIV_AT + pivLength] = PAYLOAD_MARKER;
    return bytes;
  };
  const requests: Buffer[] = Array.from({ length: concurrency }, (_, slot) => datagram(slot, pivLengthOf(sequence), undefined));
  const sequences = new Float64Array(concurrency);
  // §5.2: Common IV XOR (ID length 0, empty ID, Partial IV right-aligned).
  const nonce = new Uint8Array(derived.commonIv.length);
  const nonceWith = (seq: number): Uint8Array => {
    nonce.set(derived.commonIv);
    let v = seq;
    for (let i = 1; i <= 5; i++) {
      nonce[nonce.length - i]! ^= v % 256;
      v = Math.floor(v / 256);
    }
    return nonce;
  };
  // §5.4: the AAD of the empty kid and a Partial IV of each length, the Partial IV the last field but the empty Class I options.
  const aads = [1, 2, 3, 4].map((n) => additionalData(AeadId.AES_CCM_16_64_128, EMPTY_BYTES, new Uint8Array(n)));
  const aadWith = (seq: number): Uint8Array => {
    const pivLength = pivLengthOf(seq);
    const aad = aads[pivLength - 1]!;
    let v = seq;
    for (let i = aad.length - 2; i >= aad.length - 1 - pivLength; i--) {
      aad[i] = v % 256;
      v = Math.floor(v / 256);
    }
    return aad;
  };
  const callbacks: Array<((ok: boolean) => void) | undefined> = new Array(concurrency).fill(undefined);
  const sentAt = new Uint32Array(concurrency);
  let tick = 0;
  const free: number[] = [];
  for (let slot = concurrency - 1; slot >= 0; slot--) free.push(slot);
  let nextMessageId = 0;
  let resent = 0;

  transport.setHandler((reply) => {
    // An ACK (the outer code of a protected response is 2.04, §4.2).
    if (reply.length < 4 + TOKEN_LENGTH || reply[0] !== ACK_2_05_FIRST_BYTE) return;
    const slot = reply.readUInt32BE(4);
    const request = requests[slot];
    const done = callbacks[slot];
    if (request === undefined || done === undefined || reply.readUInt32BE(2) !== request.readUInt32BE(2) || reply.readUInt32BE(8) !== request.readUInt32BE(8)) return;
    // The ciphertext after the options (skipped by their headers, their values not read).
    let pos = 4 + TOKEN_LENGTH;
    while (pos < reply.length && reply[pos] !== PAYLOAD_MARKER) {
      const header = reply[pos++]!;
      const delta = header >> 4;
      const length = header & 0x0f;
      pos += delta === 13 ? 1 : delta === 14 ? 2 : 0;
      pos += length === 13 ? 1 + 13 + reply[pos]! : length === 14 ? 2 + 269 + reply.readUInt16BE(pos) : length;
    }
    callbacks[slot] = undefined;
    free.push(slot);
    const seq = sequences[slot]!;
    // §8.4: no Partial IV in the response, so the request's nonce; the AAD of the request's kid and Partial IV.
    const opened = pos < reply.length ? aead.open(derived.recipientKey, nonceWith(seq), aadWith(seq), reply.subarray(pos + 1), seq) : undefined;
    done(opened !== undefined && opened[0] === CONTENT && opened.length > payloadLength && opened[opened.length - payloadLength - 1] === PAYLOAD_MARKER);
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
      const seq = sequence++;
      const pivLength = pivLengthOf(seq);
      let request = requests[slot]!;
      if (request[OPTION_AT + 1] !== (0x08 | pivLength)) request = requests[slot] = datagram(slot, pivLength, request);
      request.writeUInt16BE(nextMessageId, 2);
      nextMessageId = (nextMessageId + 1) & 0xffff;
      request.writeUInt32BE((request.readUInt32BE(8) + 1) >>> 0, 8);
      sequences[slot] = seq;
      request.writeUIntBE(seq, PIV_AT, pivLength);
      // §8.1: the constant inner GET sealed under this request's nonce, into the datagram.
      request.set(aead.seal(derived.senderKey, nonceWith(seq), aadWith(seq), plaintext, seq), PIV_AT + pivLength + 1);
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
