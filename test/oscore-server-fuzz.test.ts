/**
 * Seeded, bounded fuzzing of the OSCORE server path with outer options (issue 17 item 4): valid
 * protected requests — which then pass the MAC, since class U options are not integrity protected
 * — and forged ones get random outer Block1/Block2/Size1/OSCORE/Observe/proxy/unknown options, and
 * some get bytes flipped. In-process (lockstep transport, fake clock). Every CON must be answered
 * by a non-empty ACK or an RST there and then, nothing may throw, and no 5.00 may come back (the
 * server's last-resort answer to an exception).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { EMPTY_BYTES, MessageType, encodeString, encodeUint, sortOptions, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { addDemoResources } from '../src/demo/resources.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { SeededRandom } from '../src/util/random.js';
import { lockstep } from './support/lockstep.js';

const DATAGRAMS = 6000;
const SEED = 0x17_04;
const COMMON = { masterSecret: Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex'), masterSalt: Buffer.from('9e7ca92223786340', 'hex') };
const N = OptionNumber;

class Dice {
  constructor(private readonly random: SeededRandom) {}
  int(n: number): number {
    return Math.floor(this.random.float() * n);
  }
  chance(p: number): boolean {
    return this.random.float() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Uint8Array {
    return this.random.bytes(n);
  }
}

const INNER_REQUESTS: Array<() => Pick<CoapMessage, 'code' | 'options' | 'payload'>> = [
  () => ({ code: Method.GET, options: [{ number: N.UriPath, value: encodeString('hello') }], payload: EMPTY_BYTES }),
  () => ({ code: Method.GET, options: [{ number: N.UriPath, value: encodeString('large') }], payload: EMPTY_BYTES }),
  () => ({ code: Method.GET, options: [{ number: N.Observe, value: EMPTY_BYTES }, { number: N.UriPath, value: encodeString('time') }], payload: EMPTY_BYTES }),
  () => ({ code: Method.POST, options: [{ number: N.UriPath, value: encodeString('echo') }], payload: Buffer.alloc(300, 0x61) }),
  () => ({ code: Method.IPATCH, options: [{ number: N.UriPath, value: encodeString('config') }, { number: N.ContentFormat, value: encodeUint(ContentFormat.MergePatchJson) }], payload: encodeString('{"__proto__":{"x":1},"interval":5}') }),
  () => ({ code: Method.PUT, options: [{ number: N.UriPath, value: encodeString('alarm') }], payload: encodeString('on') }),
];

/** Outer options as a forger (or a broken proxy) would set them: valid, malformed, repeated, oversized. */
function outerOption(d: Dice): CoapOption[] {
  const sized = (number: number, maxLength: number): CoapOption => ({ number, value: d.bytes(d.int(maxLength + 1)) });
  const choices: Array<() => CoapOption[]> = [
    () => [sized(N.Block1, 5)],
    () => [sized(N.Block2, 5)],
    () => [{ number: N.Block1, value: encodeUint(d.int(1 << 24)) }],
    () => [{ number: N.Block2, value: encodeUint((d.int(8) << 4) | d.int(8)) }],
    () => [sized(N.Block1, 3), sized(N.Block1, 3)],
    () => [sized(N.Size1, 6)],
    () => [sized(N.Size2, 6)],
    () => [sized(N.Observe, 4)],
    () => [sized(N.MaxAge, 5)],
    () => [sized(N.NoResponse, 2)],
    () => [sized(N.HopLimit, 2)],
    () => [{ number: N.UriHost, value: encodeString('example.net') }],
    () => [sized(N.UriPort, 3)],
    () => [{ number: N.ProxyUri, value: encodeString('coap://127.0.0.1/hello') }],
    () => [{ number: N.ProxyScheme, value: encodeString('coap') }],
    () => [sized(N.Echo, 41)],
    () => [sized(N.RequestTag, 9)],
    () => [sized(N.Oscore, 300)],
    () => [sized(N.Oscore, 8), sized(N.Oscore, 8)],
    () => [sized(65000 + d.int(500), 20)],
  ];
  return d.pick(choices)();
}

