/**
 * Resource exhaustion (issue 17, "What must be shown"): 50,000 Observe registrations, 5,000 partial
 * Block1 uploads and 320 bodies of 4 MiB POSTed to /echo, all from hostile peers, against `serve`'s
 * demo resources with the default limits. Afterwards a legitimate client is answered as fast as
 * before (its GET, a block-wise upload with its block-wise response, an Observe request), and the
 * heap grew by less than the budget docs/security.md "## Limits" documents.
 *
 * In-process: the server's own endpoint on a counting in-memory transport and a fake clock.
 * Scaled for CI time, in a documented way: the observers and partial uploads are the issue's
 * numbers, but each 4 MiB body is 4,096 Block1 datagrams (≈ 65 µs each in-process here), so the
 * suite posts 64 bodies (256 MiB: four times the representation budget and the reassembly budget,
 * which is what the limits must survive) and COAPSEC_EXHAUSTION_BODIES=320 runs the issue's full
 * 320 (≈ 90 s). COAPSEC_EXHAUSTION_SCALE (default 1) scales every count down for slow machines.
 * The assertions are the same at any scale.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { encodeBlock } from '../src/coap/block.js';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, encodeUint, getOption, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { addDemoResources } from '../src/demo/resources.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { DEFAULT_OBSERVE_SETTINGS } from '../src/server/observe.js';
import { CoapServer } from '../src/server/server.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from '../src/transport/transport.js';
import { SeededRandom } from '../src/util/random.js';
import { FakeScheduler } from '../src/util/scheduler.js';

const SCALE = Number(process.env.COAPSEC_EXHAUSTION_SCALE ?? 1);
const OBSERVERS = Math.round(50_000 * SCALE);
const PARTIAL_UPLOADS = Math.round(5_000 * SCALE);
const BODIES = Math.round(Number(process.env.COAPSEC_EXHAUSTION_BODIES ?? 64) * SCALE);
const BODY_SIZE = 4 << 20;
/** docs/security.md "## Limits": growth of heap + Buffer memory under the default limits, whatever the peers send. */
const HEAP_BUDGET = 256 << 20;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** The JavaScript heap plus the memory outside it that Buffers hold (bodies and representations live there). */
const heapUsed = (): number => {
  gc();
  gc();
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
};

