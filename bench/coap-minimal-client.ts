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
 */
import { encodeMessage } from '../src/coap/codec.js';
import { Method } from '../src/coap/codes.js';
import { MessageType } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { UdpClientTransport } from '../src/transport/udp-client.js';
import type { PeerAddress } from '../src/transport/transport.js';

const TOKEN_LENGTH = 8;
const ACK_2_05_FIRST_BYTE = 0x60 | TOKEN_LENGTH; // version 1, ACK, TKL 8
const CONTENT = 0x45;
const PAYLOAD_MARKER = 0xff;
const TICK_MS = 100;
const RETRANSMIT_AFTER_TICKS = 10;

export interface MinimalClient {
  /** Starts one request; done(ok) once, when its reply came (ok: a good 2.05) — never for a lost one. */
  send(done: (ok: boolean) => void): void;
  retransmissions(): number;
  close(): Promise<void>;
}

export async function minimalCoapClient(port: number, concurrency: number, socketBuffer: number, path: string, payloadLength: number): Promise<MinimalClient> {
  const peer: PeerAddress = { address: '127.0.0.1', port };
  const buffers = socketBuffer > 0 ? { receiveBufferSize: socketBuffer, sendBufferSize: socketBuffer } : {};
  const transport = await UdpClientTransport.bind({ host: '127.0.0.1', ...buffers });
  transport.setBusy(true);
  const template = encodeMessage({
    type: MessageType.CON,
    code: Method.GET,
    messageId: 0,
    token: new Uint8Array(TOKEN_LENGTH),
    options: path
      .split('/')
      .filter((s) => s.length > 0)
      .map((segment) => ({ number: OptionNumber.UriPath, value: Buffer.from(segment, 'utf8') })),
    payload: new Uint8Array(0),
  });
  // Token bytes 0–3: the slot; 4–7: its request count. Message IDs: one counter for all slots.
  const requests = Array.from({ length: concurrency }, (_, slot) => {
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

  transport.setHandler((reply) => {
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