function fuzzedRequest(d: Dice, client: OscoreClientSecurity, messageId: number): Buffer {
  let base: CoapMessage;
  if (d.chance(0.6)) {
    const inner = d.pick(INNER_REQUESTS)();
    base = client.protect({ type: MessageType.CON, messageId: 0, token: EMPTY_BYTES, ...inner }).message;
  } else {
    // A forgery: a plausible OSCORE option, random ciphertext.
    base = {
      type: MessageType.CON,
      code: d.pick([Method.GET, Method.POST, Method.FETCH]),
      messageId: 0,
      token: EMPTY_BYTES,
      options: [{ number: N.Oscore, value: Uint8Array.of(0x09, d.int(256)) }],
      payload: d.bytes(1 + d.int(64)),
    };
  }
  let options = [...base.options];
  const changes = 1 + d.int(3);
  for (let i = 0; i < changes; i++) {
    const added = outerOption(d);
    if (d.chance(0.5)) options = options.filter((o) => !added.some((a) => a.number === o.number));
    options.push(...added);
  }
  const message: CoapMessage = {
    ...base,
    type: d.chance(0.8) ? MessageType.CON : MessageType.NON,
    messageId,
    token: d.bytes(d.int(9)),
    options: sortOptions(options),
    payload: d.chance(0.05) ? EMPTY_BYTES : base.payload,
  };
  const bytes = encodeMessage(message);
  if (d.chance(0.2)) {
    // Flip bytes after the header; the Message ID and type stay what the test expects.
    const flips = 1 + d.int(4);
    for (let i = 0; i < flips && bytes.length > 4; i++) bytes[4 + d.int(bytes.length - 4)] ^= 1 << d.int(8);
  }
  return bytes;
}

test(`${DATAGRAMS} fuzzed OSCORE requests with outer options: every CON answered (ACK with a code — empty only under No-Response — or RST), nothing thrown, no 5.00`, { timeout: 120_000 }, (t) => {
  const h = lockstep();
  const server = new CoapServer(h.endpoint, {
    security: new OscoreServerSecurity([new OscoreSecurityContext({ ...COMMON, senderId: Buffer.from([1]), recipientIds: [EMPTY_BYTES] }, new VolatileSequence())]),
  });
  addDemoResources(server, { tick: false });
  const client = new OscoreClientSecurity(new OscoreSecurityContext({ ...COMMON, senderId: EMPTY_BYTES, recipientIds: [Buffer.from([1])] }, new VolatileSequence()));
  const d = new Dice(new SeededRandom(SEED));
  const codes = new Map<number, number>();
  let silentNons = 0;
  for (let i = 0; i < DATAGRAMS; i++) {
    const messageId = i & 0xffff;
    const bytes = fuzzedRequest(d, client, messageId);
    const confirmable = ((bytes[0]! >> 4) & 3) === MessageType.CON;
    const peer = { address: '192.0.2.7', port: 40000 + (i % 16) };
    h.transport.deliver(bytes, peer);
    const replies = h.transport.take().filter((r) => r.message.messageId === messageId);
    for (const r of replies) {
      assert.notEqual(r.message.code, ResponseCode.InternalServerError, `datagram ${i} (${bytes.toString('hex')}) made the server fail: ${Buffer.from(r.message.payload).toString()}`);
      codes.set(r.message.code, (codes.get(r.message.code) ?? 0) + 1);
    }
    if (confirmable) {
      // RFC 7967: a No-Response option may suppress the response; the CON still gets its (empty) ACK.
      const mayBeSuppressed = hasNoResponse(bytes);
      const answer = replies.find((r) => (r.message.type === MessageType.ACK && (r.message.code !== 0 || mayBeSuppressed)) || r.message.type === MessageType.RST);
      assert.ok(answer, `CON datagram ${i} got no answer: ${bytes.toString('hex')} (decodes to ${JSON.stringify(safeDecode(bytes))})`);
    } else if (replies.length === 0) silentNons++;
    h.clock.advance(10);
  }
  const summary = [...codes].sort((a, b) => a[0] - b[0]).map(([c, n]) => `${c >> 5}.${String(c & 31).padStart(2, '0')}×${n}`).join(' ');
  assert.ok(codes.size >= 6, `the fuzzer reaches many outcomes: ${summary}`);
  assert.ok((codes.get(ResponseCode.BadOption) ?? 0) > 0 && (codes.get(ResponseCode.Changed) ?? 0) > 0, summary);
  t.diagnostic(`response codes: ${summary}; NONs rejected silently: ${silentNons}`);
  const stats = server.blockwise.stats();
  assert.ok(stats.reassemblies <= server.blockwise.limits.maxOperations);
});

function hasNoResponse(bytes: Buffer): boolean {
  try {
    return decodeMessage(bytes).options.some((o) => o.number === N.NoResponse);
  } catch {
    return false;
  }
}

function safeDecode(bytes: Buffer): unknown {
  try {
    const m = decodeMessage(bytes);
    return { type: m.type, code: m.code, options: m.options.map((o) => [o.number, Buffer.from(o.value).toString('hex')]) };
  } catch (error) {
    return String(error);
  }
}
