/**
 * The floor for bench/proxy-cpu.ts (`--floor`): `node dist/bench/proxy-minimal.js PORT ORIGIN_PORT`
 * forwards every datagram that looks like a confirmable CoAP request to 127.0.0.1:ORIGIN_PORT as a
 * fixed GET /hello with a token of its own, and the origin's piggybacked answer back to the
 * requester with the requester's Message ID and token — two legs, each one `dgram` receive and one
 * send, with the least possible JavaScript on top (a connected socket upstream, as the coapsec
 * client's peer sockets; a fixed table of outstanding requests). Node's per-datagram cost for a
 * forward proxy, as coap-echo.ts is for a server. It reads no options: it is not a proxy.
 */
import dgram from 'node:dgram';

const port = Number(process.argv[2]);
const originPort = Number(process.argv[3]);
if (![port, originPort].every((p) => Number.isInteger(p) && p > 0 && p <= 0xffff)) {
  console.error('usage: proxy-minimal.js PORT ORIGIN_PORT');
  process.exit(2);
}

/** Outstanding upstream requests, by the low bits of their token (more than any benchmark keeps in flight). */
const SLOTS = 4096;
const peers: Array<{ port: number; address: string; head: Buffer } | undefined> = new Array(SLOTS);
let next = 0;
let messageId = 0;
// Version 1, CON, TKL 4, GET; Message ID and token filled in; Uri-Path "hello" (option 11, length 5).
const upstreamTemplate = Buffer.from([0x44, 0x01, 0, 0, 0, 0, 0, 0, 0xb5, ...Buffer.from('hello')]);

const downstream = dgram.createSocket('udp4');
const upstream = dgram.createSocket('udp4');

downstream.on('message', (msg, rinfo) => {
  const tokenLength = msg.length >= 4 ? msg[0]! & 0x0f : 0;
  if (msg.length < 4 + tokenLength || tokenLength > 8 || msg[0]! >> 4 !== 4 || msg[1]! === 0) return;
  const slot = next;
  next = (next + 1) % SLOTS;
  // The requester's Message ID and token, for the answer.
  peers[slot] = { port: rinfo.port, address: rinfo.address, head: msg.subarray(2, 4 + tokenLength) };
  const request = Buffer.from(upstreamTemplate);
  messageId = (messageId + 1) & 0xffff;
  request.writeUInt16BE(messageId, 2);
  request.writeUInt32BE(slot, 4);
  upstream.send(request);
});

upstream.on('message', (msg) => {
  if (msg.length < 8 || (msg[0]! & 0x0f) !== 4 || msg[1]! === 0) return; // an empty ACK, or not ours
  const slot = msg.readUInt32BE(4);
  const peer = slot < SLOTS ? peers[slot] : undefined;
  if (peer === undefined) return;
  peers[slot] = undefined;
  const tokenLength = peer.head.length - 2;
  const reply = Buffer.allocUnsafe(2 + peer.head.length + msg.length - 8);
  reply[0] = 0x60 | tokenLength; // version 1, ACK
  reply[1] = msg[1]!;
  peer.head.copy(reply, 2);
  msg.copy(reply, 2 + peer.head.length, 8);
  downstream.send(reply, peer.port, peer.address);
});

for (const socket of [downstream, upstream]) {
  socket.on('error', (e) => {
    console.error(`proxy-minimal: ${e.message}`);
    process.exit(1);
  });
}
upstream.bind(0, '127.0.0.1', () => {
  upstream.connect(originPort, '127.0.0.1', () => {
    downstream.bind(port, '127.0.0.1', () => {
      for (const socket of [downstream, upstream]) {
        socket.setRecvBufferSize(1 << 20);
        socket.setSendBufferSize(1 << 20);
      }
    });
  });
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
