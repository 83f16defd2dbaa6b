/**
 * A bench-only floor for bench/server-cpu.ts, NOT a CoAP server: `node dist/bench/coap-minimal.js
 * PORT [PAYLOAD]` reads a datagram's 4-byte header and token only and answers a confirmable GET
 * with a fixed piggybacked 2.05 (Content-Format text/plain, then the payload: the bytes `coapsec
 * serve` sends for /hello), dropping anything else. No options are read, nothing is deduplicated,
 * no state is kept.
 *
 * It sits on the socket `coapsec serve` uses (src/transport/socket.ts: 1 MiB buffers, IP literals
 * sent without Node's deferred dns.lookup), so the gap between it and `coapsec serve` is what
 * coapsec's own layers cost per request above the cheapest CoAP answer Node can give, and the gap
 * between it and bench/coap-echo.ts (Node's default dgram send) is what the socket layer saves.
 */
import { bindSocket } from '../src/transport/socket.js';

const port = Number(process.argv[2]);
const payload = Buffer.from(process.argv[3] ?? 'Hello from coapsec', 'utf8');
if (!Number.isInteger(port) || port <= 0 || port > 0xffff) {
  console.error('usage: coap-minimal.js PORT [PAYLOAD]');
  process.exit(2);
}

const VERSION_1_CON = 0x40;
const VERSION_1_ACK = 0x60;
const GET = 0x01;
const CONTENT = 0x45;
/** Option delta 12 (Content-Format), length 0: text/plain;charset=utf-8 (RFC 7252 §3.2: 0 is empty). */
const CONTENT_FORMAT_TEXT = 0xc0;
const PAYLOAD_MARKER = 0xff;

const socket = await bindSocket({ host: '127.0.0.1', port, receiveBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
socket.on('message', (msg, rinfo) => {
  if (msg.length < 4) return;
  const first = msg[0]!;
  const tokenLength = first & 0x0f;
  // Version 1, CON, a token of at most 8 bytes that is all there, and GET: anything else is dropped.
  if ((first & 0xf0) !== VERSION_1_CON || tokenLength > 8 || msg.length < 4 + tokenLength || msg[1] !== GET) return;
  const reply = Buffer.allocUnsafe(4 + tokenLength + 2 + payload.length);
  reply[0] = VERSION_1_ACK | tokenLength;
  reply[1] = CONTENT;
  msg.copy(reply, 2, 2, 4 + tokenLength); // Message ID and token
  reply[4 + tokenLength] = CONTENT_FORMAT_TEXT;
  reply[5 + tokenLength] = PAYLOAD_MARKER;
  payload.copy(reply, 6 + tokenLength);
  socket.send(reply, rinfo.port, rinfo.address);
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