/** Delivers datagrams to the server and keeps only the replies a test asks for (no decode per send). */
class CountingTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  private handler: DatagramHandler = () => {};
  sent = 0;
  captured: Array<{ peer: PeerAddress; message: CoapMessage }> | undefined;

  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }
  send(data: Uint8Array, peer: PeerAddress): void {
    this.sent++;
    this.captured?.push({ peer, message: decodeMessage(Buffer.from(data)) });
  }
  deliver(message: CoapMessage, peer: PeerAddress): void {
    this.handler(encodeMessage(message), peer, undefined);
  }
  localAddress(): PeerAddress {
    return { address: '192.0.2.1', port: 5683 };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const hostile = (i: number, group: number): PeerAddress => ({ address: `203.0.113.${group}`, port: 1024 + i });
const path = (p: string): CoapOption => ({ number: OptionNumber.UriPath, value: encodeString(p) });

test('hostile observers, partial uploads and 4 MiB bodies leave the server answering a legitimate client, heap within budget', { timeout: 300_000 }, (t) => {
  const clock = new FakeScheduler(0);
  const transport = new CountingTransport();
  const server = new CoapServer(new CoapEndpoint({ transport, scheduler: clock, random: new SeededRandom(17) }));
  addDemoResources(server, { tick: false });
  let messageId = 0;
  const request = (peer: PeerAddress, code: number, options: CoapOption[], payload: Uint8Array = EMPTY_BYTES, token = Uint8Array.of(1)): void => {
    messageId = (messageId + 1) & 0xffff;
    transport.deliver({ type: MessageType.CON, code, messageId, token, options, payload }, peer);
  };

  const legitimate = { address: '192.0.2.10', port: 40000 };
  const ask = (code: number, options: CoapOption[], payload: Uint8Array = EMPTY_BYTES): CoapMessage => {
    transport.captured = [];
    request(legitimate, code, options, payload, Uint8Array.of(0x4c));
    const replies = transport.captured.filter((r) => r.peer === legitimate || r.peer.port === legitimate.port);
    transport.captured = undefined;
    assert.equal(replies.length, 1, 'one piggybacked response');
    return replies[0]!.message;
  };
  /** Median wall-clock time the server takes to answer the legitimate GET, ms. */
  const latency = (): number => {
    const samples: number[] = [];
    for (let i = 0; i < 301; i++) {
      const started = process.hrtime.bigint();
      assert.equal(ask(Method.GET, [path('hello')]).code, ResponseCode.Content);
      samples.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    return samples.sort((a, b) => a - b)[150]!;
  };

  latency(); // warm-up
  const usual = latency();
  const before = heapUsed();
  const started = Date.now();

  // 50,000 Observe registrations of /time: 100 per hostile peer, from 500 peers.
  const observe = [{ number: OptionNumber.Observe, value: EMPTY_BYTES }, path('time')];
  for (let i = 0; i < OBSERVERS; i++) request(hostile(Math.floor(i / 100), 1), Method.GET, observe, EMPTY_BYTES, Uint8Array.of(i & 0xff, (i >> 8) & 0xff));
  server.changed('/time');

  // 5,000 partial uploads: the first of several 1024-byte blocks, 50 per peer from 100 peers, never finished.
  const block = Buffer.alloc(1024, 0x78);
  for (let i = 0; i < PARTIAL_UPLOADS; i++) {
    const tag = { number: OptionNumber.RequestTag, value: Uint8Array.of(i & 0xff, (i >> 8) & 0xff) };
    request(hostile(Math.floor(i / 50), 2), Method.POST, [path('echo'), { number: OptionNumber.Block1, value: encodeBlock({ num: 0, more: true, szx: 6 }) }, tag], block);
  }

  // Bodies of 4 MiB POSTed to /echo, 2 per peer, each to its own query (its own representation):
  // each is reassembled, echoed, and its 4 MiB response kept for Block2 follow-ups that never come.
  const blocks = BODY_SIZE / 1024;
  for (let b = 0; b < BODIES; b++) {
    const peer = hostile(Math.floor(b / 2), 3);
    const query = { number: OptionNumber.UriQuery, value: encodeString(`b=${b}`) };
    for (let n = 0; n < blocks; n++) {
      request(peer, Method.POST, [path('echo'), query, { number: OptionNumber.Block1, value: encodeBlock({ num: n, more: n < blocks - 1, szx: 6 }) }], block, Uint8Array.of(b & 0xff));
    }
  }
  const attackMs = Date.now() - started;
  const grown = heapUsed() - before;

  const stats = server.blockwise.stats();
  t.diagnostic(`attack: ${OBSERVERS} observe requests, ${PARTIAL_UPLOADS} partial uploads, ${BODIES} × 4 MiB bodies; ${transport.sent} datagrams answered in ${attackMs} ms`);
  t.diagnostic(`kept: ${server.observations.count()} observers, ${stats.reassemblies} partial uploads (${stats.reassembledBytes} bytes), ${stats.representations} representations (${stats.representedBytes} bytes)`);
  t.diagnostic(`heap + Buffers grew ${(grown / 2 ** 20).toFixed(1)} MiB (budget ${HEAP_BUDGET / 2 ** 20} MiB)`);

  // Every limit held.
  assert.ok(server.observations.count() <= DEFAULT_OBSERVE_SETTINGS.maxObservers, `${server.observations.count()} observers`);
  assert.ok(stats.reassembledBytes <= server.blockwise.limits.reassemblyBudget);
  assert.ok(stats.reassemblies <= server.blockwise.limits.maxOperations);
  assert.ok(stats.representedBytes <= server.blockwise.limits.representationBudget);
  assert.ok(grown < HEAP_BUDGET, `heap grew ${grown} bytes, budget ${HEAP_BUDGET}`);

  // The legitimate client: answered as fast as usual ...
  const now = latency();
  t.diagnostic(`legitimate GET /hello: median ${usual.toFixed(3)} ms before, ${now.toFixed(3)} ms after`);
  assert.ok(now <= Math.max(usual * 3, usual + 0.5), `median latency ${now} ms after the attack, ${usual} ms before`);

  // ... its block-wise upload goes through, and its block-wise response comes from the one representation ...
  const body = Buffer.alloc(2500, 0x6c);
  let last: CoapMessage | undefined;
  for (let n = 0; n * 1024 < body.length; n++) {
    const more = (n + 1) * 1024 < body.length;
    last = ask(Method.POST, [path('echo'), { number: OptionNumber.Block1, value: encodeBlock({ num: n, more, szx: 6 }) }], body.subarray(n * 1024, (n + 1) * 1024));
    assert.equal(last.code, more ? ResponseCode.Continue : ResponseCode.Changed);
  }
  const etag = getOption(last!, OptionNumber.ETag);
  const rest = [1, 2].map((num) => ask(Method.POST, [path('echo'), { number: OptionNumber.Block2, value: encodeBlock({ num, more: false, szx: 6 }) }]));
  assert.ok(rest.every((r) => r.code === ResponseCode.Changed && Buffer.from(getOption(r, OptionNumber.ETag)!).equals(Buffer.from(etag!))));
  assert.equal(Buffer.concat([last!.payload, ...rest.map((r) => r.payload)]).toString(), body.toString());

  // ... and its Observe request is answered (without Observe when the observer limit is reached, RFC 7641 §4.1).
  const observed = ask(Method.GET, [{ number: OptionNumber.Observe, value: encodeUint(0) }, path('time')]);
  assert.equal(observed.code, ResponseCode.Content);
  if (server.observations.count() < DEFAULT_OBSERVE_SETTINGS.maxObservers) assert.ok(getOption(observed, OptionNumber.Observe));
});
