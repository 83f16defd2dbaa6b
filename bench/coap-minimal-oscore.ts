/**
 * A bench-only floor for bench/server-cpu.ts, NOT an OSCORE server: `node
 * dist/bench/coap-minimal-oscore.js PORT [PAYLOAD]` is bench/coap-minimal.ts plus exactly the
 * AEAD work of an OSCORE GET (RFC 8613 §8.2 and §8.3) on the real datagrams of the native load
 * generator: it reads the header, token and OSCORE option of a confirmable POST from the
 * benchmark's client (Sender ID empty, the one context of `coapsec serve --credentials` in
 * server-cpu.ts), opens the ciphertext with the nonce and AAD built from its Partial IV, and
 * answers a piggybacked 2.04 with an empty OSCORE option and the sealed inner 2.05 (Content-Format
 * text/plain, the payload: the bytes `coapsec serve` seals for /hello), under the request's nonce.
 * The AEAD goes through src/oscore's own `aeadAlgorithm` path with the Partial IV passed, so the
 * keystreams come batched as in `coapsec serve` (2 + 1/16 AES calls per message).
 *
 * No replay window, no inner options read, no option classes, no deduplication, no state: a
 * request that does not authenticate is dropped. So `minimal OSCORE − minimal CoAP` under sockets
 * is what OSCORE's AEAD, nonce and AAD cost a Node server per request under the load generator —
 * the floor of `coapsec OSCORE − coapsec` that no implementation on Node's crypto goes below —
 * and the gap above it is coapsec's own OSCORE code (issue 21, BENCHMARKS.md h21-oscore3).
 */
import { deriveContext, nonce } from '../src/oscore/context.js';
import { additionalData } from '../src/oscore/cose-object.js';
import { AeadId, aeadAlgorithm } from '../src/oscore/algorithms.js';
import { bindSocket } from '../src/transport/socket.js';
import { OSCORE_MASTER_SALT, OSCORE_MASTER_SECRET } from './common.js';

const port = Number(process.argv[2]);
const payload = Buffer.from(process.argv[3] ?? 'Hello from coapsec', 'utf8');
if (!Number.isInteger(port) || port <= 0 || port > 0xffff) {
  console.error('usage: coap-minimal-oscore.js PORT [PAYLOAD]');
  process.exit(2);
}

const AEAD = aeadAlgorithm(AeadId.AES_CCM_16_64_128);
const CLIENT_ID = new Uint8Array(0);
const SERVER_ID = Uint8Array.of(0x01);
// The server's view: its Recipient ID is the client's Sender ID (§3.1).
const keys = deriveContext({ masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: SERVER_ID, recipientId: CLIENT_ID });

const VERSION_1_CON = 0x40;
const VERSION_1_ACK = 0x60;
const GET = 0x01;
const POST = 0x02;
const UNAUTHORIZED = 0x81;
const CHANGED = 0x44;
const CONTENT = 0x45;
/** Option delta 9 (OSCORE), length 0: a response under the request's nonce carries an empty value (§6.1). */
const OSCORE_EMPTY = 0x90;
const OSCORE_OPTION_DELTA = 9;
/** Flag k (kid present), the Partial IV length in the low 3 bits (§6.1). */
const FLAG_K = 0x08;
const PIV_MASK = 0x07;
const PAYLOAD_MARKER = 0xff;
/** The inner response (§5.3): Code 2.05, Content-Format 0 (delta 12, empty), payload. */
const INNER_RESPONSE = Buffer.concat([Buffer.of(CONTENT, 0xc0, PAYLOAD_MARKER), payload]);

const socket = await bindSocket({ host: '127.0.0.1', port, receiveBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
socket.on('message', (msg, rinfo) => {
  if (msg.length < 4) return;
  const first = msg[0]!;
  const tokenLength = first & 0x0f;
  if ((first & 0xf0) !== VERSION_1_CON || tokenLength > 8 || msg.length < 4 + tokenLength) return;
  if (msg[1] === GET) {
    // An unprotected GET (the harness's readiness probe): 4.01, as a server that wants OSCORE.
    const refusal = Buffer.from(msg.subarray(0, 4 + tokenLength));
    refusal[0] = VERSION_1_ACK | tokenLength;
    refusal[1] = UNAUTHORIZED;
    socket.send(refusal, rinfo.port, rinfo.address);
    return;
  }
  if (msg[1] !== POST) return;
  // One option, OSCORE (delta 9, length below 13), then the payload marker and the ciphertext.
  let at = 4 + tokenLength;
  const optionByte = msg[at++];
  if (optionByte === undefined || optionByte >> 4 !== OSCORE_OPTION_DELTA) return;
  const optionLength = optionByte & 0x0f;
  if (optionLength === 0 || optionLength > 12 || at + optionLength >= msg.length) return;
  const flags = msg[at]!;
  const pivLength = flags & PIV_MASK;
  // Only this benchmark's requests: Partial IV and an empty kid, nothing else (§6.1).
  if (flags !== (FLAG_K | pivLength) || pivLength === 0 || pivLength > 5 || optionLength !== 1 + pivLength) return;
  const piv = msg.subarray(at + 1, at + 1 + pivLength);
  at += optionLength;
  if (msg[at++] !== PAYLOAD_MARKER) return;
  let partialIv = 0;
  for (const b of piv) partialIv = partialIv * 256 + b;
  const requestNonce = nonce(keys.commonIv, CLIENT_ID, piv);
  // §5.4: request_kid and request_piv make the AAD of the request and of its response alike.
  const aad = additionalData(AEAD.id, CLIENT_ID, piv);
  if (AEAD.open(keys.recipientKey, requestNonce, aad, msg.subarray(at), partialIv) === undefined) return;
  const sealed = AEAD.seal(keys.senderKey, requestNonce, aad, INNER_RESPONSE, partialIv);
  const reply = Buffer.allocUnsafe(4 + tokenLength + 2 + sealed.length);
  reply[0] = VERSION_1_ACK | tokenLength;
  reply[1] = CHANGED;
  msg.copy(reply, 2, 2, 4 + tokenLength); // Message ID and token
  reply[4 + tokenLength] = OSCORE_EMPTY;
  reply[5 + tokenLength] = PAYLOAD_MARKER;
  reply.set(sealed, 6 + tokenLength);
  socket.send(reply, rinfo.port, rinfo.address);
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
