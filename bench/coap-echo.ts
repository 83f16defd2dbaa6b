/**
 * The floor for bench/server-cpu.ts: `node dist/bench/coap-echo.js PORT [PAYLOAD]` answers every
 * datagram that looks like a CoAP request with a piggybacked 2.05 (same Message ID and token,
 * then the payload), using nothing but `dgram` — Node's per-datagram receive and send cost with
 * the least possible JavaScript on top. It checks only the header; it is not a CoAP server.
 */
import dgram from 'node:dgram';

const port = Number(process.argv[2]);
const payload = Buffer.from(process.argv[3] ?? 'Hello from coapsec', 'utf8');
if (!Number.isInteger(port) || port <= 0 || port > 0xffff) {
  console.error('usage: coap-echo.js PORT [PAYLOAD]');
  process.exit(2);
}

const socket = dgram.createSocket('udp4');
socket.on('message', (msg, rinfo) => {
  const tokenLength = msg.length >= 4 ? msg[0]! & 0x0f : 0;
  if (msg.length < 4 + tokenLength || tokenLength > 8 || msg[0]! >> 6 !== 1) return;
  const reply = Buffer.allocUnsafe(4 + tokenLength + 1 + payload.length);
  reply[0] = 0x60 | tokenLength; // version 1, ACK
  reply[1] = 0x45; // 2.05 Content
  msg.copy(reply, 2, 2, 4 + tokenLength); // Message ID and token
  reply[4 + tokenLength] = 0xff;
  payload.copy(reply, 5 + tokenLength);
  socket.send(reply, rinfo.port, rinfo.address);
});
socket.on('error', (e) => {
  console.error(`coap-echo: ${e.message}`);
  process.exit(1);
});
socket.bind(port, '127.0.0.1', () => {
  socket.setRecvBufferSize(1 << 20);
  socket.setSendBufferSize(1 << 20);
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
